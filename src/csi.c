/*
 * One long-lived gRPC channel to the CSI driver (DESIGN.md "Where we differ
 * from upstream"), driven from the libevent loop: completions arrive on the
 * loop thread through grpc_loop, so all state below is touched by the loop
 * thread only, and no lock is needed. A channel that must be replaced is
 * retired to grpc_loop's reaper, never destroyed here: that can block.
 */
#include "csi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "clock.h"
#include "csi.pb-c.h"
#include "csi_methods.h"
#include "grpc_loop.h"
#include "grpc_status.h"
#include "log.h"
#include "metrics.h"
#include "utf8.h"

#define METHOD_INFO "/csi.v1.Identity/GetPluginInfo"
/* A deadline status this close to our deadline is ours, not the driver's. */
#define OWN_DEADLINE_SLACK_NS 20000000LL
/* Start-up waits forever; this is only how often it says so. */
#define STILL_WAITING_INTERVAL_S 10
/*
 * The largest reply a read-only call may have. Theirs are a few hundred
 * bytes; a hostile one of gRPC's 4 MiB could unpack into millions of
 * messages (two bytes each on the wire), here and again in the worker.
 */
#define CALL_REPLY_MAX (64 * 1024)
/* Deadlines further away than this (100 years) are none. */
#define NEVER_NS (100LL * 365 * 24 * 3600 * 1000000000)

enum op_kind { OP_REQUEST, OP_INFO };

/* One RPC in flight; freed by the loop once its completion arrives. */
struct csi_call {
	struct csi *csi;
	enum op_kind kind;
	grpc_call *call;
	grpc_metadata_array initial_md;
	grpc_metadata_array trailing_md;
	grpc_byte_buffer *send_buf;
	grpc_byte_buffer *recv_buf;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
	int64_t start_ns;
	int64_t deadline_ns;
	bool retried;                /* already re-sent once after the connection broke under it */
	struct csi_request *request; /* OP_REQUEST: whose call this is */
};

/* A Probe or read-only call asked for (csi.h); freed once answered or cancelled. */
struct csi_request {
	struct csi *csi;
	const struct csi_method *method;
	csi_result_cb cb;
	void *arg;
	struct csi_call *call; /* its RPC in flight, or NULL */
	struct event *missing; /* without an RPC: answers unreachable at the deadline */
	int64_t start_ns;
	bool cancelled; /* the RPC's completion is to be dropped */
	struct csi_request *next;
};

struct csi {
	struct event_base *base;
	struct metrics *metrics;
	char *driver_name, *driver_vendor; /* NULL until GetPluginInfo succeeded */
	struct csi_driver driver;          /* what csi_driver() hands out */

	struct grpc_loop *grpc;
	grpc_channel *channel;
	/*
	 * Identity of the socket file the channel dials (ino 0 = unknown). The
	 * change time is part of it: a restarted driver's new socket can get
	 * the inode number its old one had.
	 */
	dev_t socket_dev;
	ino_t socket_ino;
	struct timespec socket_ctime;

	struct csi_call *info_call; /* start-up's GetPluginInfo in flight */
	csi_info_cb info_cb;
	void *info_arg;
	struct csi_request *requests; /* asked for and not yet answered */
	/* Start-up's "Still connecting" reminder. */
	struct event *still_timer;

	/*
	 * Where a finished call's outcome is built and handed to its callback.
	 * Not on the stack: these are 33 and 48 kB, and the compiler's stack
	 * clash protection writes every page of a frame, so each would stay
	 * resident in the main thread's stack. Here only the bytes written are
	 * (csi_result_reset). Callbacks run one at a time on the loop thread and
	 * none waits for another call, so one of each is enough.
	 */
	struct csi_result *answer;
	struct info_space *info; /* GetPluginInfo's, from csi_start until it is answered */

	/*
	 * The address's texts, copied: a struct csi_address is 12.5 kB of room
	 * whose three texts, a page apart, would keep four pages resident.
	 */
	struct {
		enum csi_address_kind kind;
		char *target, *path, *display;
	} address;
};

/*
 * csi->info and the status text it is built from: 64 kB, allocated by
 * csi_start and freed once GetPluginInfo is answered.
 */
struct info_space {
	struct csi_plugin_info info;
	char message[CSI_TEXT_MAX];
};

