"""Two aryz-mqttd instances behind one shared subscription ($share/aryz/...)
split the stream and still store every message exactly once; their outbox
workers share the rows without publishing any twice."""
import re

import pytest

from harness import wait_for
from mqttd_helpers import (SUZAK, Client, assert_exactly_once, complaint,
                           count_complaints, device, forget_session, mqttd_config)


@pytest.fixture
def cids(servers, request):
    names = ["mqttd-%s-%d" % (request.node.name[:30], i) for i in (1, 2)]
    yield names
    for n in names:
        forget_session(servers, n)


def test_shared_subscription_splits_the_load(servers, db, daemons, cids):
    # Both instances also run the outbox worker: they share the rows.
    prov = Client(servers, "provider-1", client_id="shared-provider-1")
    prov.subscribe("aryz/v1/providers/provider-1/#")
    db.execute("""SELECT aryz_outbox_mqtt('sh-' || i, 'aryz/v1/providers/1/complaints',
                                          jsonb_build_object('n', i), NULL)
                    FROM generate_series(1, 300) i""")
    ds = []
    for cid in cids:
        d = daemons("aryz-mqttd-" + cid[-1], mqttd_config(db, servers, cid).replace(
            "keepalive = 5;", 'keepalive = 5; shared_group = "aryz";'))
        d.binary = d.binary[:-2]        # both run build/bin/aryz-mqttd
        d.start(wait_log=r"ingest: subscribed")
        ds.append(d)
    dev = device(servers, "dev-1")
    n = 200
    for i in range(n):
        dev.publish("aryz/v1/%s/waste/in/dev-1" % SUZAK, complaint("sh-%d" % i), wait=False)
    wait_for(lambda: count_complaints(db) == n, 30, "%d complaints" % n)
    assert_exactly_once(db, n)
    wait_for(lambda: len(dev.receipts()) >= n, 20, "receipts")
    wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") == 300,
             30, "300 outbox rows sent")
    # SKIP LOCKED: no row was claimed twice, none published twice.
    assert db.scalar("SELECT max(attempts) FROM outbox") == 1
    wait_for(lambda: len(prov.received()) >= 300, 10, "provider got 300")
    assert sorted(m["n"] for m in prov.received()) == list(range(1, 301))
    prov.close()
    counts = []
    for d in ds:
        assert d.stop() == 0
        counts.append(int(re.search(r"ingest: (\d+) accepted", d.log()).group(1)))
    # Both took part, and together they stored each message once.
    assert sum(counts) == n and min(counts) > 0, counts
    dev.close()
