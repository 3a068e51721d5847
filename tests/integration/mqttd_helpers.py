"""mqttd_helpers.py - aryz-mqttd test helpers: a daemon config, MQTT
devices and providers (paho-mqtt 1.6) that publish and collect receipts."""
import json
import threading
import time

import paho.mqtt.client as mqtt

from harness import MQ_USERS, wait_for

SUZAK = "41703220856000"        # Suzak AA: waste -> provider 1, lighting -> 2
AK_BULUNG = "41702205805000"    # Ak-Bulung AA: water -> provider 3


def mqttd_config(db, servers, client_id, batch_size=50, batch_ms=20, extra="",
                 outbox="poll = 1; lease = 10; retry = 1;"):
    return """
database: { conninfo = "%s"; };
log: { level = "debug"; };
mqtt: {
  host = "127.0.0.1"; port = %d;
  username = "aryz-mqttd"; password = "%s";
  client_id = "%s"; keepalive = 5;
};
ingest: { batch_size = %d; batch_ms = %d; };
outbox: { %s };
shutdown_timeout = 10;
%s
""" % (db.conninfo, servers.mq_port, MQ_USERS["aryz-mqttd"], client_id,
       batch_size, batch_ms, outbox, extra)


def start_mqttd(daemons, db, servers, client_id, **kw):
    d = daemons("aryz-mqttd", mqttd_config(db, servers, client_id, **kw))
    d.start(wait_log=r"ingest: subscribed")
    return d


def forget_session(servers, client_id):
    """Remove a persistent session from the shared broker (test cleanup)."""
    c = mqtt.Client(client_id=client_id, clean_session=True)
    c.username_pw_set("aryz-mqttd", MQ_USERS["aryz-mqttd"])
    try:
        c.connect("127.0.0.1", servers.mq_port, 5)
        c.loop_start()
        time.sleep(0.2)
        c.disconnect()
        c.loop_stop()
    except OSError:
        pass


class Client:
    """A device or provider: connects as a user, publishes with QoS 1,
    and collects every message on the topics it subscribes to."""

    def __init__(self, servers, user, client_id=None, password=None):
        self.user = user
        self.messages = []          # (topic, decoded JSON or raw bytes)
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(client_id=client_id or user, clean_session=True)
        self.c.username_pw_set(user, password or MQ_USERS[user])
        self.c.max_inflight_messages_set(100)
        self.c.on_connect = lambda c, u, f, rc: rc == 0 and self.connected.set()
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.connect("127.0.0.1", servers.mq_port, 10)
        self.c.loop_start()
        assert self.connected.wait(10), "%s could not connect" % user

    def _on_message(self, c, u, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = msg.payload
        with self.lock:
            self.messages.append((msg.topic, body))

    def subscribe(self, topic):
        self.subscribed.clear()
        self.c.subscribe(topic, qos=1)
        assert self.subscribed.wait(10)

    def publish(self, topic, payload, wait=True):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.c.publish(topic, payload, qos=1)
        if wait:
            info.wait_for_publish(10)
            assert info.is_published(), "no PUBACK from the broker"
        return info

    def received(self, topic=None):
        with self.lock:
            return [b for t, b in self.messages if topic is None or t == topic]

    def receipts(self):
        return self.received("aryz/v1/clients/%s/resp" % self.user)

    def receipt_for(self, msg_id, timeout=15):
        def find():
            for r in self.receipts():
                if isinstance(r, dict) and r.get("msg_id") == msg_id:
                    return r
            return None
        return wait_for(find, timeout, "receipt for %s" % msg_id)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def device(servers, user="dev-1"):
    d = Client(servers, user)
    d.subscribe("aryz/v1/clients/%s/resp" % user)
    return d


def complaint(msg_id, text="Таштанды 3 күндөн бери алынбай жатат", **kw):
    p = {"v": 1, "msg_id": msg_id, "text": text}
    p.update(kw)
    return p


def count_complaints(db):
    return db.scalar("SELECT count(*) FROM complaint WHERE channel = 'mqtt'")


def assert_exactly_once(db, n):
    """n complaints, n distinct idempotency keys, n accepted inbound rows."""
    row = db.one("""SELECT count(*) AS c, count(DISTINCT m.idem_key) AS k
                      FROM complaint c JOIN inbound_message m ON m.id = c.inbound_id
                     WHERE c.channel = 'mqtt'""")
    assert row["c"] == n and row["k"] == n, row
    assert db.scalar("SELECT count(*) FROM inbound_message WHERE channel = 'mqtt' "
                     "AND outcome = 'complaint'") == n
