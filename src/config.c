/*
 * The livenessprobe command line: its flags (UPSTREAM.md §1.1, DESIGN.md
 * "Flags") read by goflag.h with Go's syntax and messages (§1.2, §1.4), then
 * checked in the order upstream's main() checks them (§1.2). Nothing here
 * keeps state between calls.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "duration.h"
#include "goflag.h"

#define DEFAULT_HEALTH_PORT "9808"

static const char reason_trace[] = "syntax error: expect file.go:234";
static const char reason_vmodule[] = "syntax error: expect comma-separated list of pattern=N";

/* ---- klog's value kinds ---- */

/* klog's Level (-v): a decimal int32, not negative; strconv's own errors. */
static const char *parse_level(const char *value, void *target, char *why, size_t whylen)
{
	int64_t number;
	int e = goflag_parse_int(value, 10, 32, &number);
	if (e != 0)
		return e == -2 ? GOFLAG_STRCONV_RANGE : GOFLAG_STRCONV_SYNTAX;
	if (number < 0)
		return "must be non-negative";
	*(int *)target = (int)number;
	return NULL;
}

/* klog severities by name (klog compares upper-cased) or number. */
static const char *parse_severity(const char *value, void *target, char *why, size_t whylen)
{
	static const char *const names[] = {"INFO", "WARNING", "ERROR", "FATAL"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(value, names[i]) == 0) {
			*(int *)target = i;
			return NULL;
		}
	}
	int64_t number;
	int e = goflag_parse_int(value, 10, 32, &number);
	if (e != 0)
		return e == -2 ? GOFLAG_STRCONV_RANGE : GOFLAG_STRCONV_SYNTAX;
	if (number < 0 || number > 3)
		return "must be INFO, WARNING, ERROR, FATAL or a number from 0 to 3";
	*(int *)target = (int)number;
	return NULL;
}

/* A string kept as given, for the custom kinds that own one. */
static const char *keep_string(char **target, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return "out of memory";
	free(*target);
	*target = copy;
	return NULL;
}

/* klog -log_backtrace_at: empty, or file:N with a dot in file and N > 0. */
static const char *parse_trace(const char *value, void *target, char *why, size_t whylen)
{
	if (*value != '\0') {
		const char *colon = strchr(value, ':');
		int64_t line;
		if (colon == NULL || strchr(colon + 1, ':') != NULL ||
		    memchr(value, '.', (size_t)(colon - value)) == NULL ||
		    goflag_parse_int(colon + 1, 10, 64, &line) != 0 || line <= 0)
			return reason_trace;
	}
	return keep_string(target, value);
}

/* -vmodule: comma-separated pattern=N items (empty items skipped), N >= 0. */
/*
 * --policy-allow-path=DIR, repeatable: an absolute path to an existing
 * directory, kept resolved (symlinks and ".." gone), so that ctx.file
 * compares resolved paths with resolved paths (file_check.h).
 */
static const char *parse_allow_path(const char *value, void *target, char *why, size_t whylen)
{
	struct path_list *list = target;
	char resolved[PATH_MAX];
	struct stat st;
	if (value[0] == '\0')
		return NULL; /* the flag's starting value (and an empty one): adds nothing */
	if (value[0] != '/')
		return "must be an absolute path";
	if (!realpath(value, resolved) || stat(resolved, &st) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return why;
	}
	if (!S_ISDIR(st.st_mode))
		return "not a directory";
	char **grown = realloc(list->paths, (list->count + 1) * sizeof(*grown));
	if (!grown)
		return "out of memory";
	list->paths = grown;
	if (!(list->paths[list->count] = strdup(resolved)))
		return "out of memory";
	list->count++;
	return NULL;
}

static const char *parse_vmodule(const char *value, void *target, char *why, size_t whylen)
{
	for (const char *s = value; *s != '\0';) {
		size_t len = strcspn(s, ",");
		if (len > 0) {
			char *item = strndup(s, len);
			char *eq = item != NULL ? strchr(item, '=') : NULL;
			int64_t level;
			bool ok = eq != NULL && eq != item && strchr(eq + 1, '=') == NULL &&
			          goflag_parse_int(eq + 1, 10, 32, &level) == 0 && level >= 0;
			free(item);
			if (!ok)
				return reason_vmodule;
		}
		s += len;
		if (*s == ',')
			s++;
	}
	return keep_string(target, value);
}

