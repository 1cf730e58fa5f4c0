/*
 * The check in flight: its waiters, its policy run, its fallback.
 *
 * A run is a loop of policy steps (policy.h). PROBE → csi_probe → resume;
 * SLEEP → timer → resume; DONE → answer; FAILED → log, count, and answer with
 * the built-in policy's verdict on the last probe result of this check
 * (replayed without a new probe), or, if the policy made no probe, on one
 * new probe with the probe timeout.
 *
 * The built-in policy runs in this process and steps synchronously; a
 * custom policy runs in its worker process and its steps arrive later,
 * through on_worker_step. Both end up in handle_step.
 */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "csi.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "policy_worker.h"

struct check_waiter {
	check_cb cb;
	void *arg;
	struct check_waiter *next;
};

struct check {
	struct event_base *base;
	struct csi *csi;
	struct policy *builtin;
	struct worker *worker;      /* the custom policy; NULL: built-in only */
	struct worker *next_worker; /* swapped in when the check in flight ends */
	bool next_worker_set;
	struct metrics *metrics;
	struct check_options options;
	char *driver; /* for log lines */

	struct check_waiter *waiters; /* parked requests of the check in flight */
	bool running;
	bool on_worker; /* the current run is the custom policy's */
	bool replay;    /* fallback: answer probes from last, not the driver */
	int64_t deadline_ns;
	struct policy_step step; /* the built-in policy's latest step */

	struct csi_probe_result last; /* last probe result of this check */
	bool have_last;

	struct event *sleep_timer;
	struct event *soon;                /* runs a step from the loop, never recursively */
	struct csi_probe_result immediate; /* result delivered through soon */
	bool immediate_pending;
	bool start_pending; /* check_submit asked for a run; on_soon starts it */
};

static void handle_step(struct check *c, const struct policy_step *s);

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

static void swap_worker(struct check *c)
{
	if (!c->next_worker_set)
		return;
	worker_free(c->worker);
	c->worker = c->next_worker;
	c->next_worker = NULL;
	c->next_worker_set = false;
}

static void update_memory_metric(struct check *c)
{
	metrics_set_policy_memory(c->metrics,
	                          c->worker ? worker_memory(c->worker) : policy_memory(c->builtin));
}

static void answer(struct check *c, bool healthy, int status, const char *body, size_t body_len)
{
	struct check_verdict v = {
	        .healthy = healthy, .status = status, .body = body, .body_len = body_len};
	struct check_waiter *w = c->waiters;
	c->waiters = NULL;
	c->running = false;
	metrics_count_check(c->metrics, healthy);
	update_memory_metric(c);
	while (w) {
		struct check_waiter *next = w->next;
		w->cb(&v, w->arg);
		free(w);
		w = next;
	}
}

static void on_worker_step(const struct policy_step *step, void *arg)
{
	handle_step(arg, step);
}

static void start_run(struct check *c, bool custom, bool replay)
{
	c->on_worker = custom;
	c->replay = replay;
	if (custom) {
		worker_begin(c->worker, c->deadline_ns, on_worker_step, c);
		return;
	}
	policy_begin(c->builtin, c->deadline_ns, &c->step);
	handle_step(c, &c->step);
}

static void fallback(struct check *c, const struct policy_step *s)
{
	LOG_E("Policy failed, answering with the built-in policy", "reason", s->reason, "err",
	      s->detail);
	metrics_count_fallback(c->metrics, s->reason);
	if (!c->on_worker) {
		/* The built-in policy itself failed: nothing left to ask. */
		answer(c, false, 500, "policy failure", strlen("policy failure"));
		return;
	}
	if (c->have_last) {
		start_run(c, false, true);
	} else {
		/* No probe yet: one probe with the full probe timeout, from now. */
		c->deadline_ns = clock_deadline(c->options.probe_timeout_ns);
		start_run(c, false, false);
	}
}

