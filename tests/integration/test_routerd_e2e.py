"""End to end through the real daemons: a resident's SMS (aryz-smsd) and a
device's MQTT message (aryz-mqttd) become complaints, aryz-routerd routes
them, and the outbox comes back out: the acknowledgement SMS with the
ticket to the resident and the dispatcher's SMS through (fake) Kannel,
the provider's MQTT message to the subscribed provider account."""
import pytest

from harness import wait_for
from mqttd_helpers import Client, complaint, device, forget_session, start_mqttd
from routerd_helpers import SUZAK, start
from smsd_helpers import FakeKannel, kannel_get, start_smsd

PHONE = "+996700910001"


@pytest.fixture
def cid(servers, request):
    name = "routerd-" + request.node.name[:40]
    yield name
    forget_session(servers, name)


def test_sms_and_mqtt_complaints_reach_their_providers(servers, db, daemons, cid):
    kannel = FakeKannel()
    p1 = Client(servers, "provider-1")
    p1.subscribe("aryz/v1/providers/provider-1/#")
    p2 = Client(servers, "provider-2")
    p2.subscribe("aryz/v1/providers/provider-2/#")
    dev = device(servers, "dev-1")
    try:
        smsd = start_smsd(daemons, db, kannel_port=kannel.port)
        start_mqttd(daemons, db, servers, cid)
        start(daemons, db, level="info")

        st, _, body = kannel_get(smsd, **{"from": PHONE, "to": "1212", "id": "e2e-1",
                                          "text": "Suzak musor 3 kun alynbady"})
        assert st == 200, body
        sms_ticket = body.decode().split("ticket=")[1].split()[0]
        dev.publish("aryz/v1/%s/lighting/in/dev-1" % SUZAK,
                    complaint("e2e-2", "Фонарь не горит"))
        dev_ticket = dev.receipt_for("e2e-2")["ticket"]

        # The provider systems get their complaints over MQTT ...
        wait_for(lambda: p1.received(), 30, "provider-1 got the waste complaint")
        wait_for(lambda: p2.received(), 30, "provider-2 got the lighting complaint")
        assert [m["ticket"] for m in p1.received()] == [sms_ticket]
        assert [m["ticket"] for m in p2.received()] == [dev_ticket]
        got = p1.received()[0]
        assert (got["status"], got["category"], got["municipality"]) == \
            ("routed", "waste", SUZAK)

        # ... and by SMS: the resident's acknowledgement and the dispatchers.
        def texts():
            return {q["to"]: q["text"] for p, q in kannel.sent()}
        wait_for(lambda: {PHONE, "+996555000001", "+996555000002"} <= set(texts()), 30,
                 "SMS to the resident and both dispatchers")
        t = texts()
        assert sms_ticket in t[PHONE] and "Taza Ai" in t[PHONE]
        assert "OK " + sms_ticket in t["+996555000001"]
        assert "OK " + dev_ticket in t["+996555000002"]
        # The device got no SMS; nothing is left to send.
        wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
                 == 0, 30, "outbox drained")
        assert db.scalar("SELECT count(*) FROM complaint WHERE status = 'routed'") == 2
    finally:
        dev.close()
        p1.close()
        p2.close()
        kannel.close()
