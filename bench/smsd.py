"""smsd.py - benchmark of aryz-smsd MO ingest.

Starts its own throwaway PostgreSQL (tests/integration/harness.py Servers),
one aryz-smsd (database.pool = BENCH_POOL), and sends Kannel get-url
requests from BENCH_CLIENTS keep-alive client threads for BENCH_SECONDS,
each a new complaint (one COMMIT before the 200).  Prints accepted
messages per second and p50 / p99 latency, next to the baseline: the same
aryz_sms_submit() call run directly over one psycopg2 connection.

Figures only: nothing is asserted.  The Python clients share the machine
with the daemon and PostgreSQL, so absolute numbers are a lower bound.
"""
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import psycopg2  # noqa: E402

from harness import Daemon, Servers, free_port  # noqa: E402

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
POOL = int(os.environ.get("BENCH_POOL", "2"))


def baseline(conninfo):
    conn = psycopg2.connect(conninfo)
    conn.autocommit = True
    n, t0 = 0, time.monotonic()
    with conn.cursor() as cur:
        while time.monotonic() - t0 < SECONDS:
            cur.execute("SELECT * FROM aryz_sms_submit('sms', %s, '+996700000001', '1212', "
                        "convert_to('Suzak musor', 'UTF8'), 'Suzak musor', '{}', "
                        "'41703220856000', 'waste', NULL, 'Suzak musor')", ("base-%d" % n,))
            n += 1
    conn.close()
    return n / SECONDS


def main():
    servers = Servers()
    work = tempfile.mkdtemp(prefix="aryz-bench-")
    os.chmod(work, 0o777)
    d = None
    try:
        db = servers.new_database("bench_smsd")
        port = free_port()
        d = Daemon(work, "aryz-smsd",
                   'database: { conninfo = "%s"; pool = %d; };\nhttp: { port = %d; };\n'
                   'mt: { enabled = false; };\nlog: { level = "warn"; };\n'
                   % (servers.conninfo(db.name), POOL, port))
        d.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        lat, lock, stop = [], threading.Lock(), time.monotonic() + SECONDS

        def client(k):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            i, mine = 0, []
            while time.monotonic() < stop:
                q = urllib.parse.urlencode({"from": "+99670%07d" % (k * 100000 + i % 100000),
                                            "to": "1212", "id": "b-%d-%d" % (k, i),
                                            "text": "Suzak musor alynbady %d" % i})
                t0 = time.monotonic()
                c.request("GET", "/sms/kannel?" + q)
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    mine.append(time.monotonic() - t0)
                i += 1
            with lock:
                lat.extend(mine)

        ts = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        lat.sort()
        rate = len(lat) / SECONDS
        base = baseline(servers.conninfo(db.name))
        print("smsd MO (Kannel GET -> complaint, 200 after COMMIT), %d clients, pool %d:"
              % (CLIENTS, POOL))
        print("  %.0f msg/s  p50 %.1f ms  p99 %.1f ms" % (
            rate, 1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * 0.99)]))
        print("  baseline aryz_sms_submit over one psycopg2 connection: %.0f calls/s "
              "(smsd = %.2fx)" % (base, rate / base if base else 0))
    finally:
        if d is not None:
            d.stop()
        servers.drop_database("bench_smsd")
        servers.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
