/*
 * Log lines in the structured klog text form of upstream ≥ v2.12, or as
 * component-base's JSON lines. One write(2) per line so lines from the loop
 * and from gRPC's threads never interleave.
 */
#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "quote.h"

static int log_verbosity;
static enum log_format log_fmt = LOG_FORMAT_TEXT;
static bool log_skip_headers;

void log_setup(int verbosity, enum log_format format, bool skip_headers)
{
	log_verbosity = verbosity;
	log_fmt = format;
	log_skip_headers = skip_headers;
}

bool log_enabled(int v)
{
	return v <= log_verbosity;
}

/*
 * A bounded line buffer. Text is added in tokens (a character, an escape, a
 * piece of the header) that go in whole or not at all: a line that reaches
 * its end is cut between characters and never inside an escape. The last
 * RESERVE bytes are kept for what closes a line (a quote, "}", "\n"), so a
 * cut line is still well-formed: valid JSON, valid UTF-8.
 */
#define LINE_MAX_BYTES 8192
#define RESERVE        8
struct line {
	char buf[LINE_MAX_BYTES];
	size_t len;
	bool full; /* a token did not fit: nothing more goes in */
};

static void put_closing(struct line *l, const char *s)
{
	size_t n = strlen(s);
	if (l->len + n <= sizeof(l->buf)) {
		memcpy(l->buf + l->len, s, n);
		l->len += n;
	}
}

/* One token: all of it, or (when it does not fit) nothing ever again. */
static void put(struct line *l, const char *s, size_t n)
{
	if (l->full || l->len + n > sizeof(l->buf) - RESERVE) {
		l->full = true;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
	char token[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(token, sizeof(token), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(l, token, (size_t)n < sizeof(token) ? (size_t)n : sizeof(token) - 1);
}

/* A double-quoted string, escaped as quote.h says (JSON or Go's %q by format). */
static void put_quoted(struct line *l, const char *s)
{
	size_t left = strlen(s);
	puts_(l, "\"");
	while (left > 0) {
		char tok[QUOTE_TOKEN_MAX];
		size_t used;
		size_t n = quote_next(s, left, log_fmt == LOG_FORMAT_JSON, tok, &used);
		put(l, tok, n);
		s += used;
		left -= used;
	}
	put_closing(l, "\"");
}

/*
 * True when a source file name can stand bare in a klog header: a policy's
 * file name is the user's, and a quote, a space, a ']' or a newline in it
 * must not forge the rest of the line.
 */
static bool bare_file_name(const char *file)
{
	for (const char *c = file; *c; c++)
		if (!(isalnum((unsigned char)*c) || strchr("._-+/", *c)))
			return false;
	return *file != '\0';
}

static void put_text_header(struct line *l, enum log_severity sev, const char *file, int line)
{
	static const char letters[] = "IWEF";
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	putf(l, "%c%02d%02d %02d:%02d:%02d.%06ld %7d ", letters[sev], tm.tm_mon + 1, tm.tm_mday,
	     tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec, (int)getpid());
	if (bare_file_name(file))
		puts_(l, file);
	else
		put_quoted(l, file);
	putf(l, ":%d] ", line);
}

static void put_json_header(struct line *l, enum log_severity sev, int v, const char *file,
                            int line, const char *msg)
{
	struct timespec ts;
	char caller[4200];
	clock_gettime(CLOCK_REALTIME, &ts);
	/* component-base: ts in milliseconds since the epoch, as a float. */
	putf(l,
	     "{\"ts\":%lld.%06ld,\"caller\":", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
	     ts.tv_nsec % 1000000);
	snprintf(caller, sizeof(caller), "%s:%d", file, line);
	put_quoted(l, caller);
	puts_(l, ",\"msg\":");
	put_quoted(l, msg);
	if (sev == LOG_INFO)
		putf(l, ",\"v\":%d", v);
}

static void write_pairs(struct line *l, va_list ap)
{
	const char *key;
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		/* A cut line keeps whole pairs only, so it stays well-formed. */
		if (l->full || sizeof(l->buf) - RESERVE - l->len < 64 + strlen(key))
			break;
		if (log_fmt == LOG_FORMAT_JSON) {
			puts_(l, ",");
			put_quoted(l, key);
			puts_(l, ":");
		} else {
			putf(l, " %s=", key);
		}
		if (val)
			put_quoted(l, val);
		else
			puts_(l, "null");
	}
}

/* Formats one line into l; log_write and log_format_line share it. */
static void format_line(struct line *l, enum log_severity sev, int v, const char *file, int line,
                        const char *msg, va_list ap)
{
	if (log_fmt == LOG_FORMAT_JSON) {
		put_json_header(l, sev, v, file, line, msg);
		write_pairs(l, ap);
		put_closing(l, "}");
	} else {
		if (!log_skip_headers)
			put_text_header(l, sev, file, line);
		put_quoted(l, msg);
		write_pairs(l, ap);
	}
	put_closing(l, "\n");
}

void log_write(enum log_severity sev, int v, const char *file, int line, const char *msg, ...)
{
	if (sev == LOG_INFO && !log_enabled(v))
		return;
	struct line l = {.len = 0};
	va_list ap;
	va_start(ap, msg);
	format_line(&l, sev, v, file, line, msg, ap);
	va_end(ap);
	/* A short write to stderr cannot be recovered from; there is nowhere to report it. */
	ssize_t n = write(STDERR_FILENO, l.buf, l.len);
	(void)n;
}

size_t log_format_line(char *buf, size_t len, enum log_severity sev, const char *file, int line,
                       const char *msg, ...)
{
	struct line l = {.len = 0};
	va_list ap;
	va_start(ap, msg);
	format_line(&l, sev, 0, file, line, msg, ap);
	va_end(ap);
	size_t n = l.len < len ? l.len : 0;
	memcpy(buf, l.buf, n);
	return n;
}
