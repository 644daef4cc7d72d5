#!/usr/bin/env bash
# Benchmarks ledge against its baselines, all measured in this one run on this machine:
#   native hyper hello-world; `wasmtime serve` 48.0.8 and ledge on the same p2 component
#   (fresh instance per request, and reuse 128) and on the same p3 spin-sdk 7 component (each
#   side's defaults, and both with reuse 1), loaded in alternation; the data tier, the gateway,
#   resident memory beside `wasmtime serve`, start-up, and the first request of big guests
#   (JavaScript, Python) on a cold and a warm compile cache. Every row has its p50, p99 and the
#   server's CPU time per request; the last table holds issue 15's bars, each met or not.
# Writes bench/last-run.md (copy the figures into BENCHMARKS.md).
#
# Usage: bench/run.sh   (DURATION=10s CONNECTIONS=64 THREADS=2 RUNS=3 to change the load,
#                       DURATION in seconds; MEMORY_LOAD=60 the seconds of load before the
#                       second memory reading; ONLY='regex' measures only the rows whose name
#                       matches)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
CACHE=bench/.cache
WASMTIME=$CACHE/wasmtime/bin/wasmtime
MEMORY_LOAD=${MEMORY_LOAD:-60}
OUT=bench/last-run.md
PORT=38080
PORT_B=38081
CLK_TCK=$(getconf CLK_TCK)

source bench/lib.sh
need wrk redis-server strace
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

# start_on PORT COMMAND...: runs it in the background (SERVER holds its pid) until it answers
# on PORT.
start_on() {
  local port=$1; shift
  "$@" >/dev/null 2>&1 &
  SERVER=$!
  for _ in $(seq 1 200); do
    curl -sS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on $port did not come up: $*" >&2; return 1
}

stop() {
  kill "$@"; wait "$@" 2>/dev/null || true
}

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# load_cpu URL PID: one `load` of URL, and as a fourth column the server PID's CPU time per
# request in microseconds (its CPU time over the run / the run's requests).
load_cpu() {
  local before row after
  before=$(cpu_ticks "$2"); row=$(load "$1"); after=$(cpu_ticks "$2")
  awk -v row="$row" -v ticks=$((after - before)) -v hz="$CLK_TCK" -v secs="${DURATION%s}" \
    'BEGIN {split(row, f, "\t"); printf "%s\t%.0f\n", row, ticks / hz * 1e6 / (f[1] * secs)}'
}

# record NAME RUNS_FILE: the row NAME with the median of each column of its runs.
record() {
  printf '%s\t%s\n' "$1" "$(median "$2")" | tee -a "$STATE/results.tsv"
}

# measure NAME COMMAND...: serve, warm up, load with wrk RUNS times, record the median
# requests/s, p50, p99 and CPU per request of the runs (this machine's noise is about 10% run
# to run, more in the tail).
measure() {
  local name=$1; shift
  [[ $name =~ ${ONLY:-.} ]] || return 0
  local url="http://127.0.0.1:$PORT${URL_PATH:-/}"
  start_on "$PORT" "$@"
  load "$url" 2s >/dev/null
  : > "$STATE/runs.tsv"
  for _ in $(seq 1 "$RUNS"); do load_cpu "$url" "$SERVER" >> "$STATE/runs.tsv"; done
  stop "$SERVER"
  record "$name" "$STATE/runs.tsv"
}

