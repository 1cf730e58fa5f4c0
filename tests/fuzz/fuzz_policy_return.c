/*
 * fuzz_policy_return: what a policy's check returns, turned into a verdict
 * (src/policy.c read_verdict, reached through run() as for any check). The
 * policy is `return ctx.probe()`: it returns exactly the values the probe
 * is resumed with, and those are built from the input, in a protected call,
 * as push_result builds a probe result. src/policy.c is included to reach
 * run().
 *
 * Input: up to 8 values, each a tag byte (mod 12) and its payload:
 *   0 nil   1 false   2 true
 *   3 integer, 8 bytes little-endian   4 float, 8 bytes (IEEE double)
 *   5 a float picked by the next byte: NaN, ±inf, -0.0, 200.0, 599.5, 2^63 …
 *   6 an integer 0..999 from 2 bytes   7 string: a length byte, then bytes (NULs too)
 *   8 empty table   9 table {true, "ok", 200}   10 the string "200"   11 a C function
 * Missing payload bytes read as zero.
 *
 * Invariants: no crash, no leak, no sanitizer report; the step is exactly
 * what the README's contract says, recomputed here independently: a
 * boolean first, then nil or a string body (NULs kept), then nil or an
 * integral number in 200-399 (healthy) or 400-599 (unhealthy); anything
 * else fails with reason "return".
 */
#include "../../src/policy.c"

#include <math.h>

#include "fuzz.h"
#include "fuzz_policy.h"

#define MAX_VALUES 8

enum kind { V_NIL, V_BOOL, V_INT, V_FLOAT, V_STRING, V_TABLE, V_VERDICT_TABLE, V_FUNCTION };

struct value {
	enum kind kind;
	bool b;
	lua_Integer i;
	double d;
	const char *s;
	size_t len;
};

struct values {
	struct value v[MAX_VALUES];
	int n;
};

static const char policy_source[] = "return { check = function(ctx) return ctx.probe() end }\n";

static struct policy *policy;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];
	struct policy_limits limits = {.memory = 16 << 20, .instructions = 10000000};
	policy = policy_new(policy_source, sizeof(policy_source) - 1, "=fuzz_policy_return",
	                    &limits, err, sizeof(err));
	if (!policy) {
		fprintf(stderr, "fuzz_policy_return: %s\n", err);
		abort();
	}
	return 0;
}

/* Up to n bytes from the input as a little-endian number; missing bytes are zero. */
static uint64_t take(const uint8_t **p, const uint8_t *end, int n)
{
	uint64_t v = 0;
	for (int k = 0; k < n; k++, (*p)++)
		if (*p < end)
			v |= (uint64_t) * *p << (8 * k);
	if (*p > end)
		*p = end;
	return v;
}

static void decode(const uint8_t *data, size_t size, struct values *out)
{
	static const double specials[] = {NAN,
	                                  -NAN,
	                                  INFINITY,
	                                  -INFINITY,
	                                  -0.0,
	                                  0.5,
	                                  200.0,
	                                  399.0,
	                                  400.0,
	                                  599.0,
	                                  599.5,
	                                  600.0,
	                                  199.99,
	                                  9.2233720368547758e18,
	                                  -9.2233720368547758e18,
	                                  1e300,
	                                  -1e300,
	                                  4.9e-324};
	const uint8_t *p = data, *end = data + size;
	out->n = 0;
	while (p < end && out->n < MAX_VALUES) {
		struct value *v = &out->v[out->n++];
		memset(v, 0, sizeof(*v));
		uint64_t bits;
		switch (*p++ % 12) {
		case 0:
			v->kind = V_NIL;
			break;
		case 1:
		case 2:
			v->kind = V_BOOL;
			v->b = p[-1] % 12 == 2;
			break;
		case 3:
			v->kind = V_INT;
			v->i = (lua_Integer)take(&p, end, 8);
			break;
		case 4:
			v->kind = V_FLOAT;
			bits = take(&p, end, 8);
			memcpy(&v->d, &bits, sizeof(v->d));
			break;
		case 5:
			v->kind = V_FLOAT;
			v->d = specials[take(&p, end, 1) %
			                (sizeof(specials) / sizeof(specials[0]))];
			break;
		case 6:
			v->kind = V_INT;
			v->i = (lua_Integer)(take(&p, end, 2) % 1000);
			break;
		case 7:
			v->kind = V_STRING;
			v->len = (size_t)take(&p, end, 1);
			if (v->len > (size_t)(end - p))
				v->len = (size_t)(end - p);
			v->s = (const char *)p;
			p += v->len;
			break;
		case 8:
			v->kind = V_TABLE;
			break;
		case 9:
			v->kind = V_VERDICT_TABLE;
			break;
		case 10:
			v->kind = V_STRING;
			v->s = "200";
			v->len = 3;
			break;
		default:
			v->kind = V_FUNCTION;
			break;
		}
	}
}

