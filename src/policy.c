/*
 * Runs a policy's check(ctx) as a coroutine, one step at a time (policy.h).
 *
 * Registry layout of a policy's Lua state (all refs in struct policy):
 *   check    the check function of the table the chunk returned
 *   funcs    ctx's C functions (probe, sleep, now, deadline, log)
 *   state    ctx.state, kept between checks
 *   history  ctx.history, the last HISTORY_MAX results of earlier checks
 *   pending  results of the check in progress (moved to history at its end)
 *   driver   ctx.driver
 *   thread   the coroutine of the check in progress
 *
 * Every value the host builds inside the state is built in lua_pcall of a C
 * function: with the memory cap full, an unprotected allocation would panic
 * (LUA-NOTES.md).
 */
#include "policy.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "clock.h"
#include "csi.h"
#include "grpc_status.h"
#include "log.h"
#include "sandbox.h"

#define HISTORY_MAX 16
/* A verdict computed right after a probe that ended at the deadline is fine. */
#define COMPUTE_GRACE_NS 50000000LL

enum request { REQUEST_NONE, REQUEST_PROBE, REQUEST_SLEEP, REQUEST_LATE };

struct policy {
	struct sandbox *sb;
	struct policy_limits limits;
	char source_name[256]; /* chunk name without '@', for log lines */
	int check_ref, funcs_ref, state_ref, history_ref, pending_ref, driver_ref, thread_ref;
	lua_State *co;
	int64_t deadline_ns;
	int64_t begin_ns;
	enum request request;
	double request_seconds;
	const char *late_what; /* which ctx call came too late */
};

static double seconds_now(void)
{
	return clock_now_s();
}

static struct policy *policy_of(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* ctx.probe([timeout]) — yields; resumed with the result table. */
static int ctx_probe(lua_State *L)
{
	struct policy *p = policy_of(L);
	double timeout = luaL_optnumber(L, 1, 0);
	/*
	 * A check given no time at all (--probe-timeout <= 0) still probes: the
	 * probe then fails at once with upstream's text rather than by fallback.
	 */
	if (clock_now_ns() > p->deadline_ns && p->deadline_ns > p->begin_ns) {
		p->request = REQUEST_LATE;
		p->late_what = "ctx.probe() started after the check deadline";
		return lua_yield(L, 0);
	}
	p->request = REQUEST_PROBE;
	p->request_seconds = timeout;
	return lua_yield(L, 0);
}

/* ctx.sleep(seconds) — yields; a sleep that would cross the deadline ends the check. */
static int ctx_sleep(lua_State *L)
{
	struct policy *p = policy_of(L);
	double seconds = luaL_checknumber(L, 1);
	luaL_argcheck(L, seconds >= 0 && seconds < 1e9, 1, "must be a non-negative number");
	if (clock_deadline((int64_t)(seconds * 1e9)) > p->deadline_ns) {
		p->request = REQUEST_LATE;
		p->late_what = "ctx.sleep() would cross the check deadline";
		return lua_yield(L, 0);
	}
	p->request = REQUEST_SLEEP;
	p->request_seconds = seconds;
	return lua_yield(L, 0);
}

static int ctx_now(lua_State *L)
{
	lua_pushnumber(L, seconds_now());
	return 1;
}

static int ctx_deadline(lua_State *L)
{
	struct policy *p = policy_of(L);
	double left = (double)(p->deadline_ns - clock_now_ns()) / 1e9;
	lua_pushnumber(L, left > 0 ? left : 0);
	return 1;
}

/* ctx.log(level, message): level "error", "warning", "info" or a -v number. */
static int ctx_log(lua_State *L)
{
	struct policy *p = policy_of(L);
	enum log_severity sev = LOG_INFO;
	int v = 0;
	if (lua_type(L, 1) == LUA_TNUMBER) {
		v = (int)luaL_checkinteger(L, 1);
		luaL_argcheck(L, v >= 0, 1, "verbosity must be >= 0");
	} else {
		static const char *const levels[] = {"info", "warning", "error", NULL};
		static const enum log_severity sevs[] = {LOG_INFO, LOG_WARNING, LOG_ERROR};
		sev = sevs[luaL_checkoption(L, 1, NULL, levels)];
	}
	int t = lua_type(L, 2);
	luaL_argcheck(L, t == LUA_TSTRING || t == LUA_TNUMBER, 2, "string expected");
	if (sev != LOG_INFO || log_enabled(v)) {
		lua_Debug ar;
		int line = 0;
		if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar))
			line = ar.currentline;
		const char *base = strrchr(p->source_name, '/');
		char msg[1024];
		sandbox_error_text(L, 2, msg, sizeof(msg));
		log_write(sev, v, base ? base + 1 : p->source_name, line, msg, (char *)NULL);
	}
	return 0;
}

