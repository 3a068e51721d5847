"""aryz-routerd routing: provider per category under the demo contracts,
no contract or an expired one -> the municipality's service desk, the
contract in force on the complaint's date, triage, and "me too"
duplicates.  Complaints come in through aryz_submit_complaint on every
ingress channel, as the ingress daemons write them."""
import json

from harness import wait_for
from routerd_helpers import (AK_BULUNG, SUZAK, pending, start, submit,
                             wait_all_routed)


def outbox(db, cid):
    return {r["idem_key"].split(":", 2)[2]: r for r in db.query(
        "SELECT idem_key, channel, recipient, body FROM outbox WHERE complaint_id = %s",
        (cid,))}


def complaint(db, cid):
    return db.one("SELECT * FROM complaint WHERE id = %s", (cid,))


def test_each_category_reaches_the_right_provider(db, daemons):
    cases = [
        # channel, phone, municipality, category, lang -> provider
        ("sms", "+996700100001", SUZAK, "waste", "ru", 1),
        ("ussd", "+996700100002", SUZAK, "lighting", "ky", 2),
        ("api", "+996700100003", AK_BULUNG, "water", "ru", 3),
        ("mqtt", None, AK_BULUNG, "water", "ky", 3),          # a device: no resident
    ]
    ids = []
    for i, (ch, phone, muni, cat, lang, _) in enumerate(cases):
        ids.append(submit(db, "c%d" % i, phone=phone, muni=muni, cat=cat, lang=lang,
                          channel=ch, sender=phone or "bin-17")["complaint_id"])
    start(daemons, db)
    wait_all_routed(db)

    for cid, (ch, phone, muni, cat, lang, prov) in zip(ids, cases):
        c = complaint(db, cid)
        assert (c["status"], c["provider_id"], c["responsible"]) == ("routed", prov, "provider")
        assert c["contract_id"] is not None and c["routed_at"] is not None
        ob = outbox(db, cid)
        disp = db.scalar("SELECT dispatcher_phone FROM provider WHERE id = %s", (prov,))
        assert ob["provider-sms"]["recipient"] == disp
        assert "OK " + c["ticket"] in ob["provider-sms"]["body"]
        assert ob["provider"]["recipient"] == "aryz/v1/providers/%d/complaints" % prov
        payload = json.loads(ob["provider"]["body"])
        assert payload["ticket"] == c["ticket"] and payload["category"] == cat
        assert ob["municipality"]["recipient"] == "aryz/v1/%s/%s/routed" % (muni, cat)
        assert "municipality-sms" not in ob
        if phone is None:
            assert "resident" not in ob          # devices get no SMS
        else:
            sms = ob["resident"]
            assert sms["recipient"] == phone
            name = db.scalar("SELECT name FROM provider WHERE id = %s", (prov,))
            assert c["ticket"] in sms["body"] and name in sms["body"]
            assert len(sms["body"]) <= 70
            assert sms["body"].startswith("Заявка №" if lang == "ru" else "Арыз №")
        # SLA armed from the contract's policy (water is the urgent one).
        timers = {r["kind"] for r in db.query(
            "SELECT kind FROM sla_timer WHERE complaint_id = %s", (cid,))}
        assert {"ack_breach", "resolve_breach", "legal_bound", "escalate"} <= timers
        ev = db.one("SELECT * FROM complaint_event WHERE complaint_id = %s AND kind = 'status'",
                    (cid,))
        assert (ev["from_status"], ev["to_status"]) == ("received", "routed")
        assert ev["actor"].startswith("aryz-routerd@")
    assert db.scalar("SELECT count(*) FROM job") == 0


