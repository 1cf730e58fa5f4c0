/*
 * The sandbox's C half: the Lua state, its memory cap, the count hook that
 * enforces the instruction budget and the deadline, and the one place that
 * decides why a run stopped. What a script can reach is lua/sandbox.lua,
 * embedded at build time and run here on every new state: the allow-list
 * has one definition, which the policy specs load too.
 *
 * Only the libraries that list may expose are opened at all (base, string,
 * table, math, utf8): io, os, package, debug and coroutine never exist in
 * the state.
 */
#include "sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "clock.h"

/* Instructions between hook calls: bounds how late a limit is noticed. */
#define HOOK_EVERY 100
/* A chunk's top level must finish quickly: it only builds the policy table. */
#define LOAD_TIME_LIMIT_NS 1000000000LL

struct sandbox {
	lua_State *L;
	size_t used;
	size_t limit;
	bool hit_cap;
	int loaded_line; /* the last line of the chunk sandbox_load ran */

	int64_t budget; /* instructions left in this run */
	int64_t deadline_ns;
	enum stop_reason stop; /* STOP_NONE, STOP_INSTRUCTIONS or STOP_TIMEOUT */
};

/* The one table of stop reasons: metric labels and the words for them. */
static const struct {
	const char *label;
	const char *phrase;
} reasons[STOP_REASON_COUNT] = {
        [STOP_NONE] = {"", NULL},
        [STOP_ERROR] = {"error", NULL},
        [STOP_INSTRUCTIONS] = {"instructions", "exceeded the instruction limit"},
        [STOP_MEMORY] = {"memory", "went over the memory cap"},
        [STOP_TIMEOUT] = {"timeout", "ran out of time"},
        [STOP_RETURN] = {"return", NULL},
        [STOP_CRASH] = {"crash", NULL},
};

const char *stop_reason_label(enum stop_reason r)
{
	return r >= 0 && r < STOP_REASON_COUNT ? reasons[r].label : "error";
}

const char *stop_reason_phrase(enum stop_reason r)
{
	return r >= 0 && r < STOP_REASON_COUNT ? reasons[r].phrase : NULL;
}

/* The memory cap. Shrinks and frees always succeed, as Lua requires. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct sandbox *sb = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		free(ptr);
		sb->used -= old;
		return NULL;
	}
	if (nsize > old && sb->used + (nsize - old) > sb->limit) {
		sb->hit_cap = true;
		return NULL;
	}
	void *p = realloc(ptr, nsize);
	if (!p)
		return nsize <= old ? ptr : NULL;
	sb->used = sb->used - old + nsize;
	return p;
}

static struct sandbox *sandbox_of(lua_State *L)
{
	return *(struct sandbox **)lua_getextraspace(L);
}

/*
 * The count hook. First trip: raise (a script may catch it). Every later
 * call: yield the whole coroutine, which pcall cannot intercept; the host
 * then abandons the coroutine.
 */
static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
	struct sandbox *sb = sandbox_of(L);
	sb->budget -= HOOK_EVERY;
	if (sb->stop == STOP_NONE) {
		if (sb->budget < 0)
			sb->stop = STOP_INSTRUCTIONS;
		else if (clock_now_ns() > sb->deadline_ns)
			sb->stop = STOP_TIMEOUT;
		else
			return;
		luaL_error(L, "%s", reasons[sb->stop].phrase);
	}
	lua_yield(L, 0);
}

