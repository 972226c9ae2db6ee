#!/usr/bin/env bash
# Fleet bench: `carebridge fleet-sim` with HOMES simulated homes (default
# 2,000) against a real Mosquitto, then against a two-node RabbitMQ cluster
# (MQTT plugin, mirrored queues). Prints, per broker: messages/s acknowledged,
# connections, gateway-side memory per home, the broker's CPU (all its
# processes, % of one core) and fleet-sim's summary (latencies, anything lost).
#
#   benches/fleet.sh                 # 2,000 homes, 60 s each, release build
#   HOMES=200 SECS=20 PROFILE=debug benches/fleet.sh
#
# Needs mosquitto and rabbitmq-server (tests/peers.sh installs them).
set -euo pipefail
HOMES=${HOMES:-2000}
SECS=${SECS:-60}
PROFILE=${PROFILE:-release}
OUTAGE=${OUTAGE:-$((SECS / 3))s+5s}
cd "$(dirname "$0")/.."
if [ "$PROFILE" = release ]; then cargo build -q --release; else cargo build -q; fi
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE/carebridge
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 900); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0))); done; echo $t; }
HZ=$(getconf CLK_TCK)

run_sim() { # NAME URL PID...
  local name=$1 url=$2; shift 2
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(cpu_ticks "$@")
  "$BIN" fleet-sim --url "$url" --homes "$HOMES" --duration "${SECS}s" --jitter 5s \
    --outage "$OUTAGE" --drain 30s --json --id-prefix "b$name" > "$WORK/$name.json" 2> "$WORK/$name.log" &
  local sim=$!
  wait $sim
  t1=$(date +%s.%N); c1=$(cpu_ticks "$@")
  echo "== $name: $HOMES homes, ${SECS}s, outage $OUTAGE ($PROFILE build)"
  echo "   connections (homes connected at the peak, + 1 checker): $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connected_peak"])' "$WORK/$name.json")"
  echo "   broker CPU: $(echo "scale=1; 100 * ($c1 - $c0) / $HZ / ($t1 - $t0)" | bc) % of one core"
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("   " + ", ".join(f"{k}={v}" for k,v in s.items()))' "$WORK/$name.json"
}

# --- Mosquitto
MQP=$(free_port)
printf "listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\nuser root\nlog_dest none\n" "$MQP" > "$WORK/mq.conf"
mosquitto -c "$WORK/mq.conf" & PIDS+=($!); MQPID=$!
wait_port "$MQP"
run_sim mosquitto "mqtt://127.0.0.1:$MQP" "$MQPID"
kill "$MQPID"

# --- RabbitMQ, two nodes
export HOME=$WORK
printf "FLEETBENCH%s" "$RANDOM" > "$WORK/.erlang.cookie"; chmod 400 "$WORK/.erlang.cookie"
start_node() { # SHORT -> sets NODE_MQTT
  local d=$WORK/$1 amqp dist; mkdir -p "$d"
  amqp=$(free_port); dist=$(free_port); NODE_MQTT=$(free_port)
  printf "listeners.tcp.local = 127.0.0.1:%s\nmqtt.listeners.tcp.local = 127.0.0.1:%s\nmqtt.allow_anonymous = true\nloopback_users = none\n" "$amqp" "$NODE_MQTT" > "$d/rabbitmq.conf"
  echo "[rabbitmq_mqtt]." > "$d/enabled_plugins"
  RABBITMQ_NODENAME=$1@localhost RABBITMQ_NODE_PORT=$amqp RABBITMQ_DIST_PORT=$dist \
    RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf \
    RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins /usr/lib/rabbitmq/bin/rabbitmq-server > "$d/out" 2>&1 &
  PIDS+=($!)
  wait_port "$NODE_MQTT"
}
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
start_node fbencha; PA=$NODE_MQTT
start_node fbenchb; PB=$NODE_MQTT
$CTL -q -n fbenchb@localhost stop_app; $CTL -q -n fbenchb@localhost join_cluster fbencha@localhost; $CTL -q -n fbenchb@localhost start_app
wait_port "$PB"
$CTL -q -n fbencha@localhost set_policy ha-all ".*" '{"ha-mode":"all","ha-sync-mode":"automatic"}'
BA=$($CTL -q -n fbencha@localhost eval 'list_to_integer(os:getpid()).'); BB=$($CTL -q -n fbenchb@localhost eval 'list_to_integer(os:getpid()).')
PIDS+=("$BA" "$BB")
run_sim rabbitmq-cluster "mqtt://127.0.0.1:$PA,mqtt://127.0.0.1:$PB" "$BA" "$BB"
