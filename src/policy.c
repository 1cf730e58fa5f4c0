/*
 * Runs a policy's check(ctx) as coroutines, one step at a time (policy.h).
 *
 * Registry layout of a policy's Lua state (refs in struct policy and
 * struct policy_run):
 *   fn[e]    the function answering endpoint e (check, and the optional
 *            ready and startup) of the table the chunk returned
 *   funcs    ctx's C functions (probe, call, file, sleep, now, deadline, log)
 *   state    ctx.state, kept between checks
 *   history  ctx.history, the last HISTORY_MAX results of earlier checks
 *   driver   ctx.driver
 *   a run's thread   its coroutine
 *   a run's pending  its probe results (moved to history when it ends)
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

#include <lauxlib.h>

#include "clock.h"
#include "csi.h"
#include "csi_methods.h"
#include "file_check.h"
#include "grpc_status.h"
#include "log.h"
#include "policy_reply.h"
#include "utf8.h"

#define HISTORY_MAX 16
/* A verdict computed right after a probe that ended at the deadline is fine. */
#define COMPUTE_GRACE_NS 50000000LL
/*
 * Instructions charged per resume at least, whatever the hook counted: a
 * policy that yields in a loop (ctx.sleep(0), ctx.probe() answered at once)
 * spends its budget too, and ends.
 */
#define RESUME_COST 100

enum request {
	REQUEST_NONE,
	REQUEST_PROBE,
	REQUEST_CALL,
	REQUEST_FILE,
	REQUEST_SLEEP,
	REQUEST_LATE,
};

/* The longest path ctx.file takes (PATH_MAX, with its NUL). */
#define FILE_PATH_MAX 4096

struct policy_run {
	struct policy *policy;
	lua_State *co;
	int thread_ref, pending_ref;
	int64_t deadline_ns;
	int64_t begin_ns;
	int64_t budget;         /* instructions left */
	unsigned probes;        /* ctx.probe() calls so far */
	enum endpoint endpoint; /* which function runs */
	enum request request;
	double request_seconds;
	const struct csi_method *call; /* REQUEST_CALL; and the call awaited */
	char *file_path;               /* REQUEST_FILE: malloc'd, handed to the step */
	const char *late_what;         /* which ctx call came too late */
	struct policy_run *next;
};

struct policy {
	struct sandbox *sb;
	struct policy_limits limits;
	char source_name[4200];     /* chunk name without '@', for messages */
	const char *log_name;       /* its last path element, for log lines */
	int fn_ref[ENDPOINT_COUNT]; /* LUA_NOREF: the policy has no such function */
	int funcs_ref, state_ref, history_ref, driver_ref;
	struct policy_run *runs;      /* in flight */
	struct policy_run *current;   /* the run whose Lua runs now; ctx's functions act on it */
	int64_t (*now_ns)(void *ctx); /* the clock runs see: clock_now_ns, or a simulated one */
	void *clock_ctx;
	bool settled; /* a run has ended: start-up's garbage is collected */
};

static int64_t real_now(void *ctx)
{
	return clock_now_ns();
}

/* Now, on the clock the policy's runs see. */
static int64_t now_of(const struct policy *p)
{
	return p->now_ns(p->clock_ctx);
}

void policy_set_clock(struct policy *p, int64_t (*now_ns)(void *ctx), void *ctx)
{
	p->now_ns = now_ns ? now_ns : real_now;
	p->clock_ctx = ctx;
}

/* ctx.probe([timeout]) — yields; resumed with the result table. */
static int ctx_probe(lua_State *L)
{
	struct policy_run *run = ((struct policy *)lua_touserdata(L, lua_upvalueindex(1)))->current;
	double timeout = luaL_optnumber(L, 1, 0);
	/*
	 * A check given no time at all (--probe-timeout <= 0) still makes its
	 * first probe: it fails at once with upstream's text rather than by
	 * fallback. Any other probe at or past the deadline is late: a policy
	 * that retries until a probe succeeds cannot spin past its deadline.
	 */
	int64_t now = now_of(run->policy);
	bool first = run->probes++ == 0;
	if (first ? now > run->deadline_ns && run->deadline_ns > run->begin_ns
	          : now >= run->deadline_ns) {
		run->request = REQUEST_LATE;
		run->late_what = "ctx.probe() started after the check deadline";
		return lua_yield(L, 0);
	}
	run->request = REQUEST_PROBE;
	/* 0, negative or NaN: the probe timeout. */
	run->request_seconds = timeout > 0 ? timeout : 0;
	return lua_yield(L, 0);
}

