/*
 * Log lines (src/log.c): klog's structured text form, component-base's JSON
 * lines, -v gating and -skip_headers. stderr is captured into a temporary
 * file around each call, and the bytes written are checked exactly.
 */
#include "log.h"
#include "testing.h"
#include "utf8.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- capturing stderr ---- */

static FILE *capture_file;
static int capture_saved = -1;

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	capture_saved = dup(STDERR_FILENO);
	if (!capture_file || capture_saved < 0 || dup2(fileno(capture_file), STDERR_FILENO) < 0) {
		perror("capture_begin");
		exit(2);
	}
}

/* Restores stderr and returns what was written meanwhile (malloc'd). */
static char *capture_end(void)
{
	fflush(stderr);
	dup2(capture_saved, STDERR_FILENO);
	close(capture_saved);
	long n = ftell(capture_file);
	char *text = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
	rewind(capture_file);
	if (n > 0 && fread(text, 1, (size_t)n, capture_file) != (size_t)n)
		text[0] = '\0';
	fclose(capture_file);
	return text;
}

/* ---- matching a klog text header ---- */

static bool digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/*
 * Checks "Lmmdd hh:mm:ss.uuuuuu PPPPPPP file:line] " at the start of s and
 * returns what follows it, or NULL (with the reason printed). The pid field
 * is "%7d": right-aligned in 7 columns (wider only for pids above 9999999).
 */
static const char *match_header(const char *s, char letter, const char *file, int line)
{
	const char *why = NULL;
	char want[128];
	if (s[0] != letter)
		why = "severity letter";
	else if (!digits(s + 1, 4) || s[5] != ' ')
		why = "mmdd";
	else if (!digits(s + 6, 2) || s[8] != ':' || !digits(s + 9, 2) || s[11] != ':' ||
	         !digits(s + 12, 2) || s[14] != '.' || !digits(s + 15, 6) || s[21] != ' ')
		why = "hh:mm:ss.uuuuuu";
	if (!why) {
		int month = (s[1] - '0') * 10 + (s[2] - '0');
		int day = (s[3] - '0') * 10 + (s[4] - '0');
		int hour = (s[6] - '0') * 10 + (s[7] - '0');
		if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23)
			why = "date/time range";
	}
	if (!why) {
		snprintf(want, sizeof(want), "%7d ", (int)getpid());
		if (strncmp(s + 22, want, strlen(want)) != 0)
			why = "pid column";
	}
	const char *rest = s + 22 + strlen(want);
	if (!why) {
		snprintf(want, sizeof(want), "%s:%d] ", file, line);
		if (strncmp(rest, want, strlen(want)) != 0)
			why = "file:line]";
		rest += strlen(want);
	}
	if (why) {
		fprintf(stderr, "bad klog header (%s) in: %s", why, s);
		return NULL;
	}
	return rest;
}

/* "mmdd hh:mm:ss" of a local time, to compare with a header's clock. */
static void clock_text(time_t t, char *out, size_t len)
{
	struct tm tm;
	localtime_r(&t, &tm);
	snprintf(out, len, "%02d%02d %02d:%02d:%02d", tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec);
}

/* ---- a small JSON validator: one value, RFC 8259 grammar, no extensions ---- */

static const char *json_value(const char *s);

static const char *json_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static const char *json_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*s++;
		if (c == '"')
			return s;
		if (c < 0x20)
			return NULL; /* raw control bytes (and the end of the text) are invalid */
		if (c != '\\')
			continue;
		c = (unsigned char)*s++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++)
				if (!isxdigit((unsigned char)*s++))
					return NULL;
		} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
			return NULL;
		}
	}
}

static const char *json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (isdigit((unsigned char)*s))
		while (isdigit((unsigned char)*s))
			s++;
	else
		return NULL;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return NULL;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return NULL;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return s;
}

static const char *json_object(const char *s)
{
	s = json_ws(s + 1);
	if (*s == '}')
		return s + 1;
	for (;;) {
		s = json_string(s);
		if (!s)
			return NULL;
		s = json_ws(s);
		if (*s++ != ':')
			return NULL;
		s = json_value(s);
		if (!s)
			return NULL;
		s = json_ws(s);
		if (*s == '}')
			return s + 1;
		if (*s++ != ',')
			return NULL;
		s = json_ws(s);
	}
}

