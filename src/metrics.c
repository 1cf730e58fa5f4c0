/*
 * Metrics and their Prometheus text exposition, formatted as upstream's Go
 * client formats them (UPSTREAM.md §4.3): families sorted by name, series by
 * label values, numbers in Go's shortest 'g' form.
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "grpc_status.h"

static const double buckets[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 25, 50, 120, 300, 600};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct rpc_series {
	char driver[256];
	char code[24];
	char method[64];
	double sum;
	unsigned long long count;
	unsigned long long bucket[NBUCKETS]; /* cumulative when rendered */
};

struct labelled_counter {
	char label[32];
	unsigned long long value;
};

struct metrics {
	struct rpc_series *rpc;
	size_t nrpc, caprpc;
	unsigned long long checks_healthy, checks_unhealthy, coalesced;
	struct labelled_counter fallbacks[8];
	size_t nfallbacks;
	double start_time; /* process_start_time_seconds */
};

/* Process start in seconds since the epoch, at /proc's clock-tick precision. */
static double read_start_time(void)
{
	char buf[1024];
	double btime = 0;
	unsigned long long start_ticks = 0;
	FILE *f = fopen("/proc/stat", "r");
	if (f) {
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "btime %lf", &btime) == 1)
				break;
		fclose(f);
	}
	f = fopen("/proc/self/stat", "r");
	if (f) {
		if (fgets(buf, sizeof(buf), f)) {
			/* Field 22; skip past the parenthesised command name first. */
			char *p = strrchr(buf, ')');
			int field = 2;
			while (p && *p && field < 22) {
				p = strchr(p + 1, ' ');
				field++;
			}
			if (p)
				start_ticks = strtoull(p + 1, NULL, 10);
		}
		fclose(f);
	}
	return btime + (double)start_ticks / (double)sysconf(_SC_CLK_TCK);
}

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (m)
		m->start_time = read_start_time();
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->rpc);
	free(m);
}

static struct rpc_series *find_rpc(struct metrics *m, const char *driver, const char *method,
				   const char *code)
{
	for (size_t i = 0; i < m->nrpc; i++) {
		struct rpc_series *s = &m->rpc[i];
		if (!strcmp(s->driver, driver) && !strcmp(s->method, method) && !strcmp(s->code, code))
			return s;
	}
	if (m->nrpc == m->caprpc) {
		size_t cap = m->caprpc ? m->caprpc * 2 : 8;
		struct rpc_series *n = realloc(m->rpc, cap * sizeof(*n));
		if (!n)
			return NULL;
		m->rpc = n;
		m->caprpc = cap;
	}
	struct rpc_series *s = &m->rpc[m->nrpc++];
	memset(s, 0, sizeof(*s));
	snprintf(s->driver, sizeof(s->driver), "%s", driver);
	snprintf(s->method, sizeof(s->method), "%s", method);
	snprintf(s->code, sizeof(s->code), "%s", code);
	return s;
}

void metrics_observe_rpc(struct metrics *m, const char *driver, const char *method, int code,
			 double seconds)
{
	if (!m)
		return;
	char namebuf[24];
	const char *name = grpc_status_go_name(code, namebuf, sizeof(namebuf));
	struct rpc_series *s = find_rpc(m, driver, method, name);
	if (!s)
		return;
	s->sum += seconds;
	s->count++;
	for (size_t i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i])
			s->bucket[i]++;
}

void metrics_count_check(struct metrics *m, bool healthy)
{
	if (!m)
		return;
	if (healthy)
		m->checks_healthy++;
	else
		m->checks_unhealthy++;
}

void metrics_count_coalesced(struct metrics *m)
{
	if (m)
		m->coalesced++;
}

void metrics_count_fallback(struct metrics *m, const char *reason)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfallbacks; i++) {
		if (!strcmp(m->fallbacks[i].label, reason)) {
			m->fallbacks[i].value++;
			return;
		}
	}
	if (m->nfallbacks < sizeof(m->fallbacks) / sizeof(m->fallbacks[0])) {
		snprintf(m->fallbacks[m->nfallbacks].label, sizeof(m->fallbacks[0].label), "%s",
			 reason);
		m->fallbacks[m->nfallbacks++].value = 1;
	}
}

