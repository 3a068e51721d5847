"""aryz-apid JSON API: health, metrics, complaint list and detail, staff
actions through aryz_transition(), municipality search, scorecard, and bad
input that must get 4xx while the daemon keeps serving."""
import json

from harness import wait_for
from apid_helpers import (AK_BULUNG, SUZAK, TOKEN, routed, start_apid,
                          submit)


def test_health_follows_the_database(servers, db, daemons):
    api = start_apid(daemons, db)
    st, body = api.get_json("/health")
    assert st == 200 and body == {"status": "ok", "database": "up"}
    servers.pg_stop()
    try:
        wait_for(lambda: api.get("/health")[0] == 503, what="health 503")
        st, hdrs, raw = api.get("/health")
        body = json.loads(raw)
        assert body["database"] == "down" and body["status"] == "unavailable"
        # Any endpoint that needs the database refuses the same way.
        st, body = api.get_json("/api/v1/complaints")
        assert st == 503 and "database" in body["error"]
        assert api.d.log_contains("database connection main lost")
    finally:
        servers.pg_start()
    wait_for(lambda: api.get("/health")[0] == 200, timeout=30, what="health 200")
    assert api.d.alive()


def test_metrics_counts_from_one_query(db, daemons):
    api = start_apid(daemons, db)
    routed(db)
    routed(db)
    submit(db)
    db.execute("INSERT INTO outbox (channel, idem_key, recipient, body) "
               "VALUES ('sms', 'm1', '+996555123456', 'hi'), ('mqtt', 'm2', 't/x', '{}')")
    db.execute("INSERT INTO dead_letter (job_id, kind, payload, attempts, last_error, created_at) "
               "VALUES (1, 'route', '{}', 8, 'boom', now())")
    db.execute("UPDATE job SET run_at = now() - interval '100 seconds' WHERE id = "
               "(SELECT min(id) FROM job)")
    st, hdrs, raw = api.get("/metrics")
    text = raw.decode()
    assert st == 200 and hdrs["Content-Type"].startswith("text/plain")
    lines = dict(l.rsplit(" ", 1) for l in text.splitlines() if not l.startswith("#"))
    assert float(lines['aryz_complaints{status="routed"}']) == 2
    assert float(lines['aryz_complaints{status="received"}']) == 1
    assert float(lines['aryz_complaints{status="closed"}']) == 0
    assert float(lines['aryz_jobs{kind="route"}']) == 3
    assert float(lines['aryz_outbox_pending{channel="sms"}']) == 1
    assert float(lines['aryz_outbox_pending{channel="mqtt"}']) == 1
    assert float(lines["aryz_dead_letters"]) == 1
    assert 100 <= float(lines["aryz_oldest_job_age_seconds"]) < 200
    assert "# TYPE aryz_complaints gauge" in text


def test_complaint_list_filters_and_keyset_pages(db, daemons):
    api = start_apid(daemons, db)
    suzak = [routed(db, provider=1)[1] for _ in range(5)]
    lighting = routed(db, provider=2, category="lighting")[1]
    water = routed(db, provider=3, soate=AK_BULUNG, category="water")[1]
    fresh = submit(db)[1]

    st, body = api.get_json("/api/v1/complaints?limit=100")
    assert st == 200 and body["count"] == 8 and body["next_after_id"] is None
    one = body["complaints"][0]
    assert one["ticket"] == suzak[0] and one["status"] == "routed"
    assert one["municipality"]["soate"] == SUZAK
    assert one["municipality"]["rayon"]["soate"] == "41703220000000"
    assert one["provider"] == {"id": 1, "name": "DEMO Taza Ai waste service"}
    assert "reporter" not in one and "+996555123456" not in json.dumps(body)

    # Keyset pages of 3 cover everything exactly once, in id order.
    seen, after = [], 0
    while True:
        st, page = api.get_json("/api/v1/complaints?limit=3&after_id=%d" % after)
        assert st == 200
        seen += [c["ticket"] for c in page["complaints"]]
        if page["next_after_id"] is None:
            break
        after = page["next_after_id"]
    assert seen == suzak + [lighting, water, fresh]

    st, body = api.get_json("/api/v1/complaints?municipality=" + AK_BULUNG)
    assert [c["ticket"] for c in body["complaints"]] == [water]
    st, body = api.get_json("/api/v1/complaints?provider=2")
    assert [c["ticket"] for c in body["complaints"]] == [lighting]
    st, body = api.get_json("/api/v1/complaints?status=received,triage")
    assert [c["ticket"] for c in body["complaints"]] == [fresh]
    st, body = api.get_json("/api/v1/complaints?municipality=%s&status=routed&provider=1" % SUZAK)
    assert [c["ticket"] for c in body["complaints"]] == suzak
    # Default page size comes from the config (20 here), capped by max_limit.
    st, body = api.get_json("/api/v1/complaints")
    assert body["count"] == 8


