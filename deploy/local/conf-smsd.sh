#!/usr/bin/env bash
# conf-smsd.sh CONF - adapt the generated aryz-smsd config for `make run`:
# listen on 127.0.0.1:$SMS_PORT and tell Kannel (if one is put in front)
# to send delivery reports to the same port.  Called by deploy/local/up.sh.
set -euo pipefail
conf=$1
port=${SMS_PORT:-8080}
sed -i -e "s|^  port = [0-9]*;|  port = $port;|" \
       -e "s|^  listen = .*|  listen = \"127.0.0.1\";|" \
       -e "s|^  dlr_url = .*|  dlr_url = \"http://127.0.0.1:$port/dlr\";|" "$conf"
grep -q "^  port = $port;" "$conf" || { echo "conf-smsd.sh: could not set the port in $conf" >&2; exit 1; }
