/*
 * The livenessprobe command line, read with the syntax and messages of Go's
 * flag package (UPSTREAM.md §1.2, §1.4), then checked in the order upstream's
 * main() checks it (§1.2), with our own flags added (DESIGN.md "Flags").
 *
 * Everything is driven by one table of flags: defaults, parsing, usage text
 * and releasing strings. Nothing here keeps state between calls.
 */
#include "config.h"
#include "duration.h"
#include "utf8.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_HEALTH_PORT "9808"

enum flag_kind {
	KIND_BOOL,       /* bool */
	KIND_STRING,     /* char *, never NULL once parsed */
	KIND_OPT_STRING, /* char *, "" is stored as NULL: "not given" */
	KIND_DURATION,   /* int64_t ns, Go duration syntax */
	KIND_INT,        /* int64_t, Go strconv.ParseInt base 0, at least min */
	KIND_UINT,       /* uint64_t, Go strconv.ParseUint base 0 */
	KIND_SIZE,       /* int64_t bytes: N, N{Ki,Mi,Gi}, N{KiB,MiB,GiB}, at least min */
	KIND_LEVEL,      /* int, klog -v: decimal, not negative */
	KIND_SEVERITY,   /* int, klog severity name or 0..3 */
	KIND_TRACE,      /* char *, klog -log_backtrace_at: "" or file.go:N */
	KIND_VMODULE,    /* char *, comma-separated pattern=N */
};

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

/* Where a flag's value lives: field of struct config, or of struct extra. */
#define IN_CONFIG(field) false, offsetof(struct config, field)
#define IN_EXTRA(field)  true, offsetof(struct extra, field)

struct flag_def {
	const char *name;
	enum flag_kind kind;
	bool in_extra; /* offset is into struct extra, else into struct config */
	size_t offset;
	/* Default as the user would type it, shown by usage; NULL = zero value, not shown. */
	const char *def;
	int64_t min; /* KIND_INT, KIND_SIZE: smallest value accepted */
	const char *usage;
};

/*
 * The flag set. A default equal to the type's zero value ("", "0", "0s",
 * "false") is written as NULL: Go's usage text hides those.
 * --policy and --check-policy may both be given: --check-policy wins (main
 * checks that file and exits), so --policy is then simply unused.
 */