/* gRPC's clock has its own epoch: convert through a relative span. */
static gpr_timespec grpc_deadline(int64_t deadline_ns)
{
	int64_t left = clock_left(deadline_ns);
	/* A deadline a century away (a saturated one) is no deadline. */
	if (left >= NEVER_NS)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(left, GPR_TIMESPAN));
}

static int stat_socket(const struct csi *csi, struct stat *st)
{
	return stat(csi->address.path, st);
}

/* Records which socket file the channel dials now. */
static void remember_socket(struct csi *csi, const struct stat *st)
{
	csi->socket_dev = st->st_dev;
	csi->socket_ino = st->st_ino;
	csi->socket_ctime = st->st_ctim;
}

static int channel_open(struct csi *csi, char *errbuf, size_t errlen)
{
	if (csi->address.kind == CSI_ADDRESS_NEVER)
		return 0;
	/*
	 * Reconnect backoff bounded to 100 ms … 1 s (GRPC-NOTES.md): a restarted
	 * driver is found again within a second, and a dead one costs one
	 * attempt a second, with no growth.
	 */
	grpc_arg args[] = {
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
	         .value.integer = 100},
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
	         .value.integer = 100},
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
	         .value.integer = 1000},
	        /* No retries inside gRPC: one Probe is one RPC, as upstream. */
	        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
	        /*
	         * Subchannels of this channel only: from gRPC's process-wide pool a
	         * new channel would share the old one's connection, and the retry
	         * on a fresh channel (broken_under_call) could meet the dying
	         * transport again ("Broken pipe").
	         */
	        {.type = GRPC_ARG_INTEGER,
	         .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
	         .value.integer = 1},
	};
	grpc_channel_args chargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	csi->channel = grpc_channel_create(csi->address.target, creds, &chargs);
	grpc_channel_credentials_release(creds);
	if (!csi->channel) {
		snprintf(errbuf, errlen, "cannot create a gRPC channel to %s",
		         csi->address.display);
		return -1;
	}
	struct stat st;
	csi->socket_dev = 0;
	csi->socket_ino = 0;
	if (csi->address.kind == CSI_ADDRESS_UNIX && stat_socket(csi, &st) == 0)
		remember_socket(csi, &st);
	return 0;
}

/* The channel is retired, not destroyed here: grpc_channel_destroy can block (grpc_loop.h). */
static void channel_close(struct csi *csi)
{
	grpc_loop_retire_channel(csi->grpc, csi->channel);
	csi->channel = NULL;
}

static void call_free(struct csi_call *c)
{
	if (!c)
		return;
	if (c->call)
		grpc_call_unref(c->call);
	grpc_metadata_array_destroy(&c->initial_md);
	grpc_metadata_array_destroy(&c->trailing_md);
	if (c->send_buf)
		grpc_byte_buffer_destroy(c->send_buf);
	if (c->recv_buf)
		grpc_byte_buffer_destroy(c->recv_buf);
	grpc_slice_unref(c->details);
	gpr_free((void *)c->error_string);
	free(c);
}

/*
 * Starts one unary call. Its request is an empty message: every request
 * made here (Probe, GetPluginInfo, the read-only calls) has no fields.
 * Waits for the channel to be ready (wait-for-ready), so an unreachable
 * driver yields DEADLINE_EXCEEDED at the deadline, as upstream answers it.
 */
static struct csi_call *call_start(struct csi *csi, enum op_kind kind, const char *method,
                                   int64_t deadline_ns, bool retry)
{
	struct csi_call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->csi = csi;
	c->kind = kind;
	c->details = grpc_empty_slice();
	grpc_metadata_array_init(&c->initial_md);
	grpc_metadata_array_init(&c->trailing_md);
	c->start_ns = clock_now_ns();
	c->deadline_ns = deadline_ns;
	c->retried = retry;
	/*
	 * Ask the channel to connect now if it is idle, and not to wait for its
	 * backoff if it is failing: the call waits for the connection.
	 */
	if (grpc_channel_check_connectivity_state(csi->channel, 1) != GRPC_CHANNEL_READY)
		grpc_channel_reset_connect_backoff(csi->channel);

	grpc_slice empty = grpc_empty_slice();
	c->send_buf = grpc_raw_byte_buffer_create(&empty, 1);

	grpc_slice method_slice = grpc_slice_from_static_string(method);
	c->call = grpc_channel_create_call(csi->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
	                                   grpc_loop_queue(csi->grpc), method_slice, NULL,
	                                   grpc_deadline(deadline_ns), NULL);
	if (!c->call)
		goto err;

	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = c->send_buf;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &c->recv_buf;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
	ops[5].data.recv_status_on_client.status = &c->status;
	ops[5].data.recv_status_on_client.status_details = &c->details;
	ops[5].data.recv_status_on_client.error_string = &c->error_string;
	if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK)
		goto err;
	return c;
