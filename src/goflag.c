/* Go's flag package, driven by a table (goflag.h). */
#include "goflag.h"

#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "utf8.h"

const char GOFLAG_STRCONV_SYNTAX[] = "invalid syntax";
const char GOFLAG_STRCONV_RANGE[] = "value out of range";
static const char reason_parse[] = "parse error";
static const char reason_range[] = "value out of range";

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
void goflag_put_quoted(FILE *out, const char *s)
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
int goflag_parse_int(const char *s, int base, int bits, int64_t *out)
{
	enum num_error e = parse_signed(s, base, bits, out);
	return e == NUM_OK ? 0 : e == NUM_SYNTAX ? -1 : -2;
}

int goflag_parse_bool(const char *s)
{
	return parse_bool(s);
}

/* ---- the table at work ---- */

static void *flag_target(const struct goflag *f, void *const *bases)
{
	return (char *)bases[f->base] + f->offset;
}

static bool owns_string(const struct goflag *f)
{
	return f->kind == GOFLAG_STRING || f->kind == GOFLAG_OPT_STRING ||
	       (f->kind == GOFLAG_CUSTOM && f->owns_string);
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
static const char *set_value(const struct goflag *f, void *target, const char *value, char *why,
                             size_t whylen)
{
	int64_t number;
	uint64_t unsigned_number;
	enum num_error e;

	switch (f->kind) {
	case GOFLAG_BOOL: {
		int b = parse_bool(value);
		if (b < 0)
			return reason_parse;
		*(bool *)target = b;
		return NULL;
	}
	case GOFLAG_STRING:
	case GOFLAG_OPT_STRING:
		return set_string(target, value, f->kind == GOFLAG_OPT_STRING);
	case GOFLAG_DURATION:
		if (duration_parse(value, &number) != 0)
			return reason_parse;
		*(int64_t *)target = number;
		return NULL;
	case GOFLAG_INT:
		e = parse_signed(value, 0, 64, &number);
		if (e != NUM_OK)
			return e == NUM_RANGE ? reason_range : reason_parse;
		if (number < f->min) {
			snprintf(why, whylen, "must be at least %lld", (long long)f->min);
			return why;
		}
		*(int64_t *)target = number;
		return NULL;
	case GOFLAG_UINT:
		e = parse_unsigned(value, 0, 64, &unsigned_number);
		if (e != NUM_OK)
			return e == NUM_RANGE ? reason_range : reason_parse;
		*(uint64_t *)target = unsigned_number;
		return NULL;
	case GOFLAG_SIZE:
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
	case GOFLAG_CUSTOM:
		return f->parse(value, target, why, whylen);
	}
	return reason_parse;
}

/* The value flag f starts with: its default, or its type's zero. */
static const char *initial_text(const struct goflag *f)
{
	if (f->def != NULL)
		return f->def;
	switch (f->kind) {
	case GOFLAG_BOOL:
		return "false";
	case GOFLAG_DURATION:
		return "0s";
	case GOFLAG_INT:
	case GOFLAG_UINT:
	case GOFLAG_SIZE:
		return "0";
	case GOFLAG_CUSTOM:
		return f->type_word && strcmp(f->type_word, "int") == 0 ? "0" : "";
	default:
		return "";
	}
}

void goflag_free(const struct goflag *flags, size_t n, void *const *bases)
{
	for (size_t i = 0; i < n; i++) {
		if (!owns_string(&flags[i]) || bases[flags[i].base] == NULL)
			continue;
		char **target = flag_target(&flags[i], bases);
		free(*target);
		*target = NULL;
	}
}

int goflag_find(const struct goflag *flags, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
			return (int)i;
	}
	return -1;
}

/* ---- usage, as Go's flag.PrintDefaults lays it out ---- */

static const char *type_word(const struct goflag *f)
{
	switch (f->kind) {
	case GOFLAG_BOOL:
		return "";
	case GOFLAG_STRING:
	case GOFLAG_OPT_STRING:
		return "string";
	case GOFLAG_DURATION:
		return "duration";
	case GOFLAG_INT:
		return "int";
	case GOFLAG_UINT:
		return "uint";
	case GOFLAG_SIZE:
		return "size";
	case GOFLAG_CUSTOM:
		return f->type_word ? f->type_word : "value";
	}
	return "value";
}