/*
 * Whether a probe, call or stat starting now is late: at or past the
 * deadline. A late one ends the check (as REQUEST_LATE), so that a policy
 * that retries until something succeeds cannot spin past its deadline.
 */
static bool late(struct policy_run *run, const char *what)
{
	if (now_of(run->policy) < run->deadline_ns)
		return false;
	run->request = REQUEST_LATE;
	run->late_what = what;
	return true;
}

/* ctx.call's message for a refused call, method quoted and cut (it is the policy's text). */
static int refuse_call(lua_State *L, const char *method, const char *why)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "ctx.call(\"%.64s\"): %s", method, why);
	return luaL_error(L, "%s", msg);
}

/*
 * ctx.call(method [, request] [, timeout]) — yields; resumed with the
 * result table. Only the read-only calls of csi_methods.h: any other
 * method raises, naming the allowed ones. Their requests have no fields:
 * request may be nil or an empty table. A timeout in the second place is
 * taken as the timeout.
 */
static int ctx_call(lua_State *L)
{
	struct policy_run *run = ((struct policy *)lua_touserdata(L, lua_upvalueindex(1)))->current;
	const char *name = luaL_checkstring(L, 1);
	const struct csi_method *m = csi_method_by_name(name);
	if (!m || !m->callable) {
		char why[400];
		snprintf(why, sizeof(why), "not a read-only call a policy may make (allowed: %s)",
		         csi_callable_methods());
		return refuse_call(L, name, why);
	}
	int timeout_arg = 3;
	switch (lua_type(L, 2)) {
	case LUA_TNONE:
	case LUA_TNIL:
		break;
	case LUA_TNUMBER:
		timeout_arg = 2;
		break;
	case LUA_TTABLE:
		lua_pushnil(L);
		if (lua_next(L, 2)) /* raw: no metamethod runs */
			return refuse_call(L, name, "its request has no fields: pass nil or {}");
		break;
	default:
		return luaL_typeerror(L, 2, "nil, table or number");
	}
	double timeout = luaL_optnumber(L, timeout_arg, 0);
	if (late(run, "ctx.call() started after the check deadline"))
		return lua_yield(L, 0);
	run->request = REQUEST_CALL;
	run->call = m;
	/* 0, negative or NaN: the probe timeout. */
	run->request_seconds = timeout > 0 ? timeout : 0;
	return lua_yield(L, 0);
}

/* ctx.file's continuation: the daemon's answer is a table, or the text of a refusal. */
static int ctx_file_done(lua_State *L, int status, lua_KContext k)
{
	if (lua_type(L, -1) == LUA_TSTRING)
		return luaL_error(L, "%s", lua_tostring(L, -1));
	return 1;
}

/*
 * ctx.file(path) — yields; resumed with {exists, type, size, age} (and
 * error, when the stat did not answer), or raises when path is not allowed.
 */
static int ctx_file(lua_State *L)
{
	struct policy_run *run = ((struct policy *)lua_touserdata(L, lua_upvalueindex(1)))->current;
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len);
	if (len >= FILE_PATH_MAX || memchr(path, '\0', len) || path[0] != '/') {
		char msg[200];
		snprintf(msg, sizeof(msg), "ctx.file(\"%.64s\"): %s", path,
		         len >= FILE_PATH_MAX      ? "the path is too long"
		         : memchr(path, '\0', len) ? "the path holds a NUL byte"
		                                   : "not an absolute path");
		return luaL_error(L, "%s", msg);
	}
	if (late(run, "ctx.file() started after the check deadline"))
		return lua_yield(L, 0);
	free(run->file_path);
	run->file_path = strdup(path);
	if (!run->file_path)
		return luaL_error(L, "ctx.file: out of memory");
	run->request = REQUEST_FILE;
	return lua_yieldk(L, 0, 0, ctx_file_done);
}