static const struct flag_def flags[] = {
        /* Program flags (UPSTREAM.md §1.1). */
        {"csi-address", KIND_STRING, IN_CONFIG(csi_address), "/run/csi/socket", 0,
         "Path of the CSI driver's socket, or a unix:// URL for it"},
        {"probe-timeout", KIND_DURATION, IN_CONFIG(probe_timeout_ns), "1s", 0,
         "Time allowed for one Probe call to the driver, connecting included"},
        {"health-port", KIND_STRING, IN_CONFIG(health_port), DEFAULT_HEALTH_PORT, 0,
         "(deprecated) TCP port, on every address, where /healthz is served;\n"
         "use --http-endpoint instead"},
        {"http-endpoint", KIND_STRING, IN_CONFIG(http_endpoint), NULL, 0,
         "host:port of one HTTP server carrying /healthz and the metrics;\n"
         "when empty, /healthz is served on --health-port"},
        {"metrics-address", KIND_STRING, IN_CONFIG(metrics_address), NULL, 0,
         "(deprecated) host:port of a separate HTTP server carrying only the metrics;\n"
         "empty disables it; use --http-endpoint instead"},
        {"metrics-path", KIND_STRING, IN_CONFIG(metrics_path), "/metrics", 0,
         "HTTP path where the metrics are served"},
        {"automaxprocs", KIND_BOOL, IN_CONFIG(automaxprocs), NULL, 0,
         "Accepted for compatibility with upstream; has no effect here"},

        /* Our own flags (DESIGN.md). */
        {"version", KIND_BOOL, IN_CONFIG(version), NULL, 0, "Print the version and exit"},
        {"policy", KIND_OPT_STRING, IN_CONFIG(policy_file), NULL, 0,
         "Lua policy file deciding what healthy means; unset means the built-in policy"},
        {"check-policy", KIND_OPT_STRING, IN_CONFIG(check_policy_file), NULL, 0,
         "Load this Lua policy file as --policy would, report whether it is usable, and exit"},
        {"check-timeout", KIND_DURATION, IN_CONFIG(check_timeout_ns), NULL, 0,
         "Time allowed for one whole health check, policy included;\n"
         "unset means the probe timeout"},
        {"policy-memory-limit", KIND_SIZE, IN_CONFIG(policy_memory_limit), "16Mi", 64 * 1024,
         "Most memory the policy's Lua state may use: bytes, or a number with Ki, Mi or Gi;\n"
         "at least 64Ki"},
        {"policy-instruction-limit", KIND_INT, IN_CONFIG(policy_instruction_limit), "10000000", 1,
         "Most Lua instructions one health check may run"},

        /* Logging, component-base surface (upstream ≥ v2.12). */
        {"v", KIND_LEVEL, IN_CONFIG(verbosity), NULL, 0,
         "Log verbosity: higher numbers add more detail"},
        {"vmodule", KIND_VMODULE, IN_CONFIG(vmodule), NULL, 0,
         "Comma-separated pattern=N list setting the verbosity per source file (text format "
         "only)"},
        {"logging-format", KIND_STRING, IN_EXTRA(logging_format), "text", 0,
         "Log line format: text or json"},
        {"log-flush-frequency", KIND_DURATION, IN_CONFIG(log_flush_frequency_ns), "5s", 0,
         "Longest time a log line may wait in a buffer"},
        {"log-json-split-stream", KIND_BOOL, IN_EXTRA(json_split_stream), NULL, 0,
         "[Alpha] With json format, info to stdout and errors to stderr; not supported"},
        {"log-text-split-stream", KIND_BOOL, IN_EXTRA(text_split_stream), NULL, 0,
         "[Alpha] With text format, info to stdout and errors to stderr; not supported"},
        {"log-json-info-buffer-size", KIND_SIZE, IN_EXTRA(json_info_buffer_size), NULL, 0,
         "[Alpha] With split json streams, bytes of info lines to buffer; not supported"},
        {"log-text-info-buffer-size", KIND_SIZE, IN_EXTRA(text_info_buffer_size), NULL, 0,
         "[Alpha] With split text streams, bytes of info lines to buffer; not supported"},

        /* klog's legacy surface (upstream ≤ v2.11): accepted, mostly without effect. */
        {"logtostderr", KIND_BOOL, IN_EXTRA(logtostderr), "true", 0,
         "klog: log to stderr rather than to files (logs always go to stderr here)"},
        {"alsologtostderr", KIND_BOOL, IN_EXTRA(alsologtostderr), NULL, 0,
         "klog: copy file logs to stderr (accepted, no effect)"},
        {"log_dir", KIND_STRING, IN_EXTRA(log_dir), NULL, 0,
         "klog: directory for log files (accepted, no effect)"},
        {"log_file", KIND_STRING, IN_EXTRA(log_file), NULL, 0,
         "klog: path of the log file (accepted, no effect)"},
        {"log_file_max_size", KIND_UINT, IN_EXTRA(log_file_max_size), "1800", 0,
         "klog: size in MB at which a log file is rotated (accepted, no effect)"},
        {"one_output", KIND_BOOL, IN_EXTRA(one_output), NULL, 0,
         "klog: write each line only to its own severity's file (accepted, no effect)"},
        {"skip_headers", KIND_BOOL, IN_CONFIG(skip_headers), NULL, 0,
         "klog: leave out the severity, time, pid and source prefix of each log line"},
        {"skip_log_headers", KIND_BOOL, IN_EXTRA(skip_log_headers), NULL, 0,
         "klog: leave out the header of new log files (accepted, no effect)"},
        {"add_dir_header", KIND_BOOL, IN_EXTRA(add_dir_header), NULL, 0,
         "klog: put the source directory in the log line prefix (accepted, no effect)"},
        {"stderrthreshold", KIND_SEVERITY, IN_EXTRA(stderrthreshold), "2", 0,
         "klog: severity (INFO, WARNING, ERROR, FATAL or 0-3) from which file logs also\n"
         "reach stderr (accepted, no effect)"},
        {"log_backtrace_at", KIND_TRACE, IN_EXTRA(log_backtrace_at), NULL, 0,
         "klog: file.go:N location whose log line adds a stack trace (accepted, no effect)"},
};

