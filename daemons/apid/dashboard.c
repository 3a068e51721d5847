/*
 * dashboard.c - the staff dashboard at GET /: one server-rendered HTML page
 * (inline CSS, no scripts, no external assets) listing the triage queue and
 * the open complaints, optionally for one municipality (?municipality=
 * SOATE).  Every value from the database goes through html_escape().
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apid.h"
#include "log.h"

#define DASH_ROWS	500	/* rows rendered; the page says when cut */
#define DASH_XSTR(x)	DASH_STR(x)
#define DASH_STR(x)	#x

enum dash_col {
	DC_TICKET, DC_STATUS, DC_CATEGORY, DC_SOATE, DC_MUNI, DC_RAYON,
	DC_RESPONSIBLE, DC_PROVIDER, DC_AGE, DC_LEVEL, DC_PRIORITY, DC_DESC,
	DC_TOTAL,
};

void
dashboard_prepare(struct pgconn *db)
{
	/* Column order is enum dash_col. */
	pgconn_prepare(db, "dash_open",
	    "SELECT c.ticket, c.status, COALESCE(s.name_en, c.category_code),"
	    " m.soate, m.name_latin, r.name_latin, c.responsible, p.name,"
	    " extract(epoch FROM now() - c.created_at)::bigint,"
	    " c.escalation_level, c.priority, left(c.description, 200),"
	    " count(*) OVER ()"
	    " FROM complaint c"
	    " LEFT JOIN municipality m ON m.soate = c.municipality_soate"
	    " LEFT JOIN rayon r ON r.soate = m.rayon_soate"
	    " LEFT JOIN provider p ON p.id = c.provider_id"
	    " LEFT JOIN service_category s ON s.code = c.category_code"
	    " WHERE c.status IN ('received', 'triage', 'routed', 'acknowledged',"
	    "   'in_progress', 'waiting_resident')"
	    "   AND ($1::text IS NULL OR c.municipality_soate = $1)"
	    " ORDER BY c.escalation_level DESC, c.priority DESC, c.created_at"
	    " LIMIT " DASH_XSTR(DASH_ROWS));
}

/* Append s to out with & < > " ' replaced by entities. */
void
html_escape(struct evbuffer *out, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *ent;

		switch (*s) {
		case '&': ent = "&amp;"; break;
		case '<': ent = "&lt;"; break;
		case '>': ent = "&gt;"; break;
		case '"': ent = "&quot;"; break;
		case '\'': ent = "&#39;"; break;
		default: continue;
		}
		evbuffer_add(out, run, (size_t)(s - run));
		evbuffer_add(out, ent, strlen(ent));
		run = s + 1;
	}
	evbuffer_add(out, run, (size_t)(s - run));
}

/* Escaped value of a cell, or dflt (escaped too) when NULL. */
static void
cell(struct evbuffer *out, PGresult *res, int row, int col, const char *dflt)
{
	evbuffer_add_printf(out, "<td>");
	html_escape(out, PQgetisnull(res, row, col) ? dflt :
	    PQgetvalue(res, row, col));
	evbuffer_add_printf(out, "</td>");
}

/* "2d 3h", "4h 10m", "7m" */
static void
age_text(long long s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(buf, len, "%lldd %lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lldm", s / 60);
}

