/*
 * One health check at a time (DESIGN.md): a /healthz request joins the check
 * in flight or starts one; every waiting request gets the same verdict. A
 * check runs the policy step by step, carries out its probes and sleeps, and
 * falls back to the built-in policy when the policy fails.
 */
#ifndef LP_CHECK_H
#define LP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct csi;
struct policy;
struct worker;
struct metrics;
struct check;
struct check_waiter;

struct check_verdict {
	bool healthy;
	int status;       /* HTTP status */
	const char *body; /* valid during the callback only */
	size_t body_len;
};

typedef void (*check_cb)(const struct check_verdict *verdict, void *arg);

struct check_options {
	int64_t probe_timeout_ns; /* default ctx.probe() timeout */
	int64_t check_timeout_ns; /* the whole check's budget */
};

/*
 * builtin (not owned) runs in this process: it decides when no custom
 * policy is set, and answers by fallback when the custom one fails.
 */
struct check *check_new(struct event_base *base, struct csi *csi, struct policy *builtin,
                        struct metrics *metrics, const struct check_options *options);

/*
 * Makes worker (a custom policy in its worker process; NULL: the built-in
 * policy) decide from the next check on. The check takes ownership, and
 * frees the previous worker once no check uses it.
 */
void check_set_worker(struct check *c, struct worker *worker);

/*
 * Parks a request: cb is called exactly once, later, with the verdict of the
 * check in flight (or a new one), unless check_cancel comes first. Returns
 * NULL only when out of memory.
 */
struct check_waiter *check_submit(struct check *c, check_cb cb, void *arg);

/* The request went away: it will not be called back. */
void check_cancel(struct check *c, struct check_waiter *w);

/* For ctx.driver and log lines. */
void check_set_driver(struct check *c, const char *name);

/* Answers every parked request with a 500 "shutting down", stops, frees. */
void check_free(struct check *c);

#endif
