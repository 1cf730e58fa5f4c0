/*
 * The policy worker process and the daemon's handle on it (policy_worker.h).
 *
 * Protocol (wire.h), strictly one message in each direction at a time:
 *   daemon: LOAD            worker: LOADED
 *   daemon: DRIVER          (no answer)
 *   daemon: BEGIN | PROBE_RESULT | SLEEP_DONE    worker: STEP
 * So the daemon only writes while the worker waits for input, and a worker
 * that stops answering is one that runs away: the watchdog kills it.
 */
#include "policy_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "csi.h"
#include "log.h"
#include "wire.h"

extern char **environ;

/* The worker's end of the socketpair, as the child sees it. */
#define WORKER_FD 3
/* A worker must load a policy within this (its own hook stops Lua at 1 s). */
#define LOAD_TIMEOUT_MS 3000
/* How long past its deadline (or past a late resume) a worker may stay silent. */
#define WATCHDOG_GRACE_NS 250000000LL

/* ---- worker process side ---- */

static int send_step(int fd, const struct policy_step *step, size_t memory)
{
	struct wire_step ws = {
	        .kind = step->kind,
	        .healthy = step->healthy,
	        .status = step->status,
	        .seconds = step->seconds,
	        .memory = memory,
	        .reason_len = step->reason ? (uint32_t)strlen(step->reason) : 0,
	        .detail_len = step->kind == POLICY_STEP_FAILED ? (uint32_t)strlen(step->detail) : 0,
	        .body_len = step->body ? (uint32_t)step->body_len : 0,
	};
	return wire_send(fd, WIRE_STEP, &ws, sizeof(ws), step->reason, ws.reason_len, step->detail,
	                 ws.detail_len, step->body, ws.body_len);
}

/* LOAD payload → a policy, or the error text; sends LOADED either way. */
static struct policy *load_in_worker(int fd, const uint8_t *payload, size_t len)
{
	struct wire_load wl;
	char err[2048] = "malformed load request";
	struct policy *p = NULL;
	if (len >= sizeof(wl)) {
		memcpy(&wl, payload, sizeof(wl));
		if (sizeof(wl) + (size_t)wl.chunkname_len + wl.source_len <= len) {
			char *chunkname =
			        strndup((const char *)payload + sizeof(wl), wl.chunkname_len);
			struct policy_limits limits = {.memory = (size_t)wl.memory,
			                               .instructions = wl.instructions};
			if (chunkname)
				p = policy_new((const char *)payload + sizeof(wl) +
				                       wl.chunkname_len,
				               wl.source_len, chunkname, &limits, err, sizeof(err));
			free(chunkname);
		}
	}
	struct wire_loaded ld = {.ok = p != NULL, .error_len = p ? 0 : (uint32_t)strlen(err)};
	wire_send(fd, WIRE_LOADED, &ld, sizeof(ld), err, ld.error_len, NULL, 0, NULL, 0);
	return p;
}

static void worker_driver(struct policy *p, const uint8_t *payload, size_t len)
{
	struct wire_driver wd;
	if (!p || len < sizeof(wd))
		return;
	memcpy(&wd, payload, sizeof(wd));
	if (sizeof(wd) + (size_t)wd.name_len + wd.vendor_len > len)
		return;
	char *name = strndup((const char *)payload + sizeof(wd), wd.name_len);
	char *vendor = strndup((const char *)payload + sizeof(wd) + wd.name_len, wd.vendor_len);
	if (name && vendor)
		policy_set_driver(p, name, vendor);
	free(name);
	free(vendor);
}

int policy_worker_main(int argc, char **argv)
{
	/* The daemon's death ends the worker too; it has nothing to do alone. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	log_setup(argc > 2 ? atoi(argv[2]) : 0,
	          argc > 3 && strcmp(argv[3], "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT,
	          false);
	int fd = WORKER_FD;
	struct policy *p = NULL;
	struct policy_step step;
	memset(&step, 0, sizeof(step));
	for (;;) {
		enum wire_type type;
		uint8_t *payload = NULL;
		size_t len = 0;
		if (wire_recv(fd, &type, &payload, &len) < 0)
			break; /* the daemon closed the socket: exit quietly */
		bool stepped = false;
		if (type == WIRE_LOAD && !p) {
			p = load_in_worker(fd, payload, len);
		} else if (type == WIRE_DRIVER) {
			worker_driver(p, payload, len);
		} else if (type == WIRE_BEGIN && p && len == sizeof(struct wire_begin)) {
			struct wire_begin wb;
			memcpy(&wb, payload, sizeof(wb));
			policy_begin(p, wb.deadline_ns, &step);
			stepped = true;
		} else if (type == WIRE_PROBE_RESULT && p &&
		           len == sizeof(struct csi_probe_result)) {
			struct csi_probe_result r;
			memcpy(&r, payload, sizeof(r));
			r.message[sizeof(r.message) - 1] = '\0';
			r.error[sizeof(r.error) - 1] = '\0';
			policy_resume_probe(p, &r, &step);
			stepped = true;
		} else if (type == WIRE_SLEEP_DONE && p) {
			policy_resume_sleep(p, &step);
			stepped = true;
		}
		free(payload);
		if (stepped && send_step(fd, &step, policy_memory(p)) < 0)
			break;
		if (stepped)
			policy_step_clear(&step);
	}
	policy_step_clear(&step);
	policy_free(p);
	close(fd);
	return 0;
}

