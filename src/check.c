/*
 * The check in flight: its waiters, its policy run, its fallback.
 *
 * A run is a loop of policy steps (policy.h). PROBE → csi_probe → resume;
 * SLEEP → timer → resume; DONE → answer; FAILED → log, count, and answer with
 * the built-in policy's verdict on the last probe result of this check
 * (replayed without a new probe), or, if the policy made no probe, on one
 * new probe with the probe timeout.
 */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "csi.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"

struct check_waiter {
	check_cb cb;
	void *arg;
	struct check_waiter *next;
};

struct check {
	struct event_base *base;
	struct csi *csi;
	struct policy *policy;
	struct policy *builtin;
	struct metrics *metrics;
	struct check_options options;
	char driver[256];

	struct check_waiter *waiters; /* parked requests of the check in flight */
	bool running;
	struct policy *current; /* policy or builtin (fallback) */
	bool replay;            /* fallback: answer probes from last, not the driver */
	int64_t deadline_ns;
	struct policy_step step;

	struct csi_probe_result last; /* last probe result of this check */
	bool have_last;

	struct event *sleep_timer;
	struct event *soon;                /* runs a step from the loop, never recursively */
	struct csi_probe_result immediate; /* result delivered through soon */
	bool immediate_pending;
};

static void handle_step(struct check *c);

static void fill_deadline_result(struct csi_probe_result *r)
{
	memset(r, 0, sizeof(*r));
	r->connected = false;
	r->code = 14; /* UNAVAILABLE: no connection was made in time */
	r->ready = -1;
	snprintf(r->message, sizeof(r->message), "context deadline exceeded");
	snprintf(r->error, sizeof(r->error), "context deadline exceeded");
}

/* Logs the one line a failed check gets, with upstream's wording where it applies. */
static void log_verdict(struct check *c, const struct policy_step *s)
{
	if (s->healthy) {
		LOG_INFO_V(5, "Health check succeeded");
		return;
	}
	const struct csi_probe_result *r = c->have_last ? &c->last : NULL;
	if (r && !r->connected && strcmp(s->body, r->error) == 0)
		LOG_E("Failed to establish connection to CSI driver", "err", s->body);
	else if (r && r->code == 0 && r->ready == 0 &&
	         strcmp(s->body, "driver responded but is not ready") == 0)
		LOG_E("Driver responded but is not ready");
	else
		LOG_E("Health check failed", "err", s->body);
}

static void answer(struct check *c, bool healthy, int status, const char *body)
{
	struct check_verdict v = {
	        .healthy = healthy, .status = status, .body = body, .body_len = strlen(body)};
	struct check_waiter *w = c->waiters;
	c->waiters = NULL;
	c->running = false;
	metrics_count_check(c->metrics, healthy);
	while (w) {
		struct check_waiter *next = w->next;
		w->cb(&v, w->arg);
		free(w);
		w = next;
	}
}

static void start_run(struct check *c, struct policy *p, bool replay)
{
	c->current = p;
	c->replay = replay;
	policy_begin(p, c->deadline_ns, &c->step);
	handle_step(c);
}

static void fallback(struct check *c)
{
	LOG_E("Policy failed, answering with the built-in policy", "reason", c->step.reason, "err",
	      c->step.detail);
	metrics_count_fallback(c->metrics, c->step.reason);
	if (c->current == c->builtin) {
		/* The built-in policy itself failed: nothing left to ask. */
		answer(c, false, 500, "policy failure");
		return;
	}
	if (c->have_last) {
		start_run(c, c->builtin, true);
	} else {
		/* No probe yet: one probe with the full probe timeout, from now. */
		c->deadline_ns = csi_now_ns() + c->options.probe_timeout_ns;
		start_run(c, c->builtin, false);
	}
}

static void on_probe_result(const struct csi_probe_result *r, void *arg)
{
	struct check *c = arg;
	c->last = *r;
	c->have_last = true;
	policy_resume_probe(c->current, r, &c->step);
	handle_step(c);
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	if (c->immediate_pending) {
		c->immediate_pending = false;
		on_probe_result(&c->immediate, c);
	}
}

