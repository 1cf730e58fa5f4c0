/*
 * The --script hooks (see mock_script.h). Each call runs its hook in a new
 * coroutine armed with the sandbox's limits, so a runaway hook answers
 * INTERNAL after HOOK_TIME_LIMIT_NS instead of stalling the server, whose
 * single thread runs the hooks. Every Lua operation that may allocate runs
 * under lua_pcall: a memory error must become an answer, not a panic.
 */
#include "mock_script.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "clock.h"
#include "file_read.h"
#include "grpc_status.h"
#include "sandbox.h"

#define SCRIPT_MEMORY_LIMIT    (64u << 20)
#define SCRIPT_MAX_BYTES       (1u << 20)
#define HOOK_INSTRUCTION_LIMIT 100000000LL
#define HOOK_TIME_LIMIT_NS     1000000000LL
/* A delay longer than a day is a typo, not a test. */
#define MAX_DELAY_S 86400.0

static const char *const hook_names[MOCK_HOOK_COUNT] = {
        [MOCK_HOOK_PROBE] = "probe",
        [MOCK_HOOK_INFO] = "get_plugin_info",
};
static const char *const method_names[MOCK_HOOK_COUNT] = {
        [MOCK_HOOK_PROBE] = "Probe",
        [MOCK_HOOK_INFO] = "GetPluginInfo",
};

struct mock_script {
	struct sandbox *sb;
	char name[256];                /* the file, for messages */
	int hook_ref[MOCK_HOOK_COUNT]; /* LUA_NOREF when the script has none */
};

/* ---- loading ---------------------------------------------------------------------------- */

/*
 * Runs in lua_pcall. Stack: the script's table, the mock_script. Checks that
 * every key is a hook name holding a function (a misspelt "Probe" must not
 * silently fall back to the flags) and takes references to the hooks.
 */
static int bind_hooks(lua_State *L)
{
	struct mock_script *s = lua_touserdata(L, 2);
	int h;

	lua_pushnil(L);
	while (lua_next(L, 1)) {
		bool known = false;

		if (lua_type(L, -2) == LUA_TSTRING) {
			for (h = 0; h < MOCK_HOOK_COUNT; h++)
				known = known || strcmp(lua_tostring(L, -2), hook_names[h]) == 0;
		}
		if (!known)
			return luaL_error(L,
			                  "%s: unknown key %s in the returned table "
			                  "(hooks: probe, get_plugin_info)",
			                  s->name,
			                  lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
			                                                 : luaL_typename(L, -2));
		lua_pop(L, 1);
	}
	for (h = 0; h < MOCK_HOOK_COUNT; h++) {
		int type =
		        lua_getfield(L, 1, hook_names[h]); /* a plain table: no metamethods run */

		if (type == LUA_TNIL) {
			lua_pop(L, 1);
			continue;
		}
		if (type != LUA_TFUNCTION)
			return luaL_error(L, "%s: %s must be a function, not %s", s->name,
			                  hook_names[h], luaL_typename(L, -1));
		s->hook_ref[h] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	return 0;
}

struct mock_script *mock_script_load(const char *path, char *err, size_t errlen)
{
	struct mock_script *s = calloc(1, sizeof(*s));
	char chunkname[sizeof(s->name) + 1], msg[512];
	char *source = NULL;
	size_t len = 0;
	lua_State *L;
	int h;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (h = 0; h < MOCK_HOOK_COUNT; h++)
		s->hook_ref[h] = LUA_NOREF;
	snprintf(s->name, sizeof(s->name), "%s", path);
	snprintf(chunkname, sizeof(chunkname), "@%s", path);
	source = file_read(path, SCRIPT_MAX_BYTES, &len, msg, sizeof(msg));
	if (!source) {
		snprintf(err, errlen, "cannot read %s", msg);
		goto fail;
	}
	s->sb = sandbox_new(SCRIPT_MEMORY_LIMIT, err, errlen);
	if (!s->sb)
		goto fail;
	L = sandbox_state(s->sb);
	if (sandbox_load(s->sb, source, len, chunkname, HOOK_INSTRUCTION_LIMIT, err, errlen) < 0)
		goto fail;
	if (!lua_istable(L, -1)) {
		snprintf(err, errlen, "%s: the script must return a plain table of hooks, got %s",
		         s->name, luaL_typename(L, -1));
		goto fail;
	}
	if (lua_getmetatable(L, -1)) {
		snprintf(err, errlen, "%s: the table of hooks must not have a metatable", s->name);
		goto fail;
	}
	lua_pushcfunction(L, bind_hooks);
	lua_insert(L, -2);
	lua_pushlightuserdata(L, s);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		snprintf(err, errlen, "%s", sandbox_error_text(L, -1, msg, sizeof(msg)));
		goto fail;
	}
	lua_settop(L, 0);
	free(source);
	return s;
fail:
	free(source);
	mock_script_free(s);
	return NULL;
}

