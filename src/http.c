/*
 * libevent HTTP front end. Every request ends in exactly one reply: at once
 * (404, 301, metrics) or later, when the check it is parked on ends
 * (/healthz). A parked request whose client goes away is unparked from its
 * connection's close callback, so the check never answers a freed request.
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h> /* TAILQ_FOREACH over libevent's header list */
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the request's version, to answer 1.x as 1.1 */
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <zlib.h>

#include "check.h"
#include "http_request.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

/* Bounds for hostile clients; /healthz needs neither big headers nor a body. */
#define MAX_HEADERS_SIZE 16384
#define MAX_BODY_SIZE    65536

/*
 * Backoff between failing accept() calls (EMFILE, ENFILE, ENOBUFS, ...),
 * as Go's net/http: from 5 ms doubling to 1 s, one log line per retry.
 * Without it libevent retries at once, forever: a busy loop and a log flood
 * while the fds are used up.
 */
#define ACCEPT_RETRY_MIN_MS 5
#define ACCEPT_RETRY_MAX_MS 1000

/* One listening socket of a server, and its accept-retry timer. */
struct http_listener {
	struct evhttp_bound_socket *bound;
	struct event *resume; /* re-enables accepting after a failed accept */
	int retry_ms;         /* the last delay; 0 after a quiet second */
	struct timespec last_error;
};

#define MAX_LISTENERS 4

struct http_server {
	struct event_base *base;
	struct evhttp *evhttp;
	struct http_routes routes;
	char metrics_path[1024];
	bool closing; /* http_shutdown ran: /healthz no longer reaches the check */
	struct http_listener listeners[MAX_LISTENERS];
	int n_listeners;
	struct http_server *next; /* in live_servers */
};

/*
 * Every server alive, so that a listener's error callback (whose argument
 * is libevent's struct evhttp, not ours) can find its struct http_listener.
 * Touched only from the event loop's thread.
 */
static struct http_server *live_servers;

/* A request waiting for its endpoint's check. */
struct parked {
	struct http_server *server;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	struct check_waiter *waiter;
	enum endpoint endpoint;
	bool verbose; /* ?verbose: the reason and the probes follow the body */
};

void http_clean_path(const char *path, char *out, unsigned len)
{
	/* Work on "/" + path so the result always starts with '/'. */
	size_t n = strlen(path);
	char *buf = malloc(n + 2);
	char *res = malloc(n + 2);
	if (!buf || !res || len < 2) {
		snprintf(out, len, "/");
		goto out;
	}
	buf[0] = '/';
	memcpy(buf + (path[0] == '/' ? 0 : 1), path, n + 1);
	n = strlen(buf);

	/* path.Clean: drop empty and "." elements, let ".." remove one. */
	size_t r = 0;
	res[r++] = '/';
	for (size_t i = 0; i < n;) {
		while (i < n && buf[i] == '/')
			i++;
		size_t start = i;
		while (i < n && buf[i] != '/')
			i++;
		size_t elen = i - start;
		if (elen == 0 || (elen == 1 && buf[start] == '.'))
			continue;
		if (elen == 2 && buf[start] == '.' && buf[start + 1] == '.') {
			/* Drop the last element and the '/' before it; never the root. */
			while (r > 1 && res[r - 1] != '/')
				r--;
			if (r > 1)
				r--;
			continue;
		}
		if (r > 1)
			res[r++] = '/';
		memcpy(res + r, buf + start, elen);
		r += elen;
	}
	res[r] = '\0';
	/* ServeMux keeps a trailing slash that the request had. */
	if (n > 1 && buf[n - 1] == '/' && r > 1) {
		res[r++] = '/';
		res[r] = '\0';
	}
	snprintf(out, len, "%s", res);
out:
	free(buf);
	free(res);
}

static void set_text_type(struct evhttp_request *req)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; charset=utf-8");
}

/*
 * Writes an answer evhttp has queued (evhttp_send_reply) at once and
 * finishes it as libevent's write event would, instead of waiting one loop
 * pass for epoll to report the socket writable: two system calls fewer per
 * answer (EPOLLOUT on, epoll_wait). Only for callers outside libevent's
 * HTTP callbacks (a parked request's verdict, from a loop callback): there
 * evhttp_send_done, which frees the request and starts reading the next
 * one, may run right away, as it does from the write event. What cannot go
 * out at once (a full socket buffer, an error) stays with the write event.
 */
static void write_now(struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct evbuffer *out = bufferevent_get_output(bev);
	if (evbuffer_write(out, bufferevent_getfd(bev)) < 0 || evbuffer_get_length(out) > 0)
		return;
	bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS);
}

