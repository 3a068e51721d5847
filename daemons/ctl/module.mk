# daemons/ctl -> aryzctl, the operator CLI
$(eval $(call daemon_rule,ctl,aryzctl))
