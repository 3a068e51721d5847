# daemons/mqttd -> aryz-mqttd
$(eval $(call daemon_rule,mqttd,aryz-mqttd))
