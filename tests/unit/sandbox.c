/*
 * The policy sandbox (src/sandbox.c, DESIGN.md "Sandbox", LUA-NOTES.md):
 * what a script can reach, that every write to shared tables raises, that
 * nothing done in one run changes what the next run sees, and that the
 * limits stop runaways. Most cases run as chunks through sandbox_load in one
 * shared state, so a successful attack would show in the checks after it.
 */
#include "sandbox.h"
#include "lua_fixtures.h"
#include "testing.h"

#include <lauxlib.h>

#define MIB (1024 * 1024)

static struct sandbox *sb;
static struct policy_run *run; /* a run that did not end at once (unused: they all do) */
static char result[1024];
static char error_text[1024];

/* The value at idx as text: nil, booleans, strings, numbers; else its type name. */
static void describe(lua_State *L, int idx, char *out, size_t len)
{
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		snprintf(out, len, "nil");
		break;
	case LUA_TBOOLEAN:
		snprintf(out, len, "%s", lua_toboolean(L, idx) ? "true" : "false");
		break;
	case LUA_TSTRING:
	case LUA_TNUMBER:
		lua_pushvalue(L, idx);
		snprintf(out, len, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		break;
	default:
		snprintf(out, len, "%s", luaL_typename(L, idx));
	}
}

/*
 * Runs src as a chunk named "attack" in the shared sandbox. 0 with its
 * result in `result`, or -1 with the message in `error_text`. The stack
 * holds exactly the result on success and is unchanged on failure.
 */
static int eval(const char *src)
{
	lua_State *L = sandbox_state(sb);
	int top = lua_gettop(L);
	result[0] = error_text[0] = '\0';
	int rc = sandbox_load(sb, src, strlen(src), "=attack", 1000000, error_text,
	                      sizeof(error_text));
	if (rc == 0) {
		CHECK_INT(lua_gettop(L), top + 1);
		describe(L, -1, result, sizeof(result));
		lua_settop(L, top);
	} else {
		CHECK_INT(lua_gettop(L), top);
	}
	return rc;
}

static void expect_value(const char *src, const char *want)
{
	int rc = eval(src);
	if (rc != 0 || strcmp(result, want) != 0)
		fprintf(stderr, "chunk: %s\n  error: %s\n", src, error_text);
	CHECK_INT(rc, 0);
	CHECK_STR(result, want);
}

/* The chunk must raise, with want_in_error in the message. */
static void expect_raises(const char *src, const char *want_in_error)
{
	int rc = eval(src);
	if (rc != -1 || !strstr(error_text, want_in_error))
		fprintf(stderr, "chunk: %s\n  result: %s\n  error: %s\n  want error with: %s\n",
		        src, result, error_text, want_in_error);
	CHECK_INT(rc, -1);
	CHECK(strstr(error_text, want_in_error) != NULL);
}

/* ---- what is absent ---- */

static void test_absent(void)
{
	/* Libraries for files, processes, modules, introspection and raw coroutines. */
	static const char *const libs[] = {"os", "io", "require", "package", "debug", "coroutine"};
	/* Base functions that reach the file system, stdout, or bypass the proxies. */
	static const char *const base[] = {"dofile", "loadfile", "print",
	                                   "rawset", "rawget",   "rawequal"};
	char src[128];
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		snprintf(src, sizeof(src), "return %s", libs[i]);
		expect_value(src, "nil");
		snprintf(src, sizeof(src), "return _G.%s", libs[i]);
		expect_value(src, "nil");
	}
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		snprintf(src, sizeof(src), "return %s", base[i]);
		expect_value(src, "nil");
	}
	expect_value("return string.dump", "nil");
	expect_value("return ('').dump", "nil"); /* through the string metatable too */
}

/* ---- what is present and works ---- */

