/* Go duration text: what time.ParseDuration accepts and Duration.String() prints. */
#include "duration.h"
#include "testing.h"

#include <stdint.h>

#define NS   1LL
#define US   (1000 * NS)
#define MS   (1000 * US)
#define SEC  (1000 * MS)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)

static void check_parse(const char *text, int64_t want)
{
	int64_t got = 12345;
	int rc = duration_parse(text, &got);
	if (rc != 0)
		fprintf(stderr, "duration_parse(\"%s\") failed\n", text);
	CHECK_INT(rc, 0);
	CHECK_INT(got, want);
}

static void check_refused(const char *text)
{
	int64_t got = 12345;
	int rc = duration_parse(text, &got);
	if (rc != -1)
		fprintf(stderr, "duration_parse(\"%s\") accepted\n", text);
	CHECK_INT(rc, -1);
	CHECK_INT(got, 12345); /* untouched on failure */
}

static void check_format(int64_t ns, const char *want)
{
	char buf[64];
	duration_format(ns, buf, sizeof(buf));
	CHECK_STR(buf, want);
}

static void test_parse_units(void)
{
	check_parse("0", 0);
	check_parse("-0", 0);
	check_parse("+0", 0);
	check_parse("0s", 0);
	check_parse("5s", 5 * SEC);
	check_parse("30s", 30 * SEC);
	check_parse("1478s", 1478 * SEC);
	check_parse("7ns", 7 * NS);
	check_parse("7us", 7 * US);
	check_parse("7\xc2\xb5s", 7 * US); /* U+00B5 micro sign */
	check_parse("7\xce\xbcs", 7 * US); /* U+03BC Greek mu */
	check_parse("7ms", 7 * MS);
	check_parse("7m", 7 * MIN);
	check_parse("7h", 7 * HOUR);
}

static void test_parse_signs_fractions_combinations(void)
{
	check_parse("-5s", -5 * SEC);
	check_parse("+5s", 5 * SEC);
	check_parse("1.5s", 1500 * MS);
	check_parse("1.s", 1 * SEC);
	check_parse(".5s", 500 * MS);
	check_parse("1.0s", 1 * SEC);
	check_parse("1.00s", 1 * SEC);
	check_parse("1.004s", 1004 * MS);
	check_parse("100.00100s", 100 * SEC + 1 * MS);
	check_parse("2.2h", 2 * HOUR + 12 * MIN);
	check_parse("0.3333333333333333333h", 20 * MIN); /* surplus digits rounded as Go does */
	check_parse("1.1s", 1100 * MS);
	check_parse("1h2m3.5s", HOUR + 2 * MIN + 3500 * MS);
	check_parse("1m30s", 90 * SEC);
	check_parse("3h30m", 3 * HOUR + 30 * MIN);
	check_parse("10.5s4m", 4 * MIN + 10500 * MS);
	check_parse("-2m3.4s", -(2 * MIN + 3400 * MS));
	check_parse("1h1m1s1ms1us1ns", HOUR + MIN + SEC + MS + US + NS);
	check_parse("39h9m14.425s", 39 * HOUR + 9 * MIN + 14425 * MS);
	check_parse("52763797000ns", 52763797000 * NS);
	check_parse("0.100000000000000000000h", 6 * MIN);
	check_parse("0.830103483285477580700h", 49 * MIN + 48 * SEC + 372539827 * NS);
}

static void test_parse_limits(void)
{
	check_parse("9223372036854775807ns", INT64_MAX);
	check_parse("-9223372036854775808ns", INT64_MIN);
	check_parse("9223372036s854ms775us807ns", INT64_MAX);
	check_parse("-9223372036s854ms775us808ns", INT64_MIN);
	check_refused("9223372036854775808ns");
	check_refused("-9223372036854775809ns");
	check_refused("9223372036854775810ns");
	check_refused("3000000h");
	check_refused("9223372036s854ms775us808ns");
	check_refused("99999999999999999999s");
}

static void test_parse_refused(void)
{
	check_refused("");
	check_refused("5"); /* only "0" may omit the unit */
	check_refused("1x");
	check_refused("abc");
	check_refused("3");
	check_refused("-");
	check_refused("+");
	check_refused("s");
	check_refused(".");
	check_refused("-.");
	check_refused(".s");
	check_refused("+.s");
	check_refused("1d");
	check_refused("1S");
	check_refused("1H");
	check_refused("1sec");
	check_refused("1.5.5s");
	check_refused(" 1s");
	check_refused("1s ");
	check_refused("1 s");
	check_refused("--1s");
	check_refused("1s-1s");
	check_refused("00");
	check_refused("\xb5s1"); /* a lone continuation byte is not a unit */
	check_refused(NULL);
}

static void test_format(void)
{
	check_format(0, "0s");
	check_format(1 * NS, "1ns");
	check_format(999 * NS, "999ns");
	check_format(1 * US, "1\xc2\xb5s");
	check_format(1500 * NS, "1.5\xc2\xb5s");
	check_format(1001 * NS, "1.001\xc2\xb5s");
	check_format(1 * MS, "1ms");
	check_format(300 * MS, "300ms");
	check_format(1 * MS + 1 * NS, "1.000001ms");
	check_format(1 * SEC, "1s");
	check_format(1500 * MS, "1.5s");
	check_format(SEC + 1, "1.000000001s");
	check_format(59 * SEC, "59s");
	check_format(60 * SEC, "1m0s");
	check_format(90 * SEC, "1m30s");
	check_format(61 * SEC + 500 * MS, "1m1.5s");
	check_format(2 * HOUR, "2h0m0s");
	check_format(HOUR + 2 * MIN + 3500 * MS, "1h2m3.5s");
	check_format(-2 * SEC, "-2s");
	check_format(-1 * NS, "-1ns");
	check_format(-1500 * NS, "-1.5\xc2\xb5s");
	check_format(-90 * SEC, "-1m30s");
	check_format(INT64_MAX, "2562047h47m16.854775807s");
	check_format(INT64_MIN, "-2562047h47m16.854775808s");
}

static void test_format_small_buffers(void)
{
	char buf[4] = "xxx";
	duration_format(90 * SEC, buf, sizeof(buf));
	CHECK_STR(buf, "1m3"); /* truncated, still terminated */
	buf[0] = 'z';
	duration_format(SEC, buf, 0);
	CHECK_INT(buf[0], 'z');         /* nothing written */
	duration_format(SEC, NULL, 16); /* no crash */
}

static void test_round_trip(void)
{
	static const int64_t values[] = {0,         1,         999,          1000,    1234567,
	                                 SEC,       90 * SEC,  2 * HOUR,     -7 * MS, INT64_MAX,
	                                 INT64_MIN, 1500 * MS, 36 * HOUR + 1};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char buf[64];
		int64_t back = 0;
		duration_format(values[i], buf, sizeof(buf));
		CHECK_INT(duration_parse(buf, &back), 0);
		CHECK_INT(back, values[i]);
	}
}

int main(void)
{
	test_parse_units();
	test_parse_signs_fractions_combinations();
	test_parse_limits();
	test_parse_refused();
	test_format();
	test_format_small_buffers();
	test_round_trip();
	return testing_result("duration");
}