#define FLAG_COUNT (sizeof(flags) / sizeof(flags[0]))

/*
 * Reasons a value is refused. Compared by address: the two strconv ones are
 * printed inside Go's strconv wording, quoting the value.
 */
static const char reason_parse[] = "parse error";
static const char reason_range[] = "value out of range";
static const char reason_strconv_syntax[] = "invalid syntax";
static const char reason_strconv_range[] = "value out of range";
static const char reason_trace[] = "syntax error: expect file.go:234";
static const char reason_vmodule[] = "syntax error: expect comma-separated list of pattern=N";

/* ---- Go-compatible quoting (%q) ---- */

/*
 * Go's unicode.IsPrint for code points ≥ U+0080, approximated: controls,
 * spaces other than U+0020, format characters, private use and
 * non-characters are escaped; unassigned code points are not tracked.
 */
static bool printable(uint32_t cp)
{
	return !(cp <= 0xa0 || cp == 0xad || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200f) ||
	         (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 ||
	         (cp >= 0xe000 && cp <= 0xf8ff) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
	         (cp & 0xfffe) == 0xfffe || cp >= 0xf0000);
}

/* Writes s double-quoted as Go's strconv.Quote does. */
static void put_quoted(FILE *out, const char *s)
{
	static const char escapes[] = "\a\b\f\n\r\t\v";
	static const char letters[] = "abfnrtv";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + strlen(s);

	fputc('"', out);
	while (*p != '\0') {
		uint32_t cp;
		int len = utf8_decode(p, (size_t)(end - p), &cp);
		const char *esc = *p < 0x80 ? strchr(escapes, *p) : NULL;
		if (len == 0) {
			fprintf(out, "\\x%02x", *p);
			len = 1;
		} else if (cp == '"' || cp == '\\') {
			fprintf(out, "\\%c", (int)cp);
		} else if (esc != NULL) {
			fprintf(out, "\\%c", letters[esc - escapes]);
		} else if (cp < 0x20 || cp == 0x7f) {
			fprintf(out, "\\x%02x", (unsigned)cp);
		} else if (cp < 0x80 || printable(cp)) {
			fwrite(p, 1, (size_t)len, out);
		} else if (cp < 0x10000) {
			fprintf(out, "\\u%04x", (unsigned)cp);
		} else {
			fprintf(out, "\\U%08x", (unsigned)cp);
		}
		p += len;
	}
	fputc('"', out);
}

/* ---- Go-compatible number and value syntax ---- */

enum num_error { NUM_OK, NUM_SYNTAX, NUM_RANGE };

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/*
 * Where base 0 allows '_' between digits, each one must sit between two
 * digits, or between a 0x/0o/0b prefix and a digit.
 */
static bool separators_placed_well(const char *s, bool prefixed, bool hex)
{
	int limit = hex ? 16 : 10; /* loose digit test: the base is checked elsewhere */
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] != '_')
			continue;
		bool after_digit = i > 0 && digit_value(s[i - 1]) < limit;
		bool after_prefix = prefixed && i == 2;
		if (!(after_digit || after_prefix) || digit_value(s[i + 1]) >= limit)
			return false;
	}
	return true;
}

/*
 * An unsigned number as Go's strconv.ParseUint(s, base, bits) reads it; base
 * is 10 or 0 (0: prefixes 0x, 0o, 0b or a leading 0 for octal, and '_'
 * separators).
 */
static enum num_error parse_unsigned(const char *s, int base, int bits, uint64_t *out)
{
	uint64_t max = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
	const char *digits = s;
	bool base0 = base == 0, prefixed = false, separators = false;

	if (*s == '\0')
		return NUM_SYNTAX;
	if (base0) {
		base = 10;
		if (s[0] == '0') {
			char mark = (char)(s[1] | 0x20);
			prefixed = s[1] != '\0' && s[2] != '\0' &&
			           (mark == 'x' || mark == 'o' || mark == 'b');
			base = !prefixed ? 8 : mark == 'x' ? 16 : mark == 'o' ? 8 : 2;
			digits = prefixed ? s + 2 : s + 1;
		}
	}
	uint64_t value = 0;
	for (const char *p = digits; *p != '\0'; p++) {
		if (base0 && *p == '_') {
			separators = true;
			continue;
		}
		int d = digit_value(*p);
		if (d >= base)
			return NUM_SYNTAX;
		if (value > (max - (uint64_t)d) / (uint64_t)base)
			return NUM_RANGE;
		value = value * (uint64_t)base + (uint64_t)d;
	}
	if (separators && !separators_placed_well(s, prefixed, base == 16))
		return NUM_SYNTAX;
	*out = value;
	return NUM_OK;
}

