/*
 * The command line: Go flag syntax and messages (UPSTREAM.md §1.2, §1.4), the
 * flag set and defaults, and the checks made after parsing, in their order.
 */
#include "config.h"
#include "testing.h"

#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#define SEC 1000000000LL

/* The whole usage text for argv[0] "prog": Go's PrintDefaults layout. */
static const char USAGE[] =
        "Usage of prog:\n"
        "  -add_dir_header\n"
        "    \tklog: put the source directory in the log line prefix (accepted, no effect)\n"
        "  -alsologtostderr\n"
        "    \tklog: copy file logs to stderr (accepted, no effect)\n"
        "  -automaxprocs\n"
        "    \tAccepted for compatibility with upstream; has no effect here\n"
        "  -check-policy string\n"
        "    \tLoad this Lua policy file as --policy would, run its check once on each canonical\n"
        "    \tprobe result, report, and exit\n"
        "  -check-timeout duration\n"
        "    \tTime allowed for one whole health check, policy included;\n"
        "    \tunset means the probe timeout\n"
        "  -csi-address string\n"
        "    \tPath of the CSI driver's socket, or a unix:// URL for it (default "
        "\"/run/csi/socket\")\n"
        "  -health-port string\n"
        "    \t(deprecated) TCP port, on every address, where /healthz is served;\n"
        "    \tuse --http-endpoint instead (default \"9808\")\n"
        "  -http-endpoint string\n"
        "    \thost:port of one HTTP server carrying /healthz and the metrics;\n"
        "    \twhen empty, /healthz is served on --health-port\n"
        "  -log-flush-frequency duration\n"
        "    \tLongest time a log line may wait in a buffer (default 5s)\n"
        "  -log-json-info-buffer-size size\n"
        "    \t[Alpha] With split json streams, bytes of info lines to buffer; not supported\n"
        "  -log-json-split-stream\n"
        "    \t[Alpha] With json format, info to stdout and errors to stderr; not supported\n"
        "  -log-text-info-buffer-size size\n"
        "    \t[Alpha] With split text streams, bytes of info lines to buffer; not supported\n"
        "  -log-text-split-stream\n"
        "    \t[Alpha] With text format, info to stdout and errors to stderr; not supported\n"
        "  -log_backtrace_at value\n"
        "    \tklog: file.go:N location whose log line adds a stack trace (accepted, no effect)\n"
        "  -log_dir string\n"
        "    \tklog: directory for log files (accepted, no effect)\n"
        "  -log_file string\n"
        "    \tklog: path of the log file (accepted, no effect)\n"
        "  -log_file_max_size uint\n"
        "    \tklog: size in MB at which a log file is rotated (accepted, no effect) (default "
        "1800)\n"
        "  -logging-format string\n"
        "    \tLog line format: text or json (default \"text\")\n"
        "  -logtostderr\n"
        "    \tklog: log to stderr rather than to files (logs always go to stderr here) (default "
        "true)\n"
        "  -metrics-address string\n"
        "    \t(deprecated) host:port of a separate HTTP server carrying only the metrics;\n"
        "    \tempty disables it; use --http-endpoint instead\n"
        "  -metrics-path string\n"
        "    \tHTTP path where the metrics are served (default \"/metrics\")\n"
        "  -one_output\n"
        "    \tklog: write each line only to its own severity's file (accepted, no effect)\n"
        "  -policy string\n"
        "    \tLua policy file deciding what healthy means; unset means the built-in policy\n"
        "  -policy-allow-path value\n"
        "    \tDirectory (absolute, existing) whose entries the policy's ctx.file may stat;\n"
        "    \tmay be given several times; none means ctx.file raises\n"
        "  -policy-instruction-limit int\n"
        "    \tMost Lua instructions one health check may run (default 10000000)\n"
        "  -policy-memory-limit size\n"
        "    \tMost memory the policy's Lua state may use: bytes, or a number with Ki, Mi or Gi;\n"
        "    \tat least 64Ki (default 16Mi)\n"
        "  -probe-interval duration\n"
        "    \tAlso run the /healthz check on its own this often, so /status, the health "
        "metrics\n"
        "    \tand the transition log stay current between kubelet's requests; 0 means off;\n"
        "    \totherwise at least --check-timeout\n"
        "  -probe-timeout duration\n"
        "    \tTime allowed for one Probe call to the driver, connecting included (default 1s)\n"
        "  -skip_headers\n"
        "    \tklog: leave out the severity, time, pid and source prefix of each log line\n"
        "  -skip_log_headers\n"
        "    \tklog: leave out the header of new log files (accepted, no effect)\n"
        "  -status\n"
        "    \tServe /status (the recent checks and probes, as JSON or text) beside /healthz "
        "(default true)\n"
        "  -stderrthreshold value\n"
        "    \tklog: severity (INFO, WARNING, ERROR, FATAL or 0-3) from which file logs also\n"
        "    \treach stderr (accepted, no effect) (default 2)\n"
        "  -v int\n"
        "    \tLog verbosity: higher numbers add more detail\n"
        "  -version\n"
        "    \tPrint the version and exit\n"
        "  -vmodule string\n"
        "    \tComma-separated pattern=N list setting the verbosity per source file (text format "
        "only)\n";

#define MAX_ARGS 32

/* One config_parse call, with what it wrote to its error stream. */
struct run {
	enum config_result rc;
	struct config cfg;
	char errbuf[512];
	char *out;
	size_t out_len;
};

static void run_argv(struct run *r, int argc, char **argv)
{
	FILE *err = open_memstream(&r->out, &r->out_len);
	if (err == NULL) {
		perror("open_memstream");
		exit(2);
	}
	memset(r->errbuf, 'x', sizeof(r->errbuf) - 1);
	r->errbuf[sizeof(r->errbuf) - 1] = '\0';
	r->rc = config_parse(&r->cfg, argc, argv, err, r->errbuf, sizeof(r->errbuf));
	fclose(err);
}

