/*
 * Frames between the daemon and its worker (src/wire.c): a frame goes in
 * whole and comes out whole, byte by byte if need be; a partial frame is
 * left alone; an oversized or undecodable one is refused.
 */
#include "wire.h"
#include "testing.h"

#include <stdlib.h>

#include <event2/buffer.h>

static void test_round_trip(void)
{
	struct evbuffer *b = evbuffer_new();
	LpWorker__Step s = LP_WORKER__STEP__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	s.run = 7;
	s.kind = 3;
	s.body = (ProtobufCBinaryData){5, (uint8_t *)"a\0b\xff"};
	s.memory = 123456;
	f.msg_case = LP_WORKER__FRAME__MSG_STEP;
	f.step = &s;
	CHECK_INT(wire_put(b, &f), 0);
	CHECK_INT(wire_put(b, &f), 0);
	for (int i = 0; i < 2; i++) {
		LpWorker__Frame *got = NULL;
		CHECK_INT(wire_take(b, &got), 1);
		CHECK(got && got->msg_case == LP_WORKER__FRAME__MSG_STEP);
		if (got && got->step) {
			CHECK_INT(got->step->run, 7);
			CHECK_INT(got->step->kind, 3);
			CHECK_INT(got->step->memory, 123456);
			CHECK_INT(got->step->body.len, 5);
			CHECK(memcmp(got->step->body.data, "a\0b\xff", 5) == 0);
		}
		lp_worker__frame__free_unpacked(got, NULL);
	}
	LpWorker__Frame *none = NULL;
	CHECK_INT(wire_take(b, &none), 0);
	CHECK(none == NULL);
	evbuffer_free(b);
}

/* Arriving a byte at a time, a frame is taken only once it is all there. */
static void test_partial(void)
{
	struct evbuffer *full = evbuffer_new(), *b = evbuffer_new();
	LpWorker__Begin bg = LP_WORKER__BEGIN__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	bg.run = 1;
	bg.deadline_ns = 1234567890123LL;
	f.msg_case = LP_WORKER__FRAME__MSG_BEGIN;
	f.begin = &bg;
	wire_put(full, &f);
	size_t n = evbuffer_get_length(full);
	unsigned char *bytes = evbuffer_pullup(full, -1);
	LpWorker__Frame *got = NULL;
	for (size_t i = 0; i < n; i++) {
		CHECK_INT(wire_take(b, &got), 0);
		evbuffer_add(b, bytes + i, 1);
	}
	CHECK_INT(wire_take(b, &got), 1);
	CHECK(got && got->begin && got->begin->deadline_ns == 1234567890123LL);
	lp_worker__frame__free_unpacked(got, NULL);
	CHECK_INT(evbuffer_get_length(b), 0);
	evbuffer_free(full);
	evbuffer_free(b);
}

/* A length over the limit, or bytes that are no Frame: refused. */
static void test_malformed(void)
{
	struct evbuffer *b = evbuffer_new();
	LpWorker__Frame *got = NULL;
	const unsigned char huge[4] = {0xff, 0xff, 0xff, 0x7f};
	evbuffer_add(b, huge, 4);
	CHECK_INT(wire_take(b, &got), -1);
	evbuffer_drain(b, evbuffer_get_length(b));
	/* Field 1 (load) as a length-delimited value that runs past the frame. */
	const unsigned char bad[] = {3, 0, 0, 0, 0x0a, 0x05, 0x01};
	evbuffer_add(b, bad, sizeof(bad));
	CHECK_INT(wire_take(b, &got), -1);
	CHECK(got == NULL);
	evbuffer_free(b);
}

/* A frame too big to send is refused whole: nothing of it enters the stream. */
static void test_too_big(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n = WIRE_MAX_FRAME + 16;
	uint8_t *big = calloc(1, n);
	LpWorker__Load l = LP_WORKER__LOAD__INIT;
	LpWorker__Frame f = LP_WORKER__FRAME__INIT;
	l.source = (ProtobufCBinaryData){n, big};
	f.msg_case = LP_WORKER__FRAME__MSG_LOAD;
	f.load = &l;
	CHECK_INT(wire_put(b, &f), -1);
	CHECK_INT(evbuffer_get_length(b), 0);
	free(big);
	evbuffer_free(b);
}

int main(void)
{
	test_round_trip();
	test_partial();
	test_malformed();
	test_too_big();
	return testing_result("wire");
}
