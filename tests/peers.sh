#!/usr/bin/env bash
# Installs the real peers the tests talk to (Debian packages), once.
# Sourced by tests/all.sh; safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# tests/clock_step.rs steps the wall clock of a running carebridge (libfaketime).
command -v faketime >/dev/null 2>&1 || need+=(faketime)
# tests/fleet_cluster.rs runs a two-node RabbitMQ cluster (MQTT plugin).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
# tests/metrics.rs installs prometheus-client (PyPI) into a venv under target/.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)

if ((${#need[@]})); then
  echo "== installing test peers: ${need[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's package may start a system Mosquitto on 1883; tests use their own
# brokers on free ports, so it is harmless, but stop it where we can.
if command -v service >/dev/null 2>&1; then service mosquitto stop >/dev/null 2>&1 || true; fi
