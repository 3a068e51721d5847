"""A real Kannel 1.4.5 (Debian's bearerbox + smsbox, `smsc = fake`) in
front of aryz-smsd, configured as docs/kannel.md says, against real
PostgreSQL: MO in GSM and UCS-2 becomes complaints with the exact text,
smsbox retries a 503 during a database outage and the SMS lands once, a
retry after a lost answer is a duplicate, the resident's acknowledgement
(routed by aryz-routerd) goes out through Kannel's sendsms in UCS-2 and
comes back delivered through the DLR, and why the get-url says %b, not %a.
Kannel's own config: kannel_helpers.Kannel.config()."""
import psycopg2
import pytest

import routerd_helpers
from harness import free_port, wait_for
from kannel_helpers import (SENDSMS_PASSWORD, SENDSMS_USER, SHORT_CODE, TOKEN,
                            FakeSMSC, Kannel, available)

pytestmark = pytest.mark.skipif(not available(),
                                reason="Kannel not installed (apt-get install kannel)")

LATIN = "Suzak musor 3 kun alynbady"
# Kyrgyz in UCS-2 with ң ө ү.  It ends in "Р" (U+0420, bytes 04 20) and
# has "Р–" (04 20 20 13): Kannel's %a would cut the trailing 0x20 byte and
# merge the two 0x20 bytes, %b passes them as they are.
CYRILLIC = "Көчөдө жарык жок, фонарь күйбөйт, түнү караңгы. Ө ү ң. КР–2 ССР"


def smsd_config(db, port, kannel):
    return """
database: { conninfo = "%s"; };
http: { port = %d; };
kannel: { token = "%s"; allow = "127.0.0.1"; };
dlr: { token = "%s"; allow = "127.0.0.1"; };
mt: { enabled = true; url = "http://127.0.0.1:%d/cgi-bin/sendsms";
      username = "%s"; password = "%s"; from = "%s";
      dlr_url = "http://127.0.0.1:%d/dlr?token=%s"; dlr_mask = 31;
      poll = 1; timeout = 5; backoff_min = 1; backoff_max = 2; max_attempts = 5; };
""" % (db.conninfo, port, TOKEN, TOKEN, kannel.sendsms_port, SENDSMS_USER,
       SENDSMS_PASSWORD, SHORT_CODE, port, TOKEN)


@pytest.fixture
def start_stack(db, daemons, workdir):
    """start_stack(text="%b") -> (aryz-smsd, Kannel, fake SMSC client), with
    that pattern for the text in the get-url; all ended at teardown."""
    made = []

    def start(text="%b", http_timeout=None, post=False):
        port = free_port()
        kannel = Kannel(workdir, port, text=text, http_timeout=http_timeout, post=post)
        made.append(kannel)
        smsd = daemons("aryz-smsd", smsd_config(db, port, kannel))
        smsd.start(wait_log="lexicon loaded")
        kannel.start()
        smsc = FakeSMSC(kannel)
        made.append(smsc)
        return smsd, kannel, smsc

    yield start
    for x in reversed(made):
        if isinstance(x, FakeSMSC):
            x.close()
        else:
            x.stop()
            x.check_clean()


@pytest.fixture
def stack(start_stack):
    return start_stack()


def complaints(db):
    return db.query("SELECT c.reporter, c.description, c.category_code, c.channel, "
                    "m.idem_key, m.meta->>'smsc' AS smsc FROM complaint c "
                    "JOIN inbound_message m ON m.id = c.inbound_id ORDER BY c.id")


def test_mo_gsm_and_ucs2_become_complaints(db, stack):
    smsd, kannel, smsc = stack
    smsc.send_text("+996700111222", SHORT_CODE, LATIN)
    smsc.send_ucs2("+996700111223", SHORT_CODE, CYRILLIC)
    wait_for(lambda: db.scalar("SELECT count(*) FROM complaint") == 2,
             what="two complaints from Kannel", timeout=20)
    rows = {r["reporter"]: r for r in complaints(db)}
    lat, cyr = rows["+996700111222"], rows["+996700111223"]
    assert lat["description"] == LATIN and lat["category_code"] == "waste"
    assert cyr["description"] == CYRILLIC and cyr["category_code"] == "lighting"
    assert lat["channel"] == cyr["channel"] == "sms"
    assert lat["smsc"] == cyr["smsc"] == "fake"           # %i
    assert lat["idem_key"].startswith("kannel:") and lat["idem_key"] != cyr["idem_key"]
    # The raw bytes Kannel passed for the UCS-2 SMS are UTF-16BE, intact.
    raw = db.scalar("SELECT raw FROM inbound_message WHERE idem_key = %s",
                    (cyr["idem_key"],))
    assert bytes(raw) == CYRILLIC.encode("utf-16-be")
    # Exactly one inbound message and complaint per SMS; max-messages = 0:
    # nothing went back to the SMSC as a reply.
    assert db.scalar("SELECT count(*) FROM inbound_message") == 2
    assert db.scalar("SELECT count(*) FROM complaint") == 2
    assert smsc.received() == []


