/*
 * A health policy (DESIGN.md "Policy scripts"): a Lua table with a check
 * function, run once per check as a coroutine inside a sandbox. The policy
 * never performs I/O itself: each run advances in steps, and the caller (the
 * check module) carries out what a step asks (a probe, a sleep), then resumes
 * the policy with the outcome. This keeps every deadline, socket and thread
 * in C.
 */
#ifndef LP_POLICY_H
#define LP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct csi_probe_result;
struct policy;

struct policy_limits {
	size_t memory;        /* bytes the Lua state may hold */
	int64_t instructions; /* VM instructions per check (and per load) */
};

/* The built-in policy, lua/default.lua, embedded at build time. */
extern const char lp_default_policy_source[];
extern const size_t lp_default_policy_source_len;
#define POLICY_BUILTIN_CHUNKNAME "@lua/default.lua"

/*
 * Loads a policy from source text. chunkname is "@path" (tracebacks then say
 * path:line). NULL with "path:line: reason" in errbuf when the chunk does not
 * compile, raises, breaks a limit, or does not return a table with a check
 * function.
 */
struct policy *policy_new(const char *source, size_t len, const char *chunkname,
                          const struct policy_limits *limits, char *errbuf, size_t errlen);
struct policy *policy_new_builtin(const struct policy_limits *limits, char *errbuf, size_t errlen);
void policy_free(struct policy *p);

/* ctx.driver for later checks. */
void policy_set_driver(struct policy *p, const char *name, const char *vendor_version);

/* The longest body check() may return (1 MiB); a longer one is a bad return. */
#define POLICY_BODY_MAX (1u << 20)

enum policy_step_kind {
	POLICY_STEP_PROBE, /* call ctx.probe's Probe; seconds = its timeout (<= 0: default) */
	POLICY_STEP_SLEEP, /* wait seconds, then policy_resume_sleep */
	POLICY_STEP_DONE,  /* verdict ready */
	POLICY_STEP_FAILED /* fallback: reason (metric label) and detail (log, with traceback) */
};

struct policy_step {
	enum policy_step_kind kind;
	double seconds;
	/* DONE */
	bool healthy;
	int status;
	char *body; /* malloc'd, NUL-terminated; owned by the step: policy_step_clear frees it */
	size_t body_len; /* the body may hold NUL bytes */
	/* FAILED */
	const char *reason; /* "error", "instructions", "memory", "timeout", "return" */
	char detail[2048];
};

void policy_step_clear(struct policy_step *step);

/*
 * Starts policy.check(ctx) for a check that must end by deadline_ns
 * (CLOCK_MONOTONIC). Fills step with what happens next. A policy runs one
 * check at a time.
 */
void policy_begin(struct policy *p, int64_t deadline_ns, struct policy_step *step);
/* Resumes after a POLICY_STEP_PROBE with its outcome. */
void policy_resume_probe(struct policy *p, const struct csi_probe_result *r,
                         struct policy_step *step);
/* Resumes after a POLICY_STEP_SLEEP. */
void policy_resume_sleep(struct policy *p, struct policy_step *step);
/* Drops the running check (deadline passed, shutdown); safe when none runs. */
void policy_abandon(struct policy *p);

/* Bytes held by the policy's Lua state. */
size_t policy_memory(const struct policy *p);

#endif
