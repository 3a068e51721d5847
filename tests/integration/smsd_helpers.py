"""smsd_helpers.py - shared pieces of the aryz-smsd tests: config, a fake
Kannel sendsms server, request helpers for Kannel/JSON/USSD."""
import http.server as httpserver
import threading
import urllib.parse

from harness import free_port, http, wait_for


def smsd_config(db, port, kannel_port=None, extra=""):
    mt = ""
    if kannel_port:
        mt = ('mt: { enabled = true; url = "http://127.0.0.1:%d/cgi-bin/sendsms"; '
              'username = "u"; password = "p"; from = "1212"; poll = 1; timeout = 3; '
              'backoff_min = 1; backoff_max = 2; max_attempts = 3; '
              'dlr_url = "http://127.0.0.1:%d/dlr"; };\n' % (kannel_port, port))
    else:
        mt = "mt: { enabled = false; };\n"
    return ('database: { conninfo = "%s"; };\n'
            'http: { port = %d; max_text = 1000; };\n'
            'multipart: { max_age = 3; check_interval = 1; };\n'
            '%s%s' % (db.conninfo, port, mt, extra))


def start_smsd(daemons, db, kannel_port=None, extra="", port=None):
    port = port or free_port()
    d = daemons("aryz-smsd", smsd_config(db, port, kannel_port, extra))
    d.port = port
    d.start(wait_log="USSD menu loaded")
    d.wait_log("lexicon loaded")
    return d


def base(d):
    return "http://127.0.0.1:%d" % d.port


def kannel_get(d, **params):
    q = urllib.parse.urlencode(params)
    return http("GET", base(d) + "/sms/kannel?" + q)


def kannel_post(d, body, headers, query=""):
    return http("POST", base(d) + "/sms/kannel" + (("?" + query) if query else ""),
                body, headers)


def sms_json(d, obj):
    return http("POST", base(d) + "/sms/json", obj)


def ussd(d, session, phone, text, lang_code="*1212#"):
    body = urllib.parse.urlencode({"sessionId": session, "serviceCode": lang_code,
                                   "phoneNumber": phone, "networkCode": "43709",
                                   "text": text})
    st, _, b = http("POST", base(d) + "/ussd", body,
                    {"Content-Type": "application/x-www-form-urlencoded"})
    return st, b.decode()


class FakeKannel:
    """Kannel's /cgi-bin/sendsms: records every request; answers 202
    "0: Accepted for delivery", or 503 while fail_next > 0."""

    def __init__(self):
        self.requests = []
        self.fail_next = 0
        self.lock = threading.Lock()
        outer = self

        class H(httpserver.BaseHTTPRequestHandler):
            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
                with outer.lock:
                    outer.requests.append((u.path, q))
                    fail = outer.fail_next > 0
                    if fail:
                        outer.fail_next -= 1
                if fail:
                    self.send_response(503)
                    body = b"Temporary failure"
                else:
                    self.send_response(202)
                    body = b"0: Accepted for delivery"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.server = httpserver.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sent(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
