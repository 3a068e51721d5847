"""aryz-smsd kill -9 during a burst of MO requests: every request that got
200 is in the database exactly once; the rest are retried like Kannel."""
import threading

from smsd_helpers import kannel_get, start_smsd


def test_kill9_during_burst(db, daemons):
    d = start_smsd(daemons, db)
    n = 200
    results = {}
    lock = threading.Lock()

    def worker(ids):
        for i in ids:
            try:
                st, _, _ = kannel_get(d, **{"from": "+99670055%04d" % i, "id": "burst-%d" % i,
                                            "text": "Suzak musor %d" % i})
            except OSError:
                st = None
            with lock:
                results[i] = st

    threads = [threading.Thread(target=worker, args=(range(k, n, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    while True:
        with lock:
            if len(results) >= n // 3:
                break
    d.kill9()
    for t in threads:
        t.join()
    ok = [i for i, st in results.items() if st == 200]
    assert ok, "nothing was accepted before the kill"
    # Everything that got 200 is there, exactly once.
    rows = db.query("SELECT idem_key, count(*) AS n FROM inbound_message GROUP BY idem_key")
    stored = {r["idem_key"]: r["n"] for r in rows}
    for i in ok:
        assert stored.get("kannel:burst-%d" % i) == 1
    # Restart and retry the rest, as Kannel would.
    d.start(wait_log="lexicon loaded")
    for i in range(n):
        if results.get(i) != 200:
            st, _, _ = kannel_get(d, **{"from": "+99670055%04d" % i, "id": "burst-%d" % i,
                                        "text": "Suzak musor %d" % i})
            assert st == 200
    assert db.scalar("SELECT count(*) FROM inbound_message") == n
    assert db.scalar("SELECT count(*) FROM complaint") == n
    assert db.scalar("SELECT count(DISTINCT inbound_id) FROM complaint") == n
