#!/usr/bin/env bash
# Benchmarks ledge against its baselines, all measured in this one run on this machine:
#   native hyper hello-world, `wasmtime serve` 48.0.8 (fresh instance per request, and with
#   instance reuse), ledge on the same p2 component in both modes, and ledge on a p3 spin-sdk 7
#   hello; plus the time from `ledge up` to its first 200 with a warm compile cache.
# Writes bench/last-run.md (copy the figures into BENCHMARKS.md).
#
# Usage: bench/run.sh   (DURATION=10s CONNECTIONS=64 THREADS=2 RUNS=3 to change the load;
#                       ONLY='regex' measures only the rows whose name matches)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
CACHE=bench/.cache
WASMTIME=$CACHE/wasmtime/bin/wasmtime
OUT=bench/last-run.md
PORT=38080

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }
if [ ! -x "$WASMTIME" ]; then
  cargo install wasmtime-cli --version 48.0.8 --locked --root "$CACHE/wasmtime"
fi

cargo build --release -p ledge -p native-hello
(cd components && cargo build --release --target wasm32-wasip2 -p hello-p2 -p hello-p3 -p data-p2 -p kv-counter)
LEDGE=target/release/ledge
HELLO_P2=components/target/wasm32-wasip2/release/hello_p2.wasm
HELLO_P3=components/target/wasm32-wasip2/release/hello_p3.wasm
DATA_P2=components/target/wasm32-wasip2/release/data_p2.wasm
KV_P2=components/target/wasm32-wasip2/release/kv_counter.wasm
STATE=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$STATE"' EXIT
REDIS_PORT=38079

wait_ready() {
  for _ in $(seq 1 200); do
    curl -sS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on $PORT did not come up" >&2; return 1
}

source bench/lib.sh

# start_server COMMAND...: runs it in the background (SERVER holds its pid) until it answers.
start_server() {
  "$@" >/dev/null 2>&1 &
  SERVER=$!
  wait_ready
}

stop_server() {
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
}

# measure NAME COMMAND...: serve, warm up, load with wrk RUNS times, record the median
# requests/s, p50 and p99 of the runs (this machine's noise is about 10% run to run, more in
# the tail).
measure() {
  local name=$1; shift
  [[ $name =~ ${ONLY:-.} ]] || return 0
  local url="http://127.0.0.1:$PORT${URL_PATH:-/}"
  start_server "$@"
  load "$url" 2s >/dev/null
  : > "$STATE/runs.tsv"
  for _ in $(seq 1 "$RUNS"); do load "$url" >> "$STATE/runs.tsv"; done
  stop_server
  printf '%s\t%s\n' "$name" "$(median "$STATE/runs.tsv")" | tee -a "$STATE/results.tsv"
}

# measure_pair LABEL NAME_A PATH_A NAME_B PATH_B COMMAND...: two routes of one server, loaded
# in alternation (A, B, A, B, ...) so that drift on this shared machine hits both alike.
# Records both rows as `measure` does, and under LABEL the median of the per-round B/A
# throughput ratios.
measure_pair() {
  local label=$1 name_a=$2 path_a=$3 name_b=$4 path_b=$5; shift 5
  [[ "$name_a $name_b" =~ ${ONLY:-.} ]] || return 0
  local url_a="http://127.0.0.1:$PORT$path_a" url_b="http://127.0.0.1:$PORT$path_b" a b
  start_server "$@"
  load "$url_a" 2s >/dev/null; load "$url_b" 2s >/dev/null
  : > "$STATE/runs-a.tsv"; : > "$STATE/runs-b.tsv"; : > "$STATE/ratios.tsv"
  for _ in $(seq 1 "$RUNS"); do
    a=$(load "$url_a"); b=$(load "$url_b")
    echo "$a" >> "$STATE/runs-a.tsv"; echo "$b" >> "$STATE/runs-b.tsv"
    awk -v a="${a%%$'\t'*}" -v b="${b%%$'\t'*}" 'BEGIN {printf "%.3f\n", b / a}' >> "$STATE/ratios.tsv"
  done
  stop_server
  printf '%s\t%s\n' "$name_a" "$(median "$STATE/runs-a.tsv")" | tee -a "$STATE/results.tsv"
  printf '%s\t%s\n' "$name_b" "$(median "$STATE/runs-b.tsv")" | tee -a "$STATE/results.tsv"
  printf '%s\t%s\n' "$label" "$(median "$STATE/ratios.tsv")" | tee -a "$STATE/paired.tsv"
}