static void test_present(void)
{
	expect_value("return ('x'):rep(3)", "xxx");
	expect_value("return ('abc'):upper()", "ABC");
	expect_value("return string.format('%5.2f|%q', 1/3, 'a\"b')", " 0.33|\"a\\\"b\"");
	expect_value("return math.floor(2.5)", "2");
	expect_value("return math.type(1) .. math.type(1.0)", "integerfloat");
	expect_value("return table.concat({1, 2, 3}, ',')", "1,2,3");
	expect_value("local t = {3, 1, 2} table.sort(t) return table.concat(t)", "123");
	expect_value("return utf8.char(72, 228)", "H\xc3\xa4");
	expect_value("local ok, e = pcall(error, 'x') return tostring(ok) .. '|' .. e", "false|x");
	expect_value("local ok, v = pcall(function() return 7 end) return tostring(ok) .. v",
	             "true7");
	expect_value("return type(pairs) .. type(ipairs) .. type(next) .. type(select) .. "
	             "type(tostring) .. type(tonumber) .. type(assert) .. type(type)",
	             "functionfunctionfunctionfunctionfunctionfunctionfunctionfunction");
	expect_value("return math.type(collectgarbage('count'))", "float");
	expect_value("return getmetatable(setmetatable({}, {__index = {a = 1}})).__index.a", "1");
	expect_value("return setmetatable({}, {__index = function(t, k) return k .. '!' end}).hi",
	             "hi!");
	/* Scripts may build their own environments: only the shared one is read-only. */
	expect_value("local _ENV = {tostring = tostring} x = 5 return tostring(x)", "5");
}

/* ---- writes to shared tables raise ---- */

static void test_read_only(void)
{
	expect_raises("string.upper = nil return 1", "read-only");
	expect_raises("string.shout = function() end return 1", "read-only");
	expect_raises("table.insert = nil return 1", "read-only");
	expect_raises("math.pi = 3 return 1", "read-only");
	expect_raises("utf8.char = nil return 1", "read-only");
	expect_raises("x = 1 return 1", "read-only");
	expect_raises("_G.x = 1 return 1", "read-only");
	expect_raises("_ENV.x = 1 return 1", "read-only");
	expect_raises("_G.string = {} return 1", "read-only");
	expect_raises("string = {} return 1", "read-only");
	expect_raises("pcall = nil return 1", "read-only");

	/* The metatables are locked: getmetatable gives the lock value, not the table. */
	expect_value("return getmetatable('')", "locked");
	expect_value("return getmetatable(string)", "locked");
	expect_value("return getmetatable(_G)", "locked");
	expect_value("return getmetatable('').__index", "nil");
	expect_raises("getmetatable('').__index.upper = nil return 1", "attempt to index");
	expect_raises("setmetatable(string, nil) return 1", "protected metatable");
	expect_raises("setmetatable(_G, {}) return 1", "protected metatable");
	expect_raises("setmetatable(math, {__newindex = rawset}) return 1", "protected metatable");

	/* Proxies show nothing to pairs or # (documented), but reads work. */
	expect_value("return next(string)", "nil");
	expect_value("return #string", "0");
}

/* ---- load: text only, always in the sandbox environment ---- */

static void test_load(void)
{
	expect_value("local f, e = load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n') "
	             "return tostring(f) .. '|' .. e",
	             "nil|attempt to load a binary chunk (mode is 't')");
	expect_value("local f, e = load(function() return nil end) return tostring(f) .. '|' .. e",
	             "nil|load: only text chunks are allowed in a policy");
	expect_value("return load('return 1 + 1')()", "2");
	expect_raises("load('x = 1')() return 1", "read-only");
	/* Asking for another environment or mode is ignored. */
	expect_raises("load('y = 1', 'c', 't', {})() return 1", "read-only");
	expect_raises("load('z = 1', 'c', 'bt', setmetatable({}, {__index = _G}))() return 1",
	              "read-only");
	expect_value("return load('return _G')() == _G", "true");
	expect_value("return load('return os')()", "nil");
	expect_value("local f, e = load('error(\"in chunk\")', '=named') "
	             "local ok, m = pcall(f) return m",
	             "named:1: in chunk");
}

