"""aryz-smsd fuzz smoke: seeded random and malformed requests on every
endpoint; every answer is a clean 2xx/4xx, the daemon keeps serving and
the sanitizers stay quiet (checked at teardown).  SMSD_FUZZ_SEED and
SMSD_FUZZ_N run a different or longer campaign."""
import os
import random
import socket
import urllib.parse

from harness import http
from smsd_helpers import base, start_smsd, ussd

FIELDS = ["from", "to", "id", "text", "udh", "coding", "charset", "smsc", "time", "token"]


def rnd_bytes(r, n):
    pool = [b"\x00", b"\xff", b"\xd0\x90", b"%", b"%0", b"&", b"=", b"+", b"*", b"\xf0\x9f\x98",
            b"\x05\x00\x03", "ы".encode(), b"a", b"9", b"\r\n", b"\\", b'"', b"{", b"}"]
    return b"".join(r.choice(pool) for _ in range(r.randint(0, n)))


def raw_request(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        return out
    except OSError:
        return b""
    finally:
        s.close()


def test_fuzz_smoke(db, daemons):
    d = start_smsd(daemons, db)
    r = random.Random(int(os.environ.get("SMSD_FUZZ_SEED", "20261127")))
    for i in range(int(os.environ.get("SMSD_FUZZ_N", "150"))):
        q = "&".join("%s=%s" % (r.choice(FIELDS), urllib.parse.quote_from_bytes(rnd_bytes(r, 12)))
                     for _ in range(r.randint(0, 6)))
        if r.random() < 0.5:
            q += "&from=%2B996700123456&id=fz-" + str(i)
        st, _, _ = http("GET", base(d) + "/sms/kannel?" + q)
        assert st in (200, 400, 401, 403, 413, 415), (st, q)
        hdr = {"X-Kannel-From": "+996700123456", "X-Kannel-Id": "fzp-%d" % i,
               "X-Kannel-Coding": r.choice(["0", "1", "2", "x", "-5", "99999999999"]),
               "X-Kannel-UDH": rnd_bytes(r, 6).hex()}
        st, _, _ = http("POST", base(d) + "/sms/kannel", rnd_bytes(r, 40), hdr)
        assert st in (200, 400, 413, 415), st
        body = b'{"message_id": "fzj-%d", "from": "+996700123456", "text": "%s"%s' % (
            i, rnd_bytes(r, 10), r.choice([b"}", b"", b', "concat": {"ref": 1, "total": 2, "seq": 9}}',
                                           b', "udh": "0500030102"}']))
        st, _, _ = http("POST", base(d) + "/sms/json", body, {"Content-Type": "application/json"})
        assert st in (200, 400), st
        st, _ = ussd(d, "fz-%d" % (i % 7), "+996700123456",
                     rnd_bytes(r, 8).decode("utf-8", "replace").replace("\x00", ""))
        assert st in (200, 400), st
        st, _, _ = http("GET", base(d) + "/dlr?" + urllib.parse.quote_from_bytes(rnd_bytes(r, 10),
                                                                               safe="=&"))
        assert st in (200, 400, 404), st
    # Broken HTTP itself.
    for data in (b"GET /sms/kannel HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n",
                 b"POST /sms/json HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{",
                 b"\x00\xff\r\n\r\n", b"GET /ussd HTTP/1.1\r\n\r\n",
                 b"POST /sms/kannel HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        raw_request(d.port, data)
    st, _, _ = http("GET", base(d) + "/health")
    assert st == 200 and d.alive()
    # Nothing half-written: every complaint has its raw message and event.
    assert db.scalar("SELECT count(*) FROM complaint c LEFT JOIN complaint_event e "
                     "ON e.complaint_id = c.id AND e.kind = 'created' WHERE e.id IS NULL") == 0
