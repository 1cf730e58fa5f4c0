/*
 * Custom policies run in a worker process (DESIGN.md): the same binary,
 * started with posix_spawn as `livenessprobe --policy-worker ...`, talking to
 * the daemon over a socketpair (wire.h). A runaway the Lua hooks cannot stop
 * (a pathological string pattern runs inside C) is ended by killing the
 * worker; the daemon never runs custom Lua itself.
 *
 * Worker side: policy_worker_main. Daemon side: struct worker.
 */
#ifndef LP_POLICY_WORKER_H
#define LP_POLICY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"

struct event_base;
struct csi_probe_result;
struct worker;

/* The argv[1] that turns the binary into a worker. Not a user flag. */
#define POLICY_WORKER_ARG "--policy-worker"

/* Entry point of the worker process: argv is {exe, POLICY_WORKER_ARG, v, format}. */
int policy_worker_main(int argc, char **argv);

struct worker_options {
	const char *source; /* the policy text; copied */
	size_t source_len;
	const char *chunkname; /* "@path" */
	struct policy_limits limits;
	int verbosity;
	enum log_format log_format;
};

/*
 * Spawns a worker and loads the policy in it, waiting (at most a few
 * seconds) for the verdict of the load. NULL with "path:line: reason" in
 * errbuf when the policy does not load.
 */
struct worker *worker_new(struct event_base *base, const struct worker_options *options,
                          char *errbuf, size_t errlen);
void worker_free(struct worker *w);

/*
 * The same without blocking the loop (reloads): returns at once, and cb
 * gets the worker later, with error NULL once the policy loaded, or with
 * "path:line: reason" (then free the worker). NULL with errbuf if the
 * worker cannot even be started.
 */
typedef void (*worker_loaded_cb)(struct worker *w, const char *error, void *arg);
struct worker *worker_load(struct event_base *base, const struct worker_options *options,
                           worker_loaded_cb cb, void *arg, char *errbuf, size_t errlen);

/* ctx.driver in the worker, now and after every respawn. */
void worker_set_driver(struct worker *w, const char *name, const char *vendor_version);

typedef void (*worker_step_cb)(const struct policy_step *step, void *arg);

/*
 * The asynchronous twin of policy_begin/resume_*: the step arrives through
 * cb, from the loop. If the worker does not answer in time (its deadline
 * plus a grace), or dies, it is killed and respawned and cb gets a FAILED
 * step ("timeout" or "crash").
 */
void worker_begin(struct worker *w, int64_t deadline_ns, worker_step_cb cb, void *arg);
void worker_resume_probe(struct worker *w, const struct csi_probe_result *r);
void worker_resume_sleep(struct worker *w);
/* Drops a check in progress: the worker is restarted if it was running Lua. */
void worker_abandon(struct worker *w);

/* Bytes the worker's Lua state held after its last step. */
size_t worker_memory(const struct worker *w);

#endif