static const char *json_value(const char *s)
{
	s = json_ws(s);
	if (*s == '{')
		return json_object(s);
	if (*s == '"')
		return json_string(s);
	if (!strncmp(s, "null", 4))
		return s + 4;
	if (!strncmp(s, "true", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	return json_number(s);
}

/* Every byte of s belongs to a valid UTF-8 character. */
static bool utf8_valid(const char *s)
{
	size_t left = strlen(s);
	const unsigned char *p = (const unsigned char *)s;
	while (left > 0) {
		uint32_t cp;
		int n = utf8_decode(p, left, &cp);
		if (n == 0)
			return false;
		p += n;
		left -= (size_t)n;
	}
	return true;
}

/* One JSON object in valid UTF-8, followed by exactly one newline. */
static bool json_line_valid(const char *line)
{
	if (line[0] != '{' || !utf8_valid(line))
		return false;
	const char *end = json_value(line);
	return end && end[0] == '\n' && end[1] == '\0';
}

/* ---- text form ---- */

/* The structured klog header, then the quoted message, for each severity. */
static void test_text_header(void)
{
	log_setup(0, LOG_FORMAT_TEXT, false);
	char before[32], after[32];
	clock_text(time(NULL), before, sizeof(before));
	capture_begin();
	log_write(LOG_INFO, 0, "file.c", 42, "Health check succeeded", (char *)NULL);
	char *info = capture_end();
	clock_text(time(NULL), after, sizeof(after));

	const char *rest = match_header(info, 'I', "file.c", 42);
	CHECK(rest != NULL);
	if (rest)
		CHECK_STR(rest, "\"Health check succeeded\"\n");
	/* The header's clock is local time, taken during the call. */
	char got[32];
	snprintf(got, sizeof(got), "%.4s %.8s", info + 1, info + 6);
	CHECK(strcmp(got, before) >= 0 || strcmp(before, after) > 0 /* new year */);
	CHECK(strcmp(got, after) <= 0 || strcmp(before, after) > 0);
	free(info);

	capture_begin();
	log_write(LOG_WARNING, 0, "csi.c", 7, "Still connecting", "address", "unix:///csi.sock",
	          (char *)NULL);
	char *warn = capture_end();
	rest = match_header(warn, 'W', "csi.c", 7);
	CHECK(rest != NULL);
	if (rest)
		CHECK_STR(rest, "\"Still connecting\" address=\"unix:///csi.sock\"\n");
	free(warn);

	capture_begin();
	log_write(LOG_ERROR, 0, "check.c", 123456, "Health check failed", "err",
	          "rpc error: code = Unavailable desc = ", (char *)NULL);
	char *err = capture_end();
	rest = match_header(err, 'E', "check.c", 123456);
	CHECK(rest != NULL);
	if (rest)
		CHECK_STR(
		        rest,
		        "\"Health check failed\" err=\"rpc error: code = Unavailable desc = \"\n");
	free(err);
}

/* Key/value pairs: key=quoted value, in order; a NULL value prints as null. */
static void test_text_pairs(void)
{
	log_setup(0, LOG_FORMAT_TEXT, true);
	capture_begin();
	log_write(LOG_INFO, 0, "f.c", 1, "m", "a", "1", "b", "", "c", (char *)NULL, "d", "x y",
	          (char *)NULL);
	char *out = capture_end();
	CHECK_STR(out, "\"m\" a=\"1\" b=\"\" c=null d=\"x y\"\n");
	free(out);
}

/*
 * Quoting: '"' and '\' are escaped, newline/tab/CR as \n \t \r, other
 * control bytes and DEL as \u00XX (what log.c documents), UTF-8 kept as is.
 * A message never spans lines.
 */
static void test_text_escaping(void)
{
	log_setup(0, LOG_FORMAT_TEXT, true);
	capture_begin();
	log_write(LOG_ERROR, 0, "f.c", 1, "say \"hi\"\\n\nnext\ttab\rcr", "v",
	          "\x01\x1f\x7f caf\xc3\xa9", (char *)NULL);
	char *out = capture_end();
	CHECK_STR(out, "\"say \\\"hi\\\"\\\\n\\nnext\\ttab\\rcr\" "
	               "v=\"\\u0001\\u001f\\u007f caf\xc3\xa9\"\n");
	free(out);
}

/*
 * Bytes that are not UTF-8 (a driver's message, a name cut by someone
 * else): \xNN in text, as Go's %q writes them; U+FFFD in JSON, which must be
 * UTF-8. Valid multi-byte characters stay as they are.
 */
static void test_invalid_utf8(void)
{
	const char *bad = "a\xff\xc3(\xe2\x82\xac\xed\xa0\x80z";
	log_setup(0, LOG_FORMAT_TEXT, true);
	capture_begin();
	log_write(LOG_ERROR, 0, "f.c", 1, "m", "err", bad, (char *)NULL);
	char *text = capture_end();
	CHECK_STR(text, "\"m\" err=\"a\\xff\\xc3(\xe2\x82\xac\\xed\\xa0\\x80z\"\n");
	CHECK(utf8_valid(text));
	free(text);

	log_setup(0, LOG_FORMAT_JSON, false);
	capture_begin();
	log_write(LOG_ERROR, 0, "f.c", 1, bad, "k\x80", bad, (char *)NULL);
	char *json = capture_end();
	CHECK(json_line_valid(json));
	CHECK(strstr(json, "\"msg\":\"a\\ufffd\\ufffd(\xe2\x82\xac\\ufffd\\ufffd\\ufffdz\"") !=
	      NULL);
	CHECK(strstr(json, "\"k\\ufffd\":") != NULL);
	free(json);
}

/*
 * A source name that is not a plain file name (a policy's path may hold
 * anything) is quoted in the text header and escaped in JSON's caller, so
 * it cannot end the header early or forge a second line.
 */
static void test_file_name_quoted(void)
{
	log_setup(0, LOG_FORMAT_TEXT, false);
	capture_begin();
	log_write(LOG_ERROR, 0, "p\"o] x\nE1126 forged.lua", 3, "m", (char *)NULL);
	char *text = capture_end();
	CHECK(strchr(text, '\n') == text + strlen(text) - 1);
	CHECK(strstr(text, " \"p\\\"o] x\\nE1126 forged.lua\":3] \"m\"\n") != NULL);
	free(text);

	log_setup(0, LOG_FORMAT_JSON, false);
	capture_begin();
	log_write(LOG_ERROR, 0, "p\"o\n.lua", 3, "m", (char *)NULL);
	char *json = capture_end();
	CHECK(json_line_valid(json));
	CHECK(strstr(json, "\"caller\":\"p\\\"o\\n.lua:3\"") != NULL);
	free(json);
}

/* -skip_headers drops exactly the header: the line starts at the quote. */
static void test_skip_headers(void)
{
	log_setup(0, LOG_FORMAT_TEXT, true);
	capture_begin();
	log_write(LOG_ERROR, 0, "f.c", 9, "Driver responded but is not ready", (char *)NULL);
	log_write(LOG_INFO, 0, "f.c", 9, "second", "k", "v", (char *)NULL);
	char *out = capture_end();
	CHECK_STR(out, "\"Driver responded but is not ready\"\n\"second\" k=\"v\"\n");
	free(out);
}

/* ---- -v gating ---- */

static int side_effects;

static const char *counted(const char *s)
{
	side_effects++;
	return s;
}

static void test_verbosity(void)
{
	log_setup(2, LOG_FORMAT_TEXT, true);
	CHECK(log_enabled(0));
	CHECK(log_enabled(1));
	CHECK(log_enabled(2));
	CHECK(!log_enabled(3));
	CHECK(!log_enabled(10));

	capture_begin();
	LOG_INFO_V(3, "hidden at 3");
	LOG_INFO_V(2, "shown at 2");
	LOG_INFO_V(0, "shown at 0");
	log_write(LOG_INFO, 5, "f.c", 1, "log_write gates too", (char *)NULL);
	/* Warnings and errors ignore -v. */
	log_write(LOG_WARNING, 9, "f.c", 1, "warning", (char *)NULL);
	log_write(LOG_ERROR, 9, "f.c", 1, "error", (char *)NULL);
	/* A line below the level does not even evaluate its arguments. */
	LOG_INFO_V(4, "expensive", "k", counted("v"));
	char *out = capture_end();
	CHECK_STR(out, "\"shown at 2\"\n\"shown at 0\"\n\"warning\"\n\"error\"\n");
	CHECK_INT(side_effects, 0);
	free(out);

	log_setup(0, LOG_FORMAT_TEXT, true);
	CHECK(log_enabled(0));
	CHECK(!log_enabled(1));
	capture_begin();
	LOG_INFO_V(1, "hidden at -v=0");
	LOG_I("info at -v=0", "k", counted("v"));
	char *out0 = capture_end();
	CHECK_STR(out0, "\"info at -v=0\" k=\"v\"\n");
	CHECK_INT(side_effects, 1);
	free(out0);
}

/* The LOG_* macros put this file's name and the calling line in the header. */
static void test_macro_caller(void)
{
	log_setup(0, LOG_FORMAT_TEXT, false);
	capture_begin();
	int line = __LINE__ + 1;
	LOG_W("from a macro", "k", "v");
	char *out = capture_end();
	const char *rest = match_header(out, 'W', "log.c", line);
	CHECK(rest != NULL);
	if (rest)
		CHECK_STR(rest, "\"from a macro\" k=\"v\"\n");
	free(out);
}

/* ---- JSON lines ---- */

/* Returns the text after {"ts":<number>, or NULL; stores the number in ms. */
static const char *match_json_ts(const char *s, double *ms)
{
	if (strncmp(s, "{\"ts\":", 6) != 0)
		return NULL;
	const char *end = json_number(s + 6);
	if (!end)
		return NULL;
	*ms = strtod(s + 6, NULL);
	return end;
}

static double now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec * 1000 + (double)tv.tv_usec / 1000;
}

/*
 * component-base's shape: ts (epoch milliseconds, a number), caller, msg,
 * then "v" on info lines only, then the pairs in order.
 */
static void test_json_shape(void)
{
	log_setup(3, LOG_FORMAT_JSON, false);
	double t0 = now_ms();
	capture_begin();
	log_write(LOG_INFO, 0, "main.c", 42, "Message", "key", "value", (char *)NULL);
	char *info = capture_end();
	double t1 = now_ms();
	double ts = 0;
	const char *rest = match_json_ts(info, &ts);
	CHECK(rest != NULL);
	if (rest)
		CHECK_STR(rest, ",\"caller\":\"main.c:42\",\"msg\":\"Message\",\"v\":0,"
		                "\"key\":\"value\"}\n");
	CHECK(ts >= t0 - 1 && ts <= t1 + 1);
	CHECK(json_line_valid(info));
	free(info);

	capture_begin();
	log_write(LOG_INFO, 3, "a.c", 1, "verbose", (char *)NULL);
	char *v3 = capture_end();
	rest = match_json_ts(v3, &ts);
	CHECK(rest != NULL);
	if (rest)
		CHECK_STR(rest, ",\"caller\":\"a.c:1\",\"msg\":\"verbose\",\"v\":3}\n");
	free(v3);

	/* Error and warning lines have no "v". */
	capture_begin();
	log_write(LOG_ERROR, 0, "check.c", 7, "Health check failed", "err",
	          "rpc error: code = FailedPrecondition desc = x", (char *)NULL);
	log_write(LOG_WARNING, 0, "csi.c", 8, "Still connecting", "address", (char *)NULL,
	          (char *)NULL);
	char *errs = capture_end();
	char *second = strchr(errs, '\n');
	CHECK(second != NULL);
	if (second) {
		*second++ = '\0';
		rest = match_json_ts(errs, &ts);
		CHECK(rest != NULL);
		if (rest)
			CHECK_STR(rest,
			          ",\"caller\":\"check.c:7\",\"msg\":\"Health check failed\","
			          "\"err\":\"rpc error: code = FailedPrecondition desc = x\"}");
		rest = match_json_ts(second, &ts);
		CHECK(rest != NULL);
		if (rest)
			CHECK_STR(rest, ",\"caller\":\"csi.c:8\",\"msg\":\"Still connecting\","
			                "\"address\":null}\n");
		CHECK(json_line_valid(second));
	}
	free(errs);

	/* -v applies to JSON too. */
	capture_begin();
	log_write(LOG_INFO, 4, "a.c", 1, "too verbose", (char *)NULL);
	char *none = capture_end();
	CHECK_STR(none, "");
	free(none);
}

/* Message, keys and values are JSON-escaped; the line stays valid JSON. */
static void test_json_escaping(void)
{
	log_setup(0, LOG_FORMAT_JSON, false);
	capture_begin();
	log_write(LOG_ERROR, 0, "f.c", 1, "q\"b\\n\nt\t\x01", "k\"ey", "v\\al\r\x7f\xc3\xa9",
	          (char *)NULL);
	char *out = capture_end();
	double ts;
	const char *rest = match_json_ts(out, &ts);
	CHECK(rest != NULL);
	if (rest)
		CHECK_STR(rest, ",\"caller\":\"f.c:1\",\"msg\":\"q\\\"b\\\\n\\nt\\t\\u0001\","
		                "\"k\\\"ey\":\"v\\\\al\\r\\u007f\xc3\xa9\"}\n");
	CHECK(json_line_valid(out));
	free(out);

	/* The validator itself rejects what a broken line looks like. */
	CHECK(!json_line_valid("{\"msg\":\"unterminated}\n"));
	CHECK(!json_line_valid("{\"msg\":\"raw\nnewline\"}\n"));
	CHECK(!json_line_valid("{\"a\":1,}\n"));
	CHECK(json_line_valid("{\"a\":-1.5e+3,\"b\":null}\n"));
}

/*
 * A line longer than the line buffer is cut, but stays one line, and a cut
 * JSON line must still be a valid JSON object (log collectors drop or
 * mangle anything else).
 */
static void test_long_lines(void)
{
	size_t n = 12000; /* longer than the 8 KiB line buffer */
	char *big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	big[100] = '"'; /* an escape early on */

	log_setup(0, LOG_FORMAT_TEXT, true);
	capture_begin();
	log_write(LOG_ERROR, 0, "f.c", 1, big, "k", "v", (char *)NULL);
	char *text = capture_end();
	size_t len = strlen(text);
	CHECK(len > 1000 && len <= 8192);
	CHECK(len > 0 && text[len - 1] == '\n');
	CHECK(strchr(text, '\n') == text + len - 1);
	free(text);

	log_setup(0, LOG_FORMAT_JSON, false);
	capture_begin();
	log_write(LOG_ERROR, 0, "f.c", 1, big, (char *)NULL);
	log_write(LOG_ERROR, 0, "f.c", 1, "short", "k", big, (char *)NULL);
	char *json = capture_end();
	char *second = strchr(json, '\n');
	CHECK(second != NULL);
	if (second) {
		second++;
		CHECK(strchr(second, '\n') == second + strlen(second) - 1);
		CHECK(json_line_valid(second));
		second[0] = '\0';
		CHECK(json_line_valid(json)); /* a cut message */
	}
	free(json);

	/*
	 * Escapes and multi-byte characters all the way: wherever the cut
	 * falls, it falls between two of them, never inside (\u00, half an é).
	 */
	for (int shift = 0; shift < 6; shift++) {
		char *mixed = malloc(n + 1);
		for (size_t i = 0; i + 2 < n; i += 3)
			memcpy(mixed + i, (i / 3) % 2 ? "\x01\xc3\xa9" : "\"\xc3\xa9", 3);
		mixed[n - n % 3] = '\0';
		log_setup(0, LOG_FORMAT_JSON, false);
		capture_begin();
		log_write(LOG_ERROR, 0, "f.c", 1, mixed + shift, (char *)NULL);
		log_write(LOG_ERROR, 0, "f.c", 1, "m", "err", mixed + shift, (char *)NULL);
		char *cut = capture_end();
		char *next = strchr(cut, '\n');
		CHECK(next != NULL);
		if (next) {
			next++;
			CHECK(json_line_valid(next));
			next[0] = '\0';
			CHECK(json_line_valid(cut));
		}
		free(cut);
		log_setup(0, LOG_FORMAT_TEXT, true);
		capture_begin();
		log_write(LOG_ERROR, 0, "f.c", 1, mixed + shift, (char *)NULL);
		char *cut_text = capture_end();
		CHECK(utf8_valid(cut_text));
		size_t tl = strlen(cut_text);
		CHECK(tl >= 3 && strcmp(cut_text + tl - 2, "\"\n") == 0);
		free(cut_text);
		free(mixed);
	}
	free(big);
}

int main(void)
{
	test_text_header();
	test_text_pairs();
	test_text_escaping();
	test_invalid_utf8();
	test_file_name_quoted();
	test_skip_headers();
	test_verbosity();
	test_macro_caller();
	test_json_shape();
	test_json_escaping();
	test_long_lines();
	log_setup(0, LOG_FORMAT_TEXT, false);
	return testing_result("log");
}
