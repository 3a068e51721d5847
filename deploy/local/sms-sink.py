#!/usr/bin/env python3
"""sms-sink.py - stands in for Kannel's sendsms in `make run` only.

aryz-smsd sends outbox SMS to Kannel's /cgi-bin/sendsms.  On a laptop there
is no SMSC, so `make run` starts this sink on 127.0.0.1:13013 (unless
something already listens there, e.g. a real Kannel): it answers like
Kannel ("0: Accepted for delivery", HTTP 202) and appends each message to
var/log/sms-out.log so you can read what residents and providers would
receive.  Then it calls the dlr-url back with status 1 (delivered), as an
SMSC would.  Never used in production or in the tests.

usage: sms-sink.py PORT LOGFILE
"""
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path != "/cgi-bin/sendsms" or "to" not in q or "text" not in q:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b"Not routable. Do not try again.")
            return
        line = "%s to=%s coding=%s text=%s\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S"), q["to"][0],
            q.get("coding", ["0"])[0], q["text"][0].replace("\n", " / "))
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line)
        self.send_response(202)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"0: Accepted for delivery")
        dlr = q.get("dlr-url", [None])[0]
        if dlr:
            threading.Thread(target=self.report, args=(dlr,), daemon=True).start()

    @staticmethod
    def report(dlr):
        time.sleep(0.5)
        try:
            for k, v in (("%d", "1"), ("%i", "sink"), ("%T", str(int(time.time()))),
                         ("%A", "delivered")):
                dlr = dlr.replace(k, v)
            urllib.request.urlopen(dlr, timeout=5).read()
        except OSError:
            pass

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port, LOG = int(sys.argv[1]), sys.argv[2]
    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
