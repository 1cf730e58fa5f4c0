/*
 * csi-mock-driver's gRPC server, on the C core API with generic calls.
 *
 * One thread (the one in mock_server_run) owns everything here. It waits in
 * grpc_completion_queue_next with the earliest pending reply time as the
 * deadline, so delayed replies need no timer threads and never block other
 * calls: each accepted call is either answered at once, parked in a list
 * ordered by reply time, or left hanging until the client ends it.
 *
 * Life of a call (struct mock_call):
 *   accept   grpc_server_request_call completed; another request is posted
 *            at once so a call can always be accepted.
 *   batches  RECV_MESSAGE (read and discard the request) and
 *            RECV_CLOSE_ON_SERVER (tells us when the call is over, also when
 *            the client cancels or its deadline passes) start right away; the
 *            reply batch starts now, at its due time, or never (hang).
 *   free     each batch in flight and the pending list hold one reference;
 *            the call is freed when the last is dropped.
 */
#include "mock_server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "csi.pb-c.h"

enum mock_method {
	METHOD_PROBE,
	METHOD_INFO,
	METHOD_CAPS,
	METHOD_OTHER, /* anything else: UNIMPLEMENTED */
	METHOD_COUNT,
};

static const struct {
	const char *path;  /* HTTP/2 :path; NULL for METHOD_OTHER */
	const char *label; /* in "call method=<label>" lines */
} methods[METHOD_COUNT] = {
        [METHOD_PROBE] = {"/csi.v1.Identity/Probe", "Probe"},
        [METHOD_INFO] = {"/csi.v1.Identity/GetPluginInfo", "GetPluginInfo"},
        [METHOD_CAPS] = {"/csi.v1.Identity/GetPluginCapabilities", "GetPluginCapabilities"},
        [METHOD_OTHER] = {NULL, "other"},
};

/* How long to keep polling after shutdown so gRPC can finish tearing down (see below). */
#define TEARDOWN_GRACE_MS 100

/* What a completion is about. Every tag handed to gRPC is a struct mock_tag. */
enum tag_kind { TAG_ACCEPT, TAG_RECV, TAG_CLOSE, TAG_REPLY, TAG_SHUTDOWN };

struct mock_tag {
	enum tag_kind kind;
	struct mock_call *call; /* NULL for TAG_SHUTDOWN */
};

struct mock_call {
	grpc_call *call; /* set by gRPC when the accept completes; ours to unref */
	grpc_call_details details;
	grpc_metadata_array request_md;
	grpc_byte_buffer *request; /* RECV_MESSAGE result, discarded */
	int cancelled;             /* RECV_CLOSE_ON_SERVER result */
	bool closed;               /* RECV_CLOSE_ON_SERVER completed: no reply any more */
	enum mock_method method;
	grpc_byte_buffer *response; /* lives until the reply batch completes */
	grpc_slice status_details;  /* likewise */
	gpr_timespec due;           /* reply time while pending */
	bool pending;               /* in the server's pending list */
	struct mock_call *prev, *next;
	int refs; /* batches in flight + 1 while pending */
	struct mock_tag accept_tag, recv_tag, close_tag, reply_tag;
};

struct mock_server {
	const struct mock_config *cfg;
	FILE *out;
	bool grpc_started; /* grpc_init called: grpc_shutdown owed */
	grpc_completion_queue *cq;
	grpc_server *server;
	atomic_bool stopping; /* mock_server_stop ran (any thread) */
	bool started;         /* grpc_server_start ran: connections may need tearing down */
	bool shutdown_done;   /* TAG_SHUTDOWN received: grpc_server_destroy allowed */
	struct mock_tag shutdown_tag;
	struct mock_call *pending_head, *pending_tail; /* ascending due time */
	unsigned long counts[METHOD_COUNT];
	grpc_slice responses[METHOD_COUNT]; /* packed once; METHOD_OTHER unused */
	bool socket_owned;                  /* socket file created by us: remove it at free */
	dev_t socket_dev;
	ino_t socket_ino;
	char error[256]; /* internal error that made the server stop itself; "" if none */
};

/* Read by gRPC's threads, written once before grpc_init starts them. */
static bool grpc_log_enabled;

