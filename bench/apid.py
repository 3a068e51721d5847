"""apid.py - benchmark of aryz-apid.

Starts its own throwaway PostgreSQL (tests/integration/harness.py Servers),
queues BENCH_COMPLAINTS complaints, starts one aryz-apid and prints, for
each endpoint, requests per second with BENCH_CLIENTS keep-alive client
threads for BENCH_SECONDS, and p50 / p99 latency; next to it the baseline:
the endpoint's own SQL run directly over one psycopg2 connection (the
daemon has one database connection too), queries per second.

Figures only: nothing is asserted.  The Python clients share the machine
with the daemon and PostgreSQL, so absolute numbers are a lower bound.
"""
import http.client
import os
import random
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import psycopg2  # noqa: E402

from harness import Daemon, Servers, free_port, wait_for  # noqa: E402

N = int(os.environ.get("BENCH_COMPLAINTS", "20000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
SUZAK = "41703220856000"


def queue(conn, n):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT aryz_submit_complaint('sms', 'b' || g, p.phone,"
            " '1414', convert_to('x', 'UTF8'), 'x', '{}', p.phone, %s, 'waste', 'ru',"
            " 'bench ' || g, NULL, NULL) FROM generate_series(1, %s) g,"
            " LATERAL (SELECT '+99677' || lpad(g::text, 7, '0') AS phone) p) s", (SUZAK, n))
        cur.execute("UPDATE complaint SET status = 'routed', routed_at = now(), "
                    "responsible = 'provider', provider_id = 1")
        # Statistics as autovacuum would have them in steady state.
        cur.execute("VACUUM ANALYZE")


def baseline(conn, sql, args_fn):
    n, t0 = 0, time.monotonic()
    with conn.cursor() as cur:
        while time.monotonic() - t0 < SECONDS:
            cur.execute(sql, args_fn())
            cur.fetchall()
            n += 1
    return n / (time.monotonic() - t0)


def load(port, path_fn):
    lat, stop = [], time.monotonic() + SECONDS
    lock = threading.Lock()

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.monotonic() < stop:
            t = time.monotonic()
            c.request("GET", path_fn())
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            mine.append(time.monotonic() - t)
        c.close()
        with lock:
            lat.extend(mine)
    t0 = time.monotonic()
    ts = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    el = time.monotonic() - t0
    lat.sort()
    return len(lat) / el, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000


def main():
    servers = Servers()
    workdir = tempfile.mkdtemp(prefix="aryz-bench-")
    os.chmod(workdir, 0o777)
    d = None
    try:
        db = servers.new_database("bench_apid")
        conn = psycopg2.connect(db.conninfo)
        conn.autocommit = True
        queue(conn, N)
        port = free_port()
        d = Daemon(workdir, "aryz-apid",
                   'database: { conninfo = "%s"; };\nhttp: { port = %d; };\n'
                   'log: { level = "warn"; };\n' % (db.conninfo, port))
        d.start()
        wait_for(lambda: d.log_size() >= 0 and _up(port), what="apid up")
        with conn.cursor() as cur:
            cur.execute("SELECT min(id), max(id), min(ticket::bigint) FROM complaint")
            lo, hi, t_lo = cur.fetchone()

        def after():
            return random.randint(lo, hi - 60)

        def ticket():
            return str(t_lo + random.randint(0, N - 1))
        cases = [
            ("list of 50", lambda: "/api/v1/complaints?limit=50&after_id=%d" % after(),
             "SELECT * FROM aryz_api_complaint WHERE id > %s ORDER BY id LIMIT 50",
             lambda: (after(),)),
            ("ticket + events", lambda: "/api/v1/complaints/" + ticket(),
             "SELECT v.*, (SELECT jsonb_agg(e) FROM complaint_event e "
             "WHERE e.complaint_id = v.id) FROM aryz_api_complaint v WHERE v.ticket = %s",
             lambda: (ticket(),)),
            ("health", lambda: "/health", "SELECT 1", lambda: ()),
        ]
        print("aryz-apid, %d complaints, %d clients, %.0f s per figure" % (N, CLIENTS, SECONDS))
        for name, path_fn, sql, args_fn in cases:
            base = baseline(conn, sql, args_fn)
            rps, p50, p99 = load(port, path_fn)
            print("%-16s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms   "
                  "baseline (SQL direct) %8.0f q/s   ratio %.2f"
                  % (name, rps, p50, p99, base, rps / base))
        conn.close()
    finally:
        if d is not None:
            d.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        servers.close()


def _up(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


if __name__ == "__main__":
    main()
