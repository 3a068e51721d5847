/*
 * smsd.h - internal interface of aryz-smsd, grouped by the file that
 * implements each part.
 */
#ifndef ARYZ_SMSD_H
#define ARYZ_SMSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

struct evhttp_request;
struct evkeyvalq;
struct event_base;
struct pgconn;
struct lexicon;

/* Configuration: one struct, described by the table in main.c. */
struct smsd_cfg {
	struct daemon_common	common;
	int	db_pool;		/* ingress connections */
	char	*http_listen;
	int	 http_port;
	int	 http_max_body;		/* hard cap, bytes; evhttp answers 413 */
	int	 http_max_text;		/* bytes of text per message */
	int	 http_timeout;		/* seconds per request */
	char	*kannel_token, *kannel_allow;
	char	*json_token, *json_allow;
	char	*ussd_token, *ussd_allow;
	char	*dlr_token, *dlr_allow;
	int	 ussd_session_ttl;	/* seconds */
	int	 mp_max_age;		/* seconds before a partial is surfaced */
	int	 mp_check;		/* seconds between sweeps */
	bool	 mt_enabled;
	char	*mt_url;		/* Kannel /cgi-bin/sendsms */
	char	*mt_username, *mt_password;
	char	*mt_from, *mt_smsc;
	char	*mt_dlr_url;		/* base, "?id=<outbox id>..." appended */
	int	 mt_dlr_mask;
	int	 mt_batch;
	int	 mt_lease;		/* seconds a claimed row stays ours */
	int	 mt_poll;		/* seconds between polls */
	int	 mt_timeout;		/* seconds per sendsms request */
	int	 mt_max_attempts;
	int	 mt_max_parts;		/* Kannel's max-messages, for a warning */
	int	 mt_backoff_min, mt_backoff_max;	/* seconds */
};

/* The running daemon: what every part reaches through one pointer. */
struct smsd {
	struct daemon		*d;
	struct smsd_cfg		*cfg;
	struct event_base	*base;
	struct pgconn		**pool;		/* ingress connections */
	int			 npool;
	int			 next;		/* round robin */
	struct lexicon		*lex;		/* NULL until loaded */
	struct http_srv		*http;
	struct ussd_data	*ussd;		/* NULL until loaded */
	struct mt		*mt;
	struct event		*janitor;
	int			 inflight;	/* requests waiting for the DB */
	int			 sweeping;	/* multipart sweep queries */
	int			 ticks;		/* janitor seconds since start */
	bool			 stopping;
};

/* main.c */
/* A ready ingress connection, or NULL (answer 503). */
struct pgconn *smsd_db(struct smsd *s);

/*
 * One HTTP request waiting for the database.  evhttp (2.1) frees a request
 * whose client went away only when we reply, so every path ends in
 * sreq_reply(), which also releases the struct.
 */
struct sreq {
	struct smsd		*s;
	struct evhttp_request	*req;
	char			 ctx[96];	/* log prefix: "ch=sms id=..." */
	/* Filled by the ingress that owns the request. */
	void			*priv;
	void			(*priv_free)(void *);
};

/* http.c */
struct http_srv *http_start(struct smsd *s);
void http_stop(struct http_srv **h);
void http_close_listener(struct http_srv *h);
/* Validate an allow-list ("10.0.0.0/8, ::1"); -1 and err when bad. */
int http_check_allow(const char *list, char *err, size_t errlen)
    __attribute__((warn_unused_result));
struct sreq *sreq_new(struct smsd *s, struct evhttp_request *req);
/* Reply with code and text/plain body (a line), log, free r. */
void sreq_reply(struct sreq *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reply text as it is, but log logtext in its place (text holds what a
 * resident typed); frees r. */
void sreq_reply_private(struct sreq *r, int code, const char *text,
    const char *logtext);
/* 503 with Retry-After, for "database not there". */
void sreq_unavailable(struct sreq *r, const char *why);
/* Body of the request (NUL-terminated copy) and its length. */
char *http_body(struct evhttp_request *req, size_t *len);
/* A copy of s that is valid UTF-8: bad bytes and controls become '?'. */
char *safe_text(const char *s);
/* Hex form of raw bytes for a bytea parameter ("\\x..."). */
char *bytea_hex(const void *raw, size_t len);

/* mo.c */
void mo_kannel(struct sreq *r);
void mo_json(struct sreq *r);
/* Normalize text and submit a complaint (also used by multipart.c). */
struct mo_msg {
	char	*idem;		/* idempotency key */
	char	 sender[24];	/* E.164 */
	char	*receiver;
	char	*raw;		/* bytes as received */
	size_t	 rawlen;
	char	*text;		/* UTF-8, NUL-terminated */
	size_t	 textlen;
	char	*meta;		/* JSON object text */
	/* multipart */
	bool	 concat;
	int	 ref, total, seq;
	/* a rejected message: the answer after it is stored */
	int	 rcode;
	char	 rwhy[200];
};
void mo_msg_free(struct mo_msg *m);

/* multipart.c */
/* Store one part; on the last part also create the complaint. */
void mp_part(struct sreq *r, struct mo_msg *m);
/* Periodic: finish complete groups (crash recovery) and stale partials. */
void mp_sweep(struct smsd *s);

/* ussd.c */
void ussd_request(struct sreq *r);
/* Load categories, rayons, municipalities (called on DB connect). */
void ussd_load(struct smsd *s);
void ussd_free(struct ussd_data **u);
/* Screen fits: 182 GSM-7 or 80 UCS-2 characters. */
bool ussd_fits(const char *text);

/* mt.c */
struct mt *mt_new(struct smsd *s);
void mt_free(struct mt **m);
/* True while sendsms requests are in flight. */
int mt_busy(const struct mt *m);
void mt_stop(struct mt *m);

/* dlr.c */
void dlr_request(struct sreq *r);

#endif
