/*
 * The check module (src/check.c) against a fake runner and a fake prober:
 * one path for every runner, deadlines handed to the prober, coalesced
 * requests, fallback (replaying the check's last probe, or one new probe),
 * cancelled requests, shut-down, a runner swapped between checks, and
 * ctx.call's and ctx.file's steps.
 */
#include "check.h"
#include "clock.h"
#include "csi_methods.h"
#include "file_check.h"
#include "health.h"
#include "metrics.h"
#include "runner.h"
#include "testing.h"

#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>

#define MS 1000000LL

static struct event_base *base;

/* ---- a runner whose steps are scripted ---- */

struct fake_run {
	struct runner_run base;
	runner_step_cb cb;
	void *arg;
	int next; /* the next scripted step */
	bool live;
};

struct fake_runner {
	struct runner base;
	const struct runner_step *steps; /* delivered one per begin/resume */
	int n_steps;
	struct fake_run run; /* one run at a time is all these tests need */
	struct event *soon;
	int begins, resumes, abandons;
	enum endpoint begin_endpoint;
	int64_t begin_deadline;
	struct csi_result last_result; /* what the last resume_probe carried */
	int last_call_code;
	bool last_call_connected;
	struct file_check_result last_file; /* what the last resume_file carried */
	bool destroyed;
};

static void fake_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct fake_runner *f = arg;
	struct fake_run *run = &f->run;
	if (!run->live)
		return;
	const struct runner_step *s = &f->steps[run->next++];
	if (s->kind == RUNNER_STEP_DONE || s->kind == RUNNER_STEP_FAILED)
		run->live = false;
	run->cb(s, run->arg);
}

static struct runner_run *fake_begin(struct runner *r, enum endpoint e, int64_t deadline_ns,
                                     runner_step_cb cb, void *arg)
{
	struct fake_runner *f = (struct fake_runner *)r;
	f->begins++;
	f->begin_endpoint = e;
	f->begin_deadline = deadline_ns;
	f->run = (struct fake_run){.base.runner = r, .cb = cb, .arg = arg, .live = true};
	event_active(f->soon, EV_TIMEOUT, 0);
	return &f->run.base;
}

static void fake_resume_probe(struct runner_run *run, const struct csi_result *r)
{
	struct fake_runner *f = (struct fake_runner *)run->runner;
	f->resumes++;
	f->last_result = *r;
	event_active(f->soon, EV_TIMEOUT, 0);
}

static void fake_resume_call(struct runner_run *run, const struct csi_result *r)
{
	struct fake_runner *f = (struct fake_runner *)run->runner;
	f->resumes++;
	f->last_call_code = r->code;
	f->last_call_connected = r->connected;
	event_active(f->soon, EV_TIMEOUT, 0);
}

static void fake_resume_file(struct runner_run *run, const struct file_check_result *r)
{
	struct fake_runner *f = (struct fake_runner *)run->runner;
	f->resumes++;
	f->last_file = *r;
	event_active(f->soon, EV_TIMEOUT, 0);
}

static void fake_resume_sleep(struct runner_run *run)
{
	struct fake_runner *f = (struct fake_runner *)run->runner;
	f->resumes++;
	event_active(f->soon, EV_TIMEOUT, 0);
}

static void fake_abandon(struct runner_run *run)
{
	struct fake_runner *f = (struct fake_runner *)run->runner;
	f->abandons++;
	f->run.live = false;
}

static size_t fake_memory(const struct runner *r)
{
	return 1234;
}

static void fake_set_driver(struct runner *r, const char *name, const char *vendor)
{
}

static void fake_destroy(struct runner *r)
{
	((struct fake_runner *)r)->destroyed = true;
}

static const struct runner_ops fake_ops = {
        .begin = fake_begin,
        .resume_probe = fake_resume_probe,
        .resume_call = fake_resume_call,
        .resume_file = fake_resume_file,
        .resume_sleep = fake_resume_sleep,
        .abandon = fake_abandon,
        .memory = fake_memory,
        .set_driver = fake_set_driver,
        .destroy = fake_destroy,
        .runs_in = "test",
};

static void fake_init(struct fake_runner *f, const struct runner_step *steps, int n)
{
	memset(f, 0, sizeof(*f));
	f->base.ops = &fake_ops;
	f->base.refs = 1;
	f->base.answers = 1u << ENDPOINT_HEALTHZ;
	f->steps = steps;
	f->n_steps = n;
	f->soon = event_new(base, -1, 0, fake_deliver, f);
}

static void fake_fini(struct fake_runner *f)
{
	runner_unref(&f->base);
	CHECK(f->destroyed); /* every reference the check took was given back */
	event_free(f->soon);
}

