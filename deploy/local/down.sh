#!/usr/bin/env bash
# down.sh - stop what up.sh started, by the PIDs it recorded.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VAR=$ROOT/var
for f in "$VAR"/run/aryz-*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $(basename "$f" .pid)"
  fi
  rm -f "$f"
done
"$ROOT/deploy/local/servers.sh" mq-stop "$VAR" && echo "stopped mosquitto"
"$ROOT/deploy/local/servers.sh" pg-stop "$VAR" && echo "stopped postgresql"