/* Parses "prog" followed by the NULL-terminated arguments. */
static struct run *run(const char *first, ...)
{
	static struct run r;
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	va_list ap;

	argv[argc++] = "prog";
	va_start(ap, first);
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
		if (argc == MAX_ARGS) {
			fprintf(stderr, "too many arguments in a test\n");
			exit(2);
		}
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	memset(&r, 0, sizeof(r));
	run_argv(&r, argc, argv);
	return &r;
}

static void done(struct run *r)
{
	config_free(&r->cfg);
	free(r->out);
	r->out = NULL;
}

/* A flag error: message line, then the usage, nothing in errbuf. */
static void check_bad_flag(struct run *r, const char *message)
{
	char *want = NULL;
	CHECK_INT(r->rc, CONFIG_BAD_FLAG);
	if (asprintf(&want, "%s\n%s", message, USAGE) < 0)
		exit(2);
	CHECK_STR(r->out, want);
	free(want);
	CHECK_STR(r->errbuf, "");
	done(r);
}

/* A semantic error: the message in errbuf only, nothing written. */
static void check_invalid(struct run *r, const char *message)
{
	CHECK_INT(r->rc, CONFIG_INVALID);
	CHECK_STR(r->errbuf, message);
	CHECK_STR(r->out, "");
	done(r);
}

/* Accepted: nothing written, errbuf empty. The caller checks fields, then done(). */
static struct run *ok(struct run *r)
{
	CHECK_INT(r->rc, CONFIG_OK);
	CHECK_STR(r->out, "");
	CHECK_STR(r->errbuf, "");
	return r;
}

static void test_defaults(void)
{
	struct run *r = ok(run(NULL));
	struct config *c = &r->cfg;
	CHECK_STR(c->csi_address, "/run/csi/socket");
	CHECK_INT(c->probe_timeout_ns, 1 * SEC);
	CHECK_STR(c->health_port, "9808");
	CHECK(!c->health_port_set);
	CHECK_STR(c->http_endpoint, "");
	CHECK_STR(c->metrics_address, "");
	CHECK_STR(c->metrics_path, "/metrics");
	CHECK(!c->automaxprocs);
	CHECK_INT(c->verbosity, 0);
	CHECK_STR(c->vmodule, "");
	CHECK_INT(c->log_format, LOG_FORMAT_TEXT);
	CHECK_INT(c->log_flush_frequency_ns, 5 * SEC);
	CHECK(!c->log_split_stream);
	CHECK_INT(c->log_info_buffer_size, 0);
	CHECK(!c->skip_headers);
	CHECK(!c->version);
	CHECK(c->policy_file == NULL);
	CHECK(c->check_policy_file == NULL);
	CHECK_INT(c->check_timeout_ns, 1 * SEC);
	CHECK(!c->check_timeout_set);
	CHECK_INT(c->policy_memory_limit, 16 * 1024 * 1024);
	CHECK_INT(c->policy_instruction_limit, 10000000);
	done(r);

	/* argc 0 (no program name at all) still gives the defaults. */
	struct run z;
	memset(&z, 0, sizeof(z));
	char *none[] = {NULL};
	run_argv(&z, 0, none);
	CHECK_INT(z.rc, CONFIG_OK);
	CHECK_STR(z.cfg.csi_address, "/run/csi/socket");
	done(&z);
}

static void test_dashes_and_value_forms(void)
{
	struct run *r = ok(run("-csi-address=/a", "--probe-timeout=2s", "-health-port", "1234",
	                       "--metrics-path", "/m", "-v", "4", "--vmodule=x=2", NULL));
	CHECK_STR(r->cfg.csi_address, "/a");
	CHECK_INT(r->cfg.probe_timeout_ns, 2 * SEC);
	CHECK_STR(r->cfg.health_port, "1234");
	CHECK(r->cfg.health_port_set);
	CHECK_STR(r->cfg.metrics_path, "/m");
	CHECK_INT(r->cfg.verbosity, 4);
	CHECK_STR(r->cfg.vmodule, "x=2");
	done(r);

	r = ok(run("--csi-address", "unix:///csi/csi.sock", "-http-endpoint=:9809", NULL));
	CHECK_STR(r->cfg.csi_address, "unix:///csi/csi.sock");
	CHECK_STR(r->cfg.http_endpoint, ":9809");
	done(r);

	r = ok(run("--metrics-address", "127.0.0.1:8080", "-probe-timeout", "1m30s", NULL));
	CHECK_STR(r->cfg.metrics_address, "127.0.0.1:8080");
	CHECK_INT(r->cfg.probe_timeout_ns, 90 * SEC);
	done(r);

	/* Only the first '=' separates; the value may hold more, or be empty. */
	r = ok(run("-csi-address=unix:///a=b", "-http-endpoint=", NULL));
	CHECK_STR(r->cfg.csi_address, "unix:///a=b");
	CHECK_STR(r->cfg.http_endpoint, "");
	done(r);

	/* A value in the next argument is taken whatever it looks like. */
	r = ok(run("-csi-address", "-probe-timeout=5s", NULL));
	CHECK_STR(r->cfg.csi_address, "-probe-timeout=5s");
	CHECK_INT(r->cfg.probe_timeout_ns, 1 * SEC);
	done(r);

	/* Zero and negative probe timeouts are accepted (upstream fails every probe). */
	r = ok(run("-probe-timeout=0", NULL));
	CHECK_INT(r->cfg.probe_timeout_ns, 0);
	done(r);
	r = ok(run("-probe-timeout=-1s", NULL));
	CHECK_INT(r->cfg.probe_timeout_ns, -1 * SEC);
	done(r);
}