/* ---- a prober that answers after a delay, or never ---- */

struct fake_prober {
	int probes, cancels;
	int64_t last_deadline;
	int64_t delay_ns; /* < 0: never answer */
	int code, ready;
	struct event *timer;
	csi_result_cb cb;
	void *arg;
	bool in_flight;
};

static struct fake_prober prober;

static void prober_answer(evutil_socket_t fd, short what, void *arg)
{
	struct csi_result r;
	memset(&r, 0, sizeof(r));
	r.connected = true;
	r.code = prober.code;
	r.ready = prober.ready;
	r.seconds = 0.001;
	if (r.code)
		snprintf(r.error, sizeof(r.error), "rpc error: code = Unavailable desc = down");
	prober.in_flight = false;
	prober.cb(&r, prober.arg);
}

static struct csi_request *fake_probe(void *ctx, int64_t deadline_ns, csi_result_cb cb, void *arg)
{
	prober.probes++;
	prober.last_deadline = deadline_ns;
	prober.cb = cb;
	prober.arg = arg;
	prober.in_flight = true;
	if (prober.delay_ns >= 0) {
		struct timeval tv = clock_timeval(prober.delay_ns);
		evtimer_add(prober.timer, &tv);
	}
	return (struct csi_request *)&prober; /* any non-NULL handle */
}

static void fake_cancel(struct csi_request *p)
{
	prober.cancels++;
	prober.in_flight = false;
	evtimer_del(prober.timer);
}

static const struct check_prober fake_prober_ops = {
        .probe = fake_probe, .cancel = fake_cancel, .ctx = NULL};

/* ---- calls and stats, for the prober that has them ---- */

static const struct csi_method *last_call_method;

static struct csi_request *fake_call(void *ctx, const struct csi_method *m, int64_t deadline_ns,
                                     csi_result_cb cb, void *arg)
{
	last_call_method = m;
	return fake_probe(ctx, deadline_ns, cb, arg); /* answered (or not) as a probe is */
}

struct fake_stat {
	int starts, cancels;
	char path[256];
	int64_t deadline;
	struct file_check_result answer;
	bool answer_now; /* else never: only the deadline or a cancel ends it */
	struct event *soon;
	file_check_cb cb;
	void *arg;
};

static struct fake_stat stat_fake;

static void stat_answer(evutil_socket_t fd, short what, void *arg)
{
	stat_fake.cb(&stat_fake.answer, stat_fake.arg);
}

static struct file_check *fake_stat_start(void *files, const char *path, int64_t deadline_ns,
                                          file_check_cb cb, void *arg)
{
	stat_fake.starts++;
	snprintf(stat_fake.path, sizeof(stat_fake.path), "%s", path);
	stat_fake.deadline = deadline_ns;
	stat_fake.cb = cb;
	stat_fake.arg = arg;
	if (stat_fake.answer_now)
		event_active(stat_fake.soon, EV_TIMEOUT, 0);
	return (struct file_check *)&stat_fake;
}

static void fake_stat_cancel(struct file_check *check)
{
	stat_fake.cancels++;
	event_del(stat_fake.soon);
}

static const struct check_prober full_prober_ops = {.probe = fake_probe,
                                                    .call = fake_call,
                                                    .cancel = fake_cancel,
                                                    .stat = fake_stat_start,
                                                    .cancel_stat = fake_stat_cancel};

static void stat_reset(bool answer_now)
{
	if (stat_fake.soon)
		event_free(stat_fake.soon);
	memset(&stat_fake, 0, sizeof(stat_fake));
	stat_fake.soon = event_new(base, -1, 0, stat_answer, NULL);
	stat_fake.answer_now = answer_now;
	stat_fake.answer.outcome = FILE_CHECK_DONE;
	stat_fake.answer.exists = true;
	stat_fake.answer.type = FILE_TYPE_SOCKET;
}

static void prober_reset(int64_t delay_ns, int code, int ready)
{
	if (prober.timer)
		event_free(prober.timer);
	memset(&prober, 0, sizeof(prober));
	prober.timer = evtimer_new(base, prober_answer, NULL);
	prober.delay_ns = delay_ns;
	prober.code = code;
	prober.ready = ready;
}

/* ---- waiters ---- */

struct answer {
	bool got;
	int status;
	char body[256];
	int64_t at;
	bool recorded; /* the verdict came with its record */
	struct health_check record;
};