# alternate LABEL NAME_A URL_A PID_A NAME_B URL_B PID_B: loads A and B in alternation (A, B, A,
# B, ...) so that drift on this shared machine hits both alike. Records both rows as `measure`
# does, and under LABEL the median of the per-round B/A throughput ratios.
alternate() {
  local label=$1 name_a=$2 url_a=$3 pid_a=$4 name_b=$5 url_b=$6 pid_b=$7 a b
  load "$url_a" 2s >/dev/null; load "$url_b" 2s >/dev/null
  : > "$STATE/runs-a.tsv"; : > "$STATE/runs-b.tsv"; : > "$STATE/ratios.tsv"
  for _ in $(seq 1 "$RUNS"); do
    a=$(load_cpu "$url_a" "$pid_a"); b=$(load_cpu "$url_b" "$pid_b")
    echo "$a" >> "$STATE/runs-a.tsv"; echo "$b" >> "$STATE/runs-b.tsv"
    awk -v a="${a%%$'\t'*}" -v b="${b%%$'\t'*}" 'BEGIN {printf "%.3f\n", b / a}' >> "$STATE/ratios.tsv"
  done
  record "$name_a" "$STATE/runs-a.tsv"
  record "$name_b" "$STATE/runs-b.tsv"
  printf '%s\t%s\n' "$label" "$(median "$STATE/ratios.tsv")" | tee -a "$STATE/paired.tsv"
}

# measure_pair LABEL NAME_A PATH_A NAME_B PATH_B COMMAND...: two routes of one server, loaded
# in alternation (see `alternate`).
measure_pair() {
  local label=$1 name_a=$2 path_a=$3 name_b=$4 path_b=$5; shift 5
  [[ "$name_a $name_b" =~ ${ONLY:-.} ]] || return 0
  start_on "$PORT" "$@"
  alternate "$label" "$name_a" "http://127.0.0.1:$PORT$path_a" "$SERVER" \
    "$name_b" "http://127.0.0.1:$PORT$path_b" "$SERVER"
  stop "$SERVER"
}

# measure_servers LABEL NAME_A A NAME_B B: two servers, the commands in the arrays named A and
# B (`@PORT@` in them stands for the port each listens on), loaded in alternation (see
# `alternate`): the baselines' rows, so that their ratios come from the same minutes.
measure_servers() {
  local label=$1 name_a=$2 name_b=$4 pid_a
  local -n command_a=$3 command_b=$5
  [[ "$name_a $name_b" =~ ${ONLY:-.} ]] || return 0
  start_on "$PORT" "${command_a[@]//@PORT@/$PORT}"; pid_a=$SERVER
  start_on "$PORT_B" "${command_b[@]//@PORT@/$PORT_B}"
  alternate "$label" "$name_a" "http://127.0.0.1:$PORT/" "$pid_a" \
    "$name_b" "http://127.0.0.1:$PORT_B/" "$SERVER"
  stop "$pid_a" "$SERVER"
}

: > "$STATE/results.tsv"; : > "$STATE/paired.tsv"
measure "native hyper" target/release/native-hello "127.0.0.1:$PORT"

# ledge against `wasmtime serve` on the same component, with the same instance-reuse settings,
# each pair loaded in alternation.
WASMTIME_P2=("$WASMTIME" serve -Scli --addr "127.0.0.1:@PORT@" "$HELLO_P2")
LEDGE_P2=("$LEDGE" up -q -f "$HELLO_P2" --state-dir "$STATE/ledge" --listen "127.0.0.1:@PORT@")
measure_servers "ledge / wasmtime serve, p2 fresh instance, paired rounds" \
  "wasmtime serve (p2, fresh instance)" WASMTIME_P2 "ledge (p2, fresh instance)" LEDGE_P2
WASMTIME_P2_REUSE=("${WASMTIME_P2[@]}" --max-instance-reuse-count 128)
LEDGE_P2_REUSE=("${LEDGE_P2[@]}" --max-instance-reuse-count 128)
measure_servers "ledge / wasmtime serve, p2 reuse 128, paired rounds" \
  "wasmtime serve (p2, reuse 128)" WASMTIME_P2_REUSE "ledge (p2, reuse 128)" LEDGE_P2_REUSE
WASMTIME_P3=("$WASMTIME" serve -Scli -Sp3 -Wcomponent-model-async --addr "127.0.0.1:@PORT@" "$HELLO_P3")
LEDGE_P3=("$LEDGE" up -q -f "$HELLO_P3" --state-dir "$STATE/ledge" --listen "127.0.0.1:@PORT@")
measure_servers "ledge / wasmtime serve, p3 each side's default reuse, paired rounds" \
  "wasmtime serve (p3 spin-sdk 7, default reuse)" WASMTIME_P3 "ledge (p3 spin-sdk 7, default reuse)" LEDGE_P3