/* gRPC's log lines: dropped unless --verbose, then sent to stderr. */
static void route_grpc_log(gpr_log_func_args *args)
{
	if (!grpc_log_enabled)
		return;
	fprintf(stderr, "csi-mock-driver: grpc %s %s:%d] %s\n",
	        gpr_log_severity_string(args->severity), args->file, args->line, args->message);
}

/* ---- calls ------------------------------------------------------------------------------ */

static struct mock_call *call_new(void)
{
	struct mock_call *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->request_md);
	c->status_details = grpc_empty_slice();
	c->accept_tag = (struct mock_tag){TAG_ACCEPT, c};
	c->recv_tag = (struct mock_tag){TAG_RECV, c};
	c->close_tag = (struct mock_tag){TAG_CLOSE, c};
	c->reply_tag = (struct mock_tag){TAG_REPLY, c};
	return c;
}

static void call_free(struct mock_call *c)
{
	if (!c)
		return;
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->request_md);
	if (c->request)
		grpc_byte_buffer_destroy(c->request);
	if (c->response)
		grpc_byte_buffer_destroy(c->response);
	grpc_slice_unref(c->status_details);
	if (c->call)
		grpc_call_unref(c->call);
	free(c);
}

static void call_unref(struct mock_call *c)
{
	if (--c->refs == 0)
		call_free(c);
}

/* Starts a batch holding a reference; on failure the call is cancelled. */
static int call_start_batch(struct mock_call *c, const grpc_op *ops, size_t n, struct mock_tag *tag)
{
	grpc_call_error rc = grpc_call_start_batch(c->call, ops, n, tag, NULL);

	if (rc != GRPC_CALL_OK) {
		fprintf(stderr, "csi-mock-driver: grpc_call_start_batch: %s\n",
		        grpc_call_error_to_string(rc));
		grpc_call_cancel(c->call, NULL);
		return -1;
	}
	c->refs++;
	return 0;
}

static enum mock_method classify(grpc_slice path)
{
	int m;

	for (m = 0; m < METHOD_OTHER; m++) {
		if (grpc_slice_str_cmp(path, methods[m].path) == 0)
			return m;
	}
	return METHOD_OTHER;
}

/* ---- the pending list: parked replies in ascending due order ---------------------------- */

/*
 * Each method has one fixed delay, so a new entry almost always belongs at
 * the tail: scanning from there keeps inserts O(1) in practice.
 */
static void pending_insert(struct mock_server *s, struct mock_call *c)
{
	struct mock_call *after = s->pending_tail;

	while (after && gpr_time_cmp(after->due, c->due) > 0)
		after = after->prev;
	c->prev = after;
	c->next = after ? after->next : s->pending_head;
	if (c->next)
		c->next->prev = c;
	else
		s->pending_tail = c;
	if (after)
		after->next = c;
	else
		s->pending_head = c;
	c->pending = true;
	c->refs++;
}

/* Unlinks c; the caller drops the list's reference. */
static void pending_remove(struct mock_server *s, struct mock_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->pending_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->pending_tail = c->prev;
	c->prev = c->next = NULL;
	c->pending = false;
}

/* ---- replies ---------------------------------------------------------------------------- */

/* The flags' answer for a method; GetPluginCapabilities always succeeds at once. */
static const struct mock_answer *answer_for(const struct mock_server *s, enum mock_method m)
{
	static const struct mock_answer immediate_ok = {0, "", 0, false};
	static const struct mock_answer unimplemented = {GRPC_STATUS_UNIMPLEMENTED, NULL, 0, false};

	switch (m) {
	case METHOD_PROBE:
		return &s->cfg->probe;
	case METHOD_INFO:
		return &s->cfg->info;
	case METHOD_OTHER:
		return &unimplemented;
	default:
		return &immediate_ok;
	}
}

/* "unknown method <path>", the details of an UNIMPLEMENTED reply. */
static grpc_slice unknown_method_details(grpc_slice path)
{
	static const char prefix[] = "unknown method ";
	size_t plen = sizeof(prefix) - 1, len = GRPC_SLICE_LENGTH(path);
	grpc_slice out = grpc_slice_malloc(plen + len);

	memcpy(GRPC_SLICE_START_PTR(out), prefix, plen);
	memcpy(GRPC_SLICE_START_PTR(out) + plen, GRPC_SLICE_START_PTR(path), len);
	return out;
}