static void on_verdict(const struct check_verdict *v, void *arg)
{
	struct answer *a = arg;
	CHECK(!a->got); /* exactly once */
	a->got = true;
	a->status = v->status;
	snprintf(a->body, sizeof(a->body), "%.*s", (int)v->body_len, v->body);
	a->at = clock_now_ns();
	a->recorded = v->record != NULL;
	if (v->record)
		a->record = *v->record;
}

/* Runs the loop until a has its answer (or 5 s pass). */
static void run_until(const struct answer *a)
{
	int64_t end = clock_deadline(5000 * MS);
	while (!a->got && clock_now_ns() < end)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(a->got);
}

static const struct csi_driver driver = {.name = "fake.csi", .vendor_version = "1"};

static struct check *new_check(struct fake_runner *builtin, struct metrics *m, int64_t probe_ms,
                               int64_t check_ms)
{
	struct check_options o = {.probe_timeout_ns = probe_ms * MS,
	                          .check_timeout_ns = check_ms * MS};
	return check_new(base, &fake_prober_ops, &builtin->base, m, &driver, &o);
}

/* A check on endpoint e that keeps its records in h. */
static struct check *new_recorded_check(struct fake_runner *builtin, struct metrics *m,
                                        struct health *h, enum endpoint e)
{
	struct check_options o = {.probe_timeout_ns = 1000 * MS,
	                          .check_timeout_ns = 1000 * MS,
	                          .endpoint = e,
	                          .health = h};
	return check_new(base, &fake_prober_ops, &builtin->base, m, &driver, &o);
}

static const struct runner_step probe_then_ok[] = {
        {.kind = RUNNER_STEP_PROBE},
        {.kind = RUNNER_STEP_DONE, .healthy = true, .status = 200, .body = "ok", .body_len = 2},
};

/* The metrics page as a string (malloc'd). */
static char *metrics_text(struct metrics *m)
{
	struct evbuffer *out = evbuffer_new();
	metrics_render(m, out);
	size_t len = evbuffer_get_length(out);
	char *text = calloc(1, len + 1);
	evbuffer_remove(out, text, len);
	evbuffer_free(out);
	return text;
}

/* ---- the tests ---- */

/* One check: the runner's probe goes to the prober within the check's deadline. */
static void test_one_path(void)
{
	struct fake_runner builtin;
	struct metrics *m = metrics_new();
	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(1 * MS, 0, 1);
	struct check *c = new_check(&builtin, m, 1000, 3000);
	struct answer a = {0};
	int64_t t0 = clock_now_ns();
	CHECK(check_submit(c, on_verdict, &a) != NULL);
	CHECK(!a.got); /* never from inside check_submit */
	run_until(&a);
	CHECK_INT(a.status, 200);
	CHECK_STR(a.body, "ok");
	CHECK_INT(builtin.begins, 1);
	CHECK_INT(prober.probes, 1);
	/* The probe's deadline: the probe timeout (1 s), within the check's (3 s). */
	CHECK(prober.last_deadline >= t0 + 1000 * MS && prober.last_deadline <= t0 + 1100 * MS);
	CHECK(builtin.begin_deadline >= t0 + 3000 * MS && builtin.begin_deadline <= t0 + 3100 * MS);
	CHECK_INT(builtin.last_result.ready, 1);
	check_free(c);
	fake_fini(&builtin);
	metrics_free(m);
}

/* A probe's own timeout is capped by the check's deadline; none left: no probe at all. */
static void test_probe_deadlines(void)
{
	static const struct runner_step long_probe[] = {
	        {.kind = RUNNER_STEP_PROBE, .seconds = 60},
	        {.kind = RUNNER_STEP_DONE,
	         .healthy = true,
	         .status = 200,
	         .body = "ok",
	         .body_len = 2},
	};
	struct fake_runner builtin;
	fake_init(&builtin, long_probe, 2);
	prober_reset(1 * MS, 0, -1);
	struct check *c = new_check(&builtin, NULL, 1000, 500);
	struct answer a = {0};
	int64_t t0 = clock_now_ns();
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK(prober.last_deadline <= t0 + 600 * MS); /* 60 s asked, 0.5 s left */
	check_free(c);
	fake_fini(&builtin);

	/* --probe-timeout <= 0: the probe fails at once, unreachable, without the prober. */
	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(1 * MS, 0, -1);
	c = new_check(&builtin, NULL, 0, 0);
	struct answer b = {0};
	check_submit(c, on_verdict, &b);
	run_until(&b);
	CHECK_INT(prober.probes, 0);
	CHECK(!builtin.last_result.connected);
	CHECK_STR(builtin.last_result.error, "context deadline exceeded");
	check_free(c);
	fake_fini(&builtin);
}