/* Values that are parsed and checked but have no place in struct config. */
struct extra {
	char *logging_format;
	bool json_split_stream, text_split_stream;
	int64_t json_info_buffer_size, text_info_buffer_size;
	/* klog's legacy surface (upstream ≤ v2.11): accepted, no effect. */
	bool logtostderr, alsologtostderr, one_output, skip_log_headers, add_dir_header;
	char *log_dir, *log_file, *log_backtrace_at;
	uint64_t log_file_max_size;
	int stderrthreshold;
};

/* Where a flag's value lives: field of struct config (base 0), or of struct extra (base 1). */
#define IN_CONFIG(field) 0, offsetof(struct config, field)
#define IN_EXTRA(field)  1, offsetof(struct extra, field)
/* klog's own value kinds (goflag's custom kinds). */
#define KIND_LEVEL    GOFLAG_CUSTOM
#define KIND_SEVERITY GOFLAG_CUSTOM
#define KIND_TRACE    GOFLAG_CUSTOM
#define KIND_VMODULE  GOFLAG_CUSTOM

/*
 * The flag set. A default equal to the type's zero value ("", "0", "0s",
 * "false") is written as NULL: Go's usage text hides those.
 * --policy and --check-policy may both be given: --check-policy wins (main
 * checks that file and exits), so --policy is then simply unused.
 */
