/*
 * The check in flight: its waiters, its run, its fallback (check.h).
 *
 * A check is a run on a runner, one step at a time: PROBE and CALL →
 * prober → resume; FILE → the file checker → resume; SLEEP → timer →
 * resume; DONE → answer; FAILED → log, count, and run the built-in policy instead,
 * fed the check's last probe result (so it answers at once, with no new
 * probe), or, if the policy made no probe, one probe with the probe
 * timeout. The same path serves the built-in policy, a custom policy in
 * its worker, and the fallback: only the runner differs.
 *
 * Whatever a runner does, a run ends by its deadline (or its start, if
 * later) plus HARD_GRACE_NS:
 * then the check abandons it and falls back ("timeout"). Runners stop
 * their own runaways earlier (the worker's watchdog, the sandbox's hook);
 * this bounds the rest, such as a step that never comes.
 */
#include "check.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "csi_methods.h"
#include "file_check.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "runner.h"

/* Behind the worker's watchdog (WORKER_GRACE_NS), which names the cause better. */
#define HARD_GRACE_NS 400000000LL

static const char shutting_down[] = "livenessprobe is shutting down";
static const char policy_failure[] = "policy failure";

struct check_waiter {
	check_cb cb;
	void *arg;
	struct check_waiter *next;
};

struct check {
	struct check_prober prober;
	struct runner *builtin;    /* the built-in policy: answers by fallback */
	struct runner *runner;     /* decides the next check */
	struct runner *run_runner; /* the runner of the run in flight (a reference) */
	struct metrics *metrics;
	const struct csi_driver *driver;
	struct check_options options;

	struct check_waiter *waiters; /* parked requests of the check in flight */
	bool running;
	bool freeing;      /* check_free: its answer is no verdict, and is not kept */
	bool falling_back; /* the run in flight is the fallback */
	bool replay;       /* fallback: probes are answered from last, no new probe */
	int64_t deadline_ns;
	struct runner_run *run;
	struct csi_request *request; /* a probe or call in flight */
	struct file_check *stat;     /* a ctx.file in flight */

	bool have_last; /* last holds a probe result */

	/* For the record (health.h). */
	int64_t begun_ns;
	uint64_t first_seq;
	unsigned probes;
	enum stop_reason fallback_reason; /* STOP_NONE: no fallback */
	char fallback_detail[HEALTH_TEXT_MAX];

	struct event *sleep_timer;
	struct event *hard_timer;   /* the run's deadline plus HARD_GRACE_NS */
	struct event *start_failed; /* a run that could not even begin, answered from the loop */

	/*
	 * Last, and never cleared (check_new): 33 kB each of mostly unwritten
	 * room for texts, untouched until first used.
	 */
	struct csi_result last; /* last probe result of this check */
	/* A call answered without the driver (no time left): too big for the stack. */
	struct csi_result call_result;
};

static void on_step(const struct runner_step *s, void *arg);

/* Logs the one line a failed check gets, with upstream's wording where it applies. */
static void log_verdict(struct check *c, const struct runner_step *s)
{
	if (c->options.endpoint != ENDPOINT_HEALTHZ) {
		/* Not upstream's: changes are logged (health.c); each verdict only at -v=2. */
		LOG_INFO_V(2, s->healthy ? "Check succeeded" : "Check failed", "endpoint",
		           endpoint_name(c->options.endpoint), "body", s->body);
		return;
	}
	if (s->healthy) {
		LOG_INFO_V(5, "Health check succeeded");
		return;
	}
	const struct csi_result *r = c->have_last ? &c->last : NULL;
	if (r && !r->connected && strcmp(s->body, r->error) == 0)
		LOG_E("Failed to establish connection to CSI driver", "err", s->body);
	else if (r && r->code == 0 && r->ready == 0 &&
	         strcmp(s->body, "driver responded but is not ready") == 0)
		LOG_E("Driver responded but is not ready");
	else
		LOG_E("Health check failed", "err", s->body);
}

