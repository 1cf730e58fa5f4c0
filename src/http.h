/*
 * The HTTP side (UPSTREAM.md §3.2, §4.2): /healthz, /readyz and /startupz
 * run their endpoint's check; /status shows what the checks found; the
 * metrics path serves the exposition; everything else is Go ServeMux's 404
 * or 301. Exact routes win over a metrics subtree.
 * One struct http_server per listener kind; both share the loop.
 */
#ifndef LP_HTTP_H
#define LP_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "endpoint.h"

struct event_base;
struct check;
struct health;
struct metrics;
struct status_sources;
struct http_server;

struct http_routes {
	struct check *checks[ENDPOINT_COUNT]; /* /healthz, /readyz, /startupz; NULL: not here */
	const struct health *health;          /* for /healthz?verbose */
	const struct status_sources *status;  /* NULL: no /status on this server (404) */
	struct metrics *metrics;              /* NULL: no metrics on this server */
	const char *metrics_path;             /* "/metrics"; a trailing '/' serves the subtree */
	int64_t idle_timeout_s;               /* a connection silent this long is closed */
};

struct http_server *http_new(struct event_base *base, const struct http_routes *routes);

/* Serves on an already listening socket; the server owns fd from now on. */
int http_serve(struct http_server *s, int fd);

/*
 * Stops listening, and answers check and /status requests that still
 * arrive on open connections with 500 "livenessprobe is shutting down"
 * without touching the checks or the driver: call it before they are
 * freed. NULL is a no-op.
 */
void http_shutdown(struct http_server *s);

/* Shuts down if needed, then closes connections. Parked requests must be answered first. */
void http_free(struct http_server *s);

/* Go's path.Clean plus ServeMux's trailing-slash rule; exposed for tests. */
void http_clean_path(const char *path, char *out, unsigned len);

#endif
