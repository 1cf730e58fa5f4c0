/*
 * The daemon's handle on its policy worker (worker.h): a runner whose runs
 * execute in a child process.
 *
 * The process is in one of three states: none (after a death, until the
 * restart on_died decides on, or until the next check needs one), loading
 * (the Load frame is sent, Loaded awaited, at most LOAD_TIMEOUT_MS), ready.
 * Each run is:
 *   queued  begun while the worker was not ready: Begin goes when it is;
 *   owed    the worker owes a Step (it runs Lua for it): the watchdog runs;
 *   ours    the daemon has the turn (it probes or sleeps for the run);
 *   lost    the worker died during the daemon's turn: the next resume fails;
 *   failing its failure is on its way to the callback (from the loop).
 * A run whose watchdog fires (its deadline plus WORKER_GRACE_NS) while the
 * worker owes it a step is a runaway: the worker is killed and started
 * again. Runs answered this way get a FAILED step, "timeout" for the
 * runaway and "crash" for the others it took down.
 *
 * All I/O goes through one bufferevent; frames are wire.h's. Steps reach
 * the runs' callbacks from the loop, as runner.h promises, with a reference
 * on the runner held around each callback (a callback may drop the last
 * other one).
 */
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "csi.h"
#include "csi_methods.h"
#include "file_check.h"
#include "runner.h"
#include "wire.h"

extern char **environ;

#define MS_NS 1000000LL

/* A worker must load a policy within this (its own hook stops Lua at 1 s). */
#define LOAD_TIMEOUT_MS 3000
/* After a respawn that failed, the next try waits this long. */
#define RESPAWN_RETRY_MS 1000
/*
 * A worker that dies on its own within CRASH_QUICK_NS of its start is
 * restarted after a delay that doubles from CRASH_BACKOFF_MIN_MS up to
 * CRASH_BACKOFF_MAX_MS, so that a policy that kills its worker at every
 * check cannot keep the daemon spawning. Other restarts: see on_died.
 */
#define CRASH_QUICK_NS       1000000000LL
#define CRASH_BACKOFF_MIN_MS 100
#define CRASH_BACKOFF_MAX_MS 5000

enum proc_state { PROC_NONE, PROC_LOADING, PROC_READY };
enum run_state { RUN_QUEUED, RUN_OWED, RUN_OURS, RUN_LOST, RUN_FAILING };

struct worker_run {
	struct runner_run base; /* first: runner.h */
	struct worker *w;
	uint32_t id;
	runner_step_cb cb;
	void *cb_arg;
	enum endpoint endpoint; /* the function it runs */
	int64_t deadline_ns;
	int64_t begun_ns; /* when the check began it */
	enum run_state state;
	struct event *watchdog;
	struct event *fail_event; /* delivers a failure made here, from the loop */
	enum stop_reason fail_reason;
	char fail_detail[1024];
	struct worker_run *next;
};

struct worker {
	struct runner base; /* first: the worker is a struct runner */
	struct event_base *ev;
	struct worker_options opts; /* source and chunkname are our copies */
	const char *name;           /* the policy's path, for messages */
	char exe[PATH_MAX];
	char *driver_name, *driver_vendor;

	enum proc_state state;
	pid_t pid;
	struct bufferevent *bev;
	unsigned generation; /* bumped when the process goes: callbacks check it */
	struct event *load_timer;
	struct event *respawn_timer;
	worker_loaded_cb loaded_cb; /* the first load's reporter; NULL once it reported */
	void *loaded_arg;
	bool usable;         /* the policy loaded once: respawns may retry */
	int64_t spawned_ns;  /* when the current process started */
	unsigned backoff_ms; /* the delay before the next restart after a quick crash */

	struct worker_run *runs;
	uint32_t next_id;
	size_t memory;
};

static void respawn(struct worker *w);
/* How a process ended, which decides when the next one starts (on_died). */
enum death { DIED, KILLED_RUNAWAY, KILLED_ABANDONED };
static void on_died(struct worker *w, enum stop_reason owed_reason, const char *detail,
                    enum death how);

/* ---- runs ---- */