static const struct goflag flags[] = {
        /* Program flags (UPSTREAM.md §1.1). */
        {"csi-address", GOFLAG_STRING, IN_CONFIG(csi_address), "/run/csi/socket", 0,
         "Path of the CSI driver's socket, or a unix:// URL for it", NULL, NULL, false},
        {"probe-timeout", GOFLAG_DURATION, IN_CONFIG(probe_timeout_ns), "1s", 0,
         "Time allowed for one Probe call to the driver, connecting included", NULL, NULL, false},
        {"health-port", GOFLAG_STRING, IN_CONFIG(health_port), DEFAULT_HEALTH_PORT, 0,
         "(deprecated) TCP port, on every address, where /healthz is served;\n"
         "use --http-endpoint instead",
         NULL, NULL, false},
        {"http-endpoint", GOFLAG_STRING, IN_CONFIG(http_endpoint), NULL, 0,
         "host:port of one HTTP server carrying /healthz and the metrics;\n"
         "when empty, /healthz is served on --health-port",
         NULL, NULL, false},
        {"metrics-address", GOFLAG_STRING, IN_CONFIG(metrics_address), NULL, 0,
         "(deprecated) host:port of a separate HTTP server carrying only the metrics;\n"
         "empty disables it; use --http-endpoint instead",
         NULL, NULL, false},
        {"metrics-path", GOFLAG_STRING, IN_CONFIG(metrics_path), "/metrics", 0,
         "HTTP path where the metrics are served", NULL, NULL, false},
        {"automaxprocs", GOFLAG_BOOL, IN_CONFIG(automaxprocs), NULL, 0,
         "Accepted for compatibility with upstream; has no effect here", NULL, NULL, false},

        /* Our own flags (DESIGN.md). */
        {"version", GOFLAG_BOOL, IN_CONFIG(version), NULL, 0, "Print the version and exit", NULL,
         NULL, false},
        {"policy", GOFLAG_OPT_STRING, IN_CONFIG(policy_file), NULL, 0,
         "Lua policy file deciding what healthy means; unset means the built-in policy", NULL, NULL,
         false},
        {"check-policy", GOFLAG_OPT_STRING, IN_CONFIG(check_policy_file), NULL, 0,
         "Load this Lua policy file as --policy would, run its check once on each canonical\n"
         "probe result, report, and exit",
         NULL, NULL, false},
        {"check-timeout", GOFLAG_DURATION, IN_CONFIG(check_timeout_ns), NULL, 0,
         "Time allowed for one whole health check, policy included;\n"
         "unset means the probe timeout",
         NULL, NULL, false},
        {"status", GOFLAG_BOOL, IN_CONFIG(status), "true", 0,
         "Serve /status (the recent checks and probes, as JSON or text) beside /healthz", NULL,
         NULL, false},
        {"probe-interval", GOFLAG_DURATION, IN_CONFIG(probe_interval_ns), NULL, 0,
         "Also run the /healthz check on its own this often, so /status, the health metrics\n"
         "and the transition log stay current between kubelet's requests; 0 means off;\n"
         "otherwise at least --check-timeout",
         NULL, NULL, false},
        {"policy-memory-limit", GOFLAG_SIZE, IN_CONFIG(policy_memory_limit), "16Mi", 64 * 1024,
         "Most memory the policy's Lua state may use: bytes, or a number with Ki, Mi or Gi;\n"
         "at least 64Ki",
         NULL, NULL, false},
        {"policy-instruction-limit", GOFLAG_INT, IN_CONFIG(policy_instruction_limit), "10000000", 1,
         "Most Lua instructions one health check may run", NULL, NULL, false},
        {"policy-allow-path", GOFLAG_CUSTOM, IN_CONFIG(policy_allow_paths), NULL, 0,
         "Directory (absolute, existing) whose entries the policy's ctx.file may stat;\n"
         "may be given several times; none means ctx.file raises",
         parse_allow_path, "value", false},

        /* Logging, component-base surface (upstream ≥ v2.12). */
        {"v", KIND_LEVEL, IN_CONFIG(verbosity), NULL, 0,
         "Log verbosity: higher numbers add more detail", parse_level, "int", false},
        {"vmodule", KIND_VMODULE, IN_CONFIG(vmodule), NULL, 0,
         "Comma-separated pattern=N list setting the verbosity per source file (text format "
         "only)",
         parse_vmodule, "string", true},
        {"logging-format", GOFLAG_STRING, IN_EXTRA(logging_format), "text", 0,
         "Log line format: text or json", NULL, NULL, false},
        {"log-flush-frequency", GOFLAG_DURATION, IN_CONFIG(log_flush_frequency_ns), "5s", 0,
         "Longest time a log line may wait in a buffer", NULL, NULL, false},
        {"log-json-split-stream", GOFLAG_BOOL, IN_EXTRA(json_split_stream), NULL, 0,
         "[Alpha] With json format, info to stdout and errors to stderr; not supported", NULL, NULL,
         false},
        {"log-text-split-stream", GOFLAG_BOOL, IN_EXTRA(text_split_stream), NULL, 0,
         "[Alpha] With text format, info to stdout and errors to stderr; not supported", NULL, NULL,
         false},
        {"log-json-info-buffer-size", GOFLAG_SIZE, IN_EXTRA(json_info_buffer_size), NULL, 0,
         "[Alpha] With split json streams, bytes of info lines to buffer; not supported", NULL,
         NULL, false},
        {"log-text-info-buffer-size", GOFLAG_SIZE, IN_EXTRA(text_info_buffer_size), NULL, 0,
         "[Alpha] With split text streams, bytes of info lines to buffer; not supported", NULL,
         NULL, false},

        /* klog's legacy surface (upstream ≤ v2.11): accepted, mostly without effect. */
        {"logtostderr", GOFLAG_BOOL, IN_EXTRA(logtostderr), "true", 0,
         "klog: log to stderr rather than to files (logs always go to stderr here)", NULL, NULL,
         false},
        {"alsologtostderr", GOFLAG_BOOL, IN_EXTRA(alsologtostderr), NULL, 0,
         "klog: copy file logs to stderr (accepted, no effect)", NULL, NULL, false},
        {"log_dir", GOFLAG_STRING, IN_EXTRA(log_dir), NULL, 0,
         "klog: directory for log files (accepted, no effect)", NULL, NULL, false},
        {"log_file", GOFLAG_STRING, IN_EXTRA(log_file), NULL, 0,
         "klog: path of the log file (accepted, no effect)", NULL, NULL, false},
        {"log_file_max_size", GOFLAG_UINT, IN_EXTRA(log_file_max_size), "1800", 0,
         "klog: size in MB at which a log file is rotated (accepted, no effect)", NULL, NULL,
         false},
        {"one_output", GOFLAG_BOOL, IN_EXTRA(one_output), NULL, 0,
         "klog: write each line only to its own severity's file (accepted, no effect)", NULL, NULL,
         false},
        {"skip_headers", GOFLAG_BOOL, IN_CONFIG(skip_headers), NULL, 0,
         "klog: leave out the severity, time, pid and source prefix of each log line", NULL, NULL,
         false},
        {"skip_log_headers", GOFLAG_BOOL, IN_EXTRA(skip_log_headers), NULL, 0,
         "klog: leave out the header of new log files (accepted, no effect)", NULL, NULL, false},
        {"add_dir_header", GOFLAG_BOOL, IN_EXTRA(add_dir_header), NULL, 0,
         "klog: put the source directory in the log line prefix (accepted, no effect)", NULL, NULL,
         false},
        {"stderrthreshold", KIND_SEVERITY, IN_EXTRA(stderrthreshold), "2", 0,
         "klog: severity (INFO, WARNING, ERROR, FATAL or 0-3) from which file logs also\n"
         "reach stderr (accepted, no effect)",
         parse_severity, "value", false},
        {"log_backtrace_at", KIND_TRACE, IN_EXTRA(log_backtrace_at), NULL, 0,
         "klog: file.go:N location whose log line adds a stack trace (accepted, no effect)",
         parse_trace, "value", true},
};

