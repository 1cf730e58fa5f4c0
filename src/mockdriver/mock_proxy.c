/*
 * Forwarding calls to the backend (mock_proxy.h).
 *
 * A forward's batches, each with its own tag (step), on the server's queue:
 *
 *   UP_SEND     backend call: initial metadata (the client's), the message
 *               in hand; then the next client message is read (UP_RECV),
 *               sent (UP_SEND) ... until the client half-closes, which is
 *               passed on (UP_CLOSE).
 *   DOWN_RECV   backend call: a message (the first one with the backend's
 *               initial metadata); each goes down to the client (DOWN_SEND,
 *               with our initial metadata the first time), then the next is
 *               read, until there are no more.
 *   STATUS      backend call: its status and trailers; sent down
 *               (STATUS_SEND) once every message has gone down.
 *
 * At most one message is in flight each way, as gRPC requires. Each batch
 * holds the forward; when the last completes, done is called and the
 * forward freed. A failed batch stops its direction: a failed send up (the
 * backend went) stops the pump up, yet its status still goes down; a failed
 * receive from the client or send to it (the client went) stops both. The
 * rest complete as gRPC ends the calls (cancelling the client's cancels the
 * backend's, its child). While the server stops, nothing new starts.
 */
#include "mock_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "csi_address.h"
#include "log.h"

enum step { UP_SEND, UP_RECV, UP_CLOSE, DOWN_RECV, DOWN_SEND, STATUS, STATUS_SEND, STEPS };

struct mock_backend {
	struct csi_address address;
	grpc_channel *channel;
	/* The socket file the channel dials (ino 0: unknown), as the sidecar keeps it (csi.c). */
	dev_t dev;
	ino_t ino;
	struct timespec ctime;
};

struct mock_forward {
	struct mock_backend *backend;
	grpc_call *server; /* the client's call (borrowed: the caller keeps it until done) */
	grpc_call *client; /* ours, to the backend */
	grpc_completion_queue *cq;
	struct mock_forward_opts opts;
	char *replace_message;

	grpc_metadata *up_md; /* the client's metadata, as sent up (slices borrowed) */
	size_t up_md_count;
	grpc_byte_buffer *up_msg;   /* a client message on its way up */
	grpc_byte_buffer *down_msg; /* a backend message on its way down */
	grpc_byte_buffer *empty;    /* an OK replacement's message when the backend sent none */
	unsigned down_sent;         /* messages sent down */
	grpc_metadata_array down_initial_md, down_trailing_md;
	grpc_status_code status;
	grpc_slice details;
	grpc_slice sent_details; /* what STATUS_SEND sends (lives until it completes) */

	bool initial_sent; /* our initial metadata went down */
	bool down_done;    /* the backend sent its last message */
	bool down_busy;    /* a DOWN_SEND is in flight */
	bool status_in;    /* STATUS completed */
	bool status_sent;  /* STATUS_SEND started */
	bool up_stopped;   /* nothing more goes up (the backend call failed, or the client went) */
	bool down_stopped; /* nothing more goes down (the client went, or the server stops) */
	int pending;       /* batches in flight */

	struct mock_forward_result result;
	mock_forward_done done;
	void *done_arg;
	struct mock_tag tags[STEPS];
};

const char *mock_backend_display(const struct mock_backend *b)
{
	return b->address.display;
}

/* ---- the backend's channel -------------------------------------------------------------- */

static void channel_open(struct mock_backend *b)
{
	grpc_arg args[] = {
	        /* Back within a second of its return (GRPC-NOTES.md), as the sidecar. */
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
	         .value.integer = 100},
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
	         .value.integer = 1000},
	        /*
	         * Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC 1.51 also takes it as
	         * the connect timeout, and at 100 ms a backend slow to finish its
	         * handshake (stopped for a moment, or loaded) failed our calls,
	         * which do not wait for a connection, with UNAVAILABLE.
	         */
	        /* One call up per call down: gRPC must not retry on its own. */
	        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
	        /* No size limit of ours: the backend's and the client's apply. */
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	         .value.integer = -1},
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
	         .value.integer = -1},
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
	         .value.integer = 1},
	};
	grpc_channel_args chargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	b->channel = grpc_channel_create(b->address.target, creds, &chargs);
	grpc_channel_credentials_release(creds);
}

struct mock_backend *mock_backend_new(const char *address, char *err, size_t errlen)
{
	struct mock_backend *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	enum csi_address_kind k = csi_address_parse(address, &b->address, err, errlen);
	if (k == CSI_ADDRESS_INVALID || k == CSI_ADDRESS_NEVER) {
		if (k == CSI_ADDRESS_NEVER)
			snprintf(err, errlen, "an empty address");
		free(b);
		return NULL;
	}
	channel_open(b);
	return b;
}

