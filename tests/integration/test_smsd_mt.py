"""aryz-smsd MT worker and DLR: sendsms to a fake Kannel, 503 and retry,
encoding choice, dead after N attempts, delivery reports."""
import urllib.parse

from harness import http, wait_for
from smsd_helpers import FakeKannel, base, start_smsd


def queue(db, key, phone, text):
    db.execute("SELECT aryz_outbox_sms(%s, %s, %s, NULL)", (key, phone, text))
    return db.scalar("SELECT id FROM outbox WHERE idem_key = %s", (key,))


def test_send_encoding_and_dlr(db, daemons):
    k = FakeKannel()
    try:
        d = start_smsd(daemons, db, kannel_port=k.port)
        a = queue(db, "t:latin", "+996700111333", "Ticket 1001 received. Thanks!")
        b = queue(db, "t:cyr", "+996700111334", "Арыз №1001 кабыл алынды, иштелүүдө.")
        wait_for(lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") == 2,
                 what="both sent")
        sent = {q["to"]: q for p, q in k.sent()}
        assert all(p == "/cgi-bin/sendsms" for p, _ in k.sent())
        lat, cyr = sent["+996700111333"], sent["+996700111334"]
        assert lat["coding"] == "0" and "charset" not in lat
        assert lat["text"] == "Ticket 1001 received. Thanks!"
        assert cyr["coding"] == "2" and cyr["charset"] == "UTF-8"
        assert cyr["text"] == "Арыз №1001 кабыл алынды, иштелүүдө."
        assert lat["username"] == "u" and lat["password"] == "p" and lat["from"] == "1212"
        assert lat["dlr-mask"] == "31"
        dlr = urllib.parse.urlsplit(lat["dlr-url"])
        assert dlr.path == "/dlr" and "id=%d" % a in dlr.query and "status=%d" in dlr.query
        assert db.scalar("SELECT provider_ref FROM outbox WHERE id = %s", (a,)) == \
            "0: Accepted for delivery"
        # Kannel calls the dlr-url with %d filled in.
        st, _, _ = http("GET", base(d) + "/dlr?id=%d&status=8&smsc=beeline" % a)
        assert st == 200
        assert db.scalar("SELECT status FROM outbox WHERE id = %s", (a,)) == "sent"
        st, _, _ = http("GET", base(d) + "/dlr?id=%d&status=1&smsc=beeline" % a)
        assert st == 200
        assert db.scalar("SELECT status FROM outbox WHERE id = %s", (a,)) == "delivered"
        st, _, _ = http("GET", base(d) + "/dlr?id=%d&status=16&answer=NACK" % b)
        assert st == 200
        row = db.one("SELECT status, last_error FROM outbox WHERE id = %s", (b,))
        assert row["status"] == "failed" and "NACK" in row["last_error"]
        # A late failure does not undo a delivery; every report is kept.
        http("GET", base(d) + "/dlr?id=%d&status=2" % a)
        assert db.scalar("SELECT status FROM outbox WHERE id = %s", (a,)) == "delivered"
        assert db.scalar("SELECT count(*) FROM sms_dlr") == 4
        st, _, body = http("GET", base(d) + "/dlr?id=999999&status=1")
        assert st == 404
        st, _, body = http("GET", base(d) + "/dlr?id=abc&status=1")
        assert st == 400
    finally:
        k.close()


def test_503_retry_then_sent_and_dead(db, daemons):
    k = FakeKannel()
    try:
        k.fail_next = 2
        d = start_smsd(daemons, db, kannel_port=k.port)
        a = queue(db, "t:retry", "+996700111335", "hello")
        wait_for(lambda: db.scalar("SELECT status FROM outbox WHERE id = %s", (a,)) == "sent",
                 timeout=30, what="sent after two 503s")
        assert db.scalar("SELECT attempts FROM outbox WHERE id = %s", (a,)) == 3
        assert len(k.sent()) == 3
        assert d.log_contains("attempt 1 failed: HTTP 503")
        # Kannel gone entirely: 3 attempts (max_attempts) then dead.
        k.close()
        b = queue(db, "t:dead", "+996700111336", "hello again")
        wait_for(lambda: db.scalar("SELECT status FROM outbox WHERE id = %s", (b,)) == "dead",
                 timeout=40, what="dead after max attempts")
        row = db.one("SELECT attempts, last_error FROM outbox WHERE id = %s", (b,))
        assert row["attempts"] == 3 and "no answer" in row["last_error"]
    finally:
        k.close()


def test_stop_while_kannel_hangs(db, daemons):
    """Kannel accepts the connection and never answers; SIGTERM's drain
    times out: the daemon exits cleanly (no leak report), and the
    message stays pending to be sent again after its lease."""
    import socket
    import threading

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    held = []

    def accept():
        try:
            while True:
                held.append(lsock.accept()[0])
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        d = start_smsd(daemons, db, kannel_port=lsock.getsockname()[1],
                       extra="shutdown_timeout = 1;\n")
        a = queue(db, "t:hang", "+996700111337", "hello")
        wait_for(lambda: held and d.log_contains("MT worker"), what="sendsms connection open")
        wait_for(lambda: db.scalar("SELECT attempts FROM outbox WHERE id = %s", (a,)) == 1,
                 what="claimed")
        assert d.stop() == 0
        assert d.log_contains("drain did not finish")
        d.check_clean()
        assert db.scalar("SELECT status FROM outbox WHERE id = %s", (a,)) == "pending"
    finally:
        lsock.close()
        for s in held:
            s.close()


def test_slow_kannel_is_cut_at_mt_timeout(db, daemons):
    """Kannel answers one byte a second: libevent's timeout is per read,
    so only a deadline for the whole request ends the attempt within
    mt.timeout (3 s here), long before the 60 s lease would let the row
    be claimed and sent a second time."""
    import socket
    import threading
    import time

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    stop = threading.Event()
    conns = []

    def trickle(c):
        try:
            for b in b"HTTP/1.0 202 Accepted\r\nX-Slow: " + b"x" * 60:
                if stop.wait(1):
                    return
                c.sendall(bytes([b]))
        except OSError:
            pass

    def accept():
        try:
            while True:
                c = lsock.accept()[0]
                conns.append(c)
                threading.Thread(target=trickle, args=(c,), daemon=True).start()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        start_smsd(daemons, db, kannel_port=lsock.getsockname()[1])
        a = queue(db, "t:slow", "+996700111338", "hello")
        t0 = time.monotonic()
        wait_for(lambda: db.scalar("SELECT last_error FROM outbox WHERE id = %s", (a,)),
                 timeout=20, what="first attempt recorded as failed")
        assert time.monotonic() - t0 < 12
        row = db.one("SELECT status, attempts, last_error FROM outbox WHERE id = %s", (a,))
        assert row["status"] == "pending" and "mt.timeout" in row["last_error"]
    finally:
        stop.set()
        lsock.close()
        for c in conns:
            c.close()


def test_lease_must_outlast_the_send(workdir):
    import os
    import subprocess
    from harness import BIN
    path = os.path.join(workdir, "smsd.conf")
    with open(path, "w") as f:
        f.write('mt: { lease = 10; timeout = 30; };\n')
    out = subprocess.run([os.path.join(BIN, "aryz-smsd"), "-c", path, "-n"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "mt.lease (10) must be longer than mt.timeout (30)" in out.stderr
    with open(path, "w") as f:
        f.write('mt: { lease = 60; timeout = 30; };\n')
    out = subprocess.run([os.path.join(BIN, "aryz-smsd"), "-c", path, "-n"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