/* Keeps the check's record; NULL when nothing keeps records. */
static const struct health_check *record(struct check *c, bool healthy, int status,
                                         const char *body, size_t body_len)
{
	struct health *h = c->options.health;
	if (!h || c->freeing)
		return NULL;
	struct health_check rec;
	struct health_check *r = &rec;
	memset(r, 0, sizeof(*r));
	r->at = clock_wall_s();
	r->endpoint = c->options.endpoint;
	r->healthy = healthy;
	r->status = status;
	r->body = body;
	r->body_len = body_len;
	if (c->fallback_reason != STOP_NONE) {
		r->reason = c->fallback_detail;
		r->reason_len = strlen(c->fallback_detail);
	} else {
		r->reason = body;
		r->reason_len = body_len;
	}
	r->fallback = c->fallback_reason;
	r->seconds = (double)clock_sub(clock_now_ns(), c->begun_ns) / 1e9;
	r->probes = c->probes;
	r->first_seq = c->first_seq;
	r->end_seq = health_next_seq(h);
	return health_add_check(h, r);
}

/* The check is over: every waiter gets the verdict. */
static void answer(struct check *c, bool healthy, int status, const char *body, size_t body_len)
{
	struct check_verdict v = {
	        .healthy = healthy, .status = status, .body = body, .body_len = body_len};
	struct check_waiter *w = c->waiters;
	c->waiters = NULL;
	c->running = false;
	c->run = NULL;
	event_del(c->hard_timer);
	metrics_count_check(c->metrics, healthy);
	if (c->run_runner)
		metrics_set_policy_memory(c->metrics, runner_memory(c->runner));
	runner_unref(c->run_runner);
	c->run_runner = NULL;
	v.record = record(c, healthy, status, body, body_len);
	while (w) {
		struct check_waiter *next = w->next;
		w->cb(&v, w->arg);
		free(w);
		w = next;
	}
}

/* Begins a run on r (referenced for the run's life). */
static void begin_run(struct check *c, struct runner *r)
{
	runner_unref(c->run_runner);
	c->run_runner = runner_ref(r);
	/* From now at the earliest: a check given no time (negative timeout) gets the grace too. */
	int64_t now = clock_now_ns();
	int64_t end = c->deadline_ns > now ? c->deadline_ns : now;
	struct timeval tv = clock_timeval(clock_left(clock_add(end, HARD_GRACE_NS)));
	evtimer_add(c->hard_timer, &tv);
	c->run = runner_begin(r, c->options.endpoint, c->deadline_ns, on_step, c);
	if (!c->run)
		event_active(c->start_failed, EV_TIMEOUT, 0);
}

/* Ends the run in flight where it stands: no step of it may arrive any more. */
static void stop_run(struct check *c)
{
	if (c->request)
		c->prober.cancel(c->request);
	c->request = NULL;
	if (c->stat)
		c->prober.cancel_stat(c->stat);
	c->stat = NULL;
	event_del(c->sleep_timer);
	event_del(c->start_failed);
	runner_abandon(c->run);
	c->run = NULL;
}

static void fallback(struct check *c, enum stop_reason reason, const char *detail)
{
	LOG_E("Policy failed, answering with the built-in policy", "reason",
	      stop_reason_label(reason), "err", detail, "endpoint",
	      endpoint_name(c->options.endpoint));
	metrics_count_fallback(c->metrics, reason);
	if (c->fallback_reason == STOP_NONE) {
		/* The first failure is the reason; its first line, without the traceback. */
		c->fallback_reason = reason;
		health_copy_text(c->fallback_detail, detail, strcspn(detail, "\n"));
	}
	if (c->falling_back || c->run_runner == c->builtin) {
		/* The built-in policy itself failed: nothing left to ask. */
		answer(c, false, 500, policy_failure, sizeof(policy_failure) - 1);
		return;
	}
	c->falling_back = true;
	c->replay = c->have_last;
	if (!c->have_last) /* no probe yet: one probe with the full probe timeout, from now */
		c->deadline_ns = clock_deadline(c->options.probe_timeout_ns);
	begin_run(c, c->builtin);
}

