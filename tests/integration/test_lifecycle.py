"""The shared lifecycle in SQL: working time, SLA arming, transitions."""
import pytest

SUZAK = "41703220856000"


def submit(db, key, text="musor", muni=SUZAK, cat="waste", phone="+996555123456"):
    return db.one("SELECT * FROM aryz_submit_complaint('sms', %s, %s, '1212', %s::bytea, %s, "
                  "'{}', %s, %s, %s, 'ky', %s, NULL, NULL)",
                  (key, phone, text.encode(), text, phone, muni, cat, text))


def routed(db, key="k1"):
    c = submit(db, key)
    db.execute("UPDATE complaint SET status='routed', responsible='provider', provider_id=1, "
               "contract_id=1 WHERE id=%s", (c["complaint_id"],))
    db.execute("SELECT aryz_arm_sla(%s)", (c["complaint_id"],))
    return c["complaint_id"]


def test_work_add_skips_weekend_and_holidays(db):
    # Friday 6 March 2026 17:00 + 2 working hours: Monday 9 March 10:00
    # (Saturday, Sunday 8 March).
    assert str(db.scalar("SELECT aryz_work_add(%s, '2026-03-06 17:00+06', 120) "
                         "AT TIME ZONE 'Asia/Bishkek'", (SUZAK,))) == "2026-03-09 10:00:00"
    # Nooruz: 21-22 March 2026 are a weekend anyway; 20 March is Orozo Ait.
    assert str(db.scalar("SELECT aryz_work_add(%s, '2026-03-20 10:00+06', 60) "
                         "AT TIME ZONE 'Asia/Bishkek'", (SUZAK,))) == "2026-03-23 10:00:00"
    assert db.scalar("SELECT aryz_work_between(%s, '2026-03-06 17:00+06', "
                     "'2026-03-09 10:00+06')", (SUZAK,)) == 120


def test_submit_is_idempotent(db):
    a = submit(db, "same")
    b = submit(db, "same")
    assert not a["duplicate"] and b["duplicate"]
    assert a["complaint_id"] == b["complaint_id"]
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert db.scalar("SELECT count(*) FROM job") == 1


def test_arm_sla_sets_every_timer(db):
    cid = routed(db)
    kinds = {r["kind"] for r in db.query("SELECT kind FROM sla_timer WHERE complaint_id=%s", (cid,))}
    assert kinds == {"ack_warn", "ack_breach", "resolve_warn", "resolve_breach",
                     "legal_bound", "escalate", "update"}
    db.execute("SELECT aryz_arm_sla(%s)", (cid,))
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id=%s", (cid,)) == 7


def test_transitions_timers_and_notifications(db):
    cid = routed(db)
    assert db.scalar("SELECT aryz_transition(%s, 'acknowledged', 'p')", (cid,)) is None
    pending = {r["kind"] for r in db.query(
        "SELECT kind FROM sla_timer WHERE complaint_id=%s AND fired_at IS NULL "
        "AND cancelled_at IS NULL", (cid,))}
    assert "ack_breach" not in pending and "resolve_breach" in pending
    # Waiting for the resident pauses the resolve clock.
    assert db.scalar("SELECT aryz_transition(%s, 'waiting_resident', 'p')", (cid,)) is None
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id=%s AND "
                     "due_at = 'infinity' AND paused_minutes > 0", (cid,)) >= 2
    assert db.scalar("SELECT aryz_transition(%s, 'in_progress', 'p')", (cid,)) is None
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id=%s AND "
                     "due_at = 'infinity'", (cid,)) == 0
    assert db.scalar("SELECT aryz_transition(%s, 'resolved', 'p')", (cid,)) is None
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id=%s AND kind='auto_close' "
                     "AND cancelled_at IS NULL", (cid,)) == 1
    # Reopen: back to the provider with a higher priority and fresh timers.
    assert db.scalar("SELECT aryz_transition(%s, 'routed', '+996555123456')", (cid,)) is None
    c = db.one("SELECT status, reopen_count, priority FROM complaint WHERE id=%s", (cid,))
    assert (c["status"], c["reopen_count"], c["priority"]) == ("routed", 1, 1)
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id=%s AND generation=1 "
                     "AND kind='resolve_breach'", (cid,)) == 1
    sms = [r["body"] for r in db.query("SELECT body FROM outbox WHERE channel='sms' AND "
                                       "recipient='+996555123456' ORDER BY id")]
    assert any("кабыл алынды" in s for s in sms)
    assert any("аткарылды" in s for s in sms)
    assert any("кайра ачылды" in s for s in sms)
    events = [r["to_status"] for r in db.query(
        "SELECT to_status FROM complaint_event WHERE complaint_id=%s ORDER BY id", (cid,))]
    assert events == ["received", "acknowledged", "waiting_resident", "in_progress",
                      "resolved", "routed"]


