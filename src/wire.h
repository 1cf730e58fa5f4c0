/*
 * Frames between the daemon and its policy worker (proto/worker.proto):
 * each a 4-byte little-endian length, then one protobuf-encoded
 * lp_worker.Frame. Built on evbuffers, so the daemon's side never blocks
 * (it reads and writes through a bufferevent), and the worker's side reads
 * and writes the same buffers with plain blocking I/O.
 */
#ifndef LP_WIRE_H
#define LP_WIRE_H

#include "worker.pb-c.h"

struct evbuffer;

/* The largest frame either side accepts: a policy source (16 MiB) and its header. */
#define WIRE_MAX_FRAME (17u * 1024 * 1024)

/* Appends f to out as one frame. 0, or -1 when it is too big or memory ran out. */
int wire_put(struct evbuffer *out, const LpWorker__Frame *f);

/*
 * Takes one whole frame from the front of in: 1 with *f (free it with
 * lp_worker__frame__free_unpacked(*f, NULL)), 0 when the frame is not all
 * there yet (nothing taken), -1 when it is too big or does not decode.
 */
int wire_take(struct evbuffer *in, LpWorker__Frame **f);

#endif
