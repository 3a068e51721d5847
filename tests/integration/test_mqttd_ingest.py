"""aryz-mqttd ingest against a real Mosquitto: N messages make exactly N
complaints, receipts, duplicates, sensor events, topic values winning,
rejections of bad payloads, and the ACL refusing a spoofed client id."""
import re

import pytest

from harness import wait_for
from mqttd_helpers import (AK_BULUNG, SUZAK, Client, assert_exactly_once,
                           complaint, count_complaints, device, forget_session,
                           start_mqttd)


@pytest.fixture
def cid(servers, request):
    name = "mqttd-" + request.node.name[:40]
    yield name
    forget_session(servers, name)


def test_n_messages_make_exactly_n_complaints(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    n = 200
    topic = "aryz/v1/%s/waste/in/dev-1" % SUZAK
    infos = [dev.publish(topic, complaint("n-%d" % i), wait=False) for i in range(n)]
    for i in infos:
        i.wait_for_publish(10)
    wait_for(lambda: count_complaints(db) == n, 30, "%d complaints" % n)
    assert_exactly_once(db, n)
    wait_for(lambda: len(dev.receipts()) >= n, 20, "receipts")
    rs = dev.receipts()
    assert all(r["status"] == "accepted" and r["ticket"] for r in rs)
    assert len({r["ticket"] for r in rs}) == n
    # Topic values are stored, and every complaint waits for routing.
    row = db.one("""SELECT count(*) FILTER (WHERE municipality_soate = %s
                                             AND category_code = 'waste') AS ok,
                           count(*) FILTER (WHERE reporter = 'dev-1') AS rep
                      FROM complaint""", (SUZAK,))
    assert row["ok"] == n and row["rep"] == n
    assert db.scalar("SELECT count(*) FROM job WHERE kind = 'route'") == n
    dev.close()
    assert d.stop() == 0
    assert d.log_contains(r"ingest: %d accepted" % n)
    # One COMMIT per batch, every batch within ingest.batch_size (50).
    sizes = [int(x) for x in re.findall(r"batch of (\d+) committed", d.log())]
    assert sum(sizes) == n and max(sizes) <= 50, sizes


def test_duplicate_msg_id_gives_one_complaint(servers, db, daemons, cid):
    start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    topic = "aryz/v1/%s/lighting/in/dev-1" % SUZAK
    dev.publish(topic, complaint("dup-1", "Фонарь не горит"))
    first = dev.receipt_for("dup-1")
    assert first["status"] == "accepted"
    with dev.lock:
        dev.messages.clear()
    dev.publish(topic, complaint("dup-1", "Фонарь не горит (again)"))
    again = dev.receipt_for("dup-1")
    assert again["status"] == "duplicate" and again["ticket"] == first["ticket"]
    assert count_complaints(db) == 1
    # The same msg_id from another device is another complaint.
    dev2 = device(servers, "dev-2")
    dev2.publish("aryz/v1/%s/lighting/in/dev-2" % SUZAK, complaint("dup-1"))
    assert dev2.receipt_for("dup-1")["status"] == "accepted"
    assert count_complaints(db) == 2
    dev.close()
    dev2.close()


def test_sensor_event_and_topic_values_win(servers, db, daemons, cid):
    start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    # No text, no category: the event names the category; the device is
    # the reporter.
    dev.publish("aryz/v1/%s/-/in/dev-1" % SUZAK,
                {"v": 1, "msg_id": "ev-1", "event": "bin_full", "device_id": "bin-42",
                 "geo": {"lat": 40.9, "lon": 72.9}})
    r = dev.receipt_for("ev-1")
    assert r["status"] == "accepted", r
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (r["ticket"],))
    assert c["category_code"] == "waste" and c["municipality_soate"] == SUZAK
    assert c["reporter"] == "dev-1/bin-42"
    assert abs(c["geo_lat"] - 40.9) < 1e-9
    # Topic municipality and category win over the payload's.
    dev.publish("aryz/v1/%s/water/in/dev-1" % AK_BULUNG,
                complaint("ev-2", "Суу жок", category="waste", municipality=SUZAK, lang="ru"))
    r = dev.receipt_for("ev-2")
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (r["ticket"],))
    assert (c["category_code"], c["municipality_soate"], c["language"]) == \
        ("water", AK_BULUNG, "ru")
    # "-" in the topic: the payload decides.
    dev.publish("aryz/v1/-/-/in/dev-1",
                complaint("ev-3", "Көчө жарыгы күйбөйт", category="lighting",
                          municipality=SUZAK))
    r = dev.receipt_for("ev-3")
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (r["ticket"],))
    assert (c["category_code"], c["municipality_soate"]) == ("lighting", SUZAK)
    dev.close()