static void on_probe_result(const struct csi_probe_result *r, void *arg)
{
	struct check *c = arg;
	c->last = *r;
	c->have_last = true;
	if (c->on_worker) {
		worker_resume_probe(c->worker, r);
		return;
	}
	policy_resume_probe(c->builtin, r, &c->step);
	handle_step(c, &c->step);
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	if (c->start_pending) {
		c->start_pending = false;
		start_run(c, c->worker != NULL, false);
	}
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
	if (c->on_worker) {
		worker_resume_sleep(c->worker);
		return;
	}
	policy_resume_sleep(c->builtin, &c->step);
	handle_step(c, &c->step);
}

static void do_probe(struct check *c, double seconds)
{
	if (c->replay) {
		deliver_soon(c, &c->last);
		return;
	}
	int64_t now = clock_now_ns();
	/* A timeout past the check's end (even math.huge) is capped by the check deadline. */
	int64_t timeout = c->options.probe_timeout_ns;
	if (seconds > 0)
		timeout = seconds * 1e9 < (double)(c->deadline_ns - now) ? (int64_t)(seconds * 1e9)
		                                                         : c->deadline_ns - now;
	int64_t deadline = clock_add(now, timeout);
	if (deadline > c->deadline_ns)
		deadline = c->deadline_ns;
	if (deadline <= now || timeout <= 0) {
		/* No time left (or --probe-timeout <= 0): fails at once, as upstream. */
		struct csi_probe_result r;
		csi_unreachable_result(&r, 0);
		deliver_soon(c, &r);
		return;
	}
	LOG_INFO_V(5, "Sending probe request to CSI driver", "driver", c->driver ? c->driver : "");
	if (csi_probe(c->csi, deadline, on_probe_result, c) < 0) {
		struct csi_probe_result r;
		csi_unreachable_result(&r, 0);
		deliver_soon(c, &r);
	}
}

static void handle_step(struct check *c, const struct policy_step *s)
{
	switch (s->kind) {
	case POLICY_STEP_PROBE:
		do_probe(c, s->seconds);
		break;
	case POLICY_STEP_SLEEP: {
		struct timeval tv = clock_timeval((int64_t)(s->seconds * 1e9));
		evtimer_add(c->sleep_timer, &tv);
		break;
	}
	case POLICY_STEP_DONE:
		log_verdict(c, s);
		answer(c, s->healthy, s->status, s->body, s->body_len);
		policy_step_clear(&c->step);
		break;
	case POLICY_STEP_FAILED:
		fallback(c, s);
		break;
	}
}

struct check *check_new(struct event_base *base, struct csi *csi, struct policy *builtin,
                        struct metrics *metrics, const struct check_options *options)
{
	struct check *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->csi = csi;
	c->builtin = builtin;
	c->metrics = metrics;
	c->options = *options;
	c->sleep_timer = evtimer_new(base, on_sleep_done, c);
	c->soon = event_new(base, -1, 0, on_soon, c);
	if (!c->sleep_timer || !c->soon) {
		check_free(c);
		return NULL;
	}
	update_memory_metric(c);
	return c;
}

void check_set_worker(struct check *c, struct worker *worker)
{
	if (c->next_worker_set)
		worker_free(c->next_worker);
	c->next_worker = worker;
	c->next_worker_set = true;
	if (!c->running)
		swap_worker(c);
}

void check_set_driver(struct check *c, const char *name)
{
	char *copy = strdup(name);
	if (!copy)
		return; /* log lines keep the previous name */
	free(c->driver);
	c->driver = copy;
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
	/* A reload waits for the check it would disturb; here none runs. */
	swap_worker(c);
	c->running = true;
	c->have_last = false;
	c->deadline_ns = clock_deadline(c->options.check_timeout_ns);
	/*
	 * Started from the loop, not from here: a run can end at once (the
	 * built-in policy failing on its first step), and the answer must
	 * not reach cb before the caller has the waiter (check.h).
	 */
	c->start_pending = true;
	event_active(c->soon, EV_TIMEOUT, 0);
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
	policy_abandon(c->builtin);
	if (c->waiters)
		answer(c, false, 500, "livenessprobe is shutting down",
		       strlen("livenessprobe is shutting down"));
	swap_worker(c);
	worker_free(c->worker);
	policy_step_clear(&c->step);
	if (c->sleep_timer)
		event_free(c->sleep_timer);
	if (c->soon)
		event_free(c->soon);
	free(c->driver);
	free(c);
}
