"""aryz-escalated: warnings, breaches, every level of the escalation chain,
the legal bound, cancel on acknowledge, and working time across weekends
and Kyrgyz holidays."""
import datetime

from escalated_helpers import (AK_BULUNG, DISPATCHER_1, HEAD, RAYON, SERVICE, SPECIALIST,
                               SUZAK, events, fire, level, make_due, outbox, pending,
                               routed, start, timer, wait_fired)
from harness import wait_for


def sms_to(db, cid, phone):
    return [r for r in outbox(db, cid, "sms") if r["recipient"] == phone]


def test_ack_warning_goes_to_the_dispatcher(db, daemons):
    cid = routed(db)
    start(daemons, db)
    t = fire(db, cid, "ack_warn")
    assert t["outcome"] == "acted"
    ev = events(db, cid, "sla_warning")
    assert len(ev) == 1 and ev[0]["detail"]["timer_id"] == t["id"]
    assert ev[0]["detail"]["recipient"] == DISPATCHER_1 and ev[0]["actor"] == "aryz-escalated"
    sms = sms_to(db, cid, DISPATCHER_1)
    assert len(sms) == 1 and sms[0]["idem_key"] == "timer:%d:warn:sms" % t["id"]
    assert "подтвердите заявку до" in sms[0]["body"] and "Вывоз мусора" in sms[0]["body"]
    # A warning is for the responsible party: its own topic only.
    topics = [r["recipient"] for r in outbox(db, cid, "mqtt", "timer:%")]
    assert topics == ["aryz/v1/providers/1/escalations"]
    # A warning is not an escalation.
    assert level(db, cid) == 0
    # The resolve warning says "resolve".
    t = fire(db, cid, "resolve_warn")
    assert "выполните заявку" in sms_to(db, cid, DISPATCHER_1)[-1]["body"]


def test_breach_then_every_level_of_the_chain(db, daemons):
    cid = routed(db)
    start(daemons, db)
    # Not acknowledged in time: breach, and up to level 1 (the dispatcher).
    t = fire(db, cid, "ack_breach")
    assert [e["detail"]["sla"] for e in events(db, cid, "sla_breach")] == ["ack"]
    assert level(db, cid) == 1
    esc = events(db, cid, "escalated")
    assert len(esc) == 1 and esc[0]["detail"]["level"] == 1
    assert esc[0]["detail"]["reason"] == "ack_breach"
    assert "уровень 1: не подтверждена в срок" in sms_to(db, cid, DISPATCHER_1)[-1]["body"]
    # The pending level-1 timer is superseded; level 2 is armed after
    # escalation_minutes[2] = 480 working minutes from the breach.
    assert timer(db, cid, "escalate", 1)["outcome"] == "superseded"
    assert ("escalate", 2) in pending(db, cid)
    l2 = timer(db, cid, "escalate", 2)
    expect = db.scalar("SELECT aryz_work_add(%s, %s, 480)", (SUZAK, t["fired_at"]))
    assert abs((l2["due_at"] - expect).total_seconds()) < 5

    for lvl, phone in ((2, SPECIALIST), (3, HEAD), (4, RAYON)):
        t = fire(db, cid, "escalate", lvl)
        assert t["outcome"] == "acted"
        assert level(db, cid) == lvl
        sms = sms_to(db, cid, phone)
        assert len(sms) == 1 and "уровень %d: нет реакции" % lvl in sms[0]["body"], sms
        assert sms[0]["idem_key"] == "timer:%d:L%d:sms" % (t["id"], lvl)
        if lvl < 4:
            assert ("escalate", lvl + 1) in pending(db, cid)
    # The top of the chain arms nothing further.
    assert not any(k == "escalate" for k, _ in pending(db, cid))
    assert [e["detail"]["level"] for e in events(db, cid, "escalated")] == [1, 2, 3, 4]
    assert {e["detail"]["role"] for e in events(db, cid, "escalated")} == {
        "dispatcher", "specialist", "head", "rayon"}