static void
render_rows(struct evbuffer *out, PGresult *res, bool triage)
{
	int n = PQntuples(res), shown = 0;
	char age[32];		/* "99999d 23h" */

	evbuffer_add_printf(out, "<table><thead><tr><th>Ticket</th>"
	    "<th>Municipality</th><th>Category</th><th>Responsible</th>"
	    "<th>Status</th><th>Age</th><th>Escalation</th>"
	    "<th>Description</th></tr></thead><tbody>\n");
	for (int i = 0; i < n; i++) {
		bool is_triage = strcmp(PQgetvalue(res, i, DC_STATUS),
		    "triage") == 0;

		if (is_triage != triage)
			continue;
		shown++;
		evbuffer_add_printf(out, "<tr class=\"lvl%s\">",
		    PQgetvalue(res, i, DC_LEVEL)[0] == '0' ? "0" : "n");
		cell(out, res, i, DC_TICKET, "");
		evbuffer_add_printf(out, "<td>");
		if (PQgetisnull(res, i, DC_SOATE))
			evbuffer_add_printf(out, "<em>unknown</em>");
		else {
			html_escape(out, PQgetvalue(res, i, DC_MUNI));
			evbuffer_add_printf(out, " <small>(");
			html_escape(out, PQgetvalue(res, i, DC_RAYON));
			evbuffer_add_printf(out, ", ");
			html_escape(out, PQgetvalue(res, i, DC_SOATE));
			evbuffer_add_printf(out, ")</small>");
		}
		evbuffer_add_printf(out, "</td>");
		cell(out, res, i, DC_CATEGORY, "unknown");
		if (PQgetisnull(res, i, DC_PROVIDER))
			cell(out, res, i, DC_RESPONSIBLE, "-");
		else
			cell(out, res, i, DC_PROVIDER, "");
		cell(out, res, i, DC_STATUS, "");
		age_text(strtoll(PQgetvalue(res, i, DC_AGE), NULL, 10), age,
		    sizeof(age));
		evbuffer_add_printf(out, "<td>%s</td>", age);
		cell(out, res, i, DC_LEVEL, "0");
		cell(out, res, i, DC_DESC, "");
		evbuffer_add_printf(out, "</tr>\n");
	}
	if (shown == 0)
		evbuffer_add_printf(out, "<tr><td colspan=\"8\">none</td></tr>\n");
	evbuffer_add_printf(out, "</tbody></table>\n");
}

static void
dashboard_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;
	struct evbuffer *out;
	long long total;

	if (!http_result_ok(r, res))
		goto done;
	if ((out = evbuffer_new()) == NULL)
		fatalx("out of memory");
	total = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, DC_TOTAL),
	    NULL, 10) : 0;
	evbuffer_add_printf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><title>aryz - open complaints</title>"
	    "<style>body{font-family:sans-serif;margin:1em}"
	    "table{border-collapse:collapse;width:100%%;margin-bottom:2em}"
	    "th,td{border:1px solid #ccc;padding:.3em;text-align:left;"
	    "vertical-align:top}th{background:#eee}tr.lvln{background:#fee}"
	    "small{color:#666}</style></head><body>\n"
	    "<h1>aryz: open complaints</h1>\n"
	    "<form method=\"get\" action=\"/\"><label>Municipality SOATE "
	    "<input name=\"municipality\" pattern=\"[0-9]{14}\" value=\"");
	html_escape(out, r->soate);
	evbuffer_add_printf(out, "\"></label> <button>Filter</button> "
	    "<a href=\"/\">all</a></form>\n");
	evbuffer_add_printf(out, "<p>%lld open complaint%s%s.</p>\n", total,
	    total == 1 ? "" : "s", total > DASH_ROWS ?
	    "; showing the first " DASH_XSTR(DASH_ROWS) : "");
	evbuffer_add_printf(out, "<h2>Triage (municipality or category "
	    "unknown)</h2>\n");
	render_rows(out, res, true);
	evbuffer_add_printf(out, "<h2>Open</h2>\n");
	render_rows(out, res, false);
	evbuffer_add_printf(out, "</body></html>\n");
	evhttp_add_header(evhttp_request_get_output_headers(r->req),
	    "Content-Security-Policy",
	    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
	reply_buffer(r->req, 200, "text/html; charset=utf-8", out);
	evbuffer_free(out);
done:
	req_free(&r);
}

void
dashboard_page(struct apid *a, struct evhttp_request *req,
    const struct evkeyvalq *q)
{
	const char *muni = http_param(q, "municipality");
	const char *vals[1];
	struct apreq *r;

	if (muni != NULL && *muni == '\0')
		muni = NULL;		/* the empty filter form */
	if (muni != NULL && !http_valid_soate(muni)) {
		reply_error(req, 400, "municipality must be a 14-digit SOATE "
		    "code");
		return;
	}
	r = req_new(a, req, "dashboard");
	snprintf(r->soate, sizeof(r->soate), "%s", muni ? muni : "");
	vals[0] = muni;
	if (http_query(r, "dash_open", 1, vals, dashboard_done) < 0)
		return;
}