static void test_bools(void)
{
	static const char *const trues[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const falses[] = {"0", "f", "F", "false", "FALSE", "False"};
	char arg[64];

	struct run *r = ok(run("-automaxprocs", "--version", "-skip_headers", NULL));
	CHECK(r->cfg.automaxprocs);
	CHECK(r->cfg.version);
	CHECK(r->cfg.skip_headers);
	done(r);

	for (size_t i = 0; i < sizeof(trues) / sizeof(trues[0]); i++) {
		snprintf(arg, sizeof(arg), "--automaxprocs=%s", trues[i]);
		r = ok(run(arg, NULL));
		CHECK(r->cfg.automaxprocs);
		done(r);
		snprintf(arg, sizeof(arg), "-skip_headers=%s", falses[i]);
		r = ok(run("-skip_headers", arg, NULL));
		CHECK(!r->cfg.skip_headers);
		done(r);
	}

	/* "-flag false" is "-flag" followed by a positional argument, which ends parsing. */
	r = ok(run("-version", "false", "-csi-address=/ignored", NULL));
	CHECK(r->cfg.version);
	CHECK_STR(r->cfg.csi_address, "/run/csi/socket");
	done(r);

	check_bad_flag(run("-version=yes", NULL),
	               "invalid boolean value \"yes\" for -version: parse error");
	check_bad_flag(run("--automaxprocs=", NULL),
	               "invalid boolean value \"\" for -automaxprocs: parse error");
	check_bad_flag(run("-logtostderr=tRUE", NULL),
	               "invalid boolean value \"tRUE\" for -logtostderr: parse error");
}

static void test_end_of_flags(void)
{
	/* UPSTREAM.md §1.4's example: everything after "extra" is ignored. */
	struct run *r = ok(run("-health-port", "19817", "extra", "--http-endpoint=bogus", NULL));
	CHECK_STR(r->cfg.health_port, "19817");
	CHECK_STR(r->cfg.http_endpoint, "");
	done(r);

	r = ok(run("-csi-address=/a", "--", "-csi-address=/b", "-bogus", NULL));
	CHECK_STR(r->cfg.csi_address, "/a");
	done(r);

	/* A lone "-" is a positional argument. */
	r = ok(run("-", "-csi-address=/b", NULL));
	CHECK_STR(r->cfg.csi_address, "/run/csi/socket");
	done(r);

	/* So is an empty argument. */
	r = ok(run("", "-bogus", NULL));
	done(r);

	/* After a positional argument, -h is not help and errors are not seen. */
	r = ok(run("x", "-h", "---", "-probe-timeout=abc", NULL));
	done(r);
}

static void test_last_wins_and_case(void)
{
	struct run *r = ok(run("-csi-address=/a", "--csi-address", "/b", "-v=3", "-v=1",
	                       "-probe-timeout=3s", "-probe-timeout=4s", NULL));
	CHECK_STR(r->cfg.csi_address, "/b");
	CHECK_INT(r->cfg.verbosity, 1);
	CHECK_INT(r->cfg.probe_timeout_ns, 4 * SEC);
	done(r);

	check_bad_flag(run("-CSI-address=/x", NULL), "flag provided but not defined: -CSI-address");
	check_bad_flag(run("-V=2", NULL), "flag provided but not defined: -V");
}

static void test_unknown_and_syntax(void)
{
	check_bad_flag(run("-bogus", NULL), "flag provided but not defined: -bogus");
	check_bad_flag(run("--bogus=1", "-csi-address=/x", NULL),
	               "flag provided but not defined: -bogus");
	/* The v2.12+ logging changes did not bring a --timeout: still unknown. */
	check_bad_flag(run("--timeout", "3s", NULL), "flag provided but not defined: -timeout");
	/* An error stops parsing: later flags are never seen. */
	check_bad_flag(run("-csi-address=/a", "-nope", "-v=x", NULL),
	               "flag provided but not defined: -nope");

	check_bad_flag(run("---csi-address=/x", NULL), "bad flag syntax: ---csi-address=/x");
	check_bad_flag(run("---", NULL), "bad flag syntax: ---");
	check_bad_flag(run("-=x", NULL), "bad flag syntax: -=x");
	check_bad_flag(run("--=x", NULL), "bad flag syntax: --=x");

	check_bad_flag(run("-csi-address", NULL), "flag needs an argument: -csi-address");
	check_bad_flag(run("-v=2", "--probe-timeout", NULL),
	               "flag needs an argument: -probe-timeout");
	check_bad_flag(run("--policy-memory-limit", NULL),
	               "flag needs an argument: -policy-memory-limit");
}

static void test_bad_values(void)
{
	check_bad_flag(run("-probe-timeout=abc", NULL),
	               "invalid value \"abc\" for flag -probe-timeout: parse error");
	check_bad_flag(run("--probe-timeout", "5", NULL),
	               "invalid value \"5\" for flag -probe-timeout: parse error");
	check_bad_flag(run("-probe-timeout=", NULL),
	               "invalid value \"\" for flag -probe-timeout: parse error");
	check_bad_flag(run("-check-timeout=1x", NULL),
	               "invalid value \"1x\" for flag -check-timeout: parse error");
	check_bad_flag(run("-log-flush-frequency=9999999h", NULL),
	               "invalid value \"9999999h\" for flag -log-flush-frequency: parse error");

	/* Values are quoted as Go's %q quotes them. */
	check_bad_flag(
	        run("-probe-timeout=a\"b\\c\n\t\x01", NULL),
	        "invalid value \"a\\\"b\\\\c\\n\\t\\x01\" for flag -probe-timeout: parse error");
	check_bad_flag(
	        run("-probe-timeout=\xc3\xa9\xff\xc2\xa0", NULL),
	        "invalid value \"\xc3\xa9\\xff\\u00a0\" for flag -probe-timeout: parse error");
	check_bad_flag(run("-probe-timeout=\xf0\x9f\x98\x80\xee\x80\x80\xf3\xb0\x80\x80", NULL),
	               "invalid value \"\xf0\x9f\x98\x80\\ue000\\U000f0000\" for flag "
	               "-probe-timeout: parse error");
}

static void test_verbosity(void)
{
	struct run *r = ok(run("-v", "5", NULL));
	CHECK_INT(r->cfg.verbosity, 5);
	done(r);
	r = ok(run("--v=+2", NULL));
	CHECK_INT(r->cfg.verbosity, 2);
	done(r);
	r = ok(run("-v=2147483647", NULL));
	CHECK_INT(r->cfg.verbosity, 2147483647);
	done(r);

	check_bad_flag(run("-v=x", NULL),
	               "invalid value \"x\" for flag -v: strconv.ParseInt: parsing \"x\": invalid "
	               "syntax");
	check_bad_flag(run("-v", "", NULL),
	               "invalid value \"\" for flag -v: strconv.ParseInt: parsing \"\": invalid "
	               "syntax");
	check_bad_flag(run("-v=0x1", NULL),
	               "invalid value \"0x1\" for flag -v: strconv.ParseInt: parsing \"0x1\": "
	               "invalid syntax");
	check_bad_flag(run("-v=2147483648", NULL),
	               "invalid value \"2147483648\" for flag -v: strconv.ParseInt: parsing "
	               "\"2147483648\": value out of range");
	check_bad_flag(run("-v=-1", NULL),
	               "invalid value \"-1\" for flag -v: must be non-negative");
	check_bad_flag(run("-v=-2147483648", NULL),
	               "invalid value \"-2147483648\" for flag -v: must be non-negative");
	check_bad_flag(run("-v", NULL), "flag needs an argument: -v");
}

static void test_help(void)
{
	static const char *const forms[] = {"-h", "--h", "-help", "--help", "-help=1", "-h=x"};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct run *r = run("-csi-address=/x", forms[i], "-bogus", NULL);
		CHECK_INT(r->rc, CONFIG_HELP);
		CHECK_STR(r->out, USAGE);
		CHECK_STR(r->errbuf, "");
		done(r);
	}

	/* Help wins over semantic errors: it returns before checking anything. */
	struct run *r = run("-logging-format=xml", "-h", NULL);
	CHECK_INT(r->rc, CONFIG_HELP);
	CHECK_STR(r->out, USAGE);
	done(r);

	/* An error before -h is reported instead. */
	check_bad_flag(run("-nope", "-h", NULL), "flag provided but not defined: -nope");

	/* The first line names argv[0] as given. */
	char *argv[] = {"/usr/bin/livenessprobe", "--help", NULL};
	struct run h;
	memset(&h, 0, sizeof(h));
	run_argv(&h, 2, argv);
	CHECK_INT(h.rc, CONFIG_HELP);
	CHECK(strncmp(h.out, "Usage of /usr/bin/livenessprobe:\n  -add_dir_header\n", 50) == 0);
	CHECK_STR(h.out + strlen("Usage of /usr/bin/livenessprobe:"),
	          USAGE + strlen("Usage of prog:"));
	done(&h);
}

