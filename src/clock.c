/* The monotonic clock and saturating time arithmetic (clock.h). */
#include "clock.h"

#include <sys/time.h>
#include <time.h>

/* A timer longer than this is "never" in practice: 100 years. */
#define TIMER_MAX_S (100LL * 365 * 24 * 3600)

int64_t clock_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double clock_now_s(void)
{
	return (double)clock_now_ns() / 1e9;
}

double clock_wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t clock_add(int64_t a, int64_t b)
{
	int64_t sum;
	if (__builtin_add_overflow(a, b, &sum))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return sum;
}

int64_t clock_sub(int64_t a, int64_t b)
{
	int64_t diff;
	if (__builtin_sub_overflow(a, b, &diff))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return diff;
}

int64_t clock_ns_of_seconds(double seconds)
{
	double ns = seconds * 1e9;
	if (!(ns > 0)) /* negative, zero or NaN */
		return 0;
	/* 2^63 as a double: every double below it converts exactly in range. */
	if (ns >= 9223372036854775808.0)
		return INT64_MAX;
	return (int64_t)ns;
}

int64_t clock_deadline(int64_t ns)
{
	return clock_add(clock_now_ns(), ns);
}

int64_t clock_left(int64_t deadline_ns)
{
	int64_t now = clock_now_ns();
	return deadline_ns > now ? deadline_ns - now : 0;
}

struct timeval clock_timeval(int64_t ns)
{
	if (ns < 0)
		ns = 0;
	int64_t s = ns / 1000000000;
	if (s >= TIMER_MAX_S)
		return (struct timeval){.tv_sec = TIMER_MAX_S, .tv_usec = 0};
	return (struct timeval){.tv_sec = s, .tv_usec = (ns % 1000000000) / 1000};
}