/* Requests during a check join it: one run, one probe, the same verdict for all. */
static void test_coalescing(void)
{
	struct fake_runner builtin;
	struct metrics *m = metrics_new();
	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(30 * MS, 0, 1);
	struct check *c = new_check(&builtin, m, 1000, 1000);
	struct answer a[3] = {{0}};
	for (int i = 0; i < 3; i++)
		check_submit(c, on_verdict, &a[i]);
	run_until(&a[2]);
	for (int i = 0; i < 3; i++) {
		CHECK(a[i].got);
		CHECK_INT(a[i].status, 200);
	}
	CHECK_INT(builtin.begins, 1);
	CHECK_INT(prober.probes, 1);
	struct evbuffer *out = evbuffer_new();
	metrics_render(m, out);
	size_t len = evbuffer_get_length(out);
	char *text = calloc(1, len + 1);
	evbuffer_remove(out, text, len);
	CHECK(strstr(text, "livenessprobe_requests_coalesced_total 2\n") != NULL);
	CHECK(strstr(text, "livenessprobe_checks_total{result=\"healthy\"} 1\n") != NULL);
	free(text);
	evbuffer_free(out);
	check_free(c);
	fake_fini(&builtin);
	metrics_free(m);
}

/*
 * The policy fails after a probe: the built-in policy answers, fed that
 * probe's result (no second probe). Without a probe: one new probe with the
 * probe timeout.
 */
static void test_fallback(void)
{
	static const struct runner_step probe_then_fail[] = {
	        {.kind = RUNNER_STEP_PROBE},
	        {.kind = RUNNER_STEP_FAILED, .reason = STOP_TIMEOUT, .detail = "p.lua:3: too slow"},
	};
	static const struct runner_step fail_at_once[] = {
	        {.kind = RUNNER_STEP_FAILED, .reason = STOP_ERROR, .detail = "p.lua:1: boom"},
	};
	struct fake_runner builtin, custom;
	struct metrics *m = metrics_new();
	fake_init(&builtin, probe_then_ok, 2);
	fake_init(&custom, probe_then_fail, 2);
	prober_reset(1 * MS, 14, -1);
	struct check *c = new_check(&builtin, m, 1000, 1000);
	check_set_runner(c, &custom.base);
	struct answer a = {0};
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK_INT(a.status, 200); /* the fake built-in's verdict */
	CHECK_INT(custom.begins, 1);
	CHECK_INT(builtin.begins, 1);
	CHECK_INT(prober.probes, 1);             /* replayed, not probed again */
	CHECK_INT(builtin.last_result.code, 14); /* the custom policy's probe */
	check_free(c);
	fake_fini(&custom);
	fake_fini(&builtin);

	fake_init(&builtin, probe_then_ok, 2);
	fake_init(&custom, fail_at_once, 1);
	prober_reset(1 * MS, 0, 1);
	c = new_check(&builtin, m, 700, 100);
	check_set_runner(c, &custom.base);
	struct answer b = {0};
	int64_t t0 = clock_now_ns();
	check_submit(c, on_verdict, &b);
	run_until(&b);
	CHECK_INT(b.status, 200);
	CHECK_INT(prober.probes, 1);
	/* From the failure on, the full probe timeout (0.7 s), not the 0.1 s check. */
	CHECK(prober.last_deadline >= t0 + 650 * MS);
	char *text = metrics_text(m);
	CHECK(strstr(text, "livenessprobe_policy_fallbacks_total{reason=\"error\"} 1\n"));
	CHECK(strstr(text, "livenessprobe_policy_fallbacks_total{reason=\"timeout\"} 1\n"));
	free(text);
	check_free(c);
	fake_fini(&custom);
	fake_fini(&builtin);
	metrics_free(m);
}

/* The built-in policy itself failing leaves nothing to ask: 500 "policy failure". */
static void test_builtin_fails(void)
{
	static const struct runner_step fail[] = {
	        {.kind = RUNNER_STEP_FAILED, .reason = STOP_MEMORY, .detail = "out of memory"},
	};
	struct fake_runner builtin;
	fake_init(&builtin, fail, 1);
	prober_reset(1 * MS, 0, 1);
	struct check *c = new_check(&builtin, NULL, 1000, 1000);
	struct answer a = {0};
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK_INT(a.status, 500);
	CHECK_STR(a.body, "policy failure");
	CHECK_INT(builtin.begins, 1);
	check_free(c);
	fake_fini(&builtin);
}