/* Every flag the usage lists is accepted, and the list is sorted. */
static void test_usage_lists_every_flag(void)
{
	static const char *const names[] = {
	        "add_dir_header",
	        "alsologtostderr",
	        "automaxprocs",
	        "check-policy",
	        "check-timeout",
	        "csi-address",
	        "health-port",
	        "http-endpoint",
	        "log-flush-frequency",
	        "log-json-info-buffer-size",
	        "log-json-split-stream",
	        "log-text-info-buffer-size",
	        "log-text-split-stream",
	        "log_backtrace_at",
	        "log_dir",
	        "log_file",
	        "log_file_max_size",
	        "logging-format",
	        "logtostderr",
	        "metrics-address",
	        "metrics-path",
	        "one_output",
	        "policy",
	        "policy-allow-path",
	        "policy-instruction-limit",
	        "policy-memory-limit",
	        "probe-interval",
	        "probe-timeout",
	        "skip_headers",
	        "skip_log_headers",
	        "status",
	        "stderrthreshold",
	        "v",
	        "version",
	        "vmodule",
	};
	const char *at = USAGE;
	int listed = 0;
	for (const char *p = strstr(USAGE, "\n  -"); p != NULL; p = strstr(p + 1, "\n  -"))
		listed++;
	CHECK_INT(listed, (int)(sizeof(names) / sizeof(names[0])));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "\n  -%s", names[i]);
		const char *found = strstr(at, line);
		CHECK(found != NULL);
		if (found == NULL)
			fprintf(stderr, "usage lacks (or misorders) -%s\n", names[i]);
		else
			at = found + 1;
		if (i > 0)
			CHECK(strcmp(names[i - 1], names[i]) < 0);
	}
}

static void test_conflicts(void)
{
	check_invalid(run("-health-port=09808", "-http-endpoint=:8080", NULL),
	              "Only one of `--health-port` and `--http-endpoint` can be explicitly set");
	check_invalid(run("-http-endpoint=:8080", "-health-port", "9809", NULL),
	              "Only one of `--health-port` and `--http-endpoint` can be explicitly set");

	struct run *r = ok(run("-health-port=9808", "-http-endpoint=:8080", NULL));
	CHECK(r->cfg.health_port_set);
	CHECK_STR(r->cfg.health_port, "9808");
	CHECK_STR(r->cfg.http_endpoint, ":8080");
	done(r);

	/* health-port alone, or an empty http-endpoint, is no conflict. */
	r = ok(run("-health-port=1", "-http-endpoint=", NULL));
	done(r);

	check_invalid(
	        run("-metrics-address=:8081", "-http-endpoint=:8080", NULL),
	        "Only one of `--metrics-address` and `--http-endpoint` can be explicitly set");

	/* metrics-address with health-port is fine (two listeners). */
	r = ok(run("-metrics-address=:8081", "-health-port=9000", NULL));
	CHECK_STR(r->cfg.metrics_address, ":8081");
	done(r);

	/* In order: health-port before metrics-address, logging before both. */
	check_invalid(run("-metrics-address=:1", "-http-endpoint=:2", "-health-port=3", NULL),
	              "Only one of `--health-port` and `--http-endpoint` can be explicitly set");
	check_invalid(run("-metrics-address=:1", "-http-endpoint=:2", "-health-port=3",
	                  "-logging-format=xml", NULL),
	              "LoggingConfiguration is invalid: format: Unsupported value: \"xml\": "
	              "supported values: \"json\", \"text\"");
}

