#!/bin/sh
# conf-apid.sh CONF - adapt the generated aryz-apid config of `make run`:
# listen on 127.0.0.1:$API_PORT and enable staff actions with a local token
# (made once, kept in var/etc/api-token next to CONF).
set -eu
conf=$1
: "${API_PORT:=8081}"
tokfile=$(dirname "$conf")/api-token
[ -f "$tokfile" ] || {
  head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tokfile"
  chmod 600 "$tokfile"
}
tok=$(cat "$tokfile")
sed -i -e "s|^  listen = .*|  listen = \"127.0.0.1\";|" \
       -e "s|^  port = .*|  port = $API_PORT;|" \
       -e "s|^  token = .*|  token = \"$tok\";|" "$conf"
echo "aryz-apid: staff token in $tokfile"