/*
 * Sends status + body. HEAD gets the same headers, Content-Length included
 * (as Go sends it), and no body. 204 and 304 never carry a body (HTTP
 * forbids it; a policy may still pick those statuses). at_once: write it
 * at once (write_now; the request may be gone on return), for callers
 * outside libevent's HTTP callbacks only.
 */
static void reply_now_or_later(struct evhttp_request *req, int status, const char *reason,
                               const char *body, size_t len, bool at_once)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	bool bodyless = status == 204 || status == 304;
	/* Go dates every answer; libevent only HTTP/1.1 ones. */
	if (!evhttp_find_header(h, "Date")) {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		evhttp_add_header(h, "Date", date);
	}
	evhttp_remove_header(h, "Content-Length");
	if (!bodyless) {
		char clen[32];
		snprintf(clen, sizeof(clen), "%zu", len);
		evhttp_add_header(h, "Content-Length", clen);
	}
	struct evbuffer *buf = evbuffer_new();
	if (buf && !bodyless && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(buf, body, len);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	evhttp_send_reply(req, status, reason, buf);
	/*
	 * libevent keeps reading while an answer is written, only to notice a
	 * client that closes: a client that pipelines requests and never
	 * reads grows the input buffer without bound, and one that half-closes
	 * loses the answer being written (and those still owed). Like Go's
	 * server, read nothing more until this answer is out: libevent
	 * resumes reading when it starts on the next request, and a client
	 * that went away meanwhile shows up as a write error.
	 */
	if (evcon)
		bufferevent_disable(evhttp_connection_get_bufferevent(evcon), EV_READ);
	if (buf)
		evbuffer_free(buf);
	if (at_once && evcon)
		write_now(evcon);
}

/* An answer from within libevent's HTTP callbacks: written when epoll says so. */
static void reply(struct evhttp_request *req, int status, const char *reason, const char *body,
                  size_t len)
{
	reply_now_or_later(req, status, reason, body, len, false);
}

static void reply_not_found(struct evhttp_request *req)
{
	static const char body[] = "404 page not found\n";
	set_text_type(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-Content-Type-Options",
	                  "nosniff");
	reply(req, 404, "Not Found", body, sizeof(body) - 1);
}

/* Go's htmlEscape for the redirect body: & < > " ' become entities. */
static void put_html_escaped(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			evbuffer_add(out, "&amp;", 5);
			break;
		case '<':
			evbuffer_add(out, "&lt;", 4);
			break;
		case '>':
			evbuffer_add(out, "&gt;", 4);
			break;
		case '"':
			evbuffer_add(out, "&#34;", 5);
			break;
		case '\'':
			evbuffer_add(out, "&#39;", 5);
			break;
		default:
			evbuffer_add(out, s, 1);
		}
	}
}

/* Adds c to b as it is (keep) or as Go escapes it: %XX, uppercase hex. */
static void add_escaped(struct evbuffer *b, unsigned char c, bool keep)
{
	static const char hex[] = "0123456789ABCDEF";
	if (keep)
		evbuffer_add(b, &c, 1);
	else
		evbuffer_add_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
}

/*
 * The Location Go's ServeMux sends: url.URL{Path: clean, RawQuery: query}
 * .String(), whose path is escaped as Go escapes paths (all but letters,
 * digits and -_.~$&+,/:;=@; uppercase hex), so a cleaned "/\\evil.example/"
 * stays a path ("/%5Cevil.example/") and never becomes "//evil.example/";
 * then http.Redirect's hexEscapeNonASCII on the whole. NULL when out of
 * memory.
 */
static char *redirect_location(const char *clean, const char *query)
{
	struct evbuffer *b = evbuffer_new();
	char *location = NULL;
	if (!b)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)clean; *p; p++)
		add_escaped(b, *p, isalnum(*p) || strchr("-_.~$&+,/:;=@", *p));
	if (query) {
		evbuffer_add(b, "?", 1);
		for (const unsigned char *p = (const unsigned char *)query; *p; p++)
			add_escaped(b, *p, *p < 0x80);
	}
	size_t n = evbuffer_get_length(b);
	location = malloc(n + 1);
	if (location) {
		evbuffer_remove(b, location, n);
		location[n] = '\0';
	}
	evbuffer_free(b);
	return location;
}