static void test_logging_config(void)
{
	struct run *r = ok(run("-logging-format=json", "-log-flush-frequency=100ms", NULL));
	CHECK_INT(r->cfg.log_format, LOG_FORMAT_JSON);
	CHECK_INT(r->cfg.log_flush_frequency_ns, SEC / 10);
	done(r);
	r = ok(run("-logging-format=text", "-vmodule=main=3,http*=5",
	           "-log-json-split-stream=false", "-log-text-info-buffer-size=0", NULL));
	CHECK_INT(r->cfg.log_format, LOG_FORMAT_TEXT);
	CHECK_STR(r->cfg.vmodule, "main=3,http*=5");
	done(r);

	check_invalid(run("-logging-format=xml", NULL),
	              "LoggingConfiguration is invalid: format: Unsupported value: \"xml\": "
	              "supported values: \"json\", \"text\"");
	check_invalid(run("-logging-format=JSON", NULL),
	              "LoggingConfiguration is invalid: format: Unsupported value: \"JSON\": "
	              "supported values: \"json\", \"text\"");
	check_invalid(run("-logging-format=", NULL),
	              "LoggingConfiguration is invalid: format: Unsupported value: \"\": "
	              "supported values: \"json\", \"text\"");
	check_invalid(
	        run("-log-flush-frequency=0", NULL),
	        "LoggingConfiguration is invalid: flushFrequency: Invalid value: \"0s\": must "
	        "be greater than zero");
	check_invalid(run("-log-flush-frequency=-1.5s", NULL),
	              "LoggingConfiguration is invalid: flushFrequency: Invalid value: \"-1.5s\": "
	              "must be greater than zero");
	check_invalid(
	        run("-logging-format=json", "-vmodule=main=2", NULL),
	        "LoggingConfiguration is invalid: vmodule: Forbidden: only supported for text "
	        "log format");
	check_invalid(
	        run("-log-text-split-stream", NULL),
	        "LoggingConfiguration is invalid: options.text.splitStream: Forbidden: Feature "
	        "LoggingAlphaOptions is disabled");
	check_invalid(run("-log-text-info-buffer-size=1Mi", NULL),
	              "LoggingConfiguration is invalid: options.text.infoBufferSize: Forbidden: "
	              "Feature LoggingAlphaOptions is disabled");
	check_invalid(
	        run("-logging-format=json", "-log-json-split-stream=true", NULL),
	        "LoggingConfiguration is invalid: options.json.splitStream: Forbidden: Feature "
	        "LoggingAlphaOptions is disabled");
	check_invalid(run("-log-json-info-buffer-size", "1", NULL),
	              "LoggingConfiguration is invalid: options.json.infoBufferSize: Forbidden: "
	              "Feature LoggingAlphaOptions is disabled");

	/* Several field errors print as Kubernetes aggregates them. */
	check_invalid(
	        run("-logging-format=yaml", "-vmodule=a=1", "-log-flush-frequency=0s", NULL),
	        "LoggingConfiguration is invalid: [format: Unsupported value: \"yaml\": "
	        "supported values: \"json\", \"text\", flushFrequency: Invalid value: \"0s\": "
	        "must be greater than zero, vmodule: Forbidden: only supported for text log "
	        "format]");

	/* Syntax errors in these flags are flag errors, found first. */
	check_bad_flag(run("-log-json-info-buffer-size=lots", NULL),
	               "invalid value \"lots\" for flag -log-json-info-buffer-size: parse error");
	check_bad_flag(run("-log-flush-frequency=5", NULL),
	               "invalid value \"5\" for flag -log-flush-frequency: parse error");
	check_bad_flag(run("-vmodule=main", NULL),
	               "invalid value \"main\" for flag -vmodule: syntax error: expect "
	               "comma-separated list of pattern=N");
	check_bad_flag(run("-vmodule==3", NULL),
	               "invalid value \"=3\" for flag -vmodule: syntax error: expect "
	               "comma-separated list of pattern=N");
	check_bad_flag(run("-vmodule=a=b", NULL),
	               "invalid value \"a=b\" for flag -vmodule: syntax error: expect "
	               "comma-separated list of pattern=N");
	check_bad_flag(run("-vmodule=a=1=2", NULL),
	               "invalid value \"a=1=2\" for flag -vmodule: syntax error: expect "
	               "comma-separated list of pattern=N");
	check_bad_flag(run("-vmodule=a=-1", NULL),
	               "invalid value \"a=-1\" for flag -vmodule: syntax error: expect "
	               "comma-separated list of pattern=N");
	r = ok(run("-vmodule=,a=1,,b=0,", NULL));
	CHECK_STR(r->cfg.vmodule, ",a=1,,b=0,");
	done(r);
}

