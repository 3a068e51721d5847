/*
 * apid.h - internal interface of aryz-apid: the configuration, the daemon
 * state shared by its modules, and each module's entry points.
 *
 * Request flow: http.c accepts a request, checks method, path and size and
 * calls one handler of api.c, open311.c, dashboard.c or metrics.c.  A
 * handler validates its input (400 with a reason), queues one prepared
 * query on the single database connection and answers from the result
 * callback.  When the connection is down the answer is 503.
 */
#ifndef ARYZ_APID_H
#define ARYZ_APID_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"
#include "pgconn.h"

struct evhttp;
struct evhttp_request;
struct evbuffer;
struct evkeyvalq;

struct apid_cfg {
	struct daemon_common	common;
	char			*http_listen;	/* address to bind */
	int			 http_port;
	int			 http_max_body;	/* bytes; larger bodies: 413 */
	int			 http_timeout;	/* seconds per connection */
	char			*api_token;	/* staff Bearer token; "" = off */
	char			*open311_api_key; /* POST requests.json; "" = off */
	int			 api_default_limit;
	int			 api_max_limit;
};

struct apid {
	struct daemon		*d;
	struct apid_cfg		*cfg;
	struct pgconn		*db;
	struct evhttp		*http;
	int			 inflight;	/* requests not yet answered */
	int			 unsent;	/* answers not yet written out */
	bool			 stopping;
};

/*
 * One HTTP request waiting for the database.  Owned by the handler that
 * made it; freed by req_done() after the answer went out.
 */
struct apreq {
	struct apid		*a;
	struct evhttp_request	*req;
	const char		*route;		/* for the log line */
	char			 ticket[40];	/* path parameter, if any */
	char			 soate[16];	/* filter, for the dashboard */
	int			 kind;		/* handler-specific variant */
	int			 limit;		/* page size asked for */
	bool			 open311;	/* errors in GeoReport shape */
};

/* Limits of request parameters. */
#define APID_TICKET_MAX		32	/* ticket text in a path */
#define APID_QUERY_MAX		64	/* municipality search text, chars */
#define APID_REASON_MAX		500	/* reject reason / note, chars */
#define HTTP_URI_LOG		200	/* bytes of a URI written to the log */
#define APID_ACTOR_MAX		64	/* "actor" of a staff action, chars */
#define APID_DESC_MAX		1000	/* description of a new request */
#define APID_IDEM_MAX		128	/* client idempotency key, bytes */

/* http.c */
int	 http_start(struct apid *a) __attribute__((warn_unused_result));
void	 http_stop(struct apid *a);
struct apreq *req_new(struct apid *a, struct evhttp_request *req,
	    const char *route);
void	 req_free(struct apreq **rp);
void	 reply_json(struct evhttp_request *req, int code, json_t *body);
void	 reply_error(struct evhttp_request *req, int code, const char *fmt,
	    ...) __attribute__((format(printf, 3, 4)));
void	 reply_buffer(struct evhttp_request *req, int code,
	    const char *ctype, struct evbuffer *buf);
void	 http_check_drained(struct apid *a);
int	 http_query(struct apreq *r, const char *stmt, int nparams,
	    const char *const *values, pgconn_result_cb *cb)
	    __attribute__((warn_unused_result));
bool	 http_result_ok(struct apreq *r, PGresult *res);
const char *http_param(const struct evkeyvalq *q, const char *key);
int	 http_parse_int(const char *s, long long min, long long max,
	    long long *out) __attribute__((warn_unused_result));
bool	 http_valid_soate(const char *s);
bool	 http_valid_ticket(const char *s);
const char *http_log_uri(struct evhttp_request *req, char *buf, size_t len);
json_t	*http_rows_json(PGresult *res);
json_t	*http_row_json(PGresult *res, int row);

/* api.c */
void	 api_prepare(struct pgconn *db);
void	 api_health(struct apid *a, struct evhttp_request *req);
void	 api_complaints(struct apid *a, struct evhttp_request *req,
	    const struct evkeyvalq *q);
void	 api_complaint(struct apid *a, struct evhttp_request *req,
	    const char *ticket);
void	 api_action(struct apid *a, struct evhttp_request *req,
	    const char *ticket, const char *action);
void	 api_municipalities(struct apid *a, struct evhttp_request *req,
	    const struct evkeyvalq *q);
void	 api_scorecard(struct apid *a, struct evhttp_request *req,
	    const char *id);

/* open311.c */
void	 open311_prepare(struct pgconn *db);
void	 open311_services(struct apid *a, struct evhttp_request *req);
void	 open311_requests(struct apid *a, struct evhttp_request *req,
	    const struct evkeyvalq *q);
void	 open311_request(struct apid *a, struct evhttp_request *req,
	    const char *ticket);
void	 open311_submit(struct apid *a, struct evhttp_request *req);
void	 open311_error(struct evhttp_request *req, int code,
	    const char *desc);

/* dashboard.c */
void	 dashboard_prepare(struct pgconn *db);
void	 dashboard_page(struct apid *a, struct evhttp_request *req,
	    const struct evkeyvalq *q);
void	 html_escape(struct evbuffer *out, const char *s);

/* metrics.c */
void	 metrics_prepare(struct pgconn *db);
void	 metrics_page(struct apid *a, struct evhttp_request *req);

#endif