/* A signed number as Go's strconv.ParseInt(s, base, bits) reads it. */
static enum num_error parse_signed(const char *s, int base, int bits, int64_t *out)
{
	bool negative = *s == '-';
	const char *digits = *s == '-' || *s == '+' ? s + 1 : s;
	uint64_t magnitude, cutoff = UINT64_C(1) << (bits - 1);
	enum num_error e = parse_unsigned(digits, base, bits, &magnitude);
	if (e != NUM_OK)
		return e;
	if (negative ? magnitude > cutoff : magnitude >= cutoff)
		return NUM_RANGE;
	if (negative)
		*out = -(int64_t)(magnitude - 1) - 1; /* no overflow at the most negative value */
	else
		*out = (int64_t)magnitude;
	return NUM_OK;
}

/* Go's strconv.ParseBool: 1 true, 0 false, -1 not a boolean. */
static int parse_bool(const char *s)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0)
			return 1;
		if (strcmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

static const struct {
	const char *suffix;
	int shift;
} size_suffixes[] = {{"", 0},     {"Ki", 10}, {"KiB", 10}, {"Mi", 20},
                     {"MiB", 20}, {"Gi", 30}, {"GiB", 30}};

/* A byte size: decimal digits, then optionally one of size_suffixes. */
static int parse_size(const char *s, int64_t *out)
{
	const char *p = s;
	uint64_t value = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t digit = (uint64_t)(*p - '0');
		if (value > ((uint64_t)INT64_MAX - digit) / 10)
			return -1;
		value = value * 10 + digit;
	}
	if (p == s)
		return -1;
	for (size_t i = 0; i < sizeof(size_suffixes) / sizeof(size_suffixes[0]); i++) {
		int shift = size_suffixes[i].shift;
		if (strcmp(p, size_suffixes[i].suffix) != 0)
			continue;
		if (value > (uint64_t)INT64_MAX >> shift)
			return -1;
		*out = (int64_t)(value << shift);
		return 0;
	}
	return -1;
}

/* Shortest exact size text for a byte count: "64Ki", "16Mi", "1000". */
static void format_size(int64_t bytes, char *buf, size_t len)
{
	static const char *const names[] = {"Gi", "Mi", "Ki"};
	for (int i = 0; i < 3; i++) {
		int64_t unit = (int64_t)1 << (30 - 10 * i);
		if (bytes != 0 && bytes % unit == 0) {
			snprintf(buf, len, "%lld%s", (long long)(bytes / unit), names[i]);
			return;
		}
	}
	snprintf(buf, len, "%lld", (long long)bytes);
}