/* ctx.sleep(seconds) — yields; a sleep that would cross the deadline ends the check. */
static int ctx_sleep(lua_State *L)
{
	struct policy_run *run = ((struct policy *)lua_touserdata(L, lua_upvalueindex(1)))->current;
	double seconds = luaL_checknumber(L, 1);
	luaL_argcheck(L, seconds >= 0 && seconds < 1e9, 1, "must be a non-negative number");
	if (clock_add(now_of(run->policy), clock_ns_of_seconds(seconds)) > run->deadline_ns) {
		run->request = REQUEST_LATE;
		run->late_what = "ctx.sleep() would cross the check deadline";
		return lua_yield(L, 0);
	}
	run->request = REQUEST_SLEEP;
	run->request_seconds = seconds;
	return lua_yield(L, 0);
}

static int ctx_now(lua_State *L)
{
	lua_pushnumber(L, (double)now_of(lua_touserdata(L, lua_upvalueindex(1))) / 1e9);
	return 1;
}

static int ctx_deadline(lua_State *L)
{
	struct policy_run *run = ((struct policy *)lua_touserdata(L, lua_upvalueindex(1)))->current;
	int64_t now = now_of(run->policy);
	/* Compared first: the difference of far-apart clock values overflows. */
	lua_pushnumber(L,
	               run->deadline_ns > now ? ((double)run->deadline_ns - (double)now) / 1e9 : 0);
	return 1;
}

/* ctx.log(level, message): level "error", "warning", "info" or a -v number. */
static int ctx_log(lua_State *L)
{
	struct policy *p = lua_touserdata(L, lua_upvalueindex(1));
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
		char msg[1024];
		sandbox_error_text(L, 2, msg, sizeof(msg));
		log_write(sev, v, p->log_name, line, msg, (char *)NULL);
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
	static const luaL_Reg funcs[] = {{"probe", ctx_probe}, {"call", ctx_call},
	                                 {"file", ctx_file},   {"sleep", ctx_sleep},
	                                 {"now", ctx_now},     {"deadline", ctx_deadline},
	                                 {"log", ctx_log},     {NULL, NULL}};
	lua_newtable(L);
	lua_pushlightuserdata(L, p);
	luaL_setfuncs(L, funcs, 1);
	p->funcs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	p->state_ref = ref_new_table(L);
	p->history_ref = ref_new_table(L);
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "name");
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "vendor_version");
	p->driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/*
 * pcall'd: 1 = policy, 2 = the table the chunk returned. Keeps its
 * functions in the registry, read raw, once: a metamethod here would run
 * unprotected and unhooked, and keeping the functions themselves means no
 * later lookup either. check is required; ready and startup may be absent
 * (the built-in policy answers those endpoints then). Raises
 * "file:line: reason", line being the chunk's last (its return).
 */
static int read_functions(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	for (int e = 0; e < ENDPOINT_COUNT; e++) {
		const char *name = endpoint_function((enum endpoint)e);
		lua_pushstring(L, name);
		int t = lua_rawget(L, 2);
		if (t == LUA_TFUNCTION) {
			p->fn_ref[e] = luaL_ref(L, LUA_REGISTRYINDEX);
			continue;
		}
		if (e == ENDPOINT_HEALTHZ)
			return luaL_error(
			        L, "%s:%d: the policy table has no check function (check is %s)",
			        p->source_name, sandbox_loaded_line(p->sb), luaL_typename(L, -1));
		if (t != LUA_TNIL)
			return luaL_error(L, "%s:%d: the policy's %s must be a function, got %s",
			                  p->source_name, sandbox_loaded_line(p->sb), name,
			                  luaL_typename(L, -1));
		lua_pop(L, 1);
	}
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
	p->now_ns = real_now;
	for (int e = 0; e < ENDPOINT_COUNT; e++)
		p->fn_ref[e] = LUA_NOREF;
	p->funcs_ref = p->state_ref = p->history_ref = p->driver_ref = LUA_NOREF;
	snprintf(p->source_name, sizeof(p->source_name), "%s",
	         chunkname[0] == '@' || chunkname[0] == '=' ? chunkname + 1 : chunkname);
	const char *slash = strrchr(p->source_name, '/');
	p->log_name = slash ? slash + 1 : p->source_name;
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
	lua_pushcfunction(L, read_functions);
	lua_pushlightuserdata(L, p);
	lua_rotate(L, -3, -1); /* read_functions, p, table */
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		snprintf(errbuf, errlen, "%s",
		         lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
		                                        : "out of memory reading the policy table");
		goto err;
	}
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
	while (p->runs) {
		struct policy_run *run = p->runs;
		p->runs = run->next;
		free(run); /* its Lua values go with the state */
	}
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
	free(step->path);
	memset(step, 0, sizeof(*step));
}