/* A cancelled request is not called back; the others still are. */
static void test_cancel(void)
{
	struct fake_runner builtin;
	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(20 * MS, 0, 1);
	struct check *c = new_check(&builtin, NULL, 1000, 1000);
	struct answer a = {0}, b = {0};
	struct check_waiter *wa = check_submit(c, on_verdict, &a);
	check_submit(c, on_verdict, &b);
	check_cancel(c, wa);
	run_until(&b);
	CHECK(!a.got);
	CHECK_INT(b.status, 200);
	check_free(c);
	fake_fini(&builtin);
}

/* Shut-down mid-check: the probe is cancelled, the run abandoned, waiters told. */
static void test_free_mid_check(void)
{
	struct fake_runner builtin;
	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(-1, 0, 1); /* never answers */
	struct check *c = new_check(&builtin, NULL, 1000, 1000);
	struct answer a = {0};
	check_submit(c, on_verdict, &a);
	int64_t end = clock_deadline(2000 * MS);
	while (!prober.in_flight && clock_now_ns() < end)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(prober.in_flight);
	check_free(c);
	CHECK(a.got);
	CHECK_INT(a.status, 500);
	CHECK_STR(a.body, "livenessprobe is shutting down");
	CHECK_INT(prober.cancels, 1);
	CHECK_INT(builtin.abandons, 1);
	fake_fini(&builtin);
}

/* A runner set mid-check decides from the next check on. */
static void test_swap_between_checks(void)
{
	static const struct runner_step other[] = {
	        {.kind = RUNNER_STEP_DONE,
	         .healthy = true,
	         .status = 203,
	         .body = "v2",
	         .body_len = 2},
	};
	struct fake_runner builtin, custom;
	fake_init(&builtin, probe_then_ok, 2);
	fake_init(&custom, other, 1);
	prober_reset(20 * MS, 0, 1);
	struct check *c = new_check(&builtin, NULL, 1000, 1000);
	struct answer a = {0}, b = {0};
	check_submit(c, on_verdict, &a);
	check_set_runner(c, &custom.base);
	run_until(&a);
	CHECK_INT(a.status, 200); /* began on the built-in runner, ended there */
	check_submit(c, on_verdict, &b);
	run_until(&b);
	CHECK_INT(b.status, 203);
	CHECK_INT(custom.begins, 1);
	check_free(c);
	fake_fini(&custom);
	fake_fini(&builtin);
}

/* A sleep is waited on the loop; a read-only call is answered "unimplemented". */
static void test_sleep_and_call(void)
{
	static const struct runner_step steps[] = {
	        {.kind = RUNNER_STEP_SLEEP, .seconds = 0.05},
	        {.kind = RUNNER_STEP_CALL, .method = "NodeGetInfo"},
	        {.kind = RUNNER_STEP_DONE,
	         .healthy = true,
	         .status = 200,
	         .body = "ok",
	         .body_len = 2},
	};
	struct fake_runner builtin;
	fake_init(&builtin, steps, 3);
	prober_reset(1 * MS, 0, 1);
	struct check *c = new_check(&builtin, NULL, 1000, 1000);
	struct answer a = {0};
	int64_t t0 = clock_now_ns();
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK(a.at - t0 >= 50 * MS);
	CHECK_INT(builtin.resumes, 2);
	CHECK_INT(builtin.last_call_code, 12);
	CHECK_INT(prober.probes, 0);
	check_free(c);
	fake_fini(&builtin);
}

/*
 * ctx.call: the method reaches the prober with a probe's deadline rules
 * (its own timeout, capped by the check's; no time left: unreachable at
 * once, no call), and its result resumes the run. Not a probe for the record.
 */
static void test_call_deadlines(void)
{
	static const struct runner_step steps[] = {
	        {.kind = RUNNER_STEP_CALL, .method = "NodeGetInfo", .seconds = 60},
	        {.kind = RUNNER_STEP_CALL, .method = "ControllerGetCapabilities"},
	        {.kind = RUNNER_STEP_DONE,
	         .healthy = true,
	         .status = 200,
	         .body = "ok",
	         .body_len = 2},
	};
	struct fake_runner builtin;
	fake_init(&builtin, steps, 3);
	prober_reset(1 * MS, 0, -1);
	struct check_options o = {.probe_timeout_ns = 200 * MS, .check_timeout_ns = 500 * MS};
	struct check *c = check_new(base, &full_prober_ops, &builtin.base, NULL, &driver, &o);
	struct answer a = {0};
	int64_t t0 = clock_now_ns();
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK_INT(a.status, 200);
	CHECK_INT(prober.probes, 2); /* both calls went to the driver */
	CHECK(last_call_method == csi_method_by_name("ControllerGetCapabilities"));
	/* The second used the probe timeout (0.2 s); the first's 60 s were capped at 0.5 s. */
	CHECK(prober.last_deadline <= t0 + 300 * MS);
	CHECK_INT(builtin.last_call_code, 0);
	CHECK(builtin.last_call_connected);
	check_free(c);
	fake_fini(&builtin);

	/* No time at all: unreachable at once, as a probe would be, and no call made. */
	fake_init(&builtin, steps + 1, 2);
	prober_reset(1 * MS, 0, -1);
	o.check_timeout_ns = 0;
	c = check_new(base, &full_prober_ops, &builtin.base, NULL, &driver, &o);
	struct answer b = {0};
	check_submit(c, on_verdict, &b);
	run_until(&b);
	CHECK_INT(prober.probes, 0);
	CHECK_INT(builtin.last_call_code, 14); /* UNAVAILABLE */
	CHECK(!builtin.last_call_connected);
	check_free(c);
	fake_fini(&builtin);
}

