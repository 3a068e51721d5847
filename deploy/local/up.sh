#!/usr/bin/env bash
# up.sh - bring up a private aryz under ./var/: PostgreSQL and Mosquitto on
# 127.0.0.1, schema and reference data, every daemon.  Safe to run twice:
# what is already running is left alone.  `make stop` takes it down.
#
# Ports (override in the environment; defaults lie below the kernel's
# ephemeral range so test servers on random ports never take them):
# ARYZ_PG_PORT 15432,
# ARYZ_MQTT_PORT 11883, ARYZ_SMS_PORT 8080, ARYZ_API_PORT 8081.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VAR=$ROOT/var
BIN=$ROOT/build/bin
PG_PORT=${ARYZ_PG_PORT:-15432}
MQ_PORT=${ARYZ_MQTT_PORT:-11883}
SMS_PORT=${ARYZ_SMS_PORT:-8080}
API_PORT=${ARYZ_API_PORT:-8081}
DB="host=127.0.0.1 port=$PG_PORT dbname=aryz user=aryz"
KEEPALIVE="keepalives_idle=10 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=30000"

mkdir -p "$VAR/etc" "$VAR/log" "$VAR/run"
chmod 755 "$VAR"
# Passwords for the private broker, made once.
[ -f "$VAR/etc/mqtt-users" ] || {
  for u in aryz-mqttd dev-1 provider-1; do
    echo "$u:$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  done >"$VAR/etc/mqtt-users"
  chmod 600 "$VAR/etc/mqtt-users"
}
MQ_USERS=$(tr '\n' ' ' <"$VAR/etc/mqtt-users")
mqpass() { grep "^$1:" "$VAR/etc/mqtt-users" | cut -d: -f2; }

# A port taken by someone else: say so plainly instead of a server log.
port_busy() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$1" ] && kill -0 "$(head -1 "$1")" 2>/dev/null; }
if ! running "$VAR/pg/data/postmaster.pid" && port_busy "$PG_PORT"; then
  echo "port $PG_PORT is in use by another program; set ARYZ_PG_PORT" >&2; exit 1
fi
if ! running "$VAR/mqtt/mosquitto.pid" && port_busy "$MQ_PORT"; then
  echo "port $MQ_PORT is in use by another program; set ARYZ_MQTT_PORT" >&2; exit 1
fi
"$ROOT/deploy/local/servers.sh" pg-start "$VAR" "$PG_PORT"
MQ_USERS=$MQ_USERS "$ROOT/deploy/local/servers.sh" mq-start "$VAR" "$MQ_PORT"
"$BIN/aryzctl" -d "$DB" -s "$ROOT/sql" migrate
"$BIN/aryzctl" -d "$DB" -s "$ROOT/sql" load-reference >/dev/null
echo "reference data loaded"

# No SMSC on a laptop: a sink stands in for Kannel's sendsms and writes
# every outgoing SMS to var/log/sms-out.log (skipped if 13013 is taken,
# e.g. by a real Kannel).
if ! running "$VAR/run/aryz-sms-sink.pid" && ! port_busy 13013; then
  nohup /usr/bin/python3 "$ROOT/deploy/local/sms-sink.py" 13013 "$VAR/log/sms-out.log" \
    >>"$VAR/log/sms-sink.log" 2>&1 &
  echo $! >"$VAR/run/aryz-sms-sink.pid"
  echo "started SMS sink on 127.0.0.1:13013 (outgoing SMS: var/log/sms-out.log)"
fi

RUNUSER=""
[ "$(id -u)" -eq 0 ] && RUNUSER='user = "nobody";'
for d in smsd mqttd routerd escalated apid; do
  conf=$VAR/etc/aryz-$d.conf
  sed -e "s|^  conninfo = .*|  conninfo = \"$DB $KEEPALIVE\";|" \
      -e "s|^# user = .*|$RUNUSER|" \
      "$ROOT/config/aryz-$d.conf" >"$conf"
  [ -x "$ROOT/deploy/local/conf-$d.sh" ] && \
    SMS_PORT=$SMS_PORT API_PORT=$API_PORT MQ_PORT=$MQ_PORT MQ_PASS=$(mqpass aryz-mqttd) \
    "$ROOT/deploy/local/conf-$d.sh" "$conf"
  chmod 644 "$conf"
  pidf=$VAR/run/aryz-$d.pid
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "aryz-$d already running (pid $(cat "$pidf"))"
    continue
  fi
  "$BIN/aryz-$d" --check-config -c "$conf" >/dev/null
  nohup "$BIN/aryz-$d" -c "$conf" >>"$VAR/log/aryz-$d.log" 2>&1 &
  echo $! >"$pidf"
  echo "started aryz-$d (pid $!, log var/log/aryz-$d.log)"
done

cat <<MSG

aryz is up.  PostgreSQL 127.0.0.1:$PG_PORT (db aryz), Mosquitto 127.0.0.1:$MQ_PORT.

Send a first SMS (as Kannel's sms-service would):
  curl 'http://127.0.0.1:$SMS_PORT/sms/kannel?from=%2B996555123456&to=1212&id=demo-1&text=Suzak+musor+3+kun+alynbady'

Walk a USSD session (Africa's Talking-style callback):
  curl -d 'sessionId=s1&serviceCode=*1212%23&phoneNumber=%2B996555123456&networkCode=43709&text=' http://127.0.0.1:$SMS_PORT/ussd

Publish from a device over MQTT:
  mosquitto_pub -h 127.0.0.1 -p $MQ_PORT -u dev-1 -P $(mqpass dev-1) -i dev-1 -q 1 \\
    -t aryz/v1/41703220856000/lighting/in/dev-1 \\
    -m '{"v":1,"msg_id":"m1","text":"Lamp 12 is out"}'

Outgoing SMS (sink):     tail -f var/log/sms-out.log
Dashboard and JSON API:  http://127.0.0.1:$API_PORT/
Queues:                  $BIN/aryzctl -d "$DB" status
Stop everything:         make stop
MSG