static void reply_redirect(struct evhttp_request *req, const char *clean, const char *query)
{
	char *location = redirect_location(clean, query);
	struct evbuffer *body = evbuffer_new();
	if (!body || !location) {
		evhttp_send_error(req, 500, "out of memory");
		goto out;
	}
	evbuffer_add_printf(body, "<a href=\"");
	put_html_escaped(body, location);
	evbuffer_add_printf(body, "\">Moved Permanently</a>.\n\n");
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Location", location);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	size_t len = evbuffer_get_length(body);
	reply(req, 301, "Moved Permanently", (const char *)evbuffer_pullup(body, -1), len);
out:
	free(location);
	if (body)
		evbuffer_free(body);
}

static void on_verdict(const struct check_verdict *v, void *arg)
{
	struct parked *p = arg;
	evhttp_connection_set_closecb(p->conn, NULL, NULL);
	set_text_type(p->req);
	struct evbuffer *body = p->verbose && v->record ? evbuffer_new() : NULL;
	if (body) {
		evbuffer_add(body, v->body, v->body_len);
		status_render_verbose(p->server->routes.health, v->record, body);
		size_t len = evbuffer_get_length(body);
		reply_now_or_later(p->req, v->status, NULL, (const char *)evbuffer_pullup(body, -1),
		                   len, true);
		evbuffer_free(body);
	} else {
		reply_now_or_later(p->req, v->status, NULL, v->body, v->body_len, true);
	}
	free(p);
}

/* The client went away while parked: libevent frees the request after this. */
static void on_parked_close(struct evhttp_connection *conn, void *arg)
{
	struct parked *p = arg;
	check_cancel(p->server->routes.checks[p->endpoint], p->waiter);
	free(p);
}

/* After http_shutdown: the checks and the driver may be gone; the answer parked requests get. */
static void reply_closing(struct evhttp_request *req)
{
	static const char closing[] = "livenessprobe is shutting down";
	set_text_type(req);
	reply(req, 500, NULL, closing, sizeof(closing) - 1);
}

static void serve_check(struct http_server *s, struct evhttp_request *req, enum endpoint e,
                        bool verbose)
{
	if (s->closing) {
		reply_closing(req);
		return;
	}
	struct parked *p = calloc(1, sizeof(*p));
	if (!p) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	p->server = s;
	p->req = req;
	p->conn = evhttp_request_get_connection(req);
	p->endpoint = e;
	p->verbose = verbose;
	/* Parked from here until on_verdict or on_parked_close. */
	evhttp_connection_set_closecb(p->conn, on_parked_close, p);
	p->waiter = check_submit(s->routes.checks[e], on_verdict, p);
	if (!p->waiter) {
		evhttp_connection_set_closecb(p->conn, NULL, NULL);
		free(p);
		evhttp_send_error(req, 500, "out of memory");
	}
}

/* Gzips text into a malloc'd buffer; NULL on failure (then send it plain). */
static unsigned char *gzip_text(const unsigned char *text, size_t len, size_t *out_len)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return NULL;
	uLong bound = deflateBound(&z, (uLong)len);
	unsigned char *out = malloc(bound);
	if (out) {
		z.next_in = (unsigned char *)text;
		z.avail_in = (uInt)len;
		z.next_out = out;
		z.avail_out = (uInt)bound;
		if (deflate(&z, Z_FINISH) == Z_STREAM_END) {
			*out_len = z.total_out;
		} else {
			free(out);
			out = NULL;
		}
	}
	deflateEnd(&z);
	return out;
}

/* The exposition, gzipped when asked for, as the Prometheus Go client does. */
static void serve_metrics(struct http_server *s, struct evhttp_request *req)
{
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	metrics_render(s->routes.metrics, buf);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	size_t len = evbuffer_get_length(buf);
	const unsigned char *text = evbuffer_pullup(buf, -1);
	size_t zlen = 0;
	unsigned char *zipped = text && http_accepts_gzip(req) ? gzip_text(text, len, &zlen) : NULL;
	if (zipped) {
		evhttp_add_header(h, "Content-Encoding", "gzip");
		reply(req, 200, "OK", (const char *)zipped, zlen);
		free(zipped);
	} else if (text || len == 0) {
		reply(req, 200, "OK", (const char *)text, len);
	} else {
		evhttp_send_error(req, 500, "out of memory");
	}
	evbuffer_free(buf);
}

static bool metrics_match(const struct http_server *s, const char *path)
{
	if (!s->routes.metrics)
		return false;
	size_t n = strlen(s->metrics_path);
	if (n > 0 && s->metrics_path[n - 1] == '/')
		return strncmp(path, s->metrics_path, n) == 0;
	return strcmp(path, s->metrics_path) == 0;
}