/* klog severities by name (klog compares upper-cased) or number. */
static int parse_severity(const char *s, int *out, const char **reason)
{
	static const char *const names[] = {"INFO", "WARNING", "ERROR", "FATAL"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	int64_t value;
	enum num_error e = parse_signed(s, 10, 32, &value);
	if (e != NUM_OK) {
		*reason = e == NUM_RANGE ? reason_strconv_range : reason_strconv_syntax;
		return -1;
	}
	if (value < 0 || value > 3) {
		*reason = "must be INFO, WARNING, ERROR, FATAL or a number from 0 to 3";
		return -1;
	}
	*out = (int)value;
	return 0;
}

/* klog -log_backtrace_at: empty, or file:N with a dot in file and N > 0. */
static bool trace_location_ok(const char *s)
{
	if (*s == '\0')
		return true;
	const char *colon = strchr(s, ':');
	if (colon == NULL || strchr(colon + 1, ':') != NULL ||
	    memchr(s, '.', (size_t)(colon - s)) == NULL)
		return false;
	int64_t line;
	return parse_signed(colon + 1, 10, 64, &line) == NUM_OK && line > 0;
}

/* -vmodule: comma-separated pattern=N items (empty items skipped), N ≥ 0. */
static bool vmodule_ok(const char *s)
{
	while (*s != '\0') {
		size_t len = strcspn(s, ",");
		if (len > 0) {
			char *item = strndup(s, len);
			char *eq = item != NULL ? strchr(item, '=') : NULL;
			int64_t level;
			bool ok = eq != NULL && eq != item && strchr(eq + 1, '=') == NULL &&
			          parse_signed(eq + 1, 10, 32, &level) == NUM_OK && level >= 0;
			free(item);
			if (!ok)
				return false;
		}
		s += len;
		if (*s == ',')
			s++;
	}
	return true;
}

/* ---- the table at work ---- */

static void *flag_target(const struct flag_def *f, struct config *cfg, struct extra *x)
{
	return (char *)(f->in_extra ? (void *)x : (void *)cfg) + f->offset;
}

static bool is_string_kind(enum flag_kind kind)
{
	return kind == KIND_STRING || kind == KIND_OPT_STRING || kind == KIND_TRACE ||
	       kind == KIND_VMODULE;
}

static const char *set_string(char **target, const char *value, bool empty_is_null)
{
	char *copy = NULL;
	if (!(empty_is_null && *value == '\0')) {
		copy = strdup(value);
		if (copy == NULL)
			return "out of memory";
	}
	free(*target);
	*target = copy;
	return NULL;
}

/*
 * Stores value into target as flag f. Returns NULL, or why the value is
 * refused (a static reason, or why[] for one that names a limit).
 */
static const char *set_value(const struct flag_def *f, void *target, const char *value, char *why,
                             size_t whylen)
{
	int64_t number;
	uint64_t unsigned_number;
	enum num_error e;

	switch (f->kind) {
	case KIND_BOOL: {
		int b = parse_bool(value);
		if (b < 0)
			return reason_parse;
		*(bool *)target = b;
		return NULL;
	}
	case KIND_TRACE:
		if (!trace_location_ok(value))
			return reason_trace;
		return set_string(target, value, false);
	case KIND_VMODULE:
		if (!vmodule_ok(value))
			return reason_vmodule;
		return set_string(target, value, false);
	case KIND_STRING:
	case KIND_OPT_STRING:
		return set_string(target, value, f->kind == KIND_OPT_STRING);
	case KIND_DURATION:
		if (duration_parse(value, &number) != 0)
			return reason_parse;
		*(int64_t *)target = number;
		return NULL;
	case KIND_INT:
		e = parse_signed(value, 0, 64, &number);
		if (e != NUM_OK)
			return e == NUM_RANGE ? reason_range : reason_parse;
		if (number < f->min) {
			snprintf(why, whylen, "must be at least %lld", (long long)f->min);
			return why;
		}
		*(int64_t *)target = number;
		return NULL;
	case KIND_UINT:
		e = parse_unsigned(value, 0, 64, &unsigned_number);
		if (e != NUM_OK)
			return e == NUM_RANGE ? reason_range : reason_parse;
		*(uint64_t *)target = unsigned_number;
		return NULL;
	case KIND_SIZE:
		if (parse_size(value, &number) != 0)
			return reason_parse;
		if (number < f->min) {
			char limit[32];
			format_size(f->min, limit, sizeof(limit));
			snprintf(why, whylen, "must be at least %s", limit);
			return why;
		}
		*(int64_t *)target = number;
		return NULL;
	case KIND_LEVEL:
		/* klog's Level reads a decimal int32 and reports strconv's own error. */
		e = parse_signed(value, 10, 32, &number);
		if (e != NUM_OK)
			return e == NUM_RANGE ? reason_strconv_range : reason_strconv_syntax;
		if (number < 0)
			return "must be non-negative";
		*(int *)target = (int)number;
		return NULL;
	case KIND_SEVERITY: {
		const char *reason = NULL;
		return parse_severity(value, target, &reason) == 0 ? NULL : reason;
	}
	}
	return reason_parse;
}

/* The value flag f starts with: its default, or its type's zero. */
static const char *initial_text(const struct flag_def *f)
{
	if (f->def != NULL)
		return f->def;
	switch (f->kind) {
	case KIND_BOOL:
		return "false";
	case KIND_DURATION:
		return "0s";
	case KIND_INT:
	case KIND_UINT:
	case KIND_SIZE:
	case KIND_LEVEL:
	case KIND_SEVERITY:
		return "0";
	default:
		return "";
	}
}

/* Frees the strings of whichever of cfg and x is given; leaves NULLs behind. */
static void release_strings(struct config *cfg, struct extra *x)
{
	for (size_t i = 0; i < FLAG_COUNT; i++) {
		if (!is_string_kind(flags[i].kind) || (flags[i].in_extra ? x : (void *)cfg) == NULL)
			continue;
		char **target = flag_target(&flags[i], cfg, x);
		free(*target);
		*target = NULL;
	}
}

static int find_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < FLAG_COUNT; i++) {
		if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
			return (int)i;
	}
	return -1;
}