err:
	call_free(c);
	return NULL;
}

/* The reply's bytes, flattened; NULL when there was no message. */
static uint8_t *read_reply(grpc_byte_buffer *buf, size_t *len)
{
	if (!buf)
		return NULL;
	grpc_byte_buffer_reader reader;
	if (!grpc_byte_buffer_reader_init(&reader, buf))
		return NULL;
	grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	*len = GRPC_SLICE_LENGTH(all);
	uint8_t *bytes = malloc(*len + 1);
	if (bytes)
		memcpy(bytes, GRPC_SLICE_START_PTR(all), *len);
	grpc_slice_unref(all);
	return bytes;
}

void csi_result_reset(struct csi_result *r)
{
	r->connected = false;
	r->code = 0;
	r->ready = 0;
	r->seconds = 0;
	r->message[0] = '\0';
	r->error[0] = '\0';
	r->reply = NULL;
	r->reply_len = 0;
}

/* src's text into dst's field of the same size: the bytes up to its NUL. */
static void copy_text_field(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void csi_result_copy(struct csi_result *dst, const struct csi_result *src)
{
	dst->connected = src->connected;
	dst->code = src->code;
	dst->ready = src->ready;
	dst->seconds = src->seconds;
	copy_text_field(dst->message, src->message, sizeof(dst->message));
	copy_text_field(dst->error, src->error, sizeof(dst->error));
	dst->reply = src->reply;
	dst->reply_len = src->reply_len;
}

void csi_unreachable_result(struct csi_result *r, double seconds)
{
	csi_result_reset(r);
	r->connected = false;
	r->code = GRPC_STATUS_UNAVAILABLE;
	r->ready = -1;
	r->seconds = seconds;
	snprintf(r->message, sizeof(r->message), "context deadline exceeded");
	snprintf(r->error, sizeof(r->error), "context deadline exceeded");
}

/*
 * The call's reply decoded as a message of type d; NULL when there was no
 * message (*had_message false) or it did not decode. The caller frees it
 * with protobuf_c_message_free_unpacked.
 */
static ProtobufCMessage *unpack_reply(const struct csi_call *c, const ProtobufCMessageDescriptor *d,
                                      bool *had_message)
{
	size_t len = 0;
	uint8_t *bytes = read_reply(c->recv_buf, &len);
	*had_message = bytes != NULL;
	ProtobufCMessage *msg = bytes ? protobuf_c_message_unpack(d, NULL, len, bytes) : NULL;
	free(bytes);
	return msg;
}

/* Upstream's error text for a status: "rpc error: code = X desc = Y". */
static void format_rpc_error(char *out, size_t len, int code, const char *message)
{
	char namebuf[24];
	snprintf(out, len, "rpc error: code = %s desc = %s",
	         grpc_status_go_name(code, namebuf, sizeof(namebuf)), message);
}

static void copy_details(const struct csi_call *c, char *out, size_t len)
{
	utf8_copy(out, len, (const char *)GRPC_SLICE_START_PTR(c->details),
	          GRPC_SLICE_LENGTH(c->details));
}

static bool channel_ready(const struct csi *csi)
{
	return csi->channel &&
	       grpc_channel_check_connectivity_state(csi->channel, 0) == GRPC_CHANNEL_READY;
}

bool csi_connected(const struct csi *csi)
{
	return channel_ready(csi);
}

/*
 * The details gRPC 1.51 itself gives a call whose connection ended under it
 * (EOF, reset, a write to a closed peer, the transport shut down). They
 * arrive labelled "received from peer" like a driver's own status.
 */
static bool transport_lost_details(const struct csi_call *c)
{
	static const char *const lost[] = {"Socket closed",   "Transport closed",
	                                   "Broken pipe",     "Connection reset by peer",
	                                   "GOAWAY received", "Endpoint read failed"};
	char details[256];

	copy_details(c, details, sizeof(details));
	for (size_t i = 0; i < sizeof(lost) / sizeof(lost[0]); i++) {
		if (strstr(details, lost[i]))
			return true;
	}
	return false;
}

/*
 * The connection broke under the call (the driver died, restarted or closed
 * the connection as the probe was sent): upstream would have dialled anew,
 * so the probe is sent once more on a fresh channel within the same
 * deadline. A broken transport shows as UNAVAILABLE with the channel no
 * longer READY, or (when the call completes before the channel notices)
 * with gRPC's own transport details; a driver answering UNAVAILABLE itself
 * leaves the channel READY and gives its own details. One that answers with
 * gRPC's words is simply probed twice, with the same outcome.
 */
static bool broken_under_call(struct csi *csi, const struct csi_call *c, bool success)
{
	return success && c->kind == OP_REQUEST && !c->retried &&
	       c->status == GRPC_STATUS_UNAVAILABLE &&
	       (!channel_ready(csi) || transport_lost_details(c)) &&
	       clock_now_ns() < c->deadline_ns;
}

/*
 * Reads a read-only call's OK reply into r (reply, reply_len: malloc'd,
 * the caller frees it), or makes r INTERNAL when there is none or it does
 * not decode as m's reply type.
 */
static void reply_from_call(const struct csi_call *c, const struct csi_method *m,
                            struct csi_result *r)
{
	size_t len = 0;
	uint8_t *bytes = read_reply(c->recv_buf, &len);
	if (!bytes) {
		r->code = GRPC_STATUS_INTERNAL;
		snprintf(r->message, sizeof(r->message),
		         "grpc: server returned no response message");
		return;
	}
	if (len > CALL_REPLY_MAX) {
		free(bytes);
		r->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(r->message, sizeof(r->message),
		         "the reply is %zu bytes, more than the %d a read-only call may answer",
		         len, CALL_REPLY_MAX);
		return;
	}
	ProtobufCMessage *msg = protobuf_c_message_unpack(m->reply, NULL, len, bytes);
	if (!msg) {
		free(bytes);
		r->code = GRPC_STATUS_INTERNAL;
		snprintf(
		        r->message, sizeof(r->message),
		        "grpc: failed to unmarshal the received message: %zu bytes are no valid %s",
		        len, m->reply->name);
		return;
	}
	protobuf_c_message_free_unpacked(msg, NULL);
	r->reply = bytes;
	r->reply_len = len;
}

/*
 * Fills r from a finished Probe or read-only call m. Decoding failures
 * become INTERNAL, as a Go client reports an unparsable reply; an OK status
 * needs a message. A call's reply is left in r->reply (the caller frees it).
 */
static void result_from_call(struct csi *csi, const struct csi_call *c, const struct csi_method *m,
                             bool success, struct csi_result *r)
{
	csi_result_reset(r);
	r->ready = -1;
	r->seconds = (double)(clock_now_ns() - c->start_ns) / 1e9;
	r->code = success ? (int)c->status : GRPC_STATUS_UNKNOWN;
	copy_details(c, r->message, sizeof(r->message));
	r->connected = true;

	/*
	 * A deadline status at (or after) our deadline is the deadline, whoever
	 * noticed it first (the driver's gRPC server knows it too). Earlier, the
	 * driver itself answered DEADLINE_EXCEEDED and its message stands.
	 */
	bool own_deadline = clock_now_ns() >= c->deadline_ns - OWN_DEADLINE_SLACK_NS;
	if (r->code == GRPC_STATUS_DEADLINE_EXCEEDED && own_deadline) {
		/*
		 * Connected means a live connection to the driver exists now: then
		 * the driver is slow or hung (or stopped). Otherwise no connection
		 * was made in time, and upstream's dial fails with the bare context
		 * error.
		 */
		if (!channel_ready(csi)) {
			csi_unreachable_result(r, r->seconds);
			return;
		}
		snprintf(r->message, sizeof(r->message), "context deadline exceeded");
	}
	if (r->code == GRPC_STATUS_OK && m->callable) {
		reply_from_call(c, m, r);
	} else if (r->code == GRPC_STATUS_OK) {
		bool had_message;
		Csi__V1__ProbeResponse *resp = (Csi__V1__ProbeResponse *)unpack_reply(
		        c, &csi__v1__probe_response__descriptor, &had_message);
		if (!resp) {
			r->code = GRPC_STATUS_INTERNAL;
			snprintf(r->message, sizeof(r->message), "%s",
			         had_message ? "grpc: failed to unmarshal the received message"
			                     : "grpc: server returned no response message");
		} else {
			/* Present but empty (wire 0a 00) decodes as value false. */
			r->ready = resp->ready ? (resp->ready->value ? 1 : 0) : -1;
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
	}
	if (r->code != GRPC_STATUS_OK)
		format_rpc_error(r->error, sizeof(r->error), r->code, r->message);
	LOG_INFO_V(6, "Call finished", "method", m->name, "status", r->error, "detail",
	           c->error_string ? c->error_string : "");
}

static void info_from_call(const struct csi_call *c, bool success, struct info_space *space)
{
	struct csi_plugin_info *info = &space->info;
	/* Not on the stack: stack clash protection would write all 16 kB of it. */
	char *message = space->message;
	const size_t message_size = sizeof(space->message);
	/* Not cleared whole: 48 kB of mostly unwritten room (see csi_result_reset). */
	info->name[0] = info->vendor_version[0] = info->error[0] = '\0';
	info->code = success ? (int)c->status : GRPC_STATUS_UNKNOWN;
	copy_details(c, message, message_size);
	if (info->code == GRPC_STATUS_OK) {
		bool had_message;
		Csi__V1__GetPluginInfoResponse *resp =
		        (Csi__V1__GetPluginInfoResponse *)unpack_reply(
		                c, &csi__v1__get_plugin_info_response__descriptor, &had_message);
		if (!resp) {
			info->code = GRPC_STATUS_INTERNAL;
			snprintf(message, message_size,
			         "grpc: failed to unmarshal the received message");
		} else {
			const char *name = resp->name ? resp->name : "";
			const char *vendor = resp->vendor_version ? resp->vendor_version : "";
			utf8_copy(info->name, sizeof(info->name), name, strlen(name));
			utf8_copy(info->vendor_version, sizeof(info->vendor_version), vendor,
			          strlen(vendor));
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
	}
	if (info->code != GRPC_STATUS_OK)
		format_rpc_error(info->error, sizeof(info->error), info->code, message);
	else if (info->name[0] == '\0')
		snprintf(info->error, sizeof(info->error), "driver name is empty");
}

static void request_unlink(struct csi_request *p)
{
	for (struct csi_request **pp = &p->csi->requests; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
}

static void request_free(struct csi_request *p)
{
	request_unlink(p);
	if (p->missing)
		event_free(p->missing);
	free(p);
}

/* Answers p (unless cancelled) and frees it. */
static void request_answer(struct csi_request *p, const struct csi_result *r)
{
	csi_result_cb cb = p->cb;
	void *arg = p->arg;
	bool cancelled = p->cancelled;
	request_free(p);
	if (!cancelled)
		cb(r, arg);
}

static void finish_request(struct csi *csi, struct csi_call *c, bool success)
{
	struct csi_request *p = c->request;
	p->call = NULL;
	if (p->cancelled) {
		call_free(c);
		request_free(p);
		return;
	}
	if (broken_under_call(csi, c, success)) {
		int64_t deadline = c->deadline_ns;
		LOG_INFO_V(5, "Connection to the CSI driver broke, calling again", "method",
		           p->method->name, "err", c->error_string ? c->error_string : "");
		call_free(c);
		/* A fresh channel: the old one may still hand out the dying transport. */
		char err[256];
		channel_close(csi);
		if (channel_open(csi, err, sizeof(err)) == 0) {
			p->call = call_start(csi, OP_REQUEST, p->method->path, deadline, true);
			if (p->call) {
				p->call->request = p;
				p->call->start_ns = p->start_ns;
				return;
			}
		}
		csi_unreachable_result(csi->answer, (double)(clock_now_ns() - p->start_ns) / 1e9);
		request_answer(p, csi->answer);
		return;
	}
	struct csi_result *r = csi->answer;
	result_from_call(csi, c, p->method, success, r);
	/* Only RPCs that reached the driver are observed (UPSTREAM.md §4.1). */
	if (r->connected)
		metrics_observe_rpc(csi->metrics, csi->driver.name, p->method->path, r->code,
		                    r->seconds);
	call_free(c);
	uint8_t *reply = (uint8_t *)r->reply;
	request_answer(p, r);
	r->reply = NULL;
	free(reply);
}

/* Keeps the driver's identity (csi_driver) from a successful GetPluginInfo. */
static void remember_driver(struct csi *csi, const struct csi_plugin_info *info)
{
	char *name = strdup(info->name), *vendor = strdup(info->vendor_version);
	if (!name || !vendor) {
		free(name);
		free(vendor);
		return; /* out of memory: the identity stays unknown ("") */
	}
	free(csi->driver_name);
	free(csi->driver_vendor);
	csi->driver_name = name;
	csi->driver_vendor = vendor;
	csi->driver.name = name;
	csi->driver.vendor_version = vendor;
}

static void finish_info(struct csi *csi, struct csi_call *c, bool success)
{
	struct csi_plugin_info *info = &csi->info->info;
	csi->info_call = NULL;
	info_from_call(c, success, csi->info);
	/* The start-up call is recorded before the name is known. */
	metrics_observe_rpc(csi->metrics, "unknown-driver", METHOD_INFO, info->code,
	                    (double)(clock_now_ns() - c->start_ns) / 1e9);
	call_free(c);
	if (csi->still_timer)
		event_del(csi->still_timer);
	if (info->code == GRPC_STATUS_OK && !info->error[0]) {
		remember_driver(csi, info);
		if (csi->address.kind == CSI_ADDRESS_UNIX) {
			struct stat st;
			if (stat_socket(csi, &st) == 0)
				remember_socket(csi, &st);
		}
	}
	csi->info_cb(info, csi->info_arg);
	/* Asked once: its pages go back to malloc (and to the system at the next trim). */
	free(csi->info);
	csi->info = NULL;
}

static void on_completion(void *tag, bool success, void *arg)
{
	struct csi_call *c = tag;
	if (c->kind == OP_REQUEST)
		finish_request(arg, c, success);
	else
		finish_info(arg, c, success);
}

static void on_missing_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct csi_request *p = arg;
	struct csi *csi = p->csi;
	csi_unreachable_result(csi->answer, (double)(clock_now_ns() - p->start_ns) / 1e9);
	request_answer(p, csi->answer);
}

static void on_still_waiting(evutil_socket_t fd, short what, void *arg)
{
	struct csi *csi = arg;
	bool ready = csi->channel &&
	             grpc_channel_check_connectivity_state(csi->channel, 0) == GRPC_CHANNEL_READY;
	if (ready)
		LOG_I("Still waiting for the CSI driver name", "address", csi->address.display);
	else
		LOG_I("Still connecting", "address", csi->address.display);
}

struct csi *csi_new(struct event_base *base, const struct csi_address *address,
                    struct metrics *metrics, char *errbuf, size_t errlen)
{
	struct csi *csi = calloc(1, sizeof(*csi));
	if (!csi) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	csi->address.kind = address->kind;
	csi->address.target = strdup(address->target);
	csi->address.path = strdup(address->path);
	csi->address.display = strdup(address->display);
	if (!csi->address.target || !csi->address.path || !csi->address.display) {
		snprintf(errbuf, errlen, "out of memory");
		goto err;
	}
	csi->base = base;
	csi->metrics = metrics;
	csi->driver.name = csi->driver.vendor_version = "";
	/* malloc, not calloc: their pages are written only as far as they are used. */
	csi->answer = malloc(sizeof(*csi->answer));
	if (!csi->answer) {
		snprintf(errbuf, errlen, "out of memory");
		goto err;
	}
	csi_result_reset(csi->answer);
	csi->still_timer = event_new(base, -1, EV_PERSIST, on_still_waiting, csi);
	if (!csi->still_timer) {
		snprintf(errbuf, errlen, "cannot set up loop events");
		goto err;
	}
	csi->grpc = grpc_loop_new(base, on_completion, csi, errbuf, errlen);
	if (!csi->grpc || channel_open(csi, errbuf, errlen) < 0)
		goto err;
	return csi;
err:
	csi_free(csi);
	return NULL;
}

void csi_start(struct csi *csi, csi_info_cb cb, void *arg)
{
	struct timeval every = {.tv_sec = STILL_WAITING_INTERVAL_S};
	csi->info_cb = cb;
	csi->info_arg = arg;
	evtimer_add(csi->still_timer, &every);
	if (csi->address.kind == CSI_ADDRESS_NEVER)
		return; /* waits forever, as upstream does for an unusable target */
	if (!csi->info)
		csi->info = malloc(sizeof(*csi->info));
	csi->info_call = csi->info ? call_start(csi, OP_INFO, METHOD_INFO, INT64_MAX, false) : NULL;
	if (!csi->info_call)
		LOG_E("Cannot start GetPluginInfo", "address", csi->address.display);
}

const char *csi_display(const struct csi *csi)
{
	return csi->address.display;
}

const struct csi_driver *csi_driver(const struct csi *csi)
{
	return &csi->driver;
}

/*
 * Issue #68 upstream: a deleted socket must fail the probe even though an
 * old connection still works. Returns false when the probe cannot be sent.
 */
static bool socket_still_there(struct csi *csi)
{
	if (csi->address.kind == CSI_ADDRESS_NEVER)
		return false;
	if (csi->address.kind != CSI_ADDRESS_UNIX)
		return true;
	struct stat st;
	if (stat_socket(csi, &st) < 0)
		return false;
	if (csi->socket_ino != 0 && (st.st_ino != csi->socket_ino || st.st_dev != csi->socket_dev ||
	                             st.st_ctim.tv_sec != csi->socket_ctime.tv_sec ||
	                             st.st_ctim.tv_nsec != csi->socket_ctime.tv_nsec)) {
		/* The driver restarted: its new socket gets a fresh channel at once. */
		char err[256];
		LOG_INFO_V(4, "CSI socket replaced, reconnecting", "address", csi->address.display);
		channel_close(csi);
		if (channel_open(csi, err, sizeof(err)) < 0) {
			LOG_E("Cannot reconnect to the CSI driver", "err", err);
			return false;
		}
	}
	remember_socket(csi, &st);
	return true;
}

struct csi_request *csi_call(struct csi *csi, const struct csi_method *m, int64_t deadline_ns,
                             csi_result_cb cb, void *arg)
{
	struct csi_request *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->csi = csi;
	p->method = m;
	p->cb = cb;
	p->arg = arg;
	p->start_ns = clock_now_ns();
	p->next = csi->requests;
	csi->requests = p;
	if (socket_still_there(csi) && csi->channel) {
		p->call = call_start(csi, OP_REQUEST, m->path, deadline_ns, false);
		if (p->call) {
			p->call->request = p;
			return p;
		}
		deadline_ns = p->start_ns; /* gRPC refused the call: unreachable, at once */
	}
	/* Nothing to send to (or no call): still answered, at the deadline. */
	struct timeval tv = clock_timeval(clock_left(deadline_ns));
	p->missing = evtimer_new(csi->base, on_missing_deadline, p);
	if (!p->missing || evtimer_add(p->missing, &tv) < 0) {
		request_free(p);
		return NULL;
	}
	return p;
}

struct csi_request *csi_probe(struct csi *csi, int64_t deadline_ns, csi_result_cb cb, void *arg)
{
	static const struct csi_method *probe;
	if (!probe)
		probe = csi_method_by_name("Probe");
	return csi_call(csi, probe, deadline_ns, cb, arg);
}

void csi_request_cancel(struct csi_request *p)
{
	if (!p)
		return;
	if (p->call) {
		/* Its completion still comes, and is dropped (finish_request). */
		p->cancelled = true;
		grpc_call_cancel(p->call->call, NULL);
		return;
	}
	request_free(p);
}

/* A call whose completion was never delivered (shutdown): freed, no callback. */
static void drain_call(void *tag)
{
	struct csi_call *c = tag;
	if (c->request)
		c->request->call = NULL;
	call_free(c);
}

void csi_free(struct csi *csi)
{
	if (!csi)
		return;
	/* GRPC-NOTES.md order: cancel → destroy channel → shut down the queue → join. */
	for (struct csi_request *p = csi->requests; p; p = p->next)
		if (p->call)
			grpc_call_cancel(p->call->call, NULL);
	if (csi->info_call)
		grpc_call_cancel(csi->info_call->call, NULL);
	if (csi->grpc) {
		channel_close(csi);
		grpc_loop_free(csi->grpc, drain_call); /* every call's completion is drained */
		csi->info_call = NULL;
	}
	while (csi->requests)
		request_free(csi->requests);
	if (csi->still_timer)
		event_free(csi->still_timer);
	free(csi->driver_name);
	free(csi->driver_vendor);
	free(csi->answer);
	free(csi->info);
	free(csi->address.target);
	free(csi->address.path);
	free(csi->address.display);
	free(csi);
}
