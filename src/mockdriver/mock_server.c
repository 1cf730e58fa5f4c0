/*
 * csi-mock-driver's gRPC server, on the C core API with generic calls.
 *
 * Connections come from our own listener (mock_listener.h), whose thread
 * hands each accepted socket to gRPC; apart from that, one thread (the one
 * in mock_server_run) owns everything here, the script included. It waits in
 * grpc_completion_queue_next with the earliest pending reply time as the
 * deadline, so delayed replies need no timer threads and never block other
 * calls: each accepted call is either answered at once, parked in a list
 * ordered by reply time, or left hanging until the client ends it.
 *
 * Life of a call (struct mock_call):
 *   accept   grpc_server_request_call completed; another request is posted
 *            at once so a call can always be accepted. The answer (struct
 *            mock_reply) is decided now, by the flags or the script.
 *   batches  RECV_MESSAGE (read and discard the request) and
 *            RECV_CLOSE_ON_SERVER (tells us when the call is over, also when
 *            the client cancels or its deadline passes) start right away; the
 *            reply batch starts now, at its due time, or never (hang).
 *   free     each batch in flight and the pending list hold one reference;
 *            the call is freed when the last is dropped.
 */
#include "mock_server.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "csi.pb-c.h"
#include "log.h"
#include "mock_listener.h"

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
	struct mock_reply reply;    /* decided on arrival (Probe and GetPluginInfo) */
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
	struct mock_script *script; /* borrowed; NULL without --script */
	FILE *out;
	gpr_timespec started_at; /* call.elapsed counts from here */
	struct mock_listener *listener;
	grpc_server_credentials *creds; /* for grpc_server_add_channel_from_fd */
	bool grpc_started;              /* grpc_init called: grpc_shutdown owed */
	grpc_completion_queue *cq;
	grpc_server *server;
	atomic_bool stopping; /* mock_server_stop ran (any thread) */
	bool started;         /* grpc_server_start ran: connections may need tearing down */
	bool shutdown_done;   /* TAG_SHUTDOWN received: grpc_server_destroy allowed */
	struct mock_tag shutdown_tag;
	struct mock_call *pending_head, *pending_tail; /* ascending due time */
	unsigned long counts[METHOD_COUNT];
	char error[256]; /* internal error that made the server stop itself; "" if none */
};

/* Read by gRPC's threads, written once before grpc_init starts them. */
static bool grpc_log_enabled;

