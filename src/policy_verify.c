/*
 * --check-policy (policy_verify.h). Each canonical case gets a fresh
 * policy (so one case's ctx.state cannot colour the next) on a simulated
 * clock: a successful probe takes 1 ms, an unreachable one its whole
 * timeout, a sleep its seconds, and nothing waits for real.
 *
 * ctx.call and ctx.file are simulated too. A call answers as the case's
 * probe does: with a made-up reply (simulated_replies) when the probe
 * is OK, with the probe's error otherwise. A file exists (a socket when
 * its name ends in ".sock", a directory when it ends in "/", else a file;
 * modified a second ago) while the driver answers OK, and is missing
 * otherwise, so that both of a policy's branches run. Nothing is stat'ed
 * and no --policy-allow-path applies: the dry run checks the policy, not
 * the node it will run on.
 */
#include "policy_verify.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "csi.h"
#include "duration.h"
#include "file_check.h"
#include "file_read.h"
#include "grpc_status.h"
#include "utf8.h"
#include "worker.h" /* WORKER_GRACE_NS */

/* A load stuck inside C (no hook stops it) ends the process after this. */
#define LOAD_GUARD_NS   5000000000LL
#define POLICY_FILE_MAX (16u * 1024 * 1024)

static const struct verify_case {
	const char *name;
	bool connected;
	int code;
	int ready;
	const char *message;
} cases[] = {
        {"ready", true, 0, 1, ""},
        {"not ready", true, 0, 0, ""},
        {"ready absent", true, 0, -1, ""},
        {"FAILED_PRECONDITION", true, 9, -1, "the driver is not healthy (simulated)"},
        {"unreachable", false, 14, -1, "context deadline exceeded"},
};

/* The guard's message, made before it is armed: a signal handler may not format. */
static char guard_text[1024];
static size_t guard_len;

static void on_guard(int sig)
{
	ssize_t n = write(STDERR_FILENO, guard_text, guard_len);
	(void)n;
	_exit(1);
}

/* Ends the process with "<what>" and the time limit, unless disarmed within ns. */
static void arm_guard(const char *what, int64_t ns)
{
	char limit[32];
	duration_format(ns, limit, sizeof(limit));
	int n = snprintf(guard_text, sizeof(guard_text), "%s did not finish within %s\n", what,
	                 limit);
	guard_len = n > 0 && (size_t)n < sizeof(guard_text) ? (size_t)n : 0;
	signal(SIGALRM, on_guard);
	struct itimerval it = {.it_value = clock_timeval(ns)};
	setitimer(ITIMER_REAL, &it, NULL);
}

static void disarm_guard(void)
{
	struct itimerval off = {0};
	setitimer(ITIMER_REAL, &off, NULL);
}

static int64_t simulated_now(void *ctx)
{
	return *(int64_t *)ctx;
}

static void case_result(const struct verify_case *c, struct csi_result *r, double seconds)
{
	char name[24];
	if (!c->connected) {
		csi_unreachable_result(r, seconds);
		return;
	}
	memset(r, 0, sizeof(*r));
	r->connected = true;
	r->code = c->code;
	r->ready = c->code == 0 ? c->ready : -1;
	r->seconds = seconds;
	snprintf(r->message, sizeof(r->message), "%s", c->message);
	if (c->code != 0)
		snprintf(r->error, sizeof(r->error), "rpc error: code = %s desc = %s",
		         grpc_status_go_name(c->code, name, sizeof(name)), c->message);
}

/*
 * ctx.call's made-up replies for the OK cases, as a driver would send them
 * (protobuf wire bytes; field 1 is tag 0x0a for a string or message, 0x08
 * for an enum): GetPluginInfo name "check-policy.csi.example.com" and
 * vendor_version "0.0.0"; node_id "check-policy-node"; one capability of
 * type 1 each (CONTROLLER_SERVICE, STAGE_UNSTAGE_VOLUME, CREATE_DELETE_VOLUME).
 */