/*
 * Sends the final answer in one batch. Success: initial metadata, the
 * response message, status OK with the configured details. Error: initial
 * metadata and the status, no message; gRPC turns that pair into a
 * Trailers-Only response, as Go servers send. (A status op alone is never
 * written out by gRPC 1.51: the call then hangs.) The byte buffer and the
 * details slice stay in c until the batch completes.
 */
static void send_reply(struct mock_server *s, struct mock_call *c)
{
	const struct mock_answer *a = answer_for(s, c->method);
	grpc_op ops[3];
	size_t n = 0;

	if (c->closed)
		return; /* cancelled or past its deadline: nobody to answer */
	grpc_slice_unref(c->status_details);
	if (c->method == METHOD_OTHER)
		c->status_details = unknown_method_details(c->details.method);
	else
		c->status_details = grpc_slice_from_copied_string(a->message);

	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n++].data.send_initial_metadata.count = 0;
	if (a->code == GRPC_STATUS_OK) {
		c->response = grpc_raw_byte_buffer_create(&s->responses[c->method], 1);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->response;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.trailing_metadata_count = 0;
	ops[n].data.send_status_from_server.status = (grpc_status_code)a->code;
	ops[n++].data.send_status_from_server.status_details = &c->status_details;
	call_start_batch(c, ops, n, &c->reply_tag);
}

/* Sends every parked reply whose time has come. */
static void fire_due(struct mock_server *s)
{
	gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);

	while (s->pending_head && gpr_time_cmp(s->pending_head->due, now) <= 0) {
		struct mock_call *c = s->pending_head;

		pending_remove(s, c);
		send_reply(s, c);
		call_unref(c);
	}
}

/* Answer now, park until the delay has passed, or (hang) leave it to the client. */
static void schedule_reply(struct mock_server *s, struct mock_call *c)
{
	const struct mock_answer *a = answer_for(s, c->method);

	if (a->hang)
		return;
	if (a->delay_ns <= 0) {
		send_reply(s, c);
		return;
	}
	c->due = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                      gpr_time_from_nanos(a->delay_ns, GPR_TIMESPAN));
	pending_insert(s, c);
}

/* ---- accepting calls -------------------------------------------------------------------- */

static void fail_internal(struct mock_server *s, const char *what)
{
	if (!s->error[0])
		snprintf(s->error, sizeof(s->error), "%s", what);
	mock_server_stop(s);
}

/*
 * Posts the next grpc_server_request_call so that one is always
 * outstanding. The new mock_call is owned by its accept tag until that
 * completes. Not done once stopping: the server would fail it anyway.
 */
static int request_next_call(struct mock_server *s)
{
	struct mock_call *c;
	grpc_call_error rc;

	if (atomic_load(&s->stopping))
		return 0;
	c = call_new();
	if (!c)
		return -1;
	rc = grpc_server_request_call(s->server, &c->call, &c->details, &c->request_md, s->cq,
	                              s->cq, &c->accept_tag);
	if (rc != GRPC_CALL_OK) {
		call_free(c);
		return -1;
	}
	return 0;
}

static void print_call_line(struct mock_server *s, enum mock_method m)
{
	s->counts[m]++;
	if (s->cfg->quiet)
		return;
	fprintf(s->out, "call method=%s n=%lu\n", methods[m].label, s->counts[m]);
	fflush(s->out);
}

/* A call arrived (ok) or the request was dropped because of shutdown (!ok). */
static void on_accept(struct mock_server *s, struct mock_call *c, int ok)
{
	grpc_op op;

	if (!ok) {
		call_free(c);
		return;
	}
	if (request_next_call(s) < 0)
		fail_internal(s, "cannot request the next call");

	c->method = classify(c->details.method);
	print_call_line(s, c->method);

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->request;
	call_start_batch(c, &op, 1, &c->recv_tag);

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	if (call_start_batch(c, &op, 1, &c->close_tag) < 0)
		c->closed = true; /* no close will come: do not leave it hanging */

	if (atomic_load(&s->stopping))
		grpc_call_cancel(c->call, NULL); /* raced with stop: do not outlive it */
	else
		schedule_reply(s, c);
	if (c->refs == 0)
		call_free(c);
}

/* The call is over: answered, cancelled, or past its deadline. */
static void on_close(struct mock_server *s, struct mock_call *c)
{
	c->closed = true;
	if (c->pending) {
		/* The pending list's reference; the close batch still holds one. */
		pending_remove(s, c);
		c->refs--;
	}
	call_unref(c);
}

