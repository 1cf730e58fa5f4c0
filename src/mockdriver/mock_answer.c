/* Answer tables (mock_answer.h). */
#include "mock_answer.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>
#include <lauxlib.h>

#include "grpc_status.h"
#include "sandbox.h"

/* A delay longer than a day is a typo, not a test. */
#define MAX_DELAY_S 86400.0

/*
 * A hook's answer as read from its table. Strings are borrowed from the
 * table, which stays on the stack until they are copied.
 */
struct answer_fields {
	enum mock_kind kind;
	const char *hook;
	bool has_ready, has_code, has_delay, has_hang, has_action, has_exit_code, has_size;
	bool has_max_volumes, has_topology, has_caps, has_forward;
	enum mock_ready ready;
	int code, action, exit_code;
	int64_t delay_ns, max_volumes;
	bool hang, forward;
	size_t size;
	const char *message, *name, *vendor_version, *node_id;
	size_t segments;
	const char *segment_key[MOCK_TOPOLOGY_MAX], *segment_value[MOCK_TOPOLOGY_MAX];
	struct mock_caps caps;
};

/* The string at idx, which what names in errors; a C string must hold all of it. */
static const char *string_at(lua_State *L, int idx, const char *what)
{
	size_t len;
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "%s must be a string, not %s", what, luaL_typename(L, idx));
	s = lua_tolstring(L, idx, &len);
	if (strlen(s) != len)
		luaL_error(L, "%s must not contain NUL bytes", what);
	return s;
}

static const char *string_field(lua_State *L, const char *key)
{
	return string_at(L, -1, key);
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

/* A list of capability names of the method's kind, at most MOCK_CAPS_MAX. */
static void read_capabilities(lua_State *L, struct answer_fields *a)
{
	enum mock_caps_kind k = mock_kind_caps(a->kind);
	int t = lua_gettop(L);
	lua_Integer count = 0;
	char names[512];

	if (lua_type(L, t) != LUA_TTABLE)
		luaL_error(L, "capabilities must be a list of names, not %s", luaL_typename(L, t));
	lua_pushnil(L); /* raw walks: no metamethod runs outside the hook's limits */
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (++count > MOCK_CAPS_MAX)
			luaL_error(L, "capabilities: more than %d names", MOCK_CAPS_MAX);
	}
	a->has_caps = true;
	a->caps.n = 0;
	for (lua_Integer i = 1; i <= count; i++) {
		size_t len;
		const char *name;
		int v;

		if (lua_rawgeti(L, t, i) != LUA_TSTRING)
			luaL_error(L,
			           "capabilities must be a list of names; capabilities[%I] is %s",
			           i, luaL_typename(L, -1));
		name = lua_tolstring(L, -1, &len);
		v = mock_caps_value(k, name, len);
		if (v < 0) {
			mock_caps_names(k, names, sizeof(names));
			luaL_error(L, "capabilities: unknown capability %s (known: %s)", name,
			           names);
		}
		a->caps.type[a->caps.n++] = v;
		lua_pop(L, 1);
	}
}

/* A table of segment key → value strings, at most MOCK_TOPOLOGY_MAX. */
static void read_topology(lua_State *L, struct answer_fields *a)
{
	int t = lua_gettop(L);

	if (lua_type(L, t) != LUA_TTABLE)
		luaL_error(L, "topology must be a table of segments (key = value), not %s",
		           luaL_typename(L, t));
	a->has_topology = true;
	a->segments = 0;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		const char *key =
		        string_at(L, -2, "a topology key"); /* a string: lua_next goes on */

		if (key[0] == '\0')
			luaL_error(L, "a topology key must not be empty");
		if (a->segments == MOCK_TOPOLOGY_MAX)
			luaL_error(L, "topology: more than %d segments", MOCK_TOPOLOGY_MAX);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "topology[\"%s\"] must be a string, not %s", key,
			           luaL_typename(L, -1));
		a->segment_key[a->segments] = key;
		a->segment_value[a->segments++] = string_at(L, -1, "a topology value");
		lua_pop(L, 1);
	}
}

#define KIND(k) (1u << (k))

/* The data fields, each valid only in the answers of methods of some kinds (mock_reply.h). */
enum data_field { READY, NAME, VENDOR_VERSION, NODE_ID, MAX_VOLUMES, TOPOLOGY, CAPABILITIES };

static const struct {
	const char *key;
	unsigned kinds; /* KIND() of each mock_kind whose answers carry it */
} data_fields[] = {
        [READY] = {"ready", KIND(MOCK_KIND_PROBE)},
        [NAME] = {"name", KIND(MOCK_KIND_INFO)},
        [VENDOR_VERSION] = {"vendor_version", KIND(MOCK_KIND_INFO)},
        [NODE_ID] = {"node_id", KIND(MOCK_KIND_NODE_INFO)},
        [MAX_VOLUMES] = {"max_volumes_per_node", KIND(MOCK_KIND_NODE_INFO)},
        [TOPOLOGY] = {"topology", KIND(MOCK_KIND_NODE_INFO)},
        [CAPABILITIES] = {"capabilities", KIND(MOCK_KIND_PLUGIN_CAPS) | KIND(MOCK_KIND_NODE_CAPS) |
                                                  KIND(MOCK_KIND_CONTROLLER_CAPS)},
};

