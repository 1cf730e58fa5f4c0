/*
 * fuzz_http: the HTTP request path (src/http.c) as a client reaches it. The
 * input is sent, byte for byte, on a loopback TCP connection to the real
 * server (http_new + http_serve on a 127.0.0.1 listener): libevent's parser,
 * on_request's routing, target_path, the decoding and http_clean_path, the
 * 301/404 answers, /metrics (gzip too), /status (JSON and text, from the
 * real health record, src/health.c and src/status.c) and /healthz, /readyz
 * and /startupz (?verbose too) parked on the real check module (src/check.c). The check's policy
 * sleeps 0 s (a timer: the next loop round), probes and says "ok"; with --probe-timeout 0 and no
 * driver the probe fails at once, from the loop. So a /healthz request is really parked, and
 * answered a round or two later.
 *
 * The event loop runs non-blocking, a bounded number of rounds (no sleeps).
 * Each input goes on two connections: a polite client writes it, waits until
 * nothing more arrives, half-closes and reads until the server closes; then
 * a vanishing client writes it and resets the connection 0-3 rounds later
 * (input size mod 4), while its /healthz may be parked. (libevent 2.1 does
 * not read a connection whose request is being answered, so it notices the
 * reset when the answer is written: on_parked_close is not reached here.)
 *
 * src/policy.c is included only for fuzz_policy_reset (fuzz_policy.h).
 *
 * Invariants: no crash, no leak, no sanitizer report; whatever the server
 * sends starts with a status line "HTTP/<version> NNN ".
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../../src/policy.c"

#include "check.h"
#include "fuzz.h"
#include "fuzz_policy.h"
#include "health.h"
#include "http.h"
#include "metrics.h"
#include "runner_local.h"
#include "status.h"

/* Rounds of the loop per input, and quiet rounds before the client half-closes. */
#define MAX_ROUNDS   256
#define QUIET_ROUNDS 3

static const char policy_source[] = "local function answer(ctx)\n"
                                    "  ctx.sleep(0)\n"
                                    "  ctx.probe()\n"
                                    "  return true, \"ok\"\n"
                                    "end\n"
                                    "return { check = answer, ready = answer, startup = answer }\n";

static struct event_base *base;
static struct policy *policy;
static struct sockaddr_in server_addr;

/* With --probe-timeout 0 no probe is ever sent; were one asked for, it could not start. */
static struct csi_request *no_probe(void *ctx, int64_t deadline_ns, csi_result_cb cb, void *arg)
{
	return NULL;
}

static void no_cancel(struct csi_request *probe)
{
}

static void builtin_policy(void *ctx, struct status_policy *out)
{
	out->source = "builtin";
	out->sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
	out->loaded_at = 1;
	out->runs_in = "daemon";
	out->last_reload_error = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];
	/* The server writes to clients that may be gone. */
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	struct metrics *metrics = metrics_new();
	struct policy_limits limits = {.memory = 16 << 20, .instructions = 10000000};
	policy = policy_new(policy_source, sizeof(policy_source) - 1, "=fuzz_http", &limits, err,
	                    sizeof(err));
	if (!base || !metrics || !policy) {
		fprintf(stderr, "fuzz_http: setup failed: %s\n", policy ? "out of memory" : err);
		abort();
	}
	/* Probes fail at once (no driver is asked); a check may take 10 s. */
	struct health *health = health_new(metrics);
	struct check_prober prober = {.probe = no_probe, .cancel = no_cancel};
	static const struct csi_driver driver = {.name = "fuzz", .vendor_version = ""};
	struct runner *runner = health ? runner_local_new(base, policy) : NULL;
	static struct status_sources status;
	status = (struct status_sources){.health = health,
	                                 .metrics = metrics,
	                                 .address = "unix:///fuzz.sock",
	                                 .policy = builtin_policy};
	struct http_routes routes = {.health = health,
	                             .status = &status,
	                             .metrics = metrics,
	                             .metrics_path = "/metrics",
	                             .idle_timeout_s = 60};
	bool checks = runner != NULL;
	for (int e = 0; checks && e < ENDPOINT_COUNT; e++) {
		struct check_options opts = {.probe_timeout_ns = 0,
		                             .check_timeout_ns = 10000000000LL,
		                             .endpoint = (enum endpoint)e,
		                             .health = health};
		routes.checks[e] = check_new(base, &prober, runner, metrics, &driver, &opts);
		checks = routes.checks[e] != NULL;
	}
	struct http_server *server = checks ? http_new(base, &routes) : NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	socklen_t alen = sizeof(server_addr);
	server_addr.sin_family = AF_INET;
	server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!server || fd < 0 ||
	    bind(fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) < 0 ||
	    listen(fd, 128) < 0 || getsockname(fd, (struct sockaddr *)&server_addr, &alen) < 0 ||
	    http_serve(server, fd) < 0) {
		perror("fuzz_http: listener");
		abort();
	}
	/* The server, check, policy and metrics live as long as the process. */
	return 0;
}

