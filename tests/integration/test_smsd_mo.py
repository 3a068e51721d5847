"""aryz-smsd MO: Kannel GET and POST, JSON, duplicates, bad input."""
import socket
import urllib.parse

import psycopg2

from harness import http, wait_for
from smsd_helpers import base, kannel_get, kannel_post, sms_json, start_smsd

PHONE = "+996700111222"


def test_kannel_get_creates_complaint_after_commit(db, daemons):
    d = start_smsd(daemons, db)
    st, _, body = kannel_get(d, **{"from": PHONE, "to": "1212", "id": "k-1",
                                   "smsc": "beeline", "time": "2026-11-27 10:00",
                                   "text": "Suzak musor 3 kun alynbady"})
    assert st == 200, body
    ticket = body.decode().split("ticket=")[1].split()[0]
    row = db.one("SELECT c.reporter, c.category_code, c.channel, m.meta->>'smsc' AS smsc, "
                 "m.idem_key FROM complaint c JOIN inbound_message m ON m.id = c.inbound_id "
                 "WHERE c.ticket = %s", (ticket,))
    assert row["reporter"] == PHONE and row["channel"] == "sms"
    assert row["category_code"] == "waste"
    assert row["smsc"] == "beeline" and row["idem_key"] == "kannel:k-1"
    assert db.scalar("SELECT count(*) FROM job WHERE kind = 'route'") == 1


def test_kannel_post_headers_and_utf16(db, daemons):
    d = start_smsd(daemons, db)
    text = "Көчөдө жарык жок, фонарь күйбөйт"
    st, _, body = kannel_post(d, text.encode("utf-16-be"),
                              {"X-Kannel-From": PHONE, "X-Kannel-To": "1212",
                               "X-Kannel-Coding": "2",
                               "Content-Type": "text/plain; charset=UTF-16BE"},
                              query="id=k-post-1")
    assert st == 200, body
    row = db.one("SELECT c.description, c.category_code, m.raw FROM complaint c "
                 "JOIN inbound_message m ON m.id = c.inbound_id WHERE m.idem_key = 'kannel:k-post-1'")
    assert row["description"] == text
    assert row["category_code"] == "lighting"
    assert bytes(row["raw"]) == text.encode("utf-16-be")   # exactly what arrived
    # Kannel 1.4.5 quotes the charset; with mo-recode the body is UTF-8
    # although coding=2, so the Content-Type charset must be the one used.
    text2 = "Суу жок, кран бузулган"
    st, _, body = kannel_post(d, text2.encode(),
                              {"X-Kannel-From": PHONE, "X-Kannel-Coding": "2",
                               "Content-Type": 'text/plain; charset="UTF-8"'},
                              query="id=k-post-quoted")
    assert st == 200, body
    assert db.scalar("SELECT description FROM complaint c JOIN inbound_message m "
                     "ON m.id = c.inbound_id WHERE m.idem_key = 'kannel:k-post-quoted'") == text2
    # GET with the raw UCS-2 bytes in text (NUL bytes included), as %b gives.
    q = "from=%2B996700111222&id=k-ucs2&coding=2&charset=UTF-16BE&text=" + \
        urllib.parse.quote_from_bytes("Суу жок".encode("utf-16-be"))
    st, _, body = http("GET", base(d) + "/sms/kannel?" + q)
    assert st == 200, body
    assert db.scalar("SELECT body FROM inbound_message WHERE idem_key = 'kannel:k-ucs2'") == "Суу жок"
    # Plain UTF-8 POST with the Kannel id in a header.
    st, _, body = kannel_post(d, "Суу жок".encode(), {"X-Kannel-From": PHONE,
                                                      "X-Kannel-Id": "k-post-2"})
    assert st == 200, body
    assert db.scalar("SELECT count(*) FROM complaint") == 4


def test_json_and_duplicates(db, daemons):
    d = start_smsd(daemons, db)
    msg = {"message_id": "agg-77", "from": "0700111222", "to": "1212",
           "text": "Вода не идёт третий день"}
    for _ in range(3):
        st, _, body = sms_json(d, msg)
        assert st == 200, body
    assert b"duplicate" in body
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert db.scalar("SELECT count(*) FROM inbound_message") == 1
    assert db.scalar("SELECT reporter FROM complaint") == PHONE
    for _ in range(2):
        st, _, _ = kannel_get(d, **{"from": PHONE, "id": "dup-1", "text": "musor"})
        assert st == 200
    assert db.scalar("SELECT count(*) FROM complaint") == 2


