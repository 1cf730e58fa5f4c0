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
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "grpc_status.h"
#include "utf8.h"

static const double buckets[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 25, 50, 120, 300, 600};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct rpc_series {
	char *driver; /* the driver's own name, whole (it may be long: csi.h) */
	char code[24];
	char method[64];
	double sum;
	unsigned long long count;
	unsigned long long bucket[NBUCKETS]; /* cumulative when rendered */
};

struct metrics {
	struct rpc_series *rpc;
	size_t nrpc, caprpc;
	unsigned long long checks_healthy, checks_unhealthy, coalesced;
	unsigned long long reloads_ok, reloads_failed;
	size_t policy_memory;
	unsigned long long fallbacks[STOP_REASON_COUNT]; /* by reason; 0: no series yet */
	double start_time;                               /* process_start_time_seconds */
	bool healthy[ENDPOINT_COUNT];
	double last_success[ENDPOINT_COUNT];
	unsigned long long transitions[ENDPOINT_COUNT][2]; /* [e][to healthy] */
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
	for (size_t i = 0; i < m->nrpc; i++)
		free(m->rpc[i].driver);
	free(m->rpc);
	free(m);
}

static struct rpc_series *find_rpc(struct metrics *m, const char *driver, const char *method,
                                   const char *code)
{
	for (size_t i = 0; i < m->nrpc; i++) {
		struct rpc_series *s = &m->rpc[i];
		if (!strcmp(s->driver, driver) && !strcmp(s->method, method) &&
		    !strcmp(s->code, code))
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
	char *copy = strdup(driver);
	if (!copy)
		return NULL;
	struct rpc_series *s = &m->rpc[m->nrpc++];
	memset(s, 0, sizeof(*s));
	s->driver = copy;
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

void metrics_set_policy_memory(struct metrics *m, size_t bytes)
{
	if (m)
		m->policy_memory = bytes;
}

void metrics_count_reload(struct metrics *m, bool success)
{
	if (!m)
		return;
	if (success)
		m->reloads_ok++;
	else
		m->reloads_failed++;
}

void metrics_set_health(struct metrics *m, enum endpoint e, bool healthy, double last_success)
{
	if (!m)
		return;
	m->healthy[e] = healthy;
	m->last_success[e] = last_success;
}

void metrics_count_transition(struct metrics *m, enum endpoint e, bool healthy)
{
	if (m)
		m->transitions[e][healthy]++;
}

void metrics_reloads(const struct metrics *m, unsigned long long *success,
                     unsigned long long *failure)
{
	*success = m->reloads_ok;
	*failure = m->reloads_failed;
}

size_t metrics_policy_memory(const struct metrics *m)
{
	return m->policy_memory;
}

double metrics_start_time(const struct metrics *m)
{
	return m->start_time;
}

void metrics_count_fallback(struct metrics *m, enum stop_reason reason)
{
	if (m && reason > STOP_NONE && reason < STOP_REASON_COUNT)
		m->fallbacks[reason]++;
}

/*
 * Digits (no dot) and decimal exponent of |v| with prec+1 significant
 * digits; true when they (or a neighbour in the last digit) read back as v.
 */
static bool shortest_digits(double v, int prec, char *digits, int *nd, int *exp)
{
	char e[48];
	snprintf(e, sizeof(e), "%.*e", prec, v);
	int n = 0;
	const char *p = e;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[n++] = *p;
	digits[n] = '\0';
	*nd = n;
	*exp = atoi(p + 1);
	char try[64];
	snprintf(try, sizeof(try), "0.%se%d", digits, *exp + 1);
	if (strtod(try, NULL) == v)
		return true;
	if (prec == 16)
		return true; /* 17 digits always read back */
	for (int delta = -1; delta <= 1; delta += 2) {
		char cand[32];
		memcpy(cand, digits, (size_t)n + 1);
		int i = n - 1;
		/* Add delta to the last digit, carrying; give up on a length change. */
		while (i >= 0) {
			int d = cand[i] - '0' + delta;
			if (d >= 0 && d <= 9) {
				cand[i] = (char)('0' + d);
				break;
			}
			cand[i] = delta > 0 ? '0' : '9';
			i--;
		}
		if (i < 0 || cand[0] == '0')
			continue;
		snprintf(try, sizeof(try), "0.%se%d", cand, *exp + 1);
		if (strtod(try, NULL) == v) {
			memcpy(digits, cand, (size_t)n + 1);
			return true;
		}
	}
	return false;
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
	/*
	 * The fewest significant digits that read back as v. At each length
	 * the correctly rounded digits may miss while a neighbour (last digit
	 * one up or down) hits: at powers of two the rounding interval is
	 * lopsided, and Go's shortest algorithm finds such a neighbour.
	 */
	char digits[32] = {0};
	int nd = 0, exp = 0;
	bool neg = v < 0;
	for (int prec = 0; prec <= 16; prec++) {
		if (shortest_digits(fabs(v), prec, digits, &nd, &exp))
			break;
	}
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

/*
 * A label value as the text format wants it: \\, \" and \n escaped, and
 * valid UTF-8 (the format requires it; a driver's name may not be): each
 * byte that is not part of a valid character becomes U+FFFD.
 */
static void put_label_value(struct evbuffer *out, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t left = strlen(v);
	while (left > 0) {
		uint32_t cp;
		int n = utf8_decode(p, left, &cp);
		if (n == 0) {
			evbuffer_add(out, "\xef\xbf\xbd", 3);
			n = 1;
		} else if (cp == '\\') {
			evbuffer_add(out, "\\\\", 2);
		} else if (cp == '"') {
			evbuffer_add(out, "\\\"", 2);
		} else if (cp == '\n') {
			evbuffer_add(out, "\\n", 2);
		} else {
			evbuffer_add(out, p, (size_t)n);
		}
		p += n;
		left -= (size_t)n;
	}
}

static void put_rpc_labels(struct evbuffer *out, const struct rpc_series *s)
{
	evbuffer_add_printf(out, "driver_name=\"");
	put_label_value(out, s->driver);
	evbuffer_add_printf(out, "\",grpc_status_code=\"%s\",method_name=\"%s\"", s->code,
	                    s->method);
}

static void put_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_operations(struct metrics *m, struct evbuffer *out)
{
	if (m->nrpc == 0)
		return; /* series exist only after a first observation, as upstream */
	if (m->nrpc > 1)
		qsort(m->rpc, m->nrpc, sizeof(m->rpc[0]), cmp_series);
	put_family(out, "csi_sidecar_operations_seconds", "histogram",
	           "[ALPHA] Container Storage Interface operation duration with gRPC error code "
	           "status total");
	for (size_t i = 0; i < m->nrpc; i++) {
		const struct rpc_series *s = &m->rpc[i];
		for (size_t b = 0; b <= NBUCKETS; b++) {
			char le[32];
			if (b < NBUCKETS)
				metrics_format_float(buckets[b], le, sizeof(le));
			else
				snprintf(le, sizeof(le), "+Inf");
			evbuffer_add_printf(out, "csi_sidecar_operations_seconds_bucket{");
			put_rpc_labels(out, s);
			evbuffer_add_printf(out, ",le=\"%s\"}", le);
			put_value(out, (double)(b < NBUCKETS ? s->bucket[b] : s->count));
		}
		evbuffer_add_printf(out, "csi_sidecar_operations_seconds_sum{");
		put_rpc_labels(out, s);
		evbuffer_add_printf(out, "}");
		put_value(out, s->sum);
		evbuffer_add_printf(out, "csi_sidecar_operations_seconds_count{");
		put_rpc_labels(out, s);
		evbuffer_add_printf(out, "}");
		put_value(out, (double)s->count);
	}
}

/*
 * The health families: every series from the start. The endpoint names
 * (healthz, readyz, startupz) are in sorted order already, as the Go
 * client sorts series by label values.
 */
static void render_health(struct metrics *m, struct evbuffer *out)
{
	put_family(out, "livenessprobe_health_transitions_total", "counter",
	           "Changes of an endpoint's verdict, by endpoint and the verdict changed to.");
	for (int e = 0; e < ENDPOINT_COUNT; e++) {
		for (int to = 1; to >= 0; to--) { /* "healthy" sorts before "unhealthy" */
			evbuffer_add_printf(
			        out,
			        "livenessprobe_health_transitions_total{endpoint=\"%s\","
			        "to=\"%s\"}",
			        endpoint_name((enum endpoint)e), to ? "healthy" : "unhealthy");
			put_value(out, (double)m->transitions[e][to]);
		}
	}
	put_family(out, "livenessprobe_healthy", "gauge",
	           "The endpoint's last verdict: 1 healthy, 0 unhealthy or not checked yet.");
	for (int e = 0; e < ENDPOINT_COUNT; e++) {
		evbuffer_add_printf(out, "livenessprobe_healthy{endpoint=\"%s\"}",
		                    endpoint_name((enum endpoint)e));
		put_value(out, m->healthy[e] ? 1 : 0);
	}
	put_family(out, "livenessprobe_last_success_timestamp_seconds", "gauge",
	           "When the endpoint's last healthy verdict was given, in seconds since the "
	           "epoch; 0 if never.");
	for (int e = 0; e < ENDPOINT_COUNT; e++) {
		evbuffer_add_printf(out,
		                    "livenessprobe_last_success_timestamp_seconds{endpoint=\"%s\"}",
		                    endpoint_name((enum endpoint)e));
		put_value(out, m->last_success[e]);
	}
}

/* Our own families (DESIGN.md "Metrics"); names sort after csi_sidecar_*. */
static void render_own(struct metrics *m, struct evbuffer *out)
{
	put_family(out, "livenessprobe_checks_total", "counter",
	           "Health checks answered, by verdict.");
	evbuffer_add_printf(out, "livenessprobe_checks_total{result=\"healthy\"}");
	put_value(out, (double)m->checks_healthy);
	evbuffer_add_printf(out, "livenessprobe_checks_total{result=\"unhealthy\"}");
	put_value(out, (double)m->checks_unhealthy);

	render_health(m, out);

	/* Series appear once counted, sorted by label value, as the Go client does. */
	enum stop_reason order[STOP_REASON_COUNT];
	int n = 0;
	for (int r = STOP_NONE + 1; r < STOP_REASON_COUNT; r++) {
		if (!m->fallbacks[r])
			continue;
		int j = n++;
		for (; j > 0 && strcmp(stop_reason_label(order[j - 1]), stop_reason_label(r)) > 0;
		     j--)
			order[j] = order[j - 1];
		order[j] = (enum stop_reason)r;
	}
	if (n)
		put_family(out, "livenessprobe_policy_fallbacks_total", "counter",
		           "Checks answered by the built-in policy because the policy failed, by "
		           "reason.");
	for (int i = 0; i < n; i++) {
		evbuffer_add_printf(out, "livenessprobe_policy_fallbacks_total{reason=\"%s\"}",
		                    stop_reason_label(order[i]));
		put_value(out, (double)m->fallbacks[order[i]]);
	}

	put_family(out, "livenessprobe_policy_memory_bytes", "gauge",
	           "Bytes held by the Lua state of the policy that decides, after its last check.");
	evbuffer_add_printf(out, "livenessprobe_policy_memory_bytes");
	put_value(out, (double)m->policy_memory);

	put_family(out, "livenessprobe_policy_reloads_total", "counter",
	           "Policy reloads, by result; a failed reload keeps the previous policy.");
	evbuffer_add_printf(out, "livenessprobe_policy_reloads_total{result=\"failure\"}");
	put_value(out, (double)m->reloads_failed);
	evbuffer_add_printf(out, "livenessprobe_policy_reloads_total{result=\"success\"}");
	put_value(out, (double)m->reloads_ok);

	put_family(out, "livenessprobe_requests_coalesced_total", "counter",
	           "Check requests (/healthz, /readyz, /startupz) answered by joining a check in "
	           "flight.");
	evbuffer_add_printf(out, "livenessprobe_requests_coalesced_total");
	put_value(out, (double)m->coalesced);
}

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own fd */
}

/* The standard process_* families, read from /proc as the Go client does. */
static void render_process(struct metrics *m, struct evbuffer *out)
{
	unsigned long utime = 0, stime = 0, vsize = 0;
	long rss_pages = 0;
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	if (f) {
		if (fgets(buf, sizeof(buf), f)) {
			const char *p = strrchr(buf, ')');
			/* Fields 14, 15 (utime, stime), 23 (vsize), 24 (rss) after the name. */
			if (p)
				sscanf(p + 2,
				       "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d "
				       "%*d "
				       "%*d %*d %*d %*d %*u %lu %ld",
				       &utime, &stime, &vsize, &rss_pages);
		}
		fclose(f);
	}
	struct rlimit rl;
	double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : 0;
	double hz = (double)sysconf(_SC_CLK_TCK);

	put_family(out, "process_cpu_seconds_total", "counter",
	           "Total user and system CPU time spent in seconds.");
	evbuffer_add_printf(out, "process_cpu_seconds_total");
	put_value(out, (double)(utime + stime) / hz);
	put_family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
	evbuffer_add_printf(out, "process_max_fds");
	put_value(out, max_fds);
	put_family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
	evbuffer_add_printf(out, "process_open_fds");
	put_value(out, (double)count_open_fds());
	put_family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	evbuffer_add_printf(out, "process_resident_memory_bytes");
	put_value(out, (double)rss_pages * (double)sysconf(_SC_PAGESIZE));
	put_family(out, "process_start_time_seconds", "gauge",
	           "[ALPHA] Start time of the process since unix epoch in seconds.");
	evbuffer_add_printf(out, "process_start_time_seconds");
	put_value(out, m->start_time);
	put_family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	evbuffer_add_printf(out, "process_virtual_memory_bytes");
	put_value(out, (double)vsize);
}

int metrics_render(struct metrics *m, struct evbuffer *out)
{
	render_operations(m, out);
	render_own(m, out);
	render_process(m, out);
	return 0;
}
