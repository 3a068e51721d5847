"""aryz-escalated over the complaint lifecycle: pause and resume while
waiting for the resident, reopen, automatic close after the follow-up
window, the test clock offset, NOTIFY wake-ups, reconnect and reload."""
import re

from escalated_helpers import (DISPATCHER_1, RESIDENT, SPECIALIST, esc_config, events, fire,
                               level, outbox, pending, routed, start, timer, wait_fired)
from escalated_helpers import submit as submit_complaint
from harness import wait_for


def transition(db, cid, to, actor=DISPATCHER_1, detail="{}"):
    return db.scalar("SELECT aryz_transition(%s, %s, %s, %s::jsonb)", (cid, to, actor, detail))


def status(db, cid):
    return db.scalar("SELECT status FROM complaint WHERE id=%s", (cid,))


def test_waiting_for_resident_pauses_the_clock(db, daemons):
    cid = routed(db)
    assert transition(db, cid, "acknowledged") is None
    assert transition(db, cid, "waiting_resident") is None
    breach = timer(db, cid, "resolve_breach")
    assert breach["due_at"].year > 9000 and breach["paused_minutes"] > 0
    # The clock 40 days ahead: everything armed is overdue, but the paused
    # resolve timers do not fire.  The legal bound is always enforced.
    d = start(daemons, db, clock_offset_seconds=40 * 86400)
    lb = wait_fired(db, timer(db, cid, "legal_bound")["id"])
    assert lb["outcome"] == "acted" and level(db, cid) == 4
    assert d.log_contains("clock_offset_seconds=3456000: timers fire early")
    assert timer(db, cid, "resolve_breach")["fired_at"] is None
    assert not events(db, cid, "sla_breach")
    d.stop()

    # Resume: the resolve timers run again for the remaining working time.
    cid = routed(db)
    assert transition(db, cid, "acknowledged") is None
    before = timer(db, cid, "resolve_breach")["due_at"]
    assert transition(db, cid, "waiting_resident") is None
    db.execute("UPDATE sla_timer SET paused_minutes = 30 WHERE complaint_id=%s "
               "AND kind='resolve_breach'", (cid,))
    assert transition(db, cid, "in_progress") is None
    after = timer(db, cid, "resolve_breach")
    assert after["due_at"] < before and after["paused_minutes"] is None
    d = start(daemons, db, name="aryz-escalated")
    t = fire(db, cid, "resolve_breach")
    assert t["outcome"] == "acted" and level(db, cid) == 1
    assert events(db, cid, "sla_breach")[0]["detail"]["sla"] == "resolve"
    # After the breach the chain goes on from level 2.
    assert ("escalate", 2) in pending(db, cid)


def test_resolved_complaint_closes_after_the_window(db, daemons):
    cid = routed(db)
    assert transition(db, cid, "acknowledged") is None
    assert transition(db, cid, "resolved") is None
    ac = timer(db, cid, "auto_close")
    # Disputed: a second complaint the resident reopens with NO.
    other = routed(db)
    assert transition(db, other, "resolved") is None
    assert transition(db, other, "routed", RESIDENT, '{"reply": "NO"}') is None
    # Rated: a third one keeps its rating and still closes.
    rated = routed(db)
    assert transition(db, rated, "resolved") is None
    db.execute("UPDATE complaint SET rating = 5 WHERE id=%s", (rated,))

    # Seven days (followup_days) later, as seen through the test clock.
    start(daemons, db, clock_offset_seconds=8 * 86400)
    assert wait_fired(db, ac["id"])["outcome"] == "acted"
    assert status(db, cid) == "closed"
    close = [e for e in events(db, cid, "status") if e["to_status"] == "closed"]
    assert len(close) == 1 and close[0]["actor"] == "aryz-escalated"
    assert close[0]["detail"]["reason"] == "auto_close"
    assert any("жабылды" in r["body"] for r in outbox(db, cid, "sms")
               if r["recipient"] == RESIDENT)
    wait_fired(db, timer(db, rated, "auto_close")["id"])
    assert status(db, rated) == "closed"
    assert db.scalar("SELECT rating FROM complaint WHERE id=%s", (rated,)) == 5
    # The disputed one is back with the provider, higher priority, and
    # its old auto-close never fires.
    c = db.one("SELECT status, priority, reopen_count FROM complaint WHERE id=%s", (other,))
    assert (c["status"], c["priority"], c["reopen_count"]) == ("routed", 1, 1)
    old = timer(db, other, "auto_close", generation=0)
    assert old["cancelled_at"] is not None and old["fired_at"] is None


def test_reopened_complaint_escalates_again_from_the_start(db, daemons):
    cid = routed(db)
    start(daemons, db)
    fire(db, cid, "escalate", 1)
    fire(db, cid, "escalate", 2)
    assert level(db, cid) == 2
    assert transition(db, cid, "resolved") is None
    assert transition(db, cid, "routed", RESIDENT, '{"reply": "0"}') is None
    c = db.one("SELECT * FROM complaint WHERE id=%s", (cid,))
    assert (c["status"], c["priority"], c["escalation_level"]) == ("routed", 1, 0)
    # The dispatcher hears of the reopen first.
    assert any(r["recipient"] == DISPATCHER_1 and "Reopened" in r["body"]
               for r in outbox(db, cid, "sms"))
    # The first generation is dead; the second escalates from level 1.
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE complaint_id=%s AND generation=0 "
                     "AND fired_at IS NULL AND cancelled_at IS NULL", (cid,)) == 0
    t = fire(db, cid, "ack_breach")
    assert t["generation"] == 1 and level(db, cid) == 1
    t = fire(db, cid, "escalate", 2)
    assert t["generation"] == 1 and level(db, cid) == 2
    assert len([r for r in outbox(db, cid, "sms") if r["recipient"] == SPECIALIST]) == 2


