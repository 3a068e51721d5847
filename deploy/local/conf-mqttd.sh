#!/usr/bin/env bash
# conf-mqttd.sh CONF - point a generated aryz-mqttd config at the private
# broker of `make run`: 127.0.0.1:$MQ_PORT, user aryz-mqttd, password
# $MQ_PASS.  Called by deploy/local/up.sh after it copied the example.
set -euo pipefail
conf=${1:?usage: conf-mqttd.sh CONF}
: "${MQ_PORT:?MQ_PORT}" "${MQ_PASS:?MQ_PASS}"
sed -i -e "s|^  host = .*|  host = \"127.0.0.1\";|" \
       -e "s|^  port = .*|  port = $MQ_PORT;|" \
       -e "s|^  username = .*|  username = \"aryz-mqttd\";|" \
       -e "s|^  password = .*|  password = \"$MQ_PASS\";|" \
       "$conf"
