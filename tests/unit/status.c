/*
 * What /status and ?verbose are made of: SHA-256 (FIPS 180-4's examples),
 * JSON values (escapes, times, numbers), the kept checks and probes
 * (src/health.c: rings, oldest first, streaks), and the rendering
 * (src/status.c): the JSON contract's keys, bounded hostile texts, the
 * text table, and the verbose lines of one check.
 */
#include "csi.h"
#include "clock.h"
#include "health.h"
#include "json.h"
#include "lua_fixtures.h" /* fixture_result */
#include "metrics.h"
#include "sha256.h"
#include "status.h"
#include "testing.h"

#include <stdlib.h>

#include <event2/buffer.h>

/* The buffer's text as a malloc'd string (it may hold NUL bytes: len says how many). */
static char *take(struct evbuffer *b, size_t *len)
{
	size_t n = evbuffer_get_length(b);
	char *s = calloc(1, n + 1);
	evbuffer_remove(b, s, n);
	if (len)
		*len = n;
	return s;
}

static void test_sha256(void)
{
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex("", 0, hex);
	CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* 56 bytes: the padding needs a second block. */
	static const char two[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha256_hex(two, sizeof(two) - 1, hex);
	CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* A million 'a's: many blocks. */
	char *a = malloc(1000000);
	memset(a, 'a', 1000000);
	sha256_hex(a, 1000000, hex);
	CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

static void test_json_values(void)
{
	struct evbuffer *b = evbuffer_new();
	static const char hostile[] = "a\"b\\c\n\t\x01\x7f\xff\xe2\x82\xac\0z";
	json_put_string(b, hostile, sizeof(hostile) - 1);
	evbuffer_add(b, " ", 1);
	json_put_cstring(b, NULL);
	evbuffer_add(b, " ", 1);
	json_put_number(b, 0.25);
	evbuffer_add(b, " ", 1);
	json_put_number(b, 1.0 / 0.0);
	evbuffer_add(b, " ", 1);
	json_put_time(b, 0);
	evbuffer_add(b, " ", 1);
	json_put_time(b, 1795795574.5);
	char *s = take(b, NULL);
	CHECK_STR(s,
	          "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\\ufffd\xe2\x82\xac\\u0000z\" null 0.25 null "
	          "null \"2026-11-27T16:06:14.500000Z\"");
	free(s);
	evbuffer_free(b);
}

/* A check of e that ended now with the probes since first_seq. */
static const struct health_check *add_check(struct health *h, enum endpoint e, bool healthy,
                                            const char *body, uint64_t first_seq)
{
	struct health_check c;
	memset(&c, 0, sizeof(c));
	c.at = clock_wall_s();
	c.endpoint = e;
	c.healthy = healthy;
	c.status = healthy ? 200 : 500;
	c.body = c.reason = body;
	c.body_len = c.reason_len = strlen(body);
	c.first_seq = first_seq;
	c.end_seq = health_next_seq(h);
	c.probes = (unsigned)(c.end_seq - first_seq);
	return health_add_check(h, &c);
}

static void test_rings_and_streaks(void)
{
	struct metrics *m = metrics_new();
	struct health *h = health_new(m);
	CHECK(health_check_at(h, 0) == NULL && health_probe_at(h, 0) == NULL);
	CHECK(!health_endpoint(h, ENDPOINT_HEALTHZ)->known);
	for (int i = 0; i < 40; i++) {
		uint64_t first = health_next_seq(h);
		struct csi_result r = fixture_result(true, 0, 1, "", "");
		CHECK_INT(health_add_probe(h, ENDPOINT_HEALTHZ, &r), first);
		char body[16];
		snprintf(body, sizeof(body), "ok %d", i);
		add_check(h, ENDPOINT_HEALTHZ, true, body, first);
	}
	/* The last 32 of each, oldest first. */
	CHECK_STR(health_check_at(h, 0)->body, "ok 8");
	CHECK_STR(health_check_at(h, 31)->body, "ok 39");
	CHECK(health_check_at(h, 32) == NULL);
	CHECK_INT(health_probe_at(h, 0)->seq, 9);
	CHECK_INT(health_probe_at(h, 31)->seq, 40);
	const struct health_endpoint *ep = health_endpoint(h, ENDPOINT_HEALTHZ);
	CHECK(ep->known && ep->last.healthy);
	CHECK_STR(ep->last.reason, "ok 39"); /* its own copy, whatever the ring holds */
	CHECK_INT(ep->streak, 40);
	CHECK(ep->last_success > 0 && ep->last_failure == 0);
	/* Another endpoint has its own summary. */
	add_check(h, ENDPOINT_READYZ, false, "not yet", health_next_seq(h));
	CHECK_INT(ep->streak, 40);
	CHECK(!health_endpoint(h, ENDPOINT_READYZ)->last.healthy);
	CHECK(health_endpoint(h, ENDPOINT_READYZ)->last_success == 0);
	/* A change restarts the streak. */
	add_check(h, ENDPOINT_HEALTHZ, false, "down", health_next_seq(h));
	CHECK_INT(ep->streak, 1);
	CHECK_STR(ep->last.body, "down");
	/* A failed probe's error is kept; an OK one's is "". */
	struct csi_result failed =
	        fixture_result(true, 14, -1, "gone", "rpc error: code = Unavailable desc = gone");
	health_add_probe(h, ENDPOINT_HEALTHZ, &failed);
	CHECK_STR(health_probe_at(h, 31)->error, "rpc error: code = Unavailable desc = gone");
	CHECK_STR(health_probe_at(h, 30)->error, "");
	CHECK(ep->streak_since == ep->last.at && ep->last_failure == ep->last.at);
	health_free(h);
	metrics_free(m);
}

static void builtin_policy(void *ctx, struct status_policy *out)
{
	out->source = "builtin";
	out->sha256 = "9724e195449a640803d90055d3233c6911af671036c8ff7a5eacb64d57a138d4";
	out->loaded_at = 1795795574.5;
	out->runs_in = "daemon";
	out->last_reload_error = ctx;
}

static void test_render(void)
{
	struct metrics *m = metrics_new();
	struct health *h = health_new(m);
	struct status_sources s = {.health = h,
	                           .metrics = m,
	                           .address = "unix:///csi/csi.sock",
	                           .policy = builtin_policy,
	                           .policy_ctx = "p.lua:1: bad"};
	struct evbuffer *b = evbuffer_new();

	/* Before any check: every key, nulls and empty lists. */
	status_render(&s, STATUS_JSON, b);
	char *json = take(b, NULL);
	static const char *const keys[] = {
	        "{\"verdict\":{\"healthy\":null,",
	        ",\"streak\":{\"healthy\":null,\"count\":0,",
	        ",\"last_success\":null,",
	        ",\"last_failure\":null,",
	        ",\"checks\":[],",
	        ",\"probes\":[],",
	        ",\"policy\":{\"source\":\"builtin\",",
	        "\"last_reload_error\":\"p.lua:1: bad\"",
	        ",\"driver\":{\"address\":\"unix:///csi/csi.sock\",\"name\":\"\",",
	        "\"connected\":false}",
	        ",\"process\":{\"version\":"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!strstr(json, keys[i]))
			fprintf(stderr, "no %s in %s\n", keys[i], json);
		CHECK(strstr(json, keys[i]) != NULL);
	}
	free(json);

	/* A hostile 8 KiB body is kept to 1 KiB, escaped, on one line. */
	char big[8192];
	memset(big, 'x', sizeof(big));
	memcpy(big, "\"\n\xff", 3);
	uint64_t first = health_next_seq(h);
	struct csi_result r =
	        fixture_result(true, 9, -1, "x", "rpc error: code = FailedPrecondition desc = x");
	health_add_probe(h, ENDPOINT_HEALTHZ, &r);
	struct health_check c;
	memset(&c, 0, sizeof(c));
	c.at = clock_wall_s();
	c.endpoint = ENDPOINT_HEALTHZ;
	c.status = 500;
	c.body = big;
	c.body_len = sizeof(big);
	c.reason = "p.lua:3: boom";
	c.reason_len = 13;
	c.fallback = STOP_ERROR;
	c.first_seq = first;
	c.end_seq = health_next_seq(h);
	c.probes = 1;
	const struct health_check *kept = health_add_check(h, &c);
	CHECK_INT(kept->body_len, HEALTH_TEXT_MAX - 1); /* cut between characters */
	CHECK_INT(strlen(kept->reason), 13);
	size_t len;
	status_render(&s, STATUS_JSON, b);
	json = take(b, &len);
	CHECK(strlen(json) == len);                  /* no raw NUL */
	CHECK(strchr(json, '\n') == json + len - 1); /* one line */
	CHECK(strstr(json, "\"body\":\"\\\"\\n\\ufffdxxx") != NULL);
	CHECK(strstr(json, "\"fallback\":\"error\"") != NULL);
	CHECK(strstr(json, "\"code\":\"FAILED_PRECONDITION\",\"ready\":null") != NULL);
	CHECK(len < 8000);
	free(json);

	/* The table: a failed probe has no ready. */
	status_render(&s, STATUS_TEXT, b);
	char *text = take(b, NULL);
	CHECK(strstr(text, "FAILED_PRECONDITION -      yes") != NULL);
	CHECK(strstr(text, "healthz   unhealthy 500    1") != NULL);
	free(text);

	/* ?verbose: the reason (with the fallback) and the check's probe. */
	status_render_verbose(h, kept, b);
	text = take(b, NULL);
	CHECK_STR(text,
	          "\n[-]reason: p.lua:3: boom (the policy failed: error; the built-in policy "
	          "answered)\n[-]probe 1: FAILED_PRECONDITION connected=true seconds=0.004000: "
	          "rpc error: code = FailedPrecondition desc = x\n");
	free(text);

	/* Probes that left the ring are counted, not shown; other endpoints' are not this check's.
	 */
	first = health_next_seq(h);
	for (int i = 0; i < 40; i++) {
		struct csi_result ok = fixture_result(true, 0, 0, "", "");
		health_add_probe(h, i % 2 ? ENDPOINT_READYZ : ENDPOINT_HEALTHZ, &ok);
	}
	memset(&c, 0, sizeof(c));
	c.endpoint = ENDPOINT_HEALTHZ;
	c.healthy = true;
	c.first_seq = first;
	c.end_seq = health_next_seq(h);
	c.probes = 20;
	kept = health_add_check(h, &c);
	status_render_verbose(h, kept, b);
	text = take(b, NULL);
	CHECK(strstr(text, "(4 earlier probes of this check are no longer kept)\n") != NULL);
	CHECK(strstr(text, "[+]probe 5: OK ready=false ") != NULL);
	CHECK(strstr(text, "[+]probe 20: OK ready=false ") != NULL);
	CHECK(strstr(text, "probe 21") == NULL);
	free(text);

	evbuffer_free(b);
	health_free(h);
	metrics_free(m);
}

int main(void)
{
	test_sha256();
	test_json_values();
	test_rings_and_streaks();
	test_render();
	return testing_result("status");
}