void sandbox_arm(struct sandbox *sb, lua_State *co, int64_t instruction_limit, int64_t deadline_ns)
{
	sb->budget = instruction_limit;
	sb->deadline_ns = deadline_ns;
	sb->stop = STOP_NONE;
	sb->hit_cap = false;
	lua_sethook(co, sandbox_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

int64_t sandbox_disarm(struct sandbox *sb, lua_State *co)
{
	lua_sethook(co, NULL, 0, 0);
	return sb->budget;
}

enum stop_reason sandbox_stopped(const struct sandbox *sb)
{
	return sb->stop;
}

size_t sandbox_memory(const struct sandbox *sb)
{
	return sb->used;
}

bool sandbox_hit_memory_cap(const struct sandbox *sb)
{
	return sb->hit_cap;
}

lua_State *sandbox_state(struct sandbox *sb)
{
	return sb->L;
}

const char *sandbox_error_text(lua_State *L, int idx, char *buf, size_t len)
{
	int t = lua_type(L, idx);
	if (t == LUA_TSTRING || t == LUA_TNUMBER) {
		/* lua_tolstring on a number converts in place: work on a copy. */
		lua_pushvalue(L, idx);
		snprintf(buf, len, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
	} else {
		snprintf(buf, len, "(error object is a %s value)", lua_typename(L, t));
	}
	return buf;
}

/* lua/sandbox.lua, embedded at build time. */
extern const char lp_sandbox_source[];
extern const size_t lp_sandbox_source_len;

static const struct {
	const char *name;
	lua_CFunction open;
} libraries[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
};

/* True once a limit tripped in the current run: the sandbox's pcall re-raises. */
static int limit_tripped(lua_State *L)
{
	lua_pushboolean(L, sandbox_of(L)->stop != STOP_NONE);
	return 1;
}

/*
 * Runs in lua_pcall: opens the libraries, then runs lua/sandbox.lua with
 * the real globals and limit_tripped; its result, the environment scripts
 * run in, goes to the registry as "lp.env".
 */
static int build_environment(lua_State *L)
{
	for (size_t i = 0; i < sizeof(libraries) / sizeof(libraries[0]); i++) {
		luaL_requiref(L, libraries[i].name, libraries[i].open, 1);
		lua_pop(L, 1);
	}
	if (luaL_loadbufferx(L, lp_sandbox_source, lp_sandbox_source_len, "@lua/sandbox.lua",
	                     "t") != LUA_OK)
		return lua_error(L);
	lua_pushglobaltable(L);
	lua_pushcfunction(L, limit_tripped);
	lua_call(L, 2, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "lua/sandbox.lua did not return an environment");
	lua_setfield(L, LUA_REGISTRYINDEX, "lp.env");
	return 0;
}

struct sandbox *sandbox_new(size_t memory_limit, char *errbuf, size_t errlen)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	sb->limit = memory_limit;
	sb->L = lua_newstate(sandbox_alloc, sb);
	if (!sb->L) {
		snprintf(errbuf, errlen, "cannot create a Lua state within %zu bytes",
		         memory_limit);
		free(sb);
		return NULL;
	}
	*(struct sandbox **)lua_getextraspace(sb->L) = sb;
	/* Generational mode keeps the many short-lived per-check tables cheap. */
	lua_gc(sb->L, LUA_GCGEN, 0, 0);
	lua_pushcfunction(sb->L, build_environment);
	if (lua_pcall(sb->L, 0, 0, 0) != LUA_OK) {
		char msg[256];
		snprintf(errbuf, errlen, "cannot build the policy sandbox: %s",
		         sandbox_error_text(sb->L, -1, msg, sizeof(msg)));
		sandbox_free(sb);
		return NULL;
	}
	return sb;
}

void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	if (sb->L)
		lua_close(sb->L);
	free(sb);
}

/*
 * A traceback of the stopped coroutine, written without allocating in the
 * state (its memory may be exhausted). C functions are skipped: they add
 * nothing a script's author can use.
 */
void sandbox_traceback(lua_State *co, char *out, size_t len)
{
	lua_Debug ar;
	size_t used = 0;
	out[0] = '\0';
	for (int level = 0; level < 12 && used + 1 < len && lua_getstack(co, level, &ar); level++) {
		if (!lua_getinfo(co, "Sl", &ar))
			break;
		if (ar.currentline <= 0)
			continue;
		int n = snprintf(out + used, len - used, "\n\t%s:%d: in %s", ar.short_src,
		                 ar.currentline, ar.what[0] == 'm' ? "main chunk" : "function");
		if (n < 0)
			break;
		used += (size_t)n < len - used ? (size_t)n : len - used - 1;
	}
}

static void stopped(struct sandbox_run *run, enum stop_reason reason, const char *source,
                    const char *who, const char *detail)
{
	run->status = SANDBOX_STOPPED;
	run->reason = reason;
	if (detail) /* the script's own words, with its file:line where it raised */
		snprintf(run->message, sizeof(run->message), "%s", detail);
	else
		snprintf(run->message, sizeof(run->message), "%s: %s%s%s", source, who ? who : "",
		         who ? " " : "", reasons[reason].phrase);
}

void sandbox_resume(struct sandbox *sb, lua_State *co, int nargs, const char *source,
                    const char *who, struct sandbox_run *run)
{
	char text[1024];
	memset(run, 0, sizeof(*run));
	int status = lua_resume(co, sb->L, nargs, &run->nres);
	/*
	 * A limit decides, whatever the script made of it: caught and returned,
	 * or yielded (by the hook). An error raised while the cap refused memory
	 * is the cap's doing.
	 */
	enum stop_reason limit = sb->stop != STOP_NONE ? sb->stop
	                         : sb->hit_cap         ? STOP_MEMORY
	                                               : STOP_NONE;
	if (status == LUA_OK && limit == STOP_NONE) {
		run->status = SANDBOX_RETURNED;
		return;
	}
	if (status == LUA_YIELD && limit == STOP_NONE) {
		run->status = SANDBOX_YIELDED;
		return;
	}
	if (status != LUA_OK && status != LUA_YIELD && (limit == STOP_NONE || limit == STOP_MEMORY))
		stopped(run, limit == STOP_MEMORY ? STOP_MEMORY : STOP_ERROR, source, who,
		        sandbox_error_text(co, -1, text, sizeof(text)));
	else
		stopped(run, limit, source, who, NULL);
	sandbox_traceback(co, run->traceback, sizeof(run->traceback));
}

static int new_thread(lua_State *L)
{
	lua_newthread(L);
	return 1;
}

/*
 * pcall'd: 1 = a chunk. Returns its last active line: that of its last
 * token, which ends its return statement in a policy file.
 */
static int last_line(lua_State *L)
{
	lua_Debug ar;
	lua_Integer last = 0;
	lua_settop(L, 1);
	lua_getinfo(L, ">L", &ar); /* the table of active lines */
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > last)
			last = lua_tointeger(L, -1);
	}
	lua_pushinteger(L, last);
	return 1;
}