def test_no_contract_or_expired_goes_to_the_municipality(db, daemons):
    nocontract = submit(db, "n1", phone="+996700200001", muni=SUZAK, cat="water",
                        lang="ru")["complaint_id"]
    expired = submit(db, "n2", phone="+996700200002", muni=AK_BULUNG, cat="waste",
                     lang="ky")["complaint_id"]
    # Made while the old waste contract of Ak-Bulung was in force: it
    # stays that contract's (the complaint's date counts, not today's).
    old = submit(db, "n3", phone="+996700200003", muni=AK_BULUNG, cat="waste",
                 lang="ru")["complaint_id"]
    db.execute("UPDATE complaint SET created_at = '2024-06-01 10:00+06' WHERE id = %s", (old,))
    start(daemons, db)
    wait_all_routed(db)

    for cid, muni in ((nocontract, SUZAK), (expired, AK_BULUNG)):
        c = complaint(db, cid)
        assert (c["status"], c["responsible"], c["provider_id"], c["contract_id"]) == \
            ("routed", "municipality", None, None)
        ob = outbox(db, cid)
        desk = db.scalar("SELECT service_phone FROM municipality WHERE soate = %s", (muni,))
        assert ob["municipality-sms"]["recipient"] == desk
        assert "provider" not in ob and "provider-sms" not in ob
        assert ob["municipality"]["recipient"] == "aryz/v1/%s/%s/routed" % (muni, c["category_code"])
        body = ob["resident"]["body"]
        # "referred to the service desk", never "not responsible"
        assert c["ticket"] in body and len(body) <= 70
        assert ("службу" in body) if c["language"] == "ru" else ("кызматына" in body)
        # Policy 0, the municipality default, when no contract applies.
        assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id = %s"
                         " AND kind = 'legal_bound'", (cid,)) == 1
    c = complaint(db, old)
    assert (c["responsible"], c["provider_id"], c["contract_id"]) == ("provider", 1, 4)


def test_triage_keeps_the_complaint_and_asks_the_resident(db, daemons):
    both = submit(db, "t1", phone="+996700300001", muni=None, cat=None, lang="ky")["complaint_id"]
    place = submit(db, "t2", phone="+996700300002", muni=None, cat="waste", lang="ru")["complaint_id"]
    what = submit(db, "t3", phone="+996700300003", muni=SUZAK, cat=None, lang="ru")["complaint_id"]
    device = submit(db, "t4", phone=None, muni=None, cat=None, channel="mqtt")["complaint_id"]
    start(daemons, db)
    wait_all_routed(db)
    for cid in (both, place, what, device):
        assert complaint(db, cid)["status"] == "triage"
        ev = db.one("SELECT * FROM complaint_event WHERE complaint_id = %s AND kind = 'status'",
                    (cid,))
        assert ev["to_status"] == "triage"
    assert json.loads(json.dumps(db.scalar(
        "SELECT detail FROM complaint_event WHERE complaint_id = %s AND kind = 'status'",
        (both,))))["missing"] == ["municipality", "category"]
    assert "Айылыңызды жана көйгөйдү" in outbox(db, both)["resident"]["body"]
    assert "селе" in outbox(db, place)["resident"]["body"]
    assert "проблему" in outbox(db, what)["resident"]["body"]
    assert outbox(db, device) == {}
    assert db.scalar("SELECT count(*) FROM job") == 0

    # Staff resolve the triage: where and what; routerd routes it.
    resolve = "SELECT aryz_triage_resolve(%s, %s, %s, 'staff:7')"
    assert db.scalar(resolve, (both, "99999999999999", "lighting")) == "unknown_municipality"
    assert db.scalar(resolve, (both, SUZAK, "bogus")) == "unknown_category"
    assert db.scalar(resolve, (123456789, SUZAK, "lighting")) == "not_found"
    assert db.scalar(resolve, (both, SUZAK, "lighting")) is None
    wait_for(lambda: complaint(db, both)["status"] == "routed", 15, "triage routed")
    assert db.scalar(resolve, (both, SUZAK, "waste")) == "invalid_transition"
    assert db.scalar("SELECT actor FROM complaint_event WHERE complaint_id = %s"
                     " AND kind = 'triage_resolved'", (both,)) == "staff:7"
    c = complaint(db, both)
    assert (c["provider_id"], c["responsible"]) == (2, "provider")
    ev = db.query("SELECT from_status, to_status FROM complaint_event WHERE complaint_id = %s"
                  " AND kind = 'status' ORDER BY id", (both,))
    assert [(e["from_status"], e["to_status"]) for e in ev] == \
        [("received", "triage"), ("triage", "routed")]
    # A triage job with the data still missing changes nothing.
    db.execute("SELECT aryz_route_request(%s)", (place,))
    wait_for(lambda: db.scalar("SELECT count(*) FROM job") == 0, 15, "job consumed")
    assert complaint(db, place)["status"] == "triage"
    assert len(outbox(db, place)) == 1