def test_complaint_detail_has_events_and_hides_the_phone(db, daemons):
    api = start_apid(daemons, db)
    cid, ticket = routed(db, lat=40.9, lon=72.9)
    st, body = api.get_json("/api/v1/complaints/" + ticket)
    assert st == 200
    assert body["ticket"] == ticket and body["lat"] == 40.9 and body["lon"] == 72.9
    kinds = [(e["kind"], e["to_status"], e["actor"]) for e in body["events"]]
    assert kinds == [("created", "received", "resident"),
                     ("status", "routed", "aryz-routerd")]
    assert body["events"][0]["detail"]["channel"] == "api"
    assert "+996555123456" not in json.dumps(body)
    st, body = api.get_json("/api/v1/complaints/999999")
    assert st == 404 and "999999" in body["error"]
    st, body = api.get_json("/api/v1/complaints/12%3Cx")
    assert st == 400


def test_staff_ack_needs_the_token_and_goes_through_transition(db, daemons):
    api = start_apid(daemons, db)
    cid, ticket = routed(db)
    path = "/api/v1/complaints/%s/ack" % ticket

    st, hdrs, raw = api.post(path)
    assert st == 401 and "Bearer" in hdrs.get("WWW-Authenticate", "")
    st, _, _ = api.post(path, token="wrong-token-123")
    assert st == 401
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "routed"

    st, _, raw = api.post(path, {"actor": "Aibek", "note": "on our way"}, token=TOKEN)
    assert st == 200, raw
    assert json.loads(raw) == {"ticket": ticket, "from_status": "routed",
                               "status": "acknowledged"}
    row = db.one("SELECT status, acknowledged_at FROM complaint WHERE id = %s", (cid,))
    assert row["status"] == "acknowledged" and row["acknowledged_at"] is not None
    ev = db.one("SELECT actor, detail FROM complaint_event WHERE complaint_id = %s "
                "AND to_status = 'acknowledged'", (cid,))
    assert ev["actor"] == "api:Aibek" and ev["detail"]["note"] == "on our way"
    # aryz_transition queued the resident's SMS.
    assert db.scalar("SELECT count(*) FROM outbox WHERE complaint_id = %s AND channel = 'sms'",
                     (cid,)) == 1
    # Acknowledging twice is not a valid transition.
    st, _, raw = api.post(path, token=TOKEN)
    assert st == 409 and b"invalid_transition" in raw

    st, _, raw = api.post("/api/v1/complaints/%s/done" % ticket, token=TOKEN)
    assert st == 200 and json.loads(raw)["status"] == "resolved"
    st, _, _ = api.post("/api/v1/complaints/424242/ack", token=TOKEN)
    assert st == 404


def test_actor_of_64_cyrillic_characters_is_kept_whole(db, daemons):
    # 64 characters is the limit, and Cyrillic takes 2 bytes each in UTF-8:
    # the actor must reach the event intact, not cut in the middle of a
    # character (which PostgreSQL refuses as invalid UTF-8).
    api = start_apid(daemons, db)
    cid, ticket = routed(db)
    actor = "Диспетчер Айгүл Асанова" + "ы" * (64 - len("Диспетчер Айгүл Асанова"))
    assert len(actor) == 64
    st, _, raw = api.post("/api/v1/complaints/%s/ack" % ticket, {"actor": actor}, token=TOKEN)
    assert st == 200, raw
    assert db.scalar("SELECT actor FROM complaint_event WHERE complaint_id = %s "
                     "AND to_status = 'acknowledged'", (cid,)) == "api:" + actor
    st, _, raw = api.post("/api/v1/complaints/%s/done" % ticket, {"actor": actor + "ы"},
                          token=TOKEN)
    assert st == 400 and b"actor" in raw
    assert api.d.alive()


def test_reject_needs_a_reason(db, daemons):
    api = start_apid(daemons, db)
    cid, ticket = routed(db)
    path = "/api/v1/complaints/%s/reject" % ticket
    st, _, raw = api.post(path, token=TOKEN)
    assert st == 400 and b"reason" in raw
    st, _, raw = api.post(path, {"reason": ""}, token=TOKEN)
    assert st == 400
    st, _, raw = api.post(path, {"reason": 5}, token=TOKEN)
    assert st == 400 and b"must be a string" in raw
    st, _, raw = api.post(path, {"reason": "x" * 501}, token=TOKEN)
    assert st == 400
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "routed"
    st, _, raw = api.post(path, {"reason": "spam, not a complaint"}, token=TOKEN)
    assert st == 200, raw
    row = db.one("SELECT status, reject_reason FROM complaint WHERE id = %s", (cid,))
    assert row == {"status": "rejected", "reject_reason": "spam, not a complaint"}


