/*
 * Where the custom policy comes from (--policy): the file, watched (watch.h)
 * and reloaded on change or SIGHUP; each text loaded in a worker (worker.h),
 * and swapped in only if it loads (DESIGN.md "Policy scripts"). It owns
 * watch → read → compare → load → swap, the reload log lines and the
 * livenessprobe_policy_reloads_total counter. A swap reaches every check
 * registered here, from its next check on.
 */
#ifndef LP_POLICY_SOURCE_H
#define LP_POLICY_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "policy.h"

struct event_base;
struct metrics;
struct check;
struct csi_driver;
struct runner;
struct policy_source;

struct policy_source_options {
	const char *path; /* --policy; borrowed */
	struct policy_limits limits;
	int verbosity;
	enum log_format log_format;
};

/*
 * The first load's outcome, once, from the loop: error NULL once the policy
 * loaded (it decides from now on), or "path:line: reason" (start-up must
 * stop: exit 1).
 */
typedef void (*policy_source_ready_cb)(const char *error, void *arg);

/*
 * Reads the policy and starts loading it; returns at once. NULL with
 * errbuf when the file cannot be read or no worker can be started (no
 * callback then).
 */
struct policy_source *policy_source_new(struct event_base *base, struct metrics *metrics,
                                        const struct policy_source_options *options,
                                        policy_source_ready_cb cb, void *arg, char *errbuf,
                                        size_t errlen);

/*
 * From now on c runs the current policy, and every one loaded later. -1
 * when the source already feeds its 4 checks (one per endpoint; more is
 * a programming error): c is then left alone.
 */
int policy_source_add_check(struct policy_source *s, struct check *c);

/* ctx.driver, for the current policy and those loaded later; borrowed. */
void policy_source_set_driver(struct policy_source *s, const struct csi_driver *driver);

/*
 * Reads the file again and loads it if its text changed (forced: SIGHUP,
 * even if not, which also starts ctx.state afresh).
 */
void policy_source_reload(struct policy_source *s, bool forced);

/* What /status says of the policy (status.h); strings valid until the next reload. */
struct status_policy;
void policy_source_status(const struct policy_source *s, struct status_policy *out);

/* Stops watching; the runners go when their last check lets go. NULL is a no-op. */
void policy_source_free(struct policy_source *s);

#endif