def test_me_too_is_linked_to_the_open_complaint(db, daemons):
    phone = "+996700400001"
    first = submit(db, "d1", phone=phone, cat="waste", lang="ru", desc="мусор")
    # Sent again before anything was routed: still a duplicate of the first.
    again = submit(db, "d2", phone=phone, cat="waste", lang="ru", desc="опять мусор")
    other = submit(db, "d3", phone=phone, cat="lighting", lang="ru", desc="нет света")
    start(daemons, db)
    wait_all_routed(db)

    a = complaint(db, first["complaint_id"])
    b = complaint(db, again["complaint_id"])
    assert a["status"] == "routed"
    assert (b["status"], b["duplicate_of"]) == ("duplicate", a["id"])
    assert complaint(db, other["complaint_id"])["status"] == "routed"
    sms = outbox(db, b["id"])
    assert list(sms) == ["resident"]
    assert sms["resident"]["body"] == "Ваше сообщение добавлено к заявке №%s." % a["ticket"]
    # An event on both tickets.
    assert db.scalar("SELECT count(*) FROM complaint_event WHERE complaint_id = %s"
                     " AND kind = 'duplicate' AND detail->>'complaint_id' = %s",
                     (a["id"], str(b["id"]))) == 1
    assert db.scalar("SELECT to_status FROM complaint_event WHERE complaint_id = %s"
                     " AND kind = 'status'", (b["id"],)) == "duplicate"
    # No SLA for the duplicate: the open ticket carries it.
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id = %s", (b["id"],)) == 0

    # Outside the window (duplicate_window_hours), or once the first is
    # closed, a report opens a ticket of its own.
    db.execute("UPDATE aryz_setting SET value = '1' WHERE key = 'duplicate_window_hours'")
    db.execute("UPDATE complaint SET created_at = now() - interval '2 hours' WHERE id = %s",
               (a["id"],))
    late = submit(db, "d4", phone=phone, cat="waste", lang="ky")["complaint_id"]
    wait_for(lambda: pending(db) == 0, 15, "late routed")
    assert complaint(db, late)["status"] == "routed"
    db.execute("UPDATE aryz_setting SET value = '72' WHERE key = 'duplicate_window_hours'")
    db.execute("UPDATE complaint SET status = 'closed', closed_at = now() WHERE id IN (%s, %s)",
               (a["id"], late))
    fresh = submit(db, "d5", phone=phone, cat="waste", lang="ky")["complaint_id"]
    wait_for(lambda: pending(db) == 0, 15, "fresh routed")
    assert complaint(db, fresh)["status"] == "routed"


def test_a_routed_complaint_is_not_routed_again(db, daemons):
    cid = submit(db, "r1", phone="+996700500001")["complaint_id"]
    start(daemons, db)
    wait_all_routed(db)
    n = db.scalar("SELECT count(*) FROM outbox")
    # A stray second job (e.g. requeued by hand) is a no-op.
    db.execute("SELECT aryz_route_request(%s)", (cid,))
    wait_for(lambda: db.scalar("SELECT count(*) FROM job") == 0, 15, "job consumed")
    assert db.scalar("SELECT count(*) FROM outbox") == n
    assert db.scalar("SELECT count(*) FROM complaint_event WHERE complaint_id = %s"
                     " AND kind = 'status'", (cid,)) == 1


def test_acknowledgements_fit_one_sms_for_every_municipality(db):
    # Cyrillic SMS are UCS-2: 70 characters.  With a 5-digit ticket, the
    # municipality texts of every aiyl aimak, town and city fit whole.
    rows = db.query(
        "SELECT m.soate, l.lang, aryz_route_text(CASE m.kind WHEN 'aiyl_aimak'"
        " THEN 'routed_municipality' ELSE 'routed_city' END, l.lang, '12345',"
        " aryz_muni_name(m, l.lang)) AS t FROM municipality m,"
        " (VALUES ('ky'), ('ru')) l(lang)")
    assert len(rows) >= 2 * 129
    long = [(r["soate"], r["t"]) for r in rows if len(r["t"]) > 70 or "…" in r["t"]]
    assert long == []
    city = db.scalar("SELECT aryz_route_text('routed_city', 'ky', '1001', aryz_muni_name(m, 'ky'))"
                     " FROM municipality m WHERE name_ru = 'г. Каракол'")
    assert city == "Арыз №1001 алынды, Каракол мэриясына жөнөтүлдү"
    # A long provider name is shortened, the ticket never.
    t = db.scalar("SELECT aryz_route_text('routed_provider', 'ru', '123456', repeat('Ы', 60))")
    assert len(t) == 70 and t.startswith("Заявка №123456 ") and t.endswith("…")
    for kind in ("duplicate", "triage_place", "triage_problem", "triage_both"):
        for lang in ("ky", "ru"):
            assert len(db.scalar("SELECT aryz_route_text(%s, %s, '12345', NULL)",
                                 (kind, lang))) <= 70