static void on_hard_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	stop_run(c);
	fallback(c, STOP_TIMEOUT, "the policy did not finish by the check deadline");
}

static void on_start_failed(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	fallback(c, STOP_MEMORY, "out of memory starting the check");
}

/* A probe made for this check ended: kept as the last result and in the record. */
static void note_probe(struct check *c, const struct csi_result *r)
{
	if (r != &c->last)
		csi_result_copy(&c->last, r);
	c->have_last = true;
	c->probes++;
	if (c->options.health)
		health_add_probe(c->options.health, c->options.endpoint, r);
}

static void on_probe_result(const struct csi_result *r, void *arg)
{
	struct check *c = arg;
	c->request = NULL;
	note_probe(c, r);
	runner_resume_probe(c->run, r);
}

/*
 * The deadline of a probe or call with a timeout of seconds (<= 0: the
 * probe timeout), capped by the check's: a timeout past the check's end
 * (even math.huge) ends with the check. False when no time is left.
 */
static bool request_deadline(const struct check *c, double seconds, int64_t *deadline)
{
	int64_t now = clock_now_ns();
	int64_t timeout = c->options.probe_timeout_ns;
	if (seconds > 0)
		timeout = clock_ns_of_seconds(seconds);
	*deadline = clock_add(now, timeout);
	if (*deadline > c->deadline_ns)
		*deadline = c->deadline_ns;
	return *deadline > now && timeout > 0;
}

static void do_probe(struct check *c, double seconds)
{
	if (c->replay) {
		runner_resume_probe(c->run, &c->last);
		return;
	}
	int64_t deadline;
	if (request_deadline(c, seconds, &deadline)) {
		LOG_INFO_V(5, "Sending probe request to CSI driver", "driver", c->driver->name);
		c->request = c->prober.probe(c->prober.ctx, deadline, on_probe_result, c);
		if (c->request)
			return;
	}
	/* No time left (or --probe-timeout <= 0, or no probe): fails at once, as upstream. */
	csi_unreachable_result(&c->last, 0);
	note_probe(c, &c->last);
	runner_resume_probe(c->run, &c->last);
}

static void on_call_result(const struct csi_result *r, void *arg)
{
	struct check *c = arg;
	c->request = NULL;
	runner_resume_call(c->run, r);
}

/* ctx.call: the same deadlines as a probe; not a probe for the record. */
static void do_call(struct check *c, const char *method, double seconds)
{
	const struct csi_method *m = csi_method_by_name(method);
	int64_t deadline;
	/* Runners pass callable names only (worker.c checks its frames). */
	if (m && c->prober.call && request_deadline(c, seconds, &deadline)) {
		LOG_INFO_V(5, "Sending read-only call to CSI driver", "method", m->name, "driver",
		           c->driver->name);
		c->request = c->prober.call(c->prober.ctx, m, deadline, on_call_result, c);
		if (c->request)
			return;
	}
	struct csi_result *r = &c->call_result;
	if (m && c->prober.call) {
		csi_unreachable_result(r, 0); /* no time left, as a probe */
	} else {
		csi_result_reset(r);
		r->code = 12; /* UNIMPLEMENTED */
		r->ready = -1;
		snprintf(r->message, sizeof(r->message), "read-only calls are not available here");
		snprintf(r->error, sizeof(r->error),
		         "rpc error: code = Unimplemented desc = read-only calls are not available "
		         "here");
	}
	runner_resume_call(c->run, r);
}

static void on_stat_result(const struct file_check_result *r, void *arg)
{
	struct check *c = arg;
	c->stat = NULL;
	runner_resume_file(c->run, r);
}