/* --probe-interval: off by default; otherwise no shorter than a check. --status: on by default. */
static void test_probe_interval_and_status(void)
{
	struct run *r = ok(run(NULL));
	CHECK(r->cfg.probe_interval_ns == 0);
	CHECK(r->cfg.status);
	done(r);
	r = ok(run("--probe-interval=10s", "--status=false", NULL));
	CHECK(r->cfg.probe_interval_ns == 10 * SEC);
	CHECK(!r->cfg.status);
	done(r);
	/* Equal to the check timeout is fine; the check timeout defaults to the probe timeout. */
	done(ok(run("--probe-interval=3s", "--probe-timeout=3s", NULL)));
	done(ok(run("--probe-interval=2s", "--probe-timeout=3s", "--check-timeout=2s", NULL)));
	check_bad_flag(run("--probe-interval=500ms", NULL),
	               "invalid value \"500ms\" for flag -probe-interval: must be 0 (off) or at "
	               "least --check-timeout (1s)");
	check_bad_flag(run("--probe-interval=4s", "--check-timeout=5s", NULL),
	               "invalid value \"4s\" for flag -probe-interval: must be 0 (off) or at "
	               "least --check-timeout (5s)");
	check_bad_flag(run("--probe-interval=-1s", NULL),
	               "invalid value \"-1s\" for flag -probe-interval: must be 0 (off) or at "
	               "least --check-timeout (1s)");
}

static void test_metrics_path(void)
{
	static const char empty_msg[] =
	        "invalid value \"\" for flag -metrics-path: must not be empty";
	static const char slash_msg[] =
	        "invalid value \"metrics\" for flag -metrics-path: must start with \"/\"";
	static const char healthz_msg[] = "invalid value \"/healthz\" for flag -metrics-path: "
	                                  "/healthz is already served on the --http-endpoint "
	                                  "listener";

	check_bad_flag(run("-http-endpoint=:8080", "-metrics-path=", NULL), empty_msg);
	check_bad_flag(run("-metrics-address=:8081", "-metrics-path=", NULL), empty_msg);
	check_bad_flag(run("-http-endpoint=:8080", "-metrics-path=metrics", NULL), slash_msg);
	check_bad_flag(run("-metrics-address=:8081", "-metrics-path", "metrics", NULL), slash_msg);
	check_bad_flag(run("-http-endpoint=:8080", "-metrics-path=/healthz", NULL), healthz_msg);
	/* The other exact routes of that listener are refused the same way. */
	static const char *const routes[] = {"/readyz", "/startupz", "/status"};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		char arg[64], msg[256];
		snprintf(arg, sizeof(arg), "-metrics-path=%s", routes[i]);
		snprintf(msg, sizeof(msg),
		         "invalid value \"%s\" for flag -metrics-path: %s is already served on the "
		         "--http-endpoint listener",
		         routes[i], routes[i]);
		check_bad_flag(run("-http-endpoint=:8080", arg, NULL), msg);
		done(ok(run("-metrics-address=:8081", arg, NULL)));
	}

	/* Its own listener has no /healthz; other paths near it are fine. */
	struct run *r = ok(run("-metrics-address=:8081", "-metrics-path=/healthz", NULL));
	CHECK_STR(r->cfg.metrics_path, "/healthz");
	done(r);
	r = ok(run("-http-endpoint=:8080", "-metrics-path=/healthz/", NULL));
	done(r);
	r = ok(run("-http-endpoint=:8080", "-metrics-path=/m/", NULL));
	CHECK_STR(r->cfg.metrics_path, "/m/");
	done(r);

	/* Metrics disabled: the path is ignored, as upstream does. */
	r = ok(run("-metrics-path=", NULL));
	CHECK_STR(r->cfg.metrics_path, "");
	done(r);
	r = ok(run("-metrics-path=/healthz", NULL));
	done(r);

	/* The conflicts come first. */
	check_invalid(
	        run("-http-endpoint=:1", "-metrics-address=:2", "-metrics-path=", NULL),
	        "Only one of `--metrics-address` and `--http-endpoint` can be explicitly set");
}

static void test_sizes(void)
{
	static const struct {
		const char *text;
		long long bytes;
	} good[] = {
	        {"65536", 65536},
	        {"64Ki", 65536},
	        {"64KiB", 65536},
	        {"100KiB", 100 * 1024},
	        {"1Mi", 1 << 20},
	        {"1MiB", 1 << 20},
	        {"2Gi", 2LL << 30},
	        {"2GiB", 2LL << 30},
	        {"8589934591Gi", 8589934591LL << 30},
	        {"9223372036854775807", 9223372036854775807LL},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "--policy-memory-limit=%s", good[i].text);
		struct run *r = ok(run(arg, NULL));
		CHECK_INT(r->cfg.policy_memory_limit, good[i].bytes);
		done(r);
	}

	static const char *const bad[] = {
	        "",
	        "1K",
	        "1M",
	        "1G",
	        "1k",
	        "1Ki ",
	        "1.5Mi",
	        "-1Mi",
	        "+1Mi",
	        "Mi",
	        "0x10000",
	        "1MB",
	        "1Ti",
	        "1 Mi",
	        "8589934592GiB",
	        "9223372036854775808",
	        "18446744073709551616",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[64], msg[160];
		snprintf(arg, sizeof(arg), "-policy-memory-limit=%s", bad[i]);
		snprintf(msg, sizeof(msg),
		         "invalid value \"%s\" for flag -policy-memory-limit: parse error", bad[i]);
		check_bad_flag(run(arg, NULL), msg);
	}

	check_bad_flag(
	        run("-policy-memory-limit=65535", NULL),
	        "invalid value \"65535\" for flag -policy-memory-limit: must be at least 64Ki");
	check_bad_flag(
	        run("-policy-memory-limit=63Ki", NULL),
	        "invalid value \"63Ki\" for flag -policy-memory-limit: must be at least 64Ki");
	check_bad_flag(run("-policy-memory-limit=0", NULL),
	               "invalid value \"0\" for flag -policy-memory-limit: must be at least 64Ki");
}