@pytest.mark.parametrize("frm,to", [("received", "resolved"), ("routed", "closed")])
def test_invalid_transitions_are_refused(db, frm, to):
    cid = routed(db) if frm == "routed" else submit(db, "x")["complaint_id"]
    assert db.scalar("SELECT aryz_transition(%s, %s, 'p')", (cid, to)) == "invalid_transition"
    assert db.scalar("SELECT status FROM complaint WHERE id=%s", (cid,)) == frm


def test_reject_needs_reason_and_events_are_append_only(db):
    import psycopg2
    cid = submit(db, "r")["complaint_id"]
    assert db.scalar("SELECT aryz_transition(%s, 'rejected', 'op')", (cid,)) == "invalid_transition"
    assert db.scalar("SELECT aryz_transition(%s, 'rejected', 'op', '{\"reason\":\"spam\"}')",
                     (cid,)) is None
    with pytest.raises(psycopg2.Error):
        db.execute("UPDATE complaint_event SET actor='x'")
    with pytest.raises(psycopg2.Error):
        db.execute("DELETE FROM complaint_event")


def test_reopen_window_expires(db):
    cid = routed(db)
    db.execute("SELECT aryz_transition(%s, 'resolved', 'p')", (cid,))
    db.execute("UPDATE complaint SET resolved_at = now() - interval '30 days' WHERE id=%s", (cid,))
    assert db.scalar("SELECT aryz_transition(%s, 'routed', 'r')", (cid,)) == "window_expired"


def test_reopened_complaint_ack_stops_escalation(db):
    # Generation 0: acknowledging cancels the ack timers and the pending
    # escalation.  A reopened complaint (generation 1, acknowledged_at
    # kept from before) must behave the same: acknowledged, it must not
    # climb the escalation chain on the 'escalate' timer armed at reopen.
    cid = routed(db)
    assert db.scalar("SELECT aryz_transition(%s, 'acknowledged', 'p')", (cid,)) is None
    assert db.scalar("SELECT aryz_transition(%s, 'resolved', 'p')", (cid,)) is None
    assert db.scalar("SELECT aryz_transition(%s, 'routed', '+996555123456')", (cid,)) is None
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id=%s AND generation=1 "
                     "AND kind='escalate' AND cancelled_at IS NULL", (cid,)) == 1
    assert db.scalar("SELECT aryz_transition(%s, 'acknowledged', 'p')", (cid,)) is None
    pending = {r["kind"] for r in db.query(
        "SELECT kind FROM sla_timer WHERE complaint_id=%s AND generation=1 "
        "AND fired_at IS NULL AND cancelled_at IS NULL", (cid,))}
    assert not pending & {"ack_warn", "ack_breach", "escalate"}
    assert "resolve_breach" in pending
    # Whatever is still armed, firing what would be due now escalates nothing.
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 minute' WHERE complaint_id=%s "
               "AND generation=1 AND kind='escalate'", (cid,))
    db.scalar("SELECT fired FROM aryz_fire_timers(100)")
    assert db.scalar("SELECT escalation_level FROM complaint WHERE id=%s", (cid,)) == 0


