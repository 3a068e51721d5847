# daemons/apid -> aryz-apid
$(eval $(call daemon_rule,apid,aryz-apid))
