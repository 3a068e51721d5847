"""aryz-apid Open311 GeoReport v2 read side: services.json, requests.json
(search, filters, status mapping) and requests/{ticket}.json."""
from harness import http, wait_for
from apid_helpers import AK_BULUNG, SUZAK, TOKEN, routed, start_apid, submit

REQUEST_KEYS = {"service_request_id", "status", "status_notes", "service_name",
                "service_code", "description", "agency_responsible", "service_notice",
                "requested_datetime", "updated_datetime", "expected_datetime",
                "address", "address_id", "zipcode", "lat", "long", "media_url"}


def test_services_list_the_categories(db, daemons):
    api = start_apid(daemons, db)
    st, body = api.get_json("/open311/v2/services.json")
    assert st == 200 and isinstance(body, list) and len(body) == 6
    waste = next(s for s in body if s["service_code"] == "waste")
    assert waste["service_name"] == "Solid waste collection"
    assert waste["metadata"] is False and waste["type"] == "realtime"
    assert "musor" in waste["keywords"].split(",")
    assert set(waste) >= {"service_code", "service_name", "description",
                          "metadata", "type", "keywords", "group"}


def test_request_shape_and_status_mapping(db, daemons):
    api = start_apid(daemons, db)
    cid, ticket = routed(db, provider=1, lat=40.95, lon=72.95, description="bins full")
    db.execute("INSERT INTO sla_timer (complaint_id, kind, due_at) "
               "VALUES (%s, 'resolve_breach', '2030-01-02 03:04:05+00')", (cid,))
    st, body = api.get_json("/open311/v2/requests/%s.json" % ticket)
    assert st == 200 and len(body) == 1
    r = body[0]
    assert set(r) == REQUEST_KEYS
    assert r["service_request_id"] == ticket and r["status"] == "open"
    assert r["service_code"] == "waste" and r["service_name"] == "Solid waste collection"
    assert r["description"] == "bins full"
    assert r["agency_responsible"] == "DEMO Taza Ai waste service"
    assert r["lat"] == 40.95 and r["long"] == 72.95
    assert r["address_id"] == SUZAK and "Suzak" in r["address"]
    assert r["expected_datetime"] == "2030-01-02T03:04:05Z"
    assert r["requested_datetime"].endswith("Z") and "T" in r["requested_datetime"]

    # rejected -> closed, with the reason in status_notes
    st, _, _ = api.post("/api/v1/complaints/%s/reject" % ticket,
                        {"reason": "not our village"}, token=TOKEN)
    assert st == 200
    st, body = api.get_json("/open311/v2/requests/%s.json" % ticket)
    assert body[0]["status"] == "closed"
    assert body[0]["status_notes"] == "rejected: not our village"

    st, body = api.get_json("/open311/v2/requests/777777.json")
    assert st == 404 and body[0]["code"] == 404
    st, body = api.get_json("/open311/v2/requests/1%3C2.json")
    assert st == 400 and body[0]["code"] == 400
    assert api.get("/open311/v2/requests/%s.xml" % ticket)[0] == 404


def test_request_search_filters(db, daemons):
    api = start_apid(daemons, db)
    open_waste = routed(db, provider=1)[1]
    water = routed(db, provider=3, soate=AK_BULUNG, category="water")[1]
    done_id, done = routed(db, provider=1)
    db.execute("UPDATE complaint SET status = 'resolved', resolved_at = now() WHERE id = %s",
               (done_id,))
    triage = submit(db, soate=None, category=None, description="???")[1]
    old_id, old = routed(db, provider=1)
    db.execute("UPDATE complaint SET created_at = now() - interval '200 days' WHERE id = %s",
               (old_id,))

    def ids(q):
        st, body = api.get_json("/open311/v2/requests.json" + q)
        assert st == 200, body
        return [r["service_request_id"] for r in body]

    # Newest first; the default window is the last 90 days.
    assert ids("") == [triage, done, water, open_waste]
    assert ids("?status=closed") == [done]
    assert ids("?status=open&service_code=water") == [water]
    assert ids("?municipality=" + AK_BULUNG) == [water]
    assert ids("?service_request_id=%s,%s" % (old, water)) == [old, water]
    assert old in ids("?start_date=2000-01-01T00:00:00Z")
    assert ids("?start_date=2000-01-01&end_date=2001-01-01") == []
    assert ids("?limit=2") == [triage, done]
    # The triage complaint has no municipality: null address, open status.
    st, body = api.get_json("/open311/v2/requests/%s.json" % triage)
    assert body[0]["address"] is None and body[0]["service_code"] is None
    assert body[0]["status"] == "open"

    for q in ["?status=pending", "?start_date=yesterday", "?start_date=2026-13-45",
              "?service_code=WASTE", "?service_request_id=1,,2", "?limit=0",
              "?municipality=123"]:
        st, body = api.get_json("/open311/v2/requests.json" + q)
        assert st == 400 and body[0]["code"] == 400, (q, body)
    assert api.get("/health")[0] == 200


def _post(api, fields, key="idem-1", ctype="application/x-www-form-urlencoded"):
    from urllib.parse import urlencode
    h = {"Content-Type": ctype}
    if key is not None:
        h["Idempotency-Key"] = key
    return http("POST", api.base + "/open311/v2/requests.json",
                urlencode(fields).encode(), h)


