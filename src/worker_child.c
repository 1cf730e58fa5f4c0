/*
 * The worker process (worker_child.h). Frames in (proto/worker.proto):
 * Load (once), Driver, Begin, ProbeResult, CallResult, SleepDone, Abandon;
 * frames out: Loaded, and one Step for each Begin or resume. Runs are kept
 * by the id the daemon gave them; a frame for a run that is not here (the
 * daemon gave it up meanwhile) is ignored.
 */
#include "worker_child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "csi.h"
#include "file_check.h"
#include "log.h"
#include "policy.h"
#include "runner.h"
#include "wire.h"
#include "worker.h"
#include "worker_seccomp.h"

struct child_run {
	uint32_t id;
	struct policy_run *run;
	struct child_run *next;
};

struct child {
	int fd;
	bool confined; /* the seccomp filter holds */
	struct evbuffer *in, *out;
	struct policy *policy;
	struct child_run *runs;
};

/* Writes out all that is buffered; -1 when the daemon is gone. */
static int flush(struct child *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		if (evbuffer_write(c->out, c->fd) < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * Reads until one whole frame is in: 0 with *f, 1 at EOF (or a read
 * error), -1 on a malformed frame.
 */
static int read_frame(struct child *c, LpWorker__Frame **f)
{
	for (;;) {
		int rc = wire_take(c->in, f);
		if (rc != 0)
			return rc == 1 ? 0 : -1;
		int n = evbuffer_read(c->in, c->fd, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
	}
}

static int send_frame(struct child *c, const LpWorker__Frame *f)
{
	if (wire_put(c->out, f) < 0)
		return -1;
	return flush(c);
}

static struct child_run **find(struct child *c, uint32_t id)
{
	struct child_run **pp = &c->runs;
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static void forget(struct child *c, uint32_t id)
{
	struct child_run **pp = find(c, id);
	if (*pp) {
		struct child_run *r = *pp;
		*pp = r->next;
		free(r);
	}
}

/* Sends the step; a final one ends the run here too. */
static int send_step(struct child *c, uint32_t id, const struct policy_step *st)
{
	static const enum runner_step_kind kinds[] = {
	        [POLICY_STEP_PROBE] = RUNNER_STEP_PROBE, [POLICY_STEP_CALL] = RUNNER_STEP_CALL,
	        [POLICY_STEP_FILE] = RUNNER_STEP_FILE,   [POLICY_STEP_SLEEP] = RUNNER_STEP_SLEEP,
	        [POLICY_STEP_DONE] = RUNNER_STEP_DONE,   [POLICY_STEP_FAILED] = RUNNER_STEP_FAILED,
	};
	LpWorker__Step s = LP_WORKER__STEP__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	s.run = id;
	s.kind = kinds[st->kind];
	s.seconds = st->seconds;
	s.healthy = st->healthy;
	s.status = st->status;
	s.body = (ProtobufCBinaryData){st->body ? st->body_len : 0, (uint8_t *)st->body};
	s.reason = st->reason;
	if (st->kind == POLICY_STEP_FAILED)
		s.detail = (ProtobufCBinaryData){strlen(st->detail), (uint8_t *)st->detail};
	if (st->kind == POLICY_STEP_CALL)
		s.method = (ProtobufCBinaryData){strlen(st->method), (uint8_t *)st->method};
	if (st->kind == POLICY_STEP_FILE)
		s.path = (ProtobufCBinaryData){strlen(st->path), (uint8_t *)st->path};
	s.memory = policy_memory(c->policy);
	f.msg_case = LP_WORKER__FRAME__MSG_STEP;
	f.step = &s;
	if (st->kind == POLICY_STEP_DONE || st->kind == POLICY_STEP_FAILED)
		forget(c, id);
	return send_frame(c, &f);
}

/* A text field of a frame, as a C string (malloc'd; NULL when out of memory). */
static char *text_of(ProtobufCBinaryData b)
{
	char *s = malloc(b.len + 1);
	if (s) {
		if (b.len)
			memcpy(s, b.data, b.len);
		s[b.len] = '\0';
	}
	return s;
}

/* A text field of a frame into a buffer, cut to fit (bytes fields are not NUL-terminated). */
static void copy_text(char *out, size_t size, ProtobufCBinaryData b)
{
	snprintf(out, size, "%.*s", (int)(b.len < size ? b.len : size - 1),
	         b.data ? (const char *)b.data : "");
}

static int on_load(struct child *c, const LpWorker__Load *l)
{
	char err[2048] = "out of memory";
	char *chunkname = text_of(l->chunkname);
	struct policy_limits limits = {.memory = (size_t)l->memory,
	                               .instructions = l->instructions};
	if (chunkname && !c->policy)
		c->policy = policy_new((const char *)l->source.data, l->source.len, chunkname,
		                       &limits, err, sizeof(err));
	free(chunkname);
	LpWorker__Loaded ld = LP_WORKER__LOADED__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	ld.ok = c->policy != NULL;
	ld.confined = c->confined;
	for (int e = 0; c->policy && e < ENDPOINT_COUNT; e++)
		if (policy_answers(c->policy, (enum endpoint)e))
			ld.answers |= 1u << e;
	if (!ld.ok)
		ld.error = (ProtobufCBinaryData){strlen(err), (uint8_t *)err};
	f.msg_case = LP_WORKER__FRAME__MSG_LOADED;
	f.loaded = &ld;
	return send_frame(c, &f);
}

static void on_driver(struct child *c, const LpWorker__Driver *d)
{
	char *name = text_of(d->name), *vendor = text_of(d->vendor_version);
	if (c->policy && name && vendor)
		policy_set_driver(c->policy, name, vendor);
	free(name);
	free(vendor);
}

static int on_begin(struct child *c, const LpWorker__Begin *b)
{
	struct policy_step st;
	memset(&st, 0, sizeof(st));
	if (b->endpoint >= ENDPOINT_COUNT)
		return -1; /* not our daemon's frame */
	struct child_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->id = b->run;
	r->run = policy_begin(c->policy, (enum endpoint)b->endpoint, b->deadline_ns, &st);
	if (r->run) {
		r->next = c->runs;
		c->runs = r;
	} else {
		free(r);
	}
	worker_seccomp_test_hook();
	int rc = send_step(c, b->run, &st);
	policy_step_clear(&st);
	return rc;
}

static int on_probe_result(struct child *c, const LpWorker__ProbeResult *p)
{
	struct child_run *r = *find(c, p->run);
	if (!r)
		return 0;
	struct csi_result res;
	csi_result_reset(&res);
	res.connected = p->connected;
	res.code = p->code;
	res.ready = p->ready;
	res.seconds = p->seconds;
	copy_text(res.message, sizeof(res.message), p->message);
	copy_text(res.error, sizeof(res.error), p->error);
	struct policy_step st;
	memset(&st, 0, sizeof(st));
	policy_resume_probe(r->run, &res, &st);
	int rc = send_step(c, p->run, &st);
	policy_step_clear(&st);
	return rc;
}

static int on_call_result(struct child *c, const LpWorker__CallResult *cr)
{
	struct child_run *r = *find(c, cr->run);
	if (!r)
		return 0;
	struct csi_result res;
	csi_result_reset(&res);
	res.connected = cr->connected;
	res.code = cr->code;
	res.ready = -1;
	res.seconds = cr->seconds;
	copy_text(res.message, sizeof(res.message), cr->message);
	copy_text(res.error, sizeof(res.error), cr->error);
	res.reply = cr->reply.data;
	res.reply_len = cr->reply.len;
	struct policy_step st;
	memset(&st, 0, sizeof(st));
	policy_resume_call(r->run, &res, &st);
	int rc = send_step(c, cr->run, &st);
	policy_step_clear(&st);
	return rc;
}

static int on_file_result(struct child *c, const LpWorker__FileResult *fr)
{
	struct child_run *r = *find(c, fr->run);
	if (!r)
		return 0;
	if (fr->outcome < FILE_CHECK_DONE || fr->outcome > FILE_CHECK_FAILED || fr->type < 0 ||
	    fr->type > FILE_TYPE_OTHER)
		return -1; /* not our daemon's frame */
	struct file_check_result res;
	memset(&res, 0, sizeof(res));
	res.outcome = (enum file_check_outcome)fr->outcome;
	res.exists = fr->exists;
	res.type = (enum file_type)fr->type;
	res.size = fr->size;
	res.age = fr->age;
	copy_text(res.error, sizeof(res.error), fr->error);
	struct policy_step st;
	memset(&st, 0, sizeof(st));
	policy_resume_file(r->run, &res, &st);
	int rc = send_step(c, fr->run, &st);
	policy_step_clear(&st);
	return rc;
}

static int on_sleep_done(struct child *c, const LpWorker__SleepDone *sd)
{
	struct child_run *r = *find(c, sd->run);
	if (!r)
		return 0;
	struct policy_step st;
	memset(&st, 0, sizeof(st));
	policy_resume_sleep(r->run, &st);
	int rc = send_step(c, sd->run, &st);
	policy_step_clear(&st);
	return rc;
}

static void on_abandon(struct child *c, const LpWorker__Abandon *a)
{
	struct child_run *r = *find(c, a->run);
	if (r) {
		policy_abandon(r->run);
		forget(c, a->run);
	}
}

/* One frame; -1 ends the process (the daemon broke the protocol or left). */
static int dispatch(struct child *c, const LpWorker__Frame *f)
{
	if (f->msg_case == LP_WORKER__FRAME__MSG_LOAD)
		return c->policy ? -1 : on_load(c, f->load);
	if (!c->policy)
		return -1; /* everything else needs a policy */
	switch (f->msg_case) {
	case LP_WORKER__FRAME__MSG_DRIVER:
		on_driver(c, f->driver);
		return 0;
	case LP_WORKER__FRAME__MSG_BEGIN:
		return on_begin(c, f->begin);
	case LP_WORKER__FRAME__MSG_PROBE_RESULT:
		return on_probe_result(c, f->probe_result);
	case LP_WORKER__FRAME__MSG_CALL_RESULT:
		return on_call_result(c, f->call_result);
	case LP_WORKER__FRAME__MSG_FILE_RESULT:
		return on_file_result(c, f->file_result);
	case LP_WORKER__FRAME__MSG_SLEEP_DONE:
		return on_sleep_done(c, f->sleep_done);
	case LP_WORKER__FRAME__MSG_ABANDON:
		on_abandon(c, f->abandon);
		return 0;
	default:
		return -1;
	}
}

int worker_child_main(int argc, char **argv)
{
	struct child c = {.fd = WORKER_FD};
	int status = 0;
	/* The daemon's death ends the worker too; it has nothing to do alone. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	log_setup(argc > 2 ? atoi(argv[2]) : 0,
	          argc > 3 && strcmp(argv[3], "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT,
	          false);
	/* Blocking I/O: waiting for the daemon is all there is to do. */
	fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) & ~O_NONBLOCK);
	c.in = evbuffer_new();
	c.out = evbuffer_new();
	if (!c.in || !c.out)
		return 1;
	/* Contained before the first byte of the policy arrives (its top level runs at load). */
	c.confined = worker_seccomp_apply();
	for (;;) {
		LpWorker__Frame *f = NULL;
		int rc = read_frame(&c, &f);
		if (rc != 0) {
			/* EOF: the daemon left, exit quietly. Garbage: it broke the protocol. */
			status = rc < 0;
			break;
		}
		rc = dispatch(&c, f);
		lp_worker__frame__free_unpacked(f, NULL);
		if (rc < 0) {
			status = 1;
			break;
		}
	}
	while (c.runs)
		forget(&c, c.runs->id);
	policy_free(c.policy);
	evbuffer_free(c.in);
	evbuffer_free(c.out);
	close(c.fd);
	return status;
}
