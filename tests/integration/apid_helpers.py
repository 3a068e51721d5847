"""apid_helpers.py - start aryz-apid on a free port and build complaints
in known states for its tests (routing is done here with plain SQL, as
aryz-routerd would leave the row, so the API tests need no other daemon)."""
import json

from harness import free_port, http

TOKEN = "test-token-123"
SUZAK = "41703220856000"       # Suzak AA: waste -> provider 1, lighting -> 2
AK_BULUNG = "41702205805000"   # Ak-Bulung AA: water -> provider 3


class Api:
    def __init__(self, daemon, port):
        self.d = daemon
        self.base = "http://127.0.0.1:%d" % port

    def get(self, path, headers=None):
        return http("GET", self.base + path, headers=headers)

    def get_json(self, path):
        st, _, body = self.get(path)
        return st, json.loads(body)

    def post(self, path, body=None, token=None, headers=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        return http("POST", self.base + path, body, h)


def start_apid(daemons, db, token=TOKEN, extra=""):
    port = free_port()
    conf = ('database: { conninfo = "%s"; };\n'
            'http: { listen = "127.0.0.1"; port = %d; max_body = 4096; };\n'
            'api: { token = "%s"; default_limit = 20; max_limit = 100; };\n'
            % (db.conninfo, port, token)) + extra
    d = daemons("aryz-apid", conf)
    d.start(wait_log="database connection main ready")
    return Api(d, port)


_seq = [0]


def submit(db, soate=SUZAK, category="waste", description="musor 3 kun",
           phone="+996555123456", lat=None, lon=None):
    """A new complaint in status 'received'; returns (id, ticket)."""
    _seq[0] += 1
    row = db.one(
        "SELECT complaint_id, ticket FROM aryz_submit_complaint("
        "'api', %s, %s, NULL, convert_to(%s, 'UTF8'), %s, '{}', %s, %s, %s, 'ky', %s, %s, %s)",
        ("t-%d-%s" % (_seq[0], description[:10]), phone, description, description,
         phone, soate, category, description, lat, lon))
    return row["complaint_id"], row["ticket"]


def route(db, cid, provider=None):
    """Put a received complaint into 'routed' as aryz-routerd would."""
    db.execute(
        "UPDATE complaint SET status = 'routed', routed_at = now(), "
        "responsible = %s, provider_id = %s WHERE id = %s",
        ("provider" if provider else "municipality", provider, cid))
    db.execute(
        "INSERT INTO complaint_event (complaint_id, kind, from_status, to_status, actor) "
        "VALUES (%s, 'status', 'received', 'routed', 'aryz-routerd')", (cid,))


def routed(db, provider=1, **kw):
    cid, ticket = submit(db, **kw)
    route(db, cid, provider)
    return cid, ticket