/* clang-format off */
#define REPLY(m, b) {m, b, sizeof(b) - 1}
/* clang-format on */
static const struct {
	const char *method;
	const char *bytes;
	size_t len;
} simulated_replies[] = {
        REPLY("GetPluginInfo", "\x0a\x1c"
                               "check-policy.csi.example.com"
                               "\x12\x05"
                               "0.0.0"),
        REPLY("GetPluginCapabilities", "\x0a\x04\x0a\x02\x08\x01"),
        REPLY("NodeGetInfo", "\x0a\x11"
                             "check-policy-node"),
        REPLY("NodeGetCapabilities", "\x0a\x04\x0a\x02\x08\x01"),
        REPLY("ControllerGetCapabilities", "\x0a\x04\x0a\x02\x08\x01"),
#undef REPLY
};

/* Sets r's reply to the made-up one of method. */
static void simulated_reply(const char *method, struct csi_result *r)
{
	for (size_t i = 0; i < sizeof(simulated_replies) / sizeof(simulated_replies[0]); i++) {
		if (strcmp(simulated_replies[i].method, method) == 0) {
			r->reply = (const uint8_t *)simulated_replies[i].bytes;
			r->reply_len = simulated_replies[i].len;
		}
	}
}

/* The simulated file system: see the top of this file. */
static void simulated_file(const struct verify_case *c, const char *path,
                           struct file_check_result *r)
{
	size_t len = strlen(path);
	memset(r, 0, sizeof(*r));
	r->outcome = FILE_CHECK_DONE;
	r->exists = c->connected && c->code == 0;
	if (!r->exists)
		return;
	if (len >= 5 && strcmp(path + len - 5, ".sock") == 0)
		r->type = FILE_TYPE_SOCKET;
	else if (len > 1 && path[len - 1] == '/')
		r->type = FILE_TYPE_DIR;
	else
		r->type = FILE_TYPE_FILE;
	r->age = 1.0;
}

/* A body as one printable line: control bytes escaped, at most 100 bytes. */
static void print_body(FILE *out, const char *body, size_t len)
{
	for (size_t i = 0; i < len && i < 100; i++) {
		unsigned char ch = (unsigned char)body[i];
		if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\x%02x", ch);
		else
			fputc(ch, out);
	}
	if (len > 100)
		fputs("...", out);
}

/*
 * Runs one case to its end on policy p. Returns 0 when it is fine, 1 with
 * why in detail (a FAILED step's own text, with file:line).
 */
static int run_case(struct policy *p, enum endpoint e, const struct verify_case *c,
                    int64_t probe_timeout_ns, int64_t check_timeout_ns, int64_t *now, FILE *out,
                    char *detail, size_t len)
{
	struct policy_step st;
	int probes = 0;
	memset(&st, 0, sizeof(st));
	int64_t deadline = clock_add(*now, check_timeout_ns);
	struct policy_run *run = policy_begin(p, e, deadline, &st);
	while (policy_step_continues(st.kind)) {
		if (st.kind == POLICY_STEP_SLEEP) {
			*now = clock_add(*now, clock_ns_of_seconds(st.seconds));
			policy_resume_sleep(run, &st);
			continue;
		}
		if (st.kind == POLICY_STEP_FILE) {
			struct file_check_result f;
			simulated_file(c, st.path, &f);
			*now = clock_add(*now, 100000); /* 0.1 ms */
			policy_resume_file(run, &f, &st);
			continue;
		}
		/* An unreachable driver answers at the probe's deadline, as in the daemon. */
		int64_t took = 1000000;
		if (!c->connected) {
			took = st.seconds > 0 ? clock_ns_of_seconds(st.seconds) : probe_timeout_ns;
			int64_t left = clock_sub(deadline, *now);
			took = took < left ? took : left;
			took = took > 0 ? took : 0;
		}
		struct csi_result r;
		case_result(c, &r, (double)took / 1e9);
		*now = clock_add(*now, took);
		if (st.kind == POLICY_STEP_CALL) {
			r.ready = -1;
			if (r.code == 0)
				simulated_reply(st.method, &r);
			policy_resume_call(run, &r, &st);
			continue;
		}
		probes++;
		policy_resume_probe(run, &r, &st);
	}
	fprintf(out, "  %-20s ", c->name);
	int rc = 0;
	if (st.kind == POLICY_STEP_DONE) {
		fprintf(out, "%d ", st.status);
		print_body(out, st.body, st.body_len);
	} else if (st.reason == STOP_TIMEOUT && probes > 0) {
		fprintf(out, "reached the check deadline: the built-in policy answers");
	} else {
		fprintf(out, "FAILS (%s)", stop_reason_label(st.reason));
		static const char never[] = " (and it never probed)";
		size_t n = utf8_copy(detail, len, st.detail, strlen(st.detail));
		if (st.reason == STOP_TIMEOUT)
			utf8_copy(detail + n, len - n, never, sizeof(never) - 1);
		rc = 1;
	}
	fputc('\n', out);
	policy_step_clear(&st);
	return rc;
}

