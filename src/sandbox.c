/*
 * The policy sandbox. What a script can reach, and why (LUA-NOTES.md has the
 * measurements behind each line):
 *
 *   base      yes, but without dofile/loadfile (file system), print (stdout
 *             belongs to nobody), rawset/rawget/rawequal (they bypass the
 *             read-only proxies); collectgarbage limited to "count" (a
 *             stopped collector runs later checks into the memory cap); load
 *             limited to text chunks in the sandbox _ENV (bytecode can crash
 *             the VM; another _ENV would reach the real globals); setmetatable
 *             refusing __gc (finalizers run where no hook can stop them);
 *             xpcall wrapped so a looping message handler runs under the hook;
 *             pcall (and xpcall) re-raise once a limit has tripped, so a
 *             script cannot swallow its own kill where the hook cannot
 *             yield (inside table.sort comparators, gsub callbacks).
 *   string    yes, without dump (no bytecode in or out).
 *   table, math, utf8   yes.
 *   io, os, package, debug, coroutine   no: files, processes, modules,
 *             breaking the sandbox, and yields the host does not expect.
 *
 * Globals and library tables are read-only proxies: reads go to the real
 * table, writes raise, and the metatables are locked. The string metatable
 * is locked too. So one policy (or one check) cannot change what the next
 * one sees.
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

	int64_t budget; /* instructions left in this run */
	int64_t deadline_ns;
	enum sandbox_stop stop;
};

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
	if (sb->stop == SANDBOX_STOP_NONE) {
		if (sb->budget < 0)
			sb->stop = SANDBOX_STOP_INSTRUCTIONS;
		else if (clock_now_ns() > sb->deadline_ns)
			sb->stop = SANDBOX_STOP_TIME;
		else
			return;
		luaL_error(L, sb->stop == SANDBOX_STOP_TIME
		                      ? "policy ran out of time"
		                      : "policy exceeded its instruction limit");
	}
	lua_yield(L, 0);
}

void sandbox_arm(struct sandbox *sb, lua_State *co, int64_t instruction_limit, int64_t deadline_ns)
{
	sb->budget = instruction_limit;
	sb->deadline_ns = deadline_ns;
	sb->stop = SANDBOX_STOP_NONE;
	sb->hit_cap = false;
	lua_sethook(co, sandbox_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

void sandbox_set_deadline(struct sandbox *sb, int64_t deadline_ns)
{
	sb->deadline_ns = deadline_ns;
}

void sandbox_disarm(struct sandbox *sb, lua_State *co)
{
	lua_sethook(co, NULL, 0, 0);
}

enum sandbox_stop sandbox_stopped(const struct sandbox *sb)
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

static int refuse_write(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "attempt to write '%s' in a read-only table",
		                  lua_tostring(L, 2));
	return luaL_error(L, "attempt to write to a read-only table");
}

/* Replaces the table at the top of the stack by a read-only proxy of it. */
static void make_proxy(lua_State *L)
{
	lua_newtable(L);          /* real proxy */
	lua_createtable(L, 0, 3); /* real proxy mt */
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, refuse_write);
	lua_setfield(L, -2, "__newindex");
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2); /* real proxy */
	lua_remove(L, -2);       /* proxy */
}

/*
 * Wrappers written in Lua so that they stay yieldable (ctx.probe() may be
 * called under them) and run under the count hook. They close over the real
 * functions, which scripts never see.
 */
static const char prelude[] =
        "local real_load, real_setmetatable, real_rawget, real_pcall, real_cg, env, stopped = ...\n"
        "local type, error = type, error\n"
        "local w = {}\n"
        "local function rethrow(ok, ...)\n"
        "  if not ok and stopped() then error((...), 0) end\n"
        "  return ok, ...\n"
        "end\n"
        "function w.pcall(f, ...)\n"
        "  return rethrow(real_pcall(f, ...))\n"
        "end\n"
        "function w.load(chunk, name)\n"
        "  if type(chunk) ~= 'string' then\n"
        "    return nil, 'load: only text chunks are allowed in a policy'\n"
        "  end\n"
        "  return real_load(chunk, name, 't', env)\n"
        "end\n"
        "function w.setmetatable(t, mt)\n"
        "  if type(mt) == 'table' and real_rawget(mt, '__gc') ~= nil then\n"
        "    error('setmetatable: __gc metamethods are not allowed in a policy', 2)\n"
        "  end\n"
        "  return real_setmetatable(t, mt)\n"
        "end\n"
        "function w.collectgarbage(opt)\n"
        "  if opt ~= 'count' then\n"
        "    error('collectgarbage: only \"count\" is allowed in a policy', 2)\n"
        "  end\n"
        "  return real_cg('count')\n"
        "end\n"
        "local function handled(ok, ...)\n"
        "  if ok then return false, ... end\n"
        "  return false, (...)\n"
        "end\n"
        "function w.xpcall(f, handler, ...)\n"
        "  local function finish(ok, ...)\n"
        "    if ok then return true, ... end\n"
        "    return handled(w.pcall(handler, (...)))\n"
        "  end\n"
        "  return finish(w.pcall(f, ...))\n"
        "end\n"
        "return w\n";

static const char *const removed_base[] = {"dofile", "loadfile",     "print",          "rawset",
                                           "rawget", "rawequal",     "collectgarbage", "load",
                                           "pcall",  "setmetatable", "xpcall",         NULL};
