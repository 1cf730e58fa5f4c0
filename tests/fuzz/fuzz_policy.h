/*
 * For targets that #include "../../src/policy.c": puts a policy's Lua state
 * back where it was before an input. History is emptied and the garbage
 * collected, so each input starts alike (a crash replays from its file
 * alone), and the input's allocations are freed within it: left to Lua's
 * incremental collector they would look like leaks to libFuzzer, which then
 * runs LeakSanitizer after every input.
 */
#ifndef LP_FUZZ_POLICY_H
#define LP_FUZZ_POLICY_H

static inline void fuzz_policy_reset(struct policy *p)
{
	lua_State *L = sandbox_state(p->sb);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->history_ref);
	for (lua_Integer i = (lua_Integer)lua_rawlen(L, -1); i > 0; i--) {
		lua_pushnil(L); /* storing nil into an existing slot allocates nothing */
		lua_rawseti(L, -2, i);
	}
	lua_pop(L, 1);
	lua_gc(L, LUA_GCCOLLECT, 0);
}

#endif
