# daemons/routerd -> aryz-routerd
$(eval $(call daemon_rule,routerd,aryz-routerd))