def test_post_request_creates_one_complaint(servers, db, daemons):
    import json
    api = start_apid(daemons, db, extra='open311: { api_key = "k-311"; };\n')
    fields = {"api_key": "k-311", "service_code": "lighting",
              "description": "Фонарь не горит <b>3 күн</b>", "address_id": SUZAK,
              "lat": "40.9512", "long": "72.9", "phone": "0555 12 34 56",
              "address_string": "Lenin 5"}
    st, _, raw = _post(api, fields)
    assert st == 201, raw
    body = json.loads(raw)
    ticket = body[0]["service_request_id"]
    c = db.one("SELECT c.channel, c.category_code, c.municipality_soate, c.description, "
               "c.geo_lat, c.geo_lon, c.status, r.phone, m.raw, m.idem_key, m.meta "
               "FROM complaint c JOIN resident r ON r.id = c.resident_id "
               "JOIN inbound_message m ON m.id = c.inbound_id WHERE c.ticket = %s", (ticket,))
    assert c["channel"] == "api" and c["category_code"] == "lighting"
    assert c["municipality_soate"] == SUZAK and c["status"] == "received"
    assert c["description"] == "Фонарь не горит <b>3 күн</b>"
    assert c["geo_lat"] == 40.9512 and c["geo_lon"] == 72.9
    assert c["phone"] == "+996555123456" and c["idem_key"] == "open311:idem-1"
    assert c["meta"] == {"via": "open311", "address_string": "Lenin 5"}
    assert b"service_code=lighting" in bytes(c["raw"])
    assert db.scalar("SELECT count(*) FROM job WHERE kind = 'route'") == 1
    # The same key again: the same ticket, nothing new written.
    st, _, raw = _post(api, fields)
    assert st == 200 and json.loads(raw)[0]["service_request_id"] == ticket
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    # Readable through the GET side at once.
    st, got = api.get_json("/open311/v2/requests/%s.json" % ticket)
    assert got[0]["service_code"] == "lighting" and got[0]["status"] == "open"

    # Database down: 503, nothing half-written; the retry after it is back
    # creates exactly one complaint.
    other = dict(fields, description="second")
    servers.pg_stop()
    try:
        wait_for(lambda: api.get("/health")[0] == 503, what="db down")
        st, _, raw = _post(api, other, key="idem-2")
        assert st == 503 and json.loads(raw)[0]["code"] == 503
    finally:
        servers.pg_start()
    wait_for(lambda: api.get("/health")[0] == 200, timeout=30, what="db up")
    st, _, raw = _post(api, other, key="idem-2")
    assert st == 201
    assert db.scalar("SELECT count(*) FROM complaint WHERE description = 'second'") == 1


def test_post_request_bad_input(db, daemons):
    api = start_apid(daemons, db, extra='open311: { api_key = "k-311"; };\n')
    good = {"api_key": "k-311", "service_code": "waste", "description": "musor",
            "address_id": SUZAK}
    cases = [
        (dict(good, api_key="nope"), "idem", 403, "api_key"),
        ({k: v for k, v in good.items() if k != "api_key"}, "idem", 403, "api_key"),
        (good, None, 400, "Idempotency-Key"),
        (good, "has space", 400, "Idempotency-Key"),
        (dict(good, service_code="parking"), "idem", 400, "unknown service_code"),
        (dict(good, service_code="Waste!"), "idem", 400, "service_code"),
        (dict(good, description=""), "idem", 400, "description"),
        (dict(good, description="x" * 1001), "idem", 400, "description"),
        ({k: v for k, v in good.items() if k != "address_id"}, "idem", 400, "location"),
        (dict(good, address_id="123"), "idem", 400, "SOATE"),
        (dict(good, lat="91", long="72"), "idem", 400, "lat"),
        (dict(good, lat="40.1"), "idem", 400, "lat"),
        (dict(good, lat="nan", long="1"), "idem", 400, "lat"),
        (dict(good, phone="hello"), "idem", 400, "phone"),
    ]
    for fields, key, code, word in cases:
        st, _, raw = _post(api, fields, key=key)
        assert st == code, (fields, key, st, raw)
        assert word in raw.decode(), (fields, raw)
    st, _, raw = _post(api, good, ctype="application/json")
    assert st == 400 and b"form" in raw
    assert db.scalar("SELECT count(*) FROM complaint") == 0
    assert db.scalar("SELECT count(*) FROM inbound_message") == 0
    # idempotency_key may also come as a field.
    st, _, raw = _post(api, dict(good, idempotency_key="f-1"), key=None)
    assert st == 201, raw


def test_post_request_disabled_without_api_key(db, daemons):
    api = start_apid(daemons, db)
    st, _, raw = _post(api, {"api_key": "", "service_code": "waste",
                             "description": "x", "address_id": SUZAK})
    assert st == 403 and b"open311.api_key" in raw


def test_secrets_in_the_url_never_reach_the_log(db, daemons):
    # Open311 clients often put api_key into the URL (GeoReport passes it
    # as a parameter).  An error answer logs the request line: the key and
    # a phone number must appear as "*", other parameters as they came.
    api = start_apid(daemons, db, extra='open311: { api_key = "k-311-SECRET"; };\n')
    st, _, _ = api.get("/open311/v2/requests.json?api_key=k-311-SECRET&status=bogus")
    assert st == 400
    st, _, _ = api.post("/open311/v2/requests.json?API_KEY=k-311-SECRET&phone=%2B996555987654",
                        b"service_code=waste&description=musor",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 403
    st, _ = api.get_json("/api/v1/complaints?status=nonsense&token=t0ken-SECRET")
    assert st == 400
    wait_for(lambda: api.d.log_contains("status=nonsense"), what="the 400 logged")
    assert api.d.log_contains("api_key=\\*&status=bogus")
    assert api.d.log_contains("API_KEY=\\*&phone=\\*")
    for secret in ("k-311-SECRET", "996555987654", "t0ken-SECRET"):
        assert not api.d.log_contains(secret), secret
