"""aryz-routerd queue: the claim plan, NOTIFY / poll / reconnect wake-ups,
two instances over 10,000 complaints, kill -9 in the middle of a batch,
retries into dead_letter and aryzctl requeue."""
import re
import time

import psycopg2

from harness import wait_for
from routerd_helpers import (assert_each_routed_once, config, insert_without_notify,
                             pending, start, submit, submit_many, wait_all_routed)

CLAIM = ("SELECT id FROM job WHERE kind = 'route' AND run_at <= now()"
         " ORDER BY run_at, id LIMIT 50 FOR UPDATE SKIP LOCKED")


def status(db, cid):
    return db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,))


def test_claim_uses_the_job_claim_index(db):
    submit_many(db, 1, 3000)
    db.execute("ANALYZE job")
    plan = "\n".join(r["QUERY PLAN"] for r in db.query("EXPLAIN " + CLAIM))
    assert "Index Scan using job_claim" in plan, plan
    assert "Sort" not in plan, plan


def test_notify_wakes_it_without_polling(db, daemons):
    rd = start(daemons, db, poll_ms=600000)
    t0 = time.monotonic()
    cid = submit(db, "n1", phone="+996700600001")["complaint_id"]
    wait_for(lambda: status(db, cid) == "routed", 10, "routed on NOTIFY")
    assert time.monotonic() - t0 < 10
    assert rd.log_contains(r"wake-up \(notify\)")


def test_a_lost_notify_is_covered_by_polling(db, daemons):
    rd = start(daemons, db, poll_ms=300)
    since = rd.log_size()
    cid = insert_without_notify(db)
    wait_for(lambda: status(db, cid) == "routed", 15, "routed by the poll")
    assert rd.log_contains(r"wake-up \(timer\)", since)
    assert not rd.log_contains(r"wake-up \(notify\)", since)


def test_reconnect_drains_at_once(db, daemons):
    rd = start(daemons, db, poll_ms=600000)
    since = rd.log_size()
    cid = insert_without_notify(db)
    # Cut routerd's connection: it reconnects and drains without waiting
    # for a (10 minute) poll or a NOTIFY.
    assert db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                     " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                     " AND backend_type = 'client backend'") == 1
    rd.wait_log(r"database connection main lost", since=since)
    wait_for(lambda: status(db, cid) == "routed", 20, "routed after reconnect")
    assert rd.log_contains(r"wake-up \(connect\)", since)


def test_two_instances_route_10000_exactly_once(db, daemons):
    a = start(daemons, db, instance="a", level="info", worker="rd-a")
    b = start(daemons, db, instance="b", level="info", worker="rd-b")
    # Arrives as ingress traffic does: many commits, many NOTIFYs.
    for i in range(20):
        submit_many(db, i * 500 + 1, (i + 1) * 500, tag="two")
    wait_all_routed(db, timeout=150)
    assert_each_routed_once(db, 10000)
    by = {r["actor"]: r["n"] for r in db.query(
        "SELECT actor, count(*) AS n FROM complaint_event WHERE kind = 'status'"
        " GROUP BY actor")}
    assert set(by) == {"rd-a", "rd-b"} and sum(by.values()) == 10000, by
    assert a.alive() and b.alive()


def test_kill9_mid_batch_loses_and_repeats_nothing(db, daemons):
    submit_many(db, 1, 4000, tag="k9")
    rd = start(daemons, db, level="info", batch=50)
    wait_for(lambda: 0 < 4000 - pending(db), 30, "routing started", interval=0.01)
    rd.kill9()
    left = pending(db)
    assert 0 < left < 4000, left       # killed part way
    # Every complaint is either routed (its job deleted) or untouched (its
    # job still queued): a batch commits or rolls back whole.
    assert db.scalar("SELECT count(*) FROM job WHERE kind = 'route'") == left
    assert db.scalar("SELECT count(*) FROM job j JOIN complaint c"
                     " ON c.id = (j.payload->>'complaint_id')::bigint"
                     " WHERE c.status <> 'received'") == 0
    start(daemons, db, name="aryz-routerd", level="info")
    wait_all_routed(db, timeout=90)
    assert_each_routed_once(db, 4000)