def test_escalation_timer_and_breach_due_together_raise_one_level(db, daemons):
    # DEMO standard: ack 240 min and escalation level 1 after 240 min.
    cid = routed(db)
    b, e = timer(db, cid, "ack_breach"), timer(db, cid, "escalate", 1)
    assert b["due_at"] == e["due_at"]
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 minute' WHERE id IN (%s, %s)",
               (b["id"], e["id"]))
    start(daemons, db)
    wait_fired(db, b["id"])
    wait_for(lambda: db.scalar("SELECT cancelled_at IS NOT NULL OR fired_at IS NOT NULL "
                               "FROM sla_timer WHERE id=%s", (e["id"],)))
    assert level(db, cid) == 1
    assert len(events(db, cid, "escalated")) == 1


def test_municipality_responsible_starts_at_its_service_desk(db, daemons):
    cid = routed(db, cat="landscaping", provider=None, contract=None)
    # Policy 0 (municipality default) applies: 540 working minutes to ack.
    assert db.scalar("SELECT (aryz_policy_of(%s)).id", (cid,)) == 0
    start(daemons, db)
    fire(db, cid, "escalate", 1)
    assert level(db, cid) == 1
    assert len(sms_to(db, cid, SERVICE)) == 1
    # No provider topic for a complaint the municipality handles itself.
    assert {r["recipient"] for r in outbox(db, cid, "mqtt", "timer:%")} == {
        "aryz/v1/%s/landscaping/escalation" % SUZAK}


def test_missing_phone_is_recorded_and_the_chain_goes_on(db, daemons):
    db.execute("UPDATE municipality SET specialist_phone = NULL WHERE soate=%s", (SUZAK,))
    cid = routed(db)
    start(daemons, db)
    fire(db, cid, "escalate", 1)
    t = fire(db, cid, "escalate", 2)
    assert t["outcome"] == "acted" and level(db, cid) == 2
    ev = events(db, cid, "escalated")[-1]
    assert ev["detail"]["role"] == "specialist" and ev["detail"]["recipient"] is None
    assert not outbox(db, cid, "sms", "timer:%d:%%" % t["id"])
    assert outbox(db, cid, "mqtt", "timer:%d:%%" % t["id"])
    assert ("escalate", 3) in pending(db, cid)


def test_legal_bound_goes_straight_to_head_and_rayon(db, daemons):
    cid = routed(db)
    assert db.scalar("SELECT aryz_transition(%s, 'acknowledged', %s)", (cid, DISPATCHER_1)) is None
    start(daemons, db)
    t = fire(db, cid, "legal_bound")
    assert t["outcome"] == "acted"
    assert level(db, cid) == 4
    assert len(sms_to(db, cid, HEAD)) == 1 and len(sms_to(db, cid, RAYON)) == 1
    assert "законный срок" in sms_to(db, cid, RAYON)[0]["body"]
    ev = events(db, cid, "legal_bound")
    assert len(ev) == 1 and ev[0]["detail"]["legal_bound_days"] == 14
    # Nothing below the top is pending any more; a later breach records
    # the breach but cannot go higher.
    assert not any(k == "escalate" for k, _ in pending(db, cid))
    fire(db, cid, "resolve_breach")
    assert len(events(db, cid, "sla_breach")) == 1 and level(db, cid) == 4
    assert len(events(db, cid, "escalated")) == 0


def test_legal_bound_is_configurable_in_working_days(db):
    db.execute("UPDATE sla_policy SET legal_bound_days = 3 WHERE id = 1")
    cid = routed(db)
    t = timer(db, cid, "legal_bound")
    expect = db.scalar("SELECT aryz_work_add(%s, %s, 3 * 540)", (SUZAK, t["created_at"]))
    assert t["due_at"] == expect