/* Raises the error for data field d in the answer of a hook it does not belong to. */
static void wrong_hook(lua_State *L, enum data_field d, const struct answer_fields *a)
{
	char owners[256] = "";
	size_t at = 0;

	for (size_t i = 0; i < csi_method_count() && at < sizeof(owners); i++) {
		const struct csi_method *m = csi_method_at(i);

		if (data_fields[d].kinds & KIND(mock_kind_of(m)))
			at += (size_t)snprintf(owners + at, sizeof(owners) - at, "%s%s",
			                       at ? ", " : "", m->hook);
	}
	luaL_error(L, "unknown field %s in %s's answer (a field of %s)", data_fields[d].key,
	           a->hook, owners);
}

static void read_data_field(lua_State *L, enum data_field d, struct answer_fields *a)
{
	switch (d) {
	case READY:
		read_ready(L, a);
		break;
	case NAME:
		a->name = string_field(L, "name");
		break;
	case VENDOR_VERSION:
		a->vendor_version = string_field(L, "vendor_version");
		break;
	case NODE_ID:
		a->node_id = string_field(L, "node_id");
		break;
	case MAX_VOLUMES:
		a->has_max_volumes = true;
		a->max_volumes = integer_field(L, "max_volumes_per_node", 0, INT64_MAX);
		break;
	case TOPOLOGY:
		read_topology(L, a);
		break;
	case CAPABILITIES:
		read_capabilities(L, a);
		break;
	}
}

/* One key of the answer table; the value is on top of the stack. */
static void read_field(lua_State *L, const char *key, struct answer_fields *a)
{
	for (size_t d = 0; d < sizeof(data_fields) / sizeof(data_fields[0]); d++) {
		if (strcmp(key, data_fields[d].key) != 0)
			continue;
		if (!(data_fields[d].kinds & KIND(a->kind)))
			wrong_hook(L, d, a);
		read_data_field(L, d, a);
		return;
	}
	if (strcmp(key, "code") == 0)
		read_code(L, a);
	else if (strcmp(key, "message") == 0)
		a->message = string_field(L, key);
	else if (strcmp(key, "delay") == 0)
		read_delay(L, a);
	else if (strcmp(key, "hang") == 0)
		a->has_hang = true, a->hang = boolean_field(L, key);
	else if (strcmp(key, "action") == 0)
		read_action(L, a);
	else if (strcmp(key, "exit_code") == 0)
		a->has_exit_code = true, a->exit_code = (int)integer_field(L, key, 0, 255);
	else if (strcmp(key, "size") == 0)
		a->has_size = true, a->size = (size_t)integer_field(L, key, 0, MOCK_OVERSIZED_MAX);
	else if (strcmp(key, "forward") == 0)
		a->has_forward = true, a->forward = boolean_field(L, key);
	else
		luaL_error(L, "unknown field %s in %s's answer", key, a->hook);
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

/*
 * Proxying (r->forward on entry: the flags' answer with --proxy-to): a
 * table forwards the call unless it answers instead, with a code, a hang or
 * an action; `forward = true` with a code forwards and then replaces the
 * backend's status with it; `forward = false` answers as the mock would.
 */
static void apply_forwarding(const struct answer_fields *a, struct mock_reply *r)
{
	if (a->has_forward)
		r->forward = a->forward;
	else
		r->forward = !(a->has_code || (a->has_hang && a->hang) || a->has_action);
	r->replace = r->forward && a->has_code;
}

/*
 * The table's fields override the flags' answer in r. A method without
 * flags (UNIMPLEMENTED) answers OK with an empty message unless the table
 * says otherwise: a hook that returns a table implements the method.
 */
static int apply_answer(const struct answer_fields *a, struct mock_reply *r)
{
	if (r->forward)
		apply_forwarding(a, r);
	else if (a->has_forward && a->forward)
		return -2; /* nowhere to forward to */
	if (a->kind == MOCK_KIND_OTHER && !r->forward && !r->replace) {
		r->code = GRPC_STATUS_OK;
		if (replace_string(&r->message, "") < 0)
			return -1;
	}
	if (replace_string(&r->message, a->message) < 0 || replace_string(&r->name, a->name) < 0 ||
	    replace_string(&r->vendor_version, a->vendor_version) < 0 ||
	    replace_string(&r->node_id, a->node_id) < 0)
		return -1;
	if (a->has_topology) {
		mock_topology_clear(&r->topology);
		r->topology.present = true; /* {} sends an empty Topology, not none */
		for (size_t i = 0; i < a->segments; i++) {
			if (mock_topology_add(&r->topology, a->segment_key[i],
			                      strlen(a->segment_key[i]), a->segment_value[i],
			                      strlen(a->segment_value[i])))
				return -1; /* keys are unique and few: only memory can fail */
		}
	}
	if (a->has_max_volumes)
		r->max_volumes_per_node = a->max_volumes;
	if (a->has_caps)
		r->caps = a->caps;
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

int mock_answer_apply(lua_State *L, const struct csi_method *m, struct mock_reply *r, char *msg,
                      size_t msglen)
{
	struct answer_fields a = {.kind = mock_kind_of(m), .hook = m->hook};

	lua_pushcfunction(L, read_answer);
	lua_pushvalue(L, -2);
	lua_pushlightuserdata(L, &a);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		sandbox_error_text(L, -1, msg, msglen);
		lua_pop(L, 1);
		return -1;
	}
	int rc = apply_answer(&a, r);
	if (rc == -2) {
		snprintf(msg, msglen, "%s's answer: forward = true needs --proxy-to", a.hook);
		return -1;
	}
	if (rc < 0) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	return 0;
}