/* gRPC's log lines: dropped unless --verbose, then logged as ours are. */
static void route_grpc_log(gpr_log_func_args *args)
{
	char line[16];
	if (!grpc_log_enabled)
		return;
	snprintf(line, sizeof(line), "%d", args->line);
	log_write(args->severity == GPR_LOG_SEVERITY_ERROR ? LOG_ERROR : LOG_INFO, 0, "grpc", 0,
	          args->message, "file", args->file, "line", line, (char *)NULL);
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
	mock_reply_clear(&c->reply);
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
		LOG_E("Cannot start a gRPC batch", "err", grpc_call_error_to_string(rc));
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
 * Delays rarely change between calls, so a new entry almost always belongs
 * at the tail: scanning from there keeps inserts O(1) in practice.
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

static double seconds_since(gpr_timespec t)
{
	gpr_timespec d = gpr_time_sub(gpr_now(GPR_CLOCK_MONOTONIC), t);

	return (double)d.tv_sec + d.tv_nsec / 1e9;
}

/*
 * Decides c's answer on arrival: the flags', unless the script's hook
 * overrides it. GetPluginCapabilities always succeeds at once, unknown
 * methods are UNIMPLEMENTED.
 */
static void decide_reply(struct mock_server *s, struct mock_call *c)
{
	enum mock_hook h = c->method == METHOD_PROBE ? MOCK_HOOK_PROBE : MOCK_HOOK_INFO;
	char err[512];

	if (c->method == METHOD_OTHER)
		c->reply.code = GRPC_STATUS_UNIMPLEMENTED;
	if (c->method != METHOD_PROBE && c->method != METHOD_INFO)
		return;
	if (mock_reply_from_flags(&c->reply, s->cfg, h) < 0) {
		mock_reply_set_error(&c->reply, "csi-mock-driver: out of memory");
		return;
	}
	if (s->script &&
	    mock_script_answer(s->script, h, s->counts[c->method], seconds_since(s->started_at),
	                       &c->reply, err, sizeof(err)) < 0)
		LOG_E("Script error", "err", err);
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

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * m packed, then padded with one unknown length-delimited field (number 15,
 * tag byte 0x7a) to total bytes, or one more where the varint's width
 * makes total itself impossible: still a valid message, just too large.
 * A total smaller than the message leaves it unpadded.
 */
static grpc_slice pack_padded(const ProtobufCMessage *m, size_t total)
{
	size_t len = protobuf_c_message_get_packed_size(m), body = 0, width = 0, t, w;
	grpc_slice out;
	uint8_t *p;

	for (t = total; t <= total + 1 && !width; t++) {
		for (w = 1; w <= 10 && !width; w++) {
			if (t >= len + 1 + w && varint_len(t - len - 1 - w) == w) {
				width = w;
				body = t - len - 1 - w;
			}
		}
	}
	out = grpc_slice_malloc(width ? len + 1 + width + body : len);
	p = GRPC_SLICE_START_PTR(out);
	p += protobuf_c_message_pack(m, p);
	if (width) {
		*p++ = 0x7a;
		for (t = body; t >= 0x80; t >>= 7)
			*p++ = (uint8_t)(t | 0x80);
		*p++ = (uint8_t)t;
		memset(p, 0, body);
	}
	return out;
}

/*
 * The response message for a successful answer. ready: unset leaves the
 * field out (0 bytes); false sets it to a BoolValue whose value is the
 * proto3 default and so not sent, giving exactly 0a 00 (UPSTREAM.md §6).
 */
static grpc_slice response_bytes(const struct mock_call *c)
{
	/* Field 1, length 5, then 1 byte: truncated, so no message type parses it. */
	static const char invalid[] = "\x0a\x05\x08";
	const struct mock_reply *r = &c->reply;
	Csi__V1__BoolValue ready = CSI__V1__BOOL_VALUE__INIT;
	Csi__V1__ProbeResponse probe = CSI__V1__PROBE_RESPONSE__INIT;
	Csi__V1__GetPluginInfoResponse info = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;
	Csi__V1__GetPluginCapabilitiesResponse caps =
	        CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	const ProtobufCMessage *m = &caps.base;

	if (r->action == MOCK_ACTION_INVALID_RESPONSE)
		return grpc_slice_from_static_buffer(invalid, sizeof(invalid) - 1);
	if (c->method == METHOD_PROBE) {
		if (r->ready != MOCK_READY_UNSET) {
			ready.value = r->ready == MOCK_READY_TRUE;
			probe.ready = &ready;
		}
		m = &probe.base;
	} else if (c->method == METHOD_INFO) {
		info.name = r->name ? r->name : ""; /* pack only reads */
		info.vendor_version = r->vendor_version ? r->vendor_version : "";
		m = &info.base;
	}
	return pack_padded(m, r->action == MOCK_ACTION_OVERSIZED_RESPONSE ? r->size : 0);
}

/*
 * Shuts the call's connection down under it. Connections come from
 * grpc_server_add_channel_from_fd, whose peer name is "fd:N"; shutdown()
 * (not close: the fd stays gRPC's) makes both ends see the connection end,
 * and gRPC then closes it. Any other peer form would be a gRPC change: the
 * call is cancelled instead, so the client still sees UNAVAILABLE.
 */
static void close_connection(struct mock_call *c)
{
	char *peer = grpc_call_get_peer(c->call);
	int fd;

	if (peer && sscanf(peer, "fd:%d", &fd) == 1 && shutdown(fd, SHUT_RDWR) == 0) {
		gpr_free(peer);
		return;
	}
	gpr_free(peer);
	grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "connection closed", NULL);
}

/*
 * Carries out the reply's action, then (unless the action replaces it)
 * sends the final answer in one batch. Success: initial metadata, the
 * response message, status OK with the details. Error: initial metadata and
 * the status, no message; gRPC turns that pair into a Trailers-Only
 * response, as Go servers send. (A status op alone is never written out by
 * gRPC 1.51: the call then hangs.) The byte buffer and the details slice
 * stay in c until the batch completes.
 */
static void send_reply(struct mock_server *s, struct mock_call *c)
{
	const struct mock_reply *r = &c->reply;
	grpc_slice body;
	grpc_op ops[3];
	size_t n = 0;

	if (c->closed)
		return; /* cancelled or past its deadline: nobody to answer */
	switch (r->action) {
	case MOCK_ACTION_EXIT:
		fflush(s->out);
		_exit(r->exit_code); /* no cleanup, like a crash: the socket file stays */
	case MOCK_ACTION_REMOVE_SOCKET:
		mock_listener_remove_socket(s->listener);
		break;
	case MOCK_ACTION_STOP_ACCEPTING:
	case MOCK_ACTION_START_ACCEPTING:
		mock_listener_set_accepting(s->listener, r->action == MOCK_ACTION_START_ACCEPTING);
		break;
	case MOCK_ACTION_CLOSE_CONNECTION:
		close_connection(c);
		return;
	default:
		break;
	}
	grpc_slice_unref(c->status_details);
	if (c->method == METHOD_OTHER)
		c->status_details = unknown_method_details(c->details.method);
	else
		c->status_details = grpc_slice_from_copied_string(r->message ? r->message : "");

	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n++].data.send_initial_metadata.count = 0;
	if (r->code == GRPC_STATUS_OK) {
		body = response_bytes(c);
		c->response = grpc_raw_byte_buffer_create(&body, 1);
		grpc_slice_unref(body);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->response;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.trailing_metadata_count = 0;
	ops[n].data.send_status_from_server.status = (grpc_status_code)r->code;
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
	if (c->reply.hang)
		return;
	if (c->reply.delay_ns <= 0) {
		send_reply(s, c);
		return;
	}
	c->due = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                      gpr_time_from_nanos(c->reply.delay_ns, GPR_TIMESPAN));
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
	decide_reply(s, c);

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
 * Thread-safe: only the atomic flag, the listener (thread-safe) and two gRPC
 * server calls, which gRPC allows from any thread. Cancelling every call is what ends hanging and
 * parked calls, so that the shutdown tag can arrive at all.
 */
void mock_server_stop(struct mock_server *s)
{
	if (atomic_exchange(&s->stopping, true))
		return;
	if (s->listener)
		mock_listener_stop(s->listener); /* no new connections reach the server */
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
	grpc_server_cancel_all_calls(s->server);
}

/* ---- setup and teardown ----------------------------------------------------------------- */

/* Runs on the listener's thread: the connection becomes one of the server's. */
static void add_connection(int fd, void *arg)
{
	struct mock_server *s = arg;

	grpc_server_add_channel_from_fd(s->server, fd, s->creds);
}

struct mock_server *mock_server_new(const struct mock_config *cfg, struct mock_script *script,
                                    FILE *out, char *err, size_t errlen)
{
	struct mock_server *s = calloc(1, sizeof(*s));
	char why[200];

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = cfg;
	s->script = script;
	s->out = out;
	s->shutdown_tag = (struct mock_tag){TAG_SHUTDOWN, NULL};
	atomic_init(&s->stopping, false);

	grpc_log_enabled = cfg->verbose;
	gpr_set_log_function(route_grpc_log);
	if (cfg->verbose && !getenv("GRPC_VERBOSITY"))
		gpr_set_log_verbosity(GPR_LOG_SEVERITY_INFO);
	grpc_init();
	s->grpc_started = true;
	s->started_at = gpr_now(GPR_CLOCK_MONOTONIC);

	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->server = grpc_server_create(NULL, NULL);
	s->creds = grpc_insecure_server_credentials_create();
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	grpc_server_start(s->server);
	s->started = true;
	if (request_next_call(s) < 0) {
		snprintf(err, errlen, "cannot request the first call");
		goto fail;
	}
	s->listener = mock_listener_new(cfg->socket_path, add_connection, s, why, sizeof(why));
	if (!s->listener) {
		snprintf(err, errlen, "cannot listen on %s: %s", cfg->socket_path, why);
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

void mock_server_free(struct mock_server *s)
{
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
	mock_listener_free(s->listener); /* removes the socket file if it is still ours */
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
	if (s->creds)
		grpc_server_credentials_release(s->creds);
	if (s->grpc_started)
		grpc_shutdown_blocking();
	free(s);
}