void mock_backend_free(struct mock_backend *b)
{
	if (!b)
		return;
	if (b->channel)
		grpc_channel_destroy(b->channel);
	free(b);
}

/*
 * The channel to use now, or NULL when the backend's socket file is
 * missing. A replaced file (the backend restarted: a new inode, or a new
 * change time) gets a new channel at once; calls on the old one finish on it.
 */
static grpc_channel *backend_channel(struct mock_backend *b)
{
	struct stat st;
	if (b->address.kind != CSI_ADDRESS_UNIX)
		return b->channel;
	if (stat(b->address.path, &st) < 0)
		return NULL;
	if (b->ino != 0 &&
	    (st.st_ino != b->ino || st.st_dev != b->dev || st.st_ctim.tv_sec != b->ctime.tv_sec ||
	     st.st_ctim.tv_nsec != b->ctime.tv_nsec)) {
		LOG_INFO_V(2, "Backend socket replaced, reconnecting", "backend",
		           b->address.display);
		grpc_channel_destroy(b->channel);
		channel_open(b);
	}
	b->dev = st.st_dev;
	b->ino = st.st_ino;
	b->ctime = st.st_ctim;
	/* Connect now if idle, and skip the backoff if it is failing: it may be back. */
	if (grpc_channel_check_connectivity_state(b->channel, 1) != GRPC_CHANNEL_READY)
		grpc_channel_reset_connect_backoff(b->channel);
	return b->channel;
}

/* ---- one forward ------------------------------------------------------------------------ */

static void forward_free(struct mock_forward *f)
{
	if (f->client)
		grpc_call_unref(f->client);
	if (f->up_msg)
		grpc_byte_buffer_destroy(f->up_msg);
	if (f->down_msg)
		grpc_byte_buffer_destroy(f->down_msg);
	if (f->empty)
		grpc_byte_buffer_destroy(f->empty);
	grpc_metadata_array_destroy(&f->down_initial_md);
	grpc_metadata_array_destroy(&f->down_trailing_md);
	grpc_slice_unref(f->details);
	grpc_slice_unref(f->sent_details);
	free(f->up_md);
	free(f->replace_message);
	free(f);
}

/* Starts a batch of n ops on call for step; false (and the forward failed) when gRPC refuses. */
static bool start(struct mock_forward *f, grpc_call *call, const grpc_op *ops, size_t n,
                  enum step step)
{
	grpc_call_error rc = grpc_call_start_batch(call, ops, n, &f->tags[step], NULL);
	if (rc != GRPC_CALL_OK) {
		LOG_E("Cannot start a forwarding batch", "err", grpc_call_error_to_string(rc));
		f->up_stopped = f->down_stopped = true;
		grpc_call_cancel(f->server, NULL);
		if (f->client)
			grpc_call_cancel(f->client, NULL);
		return false;
	}
	f->pending++;
	return true;
}

/* Reads the client's next message (UP_RECV). */
static void read_up(struct mock_forward *f)
{
	grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
	op.data.recv_message.recv_message = &f->up_msg;
	start(f, f->server, &op, 1, UP_RECV);
}

/* Reads the backend's next message (DOWN_RECV), with its initial metadata the first time. */
static void read_down(struct mock_forward *f, bool first)
{
	grpc_op ops[2];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	if (first) {
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n++].data.recv_initial_metadata.recv_initial_metadata = &f->down_initial_md;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &f->down_msg;
	start(f, f->client, ops, n, DOWN_RECV);
}

/* Our initial metadata, the backend's, as the first op of a batch down (if not sent yet). */
static size_t initial_op(struct mock_forward *f, grpc_op *op)
{
	if (f->initial_sent)
		return 0;
	f->initial_sent = true;
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op->data.send_initial_metadata.count = f->down_initial_md.count;
	op->data.send_initial_metadata.metadata = f->down_initial_md.metadata;
	return 1;
}

/* Whether the status would be a transport's, not the backend's own: the channel is not up. */
static bool backend_gone(const struct mock_forward *f)
{
	return f->status == GRPC_STATUS_UNAVAILABLE &&
	       grpc_channel_check_connectivity_state(f->backend->channel, 0) != GRPC_CHANNEL_READY;
}

