"""aryz-mqttd loses nothing and duplicates nothing: kill -9 in the middle
of a stream, a PUBACK held while its batch is not committed, PostgreSQL
down for a while, a broker restart."""
import threading
import time

import psycopg2
import pytest

from harness import wait_for
from mqttd_helpers import (SUZAK, Client, assert_exactly_once, complaint, count_complaints,
                           device, forget_session, start_mqttd)

TOPIC = "aryz/v1/%s/waste/in/dev-1" % SUZAK


@pytest.fixture
def cid(servers, request):
    name = "mqttd-" + request.node.name[:40]
    yield name
    forget_session(servers, name)


def paced_stream(dev, prefix, n, delay):
    """Publish n messages from a thread, delay seconds apart."""
    def run():
        for i in range(n):
            dev.publish(TOPIC, complaint("%s-%d" % (prefix, i)), wait=False)
            time.sleep(delay)
    t = threading.Thread(target=run)
    t.start()
    return t


def test_kill9_mid_stream_then_restart(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid, batch_size=10, batch_ms=5)
    dev = device(servers, "dev-1")
    n = 500
    t = paced_stream(dev, "k", n, 0.004)
    wait_for(lambda: count_complaints(db) >= 120, 30, "some complaints")
    d.kill9()
    stored = count_complaints(db)
    assert stored < n, "the stream was over before the kill; test proves nothing"
    t.join()
    d.start(wait_log=r"ingest: subscribed")
    wait_for(lambda: count_complaints(db) == n, 60, "%d complaints" % n)
    time.sleep(0.5)     # anything late would be a duplicate: there is none
    assert_exactly_once(db, n)
    dev.close()


def test_puback_held_until_commit(servers, db, daemons, cid):
    """The batch is read but cannot commit (a lock blocks it); the daemon
    is killed and its statement cancelled.  Had any PUBACK left early the
    broker would consider those messages delivered and they would be lost;
    held, they are redelivered after the restart."""
    d = start_mqttd(daemons, db, servers, cid, batch_size=60, batch_ms=50)
    dev = device(servers, "dev-1")
    lock = psycopg2.connect(db.conninfo)
    cur = lock.cursor()
    cur.execute("LOCK TABLE inbound_message IN ACCESS EXCLUSIVE MODE")
    for i in range(10):
        dev.publish(TOPIC, complaint("held-%d" % i))

    def blocked():
        return db.query("""SELECT pid FROM pg_stat_activity
                            WHERE datname = current_database()
                              AND query LIKE '%%aryz_mqtt_ingest%%'
                              AND wait_event_type = 'Lock'""")
    pids = wait_for(blocked, 15, "the batch waiting for the lock")
    # All ten messages reached the daemon and sit in the blocked batch.
    assert d.log_contains(r"collect -> flush")
    d.kill9()
    db.query("SELECT pg_terminate_backend(%s)" % pids[0]["pid"])
    lock.rollback()
    lock.close()
    assert count_complaints(db) == 0
    d.start(wait_log=r"ingest: subscribed")
    wait_for(lambda: count_complaints(db) == 10, 30, "10 complaints after restart")
    assert_exactly_once(db, 10)
    dev.close()


