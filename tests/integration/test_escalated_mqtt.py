"""aryz-escalated end to end over MQTT: a fired timer's outbox message is
published by the real aryz-mqttd through the real broker and reaches the
provider's own topic (ACL-bound to its MQTT username), and the rayon-wide
escalation reaches a municipal dashboard subscribed as aryz-mqttd."""
import pytest

from escalated_helpers import SUZAK, fire, level, routed, start
from harness import wait_for
from mqttd_helpers import Client, forget_session, start_mqttd


@pytest.fixture
def mq_client_id(servers):
    name = "mqttd-escalated-e2e"
    yield name
    forget_session(servers, name)


def test_warning_and_escalation_reach_subscribers(servers, db, daemons, mq_client_id):
    prov = Client(servers, "provider-1")
    prov.subscribe("aryz/v1/providers/provider-1/#")
    dash = Client(servers, "aryz-mqttd", client_id="escalated-dashboard")
    dash.subscribe("aryz/v1/%s/+/escalation" % SUZAK)
    try:
        start_mqttd(daemons, db, servers, mq_client_id)
        cid = routed(db)
        start(daemons, db)
        fire(db, cid, "ack_warn")
        msgs = wait_for(lambda: prov.received("aryz/v1/providers/provider-1/escalations"),
                        20, "provider got the warning")
        assert msgs[0]["event"] == "sla_warning" and msgs[0]["complaint_id"] == cid
        assert msgs[0]["sla"] == "ack" and msgs[0]["role"] == "dispatcher"
        fire(db, cid, "escalate", 1)
        fire(db, cid, "escalate", 2)
        assert level(db, cid) == 2
        esc = wait_for(lambda: [m for m in dash.received("aryz/v1/%s/waste/escalation" % SUZAK)
                                if m.get("level") == 2], 20, "dashboard got level 2")
        assert esc[0]["event"] == "escalated" and esc[0]["role"] == "specialist"
        # A warning is for the provider alone, not the municipal topic.
        assert not [m for m in dash.received() if m.get("event") == "sla_warning"]
        wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE channel = 'mqtt' AND "
                                   "idem_key LIKE 'timer:%%' AND status <> 'sent'") == 0,
                 20, "all timer messages sent")
    finally:
        prov.close()
        dash.close()