/* /status: JSON by default, a table with ?format=text or Accept: text/plain. */
static void serve_status(struct http_server *s, struct evhttp_request *req, const char *query)
{
	static const char formats[] = "json, text";
	if (s->closing) {
		reply_closing(req);
		return;
	}
	enum status_format format = http_accepts_text(req) ? STATUS_TEXT : STATUS_JSON;
	size_t asked_len = 0;
	char *asked = http_query_param(query, "format", &asked_len);
	if (asked && asked_len == 4 && strcmp(asked, "json") == 0) {
		format = STATUS_JSON;
	} else if (asked && asked_len == 4 && strcmp(asked, "text") == 0) {
		format = STATUS_TEXT;
	} else if (asked) {
		struct evbuffer *msg = evbuffer_new();
		if (msg) {
			/* The value as the client sent it, bounded, quoted as JSON quotes. */
			evbuffer_add_printf(msg, "unknown format ");
			json_put_string(msg, asked, asked_len > 64 ? 64 : asked_len);
			evbuffer_add_printf(msg, "%s: the formats are %s\n",
			                    asked_len > 64 ? " (cut)" : "", formats);
			set_text_type(req);
			size_t len = evbuffer_get_length(msg);
			reply(req, 400, "Bad Request", (const char *)evbuffer_pullup(msg, -1), len);
			evbuffer_free(msg);
		} else {
			evhttp_send_error(req, 500, "out of memory");
		}
		free(asked);
		return;
	}
	free(asked);
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	status_render(s->routes.status, format, buf);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  format == STATUS_JSON ? "application/json" : "text/plain; charset=utf-8");
	size_t len = evbuffer_get_length(buf);
	reply(req, 200, "OK", (const char *)evbuffer_pullup(buf, -1), len);
	evbuffer_free(buf);
}

/* The endpoint whose check answers path, or ENDPOINT_COUNT. */
static enum endpoint check_route(const struct http_server *s, const char *path)
{
	for (int e = 0; e < ENDPOINT_COUNT; e++)
		if (s->routes.checks[e] && strcmp(path, endpoint_path((enum endpoint)e)) == 0)
			return (enum endpoint)e;
	return ENDPOINT_COUNT;
}

/*
 * The request target's path and query. Origin-form ("/x?q") is split by
 * hand: libevent's URI parser reads "//healthz" as an authority, while Go
 * sees the path "//healthz" (and redirects it). Absolute-form targets
 * ("http://host/healthz") go through the URI parser.
 */
static char *target_path(struct evhttp_request *req, char **query)
{
	const char *target = evhttp_request_get_uri(req);
	*query = NULL;
	if (target && target[0] == '/') {
		size_t plen = strcspn(target, "?#");
		char *path = strndup(target, plen);
		if (target[plen] == '?')
			*query = strndup(target + plen + 1, strcspn(target + plen + 1, "#"));
		return path;
	}
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *p = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	if (q)
		*query = strdup(q);
	return strdup(p && p[0] ? p : "/");
}

/* An RFC 7230 token: what a header name must be. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

/*
 * Headers Go's net/http refuses with 400 where libevent is lenient; the
 * connection is then closed, as libevent may have framed the body by a
 * different reading of them:
 * - a header name that is not a token ("Content-Length : 5");
 * - a Content-Length that is not plain decimal digits ("+5");
 * - Content-Length headers that disagree (request-smuggling hardening, RFC
 *   7230 section 3.3.2; identical repeats pass in both).
 * libevent has already trimmed the values.
 */
static bool malformed_headers(struct evhttp_request *req)
{
	const char *first = NULL;
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
	{
		if (!is_token(kv->key))
			return true;
		if (evutil_ascii_strcasecmp(kv->key, "Content-Length") != 0)
			continue;
		if (kv->value[0] == '\0' || strspn(kv->value, "0123456789") != strlen(kv->value))
			return true;
		if (!first)
			first = kv->value;
		else if (strcmp(first, kv->value) != 0)
			return true;
	}
	return false;
}