static const char *const wrapped_base[] = {"load",           "pcall",  "setmetatable",
                                           "collectgarbage", "xpcall", NULL};
static const struct {
	const char *name;
	lua_CFunction open;
} libraries[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
};

/* True once a limit tripped in the current run: the prelude's pcall re-raises. */
static int limit_tripped(lua_State *L)
{
	lua_pushboolean(L, sandbox_of(L)->stop != SANDBOX_STOP_NONE);
	return 1;
}

/* Runs in lua_pcall: builds the environment. Stack: -. Leaves nothing. */
static int build_environment(lua_State *L)
{
	for (size_t i = 0; i < sizeof(libraries) / sizeof(libraries[0]); i++) {
		luaL_requiref(L, libraries[i].name, libraries[i].open, 1);
		lua_pop(L, 1);
	}
	lua_pushglobaltable(L);
	int g = lua_gettop(L);

	/* The string library loses dump; its metatable gets locked. */
	lua_getfield(L, g, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushliteral(L, "locked");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);

	/* The table scripts read globals from (behind the _ENV proxy). */
	lua_newtable(L);
	int visible = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, g)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_settable(L, visible);
	}
	for (int i = 0; removed_base[i]; i++) {
		lua_pushnil(L);
		lua_setfield(L, visible, removed_base[i]);
	}
	for (size_t i = 1; i < sizeof(libraries) / sizeof(libraries[0]); i++) {
		lua_getfield(L, g, libraries[i].name);
		make_proxy(L);
		lua_setfield(L, visible, libraries[i].name);
	}
	lua_pushvalue(L, visible);
	make_proxy(L);
	int env = lua_gettop(L);
	lua_pushvalue(L, env);
	lua_setfield(L, visible, "_G");

	/* Wrappers, made by the prelude from the real functions. */
	if (luaL_loadbufferx(L, prelude, sizeof(prelude) - 1, "=sandbox", "t") != LUA_OK)
		return lua_error(L);
	lua_getfield(L, g, "load");
	lua_getfield(L, g, "setmetatable");
	lua_getfield(L, g, "rawget");
	lua_getfield(L, g, "pcall");
	lua_getfield(L, g, "collectgarbage");
	lua_pushvalue(L, env);
	lua_pushcfunction(L, limit_tripped);
	lua_call(L, 7, 1);
	for (int i = 0; wrapped_base[i]; i++) {
		lua_getfield(L, -1, wrapped_base[i]);
		lua_setfield(L, visible, wrapped_base[i]);
	}
	lua_pop(L, 1);

	lua_pushvalue(L, env);
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

static int new_thread(lua_State *L)
{
	lua_newthread(L);
	return 1;
}

int sandbox_load(struct sandbox *sb, const char *source, size_t len, const char *chunkname,
                 int64_t instruction_limit, char *errbuf, size_t errlen)
{
	lua_State *L = sb->L;
	int top = lua_gettop(L);
	char msg[512];

	if (luaL_loadbufferx(L, source, len, chunkname, "t") != LUA_OK) {
		snprintf(errbuf, errlen, "%s", sandbox_error_text(L, -1, msg, sizeof(msg)));
		goto fail;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "lp.env");
	lua_setupvalue(L, -2, 1); /* the chunk's _ENV */

	/* The top level runs as a coroutine so the hook can stop it for good. */
	lua_pushcfunction(L, new_thread);
	if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
		snprintf(errbuf, errlen, "%s: cannot run: out of memory", chunkname + 1);
		goto fail;
	}
	lua_State *co = lua_tothread(L, -1); /* stack: chunk, thread */
	lua_pushvalue(L, -2);
	lua_xmove(L, co, 1);
	sandbox_arm(sb, co, instruction_limit, clock_deadline(LOAD_TIME_LIMIT_NS));
	int nres = 0;
	int status = lua_resume(co, L, 0, &nres);
	sandbox_disarm(sb, co);
	if (status == LUA_OK && nres >= 1) {
		lua_pop(co, nres - 1); /* the chunk's first value is the policy */
		lua_xmove(co, L, 1);   /* stack: chunk, thread, result */
		lua_replace(L, top + 1);
		lua_settop(L, top + 1);
		return 0;
	}
	const char *file = chunkname + 1;
	if (status == LUA_YIELD)
		snprintf(msg, sizeof(msg), "%s",
		         sandbox_stopped(sb) != SANDBOX_STOP_NONE ? "loading broke a limit"
		                                                  : "cannot yield while loading");
	else if (status == LUA_OK)
		snprintf(msg, sizeof(msg), "the chunk returned nothing");
	else
		sandbox_error_text(co, -1, msg, sizeof(msg));
	if (sandbox_stopped(sb) == SANDBOX_STOP_TIME)
		snprintf(msg, sizeof(msg), "loading ran out of time");
	else if (sandbox_stopped(sb) == SANDBOX_STOP_INSTRUCTIONS)
		snprintf(msg, sizeof(msg), "loading exceeded the instruction limit");
	/* Messages from the chunk itself already start with "file:line:". */
	if (strncmp(msg, file, strlen(file)) == 0)
		snprintf(errbuf, errlen, "%s", msg);
	else
		snprintf(errbuf, errlen, "%s: %s", file, msg);
fail:
	lua_settop(L, top);
	return -1;
}
