"""kannel_helpers.py - a real Kannel 1.4.5 (Debian's bearerbox + smsbox) in
front of aryz-smsd for the end-to-end tests, with a loopback fake SMSC.

Kannel runs from its own config in the test's workdir, on ports from
harness.free_port(), bound to 127.0.0.1, logging into the workdir; it never
touches /etc/kannel or the system service's fixed ports (13000, 13013).
The SMSC side is Kannel's own `smsc = fake` driver: bearerbox listens on a
port and the client (here FakeSMSC, speaking the same line protocol as
Kannel's fakesmsc tool) sends MO lines "from to type data" and receives
every MT as such a line.  For an MT with a dlr-mask, smsc_fake reports
"delivered" as soon as the line is written to the client.
"""
import os
import signal
import socket
import subprocess
import threading
import urllib.parse

from harness import free_port, http, wait_for

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
ADMIN_PASSWORD = "admin-secret"
SENDSMS_USER = "aryz"
SENDSMS_PASSWORD = "kannel-secret"
TOKEN = "smsd-token"
SHORT_CODE = "1212"


def available():
    return os.access(BEARERBOX, os.X_OK) and os.access(SMSBOX, os.X_OK)


class Kannel:
    """bearerbox + smsbox of one test, configured as docs/kannel.md says."""

    def __init__(self, workdir, smsd_port, retry=20, queue_delay=1, text="%b",
                 http_timeout=None, post=False):
        """text: the pattern for text= in the get-url; post: use docs/kannel.md's
        post-url instead (text as the body, fields in X-Kannel-* headers)."""
        self.workdir = workdir
        self.smsd_port = smsd_port
        self.admin_port = free_port()
        self.box_port = free_port()
        self.sendsms_port = free_port()
        self.smsc_port = free_port()
        self.conf = os.path.join(workdir, "kannel.conf")
        self.procs = {}
        with open(self.conf, "w") as f:
            f.write(self.config(retry, queue_delay, text, http_timeout, post))
        os.chmod(self.conf, 0o644)

    def log_path(self, name):
        return os.path.join(self.workdir, name + ".log")

    def config(self, retry, queue_delay, text, http_timeout, post):
        w = self.workdir
        if post:
            url = ('post-url = "http://127.0.0.1:%d/sms/kannel?token=%s&id=%%I"\n'
                   'send-sender = true' % (self.smsd_port, TOKEN))
        else:
            url = ('get-url = "http://127.0.0.1:%d/sms/kannel?token=%s&id=%%I&from=%%p'
                   '&to=%%P&smsc=%%i&time=%%t&coding=%%c&charset=%%C&udh=%%u&text=%s"'
                   % (self.smsd_port, TOKEN, text))
        # The sms-service and sendsms-user groups are the ones of
        # docs/kannel.md; only host, port and secrets differ.
        return """# kannel.conf of one aryz end-to-end test (written by kannel_helpers.py)
group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = {apw}
admin-allow-ip = "127.0.0.1"
smsbox-port = {box}
smsbox-interface = 127.0.0.1
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "{w}/bearerbox.log"
log-level = 0
access-log = "{w}/bearerbox-access.log"
dlr-storage = internal
sms-combine-concatenated-mo = true

group = smsc
smsc = fake
smsc-id = fake
port = {smsc}
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{w}/smsbox.log"
log-level = 0
access-log = "{w}/smsbox-access.log"
http-request-retry = {retry}
http-queue-delay = {delay}
reply-requestfailed = ""
{timeout}
group = sms-service
keyword = default
catch-all = true
{url}
max-messages = 0
accept-x-kannel-headers = false
concatenation = true

group = sendsms-user
username = {user}
password = {pw}
concatenation = true
max-messages = 4
""".format(admin=self.admin_port, apw=ADMIN_PASSWORD, box=self.box_port, w=w,
           smsc=self.smsc_port, sendsms=self.sendsms_port, retry=retry,
           delay=queue_delay,
           user=SENDSMS_USER, pw=SENDSMS_PASSWORD, url=url,
           timeout=("http-timeout = %d\n" % http_timeout) if http_timeout else "")

    def _spawn(self, name, binary):
        out = open(os.path.join(self.workdir, name + ".out"), "ab")
        self.procs[name] = subprocess.Popen([binary, self.conf], stdout=out, stderr=out,
                                            cwd=self.workdir, start_new_session=True)
        out.close()

    def _check_alive(self):
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise AssertionError("%s exited (%s):\n%s" % (
                    name, p.returncode, self.log(name)[-3000:]))

    def status(self):
        st, _, body = http("GET", "http://127.0.0.1:%d/status.txt?password=%s"
                           % (self.admin_port, ADMIN_PASSWORD), timeout=3)
        return body.decode("utf-8", "replace") if st == 200 else ""

    def _admin_up(self):
        self._check_alive()
        try:
            return self.status() != ""
        except OSError:
            return False

    def _sendsms_up(self):
        self._check_alive()
        try:
            st, _, _ = http("GET", "http://127.0.0.1:%d/cgi-bin/sendsms" % self.sendsms_port,
                            timeout=3)
            return st in (400, 401, 403, 202)
        except OSError:
            return False

    def start(self):
        self._spawn("bearerbox", BEARERBOX)
        wait_for(self._admin_up, timeout=20, what="bearerbox admin port", interval=0.1)
        self._spawn("smsbox", SMSBOX)
        wait_for(self._sendsms_up, timeout=20, what="smsbox sendsms port", interval=0.1)
        wait_for(lambda: "    smsbox:" in self.status(), timeout=20,
                 what="smsbox connected to bearerbox", interval=0.1)
        return self

    def log(self, name):
        try:
            with open(self.log_path(name), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM smsbox, then bearerbox (by PID); SIGKILL after 15 s."""
        for name in ("smsbox", "bearerbox"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def check_clean(self):
        for name in ("bearerbox", "smsbox"):
            text = self.log(name)
            assert "PANIC" not in text, "%s PANIC:\n%s" % (name, text[-3000:])


def _unquote(b):
    """Kannel's octstr_url_encode: %XX, and '+' for a space."""
    return urllib.parse.unquote_to_bytes(b.replace(b"+", b" ").decode("ascii"))


class FakeSMSC:
    """Client of bearerbox's `smsc = fake` port (fakesmsc's line protocol):
    send() injects an MO, received() lists every MT as (from, to, text,
    raw bytes, type, udh)."""

    def __init__(self, kannel):
        self.kannel = kannel
        self.lock = threading.Lock()
        self.mt = []
        self.sock = socket.create_connection(("127.0.0.1", kannel.smsc_port), timeout=10)
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()
        wait_for(lambda: "online" in self._smsc_line(), timeout=10,
                 what="fake SMSC online in bearerbox status", interval=0.1)

    def _smsc_line(self):
        for line in self.kannel.status().splitlines():
            if "FAKE:" in line:
                return line
        return ""

    def _reader(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._parse(line)

    def _parse(self, line):
        parts = line.split(b" ", 3)
        sender, receiver, kind = (p.decode() for p in parts[:3])
        rest = parts[3] if len(parts) > 3 else b""
        udh = b""
        if kind == "text":
            raw = rest
            text = raw.decode("utf-8", "replace")
        elif kind in ("data", "ucs-2", "ucs2"):
            raw = _unquote(rest)
            text = raw.decode("utf-16-be" if kind.startswith("ucs") else "latin-1")
        elif kind == "udh":
            # "udh UDH data DATA": a part of a concatenated SMS.  The line
            # does not carry the coding; the caller decodes the joined parts.
            u, _, d = rest.split(b" ", 2)
            udh, raw = _unquote(u), _unquote(d)
            text = None
        else:
            raw, text = rest, None
        with self.lock:
            self.mt.append({"from": sender, "to": receiver, "type": kind, "text": text,
                            "raw": raw, "udh": udh, "line": line})

    def received(self):
        with self.lock:
            return list(self.mt)

    def send_text(self, sender, receiver, text):
        """An MO in the GSM default alphabet (Kannel's "text" type)."""
        self.sock.sendall(("%s %s text %s\n" % (sender, receiver, text)).encode())

    def send_ucs2(self, sender, receiver, text):
        """A UCS-2 MO (coding 2), as an SMPP deliver_sm with data_coding 8."""
        data = urllib.parse.quote_from_bytes(text.encode("utf-16-be"), safe="")
        self.sock.sendall(("%s %s ucs2 %s\n" % (sender, receiver, data)).encode())

    def send_udh(self, sender, receiver, udh, data):
        """An MO with a UDH (smsc_fake marks it 8-bit, coding 1)."""
        q = lambda b: urllib.parse.quote_from_bytes(b, safe="")  # noqa: E731
        self.sock.sendall(("%s %s udh %s %s\n" % (sender, receiver, q(udh), q(data)))
                          .encode())

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