: > "$STATE/results.tsv"; : > "$STATE/paired.tsv"
measure "native hyper" target/release/native-hello "127.0.0.1:$PORT"
measure "wasmtime serve (p2, fresh instance)" "$WASMTIME" serve -Scli --addr "127.0.0.1:$PORT" "$HELLO_P2"
measure "wasmtime serve (p2, reuse 128)" "$WASMTIME" serve -Scli --max-instance-reuse-count 128 --addr "127.0.0.1:$PORT" "$HELLO_P2"
measure "ledge (p2, fresh instance)" "$LEDGE" up -q -f "$HELLO_P2" --state-dir "$STATE/ledge" --listen "127.0.0.1:$PORT"
measure "ledge (p2, reuse 128)" "$LEDGE" up -q -f "$HELLO_P2" --state-dir "$STATE/ledge" --max-instance-reuse-count 128 --listen "127.0.0.1:$PORT"
measure "ledge (p3 spin-sdk 7, default reuse)" "$LEDGE" up -q -f "$HELLO_P3" --state-dir "$STATE/ledge" --listen "127.0.0.1:$PORT"

# The data tier, one operation per request, fresh instance per request. The KV-read bar rows
# use `kv-counter`, a guest as lean as hello-p2 (wit-bindgen against `wasi:keyvalue`, no SDK),
# loaded in alternation with hello-p2 on the same server (see measure_pair), at 64 clients for
# the throughput ratio and at 32 for the p99 bar. The spin-sdk 5 guest `data-p2` adds the same
# KV get next to its own no-op route, which splits the SDK's cost from the data tier's.
cat > "$STATE/data.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench-data"
[[trigger.http]]
route = "/hello/..."
component = "hello"
[component.hello]
source = "$PWD/$HELLO_P2"
[[trigger.http]]
route = "/lean/..."
component = "lean"
[component.lean]
source = "$PWD/$KV_P2"
key_value_stores = ["default"]
[[trigger.http]]
route = "/..."
component = "data"
[component.data]
source = "$PWD/$DATA_P2"
key_value_stores = ["default"]
sqlite_databases = ["default"]
allowed_outbound_hosts = ["redis://127.0.0.1:$REDIS_PORT"]
TOML
SEED="CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT);
INSERT OR REPLACE INTO items WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 10000) SELECT v, 'item ' || v FROM n;"
DATA_UP=("$LEDGE" up -q -f "$STATE/data.toml" --state-dir "$STATE/data" --listen "127.0.0.1:$PORT" --key-value greeting=hello)
measure_pair "KV get / hello, paired rounds (bar 0.70)" \
  "ledge hello beside the KV guest (p2, fresh instance)" /hello/ \
  "ledge KV get (wasi:keyvalue p2, fresh instance)" /lean/get/greeting "${DATA_UP[@]}"
CONNECTIONS=32 measure_pair "KV get / hello, 32 clients, paired rounds" \
  "ledge hello beside the KV guest, 32 clients (p2, fresh instance)" /hello/ \
  "ledge KV get, 32 clients (wasi:keyvalue p2, fresh instance)" /lean/get/greeting "${DATA_UP[@]}"
URL_PATH=/ping measure "ledge spin-sdk 5 no-op route (p2, fresh instance)" "${DATA_UP[@]}"
URL_PATH=/kv/default/greeting measure "ledge KV get (spin-sdk 5 p2, fresh instance)" "${DATA_UP[@]}"
URL_PATH=/sql/default WRK_SCRIPT=bench/wrk/select.lua measure "ledge SQLite indexed SELECT (spin-sdk 5 p2, fresh instance)" "${DATA_UP[@]}" --sqlite "$SEED"
URL_PATH=/kv/default/written WRK_SCRIPT=bench/wrk/set.lua measure "ledge KV set (spin-sdk 5 p2, fresh instance)" "${DATA_UP[@]}"
WRK_SCRIPT=bench/wrk/transaction.lua measure_pair "SQL 3-statement transaction / hello, paired rounds" \
  "ledge hello beside the transaction route (p2, fresh instance)" /hello/ \
  "ledge SQL transaction: BEGIN, UPDATE, SELECT, COMMIT (spin-sdk 5 p2, fresh instance)" /sql/default \
  "${DATA_UP[@]}" --sqlite "$SEED"
# Outbound Redis: a GET against a local redis-server of the run's own.
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
until redis-cli -p "$REDIS_PORT" set greeting hello >/dev/null 2>&1; do sleep 0.05; done
WRK_SCRIPT=bench/wrk/redis-get.lua measure_pair "outbound Redis GET / hello, paired rounds" \
  "ledge hello beside the Redis route (p2, fresh instance)" /hello/ \
  "ledge outbound Redis GET (spin-sdk 5 p2, fresh instance)" "/redis/127.0.0.1:$REDIS_PORT" \
  "${DATA_UP[@]}"