def test_actions_disabled_without_token(db, daemons):
    api = start_apid(daemons, db, token="")
    cid, ticket = routed(db)
    st, _, raw = api.post("/api/v1/complaints/%s/ack" % ticket, token="")
    assert st == 403 and b"api.token" in raw


def test_municipality_search_returns_soate_and_rayon(db, daemons):
    api = start_apid(daemons, db)
    st, body = api.get_json("/api/v1/municipalities?q=%D0%BA%D1%8B%D0%B7%D1%8B%D0%BB-%D1%82%D1%83%D1%83")
    assert st == 200
    ms = body["municipalities"]
    assert len(ms) >= 2                              # Kyzyl-Tuu repeats
    assert len({m["soate"] for m in ms}) == len(ms)
    assert len({m["rayon"]["soate"] for m in ms}) >= 2
    st, body = api.get_json("/api/v1/municipalities?q=" + SUZAK)
    assert [m["soate"] for m in body["municipalities"]] == [SUZAK]
    assert body["municipalities"][0]["oblast"]["name_latin"]
    st, body = api.get_json("/api/v1/municipalities?q=Suzak")
    assert SUZAK in [m["soate"] for m in body["municipalities"]]
    st, body = api.get_json("/api/v1/municipalities")
    assert st == 400
    st, body = api.get_json("/api/v1/municipalities?q=" + "a" * 65)
    assert st == 400
    st, body = api.get_json("/api/v1/municipalities?q=%FF")
    assert st == 400


def test_provider_scorecard_numbers(db, daemons):
    api = start_apid(daemons, db)
    # Provider 2 (lighting in Suzak): four complaints with known times.
    ids = [routed(db, provider=2, category="lighting")[0] for _ in range(4)]
    a, b, c, d = ids
    db.execute("UPDATE complaint SET routed_at = now() - interval '10 hours' WHERE id = ANY(%s)", (ids,))
    # a: ack after 30 min, resolved after 2 h, rated 5
    db.execute("UPDATE complaint SET status = 'resolved', acknowledged_at = routed_at + interval '30 minutes', "
               "resolved_at = routed_at + interval '2 hours', rating = 5 WHERE id = %s", (a,))
    # b: ack after 60 min, resolved after 6 h, reopened once, rated 2, breached
    db.execute("UPDATE complaint SET status = 'resolved', acknowledged_at = routed_at + interval '60 minutes', "
               "resolved_at = routed_at + interval '6 hours', rating = 2, reopen_count = 1 WHERE id = %s", (b,))
    db.execute("INSERT INTO sla_timer (complaint_id, kind, due_at, fired_at, outcome) "
               "VALUES (%s, 'resolve_breach', now() - interval '5 hours', now() - interval '5 hours', "
               "'acted')", (b,))
    # a stale breach timer of a (an older generation) fired without effect: no breach
    db.execute("INSERT INTO sla_timer (complaint_id, kind, due_at, fired_at, outcome) "
               "VALUES (%s, 'ack_breach', now(), now(), 'stale')", (a,))
    # c: ack after 90 min, still open; a warning fired (not a breach)
    db.execute("UPDATE complaint SET status = 'acknowledged', acknowledged_at = routed_at + interval '90 minutes' "
               "WHERE id = %s", (c,))
    db.execute("INSERT INTO sla_timer (complaint_id, kind, due_at, fired_at) "
               "VALUES (%s, 'ack_warn', now(), now())", (c,))
    # d: nothing yet, but its ack breach fired
    db.execute("INSERT INTO sla_timer (complaint_id, kind, due_at, fired_at, outcome) "
               "VALUES (%s, 'ack_breach', now(), now(), 'acted')", (d,))
    # A complaint of another provider must not count.
    routed(db, provider=1)

    st, sc = api.get_json("/api/v1/providers/2/scorecard")
    assert st == 200
    assert sc["provider_id"] == 2 and sc["name"] == "DEMO Jaryk street lighting"
    assert sc["complaints"] == 4 and sc["open"] == 2
    assert sc["acknowledged"] == 3 and sc["resolved"] == 2
    assert sc["median_ack_minutes"] == 60.0
    assert sc["median_resolve_minutes"] == 240.0
    assert sc["within_sla"] == 2 and sc["within_sla_share"] == 0.5
    assert sc["reopened"] == 1 and sc["reopen_rate"] == 0.25
    assert sc["rated"] == 2 and sc["average_rating"] == 3.5

    st, sc = api.get_json("/api/v1/providers/3/scorecard")
    assert st == 200 and sc["complaints"] == 0 and sc["median_ack_minutes"] is None
    assert api.get_json("/api/v1/providers/99/scorecard")[0] == 404
    assert api.get_json("/api/v1/providers/x1/scorecard")[0] == 400