static int ref_new_table(lua_State *L)
{
	lua_newtable(L);
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* pcall'd: stack 1 = policy (light userdata). Creates the registry tables. */
static int setup_registry(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	static const luaL_Reg funcs[] = {{"probe", ctx_probe}, {"sleep", ctx_sleep},
	                                 {"now", ctx_now},     {"deadline", ctx_deadline},
	                                 {"log", ctx_log},     {NULL, NULL}};
	lua_newtable(L);
	lua_pushlightuserdata(L, p);
	luaL_setfuncs(L, funcs, 1);
	p->funcs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	p->state_ref = ref_new_table(L);
	p->history_ref = ref_new_table(L);
	p->pending_ref = ref_new_table(L);
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "name");
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "vendor_version");
	p->driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

struct policy *policy_new(const char *source, size_t len, const char *chunkname,
                          const struct policy_limits *limits, char *errbuf, size_t errlen)
{
	struct policy *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	p->limits = *limits;
	p->check_ref = p->funcs_ref = p->state_ref = p->history_ref = LUA_NOREF;
	p->pending_ref = p->driver_ref = p->thread_ref = LUA_NOREF;
	snprintf(p->source_name, sizeof(p->source_name), "%s",
	         chunkname[0] == '@' || chunkname[0] == '=' ? chunkname + 1 : chunkname);
	p->sb = sandbox_new(limits->memory, errbuf, errlen);
	if (!p->sb)
		goto err;
	lua_State *L = sandbox_state(p->sb);
	if (sandbox_load(p->sb, source, len, chunkname, limits->instructions, errbuf, errlen) < 0)
		goto err;
	if (!lua_istable(L, -1)) {
		snprintf(errbuf, errlen,
		         "%s: the policy must return a table with a check function, got %s",
		         p->source_name, luaL_typename(L, -1));
		goto err;
	}
	/*
	 * check is read raw, once: a metamethod here would run unprotected and
	 * unhooked. Keeping the function itself means no later lookup either.
	 */
	lua_pushliteral(L, "check");
	if (lua_rawget(L, -2) != LUA_TFUNCTION) {
		snprintf(errbuf, errlen, "%s: the policy table has no check function (check is %s)",
		         p->source_name, luaL_typename(L, -1));
		goto err;
	}
	p->check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);
	lua_pushcfunction(L, setup_registry);
	lua_pushlightuserdata(L, p);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		snprintf(errbuf, errlen, "%s: out of memory setting up the policy", p->source_name);
		goto err;
	}
	return p;
err:
	policy_free(p);
	return NULL;
}

struct policy *policy_new_builtin(const struct policy_limits *limits, char *errbuf, size_t errlen)
{
	return policy_new(lp_default_policy_source, lp_default_policy_source_len,
	                  POLICY_BUILTIN_CHUNKNAME, limits, errbuf, errlen);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	sandbox_free(p->sb);
	free(p);
}

size_t policy_memory(const struct policy *p)
{
	return sandbox_memory(p->sb);
}

/* pcall'd: 1 = policy, 2 = name, 3 = vendor_version. */
static int set_driver(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	lua_createtable(L, 0, 2);
	lua_pushvalue(L, 2);
	lua_setfield(L, -2, "name");
	lua_pushvalue(L, 3);
	lua_setfield(L, -2, "vendor_version");
	lua_rawseti(L, LUA_REGISTRYINDEX, p->driver_ref);
	return 0;
}