def test_acknowledge_cancels_and_stale_timers_do_nothing(db, daemons):
    cid = routed(db)
    ack = timer(db, cid, "ack_breach")
    assert db.scalar("SELECT aryz_transition(%s, 'acknowledged', %s)", (cid, DISPATCHER_1)) is None
    for kind in ("ack_warn", "ack_breach", "escalate"):
        assert timer(db, cid, kind)["cancelled_at"] is not None
    # Even overdue, a cancelled timer never fires.
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 hour' WHERE id=%s", (ack["id"],))
    # A timer of an older generation than the complaint is stale.
    db.execute("UPDATE complaint SET reopen_count = 1 WHERE id=%s", (cid,))
    db.execute("INSERT INTO sla_timer (complaint_id, kind, level, generation, due_at) "
               "VALUES (%s, 'resolve_breach', 1, 0, now() - interval '1 second')", (cid,))
    old = db.scalar("SELECT id FROM sla_timer WHERE complaint_id=%s AND kind='resolve_breach' "
                    "AND level=1", (cid,))
    d = start(daemons, db)
    assert wait_fired(db, old)["outcome"] == "stale"
    db.execute("UPDATE complaint SET reopen_count = 0 WHERE id=%s", (cid,))
    # A pending ack timer of a complaint that is past acknowledging (here
    # armed behind aryz_transition's back) fires with no effect.
    db.execute("INSERT INTO sla_timer (complaint_id, kind, level, generation, due_at) "
               "VALUES (%s, 'ack_warn', 1, 0, now() + interval '1 hour')", (cid,))
    stray = db.scalar("SELECT id FROM sla_timer WHERE complaint_id=%s AND kind='ack_warn' "
                      "AND level=1", (cid,))
    make_due(db, stray)
    assert wait_fired(db, stray)["outcome"] == "not_applicable:acknowledged"
    assert db.scalar("SELECT fired_at FROM sla_timer WHERE id=%s", (ack["id"],)) is None
    assert not events(db, cid, "sla_warning") and not events(db, cid, "sla_breach")
    assert level(db, cid) == 0
    assert d.alive()


def test_working_time_skips_weekends_and_holidays(db):
    def add(start, minutes, muni=SUZAK):
        return str(db.scalar("SELECT aryz_work_add(%s, %s::timestamptz, %s) "
                             "AT TIME ZONE 'Asia/Bishkek'", (muni, start, minutes)))
    # Friday 5 March 2027 17:00 + 2 h: Saturday, Sunday, Monday 8 March
    # (Women's Day) are off; Tuesday 10:00.
    assert add("2027-03-05 17:00+06", 120) == "2027-03-09 10:00:00"
    # Thursday 20 March 2025 17:00 + 2 h: Friday 21 March is Nooruz.
    assert add("2025-03-20 17:00+06", 120) == "2025-03-24 10:00:00"
    # An escalation delay of 480 min from Friday 5 November 2027 16:00:
    # 120 min on Friday, the weekend, Monday 8 November (Days of History
    # and Commemoration of Ancestors) is off, 360 min on Tuesday.
    assert add("2027-11-05 16:00+06", 480) == "2027-11-09 15:00:00"
    # A one-time holiday (Orozo Ait 2026, Friday 20 March) counts too.
    assert add("2026-03-19 17:30+06", 60) == "2026-03-23 09:30:00"
    # The municipality's own calendar counts: Ak-Bulung on a six-day week.
    db.execute("INSERT INTO work_calendar (id, name, workdays) VALUES (50, 'six days', "
               "'{1,2,3,4,5,6}')")
    db.execute("UPDATE municipality SET calendar_id = 50 WHERE soate=%s", (AK_BULUNG,))
    assert add("2027-11-05 16:00+06", 480, AK_BULUNG) == "2027-11-06 15:00:00"


def test_next_level_is_armed_in_working_time(db, daemons):
    # Level 2 is due after 480 working minutes from the moment level 1 is
    # reached; on a calendar with no working day left this week it moves
    # past the weekend.  Use a calendar where today is never a workday.
    today = db.scalar("SELECT extract(isodow FROM now() AT TIME ZONE 'Asia/Bishkek')::int")
    days = [d for d in range(1, 8) if d != today]
    db.execute("INSERT INTO work_calendar (id, name, workdays) VALUES (51, 'not today', %s)",
               (days,))
    db.execute("UPDATE municipality SET calendar_id = 51 WHERE soate=%s", (SUZAK,))
    cid = routed(db)
    start(daemons, db)
    t = fire(db, cid, "escalate", 1)
    l2 = timer(db, cid, "escalate", 2)
    local = db.scalar("SELECT %s::timestamptz AT TIME ZONE 'Asia/Bishkek'", (l2["due_at"],))
    fired_local = db.scalar("SELECT %s::timestamptz AT TIME ZONE 'Asia/Bishkek'", (t["fired_at"],))
    assert local.date() > fired_local.date()
    assert local.isoweekday() != today
    assert local.time() >= datetime.time(9, 0) and local.time() <= datetime.time(18, 0)


