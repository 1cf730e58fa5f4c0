/*
 * Metrics (src/metrics.c): numbers exactly as Go's
 * strconv.FormatFloat(v, 'g', -1, 64) prints them, and the text exposition
 * of upstream's families (UPSTREAM.md §4.1, §4.3) plus ours (DESIGN.md
 * "Metrics").
 */
#include "metrics.h"
#include "testing.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#include <event2/buffer.h>

/* ---- number formatting ---- */

static void check_float(double v, const char *want)
{
	char out[64];
	memset(out, 'Z', sizeof(out));
	metrics_format_float(v, out, sizeof(out));
	if (strcmp(out, want) != 0)
		fprintf(stderr, "metrics_format_float(%.17g)\n", v);
	CHECK_STR(out, want);
}

/* Integers print plainly below 1e6 (exactly 0, 1, -1 included). */
static void test_float_integers(void)
{
	check_float(0, "0");
	check_float(1, "1");
	check_float(-1, "-1");
	check_float(600, "600");
	check_float(123456, "123456");
	check_float(100000, "100000");
	check_float(999999, "999999");
	check_float(-654321, "-654321");
	check_float(-0.0, "-0");
}

/* Exponent form from 1e6 up: shortest digits, a sign, at least two exponent digits. */
static void test_float_large(void)
{
	check_float(1e6, "1e+06");
	check_float(1234567, "1.234567e+06");
	check_float(123456789, "1.23456789e+08");
	check_float(1e20, "1e+20");
	check_float(1e21, "1e+21");
	check_float(1795700915.04, "1.79570091504e+09");
	check_float(1e100, "1e+100");
	check_float(1.7976931348623157e308, "1.7976931348623157e+308");
	check_float(-2.5e7, "-2.5e+07");
}

/* Fractions: plain down to 1e-4, exponent form below. */
static void test_float_fractions(void)
{
	check_float(0.1, "0.1");
	check_float(0.25, "0.25");
	check_float(2.5, "2.5");
	check_float(12345.678, "12345.678");
	check_float(0.0001234, "0.0001234");
	check_float(0.0001, "0.0001");
	check_float(0.00001234, "1.234e-05");
	check_float(0.00001, "1e-05");
	check_float(-0.000619472, "-0.000619472");
	check_float(5e-324, "5e-324");
}

/* Shortest digits that read back as the same double (binary noise shows). */
static void test_float_shortest(void)
{
	check_float(0.1 + 0.2, "0.30000000000000004");
	check_float(0.0039023390000000003, "0.0039023390000000003");
	check_float(1.0 / 3, "0.3333333333333333");
	check_float(2.0 / 3, "0.6666666666666666");
	check_float(100.0 / 3, "33.333333333333336");
	/*
	 * A power of two, where the gap to the next lower double is half the gap
	 * to the next higher one: the correctly rounded 16-digit text (…062e-08)
	 * does not read back, but …063e-08 does, so Go prints 16 digits, not
	 * the 17 of the exact value.
	 */
	check_float(ldexp(1, -24), "5.960464477539063e-08");
	check_float(ldexp(1, -44), "5.684341886080802e-14");
}

static void test_float_special(void)
{
	check_float(INFINITY, "+Inf");
	check_float(-INFINITY, "-Inf");
	check_float(NAN, "NaN");
}

/* ---- exposition ---- */

static char *render(struct metrics *m)
{
	struct evbuffer *buf = evbuffer_new();
	CHECK_INT(metrics_render(m, buf), 0);
	size_t n = evbuffer_get_length(buf);
	char *text = malloc(n + 1);
	evbuffer_remove(buf, text, n);
	text[n] = '\0';
	evbuffer_free(buf);
	return text;
}

#define HELP_OPS                                                                                   \
	"# HELP csi_sidecar_operations_seconds [ALPHA] Container Storage Interface operation "     \
	"duration with gRPC error code status total\n"                                             \
	"# TYPE csi_sidecar_operations_seconds histogram\n"
#define HELP_START                                                                                 \
	"# HELP process_start_time_seconds [ALPHA] Start time of the process since unix epoch in " \
	"seconds.\n"                                                                               \
	"# TYPE process_start_time_seconds gauge\n"

static const char *const les[] = {"0.1", "0.25", "0.5", "1",   "2.5", "5",   "10",
                                  "15",  "25",   "50",  "120", "300", "600", "+Inf"};

