/*
 * The in-process runner (runner_local.h). The policy engine steps
 * synchronously; each step is kept in its run and handed to the run's
 * callback from the loop (one `soon` event for the runner; each pass
 * delivers the steps marked due before it began), as runner.h promises.
 */
#include "runner_local.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "policy.h"
#include "runner.h"

struct local_run {
	struct runner_run base;    /* first: runner.h */
	struct policy_run *engine; /* NULL once the engine's run is over */
	runner_step_cb cb;
	void *cb_arg;
	struct policy_step step; /* the step to deliver */
	bool due;                /* its step waits for a pass of the loop */
	unsigned pass;           /* ... this one */
	struct local_run *next;  /* every run of the runner */
};

struct runner_local {
	struct runner base; /* first: the runner is a struct runner */
	struct policy *policy;
	struct event *soon;
	unsigned next_pass; /* steps queued now go out in this pass */
	struct local_run *runs;
};

static void unlink_run(struct runner_local *l, struct local_run *run)
{
	for (struct local_run **pp = &l->runs; *pp; pp = &(*pp)->next) {
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	}
}

static void free_run(struct runner_local *l, struct local_run *run)
{
	unlink_run(l, run);
	policy_abandon(run->engine);
	policy_step_clear(&run->step);
	free(run);
}

/* The step in run->step goes to the callback from the loop. */
static void queue_step(struct runner_local *l, struct local_run *run)
{
	run->due = true;
	run->pass = l->next_pass;
	event_active(l->soon, EV_TIMEOUT, 0);
}

static void deliver(struct runner_local *l, struct local_run *run)
{
	const struct policy_step *s = &run->step;
	struct runner_step step = {.seconds = s->seconds,
	                           .method = s->method,
	                           .path = s->path,
	                           .healthy = s->healthy,
	                           .status = s->status,
	                           .body = s->body,
	                           .body_len = s->body_len,
	                           .reason = s->reason,
	                           .detail = s->detail};
	bool final = false;
	switch (s->kind) {
	case POLICY_STEP_PROBE:
		step.kind = RUNNER_STEP_PROBE;
		break;
	case POLICY_STEP_CALL:
		step.kind = RUNNER_STEP_CALL;
		break;
	case POLICY_STEP_FILE:
		step.kind = RUNNER_STEP_FILE;
		break;
	case POLICY_STEP_SLEEP:
		step.kind = RUNNER_STEP_SLEEP;
		break;
	case POLICY_STEP_DONE:
		step.kind = RUNNER_STEP_DONE;
		final = true;
		break;
	case POLICY_STEP_FAILED:
		step.kind = RUNNER_STEP_FAILED;
		final = true;
		break;
	}
	if (final) {
		/* The engine's run ended with this step; the handle ends after the callback. */
		run->engine = NULL;
		unlink_run(l, run);
		run->cb(&step, run->cb_arg);
		policy_step_clear(&run->step);
		free(run);
		return;
	}
	run->cb(&step, run->cb_arg);
}

/*
 * Delivers the steps due in this pass. A callback may free runs (abandon)
 * and begin or resume others: runs are looked up afresh in the runner's
 * list each time, never through a pointer kept across a callback, and steps
 * queued by a callback wait for the next pass.
 */
static void on_soon(evutil_socket_t fd, short what, void *arg)
{
	struct runner_local *l = arg;
	unsigned pass = l->next_pass++;
	/* A callback may drop the last other reference: the runner outlives this pass. */
	runner_ref(&l->base);
	for (;;) {
		struct local_run *run = l->runs;
		while (run && !(run->due && run->pass == pass))
			run = run->next;
		if (!run)
			break;
		run->due = false;
		deliver(l, run);
	}
	runner_unref(&l->base);
}

static struct runner_run *local_begin(struct runner *r, enum endpoint e, int64_t deadline_ns,
                                      runner_step_cb cb, void *arg)
{
	struct runner_local *l = (struct runner_local *)r;
	struct local_run *run = calloc(1, sizeof(*run));
	if (!run)
		return NULL;
	run->base.runner = r;
	run->cb = cb;
	run->cb_arg = arg;
	run->next = l->runs;
	l->runs = run;
	run->engine = policy_begin(l->policy, e, deadline_ns, &run->step);
	queue_step(l, run);
	return &run->base;
}

static void local_resume_probe(struct runner_run *base, const struct csi_result *result)
{
	struct local_run *run = (struct local_run *)base;
	policy_resume_probe(run->engine, result, &run->step);
	run->engine = policy_step_continues(run->step.kind) ? run->engine : NULL;
	queue_step((struct runner_local *)base->runner, run);
}

static void local_resume_call(struct runner_run *base, const struct csi_result *result)
{
	struct local_run *run = (struct local_run *)base;
	policy_resume_call(run->engine, result, &run->step);
	run->engine = policy_step_continues(run->step.kind) ? run->engine : NULL;
	queue_step((struct runner_local *)base->runner, run);
}

static void local_resume_file(struct runner_run *base, const struct file_check_result *result)
{
	struct local_run *run = (struct local_run *)base;
	policy_resume_file(run->engine, result, &run->step);
	run->engine = policy_step_continues(run->step.kind) ? run->engine : NULL;
	queue_step((struct runner_local *)base->runner, run);
}

static void local_resume_sleep(struct runner_run *base)
{
	struct local_run *run = (struct local_run *)base;
	policy_resume_sleep(run->engine, &run->step);
	run->engine = policy_step_continues(run->step.kind) ? run->engine : NULL;
	queue_step((struct runner_local *)base->runner, run);
}

static void local_abandon(struct runner_run *base)
{
	free_run((struct runner_local *)base->runner, (struct local_run *)base);
}

static size_t local_memory(const struct runner *r)
{
	return policy_memory(((const struct runner_local *)r)->policy);
}

static void local_set_driver(struct runner *r, const char *name, const char *vendor_version)
{
	policy_set_driver(((struct runner_local *)r)->policy, name, vendor_version);
}

static void local_destroy(struct runner *r)
{
	struct runner_local *l = (struct runner_local *)r;
	while (l->runs)
		free_run(l, l->runs);
	if (l->soon)
		event_free(l->soon);
	policy_free(l->policy);
	free(l);
}

static const struct runner_ops local_ops = {
        .begin = local_begin,
        .resume_probe = local_resume_probe,
        .resume_call = local_resume_call,
        .resume_file = local_resume_file,
        .resume_sleep = local_resume_sleep,
        .abandon = local_abandon,
        .memory = local_memory,
        .set_driver = local_set_driver,
        .destroy = local_destroy,
        .runs_in = "daemon",
};

struct runner *runner_local_new(struct event_base *base, struct policy *policy)
{
	struct runner_local *l = calloc(1, sizeof(*l));
	if (!l) {
		policy_free(policy);
		return NULL;
	}
	l->base.ops = &local_ops;
	l->base.refs = 1;
	l->policy = policy;
	for (int e = 0; e < ENDPOINT_COUNT; e++)
		if (policy_answers(policy, (enum endpoint)e))
			l->base.answers |= 1u << e;
	l->soon = event_new(base, -1, 0, on_soon, l);
	if (!l->soon) {
		local_destroy(&l->base);
		return NULL;
	}
	return &l->base;
}
