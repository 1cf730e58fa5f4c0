/*
 * A policy runner (DESIGN.md "Layout"): runs a policy's check(ctx) (or
 * ready, startup: endpoint.h) step by step for the check module, which carries out each step (a
 * probe, a sleep) and resumes the run with the outcome. Two implementations: runner_local.c  the
 * policy engine in this process (the built-in policy, and the fallback); worker.c        the same
 * engine in a worker process (custom policies), which can be killed when it runs away. The check
 * module sees only this interface, so it has one path for both.
 *
 * Contract for every implementation:
 * - steps arrive through the run's callback, from the event loop, never
 *   from inside runner_begin or a resume call;
 * - a run gets exactly one callback per begin or resume, until a DONE or
 *   FAILED step, after which the run is over and its handle invalid;
 * - runner_abandon ends a run at once, with no more callbacks;
 * - several runs may be in flight on one runner (one per endpoint).
 * A runner is reference-counted: whoever keeps it (a check, the policy
 * source) holds a reference.
 */
#ifndef LP_RUNNER_H
#define LP_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "sandbox.h" /* enum stop_reason */

struct csi_result;
struct file_check_result;
struct runner;
struct runner_run;

enum runner_step_kind {
	RUNNER_STEP_PROBE,  /* make one Probe; seconds = its timeout (<= 0: the default) */
	RUNNER_STEP_CALL,   /* make the read-only call `method`; seconds as for PROBE */
	RUNNER_STEP_SLEEP,  /* wait seconds */
	RUNNER_STEP_DONE,   /* the verdict */
	RUNNER_STEP_FAILED, /* the policy failed: reason, detail (with a traceback) */
	RUNNER_STEP_FILE,   /* stat `path` (ctx.file, file_check.h) */
};

/* One step; valid during the callback only. */
struct runner_step {
	enum runner_step_kind kind;
	double seconds;
	const char *method; /* CALL: a callable method's name (csi_methods.h) */
	const char *path;   /* FILE */
	/* DONE */
	bool healthy;
	int status;
	const char *body; /* NUL-terminated after body_len bytes */
	size_t body_len;  /* the body may hold NUL bytes */
	/* FAILED */
	enum stop_reason reason;
	const char *detail;
};

typedef void (*runner_step_cb)(const struct runner_step *step, void *arg);

struct runner_ops {
	struct runner_run *(*begin)(struct runner *r, enum endpoint e, int64_t deadline_ns,
	                            runner_step_cb cb, void *arg);
	void (*resume_probe)(struct runner_run *run, const struct csi_result *result);
	void (*resume_call)(struct runner_run *run, const struct csi_result *result);
	void (*resume_file)(struct runner_run *run, const struct file_check_result *result);
	void (*resume_sleep)(struct runner_run *run);
	void (*abandon)(struct runner_run *run);
	size_t (*memory)(const struct runner *r);
	void (*set_driver)(struct runner *r, const char *name, const char *vendor_version);
	void (*destroy)(struct runner *r);
	const char *runs_in; /* "daemon" or "worker" */
};

struct runner {
	const struct runner_ops *ops;
	int refs;
	unsigned answers; /* bit e set: the policy has the function answering endpoint e */
};

/*
 * Every run starts with this header, so the generic resume calls can find
 * the runner's operations. Implementations embed it first in their run.
 */
struct runner_run {
	struct runner *runner;
};

/* Whether the runner's policy answers e itself (check always; ready and startup if defined). */
static inline bool runner_answers(const struct runner *r, enum endpoint e)
{
	return (r->answers >> e) & 1u;
}

/*
 * Starts the function answering e in a check that must end by deadline_ns
 * (CLOCK_MONOTONIC); its steps go to cb. NULL when it cannot even start
 * (out of memory): then no callback comes.
 */
static inline struct runner_run *runner_begin(struct runner *r, enum endpoint e,
                                              int64_t deadline_ns, runner_step_cb cb, void *arg)
{
	return r->ops->begin(r, e, deadline_ns, cb, arg);
}

/* Resumes a run after its PROBE, CALL, FILE or SLEEP step. */
static inline void runner_resume_probe(struct runner_run *run, const struct csi_result *result)
{
	run->runner->ops->resume_probe(run, result);
}

static inline void runner_resume_call(struct runner_run *run, const struct csi_result *result)
{
	run->runner->ops->resume_call(run, result);
}

static inline void runner_resume_file(struct runner_run *run,
                                      const struct file_check_result *result)
{
	run->runner->ops->resume_file(run, result);
}

static inline void runner_resume_sleep(struct runner_run *run)
{
	run->runner->ops->resume_sleep(run);
}

/* Ends a run at once; no callback follows. NULL is a no-op. */
static inline void runner_abandon(struct runner_run *run)
{
	if (run)
		run->runner->ops->abandon(run);
}

/* Bytes the runner's Lua state holds (after its last step). */
static inline size_t runner_memory(const struct runner *r)
{
	return r->ops->memory(r);
}

/* ctx.driver for the runs to come. */
static inline void runner_set_driver(struct runner *r, const char *name, const char *vendor)
{
	r->ops->set_driver(r, name, vendor);
}

static inline const char *runner_runs_in(const struct runner *r)
{
	return r->ops->runs_in;
}

/* A runner comes with one reference; the last unref destroys it. NULL is a no-op. */
static inline struct runner *runner_ref(struct runner *r)
{
	if (r)
		r->refs++;
	return r;
}

static inline void runner_unref(struct runner *r)
{
	if (r && --r->refs == 0)
		r->ops->destroy(r);
}

#endif