static struct worker_run *find_run(struct worker *w, uint32_t id)
{
	for (struct worker_run *r = w->runs; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static void run_free(struct worker_run *run)
{
	struct worker *w = run->w;
	for (struct worker_run **pp = &w->runs; *pp; pp = &(*pp)->next) {
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	}
	if (run->watchdog)
		event_free(run->watchdog);
	if (run->fail_event)
		event_free(run->fail_event);
	free(run);
}

/*
 * The watchdog fires at the run's deadline plus the grace, however late it
 * is armed; a run begun with no time at all (a negative timeout) counts
 * from its beginning, so that its worker gets the grace too.
 */
static void arm_watchdog(struct worker_run *run)
{
	int64_t end = run->deadline_ns > run->begun_ns ? run->deadline_ns : run->begun_ns;
	struct timeval tv = clock_timeval(clock_left(clock_add(end, WORKER_GRACE_NS)));
	evtimer_add(run->watchdog, &tv);
}

/* Delivers step to run's callback; a final step ends (frees) the run. */
static void deliver(struct worker_run *run, const struct runner_step *step)
{
	struct worker *w = run->w;
	bool final = step->kind == RUNNER_STEP_DONE || step->kind == RUNNER_STEP_FAILED;
	runner_step_cb cb = run->cb;
	void *arg = run->cb_arg;
	event_del(run->watchdog);
	runner_ref(&w->base);
	if (final)
		run_free(run);
	else
		run->state = RUN_OURS;
	cb(step, arg);
	runner_unref(&w->base);
}

static void on_fail_event(evutil_socket_t fd, short what, void *arg)
{
	struct worker_run *run = arg;
	struct runner_step step = {
	        .kind = RUNNER_STEP_FAILED, .reason = run->fail_reason, .detail = run->fail_detail};
	char detail[sizeof(run->fail_detail)];
	memcpy(detail, run->fail_detail, sizeof(detail));
	step.detail = detail; /* the run is freed before the callback */
	deliver(run, &step);
}

/* Ends run with a failure made here, delivered from the loop. */
static void fail_soon(struct worker_run *run, enum stop_reason reason, const char *detail)
{
	run->fail_reason = reason;
	snprintf(run->fail_detail, sizeof(run->fail_detail), "%s", detail);
	run->state = RUN_FAILING; /* no step owed any more: its watchdog is done */
	event_del(run->watchdog);
	event_active(run->fail_event, EV_TIMEOUT, 0);
}

/* ---- frames out ---- */

static int send_frame(struct worker *w, const LpWorker__Frame *f)
{
	if (!w->bev || wire_put(bufferevent_get_output(w->bev), f) < 0)
		return -1;
	return 0;
}

/* Tells a ready worker to forget a run it holds. */
static void send_abandon(struct worker *w, uint32_t id)
{
	if (w->state != PROC_READY)
		return;
	LpWorker__Abandon a = LP_WORKER__ABANDON__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	a.run = id;
	f.msg_case = LP_WORKER__FRAME__MSG_ABANDON;
	f.abandon = &a;
	send_frame(w, &f);
}

static int send_begin(struct worker *w, struct worker_run *run)
{
	LpWorker__Begin b = LP_WORKER__BEGIN__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	b.run = run->id;
	b.deadline_ns = run->deadline_ns;
	b.endpoint = run->endpoint;
	f.msg_case = LP_WORKER__FRAME__MSG_BEGIN;
	f.begin = &b;
	return send_frame(w, &f);
}

static void send_driver(struct worker *w)
{
	if (!w->driver_name || w->state != PROC_READY)
		return;
	LpWorker__Driver d = LP_WORKER__DRIVER__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	d.name = (ProtobufCBinaryData){strlen(w->driver_name), (uint8_t *)w->driver_name};
	d.vendor_version =
	        (ProtobufCBinaryData){strlen(w->driver_vendor), (uint8_t *)w->driver_vendor};
	f.msg_case = LP_WORKER__FRAME__MSG_DRIVER;
	f.driver = &d;
	send_frame(w, &f);
}

/* The worker runs Lua for run from now on: it owes a step, and the watchdog watches. */
static void owe(struct worker_run *run, int rc)
{
	if (rc < 0) {
		fail_soon(run, STOP_CRASH, "cannot send to the policy worker");
		return;
	}
	run->state = RUN_OWED;
	arm_watchdog(run);
}

/* ---- the process ---- */

/*
 * Killed workers not reaped yet. A SIGKILLed process is gone in a moment,
 * but waiting for it would block the loop; so it is reaped without
 * waiting, now or from a timer a little later. Until reaped, its pid
 * cannot be reused, so the kill never hits another process.
 */
#define REAP_EVERY_MS 20
static pid_t unreaped[64];
static int n_unreaped;
static struct event *reap_timer;

static void reap(void)
{
	int kept = 0;
	for (int i = 0; i < n_unreaped; i++) {
		pid_t r = waitpid(unreaped[i], NULL, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR))
			unreaped[kept++] = unreaped[i];
	}
	n_unreaped = kept;
	if (n_unreaped > 0 && reap_timer) {
		struct timeval tv = clock_timeval(REAP_EVERY_MS * MS_NS);
		evtimer_add(reap_timer, &tv);
	}
}

static void on_reap_timer(evutil_socket_t fd, short what, void *arg)
{
	reap();
}

static void kill_and_reap(struct event_base *base, pid_t pid)
{
	kill(pid, SIGKILL);
	if (waitpid(pid, NULL, WNOHANG) == pid)
		return;
	/*
	 * 64 killed processes none of which died yet is beyond what the kernel
	 * does: this one stays a zombie rather than the loop waiting for it.
	 */
	if (n_unreaped < (int)(sizeof(unreaped) / sizeof(unreaped[0])))
		unreaped[n_unreaped++] = pid;
	if (!reap_timer)
		reap_timer = evtimer_new(base, on_reap_timer, NULL);
	reap();
}

void worker_reap_before_exit(int64_t timeout_ns)
{
	int64_t end = clock_deadline(timeout_ns);
	for (;;) {
		reap();
		if (n_unreaped == 0 || clock_now_ns() >= end)
			break;
		struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
		nanosleep(&ms, NULL);
	}
	n_unreaped = 0; /* any left are init's now */
	if (reap_timer)
		event_free(reap_timer);
	reap_timer = NULL;
}

/* Kills the process (reaped later if need be), drops the connection. Runs are not touched. */
static void stop_process(struct worker *w)
{
	if (w->bev) {
		bufferevent_free(w->bev); /* closes our end */
		w->bev = NULL;
	}
	if (w->pid > 0) {
		kill_and_reap(w->ev, w->pid);
		w->pid = -1;
	}
	event_del(w->load_timer);
	w->state = PROC_NONE;
	w->generation++;
}

/* The first load's outcome goes to its reporter, once. */
static void report_load(struct worker *w, const char *error)
{
	worker_loaded_cb cb = w->loaded_cb;
	w->loaded_cb = NULL;
	if (cb) {
		runner_ref(&w->base);
		cb(&w->base, error, w->loaded_arg);
		runner_unref(&w->base);
	}
}

/* A load (first or respawn) failed with error. */
static void load_failed(struct worker *w, const char *error)
{
	stop_process(w);
	if (!w->usable) {
		report_load(w, error);
		return;
	}
	LOG_E("Cannot restart the policy worker", "err", error);
	for (struct worker_run *r = w->runs; r; r = r->next)
		if (r->state == RUN_QUEUED)
			fail_soon(r, STOP_CRASH, error);
	struct timeval tv = clock_timeval(RESPAWN_RETRY_MS * MS_NS);
	evtimer_add(w->respawn_timer, &tv);
}

static const char *late_start_detail(const struct worker *w)
{
	static char detail[512];
	snprintf(detail, sizeof(detail),
	         "%s: the policy worker was still starting at the check's deadline", w->name);
	return detail;
}

static void on_loaded(struct worker *w, const LpWorker__Loaded *ld)
{
	event_del(w->load_timer);
	if (!ld->ok) {
		char error[2048];
		snprintf(error, sizeof(error), "%.*s", (int)ld->error.len,
		         ld->error.data ? (const char *)ld->error.data : "");
		load_failed(w, error);
		return;
	}
	w->state = PROC_READY;
	w->usable = true;
	/* check(ctx) always: a policy without it does not load. */
	w->base.answers = (ld->answers & ((1u << ENDPOINT_COUNT) - 1)) | 1u << ENDPOINT_HEALTHZ;
	static bool said_unconfined;
	if (!ld->confined && !said_unconfined) {
		said_unconfined = true;
		LOG_W("The policy worker runs without its seccomp filter", "reason",
		      "the kernel refused it, or this build leaves it out");
	}
	send_driver(w);
	int64_t now = clock_now_ns();
	for (struct worker_run *r = w->runs; r; r = r->next) {
		if (r->state != RUN_QUEUED)
			continue;
		/* Its time ran out while the worker loaded (a run given none still begins). */
		if (now >= r->deadline_ns && r->deadline_ns > r->begun_ns)
			fail_soon(r, STOP_TIMEOUT, late_start_detail(w));
		else
			owe(r, send_begin(w, r));
	}
	report_load(w, NULL);
}

/*
 * What policy.c can send: a known kind and reason, a sleep or probe of a
 * non-negative length (a probe's may be infinite), a verdict's status in
 * 200-399 when healthy and 400-599 when not, with a body of at most
 * POLICY_BODY_MAX, a failure's reason. Anything else is a worker that broke the
 * protocol. Compared as the wire's integers, before any enum cast.
 */
static bool step_frame_valid(const LpWorker__Step *s)
{
	if (s->kind < RUNNER_STEP_PROBE || s->kind > RUNNER_STEP_FILE)
		return false;
	if (s->reason < 0 || s->reason >= STOP_REASON_COUNT)
		return false;
	if (s->kind == RUNNER_STEP_CALL) {
		/* A callable method's name, as policy.c only sends. */
		char name[64];
		if (s->method.len == 0 || s->method.len >= sizeof(name))
			return false;
		memcpy(name, s->method.data, s->method.len);
		name[s->method.len] = '\0';
		const struct csi_method *m = csi_method_by_name(name);
		return m && m->callable && s->seconds >= 0;
	}
	if (s->kind == RUNNER_STEP_FILE) /* an absolute path without NUL bytes */
		return s->path.len > 0 && s->path.len < 4096 && s->path.data[0] == '/' &&
		       !memchr(s->path.data, '\0', s->path.len);
	if (s->kind == RUNNER_STEP_PROBE || s->kind == RUNNER_STEP_SLEEP)
		return s->seconds >= 0; /* false for NaN; math.huge is a probe timeout */
	if (s->kind == RUNNER_STEP_DONE)
		return (s->healthy ? s->status >= 200 && s->status <= 399
		                   : s->status >= 400 && s->status <= 599) &&
		       s->body.len <= POLICY_BODY_MAX;
	return s->reason != STOP_NONE; /* a failure has a reason */
}

static void on_step_frame(struct worker *w, const LpWorker__Step *s)
{
	w->memory = (size_t)s->memory;
	struct worker_run *run = find_run(w, s->run);
	if (!run || run->state != RUN_OWED)
		return; /* abandoned meanwhile */
	if (!step_frame_valid(s)) {
		on_died(w, STOP_CRASH, "the policy worker sent a malformed step", DIED);
		return;
	}
	struct runner_step step = {.kind = (enum runner_step_kind)s->kind,
	                           .seconds = s->seconds,
	                           .healthy = s->healthy,
	                           .status = s->status,
	                           .reason = (enum stop_reason)s->reason,
	                           .body = (const char *)s->body.data,
	                           .body_len = s->body.len,
	                           .detail = (const char *)s->detail.data};
	/* bytes fields are not NUL-terminated by protobuf-c: copy what is read as text. */
	char detail[2048], method[64], path[4096];
	snprintf(detail, sizeof(detail), "%.*s", (int)s->detail.len,
	         s->detail.data ? (const char *)s->detail.data : "");
	snprintf(method, sizeof(method), "%.*s", (int)s->method.len,
	         s->method.data ? (const char *)s->method.data : "");
	snprintf(path, sizeof(path), "%.*s", (int)s->path.len,
	         s->path.data ? (const char *)s->path.data : "");
	step.detail = detail;
	step.method = method;
	step.path = path;
	/* The body may be long (1 MiB) and hold NULs; runner.h promises a terminated copy. */
	char *body = malloc(s->body.len + 1);
	if (!body) {
		if (step.kind != RUNNER_STEP_DONE && step.kind != RUNNER_STEP_FAILED)
			send_abandon(w, run->id); /* the worker holds the run: let it go */
		fail_soon(run, STOP_MEMORY, "out of memory reading the policy's verdict");
		return;
	}
	if (s->body.len)
		memcpy(body, s->body.data, s->body.len);
	body[s->body.len] = '\0';
	step.body = body;
	deliver(run, &step);
	free(body);
}

static void on_readable(struct bufferevent *bev, void *arg)
{
	struct worker *w = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned generation = w->generation;
	LpWorker__Frame *f;
	int rc = 0;
	runner_ref(&w->base);
	/* A callback may end this process (and free bev): then stop reading it. */
	while (w->generation == generation && (rc = wire_take(in, &f)) == 1) {
		if (f->msg_case == LP_WORKER__FRAME__MSG_LOADED && w->state == PROC_LOADING)
			on_loaded(w, f->loaded);
		else if (f->msg_case == LP_WORKER__FRAME__MSG_STEP && w->state == PROC_READY)
			on_step_frame(w, f->step);
		else
			rc = -1;
		lp_worker__frame__free_unpacked(f, NULL);
		if (rc < 0)
			break;
	}
	if (w->generation == generation && rc < 0) {
		char detail[512];
		snprintf(detail, sizeof(detail), "%s: the policy worker sent a malformed message",
		         w->name);
		if (w->state == PROC_LOADING)
			load_failed(w, detail);
		else
			on_died(w, STOP_CRASH, detail, DIED);
	}
	runner_unref(&w->base);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct worker *w = arg;
	char detail[512];
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	runner_ref(&w->base);
	if (w->state == PROC_LOADING) {
		snprintf(detail, sizeof(detail), "%s: the policy worker died while loading",
		         w->name);
		load_failed(w, detail);
	} else {
		snprintf(detail, sizeof(detail), "%s: the policy worker died", w->name);
		on_died(w, STOP_CRASH, detail, DIED);
	}
	runner_unref(&w->base);
}

static void on_load_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char error[512];
	snprintf(error, sizeof(error), "%s: loading did not finish within %d ms", w->name,
	         LOAD_TIMEOUT_MS);
	runner_ref(&w->base);
	load_failed(w, error);
	runner_unref(&w->base);
}