def test_post_url_variant(db, start_stack):
    """docs/kannel.md's post-url: the text as the body, the fields in
    X-Kannel-* headers, the charset in Content-Type."""
    smsd, kannel, smsc = start_stack(post=True)
    smsc.send_text("+996700111232", SHORT_CODE, LATIN)
    smsc.send_ucs2("+996700111233", SHORT_CODE, CYRILLIC)
    wait_for(lambda: db.scalar("SELECT count(*) FROM complaint") == 2,
             what="two complaints from Kannel's post-url", timeout=20)
    rows = {r["reporter"]: r for r in complaints(db)}
    assert rows["+996700111232"]["description"] == LATIN
    assert rows["+996700111233"]["description"] == CYRILLIC
    assert rows["+996700111233"]["smsc"] == "fake"
    assert db.scalar("SELECT count(*) FROM inbound_message") == 2


def test_rejected_mo_retried_by_smsbox_is_stored_once(db, stack):
    """smsbox 1.4.5 retries every answer that is not 2xx, 4xx included.
    An 8-bit MO (two UDH parts, which bearerbox reassembles; coding=1) is
    refused with 415 and stored raw as rejected; the retries with the same
    %I add nothing."""
    smsd, kannel, smsc = stack
    smsc.send_udh("+996700111234", SHORT_CODE, bytes([5, 0, 3, 9, 2, 1]), b"\x01\x02part one ")
    smsc.send_udh("+996700111234", SHORT_CODE, bytes([5, 0, 3, 9, 2, 2]), b"and two")
    wait_for(lambda: kannel.log("smsbox").count("HTTP: Retrying request") >= 2,
             timeout=20, what="smsbox retrying the 415", interval=0.2)
    wait_for(lambda: len(smsd.log().split("/sms/kannel -> ")) >= 4, timeout=10,
             what="three answers from aryz", interval=0.2)
    row = db.one("SELECT outcome, raw, error FROM inbound_message")
    assert row["outcome"] == "rejected" and "8-bit" in row["error"]
    assert bytes(row["raw"]) == b"\x01\x02part one and two"   # reassembled by bearerbox
    assert db.scalar("SELECT count(*) FROM inbound_message") == 1
    assert db.scalar("SELECT count(*) FROM complaint") == 0


def test_503_during_db_outage_retried_by_smsbox_lands_once(db, stack, servers):
    smsd, kannel, smsc = stack
    smsc.send_text("+996700111224", SHORT_CODE, "Suzak suu jok")
    wait_for(lambda: db.scalar("SELECT count(*) FROM complaint") == 1, what="first MO")
    mark = smsd.log_size()
    servers.pg_stop()
    try:
        smsc.send_ucs2("+996700111225", SHORT_CODE, CYRILLIC)
        smsd.wait_log(r"/sms/kannel -> 503", since=mark, timeout=20)
        # smsbox got the 503 and retries after http-queue-delay (1 s here).
        wait_for(lambda: "HTTP: Retrying request" in kannel.log("smsbox"), timeout=20,
                 what="smsbox retrying", interval=0.2)
    finally:
        servers.pg_start()
    wait_for(lambda: db.scalar("SELECT count(*) FROM complaint") == 2, timeout=45,
             what="the retried MO after PostgreSQL came back", interval=0.2)
    rows = complaints(db)
    assert [r["description"] for r in rows] == ["Suzak suu jok", CYRILLIC]
    assert db.scalar("SELECT count(*) FROM inbound_message") == 2


def test_answer_lost_retry_is_a_duplicate(db, start_stack):
    """The request commits but smsbox never sees the answer (its
    http-timeout expires while the INSERT waits on a lock): smsbox calls
    again with the same %I, aryz answers "duplicate", one complaint."""
    smsd, kannel, smsc = start_stack(http_timeout=2)
    lock = psycopg2.connect(db.conninfo)
    try:
        cur = lock.cursor()
        cur.execute("LOCK TABLE inbound_message IN EXCLUSIVE MODE")
        smsc.send_ucs2("+996700111231", SHORT_CODE, CYRILLIC)
        wait_for(lambda: "HTTP: Retrying request" in kannel.log("smsbox"), timeout=20,
                 what="smsbox timed out and retries", interval=0.2)
    finally:
        lock.commit()
        lock.close()
    wait_for(lambda: smsd.log_contains(r"/sms/kannel -> 200 .*duplicate"), timeout=20,
             what="the retry answered as a duplicate", interval=0.2)
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert db.scalar("SELECT count(*) FROM inbound_message") == 1
    assert db.scalar("SELECT description FROM complaint") == CYRILLIC