/* ctx.file: stat'ed off the loop, answered by the check's deadline at the latest. */
static void do_file(struct check *c, const char *path)
{
	if (c->prober.stat) {
		c->stat = c->prober.stat(c->prober.files, path, c->deadline_ns, on_stat_result, c);
		if (c->stat)
			return;
	}
	struct file_check_result r;
	memset(&r, 0, sizeof(r));
	r.outcome = FILE_CHECK_REFUSED;
	snprintf(r.error, sizeof(r.error), "ctx.file(\"%.64s\"): %s", path,
	         c->prober.stat ? "out of memory" : "not available here");
	runner_resume_file(c->run, &r);
}

static void on_sleep_done(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	runner_resume_sleep(c->run);
}

static void on_step(const struct runner_step *s, void *arg)
{
	struct check *c = arg;
	switch (s->kind) {
	case RUNNER_STEP_PROBE:
		do_probe(c, s->seconds);
		break;
	case RUNNER_STEP_CALL:
		do_call(c, s->method, s->seconds);
		break;
	case RUNNER_STEP_FILE:
		do_file(c, s->path);
		break;
	case RUNNER_STEP_SLEEP: {
		/* Policies never sleep past the deadline (policy.c); the hard timer bounds the
		 * rest. */
		struct timeval tv = clock_timeval(clock_ns_of_seconds(s->seconds));
		evtimer_add(c->sleep_timer, &tv);
		break;
	}
	case RUNNER_STEP_DONE:
		c->run = NULL;
		log_verdict(c, s);
		answer(c, s->healthy, s->status, s->body, s->body_len);
		break;
	case RUNNER_STEP_FAILED:
		c->run = NULL;
		fallback(c, s->reason, s->detail);
		break;
	}
}

struct check *check_new(struct event_base *base, const struct check_prober *prober,
                        struct runner *builtin, struct metrics *metrics,
                        const struct csi_driver *driver, const struct check_options *options)
{
	struct check *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	/*
	 * The results are not even reset: last is read only once have_last
	 * says a probe filled it, and call_result is written whole before each
	 * use. Resetting them would write four pages per check.
	 */
	memset(c, 0, offsetof(struct check, last));
	c->prober = *prober;
	c->builtin = runner_ref(builtin);
	c->runner = runner_ref(builtin);
	c->metrics = metrics;
	c->driver = driver;
	c->options = *options;
	c->sleep_timer = evtimer_new(base, on_sleep_done, c);
	c->hard_timer = evtimer_new(base, on_hard_deadline, c);
	c->start_failed = event_new(base, -1, 0, on_start_failed, c);
	if (!c->sleep_timer || !c->hard_timer || !c->start_failed) {
		check_free(c);
		return NULL;
	}
	metrics_set_policy_memory(metrics, runner_memory(builtin));
	return c;
}

void check_set_runner(struct check *c, struct runner *runner)
{
	runner_ref(runner);
	runner_unref(c->runner);
	c->runner = runner;
}

/* Starts a check: the deciding runner's function for the endpoint, or the built-in one. */
static void start(struct check *c)
{
	c->running = true;
	c->have_last = false;
	c->falling_back = c->replay = false;
	c->begun_ns = clock_now_ns();
	c->probes = 0;
	c->first_seq = c->options.health ? health_next_seq(c->options.health) : 0;
	c->fallback_reason = STOP_NONE;
	c->deadline_ns = clock_deadline(c->options.check_timeout_ns);
	begin_run(c, runner_answers(c->runner, c->options.endpoint) ? c->runner : c->builtin);
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
	/* Runners answer from the loop: no step reaches us before the caller holds w. */
	start(c);
	return w;
}

void check_start(struct check *c)
{
	if (!c->running)
		start(c);
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
	c->freeing = true;
	if (c->run || c->request || c->stat) /* a run exists only in a check built whole */
		stop_run(c);
	if (c->waiters)
		answer(c, false, 500, shutting_down, sizeof(shutting_down) - 1);
	runner_unref(c->run_runner);
	runner_unref(c->runner);
	runner_unref(c->builtin);
	if (c->sleep_timer)
		event_free(c->sleep_timer);
	if (c->hard_timer)
		event_free(c->hard_timer);
	if (c->start_failed)
		event_free(c->start_failed);
	free(c);
}