#define FLAG_COUNT (sizeof(flags) / sizeof(flags[0]))

/* ---- checks after parsing (UPSTREAM.md §1.2 steps 2–4) ---- */

static void put_error(char *errbuf, unsigned errlen, const char *text)
{
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", text);
}

/* Starts one more field error in the comma-separated list being built. */
static void field_error(FILE *out, int *count, const char *field)
{
	fprintf(out, "%s%s: ", (*count)++ > 0 ? ", " : "", field);
}

/*
 * component-base's LoggingConfiguration validation. The alpha options need
 * the LoggingAlphaOptions feature gate, which nothing can enable (upstream
 * has no --feature-gates). Several errors print as "[a, b]", as Kubernetes
 * aggregates them.
 */
static int check_logging(const struct config *cfg, const struct extra *x, char *errbuf,
                         unsigned errlen)
{
	static const char alpha[] = "Forbidden: Feature LoggingAlphaOptions is disabled";
	char *list = NULL;
	size_t size = 0;
	int count = 0;
	FILE *out = open_memstream(&list, &size);
	if (out == NULL) {
		put_error(errbuf, errlen, "LoggingConfiguration is invalid: out of memory");
		return -1;
	}
	bool text = strcmp(x->logging_format, "text") == 0;
	if (!text && strcmp(x->logging_format, "json") != 0) {
		field_error(out, &count, "format");
		fputs("Unsupported value: ", out);
		goflag_put_quoted(out, x->logging_format);
		fputs(": supported values: \"json\", \"text\"", out);
	}
	if (cfg->log_flush_frequency_ns <= 0) {
		char shown[32];
		duration_format(cfg->log_flush_frequency_ns, shown, sizeof(shown));
		field_error(out, &count, "flushFrequency");
		fprintf(out, "Invalid value: \"%s\": must be greater than zero", shown);
	}
	if (cfg->vmodule[0] != '\0' && !text) {
		field_error(out, &count, "vmodule");
		fputs("Forbidden: only supported for text log format", out);
	}
	if (x->text_split_stream) {
		field_error(out, &count, "options.text.splitStream");
		fputs(alpha, out);
	}
	if (x->text_info_buffer_size != 0) {
		field_error(out, &count, "options.text.infoBufferSize");
		fputs(alpha, out);
	}
	if (x->json_split_stream) {
		field_error(out, &count, "options.json.splitStream");
		fputs(alpha, out);
	}
	if (x->json_info_buffer_size != 0) {
		field_error(out, &count, "options.json.infoBufferSize");
		fputs(alpha, out);
	}
	if (fclose(out) != 0) {
		free(list);
		put_error(errbuf, errlen, "LoggingConfiguration is invalid: out of memory");
		return -1;
	}
	if (count > 0 && errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "LoggingConfiguration is invalid: %s%s%s",
		         count > 1 ? "[" : "", list, count > 1 ? "]" : "");
	free(list);
	return count > 0 ? -1 : 0;
}

/*
 * Why --metrics-path cannot be served, or NULL. Only checked when metrics
 * are served at all, as upstream ignores the flag otherwise.
 */
static const char *metrics_path_problem(const struct config *cfg, char *buf, size_t len)
{
	if (cfg->http_endpoint[0] == '\0' && cfg->metrics_address[0] == '\0')
		return NULL;
	if (cfg->metrics_path[0] == '\0')
		return "must not be empty";
	if (cfg->metrics_path[0] != '/')
		return "must start with \"/\"";
	/* The exact routes of the --http-endpoint listener. */
	static const char *const served[] = {"/healthz", "/readyz", "/startupz", "/status"};
	for (size_t i = 0; cfg->http_endpoint[0] != '\0' && i < sizeof(served) / sizeof(served[0]);
	     i++) {
		if (strcmp(cfg->metrics_path, served[i]) == 0) {
			snprintf(buf, len, "%s is already served on the --http-endpoint listener",
			         served[i]);
			return buf;
		}
	}
	return NULL;
}

/* Why --probe-interval cannot be used, or NULL: 0 is off; else no shorter than a check. */
static const char *probe_interval_problem(const struct config *cfg, char *buf, size_t len)
{
	if (cfg->probe_interval_ns == 0 || cfg->probe_interval_ns >= cfg->check_timeout_ns)
		return NULL;
	char check[64];
	duration_format(cfg->check_timeout_ns, check, sizeof(check));
	snprintf(buf, len, "must be 0 (off) or at least --check-timeout (%s)", check);
	return buf;
}

