/*
 * Flag parsing for csi-mock-driver. One table describes every flag: its name,
 * how its value is parsed and where it is stored, and its usage line, so the
 * parser and the usage text cannot disagree.
 */
#include "mock_config.h"

#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include "duration.h"
#include "grpc_status.h"

#define PROG "csi-mock-driver"

/* How a flag's text becomes a value in struct mock_config. */
enum flag_kind {
	FLAG_BOOL,    /* bool; "--flag" alone means true */
	FLAG_STRING,  /* const char *, borrowed from argv */
	FLAG_ADDRESS, /* const char *, "unix:" forms reduced to the path */
	FLAG_READY,   /* enum mock_ready */
	FLAG_CODE,    /* int, via grpc_status_parse */
	FLAG_DELAY,   /* int64_t nanoseconds, Go duration syntax, >= 0 */
};

struct flag_def {
	const char *name;
	enum flag_kind kind;
	size_t offset;   /* of the field in struct mock_config */
	const char *arg; /* value placeholder in the usage text; NULL for booleans */
	const char *help;
};

#define AT(field) offsetof(struct mock_config, field)

static const struct flag_def flag_defs[] = {
        {"csi-address", FLAG_ADDRESS, AT(socket_path), "PATH",
         "socket: PATH, unix:///abs/path or unix:path (default /run/csi/socket)"},
        {"name", FLAG_STRING, AT(name), "NAME",
         "GetPluginInfo name, may be empty (default mock.csi.example.com)"},
        {"vendor-version", FLAG_STRING, AT(vendor_version), "V",
         "GetPluginInfo vendor_version (default 0.1.0)"},
        {"ready", FLAG_READY, AT(ready), "unset|true|false",
         "ProbeResponse.ready; unset sends no field (default unset)"},
        {"probe-code", FLAG_CODE, AT(probe.code), "CODE",
         "Probe status: 9, FailedPrecondition or FAILED_PRECONDITION (default OK)"},
        {"probe-message", FLAG_STRING, AT(probe.message), "TEXT",
         "Probe status details (default empty)"},
        {"probe-delay", FLAG_DELAY, AT(probe.delay_ns), "DURATION",
         "answer each Probe after this delay, e.g. 300ms, 1.5s (default 0s)"},
        {"probe-hang", FLAG_BOOL, AT(probe.hang), NULL,
         "never answer Probe: calls stay open until the client gives up"},
        {"info-code", FLAG_CODE, AT(info.code), "CODE", "GetPluginInfo status (default OK)"},
        {"info-message", FLAG_STRING, AT(info.message), "TEXT",
         "GetPluginInfo status details (default empty)"},
        {"info-delay", FLAG_DELAY, AT(info.delay_ns), "DURATION",
         "answer each GetPluginInfo after this delay (default 0s)"},
        {"info-hang", FLAG_BOOL, AT(info.hang), NULL, "never answer GetPluginInfo"},
        {"script", FLAG_STRING, AT(script_path), "FILE",
         "Lua script whose probe/get_plugin_info hooks decide each answer (README)"},
        {"quiet", FLAG_BOOL, AT(quiet), NULL, "do not print a \"call method=M n=N\" line per call"},
        {"verbose", FLAG_BOOL, AT(verbose), NULL, "let gRPC's own log lines through to stderr"},
};

#define N_FLAGS (sizeof(flag_defs) / sizeof(flag_defs[0]))

static void set_defaults(struct mock_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_path = "/run/csi/socket";
	cfg->name = "mock.csi.example.com";
	cfg->vendor_version = "0.1.0";
	cfg->ready = MOCK_READY_UNSET;
	cfg->probe.message = "";
	cfg->info.message = "";
}

void mock_config_usage(FILE *out)
{
	char left[64];
	size_t i;

	fprintf(out,
	        "Usage: " PROG " [flags]\n"
	        "Serves the CSI Identity service (Probe, GetPluginInfo, GetPluginCapabilities)\n"
	        "on a unix socket and answers as the flags say, or per call as a --script\n"
	        "decides. Prints \"listening PATH\" once ready and \"call method=M n=N\" per\n"
	        "call on stdout.\n\n"
	        "Flags (one or two dashes; --flag=value or --flag value):\n");
	for (i = 0; i < N_FLAGS; i++) {
		const struct flag_def *f = &flag_defs[i];

		if (f->arg)
			snprintf(left, sizeof(left), "--%s=%s", f->name, f->arg);
		else
			snprintf(left, sizeof(left), "--%s", f->name);
		fprintf(out, "  %-26s %s\n", left, f->help);
	}
	fprintf(out, "  %-26s %s\n", "-h, --help", "print this text and exit");
	fprintf(out, "\nExample: " PROG " --csi-address=/tmp/csi.sock --ready=false "
	             "--probe-delay=300ms\n");
}

/* Go's strconv.ParseBool set. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/*
 * Reduces the accepted address forms to a filesystem path: "PATH",
 * "unix:///abs/path" and "unix:path" (absolute or relative). The result
 * points into s. Other URL schemes are refused: this driver serves only unix
 * sockets, and a path the kernel cannot hold fails here rather than at bind.
 */