def test_bad_input_clear_4xx_raw_stored(db, daemons):
    d = start_smsd(daemons, db)
    # Invalid UTF-8: 400, stored raw as rejected.
    q = "from=%2B996700111222&id=bad-1&text=abc%FF%FEdef"
    st, _, body = http("GET", base(d) + "/sms/kannel?" + q)
    assert st == 400 and b"invalid UTF-8 at byte 3" in body
    row = db.one("SELECT outcome, error, raw, body FROM inbound_message WHERE idem_key = 'kannel:bad-1'")
    assert row["outcome"] == "rejected" and bytes(row["raw"]) == b"abc\xff\xfedef"
    assert row["body"] is None
    # UCS-2 that is not valid UTF-16 (lone surrogate).
    st, _, body = kannel_post(d, b"\xd8\x00\x00A", {"X-Kannel-From": PHONE, "X-Kannel-Coding": "2",
                                                    "X-Kannel-Id": "bad-2"})
    assert st == 400 and b"UTF-16BE" in body
    # Empty text.
    st, _, body = kannel_get(d, **{"from": PHONE, "id": "bad-3", "text": "  "})
    assert st == 400 and b"empty text" in body
    # Too long for max_text (1000): 413, stored.
    st, _, body = kannel_post(d, "ы" * 600, {"X-Kannel-From": PHONE, "X-Kannel-Id": "bad-4"})
    assert st == 413 and b"too long" in body
    # Larger than max_body: evhttp refuses without reading.
    st, _, _ = kannel_post(d, "x" * 70000, {"X-Kannel-From": PHONE, "X-Kannel-Id": "bad-5"})
    assert st == 413
    # Missing sender or id: nothing to store under, 400.
    st, _, body = kannel_get(d, id="x", text="hello")
    assert st == 400 and b"missing sender" in body
    st, _, body = kannel_get(d, **{"from": PHONE, "text": "hello"})
    assert st == 400 and b"missing message id" in body
    st, _, body = sms_json(d, b"{not json")
    assert st == 400 and b"invalid JSON" in body
    # JSON whose text is not UTF-8: sender and id are still readable.
    raw = b'{"message_id": "jbad", "from": "+996700111222", "text": "su\xc0u"}'
    st, _, body = http("POST", base(d) + "/sms/json", raw, {"Content-Type": "application/json"})
    assert st == 400 and b"invalid UTF-8" in body
    assert bytes(db.scalar("SELECT raw FROM inbound_message WHERE idem_key = 'json:jbad'")) == raw
    st, _, body = http("GET", base(d) + "/nope")
    assert st == 404
    rej = db.query("SELECT idem_key FROM inbound_message WHERE outcome = 'rejected' ORDER BY id")
    assert [r["idem_key"] for r in rej] == ["kannel:bad-1", "kannel:bad-2", "kannel:bad-3",
                                             "kannel:bad-4", "json:jbad"]
    assert db.scalar("SELECT count(*) FROM complaint") == 0
    # Still serving.
    st, _, _ = kannel_get(d, **{"from": PHONE, "id": "good", "text": "musor"})
    assert st == 200
    assert d.log_contains("invalid UTF-8 at byte 3")


def test_token_and_allow_list(db, daemons):
    d = start_smsd(daemons, db, extra='kannel: { token = "s3cret"; allow = "127.0.0.1"; };\n'
                                      'json: { allow = "10.0.0.0/8"; };\n')
    st, _, body = kannel_get(d, **{"from": PHONE, "id": "t1", "text": "musor"})
    assert st == 401
    st, _, _ = kannel_get(d, **{"from": PHONE, "id": "t1", "text": "musor", "token": "s3cret"})
    assert st == 200
    st, _, _ = http("GET", base(d) + "/sms/kannel?" + urllib.parse.urlencode(
        {"from": PHONE, "id": "t2", "text": "musor"}), headers={"X-Aryz-Token": "s3cret"})
    assert st == 200
    st, _, body = sms_json(d, {"message_id": "j", "from": PHONE, "text": "x"})
    assert st == 403 and b"not allowed" in body