static bool flag_seen(const bool *seen, const char *name)
{
	return seen[find_flag(name, strlen(name))];
}

/* ---- usage, as Go's flag.PrintDefaults lays it out ---- */

static const char *type_word(enum flag_kind kind)
{
	switch (kind) {
	case KIND_BOOL:
		return "";
	case KIND_STRING:
	case KIND_OPT_STRING:
	case KIND_VMODULE:
		return "string";
	case KIND_DURATION:
		return "duration";
	case KIND_INT:
	case KIND_LEVEL:
		return "int";
	case KIND_UINT:
		return "uint";
	case KIND_SIZE:
		return "size";
	case KIND_SEVERITY:
	case KIND_TRACE:
		return "value";
	}
	return "value";
}

static int compare_flags(const void *a, const void *b)
{
	return strcmp((*(const struct flag_def *const *)a)->name,
	              (*(const struct flag_def *const *)b)->name);
}

static void print_usage(FILE *out, const char *prog)
{
	const struct flag_def *sorted[FLAG_COUNT];
	for (size_t i = 0; i < FLAG_COUNT; i++)
		sorted[i] = &flags[i];
	qsort(sorted, FLAG_COUNT, sizeof(sorted[0]), compare_flags);

	if (*prog != '\0')
		fprintf(out, "Usage of %s:\n", prog);
	else
		fputs("Usage:\n", out);
	for (size_t i = 0; i < FLAG_COUNT; i++) {
		const struct flag_def *f = sorted[i];
		const char *type = type_word(f->kind);
		size_t width = 3 + strlen(f->name) + (*type != '\0' ? 1 + strlen(type) : 0);

		fprintf(out, "  -%s%s%s", f->name, *type != '\0' ? " " : "", type);
		/* Go keeps a one-letter bool flag's sentence on its line. */
		fputs(width <= 4 ? "\t" : "\n    \t", out);
		for (const char *p = f->usage; *p != '\0'; p++) {
			if (*p == '\n')
				fputs("\n    \t", out);
			else
				fputc(*p, out);
		}
		if (f->def != NULL && (f->kind == KIND_STRING || f->kind == KIND_OPT_STRING)) {
			fputs(" (default ", out);
			put_quoted(out, f->def);
			fputc(')', out);
		} else if (f->def != NULL) {
			fprintf(out, " (default %s)", f->def);
		}
		fputc('\n', out);
	}
}

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
		put_quoted(out, x->logging_format);
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
static const char *metrics_path_problem(const struct config *cfg)
{
	if (cfg->http_endpoint[0] == '\0' && cfg->metrics_address[0] == '\0')
		return NULL;
	if (cfg->metrics_path[0] == '\0')
		return "must not be empty";
	if (cfg->metrics_path[0] != '/')
		return "must start with \"/\"";
	if (cfg->http_endpoint[0] != '\0' && strcmp(cfg->metrics_path, "/healthz") == 0)
		return "/healthz is already served on the --http-endpoint listener";
	return NULL;
}

/* ---- parsing ---- */

static void report_bad_value(FILE *err, const struct flag_def *f, const char *value,
                             const char *reason)
{
	if (f->kind == KIND_BOOL) {
		fputs("invalid boolean value ", err);
		put_quoted(err, value);
		fprintf(err, " for -%s: %s\n", f->name, reason);
		return;
	}
	fputs("invalid value ", err);
	put_quoted(err, value);
	fprintf(err, " for flag -%s: ", f->name);
	if (reason == reason_strconv_syntax || reason == reason_strconv_range) {
		fputs("strconv.ParseInt: parsing ", err);
		put_quoted(err, value);
		fputs(": ", err);
	}
	fprintf(err, "%s\n", reason);
}