BAD = [
    (b"{not json", "invalid_json"),
    (b'{"v":1,"msg_id":"b2","text":"\xff\xfe"}', "invalid_utf8"),
    (b'{"v":1,"msg_id":"b3","text":"x","colour":"red"}', "unknown_field: colour"),
    (b'{"v":2,"msg_id":"b4","text":"x"}', "unsupported_version"),
    (b'{"v":1,"text":"x"}', "missing_field: msg_id"),
    (b'{"v":1,"msg_id":"b6"}', "missing_field: text"),
    (b'{"v":1,"msg_id":"b7","text":"x","event":"volcano"}', "unknown_event: volcano"),
    (b'{"v":1,"msg_id":"b8","text":"x","geo":{"lat":91,"lon":0}}', "invalid_field: geo"),
    (b'[1,2,3]', "invalid_json: not an object"),
    # Found by tests/fuzz/fuzz_mqtt.c: jansson's error text quotes a
    # split multibyte character; the reason must stay valid UTF-8.
    ('{"t":"\\ы"}'.encode(), "invalid_json"),
    (b'{"v":1,"msg_id":"b10","text":"x","municipality":"99999999999999"}',
     "unknown_municipality"),
    (b'{"v":1,"msg_id":"b11","text":"x","category":"volcanoes"}', "unknown_category"),
    (b'{"v":1,"msg_id":"b12","text":"' + b"a" * 20000 + b'"}', "oversized"),
]


def test_invalid_payloads_get_rejection_receipts(servers, db, daemons, cid):
    start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    topic = "aryz/v1/-/-/in/dev-1"
    for raw, _ in BAD:
        dev.publish(topic, raw)
    wait_for(lambda: len(dev.receipts()) >= len(BAD), 20, "rejection receipts")
    rs = dev.receipts()
    assert len(rs) == len(BAD)
    for r, (raw, reason) in zip(rs, BAD):
        assert r["status"] == "rejected", (raw[:40], r)
        assert r["reason"].startswith(reason), (raw[:40], r)
    # Every raw message is stored, exactly as it arrived (up to the size
    # bound), and nothing else changed.
    rows = db.query("SELECT raw, error, meta FROM inbound_message "
                    "WHERE channel = 'mqtt' AND outcome = 'rejected' ORDER BY id")
    assert len(rows) == len(BAD)
    for row, (raw, reason) in zip(rows, BAD):
        assert row["error"].startswith(reason)
        if len(raw) <= 16384:
            assert bytes(row["raw"]) == raw
        else:
            assert row["meta"]["truncated"] is True and row["meta"]["size"] == len(raw)
    assert count_complaints(db) == 0
    assert db.scalar("SELECT count(*) FROM job") == 0
    # The same bad message again is not stored twice; a corrected one with
    # a msg_id seen in a rejected message is accepted.
    dev.publish(topic, BAD[0][0])
    dev.publish(topic, complaint("b3", municipality=SUZAK, category="waste"))
    assert dev.receipt_for("b3", 10) and wait_for(
        lambda: [r for r in dev.receipts() if r.get("msg_id") == "b3"
                 and r["status"] == "accepted"], 10, "b3 accepted")
    wait_for(lambda: len(dev.receipts()) >= len(BAD) + 2, 10, "two more receipts")
    assert db.scalar("SELECT count(*) FROM inbound_message WHERE outcome = 'rejected'") \
        == len(BAD)
    assert count_complaints(db) == 1
    dev.close()