/* Appends one histogram series as upstream prints it: 14 buckets, _sum, _count. */
static void want_series(char *out, size_t len, const char *labels, const int cumulative[14],
                        const char *sum, const char *count)
{
	size_t o = strlen(out);
	for (int i = 0; i < 14; i++)
		o += (size_t)snprintf(out + o, len - o,
		                      "csi_sidecar_operations_seconds_bucket{%s,le=\"%s\"} %d\n",
		                      labels, les[i], cumulative[i]);
	o += (size_t)snprintf(out + o, len - o, "csi_sidecar_operations_seconds_sum{%s} %s\n",
	                      labels, sum);
	snprintf(out + o, len - o, "csi_sidecar_operations_seconds_count{%s} %s\n", labels, count);
}

/* Checks the process_start_time_seconds block at the end of text; returns where it starts. */
static const char *check_start_time(const char *text)
{
	const char *block = strstr(text, HELP_START);
	CHECK(block != NULL);
	if (!block)
		return text + strlen(text);
	const char *value = block + strlen(HELP_START);
	CHECK(strncmp(value, "process_start_time_seconds ", 27) == 0);
	char *end;
	double start = strtod(value + 27, &end);
	double now = (double)time(NULL);
	/* This process started moments ago: within a day, and not in the future. */
	CHECK(start > now - 86400 && start <= now + 1);
	CHECK(end[0] == '\n');
	return block;
}

/* Before any observation: no histogram family at all, only the start time. */
static void test_render_empty(void)
{
	struct metrics *m = metrics_new();
	char *text = render(m);
	CHECK(strstr(text, "csi_sidecar_operations_seconds") == NULL);
	CHECK(strncmp(text, HELP_START, strlen(HELP_START)) == 0 ||
	      strstr(text, "\n" HELP_START) != NULL);
	check_start_time(text);
	free(text);
	metrics_free(m);
}

/*
 * Several series: labels in the order driver_name, grpc_status_code,
 * method_name, le; series sorted by those values (not by arrival); buckets
 * cumulative with le inclusive; unknown codes as Go prints them.
 */
