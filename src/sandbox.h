/*
 * A Lua 5.4 state that untrusted code (a policy, a mock driver script) may
 * run in (DESIGN.md "Sandbox", LUA-NOTES.md for the measured reasons): the
 * allow-list of lua/sandbox.lua, read-only globals and library tables, text
 * chunks only, a memory cap, and an instruction budget with a wall-clock
 * limit enforced by a count hook. Why a run stopped is decided here, once
 * (sandbox_resume), for every user.
 */
#ifndef LP_SANDBOX_H
#define LP_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct sandbox;

/*
 * Why a run (a policy's check, a script's hook) ended without an answer.
 * The label is the metric label (livenessprobe_policy_fallbacks_total), the
 * phrase what log lines and messages say.
 */
enum stop_reason {
	STOP_NONE,         /* it did not stop */
	STOP_ERROR,        /* "error": it raised */
	STOP_INSTRUCTIONS, /* "instructions": its instruction budget ran out */
	STOP_MEMORY,       /* "memory": its memory cap refused an allocation */
	STOP_TIMEOUT,      /* "timeout": it ran (or would have waited) past its deadline */
	STOP_RETURN,       /* "return": it returned something its caller cannot use */
	STOP_CRASH,        /* "crash": the process running it died */
	STOP_REASON_COUNT,
};

/* "error", "instructions", ... ("" for STOP_NONE). */
const char *stop_reason_label(enum stop_reason r);
/* "exceeded the instruction limit", "ran out of time", ... (NULL when none fits). */
const char *stop_reason_phrase(enum stop_reason r);

/* A new state capped at memory_limit bytes. NULL with errbuf on failure. */
struct sandbox *sandbox_new(size_t memory_limit, char *errbuf, size_t errlen);
void sandbox_free(struct sandbox *sb);

/* The main state; its registry holds the sandbox's _ENV as "lp.env". */
lua_State *sandbox_state(struct sandbox *sb);

/*
 * Loads a text chunk (never bytecode) with the sandbox _ENV, runs it under
 * the limits (and LOAD_TIME_LIMIT) and leaves its single result on the
 * stack. On failure returns -1 with "chunkname:line: reason" in errbuf and
 * the stack unchanged.
 */
int sandbox_load(struct sandbox *sb, const char *source, size_t len, const char *chunkname,
                 int64_t instruction_limit, char *errbuf, size_t errlen);

/*
 * Arms the limits on coroutine co: at most instruction_limit VM
 * instructions from now, and no running past deadline_ns (CLOCK_MONOTONIC).
 * Once a limit trips, the hook raises an error and, if the script catches
 * it, yields the whole coroutine on its next call: the script cannot keep
 * running.
 */
void sandbox_arm(struct sandbox *sb, lua_State *co, int64_t instruction_limit, int64_t deadline_ns);
/* Takes the limits off co; returns the instructions left of its budget (a run resumed later goes on
 * from there). */
int64_t sandbox_disarm(struct sandbox *sb, lua_State *co);

/* The limit that tripped in the current run: STOP_NONE, STOP_INSTRUCTIONS or STOP_TIMEOUT. */
enum stop_reason sandbox_stopped(const struct sandbox *sb);

/* How one resume of an armed coroutine ended. */
enum sandbox_status {
	SANDBOX_RETURNED, /* finished: nres results on co's stack */
	SANDBOX_YIELDED,  /* a host function yielded (ctx.probe...): nres values on co's stack */
	SANDBOX_STOPPED,  /* raised, or broke a limit: reason, message, traceback */
};

struct sandbox_run {
	enum sandbox_status status;
	int nres;
	enum stop_reason reason;
	char message[1536];  /* "file:line: what", or "file: [who ]exceeded ..." */
	char traceback[768]; /* "\n\tfile:line: in function" lines; may be empty */
};

/*
 * Resumes the armed coroutine co with nargs values and says how it ended.
 * A limit that tripped wins over what the script did with it (caught it and
 * returned, or yielded). source names the chunk in messages; who (NULL for
 * none) is the subject of a limit's phrase: "policy" gives "f.lua: policy
 * ran out of time". Nothing is allocated in the state for the message: it
 * may be at its memory cap.
 */
void sandbox_resume(struct sandbox *sb, lua_State *co, int nargs, const char *source,
                    const char *who, struct sandbox_run *run);

/*
 * Where co stands: "\n\tfile:line: in function" lines, Lua frames only,
 * written without allocating in the state.
 */
void sandbox_traceback(lua_State *co, char *out, size_t len);

/* Bytes the state holds now, and whether the cap refused an allocation since the last arm. */
/* The last line of the chunk sandbox_load ran last (its return), for "file:line" messages. */
int sandbox_loaded_line(const struct sandbox *sb);

size_t sandbox_memory(const struct sandbox *sb);
bool sandbox_hit_memory_cap(const struct sandbox *sb);

/*
 * A message for an error value without running any script code: strings and
 * numbers as they are, anything else by its type (a __tostring metamethod
 * could loop, LUA-NOTES.md).
 */
const char *sandbox_error_text(lua_State *L, int idx, char *buf, size_t len);

#endif