static void step_fail(struct policy_step *step, enum stop_reason reason, const char *detail,
                      const char *traceback)
{
	policy_step_clear(step);
	step->kind = POLICY_STEP_FAILED;
	step->reason = reason;
	/* Cut, where it must be, between two characters. */
	size_t n = utf8_copy(step->detail, sizeof(step->detail), detail, strlen(detail));
	if (traceback)
		utf8_copy(step->detail + n, sizeof(step->detail) - n, traceback, strlen(traceback));
}

/* pcall'd: 1 = policy, 2 = run. Moves the run's results into history, keeping the last HISTORY_MAX.
 */
static int merge_history(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	struct policy_run *run = lua_touserdata(L, 2);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->history_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, run->pending_ref);
	lua_Integer h = (lua_Integer)lua_rawlen(L, 3), n = (lua_Integer)lua_rawlen(L, 4);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, 4, i);
		lua_rawseti(L, 3, ++h);
	}
	lua_Integer drop = h > HISTORY_MAX ? h - HISTORY_MAX : 0;
	if (drop > 0) {
		for (lua_Integer i = 1; i <= HISTORY_MAX; i++) {
			lua_rawgeti(L, 3, i + drop);
			lua_rawseti(L, 3, i);
		}
		for (lua_Integer i = HISTORY_MAX + 1; i <= h; i++) {
			lua_pushnil(L);
			lua_rawseti(L, 3, i);
		}
	}
	return 0;
}

/* Ends a run: limits off, coroutine dropped, its results into history, freed. */
static void end_run(struct policy_run *run)
{
	struct policy *p = run->policy;
	lua_State *L = sandbox_state(p->sb);
	for (struct policy_run **pp = &p->runs; *pp; pp = &(*pp)->next) {
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	}
	if (p->current == run)
		p->current = NULL;
	sandbox_disarm(p->sb, run->co);
	lua_pushcfunction(L, merge_history);
	lua_pushlightuserdata(L, p);
	lua_pushlightuserdata(L, run);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK)
		lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, run->thread_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, run->pending_ref);
	free(run->file_path);
	free(run);
	if (!p->settled || sandbox_hit_memory_cap(p->sb)) {
		/*
		 * After a memory bomb, and once after the first check (start-up's
		 * garbage: loading, the first call's buffers): the memory goes back
		 * before the next check, to Lua and then to the system.
		 */
		p->settled = true;
		lua_gc(L, LUA_GCCOLLECT, 0);
		malloc_trim(0);
	}
}

