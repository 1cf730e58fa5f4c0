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
 *            at once so a call can always be accepted; the call is counted.
 *   batches  RECV_MESSAGE (the request: kept for the call log, else
 *            unread) and RECV_CLOSE_ON_SERVER (tells us when the call is
 *            over, also when the client cancels or its deadline passes)
 *            start right away.
 *   request  once it is in (as a server's handler would, so the call log
 *            has it even when the answer is to exit), the answer (struct
 *            mock_reply) is decided, by the flags or the script (whose hook
 *            sees the request), and the reply batch starts at once, at its
 *            due time counted from arrival, or never (hang).
 *   free     each batch in flight and the pending list hold one reference;
 *            when the last is dropped every batch has completed, so the
 *            call's --call-log line is written then, and the call freed.
 *
 * Methods are those of csi_methods.h, by path; any other path is "other" and
 * answered UNIMPLEMENTED, with no hook to ask.
 *
 * With --proxy-to (mock_proxy.h) the answer is to forward the call to the
 * backend unless a hook says otherwise; a forward holds a reference on its
 * call until it is over.
 */
#include "mock_server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "csi_methods.h"
#include "grpc_status.h"
#include "log.h"
#include "mock_listener.h"
#include "mock_proxy.h"
#include "mock_response.h"
#include "mock_tag.h"

/* The label of an unknown method in "call method=<label>" lines. */
#define OTHER_LABEL "other"

/* How long to keep polling after shutdown so gRPC can finish tearing down (see below). */
#define TEARDOWN_GRACE_MS 100

/* How a call ended for its client, as far as we know: the call log's "code". */
enum call_outcome {
	OUTCOME_NONE,      /* not answered: ended by the client, a deadline or shutdown */
	OUTCOME_ANSWERED,  /* the reply batch (with reply.code) started */
	OUTCOME_CLOSED,    /* the close_connection action: the client sees UNAVAILABLE */
	OUTCOME_FORWARDED, /* a forward ended: forwarded.code is what the client got */
};

struct mock_call {
	grpc_call *call; /* set by gRPC when the accept completes; ours to unref */
	grpc_call_details details;
	grpc_metadata_array request_md;
	grpc_byte_buffer *request;          /* RECV_MESSAGE result, for the call log */
	bool received;                      /* RECV_MESSAGE completed: request is ours to read */
	int cancelled;                      /* RECV_CLOSE_ON_SERVER result */
	bool closed;                        /* RECV_CLOSE_ON_SERVER completed: no reply any more */
	bool accepted;                      /* a client's call, to be logged when freed */
	const struct csi_method *method;    /* NULL: an unknown path */
	gpr_timespec arrived, arrived_wall; /* GPR_CLOCK_MONOTONIC, GPR_CLOCK_REALTIME */
	gpr_timespec ended;                 /* when RECV_CLOSE_ON_SERVER completed */
	enum call_outcome outcome;
	struct mock_reply reply;              /* decided once the request is in */
	struct mock_forward_result forwarded; /* OUTCOME_FORWARDED */
	struct mock_server *server;           /* for a forward's end (on_forwarded) */
	unsigned long number;                 /* its method's call number, from 1 */
	grpc_byte_buffer *response;           /* lives until the reply batch completes */
	grpc_slice status_details;            /* likewise */
	gpr_timespec due;                     /* reply time while pending */
	bool pending;                         /* in the server's pending list */
	struct mock_call *prev, *next;
	int refs; /* batches in flight + 1 while pending */
	struct mock_tag accept_tag, recv_tag, close_tag, reply_tag;
};