void policy_set_driver(struct policy *p, const char *name, const char *vendor_version)
{
	lua_State *L = sandbox_state(p->sb);
	lua_pushcfunction(L, set_driver);
	lua_pushlightuserdata(L, p);
	lua_pushstring(L, name);
	lua_pushstring(L, vendor_version);
	if (lua_pcall(L, 3, 0, 0) != LUA_OK)
		lua_pop(L, 1); /* out of memory: ctx.driver keeps its old value */
}

void policy_step_clear(struct policy_step *step)
{
	free(step->body);
	memset(step, 0, sizeof(*step));
}

static void step_fail(struct policy_step *step, const char *reason, const char *detail)
{
	policy_step_clear(step);
	step->kind = POLICY_STEP_FAILED;
	step->reason = reason;
	snprintf(step->detail, sizeof(step->detail), "%s", detail);
}

/*
 * A traceback of the dead coroutine, written without allocating in the
 * state (its memory may be exhausted).
 */
static void append_traceback(lua_State *co, char *out, size_t len)
{
	lua_Debug ar;
	size_t used = strlen(out);
	for (int level = 0; level < 12 && used + 1 < len && lua_getstack(co, level, &ar); level++) {
		if (!lua_getinfo(co, "Sl", &ar))
			break;
		if (ar.currentline <= 0)
			continue; /* C functions add nothing a policy author can use */
		int n = snprintf(out + used, len - used, "\n\t%s:%d: in %s", ar.short_src,
		                 ar.currentline, ar.what[0] == 'm' ? "main chunk" : "function");
		if (n < 0)
			break;
		used += (size_t)n < len - used ? (size_t)n : len - used - 1;
	}
}

/* pcall'd: 1 = policy. Moves pending results into history, keeping the last HISTORY_MAX. */
static int merge_history(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->history_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->pending_ref);
	lua_Integer h = (lua_Integer)lua_rawlen(L, 2), n = (lua_Integer)lua_rawlen(L, 3);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, 3, i);
		lua_rawseti(L, 2, ++h);
	}
	lua_Integer drop = h > HISTORY_MAX ? h - HISTORY_MAX : 0;
	if (drop > 0) {
		for (lua_Integer i = 1; i <= HISTORY_MAX; i++) {
			lua_rawgeti(L, 2, i + drop);
			lua_rawseti(L, 2, i);
		}
		for (lua_Integer i = HISTORY_MAX + 1; i <= h; i++) {
			lua_pushnil(L);
			lua_rawseti(L, 2, i);
		}
	}
	lua_newtable(L);
	lua_rawseti(L, LUA_REGISTRYINDEX, p->pending_ref);
	return 0;
}

/* Ends the check in progress: limits off, coroutine dropped, history kept. */
static void end_check(struct policy *p)
{
	if (!p->co)
		return;
	lua_State *L = sandbox_state(p->sb);
	sandbox_disarm(p->sb, p->co);
	luaL_unref(L, LUA_REGISTRYINDEX, p->thread_ref);
	p->thread_ref = LUA_NOREF;
	p->co = NULL;
	p->request = REQUEST_NONE;
	lua_pushcfunction(L, merge_history);
	lua_pushlightuserdata(L, p);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		lua_pop(L, 1);
	if (sandbox_hit_memory_cap(p->sb)) {
		/* Give the memory back before the next check, to Lua and then to the system. */
		lua_gc(L, LUA_GCCOLLECT, 0);
		malloc_trim(0);
	}
}

