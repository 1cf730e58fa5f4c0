/*
 * Framed messages between the daemon and its policy worker process, over a
 * socketpair: [u32 length][u8 type][payload]. Both ends are the same binary,
 * so fixed-size payloads travel as raw structs.
 */
#ifndef LP_WIRE_H
#define LP_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Big enough for a policy source (16 MiB) plus its header. */
#define WIRE_MAX_FRAME (17u * 1024 * 1024)

enum wire_type {
	WIRE_LOAD = 1,     /* daemon → worker: wire_load + chunkname + source */
	WIRE_LOADED,       /* worker → daemon: wire_loaded + error text */
	WIRE_DRIVER,       /* daemon → worker: wire_driver + name + vendor_version */
	WIRE_BEGIN,        /* daemon → worker: wire_begin */
	WIRE_PROBE_RESULT, /* daemon → worker: struct csi_probe_result */
	WIRE_SLEEP_DONE,   /* daemon → worker: nothing */
	WIRE_STEP,         /* worker → daemon: wire_step + reason + detail + body */
};

struct wire_load {
	int64_t memory;
	int64_t instructions;
	uint32_t chunkname_len;
	uint32_t source_len;
};

struct wire_loaded {
	int32_t ok;
	uint32_t error_len;
};

struct wire_driver {
	uint32_t name_len;
	uint32_t vendor_len;
};

struct wire_begin {
	int64_t deadline_ns;
};

struct wire_step {
	int32_t kind;
	int32_t healthy;
	int32_t status;
	double seconds;
	uint64_t memory; /* bytes the worker's Lua state holds after this step */
	uint32_t reason_len;
	uint32_t detail_len;
	uint32_t body_len;
};

/*
 * Sends one frame made of up to four parts (NULL/0 parts are skipped).
 * Blocking; returns 0 or -1 (peer gone).
 */
int wire_send(int fd, enum wire_type type, const void *a, size_t alen, const void *b, size_t blen,
              const void *c, size_t clen, const void *d, size_t dlen);

/* Reads one whole frame, blocking. *payload is malloc'd. 0, or -1 on EOF/error. */
int wire_recv(int fd, enum wire_type *type, uint8_t **payload, size_t *len);

/*
 * Incremental frame parsing for a non-blocking reader: feed bytes, then take
 * complete frames one at a time.
 */
struct wire_reader {
	uint8_t *buf;
	size_t len, cap;
	size_t consumed; /* bytes of the frame last handed out, dropped at the next call */
};
int wire_reader_feed(struct wire_reader *r, const void *data, size_t len);
/* 1 with a frame (payload points into the reader, valid until the next call), 0 if
 * incomplete, -1 if malformed. */
int wire_reader_next(struct wire_reader *r, enum wire_type *type, const uint8_t **payload,
                     size_t *len);
void wire_reader_reset(struct wire_reader *r);

#endif