def test_postgres_down_then_back(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    for i in range(50):
        dev.publish(TOPIC, complaint("pg-a-%d" % i), wait=False)
    wait_for(lambda: count_complaints(db) == 50, 30, "first 50")
    servers.pg_stop()
    try:
        d.wait_log(r"database connection ingest lost", 15)
        # The broker takes these for our session while the database is away.
        t = paced_stream(dev, "pg-b", 150, 0.01)
        t.join()
        time.sleep(1)
    finally:
        servers.pg_start()
    d.wait_log(r"database connection ingest ready", 30,
               since=0)
    wait_for(lambda: count_complaints(db) == 200, 60, "all 200")
    time.sleep(0.5)
    assert_exactly_once(db, 200)
    assert d.alive()
    dev.close()


def test_broker_restart_reconnects_and_continues(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    for i in range(50):
        dev.publish(TOPIC, complaint("mq-a-%d" % i), wait=False)
    wait_for(lambda: count_complaints(db) == 50, 30, "first 50")
    dev.close()
    offset = d.log_size()
    servers.mq_stop()
    try:
        d.wait_log(r"mqtt ingest: connection to .* lost", 15, since=offset)
    finally:
        servers.mq_start()
    d.wait_log(r"ingest: subscribed", 30, since=offset)
    dev = device(servers, "dev-1")
    for i in range(50):
        dev.publish(TOPIC, complaint("mq-b-%d" % i), wait=False)
    # A resend of something stored before the restart is a duplicate.
    dev.publish(TOPIC, complaint("mq-a-7"))
    assert dev.receipt_for("mq-a-7")["status"] == "duplicate"
    wait_for(lambda: count_complaints(db) == 100, 30, "all 100")
    assert_exactly_once(db, 100)
    dev.close()


def test_sigterm_mid_stream_drains_then_restart(servers, db, daemons, cid):
    d = start_mqttd(daemons, db, servers, cid, batch_size=10, batch_ms=5)
    dev = device(servers, "dev-1")
    n = 300
    t = paced_stream(dev, "t", n, 0.004)
    wait_for(lambda: count_complaints(db) >= 80, 30, "some complaints")
    assert d.stop() == 0
    assert not d.log_contains(r"drain did not finish")
    assert d.log_contains(r"aryz-mqttd stopped")
    t.join()
    d.start(wait_log=r"ingest: subscribed")
    wait_for(lambda: count_complaints(db) == n, 60, "%d complaints" % n)
    time.sleep(0.5)
    assert_exactly_once(db, n)
    dev.close()


def test_deadlock_in_a_batch_is_retried_not_rejected(servers, db, daemons, cid):
    """A deadlock is not the message's fault: the batch is not committed,
    the broker redelivers it, and the command is applied then - instead
    of the provider getting 'rejected: internal_error' for a valid
    command.  The other side of the deadlock is a transaction here that
    locks the complaint's timer, then the complaint itself, while
    aryz_transition() locks them in the other order."""
    d = start_mqttd(daemons, db, servers, cid)
    dev = device(servers, "dev-1")
    dev.publish(TOPIC, complaint("dl-1"))
    ticket = dev.receipt_for("dl-1")["ticket"]
    cpl = db.scalar("SELECT id FROM complaint WHERE ticket = %s", (ticket,))
    db.execute("""UPDATE complaint SET status = 'routed', provider_id = 1,
                         responsible = 'provider', routed_at = now() WHERE id = %s""",
               (cpl,))
    db.execute("""INSERT INTO sla_timer (complaint_id, kind, due_at)
                  VALUES (%s, 'ack_breach', now() + interval '1 day')""", (cpl,))
    prov = Client(servers, "provider-1")
    prov.subscribe("aryz/v1/providers/provider-1/resp")

    other = psycopg2.connect(db.conninfo)
    try:
        cur = other.cursor()
        # This side must not be the one the deadlock detector picks.
        cur.execute("SET deadlock_timeout = '30s'")
        cur.execute("SELECT 1 FROM sla_timer WHERE complaint_id = %s FOR UPDATE", (cpl,))
        offset = d.log_size()
        prov.publish("aryz/v1/providers/provider-1/cmd",
                     {"cmd": "ack", "ticket": ticket, "msg_id": "dl-ack"})
        # The batch holds the complaint and waits for the timer row.
        wait_for(lambda: db.scalar("""SELECT count(*) FROM pg_stat_activity
                                       WHERE datname = current_database()
                                         AND wait_event_type = 'Lock'
                                         AND query LIKE '%%aryz_mqtt_ingest%%'""") == 1,
                 15, "batch waiting for the timer lock")
        cur.execute("SELECT 1 FROM complaint WHERE id = %s FOR UPDATE", (cpl,))
        other.commit()
    finally:
        other.close()

    def answer():
        return [r for r in prov.received("aryz/v1/providers/provider-1/resp")
                if isinstance(r, dict) and r.get("msg_id") == "dl-ack"]
    r = wait_for(answer, 20, "answer to the ack")[-1]
    assert len(answer()) == 1
    assert r["status"] == "ok" and r["detail"]["status"] == "acknowledged", r
    assert d.log_contains(r"batch of 1 not stored \(ERROR: +deadlock detected", offset)
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cpl,)) == "acknowledged"
    assert db.scalar("""SELECT count(*) FROM inbound_message
                         WHERE channel = 'mqtt' AND meta->>'msg_id' = 'dl-ack'""") == 1
    dev.close()
    prov.close()
