/*
 * A Lua 5.4 state that untrusted policy code may run in (DESIGN.md
 * "Sandbox", LUA-NOTES.md for the measured reasons): allow-listed libraries,
 * read-only globals and library tables, text chunks only, a memory cap, and
 * an instruction budget with a wall-clock limit enforced by a count hook.
 */
#ifndef LP_SANDBOX_H
#define LP_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct sandbox;

/* Why a run was stopped by a limit (SANDBOX_STOP_NONE while it may go on). */
enum sandbox_stop { SANDBOX_STOP_NONE, SANDBOX_STOP_INSTRUCTIONS, SANDBOX_STOP_TIME };

/* A new state capped at memory_limit bytes. NULL with errbuf on failure. */
struct sandbox *sandbox_new(size_t memory_limit, char *errbuf, size_t errlen);
void sandbox_free(struct sandbox *sb);

/* The main state; its registry holds the sandbox's _ENV as "lp.env". */
lua_State *sandbox_state(struct sandbox *sb);

/*
 * Loads a text chunk (never bytecode) with the sandbox _ENV, runs it under
 * the limits and leaves its single result on the stack. On failure returns
 * -1 with "chunkname:line: reason" in errbuf and the stack unchanged.
 */
int sandbox_load(struct sandbox *sb, const char *source, size_t len, const char *chunkname,
                 int64_t instruction_limit, char *errbuf, size_t errlen);

/*
 * Arms the limits on coroutine co: at most instruction_limit VM
 * instructions from now, and no running past deadline_ns (CLOCK_MONOTONIC).
 * Once a limit trips, the hook raises an error and, if the script catches
 * it, yields the whole coroutine on its next call: the script cannot keep
 * running. sandbox_stopped() then tells why.
 */
void sandbox_arm(struct sandbox *sb, lua_State *co, int64_t instruction_limit, int64_t deadline_ns);
/* Moves the wall-clock limit of an armed run (e.g. for the next resume). */
void sandbox_set_deadline(struct sandbox *sb, int64_t deadline_ns);
void sandbox_disarm(struct sandbox *sb, lua_State *co);
enum sandbox_stop sandbox_stopped(const struct sandbox *sb);

/* Bytes the state holds now, and whether the cap refused an allocation since the last arm. */
size_t sandbox_memory(const struct sandbox *sb);
bool sandbox_hit_memory_cap(const struct sandbox *sb);

/*
 * A message for an error value without running any script code: strings and
 * numbers as they are, anything else by its type (a __tostring metamethod
 * could loop, LUA-NOTES.md).
 */
const char *sandbox_error_text(lua_State *L, int idx, char *buf, size_t len);

#endif