int sandbox_loaded_line(const struct sandbox *sb)
{
	return sb->loaded_line;
}

int sandbox_load(struct sandbox *sb, const char *source, size_t len, const char *chunkname,
                 int64_t instruction_limit, char *errbuf, size_t errlen)
{
	lua_State *L = sb->L;
	int top = lua_gettop(L);
	const char *file = chunkname[0] == '@' || chunkname[0] == '=' ? chunkname + 1 : chunkname;
	char msg[512];
	struct sandbox_run run;

	if (luaL_loadbufferx(L, source, len, chunkname, "t") != LUA_OK) {
		snprintf(errbuf, errlen, "%s", sandbox_error_text(L, -1, msg, sizeof(msg)));
		goto fail;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "lp.env");
	lua_setupvalue(L, -2, 1); /* the chunk's _ENV */
	lua_pushcfunction(L, last_line);
	lua_pushvalue(L, -2);
	sb->loaded_line = lua_pcall(L, 1, 1, 0) == LUA_OK ? (int)lua_tointeger(L, -1) : 0;
	lua_pop(L, 1);

	/* The top level runs as a coroutine so the hook can stop it for good. */
	lua_pushcfunction(L, new_thread);
	if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
		snprintf(errbuf, errlen, "%s: cannot run: out of memory", file);
		goto fail;
	}
	lua_State *co = lua_tothread(L, -1); /* stack: chunk, thread */
	lua_pushvalue(L, -2);
	lua_xmove(L, co, 1);
	sandbox_arm(sb, co, instruction_limit, clock_deadline(LOAD_TIME_LIMIT_NS));
	sandbox_resume(sb, co, 0, file, "loading", &run);
	sandbox_disarm(sb, co);
	if (run.status == SANDBOX_RETURNED && run.nres >= 1) {
		lua_pop(co, run.nres - 1); /* the chunk's first value is the script's */
		lua_xmove(co, L, 1);       /* stack: chunk, thread, result */
		lua_replace(L, top + 1);
		lua_settop(L, top + 1);
		return 0;
	}
	if (run.status == SANDBOX_RETURNED)
		snprintf(errbuf, errlen, "%s: the chunk returned nothing", file);
	else if (run.status == SANDBOX_YIELDED)
		snprintf(errbuf, errlen, "%s: cannot yield while loading", file);
	else if (strncmp(run.message, file, strlen(file)) == 0)
		snprintf(errbuf, errlen, "%s", run.message); /* already "file:line: ..." */
	else
		snprintf(errbuf, errlen, "%s: %s", file, run.message);
fail:
	lua_settop(L, top);
	return -1;
}