/*
 * The Go flag loop. Returns CONFIG_OK when the flags end (no more
 * arguments, a positional argument, or "--"), else the result to give back
 * with its message already on err.
 */
static enum config_result parse_flags(struct config *cfg, struct extra *x, bool *seen, int argc,
                                      char **argv, FILE *err)
{
	const char *prog = argc > 0 && argv[0] != NULL ? argv[0] : "";
	int i = 1;

	while (i < argc) {
		const char *arg = argv[i];
		if (arg[0] != '-' || arg[1] == '\0')
			break; /* a positional argument, "-" included: the rest is ignored */
		const char *name = arg + 1;
		if (name[0] == '-') {
			name++;
			if (name[0] == '\0')
				break; /* "--" */
		}
		if (name[0] == '\0' || name[0] == '-' || name[0] == '=') {
			fprintf(err, "bad flag syntax: %s\n", arg);
			goto bad;
		}
		i++;

		const char *eq = strchr(name, '=');
		size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		const char *value = eq != NULL ? eq + 1 : NULL;
		int index = find_flag(name, name_len);
		if (index < 0) {
			if ((name_len == 1 && name[0] == 'h') ||
			    (name_len == 4 && memcmp(name, "help", 4) == 0)) {
				print_usage(err, prog);
				return CONFIG_HELP;
			}
			fprintf(err, "flag provided but not defined: -%.*s\n", (int)name_len, name);
			goto bad;
		}

		const struct flag_def *f = &flags[index];
		if (value == NULL && f->kind == KIND_BOOL) {
			value = "true";
		} else if (value == NULL) {
			if (i >= argc) {
				fprintf(err, "flag needs an argument: -%s\n", f->name);
				goto bad;
			}
			value = argv[i++];
		}
		char why[96];
		const char *reason = set_value(f, flag_target(f, cfg, x), value, why, sizeof(why));
		if (reason != NULL) {
			report_bad_value(err, f, value, reason);
			goto bad;
		}
		seen[index] = true;
	}
	return CONFIG_OK;
bad:
	print_usage(err, prog);
	return CONFIG_BAD_FLAG;
}

/*
 * On any result but CONFIG_OK the strings are already released, so callers
 * may exit at once; config_free stays safe to call.
 */
enum config_result config_parse(struct config *cfg, int argc, char **argv, FILE *err, char *errbuf,
                                unsigned errlen)
{
	struct extra x;
	bool seen[FLAG_COUNT] = {false};
	enum config_result result = CONFIG_INVALID;
	const char *reason;

	if (err == NULL)
		err = stderr; /* main passes stderr anyway; never crash for lack of a stream */
	put_error(errbuf, errlen, "");
	memset(cfg, 0, sizeof(*cfg));
	memset(&x, 0, sizeof(x));

	for (size_t i = 0; i < FLAG_COUNT; i++) {
		char why[96];
		if (set_value(&flags[i], flag_target(&flags[i], cfg, &x), initial_text(&flags[i]),
		              why, sizeof(why)) != NULL) {
			put_error(errbuf, errlen, "out of memory");
			goto out;
		}
	}

	result = parse_flags(cfg, &x, seen, argc, argv, err);
	if (result != CONFIG_OK)
		goto out;

	cfg->health_port_set = flag_seen(seen, "health-port");
	cfg->check_timeout_set = flag_seen(seen, "check-timeout");
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
	reason = metrics_path_problem(cfg);
	if (reason != NULL) {
		report_bad_value(err, &flags[find_flag("metrics-path", strlen("metrics-path"))],
		                 cfg->metrics_path, reason);
		print_usage(err, argc > 0 && argv[0] != NULL ? argv[0] : "");
		result = CONFIG_BAD_FLAG;
		goto out;
	}
	result = CONFIG_OK;
out:
	release_strings(NULL, &x);
	if (result != CONFIG_OK)
		config_free(cfg);
	return result;
}

void config_free(struct config *cfg)
{
	if (cfg != NULL)
		release_strings(cfg, NULL);
}