def test_failing_timer_is_retried_and_others_fire(db, daemons):
    # A calendar without any working day makes arming the next level
    # fail; that timer is retried later, the daemon and other timers go on.
    db.execute("INSERT INTO work_calendar (id, name, workdays) VALUES (52, 'broken', '{}')")
    cid_ok = routed(db)
    cid_bad = routed(db, muni=AK_BULUNG, cat="water", provider=3, contract=3)
    db.execute("UPDATE municipality SET calendar_id = 52 WHERE soate=%s", (AK_BULUNG,))
    bad = timer(db, cid_bad, "escalate", 1)
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 second' WHERE id=%s",
               (bad["id"],))
    d = start(daemons, db)
    wait_for(lambda: db.scalar("SELECT attempts FROM sla_timer WHERE id=%s", (bad["id"],)) >= 1)
    row = db.one("SELECT * FROM sla_timer WHERE id=%s", (bad["id"],))
    assert row["fired_at"] is None and row["outcome"].startswith("failed: ")
    assert "no working time" in row["outcome"]
    assert row["due_at"] > bad["created_at"]
    # Nothing of the failed action was kept.
    assert level(db, cid_bad) == 0 and not events(db, cid_bad, "escalated")
    t = fire(db, cid_ok, "escalate", 1)
    assert t["outcome"] == "acted" and d.alive()
    assert d.log_contains("fired=")


def test_a_failing_warning_does_not_hold_up_the_batch(db, daemons):
    # Warnings are fired set-based; when that statement fails, each is
    # retried on its own, so only the bad one is left for later.
    cids = [routed(db) for _ in range(3)]
    bad = cids[1]
    db.execute("CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "IF NEW.complaint_id = %d AND NEW.kind = 'sla_warning' THEN "
               "RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$" % bad)
    db.execute("CREATE TRIGGER test_boom BEFORE INSERT ON complaint_event "
               "FOR EACH ROW EXECUTE FUNCTION test_boom()")
    ids = [timer(db, c, "ack_warn")["id"] for c in cids]
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 second' WHERE id = ANY(%s)",
               (ids,))
    d = start(daemons, db)
    for i in (ids[0], ids[2]):
        assert wait_fired(db, i)["outcome"] == "acted"
    row = db.one("SELECT * FROM sla_timer WHERE id=%s", (ids[1],))
    assert row["fired_at"] is None and row["attempts"] == 1
    assert row["outcome"] == "failed: boom"
    assert not events(db, bad, "sla_warning") and not outbox(db, bad, like="timer:%")
    # Fixed: the retry fires it (brought forward here instead of waiting).
    db.execute("DROP TRIGGER test_boom ON complaint_event")
    make_due(db, ids[1])
    assert wait_fired(db, ids[1])["outcome"] == "acted"
    assert len(events(db, bad, "sla_warning")) == 1
    assert d.alive()


def test_a_complaint_being_changed_is_skipped_not_fired(db, daemons):
    # The provider acknowledges in the very moment the ack breach falls
    # due: the transaction holding the complaint wins, the breach waits
    # for it and is then cancelled, never fired.
    import psycopg2
    cid = routed(db)
    other = routed(db)
    brk = timer(db, cid, "ack_breach")
    warn = timer(db, other, "ack_warn")
    tx = psycopg2.connect(db.conninfo)
    try:
        cur = tx.cursor()
        cur.execute("SELECT 1 FROM complaint WHERE id=%s FOR UPDATE", (cid,))
        db.execute("UPDATE sla_timer SET due_at = now() - interval '1 second' WHERE id IN (%s, %s)",
                   (brk["id"], warn["id"]))
        d = start(daemons, db, idle_delay_ms=20)
        # The other complaint's timer fires; this one is skipped, repeatedly.
        wait_fired(db, warn["id"])
        assert db.scalar("SELECT fired_at FROM sla_timer WHERE id=%s", (brk["id"],)) is None
        cur.execute("SELECT aryz_transition(%s, 'acknowledged', %s)", (cid, DISPATCHER_1))
        assert cur.fetchone()[0] is None
        tx.commit()
    finally:
        tx.close()
    wait_for(lambda: db.scalar("SELECT cancelled_at IS NOT NULL FROM sla_timer WHERE id=%s",
                               (brk["id"],)))
    assert db.scalar("SELECT fired_at FROM sla_timer WHERE id=%s", (brk["id"],)) is None
    assert not events(db, cid, "sla_breach") and level(db, cid) == 0
    assert d.alive()