/* Checks the values check() returned (on co's stack top) and fills step. */
static void read_verdict(struct policy_run *run, int nres, struct policy_step *step)
{
	struct policy *p = run->policy;
	lua_State *co = run->co;
	const char *fn = endpoint_function(run->endpoint);
	char msg[4400];
	int base = lua_gettop(co) - nres + 1;
	if (nres < 1 || lua_type(co, base) != LUA_TBOOLEAN) {
		snprintf(msg, sizeof(msg), "%s: %s must return a boolean first, got %s",
		         p->source_name, fn, nres < 1 ? "nothing" : luaL_typename(co, base));
		step_fail(step, STOP_RETURN, msg, NULL);
		return;
	}
	bool healthy = lua_toboolean(co, base);
	const char *body = healthy ? "ok" : "unhealthy";
	size_t body_len = strlen(body);
	int status = healthy ? 200 : 500;
	if (nres >= 2 && !lua_isnil(co, base + 1)) {
		if (lua_type(co, base + 1) != LUA_TSTRING) {
			snprintf(msg, sizeof(msg), "%s: %s's body must be a string, got %s",
			         p->source_name, fn, luaL_typename(co, base + 1));
			step_fail(step, STOP_RETURN, msg, NULL);
			return;
		}
		body = lua_tolstring(co, base + 1, &body_len);
		if (body_len > POLICY_BODY_MAX) {
			snprintf(msg, sizeof(msg),
			         "%s: %s's body is %zu bytes, more than the %u allowed",
			         p->source_name, fn, body_len, POLICY_BODY_MAX);
			step_fail(step, STOP_RETURN, msg, NULL);
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
			         "%s: %s's status must be an integer in %s for a %s verdict",
			         p->source_name, fn, healthy ? "200-399" : "400-599",
			         healthy ? "healthy" : "unhealthy");
			step_fail(step, STOP_RETURN, msg, NULL);
			return;
		}
		status = (int)s;
	}
	policy_step_clear(step);
	step->body = malloc(body_len + 1);
	if (!step->body) {
		step_fail(step, STOP_MEMORY, "out of memory copying the body", NULL);
		return;
	}
	memcpy(step->body, body, body_len);
	step->body[body_len] = '\0';
	step->body_len = body_len;
	step->kind = POLICY_STEP_DONE;
	step->healthy = healthy;
	step->status = status;
}

/*
 * Starts (resumed false) or resumes the run's coroutine with nargs values
 * on its stack and fills step. A final step ends the run. A resume is
 * charged RESUME_COST at least; the start is not, so that the smallest
 * --policy-instruction-limit still runs a one-probe check.
 */
static void run_lua(struct policy_run *run, int nargs, bool resumed, struct policy_step *step)
{
	struct policy *p = run->policy;
	struct sandbox_run out;
	run->request = REQUEST_NONE;
	if (run->budget <= 0) {
		/* Spent on resumes alone (RESUME_COST): the run ends before running more. */
		char msg[4400];
		snprintf(msg, sizeof(msg), "%s: %s", p->source_name,
		         stop_reason_phrase(STOP_INSTRUCTIONS));
		step_fail(step, STOP_INSTRUCTIONS, msg, NULL);
		end_run(run);
		return;
	}
	int64_t budget_before = run->budget;
	p->current = run;
	/* The hook's deadline is on the real clock: it bounds computing, whatever clock the run
	 * sees. */
	int64_t left = clock_sub(run->deadline_ns, now_of(p));
	sandbox_arm(p->sb, run->co, run->budget,
	            clock_add(clock_now_ns(), clock_add(left, COMPUTE_GRACE_NS)));
	sandbox_resume(p->sb, run->co, nargs, p->source_name, "policy", &out);
	run->budget = sandbox_disarm(p->sb, run->co);
	/* The hook counts in steps of HOOK_EVERY: a resume costs at least RESUME_COST. */
	if (resumed && run->budget > budget_before - RESUME_COST)
		run->budget = budget_before - RESUME_COST;
	p->current = NULL;

	if (out.status == SANDBOX_YIELDED && run->request != REQUEST_NONE &&
	    run->request != REQUEST_LATE) {
		static const enum policy_step_kind kinds[] = {
		        [REQUEST_PROBE] = POLICY_STEP_PROBE,
		        [REQUEST_CALL] = POLICY_STEP_CALL,
		        [REQUEST_FILE] = POLICY_STEP_FILE,
		        [REQUEST_SLEEP] = POLICY_STEP_SLEEP,
		};
		lua_pop(run->co, out.nres);
		policy_step_clear(step);
		step->kind = kinds[run->request];
		step->seconds = run->request_seconds;
		if (run->request == REQUEST_CALL)
			step->method = run->call->name;
		if (run->request == REQUEST_FILE) {
			step->path = run->file_path; /* the step's now */
			run->file_path = NULL;
		}
		return;
	}
	if (out.status == SANDBOX_RETURNED) {
		read_verdict(run, out.nres, step);
	} else if (out.status == SANDBOX_YIELDED) {
		/* A yield the host did not ask for, or asked for too late. */
		char msg[4400], traceback[768];
		snprintf(msg, sizeof(msg), "%s: %s", p->source_name,
		         run->request == REQUEST_LATE ? run->late_what
		                                      : "policy yielded from the wrong place");
		sandbox_traceback(run->co, traceback, sizeof(traceback));
		step_fail(step, run->request == REQUEST_LATE ? STOP_TIMEOUT : STOP_ERROR, msg,
		          traceback);
	} else {
		step_fail(step, out.reason, out.message, out.traceback);
	}
	end_run(run);
}