def test_bad_detail_is_refused_not_raised(db):
    # Every allowed transition answers with an error word on bad input:
    # 'duplicate' without a valid "duplicate_of" used to violate the
    # duplicate_of CHECK, a rating of 7 or "five" the rating CHECK / the
    # integer cast, and the caller's whole statement failed.
    first = submit(db, "d1")["complaint_id"]
    second = submit(db, "d2")["complaint_id"]
    for detail in ['{}', '{"duplicate_of": "x"}', '{"duplicate_of": 424242}',
                   '{"duplicate_of": %d}' % second]:
        assert db.scalar("SELECT aryz_transition(%s, 'duplicate', 'op', %s)",
                         (second, detail)) == "invalid_transition"
    assert db.scalar("SELECT status FROM complaint WHERE id=%s", (second,)) == "received"
    assert db.scalar("SELECT aryz_transition(%s, 'duplicate', 'op', %s)",
                     (second, '{"duplicate_of": %d}' % first)) is None
    row = db.one("SELECT status, duplicate_of, closed_at FROM complaint WHERE id=%s", (second,))
    assert row["status"] == "duplicate" and row["duplicate_of"] == first
    assert row["closed_at"] is not None
    # No chain: nothing can be made a duplicate of a duplicate.
    third = submit(db, "d3")["complaint_id"]
    assert db.scalar("SELECT aryz_transition(%s, 'duplicate', 'op', %s)",
                     (third, '{"duplicate_of": %d}' % second)) == "invalid_transition"

    cid = routed(db, "rate")
    db.execute("SELECT aryz_transition(%s, 'resolved', 'p')", (cid,))
    for bad in ['{"rating": 7}', '{"rating": "five"}', '{"rating": 4.5}']:
        assert db.scalar("SELECT aryz_transition(%s, 'closed', 'r', %s)",
                         (cid, bad)) == "invalid_transition"
    assert db.scalar("SELECT status FROM complaint WHERE id=%s", (cid,)) == "resolved"
    assert db.scalar("SELECT aryz_transition(%s, 'closed', 'r', '{\"rating\": 4}')",
                     (cid,)) is None
    assert db.scalar("SELECT rating FROM complaint WHERE id=%s", (cid,)) == 4


def test_calendar_and_policy_refuse_what_would_break_routing_later(db):
    # An unknown time zone, a day outside ISO 1..7 (Sunday as 0) or an
    # escalation delay of zero used to be stored, and only broke (or
    # silently skewed) the arming of timers when complaints came in.
    import psycopg2
    for cols, vals in [("timezone", "'Asia/Bishkekk'"), ("workdays", "'{0,1,2,3,4}'"),
                       ("workdays", "'{1,2,3,4,5,NULL}'")]:
        with pytest.raises(psycopg2.Error):
            db.execute("INSERT INTO work_calendar (name, %s) VALUES ('bad', %s)" % (cols, vals))
    for arr in ["'{240,0,960}'", "'{240,NULL}'", "'{-5}'"]:
        with pytest.raises(psycopg2.Error):
            db.execute("INSERT INTO sla_policy (name, ack_minutes, resolve_minutes, "
                       "escalation_minutes) VALUES ('bad', 60, 120, %s)" % arr)
    db.execute("INSERT INTO work_calendar (id, name, timezone, work_start, work_end, workdays) "
               "VALUES (62, 'osh night desk', 'Asia/Bishkek', '20:00', '24:00', '{1,2,3,4,5,6,7}')")
    db.execute("UPDATE municipality SET calendar_id = 62 WHERE soate=%s", (SUZAK,))
    # Work until midnight: 23:30 + 60 working minutes is 20:30 the next day.
    assert str(db.scalar("SELECT aryz_work_add(%s, '2026-03-06 23:30+06', 60) "
                         "AT TIME ZONE 'Asia/Bishkek'", (SUZAK,))) == "2026-03-07 20:30:00"
    assert db.scalar("SELECT aryz_work_between(%s, '2026-03-06 23:30+06', "
                     "'2026-03-07 20:30+06')", (SUZAK,)) == 60