/*
 * ctx.file: the path and the check's deadline reach the file checker, its
 * answer resumes the run; without a checker it is refused; a check freed
 * while a stat is out cancels it.
 */
static void test_file_steps(void)
{
	static const struct runner_step steps[] = {
	        {.kind = RUNNER_STEP_FILE, .path = "/plugins/x-reg.sock"},
	        {.kind = RUNNER_STEP_DONE,
	         .healthy = true,
	         .status = 200,
	         .body = "ok",
	         .body_len = 2},
	};
	struct fake_runner builtin;
	fake_init(&builtin, steps, 2);
	prober_reset(1 * MS, 0, -1);
	stat_reset(true);
	struct check_options o = {.probe_timeout_ns = 200 * MS, .check_timeout_ns = 700 * MS};
	struct check *c = check_new(base, &full_prober_ops, &builtin.base, NULL, &driver, &o);
	struct answer a = {0};
	int64_t t0 = clock_now_ns();
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK_INT(stat_fake.starts, 1);
	CHECK_STR(stat_fake.path, "/plugins/x-reg.sock");
	CHECK(stat_fake.deadline >= t0 + 700 * MS && stat_fake.deadline <= t0 + 800 * MS);
	CHECK(builtin.last_file.exists);
	CHECK_INT(builtin.last_file.type, FILE_TYPE_SOCKET);
	check_free(c);
	fake_fini(&builtin);

	/* No file checker: refused (the policy raises it). */
	fake_init(&builtin, steps, 2);
	c = new_check(&builtin, NULL, 200, 700);
	struct answer b = {0};
	check_submit(c, on_verdict, &b);
	run_until(&b);
	CHECK_INT(builtin.last_file.outcome, FILE_CHECK_REFUSED);
	CHECK(strstr(builtin.last_file.error, "/plugins/x-reg.sock") != NULL);
	check_free(c);
	fake_fini(&builtin);

	/* Freed with a stat out: it is cancelled, the waiter hears "shutting down". */
	fake_init(&builtin, steps, 2);
	stat_reset(false);
	c = check_new(base, &full_prober_ops, &builtin.base, NULL, &driver, &o);
	struct answer d = {0};
	check_submit(c, on_verdict, &d);
	int64_t end = clock_deadline(2000 * MS);
	while (stat_fake.starts == 0 && clock_now_ns() < end)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK_INT(stat_fake.starts, 1);
	check_free(c);
	CHECK_INT(stat_fake.cancels, 1);
	CHECK(d.got);
	CHECK_INT(d.status, 500);
	fake_fini(&builtin);
	event_free(stat_fake.soon);
	stat_fake.soon = NULL;
}

/*
 * A run that overstays its deadline is ended by the check: a custom policy's
 * (here a sleep of 1e300 s) is abandoned and the built-in policy answers;
 * the built-in's own (a probe that never returns) answers "policy failure".
 * Either way by the deadline plus 0.4 s, not later.
 */
