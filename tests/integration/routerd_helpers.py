"""routerd_helpers.py - complaints, configs and checks for the aryz-routerd tests."""
import psycopg2

from harness import wait_for

SUZAK = "41703220856000"      # demo: waste -> provider 1, lighting -> provider 2
AK_BULUNG = "41702205805000"  # demo: water -> provider 3; waste contract ended 2025-01-01
READY = r"queue: listening on aryz_job"


def config(db, poll_ms=2000, batch=50, level="debug", worker="", backoff_max_ms=30000):
    return """
database: { conninfo = "%s"; };
queue: { batch_size = %d; poll_interval_ms = %d; worker_id = "%s";
         error_backoff_max_ms = %d; };
log: { level = "%s"; };
shutdown_timeout = 20;
""" % (db.conninfo, batch, poll_ms, worker, backoff_max_ms, level)


def start(daemons, db, name="aryz-routerd", instance=None, **kw):
    """Start a routerd.  Give each of several concurrent instances an
    instance name: it gets its own config and log file (the Daemon
    factory names both after the binary)."""
    text = config(db, **kw)
    d = daemons(name, text)
    if instance is not None:
        d.config_path = d.config_path.replace(".conf", "-%s.conf" % instance)
        d.log_path = d.log_path.replace(".log", "-%s.log" % instance)
        d.write_config(text)
    d.start(wait_log=READY)
    return d


def submit(db, idem, phone=None, muni=SUZAK, cat="waste", lang="ru",
           desc="мусор не вывозят", channel="sms", sender=None):
    """One complaint through the ingest function, as an ingress would."""
    return db.one(
        "SELECT * FROM aryz_submit_complaint(%s, %s, %s, '1414', convert_to(%s, 'UTF8'),"
        " %s, '{}', %s, %s, %s, %s, %s, NULL, NULL)",
        (channel, idem, sender or phone or "device-1", desc, desc, phone, muni, cat,
         lang, desc))


def submit_many(db, first, last, tag="bulk"):
    """Complaints first..last in ONE transaction, each from its own phone,
    over both demo municipalities and four categories."""
    return db.scalar(
        "SELECT count(*) FROM (SELECT aryz_submit_complaint('sms', %s || g, p.phone, '1414',"
        " convert_to('x', 'UTF8'), 'x', '{}', p.phone,"
        " (ARRAY[%s, %s])[g %% 2 + 1],"
        " (ARRAY['waste', 'lighting', 'water', 'landscaping'])[g / 2 %% 4 + 1],"
        " (ARRAY['ky', 'ru'])[g / 8 %% 2 + 1], 'bulk ' || g, NULL, NULL)"
        " FROM generate_series(%s, %s) g,"
        " LATERAL (SELECT '+99677' || lpad(g::text, 7, '0') AS phone) p) s",
        (tag, SUZAK, AK_BULUNG, first, last))


def pending(db):
    return db.scalar("SELECT count(*) FROM complaint WHERE status = 'received'")


def wait_all_routed(db, timeout=60):
    wait_for(lambda: pending(db) == 0 and
             db.scalar("SELECT count(*) FROM job WHERE kind = 'route'") == 0,
             timeout, "every complaint routed and the route queue empty")


def assert_each_routed_once(db, total):
    """Every complaint left 'received' by exactly one routing event, and
    got exactly one acknowledgement SMS."""
    assert db.scalar("SELECT count(*) FROM complaint") == total
    bad = db.query(
        "SELECT c.id, count(e.id) AS n FROM complaint c LEFT JOIN complaint_event e"
        " ON e.complaint_id = c.id AND e.kind = 'status' AND e.from_status = 'received'"
        " GROUP BY c.id HAVING count(e.id) <> 1 LIMIT 5")
    assert bad == [], bad
    assert db.scalar("SELECT count(*) FROM outbox WHERE idem_key LIKE 'route:%:resident'") \
        == db.scalar("SELECT count(*) FROM complaint WHERE status = 'routed'")
    # SLA timers armed once per routed complaint.
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE kind = 'ack_breach'") \
        == db.scalar("SELECT count(*) FROM complaint WHERE status = 'routed'")


def insert_without_notify(db, muni=SUZAK, cat="waste"):
    """A complaint and its route job written by hand, with no NOTIFY: the
    daemon can only find it by polling or by draining after a reconnect."""
    conn = psycopg2.connect(db.conninfo)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO complaint (channel, reporter, municipality_soate,"
                        " category_code, description) VALUES ('api', 'test', %s, %s, 'x')"
                        " RETURNING id", (muni, cat))
            cid = cur.fetchone()[0]
            cur.execute("INSERT INTO job (kind, dedup_key, payload) VALUES ('route',"
                        " 'route:' || %s, jsonb_build_object('complaint_id', %s))",
                        (cid, cid))
        return cid
    finally:
        conn.close()
