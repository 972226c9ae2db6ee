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
# tests/metrics.rs installs prometheus-client and tests/arc.rs pysiaalarm (PyPI)
# into venvs under target/ themselves; both need python3-venv.
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

# tests/arc.rs: pysiaalarm (PyPI, the SIA DC-09 receiver) as the alarm
# receiving centre, in a venv of its own (the test installs it there itself
# when this did not run).
ARC_VENV="${CAREBRIDGE_ARC_VENV:-$HOME/.cache/carebridge/py-arc}"
if ! "$ARC_VENV/bin/python" -c 'import pysiaalarm' >/dev/null 2>&1; then
  echo "== installing pysiaalarm into $ARC_VENV"
  python3 -m venv "$ARC_VENV"
  "$ARC_VENV/bin/pip" install -q pysiaalarm==3.2.2
fi