static void dispatch(struct mock_server *s, struct mock_tag *tag, int ok)
{
	switch (tag->kind) {
	case TAG_ACCEPT:
		on_accept(s, tag->call, ok);
		break;
	case TAG_RECV: /* the request itself carries nothing we use */
	case TAG_REPLY:
		call_unref(tag->call);
		break;
	case TAG_CLOSE:
		on_close(s, tag->call);
		break;
	case TAG_SHUTDOWN:
		s->shutdown_done = true;
		break;
	}
}

/* ---- the loop --------------------------------------------------------------------------- */

static gpr_timespec next_deadline(const struct mock_server *s)
{
	if (s->pending_head)
		return s->pending_head->due;
	return gpr_inf_future(GPR_CLOCK_MONOTONIC);
}

/* Handles completions until TAG_SHUTDOWN arrives. */
static void serve_until_shutdown(struct mock_server *s)
{
	while (!s->shutdown_done) {
		grpc_event ev = grpc_completion_queue_next(s->cq, next_deadline(s), NULL);

		if (ev.type == GRPC_OP_COMPLETE)
			dispatch(s, ev.tag, ev.success);
		else if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break; /* cannot happen before we shut the queue down ourselves */
		fire_due(s);
	}
}

int mock_server_run(struct mock_server *s, char *err, size_t errlen)
{
	serve_until_shutdown(s);
	if (s->error[0]) {
		snprintf(err, errlen, "%s", s->error);
		return -1;
	}
	return 0;
}

/*
 * Thread-safe: only the atomic flag and two gRPC server calls, which gRPC
 * allows from any thread. Cancelling every call is what ends hanging and
 * parked calls, so that the shutdown tag can arrive at all.
 */
void mock_server_stop(struct mock_server *s)
{
	if (atomic_exchange(&s->stopping, true))
		return;
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
	grpc_server_cancel_all_calls(s->server);
}

/* ---- setup and teardown ----------------------------------------------------------------- */

static grpc_slice pack_slice(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	grpc_slice out = grpc_slice_malloc(len);

	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(out));
	return out;
}

/*
 * The response bytes never change, so they are packed once. ready: unset
 * leaves the field out (0 bytes); false sets it to a BoolValue whose value is
 * the proto3 default and so not sent, giving exactly 0a 00.
 */
static void pack_responses(struct mock_server *s)
{
	Csi__V1__BoolValue ready = CSI__V1__BOOL_VALUE__INIT;
	Csi__V1__ProbeResponse probe = CSI__V1__PROBE_RESPONSE__INIT;
	Csi__V1__GetPluginInfoResponse info = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;
	Csi__V1__GetPluginCapabilitiesResponse caps =
	        CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;

	if (s->cfg->ready != MOCK_READY_UNSET) {
		ready.value = s->cfg->ready == MOCK_READY_TRUE;
		probe.ready = &ready;
	}
	info.name = (char *)s->cfg->name; /* pack only reads */
	info.vendor_version = (char *)s->cfg->vendor_version;
	s->responses[METHOD_PROBE] = pack_slice(&probe.base);
	s->responses[METHOD_INFO] = pack_slice(&info.base);
	s->responses[METHOD_CAPS] = pack_slice(&caps.base);
	s->responses[METHOD_OTHER] = grpc_empty_slice();
}

/*
 * Clears the way for the listener and finds out, with errno, why binding
 * would fail: gRPC only logs its reason. A socket file left by an earlier
 * run is removed; anything else at the path is left alone and reported.
 */
static int prepare_socket_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd = -1, rc = -1;

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "a file that is not a socket is in the way");
			goto out;
		}
		if (unlink(path) < 0) {
			snprintf(err, errlen, "cannot remove stale socket: %s", strerror(errno));
			goto out;
		}
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		goto out;
	}
	unlink(path); /* only a trial: gRPC binds it for real */
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Binds "unix:<path>" and starts the server; err gets the reason only. */
static int listen_on(struct mock_server *s, char *err, size_t errlen)
{
	const char *path = s->cfg->socket_path;
	grpc_server_credentials *creds = NULL;
	char *target = NULL;
	size_t size;
	struct stat st;
	int rc = -1;

	if (prepare_socket_path(path, err, errlen) < 0)
		goto out;
	size = strlen(path) + sizeof("unix:");
	target = malloc(size);
	if (!target) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(target, size, "unix:%s", path);
	creds = grpc_insecure_server_credentials_create();
	if (grpc_server_add_http2_port(s->server, target, creds) == 0) {
		snprintf(err, errlen, "gRPC could not bind it (--verbose shows why)");
		goto out;
	}
	grpc_server_start(s->server);
	s->started = true;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		s->socket_owned = true;
		s->socket_dev = st.st_dev;
		s->socket_ino = st.st_ino;
	}
	rc = 0;