def test_update_reminders_repeat(db, daemons):
    cid = routed(db)
    assert transition(db, cid, "in_progress") is None
    start(daemons, db)
    fire(db, cid, "update", 0)
    t = fire(db, cid, "update", 1)
    assert t["outcome"] == "acted"
    assert [e["detail"]["reminder"] for e in events(db, cid, "update_reminder")] == [1, 2]
    assert ("update", 2) in pending(db, cid)
    assert "сообщите о ходе работ" in [r for r in outbox(db, cid, "sms")
                                      if r["recipient"] == DISPATCHER_1][-1]["body"]


def test_notify_wakes_and_sleep_ends_when_due(db, daemons):
    cid = routed(db)
    # A ten-minute poll: only NOTIFY and the computed sleep can fire it.
    d = start(daemons, db, poll_interval_ms=600000)
    t = timer(db, cid, "ack_warn")
    db.execute("UPDATE sla_timer SET due_at = now() + interval '1500 milliseconds' WHERE id=%s",
               (t["id"],))
    db.execute("SELECT pg_notify('aryz_timer', now()::text)")
    row = wait_fired(db, t["id"], timeout=20)
    # Woken by the NOTIFY, the daemon slept until the due time, not longer
    # than the poll, and never fired early.
    assert row["fired_at"] >= row["due_at"]
    assert events(db, cid, "sla_warning")


def test_poll_finds_a_timer_whose_notify_was_lost(db, daemons):
    cid = routed(db)
    d = start(daemons, db, poll_interval_ms=300)
    t = timer(db, cid, "ack_warn")
    # Made due with no NOTIFY at all: only the poll can find it.
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 second' WHERE id=%s",
               (t["id"],))
    assert wait_fired(db, t["id"])["outcome"] == "acted"
    assert d.alive()


def test_reconnect_drains_what_fell_due(servers, db, daemons):
    cid = routed(db)
    d = start(daemons, db, poll_interval_ms=600000)
    # Due, but no NOTIFY: the sleeping daemon does not know yet.
    t = timer(db, cid, "ack_warn")
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 second' WHERE id=%s",
               (t["id"],))
    off = d.log_size()
    servers.pg_stop()
    servers.pg_start()
    d.wait_log(r"database connection main ready", since=off, timeout=30)
    assert wait_fired(db, t["id"], timeout=30)["outcome"] == "acted"
    assert d.alive()


def test_reload_applies_and_sigterm_stops_cleanly(db, daemons):
    cid = routed(db)
    d = start(daemons, db, poll_interval_ms=600000)
    # Reload with the test clock a week ahead: the ack warning falls due.
    d.write_config(esc_config(db, poll_interval_ms=50, clock_offset_seconds=7 * 86400))
    d.sighup()
    t = wait_fired(db, timer(db, cid, "ack_warn")["id"], timeout=20)
    assert t["outcome"] == "acted"
    assert d.stop() == 0
    text = d.log()
    assert re.search(r"timer loop stopped, fired=\d+", text)
    assert "fired " in text and "timers in total" in text


def sms_command(db, sender, kind, ticket=None, rating=None, body="x"):
    key = "cmd-%s-%s-%s" % (sender, kind, db.scalar("SELECT count(*) FROM inbound_message"))
    return db.one("SELECT * FROM aryz_sms_command(%s, %s, '1212', %s::bytea, %s, '{}', "
                  "%s, %s, %s)", (key, sender, body.encode(), body, kind, ticket, rating))


def test_end_to_end_with_routing_and_resident_replies(db, daemons):
    """Routed by aryz-routerd's SQL, answered and disputed by SMS through
    aryz-smsd's SQL; the timers do the rest."""
    cid = submit_complaint(db)
    assert db.scalar("SELECT aryz_route_complaint(%s, 'test')", (cid,)) == "routed"
    c = db.one("SELECT * FROM complaint WHERE id=%s", (cid,))
    assert (c["provider_id"], c["responsible"]) == (1, "provider")
    start(daemons, db)
    # Nobody acknowledges: breach, escalated to the dispatcher.
    fire(db, cid, "ack_breach")
    assert level(db, cid) == 1
    # The dispatcher reports it done by SMS; the escalation stops.
    assert sms_command(db, DISPATCHER_1, "done", c["ticket"])["handled"]
    assert status(db, cid) == "resolved"
    assert not any(k in ("escalate", "resolve_breach") for k, _ in pending(db, cid))
    # The resident disputes it: back to the provider, higher priority.
    assert sms_command(db, RESIDENT, "reopen", body="JOK")["handled"]
    c = db.one("SELECT * FROM complaint WHERE id=%s", (cid,))
    assert (c["status"], c["priority"], c["reopen_count"], c["escalation_level"]) == \
        ("routed", 1, 1, 0)
    t = fire(db, cid, "ack_warn")
    assert t["generation"] == 1 and len(events(db, cid, "sla_warning")) == 1
    # Done again; the resident stays silent; closed after the window.
    assert sms_command(db, DISPATCHER_1, "done", c["ticket"])["handled"]
    t = fire(db, cid, "auto_close")
    assert t["outcome"] == "acted" and status(db, cid) == "closed"