/* ---- collectgarbage and setmetatable restrictions ---- */

static void test_gc_restrictions(void)
{
	expect_raises("collectgarbage('stop') return 1", "only \"count\"");
	expect_raises("collectgarbage() return 1", "only \"count\"");
	expect_raises("collectgarbage('collect') return 1", "only \"count\"");
	expect_raises("collectgarbage('generational') return 1", "only \"count\"");
	expect_raises("setmetatable({}, {__gc = function() end}) return 1", "__gc");
	expect_raises("setmetatable({}, {__gc = function() while true do end end}) return 1",
	              "__gc");
}

/* ---- xpcall: the message handler runs stoppably ---- */

static void test_xpcall(void)
{
	expect_value("local ok, m = xpcall(function() error('e') end, "
	             "function(m) return 'handled:' .. m end) return tostring(ok) .. '|' .. m",
	             "false|handled:attack:1: e");
	expect_value("local ok, a, b = xpcall(function(x) return x, 2 end, "
	             "function(m) return m end, 1) return tostring(ok) .. a .. b",
	             "true12");
	/* A looping handler is stopped by the instruction limit, promptly. */
	int64_t t0 = clock_now_ns();
	eval("local ok = xpcall(error, function() while true do end end) return tostring(ok)");
	CHECK(fixture_elapsed_s(t0) < 2.0);
	CHECK_INT(sandbox_stopped(sb), STOP_INSTRUCTIONS);

	/* Through a policy the check falls back on the instruction limit. */
	struct policy *p = fixture_policy("return {check = function(ctx)\n"
	                                  "  xpcall(error, function() while true do end end)\n"
	                                  "  return true\n"
	                                  "end}",
	                                  4 * MIB, 100000);
	CHECK(p != NULL);
	if (p) {
		struct policy_step st = {0};
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), &st);
		CHECK_INT(st.kind, POLICY_STEP_FAILED);
		CHECK_INT(st.reason, STOP_INSTRUCTIONS);
		policy_step_clear(&st);
		policy_free(p);
	}
}

/* ---- stack depth ---- */

static void test_recursion(void)
{
	/* Lua recursion: under a 16 MiB cap the memory cap comes first, cleanly. */
	const char *deep = "local function f() return f() + 1 end return f()";
	int rc = eval(deep);
	CHECK_INT(rc, -1);
	CHECK(strstr(error_text, "stack overflow") || strstr(error_text, "not enough memory"));
	/*
	 * With room enough, Lua's own stack limit stops it (run as a check: a
	 * chunk's top level has only 1 s, too little under valgrind).
	 */
	struct policy *p = fixture_policy("return {check = function()\n"
	                                  "  local function f() return f() + 1 end return f()\n"
	                                  "end}",
	                                  96 * MIB, INT64_MAX / 2);
	CHECK(p != NULL);
	if (p) {
		struct policy_step st = {0};
		run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(60000), &st);
		CHECK_INT(st.kind, POLICY_STEP_FAILED);
		CHECK(st.reason && st.reason == STOP_ERROR);
		if (!strstr(st.detail, "stack overflow"))
			fprintf(stderr, "deep recursion: %s\n", st.detail);
		CHECK(strstr(st.detail, "stack overflow") != NULL);
		policy_step_clear(&st);
		policy_free(p);
	}
	/* Recursion through metamethods, on the C stack. */
	rc = eval("local t = setmetatable({}, {__index = function(t, k) return t[k] end}) "
	          "return t.x");
	CHECK_INT(rc, -1);
	CHECK(strstr(error_text, "stack overflow") != NULL);
	expect_raises("return ('x'):rep(1 << 40)", "resulting string too large");
	expect_raises("return ('x'):rep(1 << 30)", "not enough memory");
	/* The state still works. */
	expect_value("return 1 + 1", "2");
}

/* ---- nothing above changed what later chunks see ---- */