static int noop(lua_State *L)
{
	return 0;
}

/* pcall'd: 1 = struct values (light userdata). Returns the values. */
static int push_values(lua_State *L)
{
	const struct values *vs = lua_touserdata(L, 1);
	luaL_checkstack(L, vs->n, "values");
	for (int k = 0; k < vs->n; k++) {
		const struct value *v = &vs->v[k];
		switch (v->kind) {
		case V_NIL:
			lua_pushnil(L);
			break;
		case V_BOOL:
			lua_pushboolean(L, v->b);
			break;
		case V_INT:
			lua_pushinteger(L, v->i);
			break;
		case V_FLOAT:
			lua_pushnumber(L, v->d);
			break;
		case V_STRING:
			lua_pushlstring(L, v->s, v->len);
			break;
		case V_TABLE:
			lua_newtable(L);
			break;
		case V_VERDICT_TABLE:
			lua_createtable(L, 3, 0);
			lua_pushboolean(L, 1);
			lua_rawseti(L, -2, 1);
			lua_pushliteral(L, "ok");
			lua_rawseti(L, -2, 2);
			lua_pushinteger(L, 200);
			lua_rawseti(L, -2, 3);
			break;
		case V_FUNCTION:
			lua_pushcfunction(L, noop);
			break;
		}
	}
	return vs->n;
}

/* The contract, recomputed: fills want and returns true for DONE, false for FAILED. */
static bool expected(const struct values *vs, struct policy_step *want)
{
	const struct value *v = vs->v;
	if (vs->n < 1 || v[0].kind != V_BOOL)
		return false;
	want->healthy = v[0].b;
	want->status = v[0].b ? 200 : 500;
	want->body = (char *)(v[0].b ? "ok" : "unhealthy");
	want->body_len = strlen(want->body);
	if (vs->n >= 2 && v[1].kind != V_NIL) {
		if (v[1].kind != V_STRING)
			return false;
		want->body = (char *)v[1].s;
		want->body_len = v[1].len;
	}
	if (vs->n >= 3 && v[2].kind != V_NIL) {
		double s;
		if (v[2].kind == V_INT)
			s = (double)v[2].i;
		else if (v[2].kind == V_FLOAT && v[2].d == floor(v[2].d))
			s = v[2].d;
		else
			return false;
		if (v[2].kind == V_INT && (v[2].i < 200 || v[2].i > 599))
			return false;
		if (v[0].b ? !(s >= 200 && s <= 399) : !(s >= 400 && s <= 599))
			return false;
		want->status = (int)s;
	}
	return true;
}

static void fail(const char *what, const struct policy_step *got)
{
	fprintf(stderr,
	        "fuzz_policy_return: %s (got kind %d healthy %d status %d body_len %zu "
	        "reason %s: %s)\n",
	        what, got->kind, got->healthy, got->status, got->body_len,
	        stop_reason_label(got->reason), got->detail);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct values vs;
	struct policy_step step = {0}, want = {0};
	decode(data, size, &vs);

	struct policy_run *r =
	        policy_begin(policy, ENDPOINT_HEALTHZ, clock_now_ns() + 10000000000LL, &step);
	if (step.kind != POLICY_STEP_PROBE)
		fail("the policy did not probe", &step);
	lua_State *L = sandbox_state(policy->sb);
	int top = lua_gettop(L);
	lua_pushcfunction(L, push_values);
	lua_pushlightuserdata(L, &vs);
	if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK)
		fail("cannot build the values", &step);
	int n = lua_gettop(L) - top;
	lua_xmove(L, r->co, n);
	run_lua(r, n, true, &step);

	if (expected(&vs, &want)) {
		if (step.kind != POLICY_STEP_DONE || step.healthy != want.healthy ||
		    step.status != want.status || step.body_len != want.body_len ||
		    memcmp(step.body, want.body, want.body_len) != 0 ||
		    step.body[step.body_len] != '\0')
			fail("a valid return was not taken as it is", &step);
	} else if (step.kind != POLICY_STEP_FAILED || step.reason != STOP_RETURN) {
		fail("an invalid return was not refused", &step);
	}
	if (policy->runs || lua_gettop(L) != top)
		fail("the check did not end cleanly", &step);
	policy_step_clear(&step);
	fuzz_policy_reset(policy);
	return 0;
}
