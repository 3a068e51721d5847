"""escalated_bench.py - how fast aryz-escalated fires SLA timers, and how
late.  Throwaway PostgreSQL + Mosquitto (tests/integration/harness.py).

1. Backlog: N routed complaints with an ack warning due now; measure the
   daemon draining them (timers/s, lateness = fired_at - due_at) against
   a baseline in the same run: a bare claim loop (UPDATE ... FOR UPDATE
   SKIP LOCKED in batches of the same size, no action) on an identical
   copy of the data.
2. Live: the daemon idle, then M timers armed with due times spread over
   the next few seconds (NOTIFY aryz_timer, as aryz_arm_sla does);
   lateness of each.

Prints figures, asserts nothing.  Usage: escalated_bench.py [N] [M]
"""
import contextlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "tests", "integration"))
import psycopg2  # noqa: E402

from harness import Daemon, Database, Servers, wait_for  # noqa: E402

BATCH = 200
SUZAK = "41703220856000"


def conn(db):
    c = psycopg2.connect(db.conninfo)
    c.autocommit = True
    return c


@contextlib.contextmanager
def cursor(db):
    """An autocommit cursor on a connection closed afterwards."""
    c = conn(db)
    try:
        with c.cursor() as cur:
            yield cur
    finally:
        c.close()


def bulk(db, n, due_sql):
    with cursor(db) as cur:
        cur.execute("INSERT INTO complaint (channel, reporter, status, municipality_soate, "
                    "category_code, responsible, provider_id, contract_id, routed_at) "
                    "SELECT 'api', 'bench-' || g, 'routed', %s, 'waste', 'provider', 1, 1, now() "
                    "FROM generate_series(1, %s) g RETURNING id", (SUZAK, n))
        ids = [r[0] for r in cur.fetchall()]
        cur.execute("INSERT INTO sla_timer (complaint_id, kind, due_at) "
                    "SELECT id, 'ack_warn', " + due_sql + " FROM unnest(%s::bigint[]) id",
                    (ids,))
        cur.execute("ANALYZE complaint; ANALYZE sla_timer")


def lateness(db, where="true"):
    with cursor(db) as cur:
        cur.execute("SELECT count(*), "
                    "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)), "
                    "percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)), "
                    "extract(epoch FROM max(fired_at) - min(fired_at)) "
                    "FROM sla_timer WHERE fired_at IS NOT NULL AND " + where)
        return [float(x) if x is not None else float("nan") for x in cur.fetchone()]


def due_now(db):
    """The whole backlog falls due at this moment."""
    with cursor(db) as cur:
        cur.execute("UPDATE sla_timer SET due_at = now() WHERE fired_at IS NULL")
        cur.execute("VACUUM ANALYZE sla_timer")


def fired(db):
    with cursor(db) as cur:
        cur.execute("SELECT count(*) FROM sla_timer WHERE fired_at IS NOT NULL")
        return cur.fetchone()[0]


def baseline(db, n):
    """A bare claim loop: what SKIP LOCKED batching costs with no action."""
    t0 = time.monotonic()
    with cursor(db) as cur:
        done = 0
        while done < n:
            cur.execute("UPDATE sla_timer SET fired_at = clock_timestamp() WHERE id IN ("
                        "SELECT id FROM sla_timer WHERE fired_at IS NULL AND cancelled_at IS NULL "
                        "AND due_at <= now() ORDER BY due_at, id LIMIT %s "
                        "FOR NO KEY UPDATE SKIP LOCKED)", (BATCH,))
            if cur.rowcount == 0:
                break
            done += cur.rowcount
    return done, time.monotonic() - t0


def daemon(workdir, db, name="aryz-escalated"):
    cfg = ('database: { conninfo = "%s"; };\nlog: { level = "info"; };\n'
           "timers: { batch_size = %d; poll_interval_ms = 5000; };\n" % (db.conninfo, BATCH))
    return Daemon(workdir, name, cfg)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    servers = Servers()
    workdir = tempfile.mkdtemp(prefix="aryz-bench-")
    os.chmod(workdir, 0o777)
    d = None
    try:
        base_db = servers.new_database("bench_base")
        bulk(base_db, n, "now()")
        servers._admin("CREATE DATABASE bench_esc TEMPLATE bench_base")
        esc_db = Database(servers, "bench_esc")

        due_now(base_db)
        done, secs = baseline(base_db, n)
        b_rate = done / secs
        b = lateness(base_db)

        d = daemon(workdir, esc_db)
        due_now(esc_db)
        t0 = time.monotonic()
        d.start()
        wait_for(lambda: fired(esc_db) >= n, 600, "backlog drained", interval=0.02)
        e_secs = time.monotonic() - t0
        e = lateness(esc_db)
        e_rate = n / e[3] if e[3] else float("nan")

        print("backlog of %d overdue ack warnings, batch %d" % (n, BATCH))
        print("  baseline  bare SKIP LOCKED claim loop: %8.0f timers/s  lateness p50 %.2f s  p99 %.2f s"
              % (b_rate, b[1], b[2]))
        print("  aryz-escalated (event + SMS + MQTT):   %8.0f timers/s  lateness p50 %.2f s  p99 %.2f s"
              % (e_rate, e[1], e[2]))
        print("  ratio aryz-escalated / baseline: %.2f  (daemon start to drained: %.1f s)"
              % (e_rate / b_rate, e_secs))

        # Live: the daemon is idle now; arm timers due over the next 5 s.
        with cursor(esc_db) as cur:
            cur.execute("SELECT max(id) FROM sla_timer")
            last = cur.fetchone()[0]
        bulk(esc_db, m, "now() + interval '2 seconds' + random() * interval '5 seconds'")
        with cursor(esc_db) as cur:
            cur.execute("SELECT pg_notify('aryz_timer', now()::text)")
        wait_for(lambda: fired(esc_db) >= n + m, 120, "live timers fired", interval=0.05)
        lv = lateness(esc_db, "id > %d" % last)
        print("live: %d timers due over 5 s, daemon sleeping until each is due" % m)
        print("  aryz-escalated lateness p50 %.3f s  p99 %.3f s" % (lv[1], lv[2]))
    finally:
        if d is not None:
            d.stop()
        servers.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
