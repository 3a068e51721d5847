# daemons/escalated -> aryz-escalated
$(eval $(call daemon_rule,escalated,aryz-escalated))
