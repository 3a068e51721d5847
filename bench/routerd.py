"""routerd.py - benchmark of aryz-routerd and its PostgreSQL queue.

Starts its own throwaway PostgreSQL (tests/integration/harness.py
Servers, fsync off), then prints:

  1. baseline: a bare claim+delete loop on the job table (batches of 50,
     FOR UPDATE SKIP LOCKED, no routing), jobs per second;
  2. routing throughput: N complaints queued, then 1 and then 2 routerd
     instances drain them; routed complaints per second and the ratio to
     the baseline;
  3. commit-to-claim latency: complaints submitted one per transaction at
     a steady rate while one routerd runs; latency = routed_at (the start
     of the claiming transaction) minus the commit timestamp of the
     ingress transaction (track_commit_timestamp is switched on), p50 /
     p99; the baseline is a bare NOTIFY: commit timestamp to delivery at a
     Python listener.

Figures only: nothing is asserted.  Environment: ARYZ_BUILD (binaries),
BENCH_COMPLAINTS (default 20000), BENCH_LATENCY_N (default 1000),
BENCH_RATE (submits per second, default 50: below the routing rate, or
the figure measures the backlog instead).
"""
import os
import select
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import psycopg2  # noqa: E402

from harness import Daemon, Servers  # noqa: E402

N = int(os.environ.get("BENCH_COMPLAINTS", "20000"))
LAT_N = int(os.environ.get("BENCH_LATENCY_N", "1000"))
RATE = float(os.environ.get("BENCH_RATE", "50"))
SUZAK, AK_BULUNG = "41703220856000", "41702205805000"


def connect(db):
    conn = psycopg2.connect(db.conninfo)
    conn.autocommit = True
    return conn


