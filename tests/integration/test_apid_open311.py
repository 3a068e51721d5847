"""aryz-apid Open311 GeoReport v2 read side: services.json, requests.json
(search, filters, status mapping) and requests/{ticket}.json."""
from harness import http
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
