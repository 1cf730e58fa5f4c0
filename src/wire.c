/* Length-prefixed protobuf frames on evbuffers (wire.h). */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>

#include <event2/buffer.h>

int wire_put(struct evbuffer *out, const LpWorker__Frame *f)
{
	size_t len = lp_worker__frame__get_packed_size(f);
	if (len > WIRE_MAX_FRAME)
		return -1;
	/* Header and message go in with one add: a frame is in the stream whole or not at all. */
	uint8_t *frame = malloc(4 + len);
	if (!frame)
		return -1;
	frame[0] = len & 0xff;
	frame[1] = (len >> 8) & 0xff;
	frame[2] = (len >> 16) & 0xff;
	frame[3] = (len >> 24) & 0xff;
	lp_worker__frame__pack(f, frame + 4);
	int rc = evbuffer_add(out, frame, 4 + len);
	free(frame);
	return rc < 0 ? -1 : 0;
}

int wire_take(struct evbuffer *in, LpWorker__Frame **f)
{
	uint8_t header[4];
	*f = NULL;
	if (evbuffer_copyout(in, header, sizeof(header)) < (ev_ssize_t)sizeof(header))
		return 0;
	uint32_t len = (uint32_t)header[0] | (uint32_t)header[1] << 8 | (uint32_t)header[2] << 16 |
	               (uint32_t)header[3] << 24;
	if (len > WIRE_MAX_FRAME)
		return -1;
	if (evbuffer_get_length(in) < sizeof(header) + (size_t)len)
		return 0;
	evbuffer_drain(in, sizeof(header));
	const uint8_t *bytes = len ? evbuffer_pullup(in, len) : (const uint8_t *)"";
	if (!bytes)
		return -1;
	*f = lp_worker__frame__unpack(NULL, len, bytes);
	evbuffer_drain(in, len);
	return *f ? 1 : -1;
}