static void test_render_histogram(void)
{
	struct metrics *m = metrics_new();
	const char *probe = "/csi.v1.Identity/Probe";
	const char *info = "/csi.v1.Identity/GetPluginInfo";
	metrics_observe_rpc(m, "unknown-driver", info, 0, 0.1);
	metrics_observe_rpc(m, "fake.csi.example.com", probe, 0, 0.0625);
	metrics_observe_rpc(m, "fake.csi.example.com", probe, 9, 0.1);
	metrics_observe_rpc(m, "fake.csi.example.com", probe, 0, 0.0625);
	metrics_observe_rpc(m, "a-driver", probe, 4, 1.0);
	metrics_observe_rpc(m, "fake.csi.example.com", probe, 0, 0.375);
	metrics_observe_rpc(m, "unknown-driver", info, 0, 0.2);
	metrics_observe_rpc(m, "a-driver", probe, 99, 700);
	char *text = render(m);

	static char want[16384];
	snprintf(want, sizeof(want), "%s", HELP_OPS);
	static const int code99[14] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	want_series(want, sizeof(want),
	            "driver_name=\"a-driver\",grpc_status_code=\"Code(99)\",method_name=\"/csi.v1."
	            "Identity/Probe\"",
	            code99, "700", "1");
	static const int deadline[14] = {0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	want_series(want, sizeof(want),
	            "driver_name=\"a-driver\",grpc_status_code=\"DeadlineExceeded\",method_name=\"/"
	            "csi.v1.Identity/Probe\"",
	            deadline, "1", "1");
	static const int failed[14] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	want_series(want, sizeof(want),
	            "driver_name=\"fake.csi.example.com\",grpc_status_code=\"FailedPrecondition\","
	            "method_name=\"/csi.v1.Identity/Probe\"",
	            failed, "0.1", "1");
	static const int ok[14] = {2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
	want_series(want, sizeof(want),
	            "driver_name=\"fake.csi.example.com\",grpc_status_code=\"OK\",method_name=\"/"
	            "csi.v1.Identity/Probe\"",
	            ok, "0.5", "3");
	static const int unknown[14] = {1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
	want_series(want, sizeof(want),
	            "driver_name=\"unknown-driver\",grpc_status_code=\"OK\",method_name=\"/csi.v1."
	            "Identity/GetPluginInfo\"",
	            unknown, "0.30000000000000004", "2");

	/* Upstream's histogram family comes first, exactly. */
	if (strncmp(text, want, strlen(want)) != 0) {
		size_t i = 0;
		while (text[i] && text[i] == want[i])
			i++;
		fprintf(stderr, "exposition differs at byte %zu:\n got: %.120s\nwant: %.120s\n", i,
		        text + i, want + i);
	}
	CHECK(strncmp(text, want, strlen(want)) == 0);
	/* Its lines: HELP, TYPE and 5 series of 16 lines. */
	size_t lines = 0;
	for (const char *s = strstr(text, "csi_sidecar"); s; s = strstr(s + 1, "csi_sidecar"))
		lines++;
	CHECK_INT(lines, 2 + 5 * 16);
	check_start_time(text);
	free(text);
	metrics_free(m);
}

/* Counts go through the float formatting too: a million prints as 1e+06. */
static void test_render_large_count(void)
{
	struct metrics *m = metrics_new();
	for (int i = 0; i < 1000000; i++)
		metrics_observe_rpc(m, "d", "/csi.v1.Identity/Probe", 0, 0.5);
	char *text = render(m);
	const char *labels =
	        "{driver_name=\"d\",grpc_status_code=\"OK\",method_name=\"/csi.v1.Identity/Probe\"";
	char want[256];
	snprintf(want, sizeof(want), "csi_sidecar_operations_seconds_bucket%s,le=\"0.25\"} 0\n",
	         labels);
	CHECK(strstr(text, want) != NULL);
	snprintf(want, sizeof(want), "csi_sidecar_operations_seconds_bucket%s,le=\"0.5\"} 1e+06\n",
	         labels);
	CHECK(strstr(text, want) != NULL);
	snprintf(want, sizeof(want), "csi_sidecar_operations_seconds_sum%s} 500000\n", labels);
	CHECK(strstr(text, want) != NULL);
	snprintf(want, sizeof(want), "csi_sidecar_operations_seconds_count%s} 1e+06\n", labels);
	CHECK(strstr(text, want) != NULL);
	free(text);
	metrics_free(m);
}

/*
 * Label values are escaped as the text format requires (\\, \", \n): the
 * driver name comes from the driver's GetPluginInfo answer, so it is not
 * ours to trust, and one stray quote must not break the whole exposition.
 */
static void test_render_label_escaping(void)
{
	struct metrics *m = metrics_new();
	metrics_observe_rpc(m, "we\"ird\\dri\nver", "/csi.v1.Identity/Probe", 0, 0.5);
	char *text = render(m);
	CHECK(strstr(text, "{driver_name=\"we\\\"ird\\\\dri\\nver\",grpc_status_code=\"OK\",") !=
	      NULL);
	/* Every line is a comment or a sample: the raw newline did not split one. */
	int stray = 0;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		if (line[0] != '#' && strncmp(line, "csi_sidecar_operations_seconds_", 31) != 0 &&
		    strncmp(line, "process_", 8) != 0 && strncmp(line, "livenessprobe_", 14) != 0)
			stray++;
		if (!nl)
			break;
		line = nl + 1;
	}
	CHECK_INT(stray, 0);
	free(text);
	metrics_free(m);
}

/*
 * The text format requires UTF-8 label values; a driver's name need not be
 * UTF-8. Each stray byte becomes U+FFFD, valid characters stay.
 */
static void test_render_label_utf8(void)
{
	struct metrics *m = metrics_new();
	metrics_observe_rpc(m, "d\xff\xc3r\xc3\xa9\xe2\x82", "/csi.v1.Identity/Probe", 0, 0.5);
	char *text = render(m);
	CHECK(strstr(text,
	             "{driver_name=\"d\xef\xbf\xbd\xef\xbf\xbdr\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\","
	             "grpc_status_code=\"OK\",") != NULL);
	free(text);
	metrics_free(m);
}

/*
 * DESIGN.md "Metrics": besides upstream's two families, process_* and our
 * livenessprobe_* families are exposed, all families sorted by name.
 */
static void test_render_own_families(void)
{
	struct metrics *m = metrics_new();
	metrics_observe_rpc(m, "d", "/csi.v1.Identity/Probe", 0, 0.5);
	metrics_count_check(m, true);
	metrics_count_check(m, true);
	metrics_count_check(m, false);
	metrics_count_coalesced(m);
	metrics_count_fallback(m, STOP_ERROR);
	metrics_count_fallback(m, STOP_MEMORY);
	metrics_count_fallback(m, STOP_ERROR);
	char *text = render(m);

	static const char *const samples[] = {
	        "\nlivenessprobe_checks_total{result=\"healthy\"} 2\n",
	        "\nlivenessprobe_checks_total{result=\"unhealthy\"} 1\n",
	        "\nlivenessprobe_requests_coalesced_total 1\n",
	        "\nlivenessprobe_policy_fallbacks_total{reason=\"error\"} 2\n",
	        "\nlivenessprobe_policy_fallbacks_total{reason=\"memory\"} 1\n",
	};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		if (!strstr(text, samples[i]))
			fprintf(stderr, "missing sample:%s", samples[i]);
		CHECK(strstr(text, samples[i]) != NULL);
	}
	/* The families with samples here (labelled ones appear once counted). */
	static const char *const families[] = {
	        "csi_sidecar_operations_seconds",
	        "livenessprobe_checks_total",
	        "livenessprobe_policy_fallbacks_total",
	        "livenessprobe_requests_coalesced_total",
	        "process_cpu_seconds_total",
	        "process_max_fds",
	        "process_open_fds",
	        "process_resident_memory_bytes",
	        "process_start_time_seconds",
	        "process_virtual_memory_bytes",
	};
	const char *prev = NULL;
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char type[128];
		snprintf(type, sizeof(type), "# TYPE %s ", families[i]);
		const char *at = strstr(text, type);
		if (!at)
			fprintf(stderr, "missing family %s\n", families[i]);
		CHECK(at != NULL);
		if (at && prev)
			CHECK(at > prev); /* sorted by name */
		if (at)
			prev = at;
	}
	free(text);
	metrics_free(m);
}