static void test_nothing_changed(void)
{
	expect_value("return string.upper('abc') .. ('abc'):upper() .. table.concat({1, 2}) .. "
	             "math.floor(1.5) .. utf8.char(65)",
	             "ABCABC121A");
	expect_value("return tostring(x) .. tostring(y) .. tostring(z) .. tostring(string.shout)",
	             "nilnilnilnil");
	expect_value("return type(pcall) .. type(string) .. type(setmetatable) .. "
	             "type(collectgarbage) .. type(load)",
	             "functiontablefunctionfunctionfunction");
	expect_value("return getmetatable('')", "locked");
}

/*
 * The same through a policy: one check tries every write (each caught by
 * pcall), the next check of the same policy sees the libraries unchanged.
 */
static void test_checks_do_not_leak(void)
{
	struct policy *p = fixture_policy(
	        "local attacks = {\n"
	        "  function() string.upper = function() return 'pwned' end end,\n"
	        "  function() getmetatable('').__index.upper = nil end,\n"
	        "  function() setmetatable(string, nil) end,\n"
	        "  function() _G.tostring = nil end,\n"
	        "  function() marker = true end,\n"
	        "  function() load('marker = true')() end,\n"
	        "  function() math.randomseed = nil end,\n"
	        "}\n"
	        "return {check = function(ctx)\n"
	        "  if ctx.state.attacked then\n"
	        "    return true, string.upper('ok') .. tostring(marker) .. type(tostring)\n"
	        "  end\n"
	        "  ctx.state.attacked = true\n"
	        "  local refused = 0\n"
	        "  for _, f in ipairs(attacks) do\n"
	        "    if not pcall(f) then refused = refused + 1 end\n"
	        "  end\n"
	        "  return true, tostring(refused)\n"
	        "end}",
	        4 * MIB, 1000000);
	CHECK(p != NULL);
	if (!p)
		return;
	struct policy_step st = {0};
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	CHECK_INT(st.kind, POLICY_STEP_DONE);
	CHECK_STR(st.body, "7");
	policy_step_clear(&st);
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	CHECK_INT(st.kind, POLICY_STEP_DONE);
	CHECK_STR(st.body, "OKnilfunction");
	policy_step_clear(&st);
	policy_free(p);
}

/* ---- the limits, directly ---- */

static void test_limits(void)
{
	int64_t t0 = clock_now_ns();
	CHECK_INT(eval("while true do end return 1"), -1);
	CHECK(strstr(error_text, "instruction limit") != NULL);
	CHECK_INT(sandbox_stopped(sb), STOP_INSTRUCTIONS);
	/* The limit error cannot be caught for good. */
	CHECK_INT(eval("while true do pcall(function() while true do end end) end return 1"), -1);
	CHECK_INT(sandbox_stopped(sb), STOP_INSTRUCTIONS);
	CHECK(fixture_elapsed_s(t0) < 2.0);

	/* The memory cap: refused allocations are seen, and the state recovers. */
	struct sandbox *small = sandbox_new(1 * MIB, error_text, sizeof(error_text));
	CHECK(small != NULL);
	if (small) {
		size_t base = sandbox_memory(small);
		CHECK(base > 0 && base < 1 * MIB);
		const char *bomb = "local t = {} while true do t[#t+1] = ('x'):rep(1000) end";
		CHECK_INT(sandbox_load(small, bomb, strlen(bomb), "=bomb", 100000000, error_text,
		                       sizeof(error_text)),
		          -1);
		CHECK(strstr(error_text, "not enough memory") != NULL);
		CHECK(sandbox_hit_memory_cap(small));
		CHECK(sandbox_memory(small) <= 1 * MIB);
		lua_gc(sandbox_state(small), LUA_GCCOLLECT, 0);
		CHECK(sandbox_memory(small) < base + 64 * 1024);
		const char *ok = "return 'fine'";
		CHECK_INT(sandbox_load(small, ok, strlen(ok), "=ok", 100000, error_text,
		                       sizeof(error_text)),
		          0);
		CHECK(!sandbox_hit_memory_cap(small)); /* re-armed for each run */
		sandbox_free(small);
	}

	/* A cap too small for the sandbox itself is an error, not a crash. */
	CHECK(sandbox_new(100, error_text, sizeof(error_text)) == NULL);
	CHECK(error_text[0] != '\0');
	CHECK(sandbox_new(8 * 1024, error_text, sizeof(error_text)) == NULL);
	CHECK(error_text[0] != '\0');
	sandbox_free(NULL);
}

