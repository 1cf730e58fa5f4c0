/*
 * The one clock of every deadline here (CLOCK_MONOTONIC, nanoseconds), and
 * arithmetic on it that saturates instead of overflowing: Go durations reach
 * 2562047h47m16.854775807s (INT64_MAX ns), and "now + that" must mean
 * "never", not a deadline in the past.
 */
#ifndef LP_CLOCK_H
#define LP_CLOCK_H

#include <stdint.h>

struct timeval;

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t clock_now_ns(void);

/* The same in seconds, as policies and scripts see time. */
double clock_now_s(void);

/* The wall clock (CLOCK_REALTIME) in seconds since the epoch: only for showing when. */
double clock_wall_s(void);

/* a + b, clamped to [INT64_MIN, INT64_MAX]. */
int64_t clock_add(int64_t a, int64_t b);

/* a - b, clamped likewise: the span between two clock values. */
int64_t clock_sub(int64_t a, int64_t b);

/*
 * seconds (from a script: any double) as nanoseconds, clamped to
 * [0, INT64_MAX]; NaN counts as 0. A plain cast of an out-of-range double
 * is undefined behaviour.
 */
int64_t clock_ns_of_seconds(double seconds);

/* now + ns, saturated: the deadline of something that may take ns from now. */
int64_t clock_deadline(int64_t ns);

/*
 * ns (a span; negative counts as 0) as a libevent timer, capped at about a
 * century so that the loop's own "now + timeout" cannot overflow either.
 */
struct timeval clock_timeval(int64_t ns);

/* ns from now until deadline_ns, never negative. */
int64_t clock_left(int64_t deadline_ns);

#endif