/* ---- daemon side ---- */

struct worker {
	struct event_base *base;
	struct worker_options opts; /* source and chunkname are our copies */
	char exe[PATH_MAX];
	char *driver_name, *driver_vendor;

	pid_t pid;
	int fd;
	struct event *read_event;
	struct event *watchdog;
	struct event *soon;       /* delivers a synthesized step from the loop */
	struct event *load_event; /* an asynchronous load in progress */
	worker_loaded_cb loaded_cb;
	void *loaded_arg;
	bool in_check;   /* a check runs in the worker (it may be waiting for a probe) */
	bool check_lost; /* the worker died between steps: the next resume fails */
	struct wire_reader reader;

	bool waiting; /* a STEP is owed */
	int64_t deadline_ns;
	worker_step_cb cb;
	void *cb_arg;
	struct policy_step step;
	size_t memory;
};

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_load_event(evutil_socket_t fd, short what, void *arg);

static void stop_process(struct worker *w)
{
	if (w->load_event) {
		event_free(w->load_event);
		w->load_event = NULL;
	}
	if (w->read_event) {
		event_free(w->read_event);
		w->read_event = NULL;
	}
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
			;
		w->pid = -1;
	}
	wire_reader_reset(&w->reader);
	w->waiting = false;
	event_del(w->watchdog);
}

static int send_driver(struct worker *w)
{
	if (!w->driver_name)
		return 0;
	struct wire_driver wd = {.name_len = (uint32_t)strlen(w->driver_name),
	                         .vendor_len = (uint32_t)strlen(w->driver_vendor)};
	return wire_send(w->fd, WIRE_DRIVER, &wd, sizeof(wd), w->driver_name, wd.name_len,
	                 w->driver_vendor, wd.vendor_len, NULL, 0);
}

static void load_timeout_text(const struct worker *w, char *errbuf, size_t errlen)
{
	snprintf(errbuf, errlen, "%s: loading did not finish within %d ms", w->opts.chunkname + 1,
	         LOAD_TIMEOUT_MS);
}

/* Reads the LOADED answer (the socket is readable). */
static int read_loaded(struct worker *w, char *errbuf, size_t errlen)
{
	enum wire_type type;
	uint8_t *payload = NULL;
	size_t len = 0;
	if (wire_recv(w->fd, &type, &payload, &len) < 0 || type != WIRE_LOADED ||
	    len < sizeof(struct wire_loaded)) {
		snprintf(errbuf, errlen, "%s: the policy worker died while loading",
		         w->opts.chunkname + 1);
		free(payload);
		return -1;
	}
	struct wire_loaded ld;
	memcpy(&ld, payload, sizeof(ld));
	if (!ld.ok) {
		size_t n = len - sizeof(ld) < ld.error_len ? len - sizeof(ld) : ld.error_len;
		snprintf(errbuf, errlen, "%.*s", (int)n, (const char *)payload + sizeof(ld));
	}
	free(payload);
	return ld.ok ? 0 : -1;
}