static int compare_flags(const void *a, const void *b)
{
	return strcmp((*(const struct goflag *const *)a)->name,
	              (*(const struct goflag *const *)b)->name);
}

void goflag_usage(FILE *out, const char *prog, const struct goflag *flags, size_t n)
{
	const struct goflag **sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &flags[i];
	qsort(sorted, n, sizeof(sorted[0]), compare_flags);

	if (*prog != '\0')
		fprintf(out, "Usage of %s:\n", prog);
	else
		fputs("Usage:\n", out);
	for (size_t i = 0; i < n; i++) {
		const struct goflag *f = sorted[i];
		const char *type = type_word(f);
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
		if (f->def != NULL && (f->kind == GOFLAG_STRING || f->kind == GOFLAG_OPT_STRING)) {
			fputs(" (default ", out);
			goflag_put_quoted(out, f->def);
			fputc(')', out);
		} else if (f->def != NULL) {
			fprintf(out, " (default %s)", f->def);
		}
		fputc('\n', out);
	}
	free(sorted);
}

/* ---- parsing ---- */

void goflag_report_bad_value(FILE *err, const struct goflag *f, const char *value,
                             const char *reason)
{
	if (f->kind == GOFLAG_BOOL) {
		fputs("invalid boolean value ", err);
		goflag_put_quoted(err, value);
		fprintf(err, " for -%s: %s\n", f->name, reason);
		return;
	}
	fputs("invalid value ", err);
	goflag_put_quoted(err, value);
	fprintf(err, " for flag -%s: ", f->name);
	if (reason == GOFLAG_STRCONV_SYNTAX || reason == GOFLAG_STRCONV_RANGE) {
		fputs("strconv.ParseInt: parsing ", err);
		goflag_put_quoted(err, value);
		fputs(": ", err);
	}
	fprintf(err, "%s\n", reason);
}

enum goflag_result goflag_parse(const struct goflag *flags, size_t n, void *const *bases,
                                bool *seen, int argc, char **argv, int *next, FILE *err)
{
	const char *prog = argc > 0 && argv[0] != NULL ? argv[0] : "";
	int i = 1;

	for (size_t k = 0; k < n; k++) {
		char why[96];
		seen[k] = false;
		if (set_value(&flags[k], flag_target(&flags[k], bases), initial_text(&flags[k]),
		              why, sizeof(why)) != NULL)
			return GOFLAG_NO_MEMORY;
	}
	while (i < argc) {
		const char *arg = argv[i];
		if (arg[0] != '-' || arg[1] == '\0')
			break; /* a positional argument, "-" included */
		const char *name = arg + 1;
		if (name[0] == '-') {
			name++;
			if (name[0] == '\0') {
				i++;
				break; /* "--" */
			}
		}
		if (name[0] == '\0' || name[0] == '-' || name[0] == '=') {
			fprintf(err, "bad flag syntax: %s\n", arg);
			goto bad;
		}
		i++;

		const char *eq = strchr(name, '=');
		size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		const char *value = eq != NULL ? eq + 1 : NULL;
		int index = goflag_find(flags, n, name, name_len);
		if (index < 0) {
			if ((name_len == 1 && name[0] == 'h') ||
			    (name_len == 4 && memcmp(name, "help", 4) == 0)) {
				goflag_usage(err, prog, flags, n);
				return GOFLAG_HELP;
			}
			fprintf(err, "flag provided but not defined: -%.*s\n", (int)name_len, name);
			goto bad;
		}

		const struct goflag *f = &flags[index];
		if (value == NULL && f->kind == GOFLAG_BOOL) {
			value = "true";
		} else if (value == NULL) {
			if (i >= argc) {
				fprintf(err, "flag needs an argument: -%s\n", f->name);
				goto bad;
			}
			value = argv[i++];
		}
		char why[96];
		const char *reason = set_value(f, flag_target(f, bases), value, why, sizeof(why));
		if (reason != NULL) {
			goflag_report_bad_value(err, f, value, reason);
			goto bad;
		}
		seen[index] = true;
	}
	*next = i;
	return GOFLAG_OK;
bad:
	goflag_usage(err, prog, flags, n);
	return GOFLAG_BAD_FLAG;
}