static void test_hard_deadline(void)
{
	static const struct runner_step sleep_forever[] = {
	        {.kind = RUNNER_STEP_SLEEP, .seconds = 1e300},
	};
	struct fake_runner builtin, custom;
	struct metrics *m = metrics_new();
	fake_init(&builtin, probe_then_ok, 2);
	fake_init(&custom, sleep_forever, 1);
	prober_reset(1 * MS, 0, 1);
	struct check *c = new_check(&builtin, m, 1000, 100);
	check_set_runner(c, &custom.base);
	struct answer a = {0};
	int64_t t0 = clock_now_ns();
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK_INT(a.status, 200); /* the built-in policy's verdict */
	CHECK(a.at - t0 >= 500 * MS && a.at - t0 < 3000 * MS);
	CHECK_INT(custom.abandons, 1);
	CHECK_INT(builtin.begins, 1);
	char *text = metrics_text(m);
	CHECK(strstr(text, "livenessprobe_policy_fallbacks_total{reason=\"timeout\"} 1\n"));
	free(text);
	check_free(c);
	fake_fini(&custom);
	fake_fini(&builtin);
	metrics_free(m);

	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(-1, 0, 1); /* never answers, past its own deadline */
	c = new_check(&builtin, NULL, 100, 100);
	struct answer b = {0};
	t0 = clock_now_ns();
	check_submit(c, on_verdict, &b);
	run_until(&b);
	CHECK_INT(b.status, 500);
	CHECK_STR(b.body, "policy failure");
	CHECK(b.at - t0 >= 500 * MS && b.at - t0 < 3000 * MS);
	CHECK_INT(prober.cancels, 1);
	CHECK_INT(builtin.abandons, 1);
	check_free(c);
	fake_fini(&builtin);
}

/*
 * /readyz and /startupz run the deciding policy's ready or startup when it
 * has one, else the built-in policy's; /healthz always the deciding one.
 */
static void test_endpoint_functions(void)
{
	static const struct runner_step custom_says[] = {
	        {.kind = RUNNER_STEP_DONE,
	         .healthy = true,
	         .status = 202,
	         .body = "custom",
	         .body_len = 6},
	};
	struct fake_runner builtin, custom;
	fake_init(&builtin, probe_then_ok, 2);
	builtin.base.answers = 7;
	fake_init(&custom, custom_says, 1);
	custom.base.answers = 1u << ENDPOINT_HEALTHZ | 1u << ENDPOINT_STARTUPZ;
	prober_reset(1 * MS, 0, 1);
	struct check *ready = new_recorded_check(&builtin, NULL, NULL, ENDPOINT_READYZ);
	struct check *startup = new_recorded_check(&builtin, NULL, NULL, ENDPOINT_STARTUPZ);
	check_set_runner(ready, &custom.base);
	check_set_runner(startup, &custom.base);
	struct answer a = {0}, b = {0};
	check_submit(ready, on_verdict, &a);
	run_until(&a);
	CHECK_STR(a.body, "ok"); /* no ready function: the built-in one */
	CHECK_INT(builtin.begins, 1);
	CHECK_INT(builtin.begin_endpoint, ENDPOINT_READYZ);
	CHECK_INT(custom.begins, 0);
	CHECK(!a.recorded); /* no health record given: none kept */
	check_submit(startup, on_verdict, &b);
	run_until(&b);
	CHECK_STR(b.body, "custom");
	CHECK_INT(custom.begins, 1);
	CHECK_INT(custom.begin_endpoint, ENDPOINT_STARTUPZ);
	check_free(ready);
	check_free(startup);
	fake_fini(&custom);
	fake_fini(&builtin);
}

/*
 * Every check is kept with its probes and reason; a change of verdict is
 * a transition (counted), the first verdict is not; the gauge follows.
 */
static void test_records_and_transitions(void)
{
	static const struct runner_step probe_then_verdict[] = {
	        {.kind = RUNNER_STEP_PROBE},
	        {.kind = RUNNER_STEP_PROBE},
	        {.kind = RUNNER_STEP_DONE,
	         .healthy = false,
	         .status = 500,
	         .body = "down",
	         .body_len = 4},
	};
	struct fake_runner builtin;
	struct metrics *m = metrics_new();
	struct health *h = health_new(m);
	fake_init(&builtin, probe_then_verdict, 3);
	prober_reset(1 * MS, 14, -1);
	struct check *c = new_recorded_check(&builtin, m, h, ENDPOINT_HEALTHZ);
	char *text = metrics_text(m);
	CHECK(strstr(text, "livenessprobe_healthy{endpoint=\"healthz\"} 0\n"));
	CHECK(strstr(text, "livenessprobe_health_transitions_total{endpoint=\"startupz\","
	                   "to=\"unhealthy\"} 0\n"));
	free(text);

	struct answer a = {0};
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK(a.recorded);
	CHECK_INT(a.record.probes, 2);
	CHECK_STR(a.record.reason, "down");
	CHECK_INT(a.record.fallback, STOP_NONE);
	CHECK_INT((int)(a.record.end_seq - a.record.first_seq), 2);
	const struct health_probe *p = health_probe_at(h, 1);
	CHECK(p && p->code == 14 && p->endpoint == ENDPOINT_HEALTHZ && p->seq == 2);
	CHECK(health_probe_at(h, 2) == NULL);
	const struct health_endpoint *ep = health_endpoint(h, ENDPOINT_HEALTHZ);
	CHECK(ep->known && !ep->last.healthy && ep->streak == 1 && ep->last_success == 0);
	text = metrics_text(m);
	CHECK(strstr(text, "livenessprobe_health_transitions_total{endpoint=\"healthz\","
	                   "to=\"unhealthy\"} 0\n")); /* the first verdict is no transition */
	free(text);

	/* The built-in runner now says healthy: a transition. */
	check_free(c);
	fake_fini(&builtin);
	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(1 * MS, 0, 1);
	c = new_recorded_check(&builtin, m, h, ENDPOINT_HEALTHZ);
	struct answer b = {0};
	check_submit(c, on_verdict, &b);
	run_until(&b);
	CHECK(ep->last.healthy && ep->streak == 1 && ep->last_success > 0);
	CHECK(health_check_at(h, 0) && !health_check_at(h, 0)->healthy);
	CHECK(health_check_at(h, 1) && health_check_at(h, 1)->healthy);
	text = metrics_text(m);
	CHECK(strstr(text, "livenessprobe_health_transitions_total{endpoint=\"healthz\","
	                   "to=\"healthy\"} 1\n"));
	CHECK(strstr(text, "livenessprobe_healthy{endpoint=\"healthz\"} 1\n"));
	CHECK(strstr(text, "livenessprobe_healthy{endpoint=\"readyz\"} 0\n"));
	free(text);
	check_free(c);
	fake_fini(&builtin);
	health_free(h);
	metrics_free(m);
}

