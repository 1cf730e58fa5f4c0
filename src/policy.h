/*
 * The policy engine (DESIGN.md "Policy scripts"): a Lua table with a check
 * function (and optional ready and startup functions, endpoint.h), each
 * run as a coroutine inside a sandbox. The policy never performs
 * I/O itself: each run advances in steps, and the caller carries out what a
 * step asks (a probe, a sleep), then resumes the run with the outcome. This
 * keeps every deadline, socket and thread in C. Synchronous: the runners
 * (runner.h) put it behind the event loop or in a worker process.
 *
 * One policy may have several runs in flight (one per endpoint), sharing
 * its state, ctx.state and ctx.history; only one runs Lua at a time.
 */
#ifndef LP_POLICY_H
#define LP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "sandbox.h" /* enum stop_reason */

struct csi_result;
struct file_check_result;
struct policy;
struct policy_run;

struct policy_limits {
	size_t memory;        /* bytes the Lua state may hold */
	int64_t instructions; /* VM instructions per check (and per load) */
};

/* The built-in policy, lua/default.lua, embedded at build time. */
extern const char lp_default_policy_source[];
extern const size_t lp_default_policy_source_len;
#define POLICY_BUILTIN_CHUNKNAME "@lua/default.lua"

/* The longest body check() may return (1 MiB); a longer one is a bad return. */
#define POLICY_BODY_MAX (1u << 20)

/*
 * Loads a policy from source text. chunkname is "@path" (tracebacks then say
 * path:line). NULL with "path:line: reason" in errbuf when the chunk does not
 * compile, raises, breaks a limit, or does not return a table with a check
 * function.
 */
struct policy *policy_new(const char *source, size_t len, const char *chunkname,
                          const struct policy_limits *limits, char *errbuf, size_t errlen);
struct policy *policy_new_builtin(const struct policy_limits *limits, char *errbuf, size_t errlen);
/* Frees the policy and any run still in flight. NULL is a no-op. */
void policy_free(struct policy *p);

/*
 * The clock the policy's runs see: ctx.now(), ctx.deadline(), the check
 * deadline of ctx.probe and ctx.sleep, and the `at` of results. NULL: the
 * real one (CLOCK_MONOTONIC), the default. --check-policy simulates time.
 * The limits on computing always use the real clock.
 */
void policy_set_clock(struct policy *p, int64_t (*now_ns)(void *ctx), void *ctx);

/* ctx.driver for later checks. */
void policy_set_driver(struct policy *p, const char *name, const char *vendor_version);

enum policy_step_kind {
	POLICY_STEP_PROBE,  /* call ctx.probe's Probe; seconds = its timeout (<= 0: default) */
	POLICY_STEP_CALL,   /* make ctx.call's read-only call `method`; seconds as for PROBE */
	POLICY_STEP_FILE,   /* stat ctx.file's `path`, then policy_resume_file */
	POLICY_STEP_SLEEP,  /* wait seconds, then policy_resume_sleep */
	POLICY_STEP_DONE,   /* verdict ready */
	POLICY_STEP_FAILED, /* fallback: reason (metric label) and detail (log, with traceback) */
};

struct policy_step {
	enum policy_step_kind kind;
	double seconds;
	const char *method; /* CALL: the method's name (static, csi_methods.h) */
	char *path;         /* FILE: malloc'd, NUL-free; owned by the step */
	/* DONE */
	bool healthy;
	int status;
	char *body; /* malloc'd, NUL-terminated; owned by the step: policy_step_clear frees it */
	size_t body_len; /* the body may hold NUL bytes */
	/* FAILED */
	enum stop_reason reason;
	char detail[2048]; /* "file:line: what" and a traceback */
};

void policy_step_clear(struct policy_step *step);

/* Whether a run goes on after this step (it asks for a probe, call, stat or sleep). */
static inline bool policy_step_continues(enum policy_step_kind k)
{
	return k == POLICY_STEP_PROBE || k == POLICY_STEP_CALL || k == POLICY_STEP_FILE ||
	       k == POLICY_STEP_SLEEP;
}

/* Whether the policy has the function answering e (check always does). */
bool policy_answers(const struct policy *p, enum endpoint e);

/*
 * Starts the function answering e (check, ready or startup) with a fresh
 * ctx, for a check that must end by deadline_ns
 * (CLOCK_MONOTONIC) and fills step with what happens next. Returns the run,
 * to resume after a PROBE or SLEEP step; once a step is DONE or FAILED the
 * run is over (and freed) and must not be used again. NULL only when the
 * first step already is DONE or FAILED.
 */
struct policy_run *policy_begin(struct policy *p, enum endpoint e, int64_t deadline_ns,
                                struct policy_step *step);
/* Resumes after a POLICY_STEP_PROBE with its outcome. A NULL run: FAILED, "no check in progress".
 */
void policy_resume_probe(struct policy_run *run, const struct csi_result *r,
                         struct policy_step *step);
/*
 * Resumes after a POLICY_STEP_CALL with its outcome: the run sees {ok, code,
 * message, seconds, at, connected, error} and the reply's fields.
 */
void policy_resume_call(struct policy_run *run, const struct csi_result *r,
                        struct policy_step *step);
/* Resumes after a POLICY_STEP_FILE with the stat's outcome (a refusal raises in the policy). */
void policy_resume_file(struct policy_run *run, const struct file_check_result *r,
                        struct policy_step *step);
/* Resumes after a POLICY_STEP_SLEEP. */
void policy_resume_sleep(struct policy_run *run, struct policy_step *step);
/* Drops a run in flight (deadline passed, shutdown). NULL is a no-op. */
void policy_abandon(struct policy_run *run);

/* Bytes held by the policy's Lua state. */
size_t policy_memory(const struct policy *p);

#endif