/* Go's answer to a request it cannot parse: 400, and the connection closed. */
static void reply_bad_request(struct evhttp_request *req)
{
	static const char body[] = "400 Bad Request";
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	set_text_type(req);
	reply(req, 400, "Bad Request", body, sizeof(body) - 1);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_server *s = arg;
	/*
	 * Go answers any HTTP/1.x request as HTTP/1.1; libevent would echo
	 * the request's minor version ("HTTP/1.2 200 OK").
	 */
	if (req->major == 1 && req->minor > 1)
		req->minor = 1;
	if (malformed_headers(req)) {
		reply_bad_request(req);
		return;
	}
	char *query = NULL;
	char *raw = target_path(req, &query);
	size_t dlen = 0;
	char *path = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
	char clean[4096];
	if (!path) {
		evhttp_send_error(req, 400, "Bad Request");
		goto out;
	}
	/* A NUL inside the decoded path can match nothing. */
	if (strlen(path) != dlen) {
		reply_not_found(req);
		goto out;
	}
	http_clean_path(path, clean, sizeof(clean));
	if (strcmp(clean, path) != 0) {
		reply_redirect(req, clean, query);
		goto out;
	}
	enum endpoint e = check_route(s, path);
	if (e != ENDPOINT_COUNT)
		serve_check(s, req, e, http_query_has(query, "verbose"));
	else if (s->routes.status && strcmp(path, "/status") == 0)
		serve_status(s, req, query);
	else if (metrics_match(s, path))
		serve_metrics(s, req);
	else
		reply_not_found(req);
out:
	free(path);
	free(raw);
	free(query);
}

struct http_server *http_new(struct event_base *base, const struct http_routes *routes)
{
	struct http_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->routes = *routes;
	snprintf(s->metrics_path, sizeof(s->metrics_path), "%s",
	         routes->metrics_path ? routes->metrics_path : "");
	s->routes.metrics_path = s->metrics_path;
	s->evhttp = evhttp_new(base);
	if (!s->evhttp) {
		free(s);
		return NULL;
	}
	/* Go's ServeMux answers any method; libevent needs them listed. */
	evhttp_set_allowed_methods(s->evhttp, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                              EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(s->evhttp, MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(s->evhttp, MAX_BODY_SIZE);
	evhttp_set_timeout(s->evhttp, (int)routes->idle_timeout_s);
	evhttp_set_default_content_type(s->evhttp, "text/plain; charset=utf-8");
	evhttp_set_gencb(s->evhttp, on_request, s);
	s->next = live_servers;
	live_servers = s;
	return s;
}

static struct http_listener *find_listener(struct evconnlistener *lev)
{
	for (struct http_server *s = live_servers; s; s = s->next) {
		for (int i = 0; i < s->n_listeners; i++) {
			struct http_listener *l = &s->listeners[i];
			if (l->bound && evhttp_bound_socket_get_listener(l->bound) == lev)
				return l;
		}
	}
	return NULL;
}

static void on_resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	struct http_listener *l = arg;
	evconnlistener_enable(evhttp_bound_socket_get_listener(l->bound));
}

/* accept() failed with something other than "try again": pause, as Go does. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR(); /* libevent leaves accept's error for this callback */
	struct http_listener *l = find_listener(lev);
	struct timespec now;
	char delay[32];
	if (!l)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* Go restarts at 5 ms after any successful accept; a quiet second stands in for that. */
	if (l->retry_ms == 0 || now.tv_sec - l->last_error.tv_sec > 1)
		l->retry_ms = ACCEPT_RETRY_MIN_MS;
	else if ((l->retry_ms *= 2) > ACCEPT_RETRY_MAX_MS)
		l->retry_ms = ACCEPT_RETRY_MAX_MS;
	l->last_error = now;
	snprintf(delay, sizeof(delay), "%dms", l->retry_ms);
	LOG_E("http: Accept error; retrying", "err", strerror(err), "delay", delay);
	evconnlistener_disable(lev);
	struct timeval tv = {l->retry_ms / 1000, (l->retry_ms % 1000) * 1000};
	evtimer_add(l->resume, &tv);
}

int http_serve(struct http_server *s, int fd)
{
	if (s->n_listeners == MAX_LISTENERS)
		goto fail;
	struct http_listener *l = &s->listeners[s->n_listeners];
	l->resume = evtimer_new(s->base, on_resume_accepting, l);
	if (!l->resume)
		goto fail;
	l->bound = evhttp_accept_socket_with_handle(s->evhttp, fd);
	if (!l->bound) {
		event_free(l->resume);
		l->resume = NULL;
		goto fail;
	}
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(l->bound), on_accept_error);
	s->n_listeners++;
	return 0;
fail:
	close(fd);
	return -1;
}

void http_shutdown(struct http_server *s)
{
	if (!s)
		return;
	s->closing = true;
	for (int i = 0; i < s->n_listeners; i++) {
		struct http_listener *l = &s->listeners[i];
		if (l->bound)
			evhttp_del_accept_socket(s->evhttp, l->bound); /* closes the socket */
		l->bound = NULL;
		if (l->resume)
			event_free(l->resume);
		l->resume = NULL;
	}
}

void http_free(struct http_server *s)
{
	if (!s)
		return;
	http_shutdown(s);
	for (struct http_server **pp = &live_servers; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	evhttp_free(s->evhttp);
	free(s);
}