/*
 * Go's strconv.FormatFloat(v, 'g', -1, 64), which the Prometheus Go client
 * uses for every sample value: the shortest digits that read back as v,
 * in exponent form when the decimal exponent is < -4 or >= 6 (Go fixes the
 * switch-over at 6 for shortest formatting), exponent with at least two
 * digits ("1e+06", "1.79570091504e+09"); "+Inf", "-Inf", "NaN".
 */
void metrics_format_float(double v, char *out, size_t len)
{
	if (isnan(v)) {
		snprintf(out, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(out, len, signbit(v) ? "-0" : "0");
		return;
	}
	char e[48];
	for (int prec = 0; prec <= 17; prec++) {
		snprintf(e, sizeof(e), "%.*e", prec, v);
		if (strtod(e, NULL) == v)
			break;
	}
	/* e is "[-]d[.ddd]e±XX": collect the digits and the exponent. */
	char digits[32] = {0};
	int nd = 0;
	const char *p = e;
	bool neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[nd++] = *p;
	int exp = atoi(p + 1);

	char buf[64];
	size_t o = 0;
	if (neg)
		buf[o++] = '-';
	if (exp < -4 || exp >= 6) {
		buf[o++] = digits[0];
		if (nd > 1)
			buf[o++] = '.';
		for (int i = 1; i < nd; i++)
			buf[o++] = digits[i];
		snprintf(buf + o, sizeof(buf) - o, "e%c%02d", exp < 0 ? '-' : '+',
			 exp < 0 ? -exp : exp);
	} else if (exp < 0) {
		buf[o++] = '0';
		buf[o++] = '.';
		for (int i = -1; i > exp; i--)
			buf[o++] = '0';
		for (int i = 0; i < nd; i++)
			buf[o++] = digits[i];
		buf[o] = '\0';
	} else {
		for (int i = 0; i <= exp || i < nd; i++) {
			if (i == exp + 1)
				buf[o++] = '.';
			buf[o++] = i < nd ? digits[i] : '0';
		}
		buf[o] = '\0';
	}
	snprintf(out, len, "%s", buf);
}

static int cmp_series(const void *a, const void *b)
{
	const struct rpc_series *x = a, *y = b;
	int c = strcmp(x->driver, y->driver);
	if (!c)
		c = strcmp(x->code, y->code);
	if (!c)
		c = strcmp(x->method, y->method);
	return c;
}

static void put_value(struct evbuffer *out, double v)
{
	char num[64];
	metrics_format_float(v, num, sizeof(num));
	evbuffer_add_printf(out, " %s\n", num);
}

int metrics_render(struct metrics *m, struct evbuffer *out)
{
	qsort(m->rpc, m->nrpc, sizeof(m->rpc[0]), cmp_series);
	if (m->nrpc) {
		evbuffer_add_printf(out, "# HELP csi_sidecar_operations_seconds [ALPHA] Container "
					 "Storage Interface operation duration with gRPC error "
					 "code status total\n"
					 "# TYPE csi_sidecar_operations_seconds histogram\n");
	}
	for (size_t i = 0; i < m->nrpc; i++) {
		const struct rpc_series *s = &m->rpc[i];
		char labels[512];
		snprintf(labels, sizeof(labels),
			 "driver_name=\"%s\",grpc_status_code=\"%s\",method_name=\"%s\"", s->driver,
			 s->code, s->method);
		for (size_t b = 0; b < NBUCKETS; b++) {
			char le[32];
			metrics_format_float(buckets[b], le, sizeof(le));
			evbuffer_add_printf(out, "csi_sidecar_operations_seconds_bucket{%s,le=\"%s\"}",
					    labels, le);
			put_value(out, (double)s->bucket[b]);
		}
		evbuffer_add_printf(out, "csi_sidecar_operations_seconds_bucket{%s,le=\"+Inf\"}",
				    labels);
		put_value(out, (double)s->count);
		evbuffer_add_printf(out, "csi_sidecar_operations_seconds_sum{%s}", labels);
		put_value(out, s->sum);
		evbuffer_add_printf(out, "csi_sidecar_operations_seconds_count{%s}", labels);
		put_value(out, (double)s->count);
	}
	evbuffer_add_printf(out, "# HELP process_start_time_seconds [ALPHA] Start time of the "
				 "process since unix epoch in seconds.\n"
				 "# TYPE process_start_time_seconds gauge\n"
				 "process_start_time_seconds");
	put_value(out, m->start_time);
	return 0;
}
