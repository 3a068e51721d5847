"""harness.py - real PostgreSQL + Mosquitto for the integration tests.

One PostgreSQL cluster and one Mosquitto broker per test session (started
by deploy/local/servers.sh, on free ports, in a temp dir owned by an
unprivileged user when we run as root).  A template database holds the
migrated schema and reference data; every test gets a fresh copy of it and
fresh daemon processes with their own temp dir.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import psycopg2
import psycopg2.extras

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ARYZ_BUILD", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")
SERVERS = os.path.join(ROOT, "deploy", "local", "servers.sh")
IS_ROOT = os.geteuid() == 0
# Passwords of the throwaway broker's accounts.
MQ_USERS = {
    "aryz-mqttd": "mqttd-secret",
    "dev-1": "dev1-secret",
    "dev-2": "dev2-secret",
    "provider-1": "prov1-secret",
    "provider-2": "prov2-secret",
}

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "Segmentation fault",
                   "Assertion", "stack smashing")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=15.0, what="condition", interval=0.05):
    """Poll pred() until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Servers:
    """The session's PostgreSQL cluster and Mosquitto broker."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="aryz-test-")
        os.chmod(self.dir, 0o755)
        self.pg_port = free_port()
        self.mq_port = free_port()
        self.env = dict(os.environ, PG_FAST="1",
                        MQ_USERS=" ".join("%s:%s" % kv for kv in MQ_USERS.items()))
        self._watchdog()
        self.pg_start()
        self.mq_start()
        self.template = "aryz_template"
        self._make_template()

    def _watchdog(self):
        """The servers stop themselves when this test run dies without
        tearing down (killed, timed out): a detached shell waits for our
        PID to go away, then stops both servers and removes their dir."""
        script = ('while kill -0 %d 2>/dev/null; do sleep 2; done; '
                  '"%s" mq-stop "%s"; "%s" pg-stop "%s"; rm -rf "%s"'
                  % (os.getpid(), SERVERS, self.dir, SERVERS, self.dir, self.dir))
        subprocess.Popen(["bash", "-c", script], env=self.env, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)

    def conninfo(self, db="aryz"):
        return "host=127.0.0.1 port=%d dbname=%s user=aryz" % (self.pg_port, db)

    def pg_start(self):
        subprocess.run([SERVERS, "pg-start", self.dir, str(self.pg_port)],
                       check=True, env=self.env)

    def pg_stop(self):
        subprocess.run([SERVERS, "pg-stop", self.dir], check=True, env=self.env)

    def mq_start(self):
        subprocess.run([SERVERS, "mq-start", self.dir, str(self.mq_port)],
                       check=True, env=self.env)

    def mq_stop(self):
        subprocess.run([SERVERS, "mq-stop", self.dir], check=True, env=self.env)

    def ctl(self, *args, db="aryz", check=True):
        return subprocess.run([os.path.join(BIN, "aryzctl"), "-d", self.conninfo(db)]
                              + list(args), check=check, capture_output=True, text=True)

    def _admin(self, sql):
        conn = psycopg2.connect(self.conninfo("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    def _make_template(self):
        self._admin("DROP DATABASE IF EXISTS %s" % self.template)
        self._admin("CREATE DATABASE %s" % self.template)
        self.ctl("migrate", db=self.template)
        self.ctl("load-reference", db=self.template)

    def new_database(self, name):
        self._admin("DROP DATABASE IF EXISTS %s" % name)
        self._admin("CREATE DATABASE %s TEMPLATE %s" % (name, self.template))
        return Database(self, name)

    def drop_database(self, name):
        self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = '%s'" % name)
        self._admin("DROP DATABASE IF EXISTS %s" % name)

    def close(self):
        self.mq_stop()
        self.pg_stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Database:
    """A fresh database of one test, with query helpers."""

    def __init__(self, servers, name):
        self.servers = servers
        self.name = name
        self.conninfo = servers.conninfo(name)

    def query(self, sql, args=None):
        conn = psycopg2.connect(self.conninfo)
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def one(self, sql, args=None):
        rows = self.query(sql, args)
        assert len(rows) == 1, "expected one row, got %d: %s" % (len(rows), sql)
        return rows[0]

    def scalar(self, sql, args=None):
        row = self.one(sql, args)
        return next(iter(row.values()))

    def execute(self, sql, args=None):
        self.query(sql, args)


class Daemon:
    """One daemon process of a test: config, log, start/stop/kill."""

    def __init__(self, workdir, name, config):
        self.name = name
        self.workdir = workdir
        self.binary = os.path.join(BIN, name)
        self.config_path = os.path.join(workdir, name + ".conf")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.write_config(config)

    def write_config(self, config):
        if IS_ROOT and "\nuser" not in "\n" + config:
            config += '\nuser = "nobody";\n'
        with open(self.config_path, "w") as f:
            f.write(config)
        os.chmod(self.config_path, 0o644)

    def start(self, wait_log=None, timeout=20):
        """Start; wait until the log matches wait_log (a regex), if given."""
        offset = self.log_size()
        logf = open(self.log_path, "ab")
        env = dict(os.environ,
                   ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:exitcode=23",
                   LSAN_OPTIONS="suppressions=" + os.path.join(ROOT, "tests", "lsan.supp"),
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        self.proc = subprocess.Popen([self.binary, "-c", self.config_path],
                                     stdout=logf, stderr=logf, env=env,
                                     cwd=self.workdir)
        logf.close()
        if wait_log:
            self.wait_log(wait_log, timeout=timeout, since=offset)
        return self

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_contains(self, pattern, since=0):
        return re.search(pattern, self.log(since)) is not None

    def wait_log(self, pattern, timeout=20, since=0):
        def check():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("%s exited (%s) while waiting for %r:\n%s" % (
                    self.name, self.proc.returncode, pattern, self.log()[-3000:]))
            return self.log_contains(pattern, since)
        wait_for(check, timeout, "%s log /%s/" % (self.name, pattern))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s did not stop on SIGTERM" % self.name)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill9(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def check_clean(self):
        """Fail if the log shows a sanitizer report or a crash."""
        text = self.log()
        for mark in SANITIZER_MARKS:
            if mark in text:
                raise AssertionError("%s log has '%s':\n%s" % (self.name, mark, text[-5000:]))


def http(method, url, body=None, headers=None, timeout=10):
    """Return (status, headers, body-bytes) without raising on 4xx/5xx."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = dict(headers or {}, **{"Content-Type": "application/json"})
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