def test_bad_requests_get_4xx_and_the_daemon_keeps_serving(db, daemons):
    api = start_apid(daemons, db)
    cid, ticket = routed(db)
    cases = [
        ("/api/v1/complaints?limit=0", 400, "limit"),
        ("/api/v1/complaints?limit=101", 400, "limit"),
        ("/api/v1/complaints?limit=abc", 400, "limit"),
        ("/api/v1/complaints?limit=-5", 400, "limit"),
        ("/api/v1/complaints?limit=99999999999999999999", 400, "limit"),
        ("/api/v1/complaints?municipality=4170322085600", 400, "SOATE"),
        ("/api/v1/complaints?municipality=4170322085600x", 400, "SOATE"),
        ("/api/v1/complaints?status=bogus", 400, "status"),
        ("/api/v1/complaints?status=routed,", 400, "status"),
        ("/api/v1/complaints?provider=0", 400, "provider"),
        ("/api/v1/complaints?after_id=1.5", 400, "after_id"),
        ("/api/v1/nothing", 404, "no such"),
        ("/a/b/c/d/e/f/g/h", 404, "no such"),
        ("/" + "x" * 100, 404, "no such"),
    ]
    for path, code, word in cases:
        st, _, raw = api.get(path)
        assert st == code, (path, st, raw)
        assert word in json.loads(raw)["error"], (path, raw)
    # Wrong method on a known path.
    st, hdrs, _ = api.post("/api/v1/complaints", {"x": 1})
    assert st == 405 and hdrs.get("Allow") == "GET"
    # Malformed JSON body of a staff action.
    st, _, raw = api.post("/api/v1/complaints/%s/ack" % ticket, b"{not json",
                          token=TOKEN, headers={"Content-Type": "application/json"})
    assert st == 400 and b"JSON" in raw
    st, _, raw = api.post("/api/v1/complaints/%s/ack" % ticket, b"[1,2]", token=TOKEN)
    assert st == 400
    # A body over http.max_body (4096 here) is refused before it is read.
    st, _, _ = api.post("/api/v1/complaints/%s/reject" % ticket,
                        {"reason": "y" * 5000}, token=TOKEN)
    assert st == 413
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "routed"
    # Still serving, and the bad requests were logged one line each.
    assert api.get("/health")[0] == 200
    assert api.get_json("/api/v1/complaints/" + ticket)[0] == 200
    assert api.d.log_contains(r"400 /api/v1/complaints\?limit=0: limit must be")
    assert api.d.alive()
    assert api.d.stop() == 0


def test_sighup_reloads_the_token(db, daemons):
    api = start_apid(daemons, db)
    cid, ticket = routed(db)
    api.d.write_config(open(api.d.config_path).read().replace(TOKEN, "new-token-456"))
    api.d.sighup()
    api.d.wait_log("configuration reloaded")
    st, _, _ = api.post("/api/v1/complaints/%s/ack" % ticket, token=TOKEN)
    assert st == 401
    st, _, _ = api.post("/api/v1/complaints/%s/ack" % ticket, token="new-token-456")
    assert st == 200


def test_sigterm_answers_the_request_in_flight_first(db, daemons):
    """A staff action blocked on a row lock is still answered after SIGTERM;
    new requests meanwhile get 503; then the daemon exits 0."""
    import signal
    import threading

    import psycopg2
    api = start_apid(daemons, db)
    cid, ticket = routed(db)
    holder = psycopg2.connect(db.conninfo)
    cur = holder.cursor()
    cur.execute("SELECT 1 FROM complaint WHERE id = %s FOR UPDATE", (cid,))
    result = {}

    def ack():
        result["r"] = api.post("/api/v1/complaints/%s/ack" % ticket, token=TOKEN)
    t = threading.Thread(target=ack)
    t.start()
    try:
        wait_for(lambda: db.scalar("SELECT count(*) FROM pg_stat_activity WHERE "
                                   "wait_event_type = 'Lock' AND datname = %s",
                                   (db.name,)) == 1, what="ack waiting on the lock")
        size = api.d.log_size()
        api.d.proc.send_signal(signal.SIGTERM)
        api.d.wait_log(r"waiting for 1 request\(s\) in flight", since=size)
        st, _, raw = api.get("/health")
        assert st == 503 and b"shutting down" in raw
    finally:
        holder.commit()
        holder.close()
    t.join(10)
    assert result["r"][0] == 200, result
    assert api.d.proc.wait(10) == 0
    assert db.scalar("SELECT status FROM complaint WHERE id = %s", (cid,)) == "acknowledged"
