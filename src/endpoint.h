/*
 * The three questions kubelet can ask (DESIGN.md "Contracts added after
 * the first release"): alive (/healthz), ready (/readyz), started
 * (/startupz). Each is answered by its own policy function, has its own
 * checks, and its own series in the metrics; this is the one table that
 * names them.
 */
#ifndef LP_ENDPOINT_H
#define LP_ENDPOINT_H

enum endpoint {
	ENDPOINT_HEALTHZ,  /* check(ctx): upstream's /healthz */
	ENDPOINT_READYZ,   /* ready(ctx) */
	ENDPOINT_STARTUPZ, /* startup(ctx) */
	ENDPOINT_COUNT
};

/* "healthz", "readyz", "startupz": log fields, metric labels, /status. */
const char *endpoint_name(enum endpoint e);
/* "/healthz", ...: the HTTP path. */
const char *endpoint_path(enum endpoint e);
/* "check", "ready", "startup": the policy function that answers it. */
const char *endpoint_function(enum endpoint e);

#endif
