# daemons/smsd -> aryz-smsd
$(eval $(call daemon_rule,smsd,aryz-smsd))