void mock_script_free(struct mock_script *s)
{
	if (!s)
		return;
	sandbox_free(s->sb);
	free(s);
}

/* ---- one call --------------------------------------------------------------------------- */

/*
 * Runs in lua_pcall. Stack: hook, n, elapsed, method (a C string as light
 * userdata). Returns a new thread holding the hook and its call table, ready
 * to resume.
 */
static int prepare_call(lua_State *L)
{
	lua_State *co;

	lua_pushstring(L, lua_touserdata(L, 4));
	lua_replace(L, 4);
	co = lua_newthread(L); /* 5 */

	lua_createtable(L, 0, 3); /* 6 */
	lua_pushvalue(L, 2);
	lua_setfield(L, 6, "n");
	lua_pushvalue(L, 3);
	lua_setfield(L, 6, "elapsed");
	lua_pushvalue(L, 4);
	lua_setfield(L, 6, "method");
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 6);
	lua_xmove(L, co, 2);
	lua_pushvalue(L, 5);
	return 1;
}

/*
 * A hook's answer as read from its table. Strings are borrowed from the
 * table, which stays on the stack until they are copied.
 */
struct answer_fields {
	enum mock_hook hook;
	bool has_ready, has_code, has_delay, has_hang, has_action, has_exit_code, has_size;
	enum mock_ready ready;
	int code, action, exit_code;
	int64_t delay_ns;
	bool hang;
	size_t size;
	const char *message, *name, *vendor_version;
};

static const char *string_field(lua_State *L, const char *key)
{
	size_t len;
	const char *s;

	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s must be a string, not %s", key, luaL_typename(L, -1));
	s = lua_tolstring(L, -1, &len);
	if (strlen(s) != len)
		luaL_error(L, "%s must not contain NUL bytes", key);
	return s;
}

static lua_Integer integer_field(lua_State *L, const char *key, lua_Integer min, lua_Integer max)
{
	int isint = 0;
	lua_Integer v = lua_tointegerx(L, -1, &isint);

	if (lua_type(L, -1) != LUA_TNUMBER || !isint || v < min || v > max)
		luaL_error(L, "%s must be an integer from %I to %I", key, min, max);
	return v;
}

static bool boolean_field(lua_State *L, const char *key)
{
	if (lua_type(L, -1) != LUA_TBOOLEAN)
		luaL_error(L, "%s must be true or false, not %s", key, luaL_typename(L, -1));
	return lua_toboolean(L, -1);
}

static void read_ready(lua_State *L, struct answer_fields *a)
{
	a->has_ready = true;
	if (lua_type(L, -1) == LUA_TBOOLEAN) {
		a->ready = lua_toboolean(L, -1) ? MOCK_READY_TRUE : MOCK_READY_FALSE;
		return;
	}
	if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "unset") == 0) {
		a->ready = MOCK_READY_UNSET;
		return;
	}
	luaL_error(L, "ready must be true, false or \"unset\"");
}

static void read_code(lua_State *L, struct answer_fields *a)
{
	a->has_code = true;
	if (lua_type(L, -1) == LUA_TSTRING) {
		a->code = grpc_status_parse(lua_tostring(L, -1));
		if (a->code < 0)
			luaL_error(L, "code: unknown gRPC status %s", lua_tostring(L, -1));
		return;
	}
	a->code = (int)integer_field(L, "code", 0, 16);
}

static void read_delay(lua_State *L, struct answer_fields *a)
{
	double seconds = lua_tonumber(L, -1);

	if (lua_type(L, -1) != LUA_TNUMBER || !(seconds >= 0 && seconds <= MAX_DELAY_S))
		luaL_error(L, "delay must be a number of seconds from 0 to %d", (int)MAX_DELAY_S);
	a->has_delay = true;
	a->delay_ns = (int64_t)llround(seconds * 1e9);
}

static void read_action(lua_State *L, struct answer_fields *a)
{
	const char *name = string_field(L, "action");

	a->has_action = true;
	a->action = mock_action_parse(name);
	if (a->action < 0)
		luaL_error(
		        L,
		        "action: unknown action %s (exit, remove_socket, stop_accepting, "
		        "start_accepting, close_connection, invalid_response, oversized_response)",
		        name);
}

/* One key of the answer table; the value is on top of the stack. */
static void read_field(lua_State *L, const char *key, struct answer_fields *a)
{
	if (strcmp(key, "ready") == 0 && a->hook == MOCK_HOOK_PROBE)
		read_ready(L, a);
	else if (strcmp(key, "code") == 0)
		read_code(L, a);
	else if (strcmp(key, "message") == 0)
		a->message = string_field(L, key);
	else if (strcmp(key, "delay") == 0)
		read_delay(L, a);
	else if (strcmp(key, "hang") == 0)
		a->has_hang = true, a->hang = boolean_field(L, key);
	else if (strcmp(key, "name") == 0 && a->hook == MOCK_HOOK_INFO)
		a->name = string_field(L, key);
	else if (strcmp(key, "vendor_version") == 0 && a->hook == MOCK_HOOK_INFO)
		a->vendor_version = string_field(L, key);
	else if (strcmp(key, "action") == 0)
		read_action(L, a);
	else if (strcmp(key, "exit_code") == 0)
		a->has_exit_code = true, a->exit_code = (int)integer_field(L, key, 0, 255);
	else if (strcmp(key, "size") == 0)
		a->has_size = true, a->size = (size_t)integer_field(L, key, 0, MOCK_OVERSIZED_MAX);
	else
		luaL_error(L, "unknown field %s in %s's answer", key, hook_names[a->hook]);
}

