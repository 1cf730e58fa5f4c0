/*
 * The --script hooks (see mock_script.h). Each call runs its hook in a new
 * coroutine armed with the sandbox's limits, so a runaway hook answers
 * INTERNAL after HOOK_TIME_LIMIT_NS instead of stalling the server, whose
 * single thread runs the hooks. Every Lua operation that may allocate runs
 * under lua_pcall: a memory error must become an answer, not a panic.
 */
#include "mock_script.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "clock.h"
#include "file_read.h"
#include "mock_answer.h"
#include "sandbox.h"

#define SCRIPT_MEMORY_LIMIT    (64u << 20)
#define SCRIPT_MAX_BYTES       (1u << 20)
#define HOOK_INSTRUCTION_LIMIT 100000000LL
#define HOOK_TIME_LIMIT_NS     1000000000LL

struct mock_script {
	struct sandbox *sb;
	char name[256]; /* the file, for messages */
	int *hook_ref;  /* one per csi_methods entry; LUA_NOREF when the script has none */
};

/* ---- loading ---------------------------------------------------------------------------- */

/* a and b spell the same letters, ignoring case and underscores: "NodeGetInfo", "node_get_info". */
static bool same_letters(const char *a, const char *b)
{
	for (;;) {
		while (*a == '_')
			a++;
		while (*b == '_')
			b++;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if ((*a | 0x20) != (*b | 0x20))
			return false;
		a++, b++;
	}
}

/* The method whose hook is named key, or NULL. */
static const struct csi_method *method_of_hook(const char *key)
{
	for (size_t i = 0; i < csi_method_count(); i++) {
		if (strcmp(csi_method_at(i)->hook, key) == 0)
			return csi_method_at(i);
	}
	return NULL;
}

/* Raises "unknown key" for key (on top of the stack), with the hook it probably meant. */
static int unknown_key(lua_State *L, const struct mock_script *s)
{
	const char *key =
	        lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2);

	for (size_t i = 0; lua_type(L, -2) == LUA_TSTRING && i < csi_method_count(); i++) {
		if (same_letters(key, csi_method_at(i)->hook))
			return luaL_error(
			        L, "%s: unknown key %s in the returned table (did you mean %s?)",
			        s->name, key, csi_method_at(i)->hook);
	}
	return luaL_error(L,
	                  "%s: unknown key %s in the returned table (hooks are CSI method names "
	                  "in snake case: probe, get_plugin_info, node_get_info, ...)",
	                  s->name, key);
}

/*
 * Runs in lua_pcall. Stack: the script's table, the mock_script. Checks that
 * every key is a hook name holding a function (a misspelt "Probe" must not
 * silently fall back to the flags) and takes references to the hooks.
 */
static int bind_hooks(lua_State *L)
{
	struct mock_script *s = lua_touserdata(L, 2);

	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING || !method_of_hook(lua_tostring(L, -2)))
			return unknown_key(L, s);
		lua_pop(L, 1);
	}
	for (size_t i = 0; i < csi_method_count(); i++) {
		const char *hook = csi_method_at(i)->hook;
		int type = lua_getfield(L, 1, hook); /* a plain table: no metamethods run */

		if (type == LUA_TNIL) {
			lua_pop(L, 1);
			continue;
		}
		if (type != LUA_TFUNCTION)
			return luaL_error(L, "%s: %s must be a function, not %s", s->name, hook,
			                  luaL_typename(L, -1));
		s->hook_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
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

	if (s)
		s->hook_ref = calloc(csi_method_count(), sizeof(*s->hook_ref));
	if (!s || !s->hook_ref) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < csi_method_count(); i++)
		s->hook_ref[i] = LUA_NOREF;
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
	free(s->hook_ref);
	free(s);
}

/* ---- one call --------------------------------------------------------------------------- */

/* A varint at *p (before end); false when cut or longer than 10 bytes. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/*
 * Pushes the request's fields by number, as the wire has them: call.request[1]
 * is field 1 (a string for length-delimited ones: a text, bytes, or a nested
 * message's bytes; an integer otherwise). A field given twice keeps its first
 * value. nil when the bytes are no protobuf message. No schema is needed, so
 * every method's request can be looked at, e.g. NodePublishVolume's volume_id
 * (field 1).
 */
