"""mqttd.py - benchmark of aryz-mqttd against a real Mosquitto.

Starts its own throwaway PostgreSQL and Mosquitto (harness.Servers), then
prints:

  1. baseline: N QoS 1 messages from one device to a bare paho subscriber
     (the broker alone), messages per second;
  2. database alone: aryz_mqtt_ingest() called from Python with batches
     of 100 ready-made elements, messages per second (the SQL ceiling);
  3. ingest: the same N messages to aryz-mqttd, from the first publish to
     the N-th complaint committed (PUBACKs held until each COMMIT);
  4. outbox: N rows queued with aryz_outbox_mqtt(), until all are 'sent'
     (PUBACK received) and a subscribed provider has them all.

Figures only: nothing is asserted.  BENCH_MQTT_N (default 5000).
"""
import json
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import paho.mqtt.client as mqtt  # noqa: E402

from harness import MQ_USERS, Daemon, Servers, wait_for  # noqa: E402
from mqttd_helpers import Client, count_complaints, mqttd_config  # noqa: E402

N = int(os.environ.get("BENCH_MQTT_N", "5000"))
TOPIC = "aryz/v1/41703220856000/waste/in/dev-1"


def payload(prefix, i):
    return json.dumps({"v": 1, "msg_id": "%s-%d" % (prefix, i),
                       "text": "Таштанды алынбай жатат"})


def publish_all(servers, prefix):
    dev = Client(servers, "dev-1", client_id="bench-dev-" + prefix)
    t0 = time.monotonic()
    infos = [dev.c.publish(TOPIC, payload(prefix, i), qos=1) for i in range(N)]
    for i in infos:
        i.wait_for_publish(60)
    return dev, t0


def baseline(servers):
    got = [0]
    done = threading.Event()
    sub = mqtt.Client(client_id="bench-sub", clean_session=True)
    sub.username_pw_set("aryz-mqttd", MQ_USERS["aryz-mqttd"])
    sub.max_inflight_messages_set(1000)

    def on_message(c, u, m):
        got[0] += 1
        if got[0] == N:
            done.set()
    sub.on_message = on_message
    sub.connect("127.0.0.1", servers.mq_port)
    sub.loop_start()
    sub.subscribe(TOPIC, 1)
    time.sleep(0.5)
    dev, t0 = publish_all(servers, "base")
    done.wait(120)
    dt = time.monotonic() - t0
    sub.disconnect()
    sub.loop_stop()
    dev.close()
    return N / dt


def ingest(servers, workdir, batch_size, tag):
    db = servers.new_database("bench_mqttd_" + tag)
    d = Daemon(workdir, "aryz-mqttd", mqttd_config(db, servers, "bench-" + tag,
                                                   batch_size=batch_size)
               .replace('level = "debug"', 'level = "warn"'))
    d.start(wait_log=None)
    wait_for(lambda: db.scalar("SELECT count(*) FROM pg_stat_activity "
                               "WHERE datname = current_database()") >= 2, 20)
    time.sleep(1)
    dev, t0 = publish_all(servers, tag)
    wait_for(lambda: count_complaints(db) == N, 600, "all stored", interval=0.02)
    dt = time.monotonic() - t0
    dev.close()
    d.stop()
    servers.drop_database(db.name)
    return N / dt


def sql_only(servers):
    import psycopg2
    db = servers.new_database("bench_mqttd_sql")
    conn = psycopg2.connect(db.conninfo)
    conn.autocommit = True
    cur = conn.cursor()
    raw = payload("s", 0).encode().hex()
    t0 = time.monotonic()
    for first in range(0, N, 60):
        batch = [{"k": "complaint", "idem": "dev-1:s-%d" % i, "sender": "dev-1",
                  "topic": TOPIC, "raw": raw, "meta": {}, "category": "waste",
                  "municipality": "41703220856000", "text": "Таштанды алынбай жатат"}
                 for i in range(first, min(N, first + 60))]
        cur.execute("SELECT count(*) FROM aryz_mqtt_ingest(%s::jsonb)", (json.dumps(batch),))
    dt = time.monotonic() - t0
    conn.close()
    servers.drop_database(db.name)
    return N / dt


def outbox(servers, workdir):
    db = servers.new_database("bench_mqttd_outbox")
    prov = Client(servers, "provider-1", client_id="bench-provider-1")
    prov.subscribe("aryz/v1/providers/provider-1/#")
    db.execute("""SELECT aryz_outbox_mqtt('b-' || i, 'aryz/v1/providers/1/complaints',
                                          jsonb_build_object('n', i), NULL)
                    FROM generate_series(1, %s) i""", (N,))
    d = Daemon(workdir, "aryz-mqttd", mqttd_config(db, servers, "bench-out")
               .replace('level = "debug"', 'level = "warn"'))
    t0 = time.monotonic()
    d.start()
    wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") == N,
             600, "all sent", interval=0.02)
    dt = time.monotonic() - t0
    wait_for(lambda: len(prov.received()) >= N, 60, "all received")
    prov.close()
    d.stop()
    servers.drop_database(db.name)
    return N / dt


def main():
    servers = Servers()
    workdir = tempfile.mkdtemp(prefix="aryz-bench-")
    os.chmod(workdir, 0o777)
    try:
        base = baseline(servers)
        print("mqttd: %d QoS 1 messages, one device" % N)
        print("  baseline  bare subscriber          %8.0f msg/s" % base)
        sql = sql_only(servers)
        print("  database  aryz_mqtt_ingest x60     %8.0f msg/s  (%.2f x baseline)"
              % (sql, sql / base))
        many = ingest(servers, workdir, 60, "b60")
        print("  ingest    aryz-mqttd, batch 60     %8.0f msg/s  (%.2f x baseline, %.2f x database)"
              % (many, many / base, many / sql))
        out = outbox(servers, workdir)
        print("  outbox    QoS 1, sent on PUBACK    %8.0f rows/s (%.2f x baseline)"
              % (out, out / base))
    finally:
        servers.close()


if __name__ == "__main__":
    main()
