/*
 * csi-mock-driver --proxy-to=ADDRESS: calls forwarded to a real driver (the
 * backend), bytes as they are, whatever the service and method.
 *
 * The backend is one gRPC channel (reconnect backoff 100 ms .. 1 s, as the
 * sidecar's; no message-size limit), rebuilt at once when the backend's
 * socket file is replaced, and refused at once (UNAVAILABLE, naming the
 * backend) while that file is missing.
 *
 * A forward pumps one call both ways on the server's completion queue: the
 * client's metadata and messages up to the backend (the backend call is a
 * child of the client's, so the client's deadline and cancellation carry
 * over), the backend's initial metadata, messages, status and trailers
 * down. Streams included: every message is passed, one at a time each way.
 * Not thread-safe: the server's thread owns every forward.
 */
#ifndef MOCK_PROXY_H
#define MOCK_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>

#include "mock_tag.h"

struct mock_backend;
struct mock_forward;

/* The backend at address (csi_address.h's forms). NULL with err when it is unusable. */
struct mock_backend *mock_backend_new(const char *address, char *err, size_t errlen);
/* Destroys the channel; every forward must be over. NULL is a no-op. */
void mock_backend_free(struct mock_backend *b);
/* The backend as logs and messages name it ("unix:///run/csi/real.sock"). */
const char *mock_backend_display(const struct mock_backend *b);

/* How a forward ends for the client (what the call log says). */
struct mock_forward_result {
	int code;      /* the status the client was sent (or CANCELLED: it went away first) */
	int backend;   /* the backend's own status (-1: it was never reached) */
	bool replaced; /* the status was replaced (mock_forward_opts) */
	bool refused;  /* never reached the backend (its socket is missing) */
};

typedef void (*mock_forward_done)(const struct mock_forward_result *r, void *arg);

struct mock_forward_opts {
	bool replace;        /* forward, then answer with code and message instead */
	int code;            /* replace: the status sent; not OK drops the backend's messages */
	const char *message; /* replace: its details (copied) */
};

/*
 * Forwards the server call call (its details, request metadata, and the
 * first request message first, which the caller has read; NULL when the
 * client sent none) to the backend, on cq. Tags of kind TAG_FORWARD come
 * back to mock_forward_event. done is called once, from an event, when
 * every batch of the forward has completed; the forward is freed then.
 * NULL when out of memory (nothing started: the caller answers the call).
 */
struct mock_forward *mock_forward_start(struct mock_backend *b, grpc_completion_queue *cq,
                                        grpc_call *call, const grpc_call_details *details,
                                        const grpc_metadata_array *request_md,
                                        grpc_byte_buffer *first,
                                        const struct mock_forward_opts *opts,
                                        mock_forward_done done, void *arg);

/* A TAG_FORWARD completion. stopping: the server is shutting down (no new batches). */
void mock_forward_event(struct mock_tag *tag, bool ok, bool stopping);

#endif