/* Sends the status down once it is in and every message has gone (STATUS_SEND). */
static void maybe_send_status(struct mock_forward *f)
{
	if (f->status_sent || f->down_stopped || !f->status_in || !f->down_done || f->down_busy)
		return;
	grpc_op ops[3];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	n += initial_op(f, &ops[n]);
	int code = f->opts.replace ? f->opts.code : (int)f->status;
	if (f->opts.replace && code == GRPC_STATUS_OK && f->down_sent == 0) {
		/*
		 * OK in place of a failure: a unary client needs a message with it.
		 * An empty one is every field at its default, which any CSI reply reads.
		 */
		grpc_slice none = grpc_empty_slice();
		f->empty = grpc_raw_byte_buffer_create(&none, 1);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = f->empty;
	}
	if (f->opts.replace) {
		f->sent_details =
		        grpc_slice_from_copied_string(f->replace_message ? f->replace_message : "");
	} else if (backend_gone(f)) {
		/* Details over 16 KiB (gRPC refuses such metadata anyway) are cut. */
		char text[4200 + 16384];
		snprintf(text, sizeof(text), "csi-mock-driver: backend %s is unavailable: %.*s",
		         f->backend->address.display, (int)GRPC_SLICE_LENGTH(f->details),
		         (const char *)GRPC_SLICE_START_PTR(f->details));
		f->sent_details = grpc_slice_from_copied_string(text);
	} else {
		f->sent_details = grpc_slice_ref(f->details);
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	ops[n].data.send_status_from_server.status_details = &f->sent_details;
	ops[n].data.send_status_from_server.trailing_metadata_count = f->down_trailing_md.count;
	ops[n++].data.send_status_from_server.trailing_metadata = f->down_trailing_md.metadata;
	f->status_sent = true;
	f->result.code = code;
	start(f, f->server, ops, n, STATUS_SEND);
}

static void on_down_message(struct mock_forward *f, bool ok)
{
	if (!ok || !f->down_msg) {
		f->down_done = true; /* no more (or the backend call ended) */
		maybe_send_status(f);
		return;
	}
	if (f->opts.replace && f->opts.code != GRPC_STATUS_OK) {
		/* Replaced by an error: the backend's messages are not the client's to see. */
		grpc_byte_buffer_destroy(f->down_msg);
		f->down_msg = NULL;
		read_down(f, false);
		return;
	}
	grpc_op ops[2];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	n += initial_op(f, &ops[n]);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = f->down_msg;
	f->down_busy = start(f, f->server, ops, n, DOWN_SEND);
	f->down_sent += f->down_busy;
}

static void on_event(struct mock_forward *f, enum step step, bool ok, bool stopping)
{
	if (stopping) /* the queue is draining: nothing new may start on it */
		f->up_stopped = f->down_stopped = true;
	switch (step) {
	case UP_SEND:
		/* The message went up (or never will): freed before the next read reuses up_msg. */
		if (f->up_msg) {
			grpc_byte_buffer_destroy(f->up_msg);
			f->up_msg = NULL;
		}
		if (!ok)
			f->up_stopped = true; /* the backend call ended: its status will tell */
		if (!f->up_stopped)
			read_up(f);
		break;
	case UP_RECV:
		if (!ok) /* the client's call ended */
			f->up_stopped = f->down_stopped = true;
		if (f->up_stopped)
			break;
		if (f->up_msg) {
			grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
			op.data.send_message.send_message = f->up_msg;
			start(f, f->client, &op, 1, UP_SEND);
		} else {
			grpc_op op = {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT};
			start(f, f->client, &op, 1, UP_CLOSE);
		}
		break;
	case UP_CLOSE:
		break;
	case DOWN_RECV:
		if (f->down_stopped) {
			if (f->down_msg) {
				grpc_byte_buffer_destroy(f->down_msg);
				f->down_msg = NULL;
			}
			break;
		}
		on_down_message(f, ok);
		break;
	case DOWN_SEND:
		f->down_busy = false;
		grpc_byte_buffer_destroy(f->down_msg);
		f->down_msg = NULL;
		if (!ok) /* the client's call ended */
			f->up_stopped = f->down_stopped = true;
		if (!f->down_stopped)
			read_down(f, false);
		break;
	case STATUS:
		f->status_in = true;
		/* A transport's UNAVAILABLE is no answer of the backend's: it was never reached. */
		f->result.backend = backend_gone(f) ? -1 : (int)f->status;
		maybe_send_status(f);
		break;
	case STATUS_SEND:
	case STEPS:
		break;
	}
}

void mock_forward_event(struct mock_tag *tag, bool ok, bool stopping)
{
	struct mock_forward *f = tag->forward;
	f->pending--;
	on_event(f, (enum step)tag->step, ok, stopping);
	if (f->pending > 0)
		return;
	if (!f->status_sent)
		f->result.code =
		        GRPC_STATUS_CANCELLED; /* nothing went down: the client went first */
	f->done(&f->result, f->done_arg);
	forward_free(f);
}

/*
 * The client's metadata, for the backend. gRPC's own headers never appear in
 * a server's request metadata; a key gRPC would refuse on a client (a
 * reserved "grpc-" one) is left out rather than fail the call.
 */
static bool copy_metadata(struct mock_forward *f, const grpc_metadata_array *md)
{
	f->up_md = calloc(md->count ? md->count : 1, sizeof(*f->up_md));
	if (!f->up_md)
		return false;
	for (size_t i = 0; i < md->count; i++) {
		const grpc_slice *key = &md->metadata[i].key;
		if (GRPC_SLICE_LENGTH(*key) >= 5 &&
		    memcmp(GRPC_SLICE_START_PTR(*key), "grpc-", 5) == 0)
			continue;
		f->up_md[f->up_md_count++] = md->metadata[i];
	}
	return true;
}

struct mock_forward *mock_forward_start(struct mock_backend *b, grpc_completion_queue *cq,
                                        grpc_call *call, const grpc_call_details *details,
                                        const grpc_metadata_array *request_md,
                                        grpc_byte_buffer *first,
                                        const struct mock_forward_opts *opts,
                                        mock_forward_done done, void *arg)
{
	struct mock_forward *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->backend = b;
	f->server = call;
	f->cq = cq;
	f->opts = *opts;
	f->done = done;
	f->done_arg = arg;
	f->details = grpc_empty_slice();
	f->sent_details = grpc_empty_slice();
	f->result.backend = -1;
	f->result.replaced = opts->replace;
	grpc_metadata_array_init(&f->down_initial_md);
	grpc_metadata_array_init(&f->down_trailing_md);
	for (int i = 0; i < STEPS; i++)
		f->tags[i] = (struct mock_tag){.kind = TAG_FORWARD, .forward = f, .step = i};
	if ((opts->message && !(f->replace_message = strdup(opts->message))) ||
	    !copy_metadata(f, request_md)) {
		forward_free(f);
		return NULL;
	}
	f->opts.message = NULL; /* replace_message holds it */

	grpc_channel *ch = backend_channel(b);
	if (!ch) {
		/* No socket file: a dead driver. Answered at once, naming the backend. */
		char text[4400];
		snprintf(text, sizeof(text),
		         "csi-mock-driver: backend %s is unavailable: its socket file is missing",
		         b->address.display);
		f->details = grpc_slice_from_copied_string(text);
		f->status = GRPC_STATUS_UNAVAILABLE;
		f->status_in = f->down_done = true;
		f->result.refused = true;
		f->opts.replace = false; /* nothing came back to replace */
		f->result.replaced = false;
		f->sent_details = grpc_slice_ref(f->details);
		grpc_op ops[2];
		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		ops[1].data.send_status_from_server.status = GRPC_STATUS_UNAVAILABLE;
		ops[1].data.send_status_from_server.status_details = &f->sent_details;
		f->initial_sent = f->status_sent = true;
		f->result.code = GRPC_STATUS_UNAVAILABLE;
		if (!start(f, f->server, ops, 2, STATUS_SEND)) {
			forward_free(f);
			return NULL;
		}
		return f;
	}
	/* A child of the client's call: its deadline and cancellation carry over. */
	f->client = grpc_channel_create_call(ch, call, GRPC_PROPAGATE_DEFAULTS, cq, details->method,
	                                     NULL, details->deadline, NULL);
	if (!f->client) {
		forward_free(f);
		return NULL;
	}
	grpc_op up[3];
	size_t n = 0;
	memset(up, 0, sizeof(up));
	up[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	up[n].data.send_initial_metadata.count = f->up_md_count;
	up[n++].data.send_initial_metadata.metadata = f->up_md;
	if (first) {
		up[n].op = GRPC_OP_SEND_MESSAGE;
		up[n++].data.send_message.send_message = first;
	}
	grpc_op status = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
	status.data.recv_status_on_client.trailing_metadata = &f->down_trailing_md;
	status.data.recv_status_on_client.status = &f->status;
	status.data.recv_status_on_client.status_details = &f->details;
	if (!start(f, f->client, up, n, UP_SEND)) {
		forward_free(f);
		return NULL;
	}
	if (start(f, f->client, &status, 1, STATUS))
		read_down(f, true);
	return f;
}