out:
	if (creds)
		grpc_server_credentials_release(creds);
	free(target);
	return rc;
}

struct mock_server *mock_server_new(const struct mock_config *cfg, FILE *out, char *err,
                                    size_t errlen)
{
	struct mock_server *s = calloc(1, sizeof(*s));
	char why[200];

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = cfg;
	s->out = out;
	s->shutdown_tag = (struct mock_tag){TAG_SHUTDOWN, NULL};
	atomic_init(&s->stopping, false);
	pack_responses(s);

	grpc_log_enabled = cfg->verbose;
	gpr_set_log_function(route_grpc_log);
	if (cfg->verbose && !getenv("GRPC_VERBOSITY"))
		gpr_set_log_verbosity(GPR_LOG_SEVERITY_INFO);
	grpc_init();
	s->grpc_started = true;

	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	if (listen_on(s, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cfg->socket_path, why);
		goto fail;
	}
	if (request_next_call(s) < 0) {
		snprintf(err, errlen, "cannot request the first call");
		goto fail;
	}
	return s;
fail:
	mock_server_free(s);
	return NULL;
}

/*
 * The shutdown tag only means that no connection is registered with the
 * server any more: gRPC 1.51 finishes destroying the connections' channel
 * stacks in closures run later by whichever thread polls next. Polling a
 * little longer lets that work finish here instead of racing our exit, where
 * valgrind reports the half-destroyed objects as "possibly lost" (measured
 * under load: 1 exit in 8 without this, none in 48 with it). gRPC offers no
 * public way to wait for exactly that moment, hence a fixed grace.
 */
static void poll_for_teardown(struct mock_server *s)
{
	gpr_timespec end = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                                gpr_time_from_millis(TEARDOWN_GRACE_MS, GPR_TIMESPAN));

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(s->cq, end, NULL);

		if (ev.type != GRPC_OP_COMPLETE)
			break;
		dispatch(s, ev.tag, ev.success);
	}
}

/* Drains the queue after grpc_completion_queue_shutdown, freeing what it returns. */
static void drain_queue(struct mock_server *s)
{
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(
		        s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			dispatch(s, ev.tag, ev.success);
	}
}

/*
 * Removes the socket file unless another process has bound a new one there.
 * gRPC 1.51 itself already unlinks the path, by name, when its listener
 * closes (measured with strace), which we cannot prevent; this keeps the
 * contract ("socket removed at exit") independent of that.
 */
static void remove_socket_file(const struct mock_server *s)
{
	struct stat st;

	if (!s->socket_owned)
		return;
	if (lstat(s->cfg->socket_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == s->socket_dev && st.st_ino == s->socket_ino)
		unlink(s->cfg->socket_path);
}

void mock_server_free(struct mock_server *s)
{
	int m;

	if (!s)
		return;
	if (s->server) {
		/* grpc_server_destroy needs a completed shutdown (grpc.h). */
		mock_server_stop(s);
		serve_until_shutdown(s);
		if (s->started)
			poll_for_teardown(s);
		grpc_server_destroy(s->server);
	}
	if (s->cq) {
		grpc_completion_queue_shutdown(s->cq);
		drain_queue(s);
		grpc_completion_queue_destroy(s->cq);
	}
	/* Every call was cancelled and closed; anything still parked is a bug, not a leak. */
	while (s->pending_head) {
		struct mock_call *c = s->pending_head;

		pending_remove(s, c);
		call_free(c);
	}
	remove_socket_file(s);
	for (m = 0; m < METHOD_COUNT; m++)
		grpc_slice_unref(s->responses[m]);
	if (s->grpc_started)
		grpc_shutdown_blocking();
	free(s);
}