/* Checks the values check() returned (on co's stack top) and fills step. */
static void read_verdict(struct policy *p, int nres, struct policy_step *step)
{
	lua_State *co = p->co;
	char msg[512];
	int base = lua_gettop(co) - nres + 1;
	if (nres < 1 || lua_type(co, base) != LUA_TBOOLEAN) {
		snprintf(msg, sizeof(msg), "%s: check must return a boolean first, got %s",
		         p->source_name, nres < 1 ? "nothing" : luaL_typename(co, base));
		step_fail(step, "return", msg);
		return;
	}
	bool healthy = lua_toboolean(co, base);
	const char *body = healthy ? "ok" : "unhealthy";
	size_t body_len = strlen(body);
	int status = healthy ? 200 : 500;
	if (nres >= 2 && !lua_isnil(co, base + 1)) {
		if (lua_type(co, base + 1) != LUA_TSTRING) {
			snprintf(msg, sizeof(msg), "%s: check's body must be a string, got %s",
			         p->source_name, luaL_typename(co, base + 1));
			step_fail(step, "return", msg);
			return;
		}
		body = lua_tolstring(co, base + 1, &body_len);
		if (body_len > POLICY_BODY_MAX) {
			snprintf(msg, sizeof(msg),
			         "%s: check's body is %zu bytes, more than the %u allowed",
			         p->source_name, body_len, POLICY_BODY_MAX);
			step_fail(step, "return", msg);
			return;
		}
	}
	if (nres >= 3 && !lua_isnil(co, base + 2)) {
		int isint = 0;
		lua_Integer s = lua_type(co, base + 2) == LUA_TNUMBER
		                        ? lua_tointegerx(co, base + 2, &isint)
		                        : 0;
		bool in_range = healthy ? (s >= 200 && s <= 399) : (s >= 400 && s <= 599);
		if (!isint || !in_range) {
			snprintf(msg, sizeof(msg),
			         "%s: check's status must be an integer in %s for a %s verdict",
			         p->source_name, healthy ? "200-399" : "400-599",
			         healthy ? "healthy" : "unhealthy");
			step_fail(step, "return", msg);
			return;
		}
		status = (int)s;
	}
	policy_step_clear(step);
	step->body = malloc(body_len + 1);
	if (!step->body) {
		step_fail(step, "memory", "out of memory copying the body");
		return;
	}
	memcpy(step->body, body, body_len);
	step->body[body_len] = '\0';
	step->body_len = body_len;
	step->kind = POLICY_STEP_DONE;
	step->healthy = healthy;
	step->status = status;
}

static const char *stop_reason(struct policy *p)
{
	switch (sandbox_stopped(p->sb)) {
	case SANDBOX_STOP_INSTRUCTIONS:
		return "instructions";
	case SANDBOX_STOP_TIME:
		return "timeout";
	default:
		return sandbox_hit_memory_cap(p->sb) ? "memory" : NULL;
	}
}

/* Resumes the check's coroutine with nargs values on its stack; fills step. */
static void run(struct policy *p, int nargs, struct policy_step *step)
{
	lua_State *L = sandbox_state(p->sb);
	int nres = 0;
	p->request = REQUEST_NONE;
	int status = lua_resume(p->co, L, nargs, &nres);
	const char *limit = stop_reason(p);
	char msg[1536];

	if (status == LUA_YIELD && !limit && p->request == REQUEST_PROBE) {
		lua_pop(p->co, nres);
		policy_step_clear(step);
		step->kind = POLICY_STEP_PROBE;
		step->seconds = p->request_seconds;
		return;
	}
	if (status == LUA_YIELD && !limit && p->request == REQUEST_SLEEP) {
		lua_pop(p->co, nres);
		policy_step_clear(step);
		step->kind = POLICY_STEP_SLEEP;
		step->seconds = p->request_seconds;
		return;
	}
	if (status == LUA_OK && !limit) {
		read_verdict(p, nres, step);
	} else if (status == LUA_YIELD) {
		if (limit)
			snprintf(msg, sizeof(msg), "%s: %s", p->source_name,
			         strcmp(limit, "timeout") == 0 ? "policy ran out of time"
			         : strcmp(limit, "memory") == 0
			                 ? "the policy went over its memory cap"
			                 : "policy exceeded its instruction limit");
		else if (p->request == REQUEST_LATE)
			snprintf(msg, sizeof(msg), "%s: %s", p->source_name, p->late_what);
		else
			snprintf(msg, sizeof(msg), "%s: policy yielded from the wrong place",
			         p->source_name);
		append_traceback(p->co, msg, sizeof(msg));
		step_fail(step, limit ? limit : (p->request == REQUEST_LATE ? "timeout" : "error"),
		          msg);
	} else if (status == LUA_OK) {
		/* The policy caught its limit error and returned: the check still fails. */
		snprintf(msg, sizeof(msg), "%s: %s", p->source_name,
		         strcmp(limit, "memory") == 0    ? "the policy went over its memory cap"
		         : strcmp(limit, "timeout") == 0 ? "policy ran out of time"
		                                         : "policy exceeded its instruction limit");
		step_fail(step, limit, msg);
	} else {
		sandbox_error_text(p->co, -1, msg, sizeof(msg));
		append_traceback(p->co, msg, sizeof(msg));
		step_fail(step, limit ? limit : "error", msg);
	}
	end_check(p);
}