WASMTIME_P3_ONCE=("${WASMTIME_P3[@]}" --max-instance-reuse-count 1)
LEDGE_P3_ONCE=("${LEDGE_P3[@]}" --max-instance-reuse-count 1)
measure_servers "ledge / wasmtime serve, p3 reuse 1, paired rounds" \
  "wasmtime serve (p3 spin-sdk 7, reuse 1)" WASMTIME_P3_ONCE "ledge (p3 spin-sdk 7, reuse 1)" LEDGE_P3_ONCE
CONNECTIONS=32 measure "ledge (p3 spin-sdk 7, default reuse), 32 clients" "${LEDGE_P3[@]//@PORT@/$PORT}"

# Resident memory serving the p2 hello, beside `wasmtime serve` in the same run: 2 s after the
# first request (at rest), and 1 s after MEMORY_LOAD seconds of load at 32 clients.
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
: > "$STATE/memory.tsv"
for side in WASMTIME_P2 LEDGE_P2; do
  [[ "memory $side" =~ ${ONLY:-.} ]] || continue
  declare -n command=$side
  start_on "$PORT" "${command[@]//@PORT@/$PORT}"
  sleep 2; rest=$(rss_mb "$SERVER")
  CONNECTIONS=32 load "http://127.0.0.1:$PORT/" "${MEMORY_LOAD}s" >/dev/null
  sleep 1; loaded=$(rss_mb "$SERVER")
  stop "$SERVER"
  printf '%s\t%s\t%s\n' "$side" "$rest" "$loaded" >> "$STATE/memory.tsv"
  unset -n command
done

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
# Reads and acknowledged writes against the same guest's no-op route (which ignores the
# method and body), in alternation on one server, at 64 clients.
WRK_SCRIPT=bench/wrk/select.lua measure_pair "spin-sdk 5: SQLite indexed SELECT / its no-op route, paired rounds" \
  "ledge spin-sdk 5 no-op route beside SELECT" /ping \
  "ledge SQLite indexed SELECT (spin-sdk 5 p2, fresh instance)" /sql/default "${DATA_UP[@]}" --sqlite "$SEED"
WRK_SCRIPT=bench/wrk/set.lua measure_pair "spin-sdk 5: KV set / its no-op route, paired rounds" \
  "ledge spin-sdk 5 no-op route beside KV set" /ping \
  "ledge KV set (spin-sdk 5 p2, fresh instance)" /kv/default/written "${DATA_UP[@]}"
WRK_SCRIPT=bench/wrk/insert.lua measure_pair "spin-sdk 5: SQLite INSERT / its no-op route, paired rounds" \
  "ledge spin-sdk 5 no-op route beside INSERT" /ping \
  "ledge SQLite INSERT (spin-sdk 5 p2, fresh instance)" /sql/default "${DATA_UP[@]}" --sqlite "$SEED"

# Syncs per acknowledged write: `strace -c` counts the server's fsync and fdatasync calls over
# a 5 s KV-set load (slowed by the tracing; only the counts matter).
: > "$STATE/syncs.tsv"
for write in "KV set:/kv/default/written:set" "SQLite INSERT:/sql/default:insert"; do
  IFS=: read -r what path script <<<"$write"
  [[ "syncs $what" =~ ${ONLY:-.} ]] || continue
  start_on "$PORT" "${DATA_UP[@]}" --sqlite "$SEED"
  strace -f -c -e trace=fsync,fdatasync -o "$STATE/strace.txt" -p "$SERVER" 2>/dev/null &
  tracer=$!; sleep 1
  report=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s "bench/wrk/$script.lua" "http://127.0.0.1:$PORT$path")
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  stop "$SERVER"
  requests=$(awk '/requests in/ {print $1}' <<<"$report")
  failed=$(awk '/Non-2xx/ {print $NF}' <<<"$report")
  syncs=$(awk '$NF == "fsync" || $NF == "fdatasync" {n += $4} END {print n + 0}' "$STATE/strace.txt")
  printf '%s\t%s\t%s\n' "$what" "$((requests - ${failed:-0}))" "$syncs" >> "$STATE/syncs.tsv"