def sms_to(smsc, phone):
    """The text the SMSC got for phone: one SMS, or the parts of a
    concatenated one (UDH IEI 00) joined in order."""
    msgs = [m for m in smsc.received() if m["to"] == phone]
    if not msgs:
        return None
    if msgs[0]["udh"]:
        parts = sorted(msgs, key=lambda m: m["udh"][-1])
        total = parts[0]["udh"][-2]
        if len(parts) < total:
            return None
        return b"".join(p["raw"] for p in parts).decode("utf-16-be")
    return msgs[0]["text"]


def test_ack_sms_goes_out_ucs2_and_dlr_marks_delivered(db, daemons, stack):
    smsd, kannel, smsc = stack
    routerd = routerd_helpers.start(daemons, db)
    resident = "+996700111226"
    smsc.send_ucs2(resident, SHORT_CODE, "Сузак: " + CYRILLIC)
    wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE channel = 'sms' "
                               "AND recipient = %s", (resident,)) == 1,
             what="acknowledgement queued by aryz-routerd", timeout=20)
    # A Latin text (GSM, coding 0) and a long Kyrgyz one (UCS-2, 2 parts).
    long_ky = ("Арыз №2001 кабыл алынды. Көчө чырактарын оңдоо боюнча маалымат "
               "кийинчерээк жөнөтүлөт; рахмат, Сузак айыл өкмөтү. ң ө ү")
    db.execute("SELECT aryz_outbox_sms('t:latin', '+996700111227', "
               "'Ticket 2002 received, thank you', NULL)")
    db.execute("SELECT aryz_outbox_sms('t:long', '+996700111228', %s, NULL)", (long_ky,))
    wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE channel = 'sms' "
                               "AND status <> 'delivered'") == 0
             and db.scalar("SELECT count(*) FROM outbox WHERE channel = 'sms'") >= 3,
             what="every SMS delivered (DLR 1 from Kannel)", timeout=30, interval=0.2)
    rows = db.query("SELECT id, recipient, body, attempts FROM outbox "
                    "WHERE channel = 'sms' ORDER BY id")
    for r in rows:
        got = wait_for(lambda: sms_to(smsc, r["recipient"]), what="SMS to " + r["recipient"])
        assert got == r["body"], r["recipient"]
        assert r["attempts"] == 1
        # Kannel reported "accepted by the SMSC" (8) and "delivered" (1).
        wait_for(lambda: {x["status"] for x in db.query(
            "SELECT status FROM sms_dlr WHERE outbox_id = %s", (r["id"],))} == {1, 8},
            what="DLR 8 and 1 for " + r["recipient"])
    ack = next(r for r in rows if r["recipient"] == resident)
    assert any(ch in ack["body"] for ch in "ңөүыа")      # Cyrillic went out intact
    types = {m["to"]: m["type"] for m in smsc.received()}
    assert types[resident] == "ucs-2" and types["+996700111227"] == "text"
    assert types["+996700111228"] == "udh"
    assert sms_to(smsc, "+996700111228") == long_ky
    assert "?" not in sms_to(smsc, resident)
    # max-messages = 0: aryz's HTTP answer to the MO was not texted back;
    # the resident got the acknowledgement only.
    assert [m["to"] for m in smsc.received()].count(resident) == 1
    routerd.stop()


def test_percent_a_would_garble_ucs2(db, start_stack):
    """Why docs/kannel.md says %b, not %a: %a is the message split into
    words at whitespace BYTES and joined with '+'.  In UTF-16BE the byte
    0x20 is also the low byte of "Р" (U+0420) and the high byte of "–"
    (U+2013): "Р–" (04 20 20 13) loses one byte and a trailing "Р" loses
    its last one.  Everything after "Р–" is shifted by a byte, and the
    complaint gets a garbled text without any error anywhere."""
    smsd, kannel, smsc = start_stack("%a")
    smsc.send_ucs2("+996700111229", SHORT_CODE, CYRILLIC)
    smsc.send_ucs2("+996700111230", SHORT_CODE, "Суу жок")   # no 0x20 pitfalls
    wait_for(lambda: db.scalar("SELECT count(*) FROM inbound_message") == 2,
             what="both stored", timeout=20)
    rows = {r["sender"]: r for r in db.query(
        "SELECT m.sender, m.raw, c.description FROM inbound_message m "
        "LEFT JOIN complaint c ON c.inbound_id = m.id")}
    sent = CYRILLIC.encode("utf-16-be")
    bad = rows["+996700111229"]
    assert len(bytes(bad["raw"])) == len(sent) - 2
    assert bad["description"] != CYRILLIC
    assert bad["description"].startswith(CYRILLIC[:CYRILLIC.index("Р–")])
    assert rows["+996700111230"]["description"] == "Суу жок"