/* pcall'd: 1 = policy, 2 = run. Pushes a new thread holding check and ctx. */
static int setup_check(lua_State *L)
{
	struct policy *p = lua_touserdata(L, 1);
	struct policy_run *run = lua_touserdata(L, 2);
	lua_State *co = lua_newthread(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->fn_ref[run->endpoint]);
	lua_createtable(L, 0, 8);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->funcs_ref);
	static const char *const names[] = {"probe", "call",     "file", "sleep",
	                                    "now",   "deadline", "log",  NULL};
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
	lua_newtable(L);
	run->pending_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 1;
}

bool policy_answers(const struct policy *p, enum endpoint e)
{
	return p->fn_ref[e] != LUA_NOREF;
}

struct policy_run *policy_begin(struct policy *p, enum endpoint e, int64_t deadline_ns,
                                struct policy_step *step)
{
	lua_State *L = sandbox_state(p->sb);
	if (!policy_answers(p, e)) {
		char msg[4400];
		snprintf(msg, sizeof(msg), "%s: the policy has no %s function", p->source_name,
		         endpoint_function(e));
		step_fail(step, STOP_ERROR, msg, NULL);
		return NULL;
	}
	struct policy_run *run = calloc(1, sizeof(*run));
	if (!run) {
		step_fail(step, STOP_MEMORY, "out of memory starting the check", NULL);
		return NULL;
	}
	run->policy = p;
	run->endpoint = e;
	run->thread_ref = run->pending_ref = LUA_NOREF;
	run->deadline_ns = deadline_ns;
	run->begin_ns = now_of(p);
	run->budget = p->limits.instructions;
	lua_pushcfunction(L, setup_check);
	lua_pushlightuserdata(L, p);
	lua_pushlightuserdata(L, run);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		lua_pop(L, 1);
		luaL_unref(L, LUA_REGISTRYINDEX, run->pending_ref);
		free(run);
		step_fail(step, STOP_MEMORY, "out of memory starting the check", NULL);
		return NULL;
	}
	run->co = lua_tothread(L, -1);
	run->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	run->next = p->runs;
	p->runs = run;
	run_lua(run, 1, false, step);
	return policy_step_continues(step->kind) ? run : NULL;
}