/*
 * DESIGN.md "Metrics": the policy families. The memory gauge shows the last
 * value set; reloads count by result. Families stay sorted by name:
 * ..._policy_fallbacks_total < ..._policy_memory_bytes <
 * ..._policy_reloads_total < ..._requests_coalesced_total.
 */
static void test_render_policy_families(void)
{
	struct metrics *m = metrics_new();
	metrics_count_fallback(m, STOP_TIMEOUT);
	metrics_set_policy_memory(m, 4096);
	metrics_set_policy_memory(m, 123456);
	metrics_count_reload(m, true);
	metrics_count_reload(m, true);
	metrics_count_reload(m, false);
	char *text = render(m);

	static const char *const samples[] = {
	        "\n# TYPE livenessprobe_policy_memory_bytes gauge\n"
	        "livenessprobe_policy_memory_bytes 123456\n",
	        "\n# TYPE livenessprobe_policy_reloads_total counter\n"
	        "livenessprobe_policy_reloads_total{result=\"failure\"} 1\n"
	        "livenessprobe_policy_reloads_total{result=\"success\"} 2\n",
	};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		if (!strstr(text, samples[i]))
			fprintf(stderr, "missing block:\n%s", samples[i]);
		CHECK(strstr(text, samples[i]) != NULL);
	}
	static const char *const order[] = {
	        "# TYPE livenessprobe_checks_total ",
	        "# TYPE livenessprobe_policy_fallbacks_total ",
	        "# TYPE livenessprobe_policy_memory_bytes ",
	        "# TYPE livenessprobe_policy_reloads_total ",
	        "# TYPE livenessprobe_requests_coalesced_total ",
	        "# TYPE process_cpu_seconds_total ",
	};
	const char *prev = NULL;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *at = strstr(text, order[i]);
		if (!at)
			fprintf(stderr, "missing family: %s\n", order[i]);
		CHECK(at != NULL);
		if (at && prev)
			CHECK(at > prev);
		if (at)
			prev = at;
	}
	free(text);
	metrics_free(m);
}

/*
 * The Prometheus Go client leaves a family without series out of the
 * exposition: every HELP line is followed by its TYPE line and at least one
 * sample of that family.
 */
static void test_render_no_empty_families(void)
{
	struct metrics *m = metrics_new();
	metrics_observe_rpc(m, "d", "/csi.v1.Identity/Probe", 0, 0.5);
	char *text = render(m);
	for (const char *help = strstr(text, "# HELP "); help;
	     help = strstr(help + 1, "\n# HELP ")) {
		if (help[0] == '\n')
			help++;
		char name[128];
		if (sscanf(help, "# HELP %127s", name) != 1)
			break;
		const char *type = strchr(help, '\n');
		const char *sample = type ? strchr(type + 1, '\n') : NULL;
		bool ok = sample && strncmp(sample + 1, name, strlen(name)) == 0;
		if (!ok)
			fprintf(stderr, "family without samples: %s\n", name);
		CHECK(ok);
	}
	free(text);
	metrics_free(m);
}

int main(void)
{
	test_float_integers();
	test_float_large();
	test_float_fractions();
	test_float_shortest();
	test_float_special();
	test_render_histogram();
	test_render_large_count();
	test_render_label_escaping();
	test_render_label_utf8();
	test_render_own_families();
	test_render_policy_families();
	test_render_no_empty_families();
	test_render_empty(); /* last: it aborts a UBSan build (qsort of a NULL array) */
	return testing_result("metrics");
}