static void push_request(lua_State *L, const struct mock_request *req)
{
	const uint8_t *p = req->bytes, *end = req->bytes + req->len;
	if (!req->bytes) {
		lua_pushnil(L);
		return;
	}
	lua_newtable(L);
	while (p < end) {
		uint64_t tag, v;
		if (!read_varint(&p, end, &tag) || tag >> 3 == 0 || tag >> 3 > 536870911)
			goto bad;
		lua_Integer field = (lua_Integer)(tag >> 3);
		switch (tag & 7) {
		case 0:
			if (!read_varint(&p, end, &v))
				goto bad;
			lua_pushinteger(L, (lua_Integer)v);
			break;
		case 1:
		case 5: {
			size_t n = (tag & 7) == 1 ? 8 : 4;
			if ((size_t)(end - p) < n)
				goto bad;
			v = 0;
			for (size_t i = 0; i < n; i++)
				v |= (uint64_t)p[i] << (8 * i);
			p += n;
			lua_pushinteger(L, (lua_Integer)v);
			break;
		}
		case 2:
			if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
				goto bad;
			lua_pushlstring(L, (const char *)p, (size_t)v);
			p += v;
			break;
		default: /* groups, or no wire type at all */
			goto bad;
		}
		if (lua_rawgeti(L, -2, field) == LUA_TNIL) {
			lua_pop(L, 1);
			lua_rawseti(L, -2, field);
		} else {
			lua_pop(L, 2);
		}
	}
	return;
bad:
	lua_pop(L, 1);
	lua_pushnil(L);
}

/*
 * Runs in lua_pcall. Stack: hook, n, elapsed, method (a C string as light
 * userdata), request (a struct mock_request as light userdata). Returns a
 * new thread holding the hook and its call table, ready to resume.
 */
static int prepare_call(lua_State *L)
{
	lua_State *co;
	const struct mock_request *req = lua_touserdata(L, 5);

	lua_settop(L, 4);
	lua_pushstring(L, lua_touserdata(L, 4));
	lua_replace(L, 4);
	co = lua_newthread(L); /* 5 */

	lua_createtable(L, 0, 4); /* 6 */
	push_request(L, req);
	lua_setfield(L, 6, "request");
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

int mock_script_answer(struct mock_script *s, const struct csi_method *m, unsigned long n,
                       double elapsed_s, const struct mock_request *req, struct mock_reply *r,
                       char *err, size_t errlen)
{
	static const struct mock_request none;
	lua_State *L = sandbox_state(s->sb), *co;
	int ref = s->hook_ref[mock_method_index(m)];
	char msg[1536];
	struct sandbox_run run;
	int nres, rc = -1;

	if (ref == LUA_NOREF)
		return 0;
	lua_settop(L, 0);
	lua_pushcfunction(L, prepare_call);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_pushinteger(L, (lua_Integer)n);
	lua_pushnumber(L, elapsed_s);
	lua_pushlightuserdata(L, (void *)m->name); /* made a string under pcall */
	lua_pushlightuserdata(L, (void *)(req ? req : &none));
	if (lua_pcall(L, 5, 1, 0) != LUA_OK) {
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
		snprintf(msg, sizeof(msg), "%s must return nil or a plain table, not %s", m->hook,
		         luaL_typename(co, -1));
		goto out;
	}
	if (lua_getmetatable(co, -1)) { /* its metamethods would run unhooked */
		snprintf(msg, sizeof(msg), "%s must return a table without a metatable", m->hook);
		goto out;
	}
	lua_xmove(co, L, 1); /* stack: thread, answer */
	if (mock_answer_apply(L, m, r, msg, sizeof(msg)) < 0)
		goto out;
	rc = 1;
out:
	lua_settop(L, 0);
	if (rc < 0) {
		/* Errors raised by the script already start with "file:line:". */
		if (strncmp(msg, s->name, strlen(s->name)) == 0)
			snprintf(err, errlen, "%s hook: %s", m->hook, msg);
		else
			snprintf(err, errlen, "%s hook: %s: %s", m->hook, s->name, msg);
		mock_reply_set_error(r, err);
	}
	return rc;
}