static void test_instruction_limit(void)
{
	struct run *r = ok(run("-policy-instruction-limit=1", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 1);
	done(r);
	/* Go's int syntax: base prefixes and digit separators. */
	r = ok(run("-policy-instruction-limit=0x10", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 16);
	done(r);
	r = ok(run("-policy-instruction-limit=1_000_000", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 1000000);
	done(r);
	r = ok(run("-policy-instruction-limit=010", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 8);
	done(r);
	r = ok(run("-policy-instruction-limit=0b101", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 5);
	done(r);
	r = ok(run("-policy-instruction-limit=0o17", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 15);
	done(r);
	r = ok(run("-policy-instruction-limit=0x_1F", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 31);
	done(r);
	r = ok(run("-policy-instruction-limit=+9223372036854775807", NULL));
	CHECK_INT(r->cfg.policy_instruction_limit, 9223372036854775807LL);
	done(r);

	check_bad_flag(
	        run("-policy-instruction-limit=0", NULL),
	        "invalid value \"0\" for flag -policy-instruction-limit: must be at least 1");
	check_bad_flag(
	        run("-policy-instruction-limit=-5", NULL),
	        "invalid value \"-5\" for flag -policy-instruction-limit: must be at least 1");
	check_bad_flag(run("-policy-instruction-limit=-9223372036854775808", NULL),
	               "invalid value \"-9223372036854775808\" for flag -policy-instruction-limit: "
	               "must be at least 1");

	static const char *const syntax[] = {"abc",  "",   "1e6", "10M", "08",  "0x",
	                                     "1__0", "_1", "1_",  "0x_", "- 1", "1.0"};
	for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
		char arg[64], msg[160];
		snprintf(arg, sizeof(arg), "-policy-instruction-limit=%s", syntax[i]);
		snprintf(msg, sizeof(msg),
		         "invalid value \"%s\" for flag -policy-instruction-limit: parse error",
		         syntax[i]);
		check_bad_flag(run(arg, NULL), msg);
	}
	check_bad_flag(run("-policy-instruction-limit=9223372036854775808", NULL),
	               "invalid value \"9223372036854775808\" for flag -policy-instruction-limit: "
	               "value out of range");
	check_bad_flag(run("-policy-instruction-limit=99999999999999999999", NULL),
	               "invalid value \"99999999999999999999\" for flag -policy-instruction-limit: "
	               "value out of range");
}

/*
 * --policy-allow-path: repeatable, each kept resolved (symlinks and ".."
 * gone); relative, missing and non-directory values are flag errors (exit 2).
 */
static void test_policy_allow_path(void)
{
	char dir[] = "/tmp/lp-config-XXXXXX", link[300], file[300], real[PATH_MAX];
	CHECK(mkdtemp(dir) != NULL);
	CHECK(realpath(dir, real) != NULL);
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(file, sizeof(file), "%s/file", dir);
	CHECK(symlink(dir, link) == 0);
	FILE *f = fopen(file, "w");
	CHECK(f != NULL);
	fclose(f);

	struct run *r = ok(run(NULL));
	CHECK_INT(r->cfg.policy_allow_paths.count, 0);
	done(r);
	char a1[400], a2[400], a3[400];
	snprintf(a1, sizeof(a1), "--policy-allow-path=%s/link/./", dir);
	snprintf(a2, sizeof(a2), "--policy-allow-path=/");
	snprintf(a3, sizeof(a3), "--policy-allow-path=");
	r = ok(run(a1, a2, a3, NULL));
	CHECK_INT(r->cfg.policy_allow_paths.count, 2); /* the empty one adds nothing */
	CHECK_STR(r->cfg.policy_allow_paths.paths[0], real);
	CHECK_STR(r->cfg.policy_allow_paths.paths[1], "/");
	done(r);

	check_bad_flag(run("--policy-allow-path=var/lib", NULL),
	               "invalid value \"var/lib\" for flag -policy-allow-path: must be an absolute "
	               "path");
	char missing[400], want[600];
	snprintf(missing, sizeof(missing), "--policy-allow-path=%s/missing", dir);
	snprintf(want, sizeof(want),
	         "invalid value \"%s/missing\" for flag -policy-allow-path: No such file or "
	         "directory",
	         dir);
	check_bad_flag(run(missing, NULL), want);
	char notdir[400];
	snprintf(notdir, sizeof(notdir), "--policy-allow-path=%s", file);
	snprintf(want, sizeof(want),
	         "invalid value \"%s\" for flag -policy-allow-path: not a directory", file);
	check_bad_flag(run(notdir, NULL), want);
	unlink(file);
	unlink(link);
	rmdir(dir);
}

static void test_check_timeout(void)
{
	struct run *r = ok(run("-probe-timeout=3s", NULL));
	CHECK_INT(r->cfg.check_timeout_ns, 3 * SEC);
	CHECK(!r->cfg.check_timeout_set);
	done(r);

	/* It follows the final probe timeout, whatever the order. */
	r = ok(run("-probe-timeout=3s", "-probe-timeout=250ms", NULL));
	CHECK_INT(r->cfg.check_timeout_ns, SEC / 4);
	done(r);

	r = ok(run("-check-timeout=10s", "-probe-timeout=3s", NULL));
	CHECK_INT(r->cfg.check_timeout_ns, 10 * SEC);
	CHECK_INT(r->cfg.probe_timeout_ns, 3 * SEC);
	CHECK(r->cfg.check_timeout_set);
	done(r);

	/* Given explicitly, even as the same value or zero, it is "set". */
	r = ok(run("-check-timeout=1s", NULL));
	CHECK(r->cfg.check_timeout_set);
	CHECK_INT(r->cfg.check_timeout_ns, SEC);
	done(r);
	r = ok(run("-check-timeout", "0", "-probe-timeout=2s", NULL));
	CHECK(r->cfg.check_timeout_set);
	CHECK_INT(r->cfg.check_timeout_ns, 0);
	done(r);
}

static void test_policy_files(void)
{
	struct run *r = ok(run("-policy=/etc/lp/policy.lua", NULL));
	CHECK_STR(r->cfg.policy_file, "/etc/lp/policy.lua");
	CHECK(r->cfg.check_policy_file == NULL);
	done(r);

	/* Both together are accepted: main gives --check-policy precedence. */
	r = ok(run("--check-policy", "a.lua", "--policy", "b.lua", NULL));
	CHECK_STR(r->cfg.check_policy_file, "a.lua");
	CHECK_STR(r->cfg.policy_file, "b.lua");
	done(r);

	/* An empty value means "not given", and a later one replaces an earlier one. */
	r = ok(run("-policy=x.lua", "-policy=", "-check-policy=", NULL));
	CHECK(r->cfg.policy_file == NULL);
	CHECK(r->cfg.check_policy_file == NULL);
	done(r);
}

static void test_klog_legacy(void)
{
	struct run *r = ok(run("-logtostderr=false", "-alsologtostderr", "-log_dir=/tmp",
	                       "-log_file", "/tmp/x.log", "-log_file_max_size=10", "-one_output",
	                       "-skip_log_headers", "-add_dir_header", "-stderrthreshold=WARNING",
	                       "-log_backtrace_at=main.go:12", NULL));
	CHECK(!r->cfg.skip_headers);
	CHECK_INT(r->cfg.verbosity, 0);
	done(r);

	static const char *const severities[] = {"INFO", "error", "Fatal", "0", "3", "+2"};
	for (size_t i = 0; i < sizeof(severities) / sizeof(severities[0]); i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "-stderrthreshold=%s", severities[i]);
		done(ok(run(arg, NULL)));
	}
	check_bad_flag(run("-stderrthreshold=x", NULL),
	               "invalid value \"x\" for flag -stderrthreshold: strconv.ParseInt: parsing "
	               "\"x\": invalid syntax");
	check_bad_flag(
	        run("-stderrthreshold=4", NULL),
	        "invalid value \"4\" for flag -stderrthreshold: must be INFO, WARNING, ERROR, "
	        "FATAL or a number from 0 to 3");
	check_bad_flag(
	        run("-stderrthreshold=-1", NULL),
	        "invalid value \"-1\" for flag -stderrthreshold: must be INFO, WARNING, ERROR, "
	        "FATAL or a number from 0 to 3");

	done(ok(run("-log_backtrace_at=", NULL)));
	static const char *const traces[] = {"main",      "main:12",  "main.go",   "main.go:0",
	                                     "main.go:x", "a.go:1:2", "main.go:-3"};
	for (size_t i = 0; i < sizeof(traces) / sizeof(traces[0]); i++) {
		char arg[64], msg[160];
		snprintf(arg, sizeof(arg), "-log_backtrace_at=%s", traces[i]);
		snprintf(msg, sizeof(msg),
		         "invalid value \"%s\" for flag -log_backtrace_at: syntax error: expect "
		         "file.go:234",
		         traces[i]);
		check_bad_flag(run(arg, NULL), msg);
	}

	done(ok(run("-log_file_max_size=0x10", NULL)));
	check_bad_flag(run("-log_file_max_size=-1", NULL),
	               "invalid value \"-1\" for flag -log_file_max_size: parse error");
	check_bad_flag(
	        run("-log_file_max_size=18446744073709551616", NULL),
	        "invalid value \"18446744073709551616\" for flag -log_file_max_size: value out "
	        "of range");
	done(ok(run("-log_file_max_size=18446744073709551615", NULL)));
}

static void test_buffers_and_free(void)
{
	/* No errbuf at all: the result is still right and nothing is written. */
	char *argv[] = {"prog", "-logging-format=xml", NULL};
	struct config cfg;
	FILE *devnull = fopen("/dev/null", "w");
	CHECK(devnull != NULL);
	CHECK_INT(config_parse(&cfg, 2, argv, devnull, NULL, 0), CONFIG_INVALID);
	config_free(&cfg);

	/* A short errbuf is truncated and terminated. */
	char small[12];
	CHECK_INT(config_parse(&cfg, 2, argv, devnull, small, sizeof(small)), CONFIG_INVALID);
	CHECK_STR(small, "LoggingConf");
	config_free(&cfg);
	fclose(devnull);

	/* config_free: safe on a zeroed config, and twice on a parsed one. */
	struct config zero;
	memset(&zero, 0, sizeof(zero));
	config_free(&zero);
	config_free(NULL);
	struct run *r = ok(run("-policy=p.lua", NULL));
	config_free(&r->cfg);
	CHECK(r->cfg.csi_address == NULL);
	CHECK(r->cfg.policy_file == NULL);
	config_free(&r->cfg);
	done(r);

	/* Parsing again starts from the defaults: nothing carries over. */
	r = ok(run("-csi-address=/once", "-v=7", NULL));
	done(r);
	r = ok(run(NULL));
	CHECK_STR(r->cfg.csi_address, "/run/csi/socket");
	CHECK_INT(r->cfg.verbosity, 0);
	done(r);
}

int main(void)
{
	test_defaults();
	test_dashes_and_value_forms();
	test_bools();
	test_end_of_flags();
	test_last_wins_and_case();
	test_unknown_and_syntax();
	test_bad_values();
	test_verbosity();
	test_help();
	test_usage_lists_every_flag();
	test_probe_interval_and_status();
	test_conflicts();
	test_logging_config();
	test_metrics_path();
	test_sizes();
	test_instruction_limit();
	test_check_timeout();
	test_policy_allow_path();
	test_policy_files();
	test_klog_legacy();
	test_buffers_and_free();
	return testing_result("config");
}
