/*
 * Time arithmetic (src/clock.c): deadlines saturate instead of overflowing,
 * so the largest Go duration (INT64_MAX ns) means "never".
 */
#include "clock.h"
#include "testing.h"

#include <sys/time.h>

static void test_add(void)
{
	CHECK_INT(clock_add(1, 2), 3);
	CHECK(clock_add(INT64_MAX, 1) == INT64_MAX);
	CHECK(clock_add(INT64_MAX - 5, 10) == INT64_MAX);
	CHECK(clock_add(INT64_MIN, -1) == INT64_MIN);
	CHECK(clock_add(INT64_MAX, -1) == INT64_MAX - 1);
}

static void test_deadline(void)
{
	int64_t before = clock_now_ns();
	CHECK(clock_deadline(INT64_MAX) == INT64_MAX);
	int64_t d = clock_deadline(1000000000);
	CHECK(d >= before + 1000000000);
	CHECK(clock_left(d) <= 1000000000 && clock_left(d) > 0);
	CHECK_INT(clock_left(before - 1), 0);
	CHECK(clock_left(INT64_MAX) > 0);
	double s = clock_now_s();
	CHECK(s * 1e9 >= (double)before - 1e3);
}

static void test_timeval(void)
{
	struct timeval tv = clock_timeval(1500000000);
	CHECK_INT(tv.tv_sec, 1);
	CHECK_INT(tv.tv_usec, 500000);
	tv = clock_timeval(-5);
	CHECK_INT(tv.tv_sec, 0);
	CHECK_INT(tv.tv_usec, 0);
	/* Capped at a century: libevent adds it to its own clock. */
	tv = clock_timeval(INT64_MAX);
	CHECK_INT(tv.tv_sec, 100LL * 365 * 24 * 3600);
	CHECK_INT(tv.tv_usec, 0);
}

int main(void)
{
	test_add();
	test_deadline();
	test_timeval();
	return testing_result("clock");
}