# The gateway: the p2 hello-world behind JWT auth (RS256) + a rate limit + CORS, and behind a
# response cache, against the same guest on an unguarded route of the same app. The token is
# signed by the test key in tests/fixtures/jwt (bench/jwt-token.txt, valid until 2100); the
# rate limit is set high enough never to refuse, so every request pays for the check.
cat > "$STATE/gateway.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench-gateway"
[[trigger.http]]
route = "/plain/..."
component = "hello"
[[trigger.http]]
route = "/guarded/..."
component = "hello"
[[trigger.http]]
route = "/cached/..."
component = "hello"
[component.hello]
source = "$PWD/$HELLO_P2"
[application.tool.ledge.authorizers.bench]
type = "jwt"
jwks = "$PWD/tests/fixtures/jwt/jwks.json"
issuer = "https://issuer.test"
audience = ["bench"]
algorithms = ["RS256"]
[application.tool.ledge.routes."/guarded/..."]
auth = "bench"
scopes = ["hello"]
rate_limit = { per_second = 1000000, burst = 1000000, per = "client" }
cors = { allow_origins = ["https://app.example"], allow_methods = ["GET"] }
[application.tool.ledge.routes."/cached/..."]
cache = { ttl_seconds = 3600 }
TOML
GATEWAY_UP=("$LEDGE" up -q -f "$STATE/gateway.toml" --state-dir "$STATE/gateway" --listen "127.0.0.1:$PORT")
# Both rows send the same request headers, so the ratio is the policies' cost alone; they are
# measured in alternation on one server (see measure_pair).
GATEWAY_HEADERS="Authorization: Bearer $(cat bench/jwt-token.txt)
Origin: https://app.example"
WRK_HEADERS=$GATEWAY_HEADERS measure_pair \
  "gateway: JWT + rate limit + CORS / no policy, paired rounds (bar 0.85)" \
  "ledge gateway: no policy (p2, fresh instance)" /plain/ \
  "ledge gateway: JWT + rate limit + CORS (p2, fresh instance)" /guarded/ "${GATEWAY_UP[@]}"
URL_PATH=/cached/ measure "ledge gateway: cache hit" "${GATEWAY_UP[@]}"

# Start-up: `ledge up` on the sample app to its first 200, compile cache warm (median of 5).
"$LEDGE" build -f spin.toml >/dev/null 2>&1
startup_ms=()
for run in 0 1 2 3 4 5; do
  begin=$(date +%s%N)
  "$LEDGE" up -q -f spin.toml --state-dir "$STATE/sample" --listen "127.0.0.1:$PORT" >"$STATE/startup.log" 2>&1 &
  pid=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/hello" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "ledge up exited before serving:"; cat "$STATE/startup.log"; exit 1; } >&2
    sleep 0.002
  done
  end=$(date +%s%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The first run fills the compile cache; it is not counted.
  [ "$run" = 0 ] || startup_ms+=($(( (end - begin) / 1000000 )))
done
startup=$(printf '%s\n' "${startup_ms[@]}" | sort -n | sed -n 3p)

{
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "Load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION on the same machine, median of $RUNS runs; $(date -u +%Y-%m-%d)"
  echo
  echo "| server | requests/s | p50 | p99 |"
  echo "|---|---:|---:|---:|"
  awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$STATE/results.tsv"
  echo
  awk -F'\t' '
    # ratio LABEL A B: the requests/s of row A over row B, when both were measured.
    function ratio(label, a, b) {
      if ((a in rps) && (b in rps)) printf "| %s | %.3f |\n", label, rps[a] / rps[b]
    }
    {rps[$1] = $2; p99[$1] = $4}
    END {
      printf "| ratio | value |\n|---|---:|\n"
      hello = "ledge (p2, fresh instance)"; sdk = "ledge spin-sdk 5 no-op route (p2, fresh instance)"
      ratio("ledge p2 fresh / native", hello, "native hyper")
      ratio("ledge p2 fresh / wasmtime serve fresh", hello, "wasmtime serve (p2, fresh instance)")
      ratio("ledge p2 reuse / native", "ledge (p2, reuse 128)", "native hyper")
      ratio("ledge p2 reuse / wasmtime serve reuse", "ledge (p2, reuse 128)", "wasmtime serve (p2, reuse 128)")
      ratio("ledge p3 / native", "ledge (p3 spin-sdk 7, default reuse)", "native hyper")
      kv32 = "ledge KV get, 32 clients (wasi:keyvalue p2, fresh instance)"
      if (kv32 in p99) printf "| KV get, 32 clients: p99 (bar 5 ms) | %s |\n", p99[kv32]
      ratio("spin-sdk 5 no-op / hello (cost of the SDK)", sdk, hello)
      ratio("spin-sdk 5: KV get / its no-op route", "ledge KV get (spin-sdk 5 p2, fresh instance)", sdk)
      ratio("spin-sdk 5: SQLite SELECT / its no-op route", "ledge SQLite indexed SELECT (spin-sdk 5 p2, fresh instance)", sdk)
      ratio("spin-sdk 5: KV set / its no-op route", "ledge KV set (spin-sdk 5 p2, fresh instance)", sdk)
      plain = "ledge gateway: no policy (p2, fresh instance)"
      ratio("gateway: JWT + rate limit + CORS / no policy", "ledge gateway: JWT + rate limit + CORS (p2, fresh instance)", plain)
      ratio("gateway: cache hit / no policy", "ledge gateway: cache hit", plain)
    }' "$STATE/results.tsv"
  awk -F'\t' '{printf "| %s | %s |\n", $1, $2}' "$STATE/paired.tsv"
  echo
  echo "ledge up to first 200 (sample app, warm compile cache, median of 5): ${startup} ms"
} | tee "$OUT"