static void deliver_soon(struct check *c, const struct csi_probe_result *r)
{
	c->immediate = *r;
	c->immediate_pending = true;
	event_active(c->soon, EV_TIMEOUT, 0);
}

static void on_sleep_done(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	policy_resume_sleep(c->current, &c->step);
	handle_step(c);
}

static void do_probe(struct check *c, double seconds)
{
	if (c->replay) {
		deliver_soon(c, &c->last);
		return;
	}
	int64_t now = csi_now_ns();
	int64_t timeout = seconds > 0 ? (int64_t)(seconds * 1e9) : c->options.probe_timeout_ns;
	int64_t deadline = now + timeout;
	if (deadline > c->deadline_ns)
		deadline = c->deadline_ns;
	if (deadline <= now || timeout <= 0) {
		/* No time left (or --probe-timeout <= 0): fails at once, as upstream. */
		struct csi_probe_result r;
		fill_deadline_result(&r);
		deliver_soon(c, &r);
		return;
	}
	LOG_INFO_V(5, "Sending probe request to CSI driver", "driver", c->driver);
	if (csi_probe(c->csi, deadline, on_probe_result, c) < 0) {
		struct csi_probe_result r;
		fill_deadline_result(&r);
		deliver_soon(c, &r);
	}
}

static void handle_step(struct check *c)
{
	struct policy_step *s = &c->step;
	switch (s->kind) {
	case POLICY_STEP_PROBE:
		do_probe(c, s->seconds);
		break;
	case POLICY_STEP_SLEEP: {
		int64_t ns = (int64_t)(s->seconds * 1e9);
		struct timeval tv = {.tv_sec = ns / 1000000000,
		                     .tv_usec = (ns % 1000000000) / 1000};
		evtimer_add(c->sleep_timer, &tv);
		break;
	}
	case POLICY_STEP_DONE:
		log_verdict(c, s);
		answer(c, s->healthy, s->status, s->body);
		policy_step_clear(s);
		break;
	case POLICY_STEP_FAILED:
		fallback(c);
		break;
	}
}

struct check *check_new(struct event_base *base, struct csi *csi, struct policy *policy,
                        struct policy *builtin, struct metrics *metrics,
                        const struct check_options *options)
{
	struct check *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->csi = csi;
	c->policy = policy;
	c->builtin = builtin;
	c->metrics = metrics;
	c->options = *options;
	c->sleep_timer = evtimer_new(base, on_sleep_done, c);
	c->soon = event_new(base, -1, 0, on_soon, c);
	if (!c->sleep_timer || !c->soon) {
		check_free(c);
		return NULL;
	}
	return c;
}

void check_set_driver(struct check *c, const char *name)
{
	snprintf(c->driver, sizeof(c->driver), "%s", name);
}

struct check_waiter *check_submit(struct check *c, check_cb cb, void *arg)
{
	struct check_waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->cb = cb;
	w->arg = arg;
	w->next = c->waiters;
	c->waiters = w;
	if (c->running) {
		metrics_count_coalesced(c->metrics);
		return w;
	}
	c->running = true;
	c->have_last = false;
	c->deadline_ns = csi_now_ns() + c->options.check_timeout_ns;
	start_run(c, c->policy, false);
	return w;
}

void check_cancel(struct check *c, struct check_waiter *w)
{
	for (struct check_waiter **pp = &c->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			free(w);
			return;
		}
	}
}

void check_free(struct check *c)
{
	if (!c)
		return;
	if (c->waiters)
		answer(c, false, 500, "livenessprobe is shutting down");
	if (c->current)
		policy_abandon(c->current);
	policy_step_clear(&c->step);
	if (c->sleep_timer)
		event_free(c->sleep_timer);
	if (c->soon)
		event_free(c->soon);
	free(c);
}