/*
 * Runs in lua_pcall. Stack: the answer table, the struct answer_fields.
 * Walks the table raw (no metamethod can run unhooked) and reads every key.
 */
static int read_answer(lua_State *L)
{
	struct answer_fields *a = lua_touserdata(L, 2);

	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			return luaL_error(L, "the answer has a %s key; all keys are field names",
			                  luaL_typename(L, -2));
		read_field(L, lua_tostring(L, -2), a);
		lua_pop(L, 1);
	}
	return 0;
}

static int replace_string(char **field, const char *value)
{
	char *copy;

	if (!value)
		return 0;
	copy = strdup(value);
	if (!copy)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

/* The table's fields override the flags' answer in r. */
static int apply_answer(const struct answer_fields *a, struct mock_reply *r)
{
	if (replace_string(&r->message, a->message) < 0 || replace_string(&r->name, a->name) < 0 ||
	    replace_string(&r->vendor_version, a->vendor_version) < 0)
		return -1;
	if (a->has_ready)
		r->ready = a->ready;
	if (a->has_code)
		r->code = a->code;
	if (a->has_delay)
		r->delay_ns = a->delay_ns;
	if (a->has_hang)
		r->hang = a->hang;
	if (a->has_action)
		r->action = a->action;
	if (a->has_exit_code)
		r->exit_code = a->exit_code;
	if (a->has_size)
		r->size = a->size;
	return 0;
}

int mock_script_answer(struct mock_script *s, enum mock_hook h, unsigned long n, double elapsed_s,
                       struct mock_reply *r, char *err, size_t errlen)
{
	lua_State *L = sandbox_state(s->sb), *co;
	struct answer_fields a = {.hook = h};
	char msg[1536];
	struct sandbox_run run;
	int nres, rc = -1;

	if (s->hook_ref[h] == LUA_NOREF)
		return 0;
	lua_settop(L, 0);
	lua_pushcfunction(L, prepare_call);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->hook_ref[h]);
	lua_pushinteger(L, (lua_Integer)n);
	lua_pushnumber(L, elapsed_s);
	lua_pushlightuserdata(L, (void *)method_names[h]); /* made a string under pcall */
	if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
		snprintf(msg, sizeof(msg), "cannot start the hook: out of memory");
		goto out;
	}
	co = lua_tothread(L, 1);
	sandbox_arm(s->sb, co, HOOK_INSTRUCTION_LIMIT, clock_deadline(HOOK_TIME_LIMIT_NS));
	sandbox_resume(s->sb, co, 1, s->name, NULL, &run);
	sandbox_disarm(s->sb, co);
	if (run.status != SANDBOX_RETURNED) {
		snprintf(msg, sizeof(msg), "%s",
		         run.status == SANDBOX_YIELDED ? "yielded; hooks cannot yield"
		                                       : run.message);
		goto out;
	}
	nres = run.nres;
	if (nres == 0 || lua_isnil(co, -nres)) {
		rc = 0;
		goto out;
	}
	lua_pop(co, nres - 1); /* the first result is the answer */
	if (!lua_istable(co, -1)) {
		snprintf(msg, sizeof(msg), "%s must return nil or a plain table, not %s",
		         hook_names[h], luaL_typename(co, -1));
		goto out;
	}
	if (lua_getmetatable(co, -1)) { /* its metamethods would run unhooked */
		snprintf(msg, sizeof(msg), "%s must return a table without a metatable",
		         hook_names[h]);
		goto out;
	}
	lua_xmove(co, L, 1); /* stack: thread, answer */
	lua_pushcfunction(L, read_answer);
	lua_pushvalue(L, 2);
	lua_pushlightuserdata(L, &a);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		sandbox_error_text(L, -1, msg, sizeof(msg));
		goto out;
	}
	if (apply_answer(&a, r) < 0) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto out;
	}
	rc = 1;
out:
	lua_settop(L, 0);
	if (rc < 0) {
		/* Errors raised by the script already start with "file:line:". */
		if (strncmp(msg, s->name, strlen(s->name)) == 0)
			snprintf(err, errlen, "%s hook: %s", hook_names[h], msg);
		else
			snprintf(err, errlen, "%s hook: %s: %s", hook_names[h], s->name, msg);
		mock_reply_set_error(r, err);
	}
	return rc;
}