done
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

# answers_200 PORT PATH: whether one GET of PATH on the loopback PORT answers 200. Through
# bash's /dev/tcp, so that polling forks nothing: a curl process per try (one every 2 ms) took
# the CPU of this 2-core machine from the server whose start it was timing.
answers_200() {
  local status=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
  read -r _ status _ <&3 || true
  exec 3<&- 3>&-
  [ "$status" = 200 ]
}

# ms_until "PROBE ARGS..." COMMAND...: starts COMMAND (its output in startup.log) and prints
# the milliseconds until PROBE (a function, run with its ARGS) succeeds. The clock is bash's
# own and the pause between tries a `read -t` on a pipe that never speaks, so that the wait
# forks nothing either.
ms_until() {
  local -a probe; read -ra probe <<<"$1"; shift
  local begin end pid
  [ -p "$STATE/never" ] || mkfifo "$STATE/never"
  exec 4<>"$STATE/never"
  begin=$EPOCHREALTIME
  "$@" >"$STATE/startup.log" 2>&1 &
  pid=$!
  until "${probe[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "exited before ${probe[*]}: $*"; cat "$STATE/startup.log"; exit 1; } >&2
    read -rt 0.001 -u 4 _ || true
  done
  end=$EPOCHREALTIME
  exec 4<&-
  stop "$pid"
  awk -v begin="$begin" -v end="$end" 'BEGIN {printf "%.0f\n", (end - begin) * 1000}'
}

# first_200 PORT PATH COMMAND...: the milliseconds from starting COMMAND until PATH on PORT
# answers 200.
first_200() {
  local port=$1 path=$2; shift 2
  ms_until "answers_200 $port $path" "$@"
}

# logs_optimized: whether the server's log says that optimized code took over (read by bash
# itself, forking nothing).
logs_optimized() {
  local line
  while read -r line; do
    [[ $line == *"new requests run the optimized code"* ]] && return 0
  done <"$STATE/startup.log"
  return 1
}

# Start-up: `ledge up` on the sample app to its first 200, compile cache warm (median of 5;
# the first start fills the cache and is not counted).
"$LEDGE" build -f spin.toml >/dev/null 2>&1
SAMPLE_UP=("$LEDGE" up -q -f spin.toml --state-dir "$STATE/sample" --listen "127.0.0.1:$PORT")
first_200 "$PORT" /hello "${SAMPLE_UP[@]}" >/dev/null
startup=$(for _ in 1 2 3 4 5; do first_200 "$PORT" /hello "${SAMPLE_UP[@]}"; done | sort -n | sed -n 3p)

# Big guests: the JavaScript component (componentize-js, built as the tests build it) and the
# Python one (componentize-py), each to its first 200 on a cold compile cache (a new state
# dir) and then on the warm one (the same state dir, median of 3).
if [ ! -f components/kv-js/dist/kv-js.wasm ]; then
  (cd components/kv-js && npm ci --no-audit --no-fund >/dev/null && npm run build >/dev/null)
fi
if [ ! -f target/py/shows_py.wasm ]; then
  [ -x target/py-venv/bin/python ] || python3 -m venv target/py-venv
  target/py-venv/bin/python -m pip install -q -r components/shows-py/requirements.txt
  mkdir -p target/py
  (cd components/shows-py && VIRTUAL_ENV=$PWD/../../target/py-venv ../../target/py-venv/bin/componentize-py \
    -w spin:up/http-trigger@4.1.0 componentize app -o ../../target/py/shows_py.wasm)
fi
: > "$STATE/big.tsv"
for guest in "JavaScript:$PWD/components/kv-js/dist/kv-js.wasm:/js" \
             "Python:$PWD/target/py/shows_py.wasm:/shows"; do
  IFS=: read -r language wasm path <<<"$guest"
  [[ "big $language" =~ ${ONLY:-.} ]] || continue
  cat > "$STATE/big.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench-big"
