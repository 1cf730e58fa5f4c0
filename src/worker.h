/*
 * The worker runner (runner.h, DESIGN.md): a custom policy runs in a worker
 * process, the same binary started with posix_spawn as
 * `livenessprobe --policy-worker V FORMAT`, talking over a socketpair in
 * frames (wire.h, proto/worker.proto). A runaway the Lua hooks cannot stop
 * (a pathological string pattern runs inside C) is ended by killing the
 * worker; the daemon never runs custom Lua itself.
 *
 * This is the daemon's side; worker_child.h is the process's. Everything
 * here is asynchronous: the loop never waits for the worker, not for a
 * load, a step or a respawn.
 */
#ifndef LP_WORKER_H
#define LP_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "policy.h"

struct event_base;
struct runner;

/* The argv[1] that turns the binary into a worker. Not a user flag. */
#define WORKER_ARG "--policy-worker"

/* The worker's end of the socketpair, as the child sees it. */
#define WORKER_FD 3

/* How long past a run's deadline the worker may stay silent before it is killed. */
#define WORKER_GRACE_NS 250000000LL

struct worker_options {
	const char *source; /* the policy text; copied */
	size_t source_len;
	const char *chunkname; /* "@path"; copied */
	struct policy_limits limits;
	int verbosity;
	enum log_format log_format;
};

/*
 * The load's outcome: error NULL once the policy loaded (the runner is ready
 * to run checks), else "path:line: reason" (the runner is useless: unref
 * it). Called once, from the loop.
 */
typedef void (*worker_loaded_cb)(struct runner *runner, const char *error, void *arg);

/*
 * Starts a worker process and sends it the policy; returns at once with a
 * runner holding one reference, and cb reports the load later. NULL with
 * errbuf when no process can be started at all (no callback then).
 *
 * Afterwards, a worker that dies or is killed is started again at once with
 * the same policy: a check that needs it meanwhile waits for it within its
 * own deadline (and falls back when the deadline passes).
 */
struct runner *worker_new(struct event_base *base, const struct worker_options *options,
                          worker_loaded_cb cb, void *arg, char *errbuf, size_t errlen);

/*
 * For a daemon about to exit, its runners freed: waits (at most timeout_ns,
 * polling) for the killed workers not reaped yet, so that none outlives it
 * as a zombie, and frees what reaping them later needed. The loop must not
 * run worker code afterwards.
 */
void worker_reap_before_exit(int64_t timeout_ns);

#endif
