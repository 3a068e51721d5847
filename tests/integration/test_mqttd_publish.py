"""aryz-mqttd publish side: outbox rows reach the subscribed provider with
QoS 1 and become 'sent' only then; a backlog larger than the in-flight
bound; a broker outage; provider commands over MQTT with the provider's
identity checked."""
import json

import pytest

from harness import wait_for
from mqttd_helpers import (SUZAK, Client, complaint, device, forget_session,
                           start_mqttd)


@pytest.fixture
def cid(servers, request):
    name = "mqttd-" + request.node.name[:40]
    yield name
    forget_session(servers, name)


def provider(servers, user):
    p = Client(servers, user)
    p.subscribe("aryz/v1/providers/%s/#" % user)
    return p


def outbox_mqtt(db, key, topic, payload):
    db.execute("SELECT aryz_outbox_mqtt(%s, %s, %s::jsonb, NULL)",
               (key, topic, json.dumps(payload)))


def status_of(db, key):
    return db.scalar("SELECT status FROM outbox WHERE idem_key = %s", (key,))


def test_outbox_reaches_provider_and_row_becomes_sent(servers, db, daemons, cid):
    p1 = provider(servers, "provider-1")
    p2 = provider(servers, "provider-2")
    start_mqttd(daemons, db, servers, cid)
    # The SQL side writes provider topics by provider id; they go out
    # under the provider's MQTT username, which the ACL binds.
    outbox_mqtt(db, "t-1", "aryz/v1/providers/1/complaints", {"ticket": "1001"})
    wait_for(lambda: p1.received(), 15, "provider-1 got the publish")
    assert p1.messages[0] == ("aryz/v1/providers/provider-1/complaints",
                              {"ticket": "1001"})
    wait_for(lambda: status_of(db, "t-1") == "sent", 10, "row sent")
    row = db.one("SELECT sent_at, locked_until, attempts FROM outbox WHERE idem_key = 't-1'")
    assert row["sent_at"] is not None and row["locked_until"] is None
    assert row["attempts"] == 1
    assert p2.received() == []
    # A topic MQTT cannot publish to is not retried forever: 'dead', why.
    outbox_mqtt(db, "t-2", "aryz/v1/+/complaints", {"ticket": "1002"})
    wait_for(lambda: status_of(db, "t-2") == "dead", 10, "row dead")
    assert "refused" in db.scalar("SELECT last_error FROM outbox WHERE idem_key = 't-2'")
    p1.close()
    p2.close()


def test_backlog_beyond_inflight_bound(servers, db, daemons, cid):
    p1 = provider(servers, "provider-1")
    db.execute("""SELECT aryz_outbox_mqtt('b-' || i, 'aryz/v1/providers/1/complaints',
                                          jsonb_build_object('n', i), NULL)
                    FROM generate_series(1, 300) i""")
    start_mqttd(daemons, db, servers, cid,
                outbox="max_inflight = 20; batch = 50; poll = 1; lease = 10; retry = 1;")
    wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") == 300,
             30, "300 sent")
    wait_for(lambda: len({m["n"] for m in p1.received()}) == 300, 10, "300 received")
    p1.close()


def test_outbox_waits_for_the_broker(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid)
    offset = d.log_size()
    servers.mq_stop()
    try:
        d.wait_log(r"mqtt publish: connection to .* lost", 15, since=offset)
        outbox_mqtt(db, "w-1", "aryz/v1/providers/2/complaints", {"ticket": "2002"})
        # Nothing can be acknowledged while the broker is away.
        assert status_of(db, "w-1") == "pending"
    finally:
        servers.mq_start()
    p2 = provider(servers, "provider-2")
    wait_for(lambda: status_of(db, "w-1") == "sent", 30, "sent after the broker returned")
    # Published before provider-2 resubscribed, or after: either way
    # the row is only 'sent' once the broker acknowledged it.
    p2.close()


def routed(db, ticket, provider_id):
    db.execute("""UPDATE complaint SET status = 'routed', provider_id = %s,
                         responsible = 'provider', routed_at = now()
                   WHERE ticket = %s""", (provider_id, ticket))