def scalar(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def queue_complaints(db, n, chunk=1000):
    conn = connect(db)
    for first in range(1, n + 1, chunk):
        last = min(n, first + chunk - 1)
        scalar(conn,
               "SELECT count(*) FROM (SELECT aryz_submit_complaint('sms', 'b' || g, p.phone,"
               " '1414', convert_to('x', 'UTF8'), 'x', '{}', p.phone,"
               " (ARRAY[%s, %s])[g %% 2 + 1],"
               " (ARRAY['waste', 'lighting', 'water', 'landscaping'])[g / 2 %% 4 + 1],"
               " 'ru', 'bench ' || g, NULL, NULL) FROM generate_series(%s, %s) g,"
               " LATERAL (SELECT '+99677' || lpad(g::text, 7, '0') AS phone) p) s",
               (SUZAK, AK_BULUNG, first, last))
    conn.close()


STARTED = []     # every routerd made, stopped at exit whatever happens


def routerd(workdir, db, tag, poll_ms=2000):
    """A routerd with its own config and log file under workdir."""
    text = """
database: { conninfo = "%s"; };
queue: { batch_size = 50; poll_interval_ms = %d; worker_id = "bench-%s"; };
log: { level = "info"; };
""" % (db.conninfo, poll_ms, tag)
    d = Daemon(workdir, "aryz-routerd", text)
    d.config_path = d.config_path.replace(".conf", "-%s.conf" % tag)
    d.log_path = d.log_path.replace(".log", "-%s.log" % tag)
    d.write_config(text)
    STARTED.append(d)
    return d


def wait_drained(conn, timeout=600):
    deadline = time.monotonic() + timeout
    while scalar(conn, "SELECT count(*) FROM job WHERE kind = 'route'") > 0:
        if time.monotonic() > deadline:
            raise SystemExit("routerd did not drain the queue in %d s" % timeout)
        time.sleep(0.02)
    return time.monotonic()


def baseline_claim_delete(db, n):
    conn = connect(db)
    scalar(conn, "WITH i AS (INSERT INTO job (kind, payload) SELECT 'notify', '{}'"
                 " FROM generate_series(1, %s) RETURNING 1) SELECT count(*) FROM i", (n,))
    t0 = time.monotonic()
    done = 0
    while True:
        got = scalar(conn, "WITH d AS (DELETE FROM job WHERE id IN (SELECT id FROM job"
                           " WHERE kind = 'notify' AND run_at <= now() ORDER BY run_at, id"
                           " LIMIT 50 FOR UPDATE SKIP LOCKED) RETURNING 1)"
                           " SELECT count(*) FROM d")
        if got == 0:
            break
        done += got
    dt = time.monotonic() - t0
    conn.close()
    return done / dt


def throughput(servers, workdir, instances, name):
    db = servers.new_database(name)
    try:
        queue_complaints(db, N)
        conn = connect(db)
        ds = [routerd(workdir, db, "%s%d" % (name, i)) for i in range(instances)]
        t0 = time.monotonic()
        for d in ds:
            d.start()
        for d in ds:
            d.wait_log("queue: listening")
        t1 = wait_drained(conn)
        routed = scalar(conn, "SELECT count(*) FROM complaint WHERE status = 'routed'")
        for d in ds:
            d.stop()
        time.sleep(1.5)       # statistics are flushed about once a second
        with conn.cursor() as cur:
            cur.execute("SELECT pg_relation_size('job') / 8192, pg_relation_size('job_claim') / 8192,"
                        " n_live_tup, n_dead_tup, autovacuum_count"
                        " FROM pg_stat_user_tables WHERE relname = 'job'")
            vac = cur.fetchone()
        conn.close()
        return routed, t1 - t0, vac
    finally:
        servers.drop_database(name)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def notify_baseline(db, n, rate):
    """Bare LISTEN/NOTIFY: commit of a transaction that notifies (server
    commit timestamp) to the notification arriving at a Python listener."""
    lconn = connect(db)
    with lconn.cursor() as cur:
        cur.execute("LISTEN bench")
    got = {}

    def listen():
        while len(got) < n:
            if select.select([lconn], [], [], 5) == ([], [], []):
                return
            lconn.poll()
            now = time.time()
            while lconn.notifies:
                got[int(lconn.notifies.pop(0).payload)] = now

    th = threading.Thread(target=listen)
    th.start()
    conn = connect(db)
    scalar(conn, "CREATE TABLE bench_note (i int PRIMARY KEY); SELECT 1")
    for i in range(n):
        scalar(conn, "WITH x AS (INSERT INTO bench_note VALUES (%s) RETURNING i)"
                     " SELECT pg_notify('bench', i::text) FROM x", (i,))
        time.sleep(1.0 / rate)
    th.join()
    with conn.cursor() as cur:
        cur.execute("SELECT i, extract(epoch FROM pg_xact_commit_timestamp(xmin))"
                    " FROM bench_note")
        lat = [got[i] - float(t) for i, t in cur.fetchall() if i in got]
    conn.close()
    lconn.close()
    return lat


def latency(servers, workdir, n, rate):
    """Ingress commit (commit timestamp of the inbound_message row, never
    updated afterwards) to claim (routed_at = now() of the claiming
    transaction), with one idle routerd."""
    db = servers.new_database("bench_latency")
    try:
        base = notify_baseline(db, n, rate)
        d = routerd(workdir, db, "lat", poll_ms=2000)
        d.start(wait_log="queue: listening")
        conn = connect(db)
        for i in range(n):
            phone = "+99678%07d" % i
            scalar(conn, "SELECT complaint_id FROM aryz_submit_complaint('sms', %s, %s,"
                         " '1414', convert_to('x', 'UTF8'), 'x', '{}', %s, %s, 'waste',"
                         " 'ru', 'lat', NULL, NULL)",
                   ("l%d" % i, phone, phone, SUZAK if i % 2 else AK_BULUNG))
            time.sleep(1.0 / rate)
        wait_drained(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT extract(epoch FROM c.routed_at"
                        " - pg_xact_commit_timestamp(m.xmin)) FROM complaint c"
                        " JOIN inbound_message m ON m.id = c.inbound_id"
                        " WHERE c.routed_at IS NOT NULL")
            lat = [float(r[0]) for r in cur.fetchall()]
        d.stop()
        conn.close()
        return base, lat
    finally:
        servers.drop_database("bench_latency")


def commit_timestamps(servers):
    """Commit timestamps make the latency exact (server side, both ends)."""
    conn = psycopg2.connect(servers.conninfo("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    conn.close()
    servers.pg_stop()
    servers.pg_start()


def main():
    t = time.monotonic()
    servers = Servers()
    commit_timestamps(servers)
    workdir = tempfile.mkdtemp(prefix="aryz-bench-")
    os.chmod(workdir, 0o777)
    try:
        print("routerd bench: %d complaints, PostgreSQL with fsync off (startup %.1f s)"
              % (N, time.monotonic() - t))
        db = servers.new_database("bench_base")
        base = baseline_claim_delete(db, N)
        servers.drop_database("bench_base")
        print("baseline  bare claim+delete (batches of 50): %8.0f jobs/s" % base)
        for inst in (1, 2):
            routed, dt, vac = throughput(servers, workdir, inst, "bench_tp%d" % inst)
            rate = routed / dt
            print("routing   %d routerd instance%s: %6d routed in %6.2f s = %8.0f complaints/s"
                  "  (%.3f x baseline)" % (inst, " " if inst == 1 else "s", routed, dt, rate,
                                          rate / base))
            print("          job table after the drain: %d heap pages, %d index pages,"
                  " live %d, dead %d, autovacuums %d" % vac)
        nb, lat = latency(servers, workdir, LAT_N, RATE)
        if nb:
            print("baseline  NOTIFY commit->delivered (%d at %.0f/s): p50 %6.2f ms  p99 %6.2f ms"
                  % (len(nb), RATE, pct(nb, 50) * 1e3, pct(nb, 99) * 1e3))
        print("latency   commit->claim, 1 routerd (%d at %.0f/s):    p50 %6.2f ms  p99 %6.2f ms"
              % (len(lat), RATE, pct(lat, 50) * 1e3, pct(lat, 99) * 1e3), end="")
        if nb:
            print("  (p50 %.1f x baseline)" % (pct(lat, 50) / max(pct(nb, 50), 1e-6)))
        else:
            print()
    finally:
        for d in STARTED:
            if d.alive():
                d.kill9()
        servers.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