def test_failing_job_goes_to_dead_letter_and_can_be_requeued(servers, db, daemons):
    db.execute("UPDATE aryz_setting SET value = '3' WHERE key = 'max_job_attempts'")
    db.execute("INSERT INTO aryz_setting VALUES ('route_retry_base_ms', '50')"
               " ON CONFLICT (key) DO UPDATE SET value = '50'")
    # Routing of this one complaint fails (say, a bug meeting bad data).
    db.execute("""
        CREATE FUNCTION t_fail() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.to_status = 'routed' AND NEW.complaint_id = (SELECT min(id) FROM complaint)
            THEN RAISE EXCEPTION 'injected failure for %', NEW.complaint_id; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER t_fail BEFORE INSERT ON complaint_event
            FOR EACH ROW EXECUTE FUNCTION t_fail();""")
    bad = submit(db, "f1", phone="+996700700001")["complaint_id"]
    good = submit(db, "f2", phone="+996700700002", cat="lighting")["complaint_id"]
    # A job whose complaint does not exist fails too.
    db.execute("INSERT INTO job (kind, dedup_key, payload) VALUES"
               " ('route', 'route:999999', '{\"complaint_id\": 999999}')")
    rd = start(daemons, db, poll_ms=100)

    # The bad jobs do not hold up the good one.
    wait_for(lambda: status(db, good) == "routed", 15, "good one routed")
    wait_for(lambda: db.scalar("SELECT count(*) FROM dead_letter") == 2, 30, "dead letters")
    assert db.scalar("SELECT count(*) FROM job") == 0
    dl = db.query("SELECT * FROM dead_letter ORDER BY job_id")
    assert [d["attempts"] for d in dl] == [3, 3]
    assert "injected failure" in dl[0]["last_error"]
    assert "complaint 999999 not found" in dl[1]["last_error"]
    assert status(db, bad) == "received"        # rolled back, nothing half done
    assert db.scalar("SELECT count(*) FROM outbox WHERE complaint_id = %s", (bad,)) == 0
    assert rd.log_contains(r"moved to dead_letter")

    out = servers.ctl("dead-letters", db=db.name).stdout
    assert "injected failure" in out and "999999" in out
    # Fixed: requeue the complaint's job; it routes, once.
    db.execute("DROP TRIGGER t_fail ON complaint_event")
    dl_id = dl[0]["id"]
    out = servers.ctl("requeue", str(dl_id), db=db.name).stdout
    assert "requeued 1 job(s)" in out
    wait_for(lambda: status(db, bad) == "routed", 15, "requeued job routed")
    assert db.scalar("SELECT count(*) FROM outbox WHERE idem_key = %s",
                     ("route:%d:resident" % bad,)) == 1
    again = servers.ctl("requeue", str(dl_id), db=db.name, check=False)
    assert again.returncode == 1 and "no dead letter %d waiting" % dl_id in again.stderr
    bad_arg = servers.ctl("requeue", "12x", db=db.name, check=False)
    assert bad_arg.returncode == 1 and "not a dead letter id" in bad_arg.stderr
    remaining = servers.ctl("dead-letters", db=db.name).stdout
    assert "999999" in remaining and "injected" not in remaining
    st = servers.ctl("status", db=db.name).stdout
    assert "dead_letter\t1" in st


