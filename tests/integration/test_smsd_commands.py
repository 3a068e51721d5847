"""aryz-smsd SMS commands: staff OK/DONE/INFO, resident STATUS, rating, NO."""
from harness import wait_for
from smsd_helpers import kannel_get, start_smsd

RES = "+996700444555"
STAFF = "+996555000001"      # DEMO waste provider dispatcher (demo.sql)


def routed_complaint(db, d):
    st, _, body = kannel_get(d, **{"from": RES, "id": "c-1", "text": "Suzak musor alynbady"})
    assert st == 200, body
    ticket = body.decode().split("ticket=")[1].split()[0]
    # Routing is aryz-routerd's job; do what it does for this test.
    db.execute("UPDATE complaint SET municipality_soate = '41703220856000', "
               "category_code = 'waste', provider_id = 1, contract_id = 1, "
               "responsible = 'provider' WHERE ticket = %s", (ticket,))
    cid = db.scalar("SELECT id FROM complaint WHERE ticket = %s", (ticket,))
    assert db.scalar("SELECT aryz_transition(%s, 'routed', 'test')", (cid,)) is None
    return ticket, cid


def replies(db, phone):
    return [r["body"] for r in db.query("SELECT body FROM outbox WHERE recipient = %s "
                                        "AND idem_key LIKE 'reply:%%' ORDER BY id", (phone,))]


def test_staff_and_resident_commands(db, daemons):
    d = start_smsd(daemons, db)
    ticket, cid = routed_complaint(db, d)
    # Another provider's dispatcher may not touch it.
    st, _, _ = kannel_get(d, **{"from": "+996555000002", "id": "s-0", "text": "OK " + ticket})
    assert st == 200
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "routed"
    assert "не назначена" in replies(db, "+996555000002")[-1]
    st, _, body = kannel_get(d, **{"from": STAFF, "id": "s-1", "text": "OK " + ticket})
    assert st == 200 and b"command" in body
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "acknowledged"
    st, _, _ = kannel_get(d, **{"from": STAFF, "id": "s-1", "text": "OK " + ticket})
    assert st == 200                                                     # duplicate
    assert db.scalar("SELECT count(*) FROM inbound_message WHERE outcome = 'command'") == 2
    st, _, _ = kannel_get(d, **{"from": STAFF, "id": "s-2", "text": "INFO " + ticket})
    assert ticket in replies(db, STAFF)[-1]
    st, _, _ = kannel_get(d, **{"from": RES, "id": "r-1", "text": "STATUS " + ticket})
    assert ticket in replies(db, RES)[-1]
    # A resident cannot close their own complaint with DONE.
    st, _, _ = kannel_get(d, **{"from": RES, "id": "r-2", "text": "DONE " + ticket})
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "acknowledged"
    st, _, _ = kannel_get(d, **{"from": STAFF, "id": "s-3", "text": "DONE " + ticket})
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "resolved"
    # The resident rates it: closed with the rating.
    st, _, _ = kannel_get(d, **{"from": RES, "id": "r-3", "text": "4"})
    row = db.one("SELECT status, rating FROM complaint WHERE id = %s", (cid,))
    assert row["status"] == "closed" and row["rating"] == 4
    # ... then says NO: reopened within the follow-up window.
    st, _, _ = kannel_get(d, **{"from": RES, "id": "r-4", "text": "NO"})
    row = db.one("SELECT status, reopen_count FROM complaint WHERE id = %s", (cid,))
    assert row["status"] == "routed" and row["reopen_count"] == 1
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    # A lone digit with nothing to rate is kept as a complaint text.
    st, _, body = kannel_get(d, **{"from": "+996700444556", "id": "r-5", "text": "5"})
    assert st == 200 and b"ticket=" in body


def test_answer_to_triage_fills_the_complaint(db, daemons):
    d = start_smsd(daemons, db)
    phone = "+996700444557"
    st, _, body = kannel_get(d, **{"from": phone, "id": "t-1", "text": "Кызыл-Туу суу жок"})
    ticket = body.decode().split("ticket=")[1].split()[0]
    cid = db.scalar("SELECT id FROM complaint WHERE ticket = %s", (ticket,))
    # aryz-routerd put it into triage and asked for the village.
    db.execute("DELETE FROM job")
    assert db.scalar("SELECT aryz_transition(%s, 'triage', 'routerd')", (cid,)) is None
    for _ in range(2):                  # redelivered: answered once
        st, _, body = kannel_get(d, **{"from": phone, "id": "t-2", "text": "Сузак айылы"})
        assert st == 200 and ticket.encode() in body
    c = db.one("SELECT * FROM complaint WHERE id = %s", (cid,))
    assert c["municipality_soate"] == "41703220856000" and c["category_code"] == "water"
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert db.scalar("SELECT count(*) FROM complaint_event WHERE kind = 'resident_answer'") == 1
    assert db.scalar("SELECT count(*) FROM job WHERE dedup_key = %s", ("route:%d" % cid,)) == 1
    # A message that adds nothing to the triage complaint is a new complaint.
    st, _, body = kannel_get(d, **{"from": phone, "id": "t-3", "text": "рахмат"})
    assert st == 200
    assert db.scalar("SELECT count(*) FROM complaint") == 2