def test_acl_denies_spoofed_client_id(servers, db, daemons, cid):
    start_mqttd(daemons, db, servers, cid)
    # dev-1 publishes under dev-2's name, once with its own client id and
    # once even claiming dev-2's client id: the broker drops both (Mosquitto
    # still answers PUBACK to a denied QoS 1 publish).
    spoof = Client(servers, "dev-1", client_id="dev-1")
    spoof.publish("aryz/v1/%s/waste/in/dev-2" % SUZAK, complaint("spoof-1"))
    spoof.close()
    spoof = Client(servers, "dev-1", client_id="dev-2")
    spoof.publish("aryz/v1/%s/waste/in/dev-2" % SUZAK, complaint("spoof-2"))
    spoof.close()
    # dev-1 cannot read dev-2's receipts either.
    snoop = Client(servers, "dev-1", client_id="dev-1-snoop")
    snoop.subscribe("aryz/v1/clients/dev-2/resp")
    # A genuine message after them proves the pipeline ran meanwhile.
    dev2 = device(servers, "dev-2")
    dev2.publish("aryz/v1/%s/waste/in/dev-2" % SUZAK, complaint("real-1"))
    assert dev2.receipt_for("real-1")["status"] == "accepted"
    assert count_complaints(db) == 1
    assert db.scalar("SELECT count(*) FROM inbound_message") == 1
    assert snoop.received() == []
    snoop.close()
    dev2.close()


def test_text_without_category_uses_the_normalizer(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid)
    assert d.log_contains(r"lexicon loaded")
    dev = device(servers, "dev-1")
    # Nothing in the topic, nothing in the payload but the text.
    dev.publish("aryz/v1/-/-/in/dev-1",
                complaint("nz-1", "Сузак айыл аймагында таштанды 3 күндөн бери алынбай жатат"))
    r = dev.receipt_for("nz-1")
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (r["ticket"],))
    assert c["category_code"] == "waste" and c["language"] == "ky"
    # The topic still wins over what the text suggests.
    dev.publish("aryz/v1/%s/lighting/in/dev-1" % SUZAK, complaint("nz-2", "musor"))
    r = dev.receipt_for("nz-2")
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (r["ticket"],))
    assert c["category_code"] == "lighting"
    # Unrecognisable text: no category, left for triage.
    dev.publish("aryz/v1/-/-/in/dev-1", complaint("nz-3", "qwerty zxcv"))
    r = dev.receipt_for("nz-3")
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (r["ticket"],))
    assert c["category_code"] is None and c["status"] == "received"
    dev.close()


def test_unusable_client_id_is_stored_as_rejected(servers, db, daemons, cid):
    """A username that cannot be an identifier (an operator's mistake) is
    not silently dropped: stored raw, rejected with a reason.  Published
    here with the service account, whose ACL allows any aryz/ topic."""
    start_mqttd(daemons, db, servers, cid)
    svc = Client(servers, "aryz-mqttd", client_id="svc-" + cid)
    svc.subscribe("aryz/v1/clients/kiosk 12/resp")
    svc.publish("aryz/v1/-/-/in/kiosk 12", complaint("k-1"))
    r = wait_for(lambda: svc.received("aryz/v1/clients/kiosk 12/resp"), 15, "receipt")[0]
    assert (r["status"], r["reason"], r["msg_id"]) == ("rejected", "invalid_topic: client_id", None)
    row = db.one("SELECT sender, outcome, error FROM inbound_message")
    assert row == {"sender": "kiosk 12", "outcome": "rejected",
                   "error": "invalid_topic: client_id"}
    assert count_complaints(db) == 0
    svc.close()


def test_sighup_reloads_the_lexicon(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    db.execute("INSERT INTO category_keyword (category_code, keyword, lang) "
               "VALUES ('water', 'zzkran', 'latin')")
    dev.publish("aryz/v1/%s/-/in/dev-1" % SUZAK, complaint("hup-1", "zzkran"))
    c = db.one("SELECT category_code FROM complaint WHERE ticket = %s",
               (dev.receipt_for("hup-1")["ticket"],))
    assert c["category_code"] is None       # not known yet
    offset = d.log_size()
    d.sighup()
    d.wait_log(r"lexicon loaded", since=offset)
    dev.publish("aryz/v1/%s/-/in/dev-1" % SUZAK, complaint("hup-2", "zzkran"))
    c = db.one("SELECT category_code FROM complaint WHERE ticket = %s",
               (dev.receipt_for("hup-2")["ticket"],))
    assert c["category_code"] == "water"
    dev.close()
