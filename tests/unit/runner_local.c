/*
 * The in-process runner (src/runner_local.c) on a real loop: steps arrive
 * from the loop, never from inside begin or resume; a callback may abandon
 * other runs whose steps are due in the same pass (they are then never
 * delivered, and nothing freed is touched: the sanitizer build checks), and
 * a step queued by a callback is delivered after that callback returned,
 * never inside it.
 */
#include "runner_local.h"
#include "runner.h"

#include <event2/event.h>

#include "lua_fixtures.h"
#include "testing.h"

#define MIB (1024 * 1024)

static struct event_base *base;
static struct runner *runner;

struct seen {
	int steps;
	enum runner_step_kind kind;
	struct runner_run *run;
	struct runner_run **abandon; /* the callback abandons this run (and clears it) */
	struct seen *begin_other;    /* ... or begins a run for this one */
	struct runner *unref;        /* ... or drops this reference (once, whoever comes first) */
};

static struct runner *to_unref; /* the reference test_last_reference... drops */

static bool in_callback;

static void on_step(const struct runner_step *s, void *arg)
{
	struct seen *seen = arg;
	CHECK(!in_callback); /* never a step inside another step's callback */
	in_callback = true;
	seen->steps++;
	seen->kind = s->kind;
	if (s->kind == RUNNER_STEP_DONE || s->kind == RUNNER_STEP_FAILED)
		seen->run = NULL;
	if (seen->abandon && *seen->abandon) {
		runner_abandon(*seen->abandon);
		*seen->abandon = NULL;
	}
	if (seen->begin_other) {
		struct seen *other = seen->begin_other;
		seen->begin_other = NULL;
		other->run = runner_begin(runner, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000),
		                          on_step, other);
	}
	if (seen->unref) {
		if (to_unref == seen->unref) {
			runner_unref(to_unref);
			to_unref = NULL;
		}
		seen->unref = NULL;
	}
	in_callback = false;
}

/* One pass of the loop. */
static void loop_once(void)
{
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void test_steps_come_from_the_loop(void)
{
	struct seen a = {0};
	a.run = runner_begin(runner, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), on_step, &a);
	CHECK(a.run != NULL);
	CHECK_INT(a.steps, 0); /* not from inside begin */
	loop_once();
	CHECK_INT(a.steps, 1);
	CHECK_INT(a.kind, RUNNER_STEP_PROBE);
	struct csi_result ok = fixture_result(true, 0, 1, "", "");
	runner_resume_probe(a.run, &ok);
	CHECK_INT(a.steps, 1); /* not from inside resume */
	loop_once();
	CHECK_INT(a.steps, 2);
	CHECK_INT(a.kind, RUNNER_STEP_DONE);
	CHECK(a.run == NULL);
}

static void test_abandon_within_a_pass(void)
{
	/*
	 * Three runs due in one pass; run i's callback abandons run i+1 (mod 3).
	 * The first delivered abandons one not delivered yet: at most two of the
	 * three steps arrive, and the abandoned run's never does.
	 */
	struct seen s[3] = {{0}};
	struct runner_run *live[3];
	for (int i = 0; i < 3; i++) {
		s[i].run = runner_begin(runner, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000),
		                        on_step, &s[i]);
		live[i] = s[i].run;
	}
	for (int i = 0; i < 3; i++)
		s[i].abandon = &live[(i + 1) % 3];
	loop_once();
	int delivered = s[0].steps + s[1].steps + s[2].steps;
	CHECK(delivered >= 1 && delivered <= 2);
	for (int i = 0; i < 3; i++) {
		CHECK(s[i].steps == 0 || s[i].kind == RUNNER_STEP_PROBE);
		if (!live[i]) /* abandoned: its step must not come */
			continue;
		runner_abandon(live[i]);
		live[i] = NULL;
	}
	loop_once();
	CHECK_INT(s[0].steps + s[1].steps + s[2].steps, delivered); /* nothing late */
}

static void test_begin_from_a_callback(void)
{
	/* Begun inside first's callback: second's step comes after it (on_step checks). */
	struct seen first = {0}, second = {0};
	first.begin_other = &second;
	first.run =
	        runner_begin(runner, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), on_step, &first);
	loop_once();
	CHECK_INT(first.steps, 1);
	CHECK(second.run != NULL);
	loop_once();
	CHECK_INT(second.steps, 1);
	CHECK_INT(second.kind, RUNNER_STEP_PROBE);
	runner_abandon(first.run);
	runner_abandon(second.run);
}

static void test_last_reference_dropped_in_a_callback(void)
{
	/* Two runs due in one pass; the first callback drops the runner's last outside reference.
	 */
	struct runner *r = runner_local_new(
	        base,
	        fixture_policy("return {check = function(ctx) return true end}", 4 * MIB, 1000000));
	CHECK(r != NULL);
	if (!r)
		return;
	struct seen a = {0}, b = {0};
	to_unref = a.unref = b.unref = r;
	a.run = runner_begin(r, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), on_step, &a);
	b.run = runner_begin(r, ENDPOINT_HEALTHZ, fixture_deadline_ms(5000), on_step, &b);
	loop_once();
	/* Both verdicts came (the runner lived through the pass), and exactly one unref ran. */
	CHECK_INT(a.steps, 1);
	CHECK_INT(b.steps, 1);
	CHECK_INT(a.kind, RUNNER_STEP_DONE);
	CHECK_INT(b.kind, RUNNER_STEP_DONE);
	CHECK(a.unref == NULL && b.unref == NULL && to_unref == NULL);
}

int main(void)
{
	base = event_base_new();
	runner = runner_local_new(base, fixture_policy("return {check = function(ctx)\n"
	                                               "  local r = ctx.probe()\n"
	                                               "  return r.ok\n"
	                                               "end}\n",
	                                               4 * MIB, 1000000));
	CHECK(runner != NULL);
	if (runner) {
		test_steps_come_from_the_loop();
		test_abandon_within_a_pass();
		test_begin_from_a_callback();
		test_last_reference_dropped_in_a_callback();
		runner_unref(runner);
	}
	event_base_free(base);
	return testing_result("runner_local");
}
