"""aryz-escalated under load: 100,000 overdue timers survive a kill -9
with none lost and none fired twice; two instances never fire one twice."""
import os
import re

from escalated_helpers import esc_config, start
from harness import BIN, wait_for


def bulk_overdue_warnings(db, n):
    """n routed complaints, each with an overdue ack warning (bulk SQL)."""
    db.execute("INSERT INTO complaint (channel, reporter, status, municipality_soate, "
               "category_code, responsible, provider_id, contract_id, routed_at) "
               "SELECT 'api', 'bulk-' || g, 'routed', '41703220856000', 'waste', 'provider', "
               "1, 1, now() FROM generate_series(1, %s) g", (n,))
    db.execute("INSERT INTO sla_timer (complaint_id, kind, due_at) "
               "SELECT id, 'ack_warn', now() - (id % 3600) * interval '1 second' "
               "FROM complaint WHERE reporter LIKE 'bulk-%%'")
    db.execute("ANALYZE complaint")
    db.execute("ANALYZE sla_timer")


def fired(db):
    return db.scalar("SELECT count(*) FROM sla_timer WHERE fired_at IS NOT NULL")


def check_exactly_once(db, n):
    """Every fired timer has exactly one event and its two messages."""
    ev = db.one("SELECT count(*) AS n, count(DISTINCT detail->>'timer_id') AS d "
                "FROM complaint_event WHERE kind = 'sla_warning'")
    f = fired(db)
    assert ev["n"] == ev["d"] == f, (ev, f)
    # An SMS to the dispatcher and an MQTT message on the provider topic.
    assert db.scalar("SELECT count(*) FROM outbox WHERE idem_key LIKE 'timer:%%'") == 2 * f
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE fired_at IS NOT NULL "
                     "AND outcome IS DISTINCT FROM 'acted'") == 0
    return f


def logged_total(d, since=0):
    """Timers the daemon says it fired (log lines after byte since)."""
    return sum(int(x) for x in re.findall(r"msg=\"fired=(\d+) ", d.log(since)))


def test_kill9_with_100k_overdue_timers_loses_and_duplicates_none(db, daemons):
    n = 100000
    bulk_overdue_warnings(db, n)
    d = start(daemons, db, batch_size=1000)
    wait_for(lambda: fired(db) >= 15000, 90, "15,000 fired")
    d.kill9()
    # The server finishes (and commits, or rolls back) the batch that was
    # in flight on its own; wait until that backend is gone.
    wait_for(lambda: db.scalar("SELECT count(*) = 0 FROM pg_stat_activity WHERE "
                               "datname = current_database() AND pid <> pg_backend_pid() "
                               "AND backend_type = 'client backend'"), 30, "old backend gone")
    part = check_exactly_once(db, n)
    assert part < n, "all fired before the kill; the test proves nothing"
    since = d.log_size()
    d = start(daemons, db, batch_size=1000)
    wait_for(lambda: fired(db) == n, 120, "all %d fired" % n)
    assert check_exactly_once(db, n) == n
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE fired_at IS NULL") == 0
    # The restarted daemon fired exactly what the first left over.
    wait_for(lambda: logged_total(d, since) == n - part, 10, "log total")
    assert d.stop() == 0


def test_two_instances_never_fire_a_timer_twice(db, daemons):
    n = 20000
    # Two processes of the same binary, each with its own config and log,
    # both idle; then the timers fall due and NOTIFY wakes both at once.
    a = daemons("aryz-escalated-a", "")
    b = daemons("aryz-escalated-b", "")
    for d in (a, b):
        d.binary = os.path.join(BIN, "aryz-escalated")
        d.write_config(esc_config(db, batch_size=100, poll_interval_ms=600000))
        d.start(wait_log=r"database connection main ready")
    bulk_overdue_warnings(db, n)
    db.execute("SELECT pg_notify('aryz_timer', now()::text)")
    wait_for(lambda: fired(db) == n, 90, "all %d fired" % n)
    assert check_exactly_once(db, n) == n
    wait_for(lambda: logged_total(a) + logged_total(b) == n, 10, "log totals")
    # Both took part (SKIP LOCKED let them work side by side).
    assert logged_total(a) > 0 and logged_total(b) > 0
    assert a.stop() == 0 and b.stop() == 0
