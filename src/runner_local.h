/*
 * The in-process runner (runner.h): the policy engine (policy.h) in this
 * process, its steps delivered from the event loop. It runs the built-in
 * policy, and answers by fallback when a custom policy fails.
 */
#ifndef LP_RUNNER_LOCAL_H
#define LP_RUNNER_LOCAL_H

struct event_base;
struct policy;
struct runner;

/* A runner over policy, which it takes over (freed with the runner, or at once on failure). */
struct runner *runner_local_new(struct event_base *base, struct policy *policy);

#endif