[[trigger.http]]
route = "$path/..."
component = "big"
[component.big]
source = "$wasm"
key_value_stores = ["default"]
sqlite_databases = ["default"]
TOML
  BIG_UP=("$LEDGE" up -q -f "$STATE/big.toml" --state-dir "$STATE/big-$language" --listen "127.0.0.1:$PORT"
          --sqlite "@migrations/001_shows.sql")
  # Cold: served by the baseline compiler's code, then again waiting for the optimized code
  # (`--baseline-compile-above off`); once more until the optimized code takes over (which
  # also fills the cache), then warm.
  cold=$(first_200 "$PORT" "$path" "${BIG_UP[@]}")
  rm -rf "$STATE/big-$language"
  optimized_only=$(first_200 "$PORT" "$path" "${BIG_UP[@]}" --baseline-compile-above off)
  rm -rf "$STATE/big-$language"
  optimized_after=$(ms_until logs_optimized "${BIG_UP[@]}")
  warm=$(for _ in 1 2 3; do first_200 "$PORT" "$path" "${BIG_UP[@]}"; done | sort -n | sed -n 2p)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$language" "$(( $(stat -c %s "$wasm") / 1048576 ))" "$cold" "$warm" \
    "$optimized_only" "$optimized_after" >> "$STATE/big.tsv"
done