/* ---- parsing ---- */

/*
 * On any result but CONFIG_OK the strings are already released, so callers
 * may exit at once; config_free stays safe to call.
 */
enum config_result config_parse(struct config *cfg, int argc, char **argv, FILE *err, char *errbuf,
                                unsigned errlen)
{
	struct extra x;
	void *const bases[] = {cfg, &x};
	bool seen[FLAG_COUNT];
	enum config_result result = CONFIG_INVALID;
	const char *reason;
	int next;

	if (err == NULL)
		err = stderr; /* main passes stderr anyway; never crash for lack of a stream */
	put_error(errbuf, errlen, "");
	memset(cfg, 0, sizeof(*cfg));
	memset(&x, 0, sizeof(x));

	/* Positional arguments end parsing and are ignored, as upstream does. */
	switch (goflag_parse(flags, FLAG_COUNT, bases, seen, argc, argv, &next, err)) {
	case GOFLAG_OK:
		break;
	case GOFLAG_HELP:
		result = CONFIG_HELP;
		goto out;
	case GOFLAG_BAD_FLAG:
		result = CONFIG_BAD_FLAG;
		goto out;
	case GOFLAG_NO_MEMORY:
		put_error(errbuf, errlen, "out of memory");
		goto out;
	}

	cfg->health_port_set = seen[goflag_find(flags, FLAG_COUNT, "health-port", 11)];
	cfg->check_timeout_set = seen[goflag_find(flags, FLAG_COUNT, "check-timeout", 13)];
	if (!cfg->check_timeout_set)
		cfg->check_timeout_ns = cfg->probe_timeout_ns;
	cfg->log_format = strcmp(x.logging_format, "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
	cfg->log_split_stream = x.json_split_stream || x.text_split_stream;
	cfg->log_info_buffer_size =
	        x.json_info_buffer_size != 0 ? x.json_info_buffer_size : x.text_info_buffer_size;

	result = CONFIG_INVALID;
	if (check_logging(cfg, &x, errbuf, errlen) != 0)
		goto out;
	if (strcmp(cfg->health_port, DEFAULT_HEALTH_PORT) != 0 && cfg->http_endpoint[0] != '\0') {
		put_error(
		        errbuf, errlen,
		        "Only one of `--health-port` and `--http-endpoint` can be explicitly set");
		goto out;
	}
	if (cfg->metrics_address[0] != '\0' && cfg->http_endpoint[0] != '\0') {
		put_error(errbuf, errlen,
		          "Only one of `--metrics-address` and `--http-endpoint` can be explicitly "
		          "set");
		goto out;
	}
	char why[128];
	reason = metrics_path_problem(cfg, why, sizeof(why));
	if (reason != NULL) {
		goflag_report_bad_value(err,
		                        &flags[goflag_find(flags, FLAG_COUNT, "metrics-path", 12)],
		                        cfg->metrics_path, reason);
		goflag_usage(err, argc > 0 && argv[0] != NULL ? argv[0] : "", flags, FLAG_COUNT);
		result = CONFIG_BAD_FLAG;
		goto out;
	}
	reason = probe_interval_problem(cfg, why, sizeof(why));
	if (reason != NULL) {
		char value[64];
		duration_format(cfg->probe_interval_ns, value, sizeof(value));
		goflag_report_bad_value(
		        err, &flags[goflag_find(flags, FLAG_COUNT, "probe-interval", 14)], value,
		        reason);
		goflag_usage(err, argc > 0 && argv[0] != NULL ? argv[0] : "", flags, FLAG_COUNT);
		result = CONFIG_BAD_FLAG;
		goto out;
	}
	result = CONFIG_OK;
out : {
	void *const extra_only[] = {NULL, &x};
	goflag_free(flags, FLAG_COUNT, extra_only);
}
	if (result != CONFIG_OK)
		config_free(cfg);
	return result;
}

void config_free(struct config *cfg)
{
	void *const config_only[] = {cfg, NULL};
	if (cfg == NULL)
		return;
	goflag_free(flags, FLAG_COUNT, config_only);
	for (size_t i = 0; i < cfg->policy_allow_paths.count; i++)
		free(cfg->policy_allow_paths.paths[i]);
	free(cfg->policy_allow_paths.paths);
	cfg->policy_allow_paths = (struct path_list){NULL, 0};
}
