/*
 * /status and /healthz?verbose (DESIGN.md "Contracts added after the first
 * release"): what the checks found (health.h), the policy, the driver and
 * the process, as JSON (the contract: top-level keys verdict, streak,
 * last_success, last_failure, checks, probes, policy, driver, process) or
 * as a plain-text table for people. Rendering reads; it never probes.
 */
#ifndef LP_STATUS_H
#define LP_STATUS_H

#include <stdbool.h>

struct evbuffer;
struct health;
struct health_check;
struct metrics;
struct csi;

/* The policy deciding now. */
struct status_policy {
	const char *source;            /* "builtin" or the file's path */
	const char *sha256;            /* of the loaded text, 64 hex digits */
	double loaded_at;              /* seconds since the epoch */
	const char *runs_in;           /* "daemon" or "worker" */
	const char *last_reload_error; /* NULL: none */
};

struct status_sources {
	const struct health *health;
	const struct metrics *metrics; /* reloads, memory, process start */
	const struct csi *csi;         /* the driver's identity and connection; NULL: none */
	const char *address;           /* the driver's address as given */
	void (*policy)(void *ctx, struct status_policy *out);
	void *policy_ctx;
};

enum status_format { STATUS_JSON, STATUS_TEXT };

void status_render(const struct status_sources *s, enum status_format format, struct evbuffer *out);

/*
 * What /healthz?verbose adds after the body: the reason, then the check's
 * probes, one per line ("[+]" ok, "[-]" not), as kube-apiserver's
 * ?verbose lists its checks.
 */
void status_render_verbose(const struct health *h, const struct health_check *c,
                           struct evbuffer *out);

#endif