# The report: every row, the ratios, and issue 15's bars with their figures.
{
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "Load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION on the same machine, median of $RUNS runs; $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"
  echo
  echo "| server | requests/s | p50 | p99 | server CPU / request |"
  echo "|---|---:|---:|---:|---:|"
  awk -F'\t' '{printf "| %s | %s | %s | %s | %s us |\n", $1, $2, $3, $4, $5}' "$STATE/results.tsv"
  echo
  echo "| ratio | value |"
  echo "|---|---:|"
  awk -F'\t' '
    # ratio LABEL A B: the requests/s of row A over row B, when both were measured.
    function ratio(label, a, b) {
      if ((a in rps) && (b in rps)) printf "| %s | %.3f |\n", label, rps[a] / rps[b]
    }
    {rps[$1] = $2}
    END {
      hello = "ledge (p2, fresh instance)"
      ratio("ledge p2 fresh / native", hello, "native hyper")
      ratio("ledge p2 reuse / native", "ledge (p2, reuse 128)", "native hyper")
      ratio("ledge p3 / native", "ledge (p3 spin-sdk 7, default reuse)", "native hyper")
      ratio("spin-sdk 5 no-op / hello (cost of the SDK)", "ledge spin-sdk 5 no-op route (p2, fresh instance)", hello)
      ratio("spin-sdk 5: KV get / its no-op route", "ledge KV get (spin-sdk 5 p2, fresh instance)", "ledge spin-sdk 5 no-op route (p2, fresh instance)")
      plain = "ledge gateway: no policy (p2, fresh instance)"
      ratio("gateway: cache hit / no policy", "ledge gateway: cache hit", plain)
    }' "$STATE/results.tsv"
  awk -F'\t' '{printf "| %s | %s |\n", $1, $2}' "$STATE/paired.tsv"
  echo
  echo "| resident memory, p2 hello | at rest | after ${MEMORY_LOAD} s of load (32 clients) |"
  echo "|---|---:|---:|"
  awk -F'\t' '{printf "| %s | %s MB | %s MB |\n", $1 == "LEDGE_P2" ? "ledge up" : "wasmtime serve", $2, $3}' "$STATE/memory.tsv"
  echo
  echo "| acknowledged writes (5 s, traced) | acknowledged | fsync + fdatasync calls |"
  echo "|---|---:|---:|"
  awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$STATE/syncs.tsv"
  echo
  echo "| big guest | size | first 200, cold cache | cold, optimized code only | optimized code serves, cold | first 200, warm cache |"
  echo "|---|---:|---:|---:|---:|---:|"
  awk -F'\t' '{printf "| %s | %s MB | %s ms | %s ms | %s ms | %s ms |\n", $1, $2, $3, $5, $6, $4}' "$STATE/big.tsv"
  echo
  echo "ledge up to first 200 (sample app, warm compile cache, median of 5): ${startup} ms"
  echo
  echo "### Issue 15's bars"
  echo
  echo "| bar | figure | met |"
  echo "|---|---:|---|"
  cat "$STATE/results.tsv" <(sed 's/^/paired\t/' "$STATE/paired.tsv") \
    <(sed 's/^/memory\t/' "$STATE/memory.tsv") <(sed 's/^/syncs\t/' "$STATE/syncs.tsv") \
    <(sed 's/^/big\t/' "$STATE/big.tsv") | awk -F'\t' -v startup="$startup" '
    $1 == "paired" {paired[$2] = $3; next}
    $1 == "memory" {rest[$2] = $3; loaded[$2] = $4; next}
    $1 == "syncs" {acks[$2] = $3; syncs[$2] = $4; next}
    $1 == "big" {cold[$2] = $4; warm[$2] = $5; next}
    {p99[$1] = $4 + 0; cpu[$1] = $5}
    # bar TEXT FIGURE MET: one row, when FIGURE was measured.
    function bar(text, figure, met) {
      if (figure != "") printf "| %s | %s | %s |\n", text, figure, met ? "met" : "NOT met"
    }
    function at_least(label, floor) {
      if (label in paired) bar(label " >= " floor, paired[label], paired[label] >= floor)
    }
    END {
      at_least("ledge / wasmtime serve, p3 each side'"'"'s default reuse, paired rounds", 1.3)
      at_least("ledge / wasmtime serve, p3 reuse 1, paired rounds", 1.3)
      p3 = "ledge (p3 spin-sdk 7, default reuse), 32 clients"
      if (p3 in p99) bar("p3 p99 at 32 clients < 5 ms", p99[p3] " ms", p99[p3] < 5)
      at_least("ledge / wasmtime serve, p2 fresh instance, paired rounds", 3.0)
      at_least("ledge / wasmtime serve, p2 reuse 128, paired rounds", 1.2)
      if ("ledge (p2, fresh instance)" in cpu) bar("p2 fresh: server CPU per request <= 50 us", cpu["ledge (p2, fresh instance)"] " us", cpu["ledge (p2, fresh instance)"] <= 50)
      if ("ledge (p2, reuse 128)" in cpu) bar("p2 reuse 128: server CPU per request <= 25 us", cpu["ledge (p2, reuse 128)"] " us", cpu["ledge (p2, reuse 128)"] <= 25)
      bar("ledge up to first 200, warm cache <= 15 ms", startup " ms", startup <= 15)
      if (("LEDGE_P2" in rest) && ("WASMTIME_P2" in rest)) {
        r = rest["LEDGE_P2"] / rest["WASMTIME_P2"]; l = loaded["LEDGE_P2"] / loaded["WASMTIME_P2"]
        bar("RSS at rest <= 1.3x wasmtime serve", sprintf("%.2fx", r), r <= 1.3)
        bar("RSS after load <= 1.5x wasmtime serve", sprintf("%.2fx", l), l <= 1.5)
      }
      if ("JavaScript" in cold) {
        bar("JavaScript first 200, cold cache <= 2 s", cold["JavaScript"] " ms", cold["JavaScript"] <= 2000)
        bar("JavaScript first 200, warm cache <= 100 ms", warm["JavaScript"] " ms", warm["JavaScript"] <= 100)
      }
      at_least("spin-sdk 5: KV set / its no-op route, paired rounds", 0.8)
      at_least("spin-sdk 5: SQLite INSERT / its no-op route, paired rounds", 0.8)
      # No sync at all means the count missed them (or the writes were not durable).
      for (what in acks) bar(what ": fewer syncs than acknowledged writes, and some", syncs[what] " syncs / " acks[what] " writes", syncs[what] > 0 && syncs[what] < acks[what])
      at_least("spin-sdk 5: SQLite indexed SELECT / its no-op route, paired rounds", 0.8)
    }'
} | tee "$OUT"
