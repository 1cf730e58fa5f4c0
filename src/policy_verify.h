/*
 * --check-policy=FILE: is this policy fit to deploy? Loads it as --policy
 * would, then runs check(ctx) once in the real sandbox against each
 * canonical probe result (ready, not ready, ready absent, a
 * FAILED_PRECONDITION error, unreachable), without a driver, on a
 * simulated clock inside --check-timeout, and prints each verdict. Runs in
 * this process (nothing here reaches a driver or the network); a load or a
 * run stuck inside C is ended by a timer.
 */
#ifndef LP_POLICY_VERIFY_H
#define LP_POLICY_VERIFY_H

#include <stdint.h>
#include <stdio.h>

#include "policy.h"

/*
 * Returns the exit status: 0 when the policy loads and every run ends in a
 * verdict (or at the deadline, after at least one probe: a retrying policy
 * may); 1 naming the case and file:line when one raises, breaks a limit,
 * returns a bad shape, or never probes before its deadline. Writes to out.
 */
int policy_verify(const char *path, const struct policy_limits *limits, int64_t probe_timeout_ns,
                  int64_t check_timeout_ns, FILE *out);

#endif