/*
 * "HTTP/<version> NNN ". The version is libevent's echo of the request's
 * numbers, unchecked ("HTTP/1.2", even "HTTP/-1.1" after an overflow), so
 * only the shape around it is asserted.
 */
static bool status_line(const char *s, size_t len)
{
	const char *sp = memchr(s, ' ', len);
	size_t i = sp ? (size_t)(sp - s) : len;
	return len >= 5 && memcmp(s, "HTTP/", 5) == 0 && i + 5 <= len && s[i + 1] >= '1' &&
	       s[i + 1] <= '5' && s[i + 2] >= '0' && s[i + 2] <= '9' && s[i + 3] >= '0' &&
	       s[i + 3] <= '9' && s[i + 4] == ' ';
}

/* Reads what is there; returns true once the server has closed (EOF or reset). */
static bool drain(int fd, char *head, size_t *head_len, size_t head_cap, bool *progress)
{
	char buf[16384];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0)
			return true;
		if (n < 0)
			return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
		*progress = true;
		size_t keep = head_cap - *head_len < (size_t)n ? head_cap - *head_len : (size_t)n;
		memcpy(head + *head_len, buf, keep);
		*head_len += keep;
	}
}

/*
 * A non-blocking client socket, connected. Loopback connects at once (the
 * listener's backlog, before any accept); the wait only covers EINTR, as
 * libFuzzer's timers send signals.
 */
static int connect_client(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int error = 0;
	socklen_t elen = sizeof(error);
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	if (fd < 0 || (connect(fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) < 0 &&
	               errno != EINPROGRESS && errno != EINTR)) {
		perror("fuzz_http: connect");
		abort();
	}
	while (poll(&pfd, 1, 5000) < 0 && errno == EINTR)
		;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen) < 0 || error != 0 ||
	    !(pfd.revents & POLLOUT)) {
		fprintf(stderr, "fuzz_http: connect: %s\n", strerror(error));
		abort();
	}
	return fd;
}

/*
 * One connection carrying the input. Polite: write it all, wait until
 * nothing more arrives, half-close, read until the server closes; the first
 * bytes of the answer go to head. Vanishing: close abruptly `linger` rounds
 * after the input is out, maybe while a /healthz request is parked.
 */
static size_t exchange(const uint8_t *data, size_t size, int linger, char *head, size_t cap)
{
	size_t head_len = 0;
	int fd = connect_client();
	size_t sent = 0;
	bool shut = false, closed = false;
	int quiet = 0;
	for (int round = 0; round < MAX_ROUNDS && !closed; round++) {
		if (sent < size) {
			ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				sent = size; /* the server closed on us: read what it said */
		} else if (linger >= 0 && linger-- == 0) {
			break;
		} else if (linger < 0 && !shut && quiet >= QUIET_ROUNDS) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		bool progress = false;
		closed = drain(fd, head, &head_len, cap, &progress);
		quiet = progress ? 0 : quiet + 1;
	}
	if (linger >= 0) {
		/* A reset, not a FIN: libevent answers a half-closed client all the same. */
		struct linger abort_close = {.l_onoff = 1, .l_linger = 0};
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
	}
	close(fd);
	/* Let the server see the close, free the connection and end the check. */
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return head_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char head[64];
	size_t head_len = exchange(data, size, -1, head, sizeof(head));
	/* "HTTP/1.1 200 " */
	if (head_len > 0 && !status_line(head, head_len)) {
		fprintf(stderr,
		        "fuzz_http: the answer does not start with a status line: \"%.*s\"\n",
		        (int)head_len, head);
		abort();
	}
	/* The same client again, vanishing 0-3 rounds after sending. */
	exchange(data, size, (int)(size % 4), head, sizeof(head));
	fuzz_policy_reset(policy);
	return 0;
}
