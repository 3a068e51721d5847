"""escalated_helpers.py - shared steps of the aryz-escalated tests: make
routed complaints, make their timers due, run the daemon."""
from harness import wait_for

SUZAK = "41703220856000"          # DEMO: waste -> provider 1, policy 1
SUZAK_RAYON = "41703220000000"
AK_BULUNG = "41702205805000"      # DEMO: water -> provider 3, policy 2
RESIDENT = "+996555123456"
DISPATCHER_1 = "+996555000001"    # provider 1
SERVICE = "+996555000010"         # municipality service desk
SPECIALIST = "+996555000011"
HEAD = "+996555000012"
RAYON = "+996555000013"

_seq = [0]


def esc_config(db, **timers):
    """Config text of aryz-escalated for database db."""
    opts = dict(batch_size=200, poll_interval_ms=2000, idle_delay_ms=20,
                clock_offset_seconds=0)
    opts.update(timers)
    body = "".join("  %s = %d;\n" % kv for kv in opts.items())
    return ('database: { conninfo = "%s"; };\nlog: { level = "info"; };\n'
            "timers:\n{\n%s};\n" % (db.conninfo, body))


def start(daemons, db, name="aryz-escalated", **timers):
    d = daemons(name, esc_config(db, **timers))
    d.start(wait_log=r"database connection main ready")
    return d


def submit(db, muni=SUZAK, cat="waste", phone=RESIDENT, text="musor jok", lang="ky"):
    _seq[0] += 1
    key = "esc-%d-%s" % (_seq[0], db.name)
    return db.one("SELECT * FROM aryz_submit_complaint('sms', %s, %s, '1212', %s::bytea, %s, "
                  "'{}', %s, %s, %s, %s, %s, NULL, NULL)",
                  (key, phone, text.encode(), text, phone, muni, cat, lang, text))["complaint_id"]


def routed(db, muni=SUZAK, cat="waste", provider=1, contract=1, **kw):
    """A complaint routed as aryz-routerd would: responsible set, SLA armed."""
    cid = submit(db, muni=muni, cat=cat, **kw)
    if provider is None:
        db.execute("UPDATE complaint SET status='routed', routed_at=now(), "
                   "responsible='municipality' WHERE id=%s", (cid,))
    else:
        db.execute("UPDATE complaint SET status='routed', routed_at=now(), responsible='provider', "
                   "provider_id=%s, contract_id=%s WHERE id=%s", (provider, contract, cid))
    db.execute("SELECT aryz_arm_sla(%s)", (cid,))
    return cid


def timer(db, cid, kind, level=None, generation=None):
    sql = "SELECT * FROM sla_timer WHERE complaint_id=%s AND kind=%s"
    args = [cid, kind]
    if level is not None:
        sql += " AND level=%s"
        args.append(level)
    if generation is not None:
        sql += " AND generation=%s"
        args.append(generation)
    return db.one(sql, args)


def make_due(db, timer_id):
    """Move one timer into the past and wake the daemon, as arming does."""
    db.execute("UPDATE sla_timer SET due_at = now() - interval '1 second' WHERE id=%s", (timer_id,))
    db.execute("SELECT pg_notify('aryz_timer', now()::text)")


def wait_fired(db, timer_id, timeout=15):
    """Wait until the daemon fired timer_id; its row."""
    wait_for(lambda: db.scalar("SELECT fired_at IS NOT NULL FROM sla_timer WHERE id=%s",
                               (timer_id,)), timeout, "timer %d fired" % timer_id)
    return db.one("SELECT * FROM sla_timer WHERE id=%s", (timer_id,))


def fire(db, cid, kind, level=None):
    """Make a pending timer due, wait until the daemon fired it; the row."""
    t = timer(db, cid, kind, level, db.scalar("SELECT reopen_count FROM complaint WHERE id=%s",
                                              (cid,)))
    assert t["fired_at"] is None and t["cancelled_at"] is None, t
    make_due(db, t["id"])
    return wait_fired(db, t["id"])


def events(db, cid, kind=None):
    sql = "SELECT * FROM complaint_event WHERE complaint_id=%s"
    args = [cid]
    if kind:
        sql += " AND kind=%s"
        args.append(kind)
    return db.query(sql + " ORDER BY id", args)


def outbox(db, cid, channel=None, like=None):
    sql = "SELECT * FROM outbox WHERE complaint_id=%s"
    args = [cid]
    if channel:
        sql += " AND channel=%s"
        args.append(channel)
    if like:
        sql += " AND idem_key LIKE %s"
        args.append(like)
    return db.query(sql + " ORDER BY id", args)


def pending(db, cid):
    return {(r["kind"], r["level"]) for r in db.query(
        "SELECT kind, level FROM sla_timer WHERE complaint_id=%s AND fired_at IS NULL "
        "AND cancelled_at IS NULL AND generation = (SELECT reopen_count FROM complaint "
        "WHERE id=%s)", (cid, cid))}


def level(db, cid):
    return db.scalar("SELECT escalation_level FROM complaint WHERE id=%s", (cid,))