def test_retry_backs_off(servers, db, daemons):
    db.execute("INSERT INTO job (kind, dedup_key, payload) VALUES"
               " ('route', 'route:888888', '{\"complaint_id\": 888888}')")
    start(daemons, db, poll_ms=100)
    wait_for(lambda: db.scalar("SELECT attempts FROM job") >= 1, 15, "first failure")
    j = db.one("SELECT attempts, last_error, run_at - now() AS wait FROM job")
    st = servers.ctl("status", db=db.name).stdout
    assert re.search(r"^job:route:retrying\t1\t\d+\t", st, re.M), st
    assert "not found" in j["last_error"]
    # 5 s base, jitter 75..125%: far beyond the 100 ms poll.
    assert j["wait"].total_seconds() > 2
    time.sleep(0.5)
    assert db.scalar("SELECT attempts FROM job") == j["attempts"]


def test_sigterm_mid_drain_commits_the_batch_and_exits_0(db, daemons):
    submit_many(db, 1, 3000, tag="term")
    rd = start(daemons, db, level="info")
    wait_for(lambda: pending(db) < 3000, 30, "routing started", interval=0.01)
    assert rd.stop() == 0
    left = pending(db)
    assert 0 < left < 3000, left
    # Stopped between batches: what is not routed is still queued.
    assert db.scalar("SELECT count(*) FROM job") == left
    assert rd.log_contains(r"queue: totals batches=\d+ claimed=%d " % (3000 - left))


def test_sighup_reloads_the_batch_size(db, daemons):
    rd = start(daemons, db, batch=50)
    rd.write_config(config(db, batch=7))
    since = rd.log_size()
    rd.sighup()
    rd.wait_log("configuration reloaded", since=since)
    submit_many(db, 1, 40, tag="hup")
    wait_all_routed(db)
    assert rd.log_contains(r"batch claimed=7 ", since)
    assert not rd.log_contains(r"batch claimed=(?:[89]|[1-9]\d) ", since)


def test_failing_batches_back_off_and_recover_without_restart(db, daemons):
    # As if the schema were not migrated yet: the batch function is missing.
    db.execute("ALTER FUNCTION aryz_route_batch(int, text) RENAME TO aryz_route_batch_x")
    cid = submit(db, "m1", phone="+996700800001")["complaint_id"]
    rd = start(daemons, db, poll_ms=100, backoff_max_ms=400)
    rd.wait_log(r"route batch failed \(3 in a row\), retrying in \d+ ms: .*aryz_route_batch")
    assert rd.alive() and status(db, cid) == "received"
    # Fixed (aryzctl migrate): the next attempt routes, no restart needed.
    db.execute("ALTER FUNCTION aryz_route_batch_x(int, text) RENAME TO aryz_route_batch")
    wait_for(lambda: status(db, cid) == "routed", 15, "routed after the fix")
    log = rd.log()
    waits = [int(m) for m in re.findall(r"retrying in (\d+) ms", log)]
    assert max(waits) <= 500 and waits[0] <= 125     # 100 ms doubling, capped, +-25%


def test_a_locked_complaint_does_not_stall_the_batch(db, daemons):
    db.execute("UPDATE aryz_setting SET value = '200' WHERE key = 'route_lock_timeout_ms'")
    db.execute("UPDATE aryz_setting SET value = '100' WHERE key = 'route_retry_base_ms'")
    first = submit(db, "l1", phone="+996700900001")["complaint_id"]
    second = submit(db, "l2", phone="+996700900002", cat="lighting")["complaint_id"]
    # Someone holds the first complaint in a long transaction.
    holder = psycopg2.connect(db.conninfo)
    try:
        cur = holder.cursor()
        cur.execute("SELECT 1 FROM complaint WHERE id = %s FOR UPDATE", (first,))
        start(daemons, db, poll_ms=100)
        wait_for(lambda: status(db, second) == "routed", 15, "the other one routed")
        wait_for(lambda: db.scalar("SELECT attempts FROM job") >= 1, 15, "lock timeout")
        assert "55P03" in db.scalar("SELECT last_error FROM job")   # lock_not_available
        assert status(db, first) == "received"
    finally:
        holder.rollback()
        holder.close()
    wait_for(lambda: status(db, first) == "routed", 15, "routed once the lock is gone")