/* sandbox_error_text never runs script code and leaves the value as it was. */
static void test_error_text(void)
{
	lua_State *L = sandbox_state(sb);
	char buf[128];
	lua_pushinteger(L, 42);
	CHECK_STR(sandbox_error_text(L, -1, buf, sizeof(buf)), "42");
	CHECK_INT(lua_type(L, -1), LUA_TNUMBER); /* not converted in place */
	lua_pushliteral(L, "text");
	CHECK_STR(sandbox_error_text(L, -1, buf, sizeof(buf)), "text");
	lua_newtable(L);
	CHECK_STR(sandbox_error_text(L, -1, buf, sizeof(buf)), "(error object is a table value)");
	lua_pushboolean(L, 0);
	CHECK_STR(sandbox_error_text(L, -1, buf, sizeof(buf)), "(error object is a boolean value)");
	lua_pushnil(L);
	CHECK_STR(sandbox_error_text(L, -1, buf, sizeof(buf)), "(error object is a nil value)");
	lua_pop(L, 5);
}

/*
 * A runaway inside a Lua function that C calls without yield support (a
 * table.sort comparator, a gsub callback): the hook's yield cannot suspend
 * the coroutine there, so a pcall loop must still not keep the script alive.
 * Run in a child: a hang is reported as a failure.
 */
static int runaway_case(const void *arg)
{
	const char *body = arg;
	char src[512];
	snprintf(src, sizeof(src), "return {check = function(ctx)\n%s\nreturn true\nend}", body);
	struct policy *p = fixture_policy(src, 4 * MIB, 100000);
	if (!p)
		return 1;
	struct policy_step st = {0};
	run = policy_begin(p, ENDPOINT_HEALTHZ, fixture_deadline_ms(1000), &st);
	int rc = st.kind == POLICY_STEP_FAILED ? 0 : 1;
	policy_step_clear(&st);
	policy_free(p);
	return rc;
}

static void test_runaways_in_c_calls(void)
{
	CHECK(fixture_isolated("pcall loop in a table.sort comparator", runaway_case,
	                       "table.sort({3, 2, 1}, function(a, b)\n"
	                       "  while true do pcall(function() while true do end end) end\n"
	                       "end)",
	                       5));
	CHECK(fixture_isolated("pcall loop in a gsub callback", runaway_case,
	                       "string.gsub('abc', '.', function()\n"
	                       "  while true do pcall(function() while true do end end) end\n"
	                       "end)",
	                       5));
	/* Without a pcall loop the first trip already ends it. */
	CHECK(fixture_isolated("plain loop in a table.sort comparator", runaway_case,
	                       "table.sort({3, 2, 1}, function(a, b) while true do end end)", 5));
}

int main(void)
{
	sb = sandbox_new(16 * MIB, error_text, sizeof(error_text));
	CHECK(sb != NULL);
	if (!sb) {
		fprintf(stderr, "sandbox_new: %s\n", error_text);
		return testing_result("sandbox");
	}
	test_absent();
	test_present();
	test_read_only();
	test_load();
	test_gc_restrictions();
	test_xpcall();
	test_recursion();
	test_limits();
	test_error_text();
	test_nothing_changed();
	test_checks_do_not_leak();
	sandbox_free(sb);
	/* Forked cases last, with no state of ours alive to show up in a child's leak report. */
	test_runaways_in_c_calls();
	return testing_result("sandbox");
}