/* Waits for the LOADED answer; the worker has LOAD_TIMEOUT_MS to give it. */
static int await_loaded(struct worker *w, char *errbuf, size_t errlen)
{
	struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
	int rc;
	while ((rc = poll(&pfd, 1, LOAD_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (rc == 0) {
		load_timeout_text(w, errbuf, errlen);
		return -1;
	}
	return rc < 0 ? -1 : read_loaded(w, errbuf, errlen);
}

/* A loaded worker starts serving: ctx.driver, then steps through on_readable. */
static int finish_start(struct worker *w, char *errbuf, size_t errlen)
{
	if (send_driver(w) < 0) {
		snprintf(errbuf, errlen, "the policy worker died at start");
		return -1;
	}
	w->read_event = event_new(w->base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
	if (!w->read_event || event_add(w->read_event, NULL) < 0) {
		snprintf(errbuf, errlen, "cannot watch the policy worker");
		return -1;
	}
	return 0;
}

/*
 * Starts a worker process and sends it the policy. With wait, blocks until
 * it loaded (start-up, respawns of a policy that loaded before); without,
 * returns at once and on_load_event finishes the start.
 */
static int start_process(struct worker *w, bool wait, char *errbuf, size_t errlen)
{
	int sv[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	bool fa_ready = false;
	char v[16];
	snprintf(v, sizeof(v), "%d", w->opts.verbosity);
	char *argv[] = {w->exe, POLICY_WORKER_ARG, v,
	                w->opts.log_format == LOG_FORMAT_JSON ? "json" : "text", NULL};

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(errbuf, errlen, "socketpair: %s", strerror(errno));
		goto err;
	}
	/* dup2 onto WORKER_FD clears close-on-exec for the child's copy only. */
	if (posix_spawn_file_actions_init(&fa) != 0)
		goto err;
	fa_ready = true;
	posix_spawn_file_actions_adddup2(&fa, sv[1], WORKER_FD);
	int rc = posix_spawn(&w->pid, w->exe, &fa, NULL, argv, environ);
	if (rc != 0) {
		w->pid = -1;
		snprintf(errbuf, errlen, "cannot start the policy worker %s: %s", w->exe,
		         strerror(rc));
		goto err;
	}
	posix_spawn_file_actions_destroy(&fa);
	fa_ready = false;
	close(sv[1]);
	sv[1] = -1;
	w->fd = sv[0];

	struct wire_load wl = {.memory = (int64_t)w->opts.limits.memory,
	                       .instructions = w->opts.limits.instructions,
	                       .chunkname_len = (uint32_t)strlen(w->opts.chunkname),
	                       .source_len = (uint32_t)w->opts.source_len};
	if (wire_send(w->fd, WIRE_LOAD, &wl, sizeof(wl), w->opts.chunkname, wl.chunkname_len,
	              w->opts.source, wl.source_len, NULL, 0) < 0) {
		snprintf(errbuf, errlen, "the policy worker died at start");
		goto err_process;
	}
	if (!wait) {
		struct timeval tv = {.tv_sec = LOAD_TIMEOUT_MS / 1000,
		                     .tv_usec = (LOAD_TIMEOUT_MS % 1000) * 1000};
		w->load_event = event_new(w->base, w->fd, EV_READ, on_load_event, w);
		if (!w->load_event || event_add(w->load_event, &tv) < 0) {
			snprintf(errbuf, errlen, "cannot watch the policy worker");
			goto err_process;
		}
		return 0;
	}
	if (await_loaded(w, errbuf, errlen) < 0 || finish_start(w, errbuf, errlen) < 0)
		goto err_process;
	return 0;
err:
	if (fa_ready)
		posix_spawn_file_actions_destroy(&fa);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return -1;
err_process:
	stop_process(w);
	return -1;
}

/* Ends the step owed to the check with a failure, from the loop. */
static void fail_soon(struct worker *w, const char *reason, const char *detail)
{
	policy_step_clear(&w->step);
	w->step.kind = POLICY_STEP_FAILED;
	w->step.reason = reason;
	snprintf(w->step.detail, sizeof(w->step.detail), "%s", detail);
	event_active(w->soon, EV_TIMEOUT, 0);
}

/*
 * The worker died or ran away: restart it, and fail the step it owed. A
 * worker that died between two steps of a check (while the daemon probed or
 * slept for it) lost that check: the next resume fails instead.
 */
static void restart(struct worker *w, const char *reason, const char *detail)
{
	bool owed = w->waiting;
	bool lost = w->in_check && !owed;
	char err[1024];
	if (!owed)
		LOG_W("Policy worker died, starting a new one", "err", detail);
	stop_process(w);
	if (start_process(w, true, err, sizeof(err)) < 0)
		LOG_E("Cannot restart the policy worker", "err", err);
	w->in_check = false;
	w->check_lost = lost;
	if (owed)
		fail_soon(w, reason, detail);
}

/* The callback stays set for the whole check: every step of it goes there. */
static void deliver(struct worker *w)
{
	if (w->cb)
		w->cb(&w->step, w->cb_arg);
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
	deliver(arg);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char detail[512];
	snprintf(detail, sizeof(detail),
	         "%s: the policy did not answer by its deadline and was stopped (policy worker "
	         "killed)",
	         w->opts.chunkname + 1);
	restart(w, "timeout", detail);
}

/* Decodes one STEP frame into w->step. */
static int decode_step(struct worker *w, const uint8_t *p, size_t len)
{
	struct wire_step ws;
	if (len < sizeof(ws))
		return -1;
	memcpy(&ws, p, sizeof(ws));
	if (sizeof(ws) + (size_t)ws.reason_len + ws.detail_len + ws.body_len != len)
		return -1;
	static const char *const reasons[] = {"error",   "instructions", "memory",
	                                      "timeout", "return",       NULL};
	const char *reason_text = (const char *)p + sizeof(ws);
	policy_step_clear(&w->step);
	w->step.kind = (enum policy_step_kind)ws.kind;
	w->step.healthy = ws.healthy != 0;
	w->step.status = ws.status;
	w->step.seconds = ws.seconds;
	/* Reasons are metric labels: only the known ones cross over. */
	w->step.reason = "error";
	for (int i = 0; reasons[i]; i++)
		if (strlen(reasons[i]) == ws.reason_len &&
		    memcmp(reasons[i], reason_text, ws.reason_len) == 0)
			w->step.reason = reasons[i];
	size_t dn = ws.detail_len < sizeof(w->step.detail) - 1 ? ws.detail_len
	                                                       : sizeof(w->step.detail) - 1;
	memcpy(w->step.detail, reason_text + ws.reason_len, dn);
	w->step.detail[dn] = '\0';
	if (ws.kind == POLICY_STEP_DONE) {
		w->step.body = malloc((size_t)ws.body_len + 1);
		if (!w->step.body)
			return -1;
		memcpy(w->step.body, reason_text + ws.reason_len + ws.detail_len, ws.body_len);
		w->step.body[ws.body_len] = '\0';
		w->step.body_len = ws.body_len;
	}
	w->memory = ws.memory;
	return ws.kind >= POLICY_STEP_PROBE && ws.kind <= POLICY_STEP_FAILED ? 0 : -1;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint8_t buf[65536];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || wire_reader_feed(&w->reader, buf, (size_t)n) < 0) {
		char detail[512];
		snprintf(detail, sizeof(detail), "%s: the policy worker died",
		         w->opts.chunkname + 1);
		restart(w, "crash", detail);
		return;
	}
	enum wire_type type;
	const uint8_t *payload;
	size_t len;
	int rc;
	while ((rc = wire_reader_next(&w->reader, &type, &payload, &len)) == 1) {
		if (type != WIRE_STEP || !w->waiting || decode_step(w, payload, len) < 0) {
			rc = -1;
			break;
		}
		w->waiting = false;
		if (w->step.kind == POLICY_STEP_DONE || w->step.kind == POLICY_STEP_FAILED)
			w->in_check = false;
		event_del(w->watchdog);
		deliver(w);
		if (w->fd < 0)
			return; /* the callback freed or restarted us */
	}
	if (rc < 0) {
		char detail[512];
		snprintf(detail, sizeof(detail), "%s: the policy worker sent a malformed message",
		         w->opts.chunkname + 1);
		restart(w, "crash", detail);
	}
}

/* The asynchronous load's answer (or its timeout) arrived. */
static void on_load_event(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char err[2048] = "";
	event_free(w->load_event);
	w->load_event = NULL;
	if (what & EV_TIMEOUT)
		load_timeout_text(w, err, sizeof(err));
	else if (read_loaded(w, err, sizeof(err)) == 0 && finish_start(w, err, sizeof(err)) == 0)
		err[0] = '\0';
	else if (!err[0])
		snprintf(err, sizeof(err), "%s: the policy worker died while loading",
		         w->opts.chunkname + 1);
	if (err[0])
		stop_process(w);
	w->loaded_cb(w, err[0] ? err : NULL, w->loaded_arg);
}

static struct worker *worker_alloc(struct event_base *base, const struct worker_options *options,
                                   char *errbuf, size_t errlen);

struct worker *worker_load(struct event_base *base, const struct worker_options *options,
                           worker_loaded_cb cb, void *arg, char *errbuf, size_t errlen)
{
	struct worker *w = worker_alloc(base, options, errbuf, errlen);
	if (!w)
		return NULL;
	w->loaded_cb = cb;
	w->loaded_arg = arg;
	if (start_process(w, false, errbuf, errlen) < 0) {
		worker_free(w);
		return NULL;
	}
	return w;
}

struct worker *worker_new(struct event_base *base, const struct worker_options *options,
                          char *errbuf, size_t errlen)
{
	struct worker *w = worker_alloc(base, options, errbuf, errlen);
	if (w && start_process(w, true, errbuf, errlen) < 0) {
		worker_free(w);
		return NULL;
	}
	return w;
}

/* A worker handle with its copies and events, no process yet. */
static struct worker *worker_alloc(struct event_base *base, const struct worker_options *options,
                                   char *errbuf, size_t errlen)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	w->base = base;
	w->pid = -1;
	w->fd = -1;
	w->opts = *options;
	w->opts.source = malloc(options->source_len + 1);
	w->opts.chunkname = strdup(options->chunkname);
	w->watchdog = evtimer_new(base, on_watchdog, w);
	w->soon = event_new(base, -1, 0, on_soon, w);
	ssize_t n = readlink("/proc/self/exe", w->exe, sizeof(w->exe) - 1);
	if (!w->opts.source || !w->opts.chunkname || !w->watchdog || !w->soon || n <= 0) {
		snprintf(errbuf, errlen, "cannot prepare the policy worker");
		goto err;
	}
	w->exe[n] = '\0';
	memcpy((char *)w->opts.source, options->source, options->source_len);
	((char *)w->opts.source)[options->source_len] = '\0';
	return w;
err:
	worker_free(w);
	return NULL;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	stop_process(w);
	if (w->watchdog)
		event_free(w->watchdog);
	if (w->soon)
		event_free(w->soon);
	policy_step_clear(&w->step);
	free((char *)w->opts.source);
	free((char *)w->opts.chunkname);
	free(w->driver_name);
	free(w->driver_vendor);
	free(w);
}

void worker_set_driver(struct worker *w, const char *name, const char *vendor_version)
{
	free(w->driver_name);
	free(w->driver_vendor);
	w->driver_name = strdup(name);
	w->driver_vendor = strdup(vendor_version);
	if (!w->driver_name || !w->driver_vendor) {
		free(w->driver_name);
		free(w->driver_vendor);
		w->driver_name = w->driver_vendor = NULL;
		return;
	}
	if (w->fd >= 0 && !w->waiting && send_driver(w) < 0)
		restart(w, "crash", "the policy worker died");
}

/* Sends a message that makes the worker run Lua, and arms the watchdog. */
static void run_remote(struct worker *w, enum wire_type type, const void *payload, size_t len)
{
	if (type != WIRE_BEGIN && w->check_lost) {
		char detail[512];
		snprintf(detail, sizeof(detail), "%s: the policy worker died during the check",
		         w->opts.chunkname + 1);
		w->check_lost = false;
		fail_soon(w, "crash", detail);
		return;
	}
	if (type == WIRE_BEGIN) {
		w->in_check = true;
		w->check_lost = false;
	}
	if (w->fd < 0) {
		char err[1024];
		if (start_process(w, true, err, sizeof(err)) < 0) {
			LOG_E("Cannot restart the policy worker", "err", err);
			fail_soon(w, "crash", "the policy worker is not running");
			return;
		}
	}
	if (wire_send(w->fd, type, payload, len, NULL, 0, NULL, 0, NULL, 0) < 0) {
		w->waiting = true;
		restart(w, "crash", "the policy worker died");
		return;
	}
	w->waiting = true;
	struct timeval tv = clock_timeval(clock_add(clock_left(w->deadline_ns), WATCHDOG_GRACE_NS));
	evtimer_add(w->watchdog, &tv);
}

void worker_begin(struct worker *w, int64_t deadline_ns, worker_step_cb cb, void *arg)
{
	struct wire_begin wb = {.deadline_ns = deadline_ns};
	w->cb = cb;
	w->cb_arg = arg;
	w->deadline_ns = deadline_ns;
	run_remote(w, WIRE_BEGIN, &wb, sizeof(wb));
}

void worker_resume_probe(struct worker *w, const struct csi_probe_result *r)
{
	run_remote(w, WIRE_PROBE_RESULT, r, sizeof(*r));
}

void worker_resume_sleep(struct worker *w)
{
	run_remote(w, WIRE_SLEEP_DONE, NULL, 0);
}

void worker_abandon(struct worker *w)
{
	w->cb = NULL;
	w->in_check = false;
	w->check_lost = false;
	if (w->waiting) {
		/* It is running Lua for a check nobody waits for: start afresh. */
		char err[1024];
		stop_process(w);
		if (start_process(w, true, err, sizeof(err)) < 0)
			LOG_E("Cannot restart the policy worker", "err", err);
	}
	event_del(w->soon);
}

size_t worker_memory(const struct worker *w)
{
	return w->memory;
}