/* pcall'd: 1 = run, 2 = result (light userdata). Pushes the result table. */
static int push_result(lua_State *L)
{
	struct policy_run *run = lua_touserdata(L, 1);
	const struct csi_result *r = lua_touserdata(L, 2);
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
	lua_pushnumber(L, (double)now_of(run->policy) / 1e9);
	lua_setfield(L, -2, "at");
	/* The same table goes to history at the end of the check. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, run->pending_ref);
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	lua_pop(L, 1);
	return 1;
}

/*
 * pcall'd: 1 = run, 2 = result, 3 = the decoded reply or NULL (light
 * userdata). Pushes {ok, code, message, seconds, at, connected, error} with
 * the reply's fields. A reply that does not decode here (csi.c checked it
 * already) makes the result INTERNAL, as it would have there.
 */
static int push_call_result(lua_State *L)
{
	const struct policy_run *run = lua_touserdata(L, 1);
	const struct csi_result *r = lua_touserdata(L, 2);
	const ProtobufCMessage *reply = lua_touserdata(L, 3);
	bool undecodable = r->code == 0 && !reply;
	int code = undecodable ? 13 /* INTERNAL */ : r->code;
	lua_createtable(L, 0, 10);
	lua_pushboolean(L, code == 0);
	lua_setfield(L, -2, "ok");
	lua_pushstring(L, grpc_status_canonical_name(code));
	lua_setfield(L, -2, "code");
	lua_pushstring(L,
	               undecodable ? "grpc: failed to unmarshal the received message" : r->message);
	lua_setfield(L, -2, "message");
	if (code != 0) {
		lua_pushstring(L, undecodable ? "rpc error: code = Internal desc = grpc: failed to "
		                                "unmarshal the received message"
		                              : r->error);
		lua_setfield(L, -2, "error");
	}
	lua_pushboolean(L, r->connected);
	lua_setfield(L, -2, "connected");
	lua_pushnumber(L, r->seconds);
	lua_setfield(L, -2, "seconds");
	lua_pushnumber(L, (double)now_of(run->policy) / 1e9);
	lua_setfield(L, -2, "at");
	if (reply)
		policy_reply_push(L, reply);
	return 1;
}

/*
 * pcall'd: 1 = run, 2 = file_check_result. Pushes {exists, type, size,
 * age, error}, or, for a refusal, its text (ctx_file_done raises it).
 */
static int push_file_result(lua_State *L)
{
	const struct file_check_result *r = lua_touserdata(L, 2);
	if (r->outcome == FILE_CHECK_REFUSED) {
		lua_pushstring(L, r->error);
		return 1;
	}
	lua_createtable(L, 0, 5);
	lua_pushboolean(L, r->exists);
	lua_setfield(L, -2, "exists");
	if (r->exists) {
		lua_pushstring(L, file_type_name(r->type));
		lua_setfield(L, -2, "type");
		lua_pushinteger(L, (lua_Integer)r->size);
		lua_setfield(L, -2, "size");
		lua_pushnumber(L, r->age);
		lua_setfield(L, -2, "age");
	}
	if (r->outcome == FILE_CHECK_FAILED) {
		lua_pushstring(L, r->error);
		lua_setfield(L, -2, "error");
	}
	return 1;
}

/* Resumes run with the one value a pcall'd builder pushes, given (run, a, b). */
static void resume_with(struct policy_run *run, lua_CFunction build, const void *a, const void *b,
                        struct policy_step *step)
{
	lua_State *L = sandbox_state(run->policy->sb);
	lua_pushcfunction(L, build);
	lua_pushlightuserdata(L, run);
	lua_pushlightuserdata(L, (void *)a);
	lua_pushlightuserdata(L, (void *)b);
	if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
		lua_pop(L, 1);
		step_fail(step, STOP_MEMORY, "out of memory passing a result to the policy", NULL);
		end_run(run);
		return;
	}
	lua_xmove(L, run->co, 1);
	run_lua(run, 1, true, step);
}

/* A resume without a run (its check ended or never began) is refused, not a crash. */
static bool no_run(const struct policy_run *run, struct policy_step *step)
{
	if (!run)
		step_fail(step, STOP_ERROR, "no check in progress", NULL);
	return !run;
}

void policy_resume_probe(struct policy_run *run, const struct csi_result *r,
                         struct policy_step *step)
{
	if (no_run(run, step))
		return;
	resume_with(run, push_result, r, NULL, step);
}

void policy_resume_call(struct policy_run *run, const struct csi_result *r,
                        struct policy_step *step)
{
	if (no_run(run, step))
		return;
	/* Decoded out here: the builder may raise (memory), and must leave nothing to free. */
	ProtobufCMessage *reply = NULL;
	if (r->code == 0 && run->call && run->call->reply && r->reply)
		reply = protobuf_c_message_unpack(run->call->reply, NULL, r->reply_len, r->reply);
	resume_with(run, push_call_result, r, reply, step);
	if (reply)
		protobuf_c_message_free_unpacked(reply, NULL);
}

void policy_resume_file(struct policy_run *run, const struct file_check_result *r,
                        struct policy_step *step)
{
	if (no_run(run, step))
		return;
	resume_with(run, push_file_result, r, NULL, step);
}

void policy_resume_sleep(struct policy_run *run, struct policy_step *step)
{
	if (no_run(run, step))
		return;
	run_lua(run, 0, true, step);
}

void policy_abandon(struct policy_run *run)
{
	if (run)
		end_run(run);
}
