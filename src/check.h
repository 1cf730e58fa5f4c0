/*
 * One endpoint's health checks (DESIGN.md; endpoint.h): a request joins the check in
 * flight or starts one, and every waiting request gets the same verdict.
 * A check runs the policy through a runner (runner.h), carries out its
 * probes and sleeps, and falls back to the built-in policy when the policy
 * fails. Several checks (one per endpoint) may run at once on one runner.
 */
#ifndef LP_CHECK_H
#define LP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csi.h" /* csi_result_cb, struct csi_driver */
#include "endpoint.h"

struct event_base;
struct csi_method;
struct file_check;
struct file_check_result;
struct health;
struct health_check;
struct metrics;
struct runner;
struct check;
struct check_waiter;

struct check_verdict {
	bool healthy;
	int status;       /* HTTP status */
	const char *body; /* valid during the callback only */
	size_t body_len;
	const struct health_check *record; /* the check as kept (reason, probes); may be NULL */
};

typedef void (*check_cb)(const struct check_verdict *verdict, void *arg);

/*
 * What a check acts on: the driver (csi.h) and the file system
 * (file_check.h) in the daemon, fakes in the unit test. probe(), call()
 * and stat() answer exactly once through cb, later, unless cancelled; NULL
 * when they cannot even start. call and stat may be NULL: then ctx.call
 * answers UNIMPLEMENTED and ctx.file is refused.
 */
struct check_prober {
	struct csi_request *(*probe)(void *ctx, int64_t deadline_ns, csi_result_cb cb, void *arg);
	struct csi_request *(*call)(void *ctx, const struct csi_method *m, int64_t deadline_ns,
	                            csi_result_cb cb, void *arg);
	void (*cancel)(struct csi_request *request);
	void *ctx;
	struct file_check *(*stat)(void *files, const char *path, int64_t deadline_ns,
	                           void (*cb)(const struct file_check_result *r, void *arg),
	                           void *arg);
	void (*cancel_stat)(struct file_check *check);
	void *files;
};

struct check_options {
	int64_t probe_timeout_ns; /* default ctx.probe() timeout */
	int64_t check_timeout_ns; /* the whole check's budget */
	enum endpoint endpoint;   /* the question: which policy function answers */
	struct health *health;    /* where checks and probes are kept; NULL: nowhere */
};

/*
 * builtin runs the built-in policy in this process: it decides until
 * check_set_runner says otherwise, answers when the deciding runner's
 * policy has no function for the endpoint, and answers by fallback when
 * that policy fails. The check holds a reference to it.
 * driver (borrowed) names the driver in log lines.
 */
struct check *check_new(struct event_base *base, const struct check_prober *prober,
                        struct runner *builtin, struct metrics *metrics,
                        const struct csi_driver *driver, const struct check_options *options);

/*
 * Makes runner decide from the next check on (the check takes a
 * reference). A check in flight finishes on the runner it began with.
 */
void check_set_runner(struct check *c, struct runner *runner);

/*
 * Parks a request: cb is called exactly once, later, with the verdict of the
 * check in flight (or a new one), unless check_cancel comes first. Returns
 * NULL only when out of memory.
 */
struct check_waiter *check_submit(struct check *c, check_cb cb, void *arg);

/*
 * Starts a check with nobody waiting (--probe-interval), unless one is in
 * flight: requests that arrive meanwhile join it.
 */
void check_start(struct check *c);

/* The request went away: it will not be called back. */
void check_cancel(struct check *c, struct check_waiter *w);

/* Answers every parked request with a 500 "shutting down", stops, frees. NULL is a no-op. */
void check_free(struct check *c);

#endif