def test_db_down_503_then_accepted(servers, db, daemons):
    d = start_smsd(daemons, db)
    servers.pg_stop()
    try:
        wait_for(lambda: kannel_get(d, **{"from": PHONE, "id": "down-1", "text": "musor"})[0] == 503,
                 what="503 while the database is down")
        st, h, body = kannel_get(d, **{"from": PHONE, "id": "down-1", "text": "musor"})
        assert st == 503 and h.get("Retry-After")
        st, _, body = http("POST", base(d) + "/ussd", "sessionId=s&phoneNumber=%2B996700111222&text=",
                           {"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 503
        assert http("GET", base(d) + "/health")[0] == 503
    finally:
        servers.pg_start()
    # The sender retries until the database is back.
    wait_for(lambda: kannel_get(d, **{"from": PHONE, "id": "down-1", "text": "musor"})[0] == 200,
             timeout=30, what="accepted after the database returns")
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert http("GET", base(d) + "/health")[0] == 200


def test_client_gone_before_commit(db, daemons):
    """The client hangs up while the insert waits on a lock: no crash."""
    d = start_smsd(daemons, db)
    conn = psycopg2.connect(db.conninfo)
    cur = conn.cursor()
    cur.execute("LOCK TABLE inbound_message IN EXCLUSIVE MODE")
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(b"GET /sms/kannel?from=%2B996700111222&id=gone-1&text=musor HTTP/1.1\r\n"
              b"Host: x\r\n\r\n")
    wait_for(lambda: db.scalar("SELECT count(*) FROM pg_locks WHERE NOT granted") > 0,
             what="insert waiting on the lock")
    s.close()
    conn.rollback()
    conn.close()
    wait_for(lambda: db.scalar("SELECT count(*) FROM complaint") == 1, what="stored")
    st, _, _ = kannel_get(d, **{"from": PHONE, "id": "gone-2", "text": "musor"})
    assert st == 200 and d.alive()


def test_sighup_reloads_reference_and_sigterm_drains(db, daemons):
    d = start_smsd(daemons, db)
    db.execute("INSERT INTO category_keyword VALUES ('water', 'арык', 'ky')")
    size = d.log_size()
    d.sighup()
    d.wait_log("lexicon loaded", since=size)
    st, _, _ = kannel_get(d, **{"from": PHONE, "id": "h-1", "text": "арык бузулду"})
    assert st == 200
    assert db.scalar("SELECT category_code FROM complaint") == "water"
    assert d.stop() == 0
    assert d.log_contains("drained, stopping")


def test_municipality_order_text_home_shortcode(db, daemons):
    d = start_smsd(daemons, db)
    db.execute("INSERT INTO sms_shortcode VALUES ('1414', '41702205805000')")
    # An ambiguous name and no home: left for triage, candidates kept.
    st, _, _ = kannel_get(d, **{"from": "+996700900001", "to": "1212", "id": "mu-1",
                                "text": "Кызыл-Туу суу жок"})
    assert st == 200
    row = db.one("SELECT c.municipality_soate, m.meta FROM complaint c "
                 "JOIN inbound_message m ON m.id = c.inbound_id WHERE m.idem_key = 'kannel:mu-1'")
    assert row["municipality_soate"] is None
    assert len(row["meta"]["normalized"]["candidates"]) >= 2
    # The same text from a resident with a home: the home.
    db.execute("INSERT INTO resident (phone, home_soate) VALUES ('+996700900002', '41703220856000')")
    kannel_get(d, **{"from": "+996700900002", "to": "1212", "id": "mu-2",
                     "text": "Кызыл-Туу суу жок"})
    assert db.scalar("SELECT municipality_soate FROM complaint c JOIN inbound_message m "
                     "ON m.id = c.inbound_id WHERE m.idem_key = 'kannel:mu-2'") == "41703220856000"
    # No name, no home: the short code's municipality.
    kannel_get(d, **{"from": "+996700900003", "to": "1414", "id": "mu-3", "text": "суу жок"})
    assert db.scalar("SELECT municipality_soate FROM complaint c JOIN inbound_message m "
                     "ON m.id = c.inbound_id WHERE m.idem_key = 'kannel:mu-3'") == "41702205805000"
    # An explicit name wins over the short code.
    kannel_get(d, **{"from": "+996700900004", "to": "1414", "id": "mu-4",
                     "text": "Suzak suu jok"})
    assert db.scalar("SELECT municipality_soate FROM complaint c JOIN inbound_message m "
                     "ON m.id = c.inbound_id WHERE m.idem_key = 'kannel:mu-4'") == "41703220856000"


def test_commit_failure_is_not_answered_200(db, daemons):
    """A failure at COMMIT (here a deferred constraint trigger) comes after
    the rows of the SELECT: the sender must get 503, not 200 with a ticket
    that was never stored."""
    d = start_smsd(daemons, db)
    db.execute("""
        CREATE FUNCTION test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.description LIKE '%%commitfail%%' THEN
                RAISE EXCEPTION 'refused at commit';
            END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON complaint
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            EXECUTE FUNCTION test_fail_at_commit();""")
    st, _, body = kannel_get(d, **{"from": PHONE, "id": "cf-1", "text": "musor commitfail"})
    assert db.scalar("SELECT count(*) FROM complaint") == 0
    assert st == 503, body
    st, _, body = kannel_get(d, **{"from": PHONE, "id": "cf-2", "text": "musor"})
    assert st == 200 and db.scalar("SELECT count(*) FROM complaint") == 1


def test_allow_list_prefix_out_of_range_is_a_config_error(workdir):
    """'10.0.0.0/80' used to pass the check and then match nobody."""
    import os
    import subprocess
    from harness import BIN
    path = os.path.join(workdir, "smsd.conf")
    for bad in ("10.0.0.0/33", "::1/129"):
        with open(path, "w") as f:
            f.write('kannel: { allow = "127.0.0.1, %s"; };\n' % bad)
        out = subprocess.run([os.path.join(BIN, "aryz-smsd"), "-c", path, "-n"],
                             capture_output=True, text=True)
        assert out.returncode == 1 and "bad prefix" in out.stderr, (bad, out.stderr)
    with open(path, "w") as f:
        f.write('kannel: { allow = "10.0.0.0/32, ::1/128, 0.0.0.0/0"; };\n')
    out = subprocess.run([os.path.join(BIN, "aryz-smsd"), "-c", path, "-n"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