/* pcall'd: 1 = policy. Pushes a new thread holding check and ctx. */
static int setup_check(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	lua_State *co = lua_newthread(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->check_ref);
	lua_createtable(L, 0, 8);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->funcs_ref);
	static const char *const names[] = {"probe", "sleep", "now", "deadline", "log", NULL};
	for (int i = 0; names[i]; i++) {
		lua_getfield(L, -1, names[i]);
		lua_setfield(L, -3, names[i]);
	}
	lua_pop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->driver_ref);
	lua_setfield(L, -2, "driver");
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->state_ref);
	lua_setfield(L, -2, "state");
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->history_ref);
	lua_setfield(L, -2, "history");
	lua_xmove(L, co, 2); /* co: check, ctx */
	return 1;
}

void policy_begin(struct policy *p, int64_t deadline_ns, struct policy_step *step)
{
	lua_State *L = sandbox_state(p->sb);
	policy_abandon(p);
	p->deadline_ns = deadline_ns;
	p->begin_ns = clock_now_ns();
	lua_pushcfunction(L, setup_check);
	lua_pushlightuserdata(L, p);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		lua_pop(L, 1);
		step_fail(step, "memory", "out of memory starting the check");
		return;
	}
	p->co = lua_tothread(L, -1);
	p->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	sandbox_arm(p->sb, p->co, p->limits.instructions, clock_add(deadline_ns, COMPUTE_GRACE_NS));
	run(p, 1, step);
}

/* pcall'd: 1 = policy, 2 = result (light userdata). Pushes the result table. */
static int push_result(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	const struct csi_probe_result *r = lua_touserdata(L, 2);
	lua_createtable(L, 0, 8);
	lua_pushboolean(L, r->code == 0);
	lua_setfield(L, -2, "ok");
	if (r->code == 0 && r->ready >= 0) {
		lua_pushboolean(L, r->ready);
		lua_setfield(L, -2, "ready");
	}
	lua_pushstring(L, grpc_status_canonical_name(r->code));
	lua_setfield(L, -2, "code");
	lua_pushstring(L, r->message);
	lua_setfield(L, -2, "message");
	if (r->code != 0) {
		lua_pushstring(L, r->error);
		lua_setfield(L, -2, "error");
	}
	lua_pushboolean(L, r->connected);
	lua_setfield(L, -2, "connected");
	lua_pushnumber(L, r->seconds);
	lua_setfield(L, -2, "seconds");
	lua_pushnumber(L, seconds_now());
	lua_setfield(L, -2, "at");
	/* The same table goes to history at the end of the check. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->pending_ref);
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	lua_pop(L, 1);
	return 1;
}

void policy_resume_probe(struct policy *p, const struct csi_probe_result *r,
                         struct policy_step *step)
{
	lua_State *L = sandbox_state(p->sb);
	if (!p->co) {
		step_fail(step, "error", "no check in progress");
		return;
	}
	lua_pushcfunction(L, push_result);
	lua_pushlightuserdata(L, p);
	lua_pushlightuserdata(L, (void *)r);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		lua_pop(L, 1);
		step_fail(step, "memory", "out of memory passing the probe result to the policy");
		end_check(p);
		return;
	}
	lua_xmove(L, p->co, 1);
	run(p, 1, step);
}

void policy_resume_sleep(struct policy *p, struct policy_step *step)
{
	if (!p->co) {
		step_fail(step, "error", "no check in progress");
		return;
	}
	run(p, 0, step);
}

void policy_abandon(struct policy *p)
{
	end_check(p);
}