def test_provider_commands(servers, db, daemons, cid):
    start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    dev.publish("aryz/v1/%s/waste/in/dev-1" % SUZAK, complaint("pc-1"))
    ticket = dev.receipt_for("pc-1")["ticket"]
    routed(db, ticket, 1)
    p1 = provider(servers, "provider-1")
    p2 = provider(servers, "provider-2")
    cmd = "aryz/v1/providers/%s/cmd"

    def answer(p, msg_id):
        topic = "aryz/v1/providers/%s/resp" % p.user
        return wait_for(lambda: [r for r in p.received(topic) if r.get("msg_id") == msg_id],
                        15, "answer to " + msg_id)[-1]

    # Another provider cannot touch it, and learns nothing about it.
    p2.publish(cmd % "provider-2", {"cmd": "ack", "ticket": ticket, "msg_id": "x1"})
    r = answer(p2, "x1")
    assert (r["status"], r["reason"]) == ("rejected", "not_found")
    assert db.scalar("SELECT status FROM complaint WHERE ticket = %s", (ticket,)) == "routed"
    # Its own provider acknowledges, asks for info, resolves.
    p1.publish(cmd % "provider-1", {"cmd": "ack", "ticket": ticket, "msg_id": "c1"})
    r = answer(p1, "c1")
    assert r["status"] == "ok" and r["detail"]["status"] == "acknowledged", r
    p1.publish(cmd % "provider-1", {"cmd": "info", "ticket": ticket, "msg_id": "c2"})
    r = answer(p1, "c2")
    assert r["detail"]["category"] == "waste" and r["detail"]["status"] == "acknowledged"
    # A redelivered command is not applied twice.
    p1.publish(cmd % "provider-1", {"cmd": "ack", "ticket": ticket, "msg_id": "c1"})
    wait_for(lambda: len([x for x in p1.received("aryz/v1/providers/provider-1/resp")
                          if x.get("msg_id") == "c1"]) == 2, 15, "second answer")
    assert answer(p1, "c1")["status"] == "duplicate"
    # ack again with a new msg_id: the lifecycle refuses it.
    p1.publish(cmd % "provider-1", {"cmd": "ack", "ticket": ticket, "msg_id": "c3"})
    assert answer(p1, "c3")["reason"] == "invalid_transition"
    p1.publish(cmd % "provider-1", {"cmd": "done", "ticket": ticket, "msg_id": "c4",
                                    "text": "вывезли"})
    assert answer(p1, "c4")["detail"]["status"] == "resolved"
    ev = db.query("""SELECT e.to_status, e.actor FROM complaint_event e
                       JOIN complaint c ON c.id = e.complaint_id
                      WHERE c.ticket = %s AND e.kind = 'status' ORDER BY e.id""", (ticket,))
    assert [(e["to_status"], e["actor"]) for e in ev] == [
        ("acknowledged", "provider:provider-1"), ("resolved", "provider:provider-1")]
    # A provider cannot send commands in another's name (ACL): nothing
    # happens and no answer comes.
    p2.publish(cmd % "provider-1", {"cmd": "ack", "ticket": ticket, "msg_id": "x2"})
    p1.publish(cmd % "provider-1", {"cmd": "info", "ticket": ticket, "msg_id": "c5"})
    answer(p1, "c5")
    assert not [r for r in p1.received() if isinstance(r, dict) and r.get("msg_id") == "x2"]
    assert db.scalar("SELECT count(*) FROM inbound_message WHERE meta->>'msg_id' = 'x2'") == 0
    # A bad command gets a reason.
    p1.publish(cmd % "provider-1", {"cmd": "reboot", "ticket": ticket, "msg_id": "c6"})
    assert answer(p1, "c6")["reason"] == "invalid_field: cmd"
    for c in (dev, p1, p2):
        c.close()


def test_municipal_system_commands(servers, db, daemons, cid):
    """A staff member's MQTT account acts like their phone does over SMS:
    the Suzak specialist's system may acknowledge Suzak complaints only."""
    start_mqttd(daemons, db, servers, cid)
    db.execute("UPDATE staff SET mqtt_username = 'dev-2' WHERE phone = '+996555000011'")
    dev = device(servers, "dev-1")
    dev.publish("aryz/v1/%s/waste/in/dev-1" % SUZAK, complaint("mc-1"))
    suzak = dev.receipt_for("mc-1")["ticket"]
    dev.publish("aryz/v1/41702205805000/water/in/dev-1", complaint("mc-2"))
    other = dev.receipt_for("mc-2")["ticket"]
    routed(db, suzak, 1)
    routed(db, other, 3)
    muni = Client(servers, "dev-2")
    muni.subscribe("aryz/v1/providers/dev-2/resp")

    def answer(msg_id):
        return wait_for(lambda: [r for r in muni.received() if r.get("msg_id") == msg_id],
                        15, "answer to " + msg_id)[-1]
    muni.publish("aryz/v1/providers/dev-2/cmd", {"cmd": "ack", "ticket": other, "msg_id": "m1"})
    assert answer("m1")["reason"] == "not_found"
    muni.publish("aryz/v1/providers/dev-2/cmd", {"cmd": "ack", "ticket": suzak, "msg_id": "m2"})
    assert answer("m2")["detail"]["status"] == "acknowledged"
    assert db.scalar("""SELECT e.actor FROM complaint_event e JOIN complaint c
                         ON c.id = e.complaint_id WHERE c.ticket = %s AND e.kind = 'status'""",
                     (suzak,)) == "staff:dev-2"
    # An account that is neither a provider nor staff.
    stranger = Client(servers, "dev-1", client_id="dev-1-cmd")
    stranger.subscribe("aryz/v1/providers/dev-1/resp")
    stranger.publish("aryz/v1/providers/dev-1/cmd", {"cmd": "info", "ticket": suzak, "msg_id": "s1"})
    r = wait_for(lambda: stranger.received(), 15, "answer")[0]
    assert (r["status"], r["reason"]) == ("rejected", "unknown_sender")
    for c in (dev, muni, stranger):
        c.close()