static int parse_address(const char *s, const char **out, char *err, size_t errlen)
{
	const size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	const char *path = s;

	if (strncmp(s, "unix://", 7) == 0) {
		path = s + 7;
		if (path[0] != '/') {
			snprintf(err, errlen, "unix:// needs an absolute path (unix:///abs/path)");
			return -1;
		}
	} else if (strncmp(s, "unix:", 5) == 0) {
		path = s + 5;
	} else if (strstr(s, "://")) {
		snprintf(err, errlen, "only unix socket addresses are supported");
		return -1;
	}
	if (path[0] == '\0') {
		snprintf(err, errlen, "empty socket path");
		return -1;
	}
	if (strlen(path) > max) {
		snprintf(err, errlen, "socket path longer than %zu bytes", max);
		return -1;
	}
	*out = path;
	return 0;
}

static int parse_ready(const char *s, enum mock_ready *out, char *err, size_t errlen)
{
	if (strcmp(s, "unset") == 0)
		*out = MOCK_READY_UNSET;
	else if (strcmp(s, "true") == 0)
		*out = MOCK_READY_TRUE;
	else if (strcmp(s, "false") == 0)
		*out = MOCK_READY_FALSE;
	else {
		snprintf(err, errlen, "want unset, true or false");
		return -1;
	}
	return 0;
}

static int parse_code(const char *s, int *out, char *err, size_t errlen)
{
	int code = grpc_status_parse(s);

	if (code < 0) {
		snprintf(err, errlen,
		         "not a gRPC status code (e.g. 9, FailedPrecondition, "
		         "FAILED_PRECONDITION)");
		return -1;
	}
	*out = code;
	return 0;
}

static int parse_delay(const char *s, int64_t *out, char *err, size_t errlen)
{
	int64_t ns;

	if (duration_parse(s, &ns) < 0) {
		snprintf(err, errlen, "not a duration (e.g. 300ms, 1.5s, 2m)");
		return -1;
	}
	if (ns < 0) {
		snprintf(err, errlen, "must not be negative");
		return -1;
	}
	*out = ns;
	return 0;
}

/* Parses value as flag f wants it and stores it in cfg; 0 or -1 with err filled. */
static int apply_flag(const struct flag_def *f, struct mock_config *cfg, const char *value,
                      char *err, size_t errlen)
{
	void *field = (char *)cfg + f->offset;

	switch (f->kind) {
	case FLAG_BOOL:
		if (parse_bool(value, field) < 0) {
			snprintf(err, errlen, "want true or false");
			return -1;
		}
		return 0;
	case FLAG_STRING:
		*(const char **)field = value;
		return 0;
	case FLAG_ADDRESS:
		return parse_address(value, field, err, errlen);
	case FLAG_READY:
		return parse_ready(value, field, err, errlen);
	case FLAG_CODE:
		return parse_code(value, field, err, errlen);
	case FLAG_DELAY:
		return parse_delay(value, field, err, errlen);
	}
	snprintf(err, errlen, "internal error: flag kind %d", (int)f->kind);
	return -1;
}

static const struct flag_def *find_flag(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < N_FLAGS; i++) {
		if (strlen(flag_defs[i].name) == len && strncmp(flag_defs[i].name, name, len) == 0)
			return &flag_defs[i];
	}
	return NULL;
}

static enum mock_config_result bad_flag(FILE *err, const char *msg)
{
	fprintf(err, PROG ": %s\n", msg);
	mock_config_usage(err);
	return MOCK_CONFIG_BAD_FLAG;
}

enum mock_config_result mock_config_parse(struct mock_config *cfg, int argc, char **argv, FILE *err)
{
	char msg[512], why[256];
	int i;

	set_defaults(cfg);
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *value;
		const struct flag_def *f;
		size_t len;

		if (strcmp(arg, "--") == 0) {
			if (i + 1 < argc) {
				snprintf(msg, sizeof(msg), "unexpected argument %s", argv[i + 1]);
				return bad_flag(err, msg);
			}
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0') {
			snprintf(msg, sizeof(msg), "unexpected argument %s", arg);
			return bad_flag(err, msg);
		}
		name = arg[1] == '-' ? arg + 2 : arg + 1;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		value = eq ? eq + 1 : NULL;
		if (len == 0 || name[0] == '-') {
			snprintf(msg, sizeof(msg), "bad flag syntax: %s", arg);
			return bad_flag(err, msg);
		}
		if ((len == 1 && name[0] == 'h') || (len == 4 && strncmp(name, "help", 4) == 0)) {
			mock_config_usage(err);
			return MOCK_CONFIG_HELP;
		}
		f = find_flag(name, len);
		if (!f) {
			snprintf(msg, sizeof(msg), "unknown flag: --%.*s", (int)len, name);
			return bad_flag(err, msg);
		}
		if (!value && f->kind == FLAG_BOOL)
			value = "true";
		if (!value) {
			if (i + 1 >= argc) {
				snprintf(msg, sizeof(msg), "flag needs a value: --%s", f->name);
				return bad_flag(err, msg);
			}
			value = argv[++i];
		}
		if (apply_flag(f, cfg, value, why, sizeof(why)) < 0) {
			snprintf(msg, sizeof(msg), "invalid value \"%s\" for --%s: %s", value,
			         f->name, why);
			return bad_flag(err, msg);
		}
	}
	return MOCK_CONFIG_OK;
}