static void on_respawn(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	runner_ref(&w->base);
	respawn(w);
	runner_unref(&w->base);
}

/*
 * Starts a process and sends it the policy, without waiting for anything:
 * posix_spawn returns once the child exists, and the Load frame is
 * written by the loop. -1 with error when no process could be started.
 */
static int spawn(struct worker *w, char *error, size_t errlen)
{
	int sv[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	char v[16];
	snprintf(v, sizeof(v), "%d", w->opts.verbosity);
	char *argv[] = {w->exe, WORKER_ARG, v,
	                w->opts.log_format == LOG_FORMAT_JSON ? "json" : "text", NULL};

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(error, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	if (posix_spawn_file_actions_init(&fa) != 0) {
		snprintf(error, errlen, "out of memory");
		goto fail;
	}
	/* dup2 onto WORKER_FD clears close-on-exec for the child's copy only. */
	posix_spawn_file_actions_adddup2(&fa, sv[1], WORKER_FD);
	int rc = posix_spawn(&w->pid, w->exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		w->pid = -1;
		snprintf(error, errlen, "cannot start the policy worker %s: %s", w->exe,
		         strerror(rc));
		goto fail;
	}
	close(sv[1]);
	sv[1] = -1;
	evutil_make_socket_nonblocking(sv[0]);
	w->bev = bufferevent_socket_new(w->ev, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (!w->bev) {
		snprintf(error, errlen, "cannot watch the policy worker");
		goto fail;
	}
	sv[0] = -1;
	bufferevent_setcb(w->bev, on_readable, NULL, on_event, w);
	bufferevent_enable(w->bev, EV_READ | EV_WRITE);

	LpWorker__Load l = LP_WORKER__LOAD__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	l.chunkname =
	        (ProtobufCBinaryData){strlen(w->opts.chunkname), (uint8_t *)w->opts.chunkname};
	l.source = (ProtobufCBinaryData){w->opts.source_len, (uint8_t *)w->opts.source};
	l.memory = (int64_t)w->opts.limits.memory;
	l.instructions = w->opts.limits.instructions;
	f.msg_case = LP_WORKER__FRAME__MSG_LOAD;
	f.load = &l;
	if (send_frame(w, &f) < 0) {
		snprintf(error, errlen, "cannot send the policy to its worker");
		goto fail;
	}
	w->state = PROC_LOADING;
	w->spawned_ns = clock_now_ns();
	struct timeval tv = clock_timeval(LOAD_TIMEOUT_MS * MS_NS);
	evtimer_add(w->load_timer, &tv);
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	stop_process(w);
	return -1;
}

/* Starts the process again (the policy loaded before); a failure retries later. */
static void respawn(struct worker *w)
{
	char error[512];
	if (spawn(w, error, sizeof(error)) < 0)
		load_failed(w, error);
}

/*
 * The process died, broke the protocol, or was killed by us: every run it
 * owed a step fails (owed_reason), those in the daemon's turn are lost,
 * queued ones wait for the new process. That one starts:
 *   - after a growing delay, when the process died on its own soon after
 *     it started (CRASH_QUICK_NS);
 *   - at once after any other death or a runaway's kill, so that the next
 *     check finds it loaded;
 *   - after an abandoned run's kill, only if queued runs need it now (else
 *     the next check starts it): a daemon shutting down starts nothing.
 * A death no check hears of is logged here.
 */
static void on_died(struct worker *w, enum stop_reason owed_reason, const char *detail,
                    enum death how)
{
	bool owed = false, queued = false;
	for (struct worker_run *r = w->runs; r; r = r->next)
		owed = owed || r->state == RUN_OWED;
	if (!owed && how == DIED)
		LOG_W("Policy worker died, starting a new one", "err", detail);
	bool quick = how == DIED && clock_now_ns() - w->spawned_ns < CRASH_QUICK_NS;
	stop_process(w);
	for (struct worker_run *r = w->runs; r; r = r->next) {
		if (r->state == RUN_OWED)
			fail_soon(r, owed_reason, detail);
		else if (r->state == RUN_OURS)
			r->state = RUN_LOST;
		queued = queued || r->state == RUN_QUEUED;
	}
	if (quick) {
		w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : CRASH_BACKOFF_MIN_MS;
		if (w->backoff_ms > CRASH_BACKOFF_MAX_MS)
			w->backoff_ms = CRASH_BACKOFF_MAX_MS;
		struct timeval tv = clock_timeval(w->backoff_ms * MS_NS);
		evtimer_add(w->respawn_timer, &tv);
		return;
	}
	w->backoff_ms = 0;
	if (how != KILLED_ABANDONED || queued)
		respawn(w);
}

/* A run's deadline and grace have passed. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct worker_run *run = arg;
	struct worker *w = run->w;
	char detail[512];
	runner_ref(&w->base);
	if (run->state == RUN_QUEUED) {
		/* The worker is (re)starting and never got to it: nothing to kill. */
		fail_soon(run, STOP_TIMEOUT, late_start_detail(w));
	} else if (run->state == RUN_OWED) {
		snprintf(detail, sizeof(detail),
		         "%s: the policy did not answer by its deadline and was stopped (policy "
		         "worker killed)",
		         w->name);
		/* This run ran away; the others it takes down crashed. */
		fail_soon(run, STOP_TIMEOUT, detail);
		on_died(w, STOP_CRASH, detail, KILLED_RUNAWAY);
	}
	runner_unref(&w->base);
}

/* ---- the runner ---- */

static struct runner_run *worker_begin(struct runner *r, enum endpoint e, int64_t deadline_ns,
                                       runner_step_cb cb, void *arg)
{
	struct worker *w = (struct worker *)r;
	struct worker_run *run = calloc(1, sizeof(*run));
	if (!run)
		return NULL;
	run->base.runner = r;
	run->w = w;
	run->id = ++w->next_id;
	run->cb = cb;
	run->cb_arg = arg;
	run->endpoint = e;
	run->deadline_ns = deadline_ns;
	run->begun_ns = clock_now_ns();
	run->state = RUN_QUEUED;
	run->watchdog = evtimer_new(w->ev, on_watchdog, run);
	run->fail_event = event_new(w->ev, -1, 0, on_fail_event, run);
	run->next = w->runs;
	w->runs = run;
	if (!run->watchdog || !run->fail_event) {
		run_free(run);
		return NULL;
	}
	/* Waiting for a (re)starting worker counts against the check's deadline too. */
	arm_watchdog(run);
	if (w->state == PROC_READY)
		owe(run, send_begin(w, run));
	else if (w->state == PROC_NONE && !evtimer_pending(w->respawn_timer, NULL))
		respawn(w);
	return &run->base;
}

/* Sends a resume frame for run, or fails it when its worker is gone. */
static void resume(struct worker_run *run, const LpWorker__Frame *f)
{
	struct worker *w = run->w;
	if (run->state == RUN_LOST || w->state != PROC_READY) {
		char detail[512];
		snprintf(detail, sizeof(detail), "%s: the policy worker died during the check",
		         w->name);
		fail_soon(run, STOP_CRASH, detail);
		return;
	}
	owe(run, send_frame(w, f));
}

static void worker_resume_probe(struct runner_run *base, const struct csi_result *r)
{
	struct worker_run *run = (struct worker_run *)base;
	LpWorker__ProbeResult p = LP_WORKER__PROBE_RESULT__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	p.run = run->id;
	p.connected = r->connected;
	p.code = r->code;
	p.ready = r->ready;
	p.seconds = r->seconds;
	p.message = (ProtobufCBinaryData){strlen(r->message), (uint8_t *)r->message};
	p.error = (ProtobufCBinaryData){strlen(r->error), (uint8_t *)r->error};
	f.msg_case = LP_WORKER__FRAME__MSG_PROBE_RESULT;
	f.probe_result = &p;
	resume(run, &f);
}

static void worker_resume_call(struct runner_run *base, const struct csi_result *r)
{
	struct worker_run *run = (struct worker_run *)base;
	LpWorker__CallResult c = LP_WORKER__CALL_RESULT__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	c.run = run->id;
	c.code = r->code;
	c.seconds = r->seconds;
	c.connected = r->connected;
	c.message = (ProtobufCBinaryData){strlen(r->message), (uint8_t *)r->message};
	c.error = (ProtobufCBinaryData){strlen(r->error), (uint8_t *)r->error};
	c.reply = (ProtobufCBinaryData){r->reply ? r->reply_len : 0, (uint8_t *)r->reply};
	f.msg_case = LP_WORKER__FRAME__MSG_CALL_RESULT;
	f.call_result = &c;
	resume(run, &f);
}

static void worker_resume_file(struct runner_run *base, const struct file_check_result *r)
{
	struct worker_run *run = (struct worker_run *)base;
	LpWorker__FileResult fr = LP_WORKER__FILE_RESULT__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	fr.run = run->id;
	fr.outcome = r->outcome;
	fr.exists = r->exists;
	fr.type = r->type;
	fr.size = r->size;
	fr.age = r->age;
	fr.error = (ProtobufCBinaryData){strlen(r->error), (uint8_t *)r->error};
	f.msg_case = LP_WORKER__FRAME__MSG_FILE_RESULT;
	f.file_result = &fr;
	resume(run, &f);
}

static void worker_resume_sleep(struct runner_run *base)
{
	struct worker_run *run = (struct worker_run *)base;
	LpWorker__SleepDone s = LP_WORKER__SLEEP_DONE__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	s.run = run->id;
	f.msg_case = LP_WORKER__FRAME__MSG_SLEEP_DONE;
	f.sleep_done = &s;
	resume(run, &f);
}

static void worker_abandon(struct runner_run *base)
{
	struct worker_run *run = (struct worker_run *)base;
	struct worker *w = run->w;
	bool owed = run->state == RUN_OWED;
	uint32_t id = run->id;
	run_free(run);
	if (owed) {
		/*
		 * It runs Lua for a check nobody waits for, maybe for ever: stop it.
		 * A new one starts now only if other runs need it; otherwise the
		 * next check starts it (worker_begin).
		 */
		char detail[512];
		snprintf(detail, sizeof(detail),
		         "%s: the policy worker was stopped (check abandoned)", w->name);
		on_died(w, STOP_CRASH, detail, KILLED_ABANDONED);
		return;
	}
	send_abandon(w, id);
}

static size_t worker_memory(const struct runner *r)
{
	return ((const struct worker *)r)->memory;
}

static void worker_set_driver(struct runner *r, const char *name, const char *vendor_version)
{
	struct worker *w = (struct worker *)r;
	char *n = strdup(name), *v = strdup(vendor_version);
	if (!n || !v) {
		free(n);
		free(v);
		return; /* ctx.driver keeps what it had */
	}
	free(w->driver_name);
	free(w->driver_vendor);
	w->driver_name = n;
	w->driver_vendor = v;
	send_driver(w);
}

static void worker_destroy(struct runner *r)
{
	struct worker *w = (struct worker *)r;
	stop_process(w);
	while (w->runs)
		run_free(w->runs);
	if (w->load_timer)
		event_free(w->load_timer);
	if (w->respawn_timer)
		event_free(w->respawn_timer);
	free((char *)w->opts.source);
	free((char *)w->opts.chunkname);
	free(w->driver_name);
	free(w->driver_vendor);
	free(w);
}

static const struct runner_ops worker_ops = {
        .begin = worker_begin,
        .resume_probe = worker_resume_probe,
        .resume_call = worker_resume_call,
        .resume_file = worker_resume_file,
        .resume_sleep = worker_resume_sleep,
        .abandon = worker_abandon,
        .memory = worker_memory,
        .set_driver = worker_set_driver,
        .destroy = worker_destroy,
        .runs_in = "worker",
};

struct runner *worker_new(struct event_base *base, const struct worker_options *options,
                          worker_loaded_cb cb, void *arg, char *errbuf, size_t errlen)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	w->base.ops = &worker_ops;
	w->base.refs = 1;
	w->ev = base;
	w->pid = -1;
	w->opts = *options;
	w->opts.source = malloc(options->source_len + 1);
	w->opts.chunkname = strdup(options->chunkname);
	w->name = w->opts.chunkname && w->opts.chunkname[0] == '@' ? w->opts.chunkname + 1
	                                                           : w->opts.chunkname;
	w->load_timer = evtimer_new(base, on_load_timeout, w);
	w->respawn_timer = evtimer_new(base, on_respawn, w);
	ssize_t n = readlink("/proc/self/exe", w->exe, sizeof(w->exe) - 1);
	if (!w->opts.source || !w->opts.chunkname || !w->load_timer || !w->respawn_timer ||
	    n <= 0) {
		snprintf(errbuf, errlen, "cannot prepare the policy worker");
		worker_destroy(&w->base);
		return NULL;
	}
	w->exe[n] = '\0';
	memcpy((char *)w->opts.source, options->source, options->source_len);
	((char *)w->opts.source)[options->source_len] = '\0';
	if (spawn(w, errbuf, errlen) < 0) {
		worker_destroy(&w->base);
		return NULL;
	}
	w->loaded_cb = cb;
	w->loaded_arg = arg;
	return &w->base;
}