/* A fallback is kept with its reason: the policy's failure, first line only. */
static void test_fallback_record(void)
{
	static const struct runner_step fail[] = {
	        {.kind = RUNNER_STEP_FAILED,
	         .reason = STOP_ERROR,
	         .detail = "p.lua:1: boom\nstack traceback:\n\t[C]: in ?"},
	};
	struct fake_runner builtin, custom;
	struct health *h = health_new(NULL);
	fake_init(&builtin, probe_then_ok, 2);
	fake_init(&custom, fail, 1);
	prober_reset(1 * MS, 0, 1);
	struct check *c = new_recorded_check(&builtin, NULL, h, ENDPOINT_HEALTHZ);
	check_set_runner(c, &custom.base);
	struct answer a = {0};
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK_INT(a.status, 200);
	CHECK_INT(a.record.fallback, STOP_ERROR);
	CHECK_STR(a.record.reason, "p.lua:1: boom");
	CHECK_STR(a.record.body, "ok");
	CHECK_INT(a.record.probes, 1); /* the fallback's own probe */
	check_free(c);
	fake_fini(&custom);
	fake_fini(&builtin);
	health_free(h);
}

/*
 * check_start (--probe-interval) runs a check nobody waits for; a request
 * arriving meanwhile joins it, and a second start while it runs is a no-op.
 */
static void test_background_check(void)
{
	struct fake_runner builtin;
	struct metrics *m = metrics_new();
	struct health *h = health_new(m);
	fake_init(&builtin, probe_then_ok, 2);
	prober_reset(50 * MS, 0, 1);
	struct check *c = new_recorded_check(&builtin, m, h, ENDPOINT_HEALTHZ);
	check_start(c);
	check_start(c);
	struct answer a = {0};
	check_submit(c, on_verdict, &a);
	run_until(&a);
	CHECK_INT(builtin.begins, 1);
	CHECK_INT(prober.probes, 1);
	/* Alone, it still ends and is kept. */
	check_start(c);
	int64_t end = clock_deadline(5000 * MS);
	while (health_check_at(h, 1) == NULL && clock_now_ns() < end)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(health_check_at(h, 1) != NULL);
	CHECK_INT(builtin.begins, 2);
	char *text = metrics_text(m);
	CHECK(strstr(text, "livenessprobe_checks_total{result=\"healthy\"} 2\n"));
	CHECK(strstr(text, "livenessprobe_requests_coalesced_total 1\n"));
	free(text);
	check_free(c);
	fake_fini(&builtin);
	health_free(h);
	metrics_free(m);
}

int main(void)
{
	base = event_base_new();
	test_one_path();
	test_endpoint_functions();
	test_records_and_transitions();
	test_fallback_record();
	test_background_check();
	test_probe_deadlines();
	test_coalescing();
	test_fallback();
	test_builtin_fails();
	test_cancel();
	test_free_mid_check();
	test_swap_between_checks();
	test_sleep_and_call();
	test_call_deadlines();
	test_file_steps();
	test_hard_deadline();
	if (prober.timer)
		event_free(prober.timer);
	event_base_free(base);
	return testing_result("check");
}