/* Runs function e on every canonical case, each on a fresh policy. 0 when all are fine. */
static int verify_function(const char *text, size_t len, const char *chunkname,
                           const struct policy_limits *limits, enum endpoint e,
                           int64_t probe_timeout_ns, int64_t check_timeout_ns, FILE *out)
{
	const char *path = chunkname + 1;
	const char *fn = endpoint_function(e);
	char err[2048], what[4400];
	int status = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t now = clock_now_ns();
		char detail[2048] = "";
		struct policy *p = policy_new(text, len, chunkname, limits, err, sizeof(err));
		if (!p) {
			/* It loaded a moment ago: only memory can be missing now. */
			fprintf(out, "%s\n", err);
			return 1;
		}
		policy_set_clock(p, simulated_now, &now);
		/*
		 * Time is simulated, computing is not: a run still computing past
		 * its deadline and the worker's grace is one the daemon would
		 * kill; one stuck inside C, no hook ends, so this timer does.
		 */
		snprintf(what, sizeof(what),
		         "%s: %s(ctx) on the '%s' probe result ran past its deadline inside C "
		         "(the daemon kills such a worker): it",
		         path, fn, cases[i].name);
		int64_t budget = check_timeout_ns > 0 ? check_timeout_ns : 0;
		arm_guard(what, clock_add(budget, WORKER_GRACE_NS));
		if (run_case(p, e, &cases[i], probe_timeout_ns, check_timeout_ns, &now, out, detail,
		             sizeof(detail)) != 0) {
			fprintf(out, "%s: %s(ctx) fails on the '%s' probe result: %s\n", path, fn,
			        cases[i].name, detail);
			status = 1;
		}
		disarm_guard();
		policy_free(p);
	}
	return status;
}

int policy_verify(const char *path, const struct policy_limits *limits, int64_t probe_timeout_ns,
                  int64_t check_timeout_ns, FILE *out)
{
	char err[2048], chunkname[4200], what[4400];
	size_t len = 0;
	int status = 0;
	char *text = file_read(path, POLICY_FILE_MAX, &len, err, sizeof(err));
	if (!text) {
		fprintf(out, "%s\n", err);
		return 1;
	}
	snprintf(chunkname, sizeof(chunkname), "@%s", path);
	snprintf(what, sizeof(what), "policy: loading");
	arm_guard(what, LOAD_GUARD_NS);
	struct policy *p = policy_new(text, len, chunkname, limits, err, sizeof(err));
	disarm_guard();
	if (!p) {
		fprintf(out, "%s\n", err);
		free(text);
		return 1;
	}
	bool answers[ENDPOINT_COUNT];
	for (int e = 0; e < ENDPOINT_COUNT; e++)
		answers[e] = policy_answers(p, (enum endpoint)e);
	policy_free(p);
	fprintf(out, "%s: policy loads\n", path);
	for (int e = 0; e < ENDPOINT_COUNT; e++) {
		const char *fn = endpoint_function((enum endpoint)e);
		if (!answers[e]) {
			fprintf(out, "  no %s(ctx): the built-in policy answers %s\n", fn,
			        endpoint_path((enum endpoint)e));
			continue;
		}
		fprintf(out, "  %-20s verdict of %s(ctx)\n", "probe result", fn);
		status |= verify_function(text, len, chunkname, limits, (enum endpoint)e,
		                          probe_timeout_ns, check_timeout_ns, out);
	}
	free(text);
	return status;
}