struct mock_server {
	const struct mock_config *cfg;
	struct mock_script *script; /* borrowed; NULL without --script */
	FILE *out;
	struct mock_call_log *log;    /* borrowed; NULL without --call-log */
	struct mock_backend *backend; /* --proxy-to; NULL: we answer calls ourselves */
	bool log_failed;              /* a write failed: said once, not per call */
	gpr_timespec started_at;      /* call.elapsed counts from here */
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
	unsigned long *counts; /* per csi_methods index, then one for unknown methods */
	char error[256];       /* internal error that made the server stop itself; "" if none */
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
	c->accept_tag = (struct mock_tag){.kind = TAG_ACCEPT, .call = c};
	c->recv_tag = (struct mock_tag){.kind = TAG_RECV, .call = c};
	c->close_tag = (struct mock_tag){.kind = TAG_CLOSE, .call = c};
	c->reply_tag = (struct mock_tag){.kind = TAG_REPLY, .call = c};
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

static double seconds_between(gpr_timespec from, gpr_timespec to)
{
	gpr_timespec d = gpr_time_sub(to, from);

	return (double)d.tv_sec + d.tv_nsec / 1e9;
}

/* The code c's client got, as the call log says it (mock_call_log.h). */
static int client_code(const struct mock_call *c)
{
	switch (c->outcome) {
	case OUTCOME_CLOSED:
		return GRPC_STATUS_UNAVAILABLE;
	case OUTCOME_FORWARDED:
		return c->forwarded.code;
	case OUTCOME_ANSWERED:
		if (!c->cancelled) /* the status went out before the call ended */
			return c->reply.code;
		break;
	case OUTCOME_NONE:
		break;
	}
	return GRPC_STATUS_CANCELLED; /* the client gave up (or shutdown came) before an answer */
}

/*
 * What the script did to a proxied call, for the call log (into buf); NULL
 * when it passed untouched.
 */
static const char *injected(const struct mock_call *c, char *buf, size_t len)
{
	const struct mock_reply *r = &c->reply;
	size_t n = 0;
	buf[0] = '\0';
	if (r->delay_ns > 0)
		n += (size_t)snprintf(buf + n, len - n, "delay %.3gs, ", (double)r->delay_ns / 1e9);
	if (n >= len)
		n = len - 1;
	if (r->hang)
		snprintf(buf + n, len - n, "hang");
	else if (r->action != MOCK_ACTION_NONE)
		snprintf(buf + n, len - n, "action %s", mock_action_name(r->action));
	else if (r->forward && r->replace)
		snprintf(buf + n, len - n, "status replaced with %s",
		         grpc_status_canonical_name(r->code));
	else if (!r->forward)
		snprintf(buf + n, len - n, "answered %s", grpc_status_canonical_name(r->code));
	else if (n >= 2)
		buf[n - 2] = '\0'; /* only delayed: "delay 0.5s" */
	return buf[0] ? buf : NULL;
}

/* Writes c's call log line (when there is a log), as the client saw it end: code at end. */
static void log_call(struct mock_server *s, const struct mock_call *c, int code, gpr_timespec end)
{
	grpc_slice request = grpc_empty_slice();
	grpc_byte_buffer_reader reader;
	char what[160];
	struct mock_call_record rec = {
	        .arrived = {.tv_sec = (time_t)c->arrived_wall.tv_sec,
	                    .tv_nsec = c->arrived_wall.tv_nsec},
	        .method = c->method ? c->method->name
	                            : (const char *)GRPC_SLICE_START_PTR(c->details.method),
	        .method_len =
	                c->method ? strlen(c->method->name) : GRPC_SLICE_LENGTH(c->details.method),
	        .request_type = c->method ? c->method->request : NULL,
	        .code = code,
	        .seconds = seconds_between(c->arrived, end),
	        .proxy = s->backend != NULL,
	        .backend_code = c->outcome == OUTCOME_FORWARDED ? c->forwarded.backend : -1,
	        .injected = s->backend ? injected(c, what, sizeof(what)) : NULL,
	};

	if (!s->log)
		return;
	if (rec.request_type && c->received && c->request &&
	    grpc_byte_buffer_reader_init(&reader, c->request)) {
		request = grpc_byte_buffer_reader_readall(&reader); /* decompressed, if it was */
		grpc_byte_buffer_reader_destroy(&reader);
		rec.request = GRPC_SLICE_START_PTR(request);
		rec.request_len = GRPC_SLICE_LENGTH(request);
		if (!rec.request)
			rec.request = (const uint8_t *)""; /* an empty message is still a request */
	}
	if (mock_call_log_write(s->log, &rec) < 0 && !s->log_failed) {
		s->log_failed = true;
		LOG_E("Cannot write the call log; later failures are not logged", "err",
		      strerror(errno));
	}
	grpc_slice_unref(request);
}

/* Drops a reference; the last one logs the call (every batch has completed) and frees it. */
static void call_unref(struct mock_server *s, struct mock_call *c)
{
	if (--c->refs > 0)
		return;
	if (c->accepted)
		log_call(s, c, client_code(c), c->closed ? c->ended : gpr_now(GPR_CLOCK_MONOTONIC));
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

static const struct csi_method *classify(grpc_slice path)
{
	return csi_method_by_path((const char *)GRPC_SLICE_START_PTR(path),
	                          GRPC_SLICE_LENGTH(path));
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
	return seconds_between(t, gpr_now(GPR_CLOCK_MONOTONIC));
}

/*
 * Decides c's answer: the flags', unless the script's hook overrides it.
 * Unknown methods are UNIMPLEMENTED (a proxy forwards them), with no hook
 * to ask.
 */
static void decide_reply(struct mock_server *s, struct mock_call *c, unsigned long n)
{
	char err[2048]; /* a script error can name every capability */

	if (!c->method && !s->backend) {
		c->reply.code = GRPC_STATUS_UNIMPLEMENTED;
		return;
	}
	if (mock_reply_from_flags(&c->reply, s->cfg, c->method) < 0) {
		mock_reply_set_error(&c->reply, "csi-mock-driver: out of memory");
		return;
	}
	if (!s->script || !c->method)
		return;
	/* The hook sees the request's fields (call.request): flattened for it. */
	grpc_slice bytes = grpc_empty_slice();
	struct mock_request req = {NULL, 0};
	grpc_byte_buffer_reader reader;
	if (c->received && c->request && grpc_byte_buffer_reader_init(&reader, c->request)) {
		bytes = grpc_byte_buffer_reader_readall(&reader);
		grpc_byte_buffer_reader_destroy(&reader);
		req.bytes = GRPC_SLICE_START_PTR(bytes);
		req.len = GRPC_SLICE_LENGTH(bytes);
		if (!req.bytes)
			req.bytes = (const uint8_t *)""; /* an empty message is still a request */
	}
	if (mock_script_answer(s->script, c->method, n, seconds_since(s->started_at), &req,
	                       &c->reply, err, sizeof(err)) < 0)
		LOG_E("Script error", "err", err);
	grpc_slice_unref(bytes);
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

static void on_forwarded(const struct mock_forward_result *r, void *arg);
static void send_reply(struct mock_server *s, struct mock_call *c);

/*
 * Passes c to the backend (mock_proxy.h), its answer's code and message
 * replacing the backend's status when the hook asked so. Unless it cannot
 * start: then the client gets INTERNAL at once.
 */
static void forward(struct mock_server *s, struct mock_call *c)
{
	struct mock_forward_opts opts = {
	        .replace = c->reply.replace, .code = c->reply.code, .message = c->reply.message};
	c->refs++; /* the forward's, dropped in on_forwarded */
	c->outcome = OUTCOME_FORWARDED;
	c->forwarded.code = GRPC_STATUS_CANCELLED;
	if (mock_forward_start(s->backend, s->cq, c->call, &c->details, &c->request_md,
	                       c->received ? c->request : NULL, &opts, on_forwarded, c))
		return;
	c->refs--;
	c->outcome = OUTCOME_NONE;
	c->reply.forward = false;
	mock_reply_set_error(&c->reply, "csi-mock-driver: cannot forward the call: out of memory");
	send_reply(s, c);
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
	if (r->forward && s->backend && r->action == MOCK_ACTION_NONE) {
		forward(s, c);
		return;
	}
	switch (r->action) {
	case MOCK_ACTION_EXIT:
		/* The connection dies with us: the client sees UNAVAILABLE. */
		log_call(s, c, GRPC_STATUS_UNAVAILABLE, gpr_now(GPR_CLOCK_MONOTONIC));
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
		c->outcome = OUTCOME_CLOSED;
		close_connection(c);
		return;
	default:
		break;
	}
	grpc_slice_unref(c->status_details);
	if (!c->method)
		c->status_details = unknown_method_details(c->details.method);
	else
		c->status_details = grpc_slice_from_copied_string(r->message ? r->message : "");

	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n++].data.send_initial_metadata.count = 0;
	if (r->code == GRPC_STATUS_OK) {
		body = mock_response_bytes(c->method, r);
		c->response = grpc_raw_byte_buffer_create(&body, 1);
		grpc_slice_unref(body);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->response;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.trailing_metadata_count = 0;
	ops[n].data.send_status_from_server.status = (grpc_status_code)r->code;
	ops[n++].data.send_status_from_server.status_details = &c->status_details;
	if (call_start_batch(c, ops, n, &c->reply_tag) == 0)
		c->outcome = OUTCOME_ANSWERED;
}

/* Sends every parked reply whose time has come. */
static void fire_due(struct mock_server *s)
{
	gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);

	while (s->pending_head && gpr_time_cmp(s->pending_head->due, now) <= 0) {
		struct mock_call *c = s->pending_head;

		pending_remove(s, c);
		send_reply(s, c);
		call_unref(s, c);
	}
}

/*
 * Answer now, park until the delay (counted from arrival) has passed, or
 * (hang) leave it to the client.
 */
static void schedule_reply(struct mock_server *s, struct mock_call *c)
{
	if (c->reply.hang)
		return;
	c->due = gpr_time_add(c->arrived, gpr_time_from_nanos(c->reply.delay_ns, GPR_TIMESPAN));
	if (gpr_time_cmp(c->due, gpr_now(GPR_CLOCK_MONOTONIC)) <= 0) {
		send_reply(s, c);
		return;
	}
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

/* Counts the call of method m (NULL: unknown) and prints its line; returns its number. */
static unsigned long print_call_line(struct mock_server *s, const struct csi_method *m)
{
	size_t i = m ? mock_method_index(m) : csi_method_count();

	s->counts[i]++;
	if (!s->cfg->quiet) {
		fprintf(s->out, "call method=%s n=%lu\n", m ? m->name : OTHER_LABEL, s->counts[i]);
		fflush(s->out);
	}
	return s->counts[i];
}

/* A call arrived (ok) or the request was dropped because of shutdown (!ok). */
static void on_accept(struct mock_server *s, struct mock_call *c, int ok)
{
	grpc_op op;
	bool reading;

	if (!ok) {
		call_free(c);
		return;
	}
	if (request_next_call(s) < 0)
		fail_internal(s, "cannot request the next call");

	c->accepted = true;
	c->arrived = gpr_now(GPR_CLOCK_MONOTONIC);
	c->arrived_wall = gpr_now(GPR_CLOCK_REALTIME);
	c->server = s;
	c->method = classify(c->details.method);
	c->number = print_call_line(s, c->method);

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->request;
	reading = call_start_batch(c, &op, 1, &c->recv_tag) == 0;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	if (call_start_batch(c, &op, 1, &c->close_tag) < 0) {
		c->closed = true; /* no close will come: do not leave it hanging */
		c->ended = gpr_now(GPR_CLOCK_MONOTONIC);
	}

	if (atomic_load(&s->stopping))
		grpc_call_cancel(c->call, NULL); /* raced with stop: do not outlive it */
	else if (!reading) {
		decide_reply(s, c, c->number);
		schedule_reply(s, c); /* no request will come in: answer without it */
	}
	if (c->refs == 0) { /* no batch started: no completion will free it */
		c->refs = 1;
		call_unref(s, c);
	}
}

/* The request is in (or never will be: the client went): time to answer. */
static void on_request(struct mock_server *s, struct mock_call *c)
{
	c->received = true;
	decide_reply(s, c, c->number); /* once the request is in: the hook sees it */
	if (!c->closed && !atomic_load(&s->stopping))
		schedule_reply(s, c);
	call_unref(s, c);
}

/* c's forward is over: what its client got is kept for the call log. */
static void on_forwarded(const struct mock_forward_result *r, void *arg)
{
	struct mock_call *c = arg;
	c->forwarded = *r;
	call_unref(c->server, c);
}

/* The call is over: answered, cancelled, or past its deadline. */
static void on_close(struct mock_server *s, struct mock_call *c)
{
	c->closed = true;
	c->ended = gpr_now(GPR_CLOCK_MONOTONIC);
	if (c->pending) {
		/* The pending list's reference; the close batch still holds one. */
		pending_remove(s, c);
		c->refs--;
	}
	call_unref(s, c);
}

static void dispatch(struct mock_server *s, struct mock_tag *tag, int ok)
{
	switch (tag->kind) {
	case TAG_ACCEPT:
		on_accept(s, tag->call, ok);
		break;
	case TAG_RECV:
		on_request(s, tag->call);
		break;
	case TAG_REPLY:
		call_unref(s, tag->call);
		break;
	case TAG_CLOSE:
		on_close(s, tag->call);
		break;
	case TAG_SHUTDOWN:
		s->shutdown_done = true;
		break;
	case TAG_FORWARD:
		mock_forward_event(tag, ok, atomic_load(&s->stopping));
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
                                    struct mock_call_log *log, FILE *out, char *err, size_t errlen)
{
	struct mock_server *s = calloc(1, sizeof(*s));
	char why[200];

	if (s)
		s->counts = calloc(csi_method_count() + 1, sizeof(*s->counts));
	if (!s || !s->counts) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = cfg;
	s->script = script;
	s->log = log;
	s->out = out;
	s->shutdown_tag = (struct mock_tag){.kind = TAG_SHUTDOWN};
	atomic_init(&s->stopping, false);

	grpc_log_enabled = cfg->verbose;
	gpr_set_log_function(route_grpc_log);
	if (cfg->verbose && !getenv("GRPC_VERBOSITY"))
		gpr_set_log_verbosity(GPR_LOG_SEVERITY_INFO);
	grpc_init();
	s->grpc_started = true;
	s->started_at = gpr_now(GPR_CLOCK_MONOTONIC);

	s->cq = grpc_completion_queue_create_for_next(NULL);
	if (cfg->proxy_to) {
		s->backend = mock_backend_new(cfg->proxy_to, why, sizeof(why));
		if (!s->backend) {
			snprintf(err, errlen, "cannot proxy to %s: %s", cfg->proxy_to, why);
			goto fail;
		}
	}
	/* A proxy takes requests of any size: the backend's limit applies, not ours. */
	grpc_arg unlimited = {.type = GRPC_ARG_INTEGER,
	                      .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	                      .value.integer = -1};
	grpc_channel_args server_args = {.num_args = 1, .args = &unlimited};
	s->server = grpc_server_create(s->backend ? &server_args : NULL, NULL);
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
	mock_backend_free(s->backend); /* every forward ended with the queue's drain */
	if (s->grpc_started)
		grpc_shutdown_blocking();
	free(s->counts);
	free(s);
}
