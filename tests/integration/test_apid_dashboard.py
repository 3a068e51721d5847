"""aryz-apid dashboard: open complaints and the triage list as one HTML
page, everything escaped, filter by municipality."""
from apid_helpers import AK_BULUNG, SUZAK, routed, start_apid, submit


def test_dashboard_lists_open_complaints_and_escapes(db, daemons):
    api = start_apid(daemons, db)
    evil = "<script>alert('x')</script> & \"bins\""
    cid, ticket = routed(db, provider=1, description=evil)
    db.execute("UPDATE complaint SET escalation_level = 2 WHERE id = %s", (cid,))
    muni_ticket = routed(db, provider=None, category="landscaping")[1]
    water = routed(db, provider=3, soate=AK_BULUNG, category="water")[1]
    triage_id, triage = submit(db, soate=None, category=None, description="qayda?")
    db.execute("UPDATE complaint SET status = 'triage' WHERE id = %s", (triage_id,))
    closed_id, closed = routed(db, provider=1)
    db.execute("UPDATE complaint SET status = 'rejected', reject_reason = 'spam' WHERE id = %s",
               (closed_id,))

    st, hdrs, raw = api.get("/")
    html = raw.decode()
    assert st == 200 and hdrs["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in hdrs["Content-Security-Policy"]
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;bins&quot;" in html
    for t in (ticket, muni_ticket, water, triage):
        assert "<td>%s</td>" % t in html
    assert "<td>%s</td>" % closed not in html
    assert "Suzak" in html and "DEMO Taza Ai waste service" in html
    assert "<td>municipality</td>" in html          # no provider: the municipality
    assert "4 open complaints" in html
    # The triage complaint is in the triage table, before the open table.
    assert html.index(triage) < html.index("<h2>Open</h2>") < html.index(ticket)
    assert 'class="lvln"' in html                   # escalated row is marked

    st, _, raw = api.get("/?municipality=" + AK_BULUNG)
    html = raw.decode()
    assert st == 200 and water in html and ticket not in html
    assert 'value="%s"' % AK_BULUNG in html
    st, _, raw = api.get("/?municipality=")          # the empty filter form
    assert st == 200 and ticket in raw.decode()
    st, _, raw = api.get("/?municipality=%22%3E%3Cscript%3E")
    assert st == 400 and b"<script>" not in raw
