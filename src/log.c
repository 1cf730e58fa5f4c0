/*
 * Log lines in the structured klog text form of upstream ≥ v2.12, or as
 * component-base's JSON lines. One write(2) per line so lines from the loop
 * and from gRPC's threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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
 * A bounded line buffer; text past the end is cut, never overflowed. The
 * last RESERVE bytes are kept for what closes a line (a quote, "}", "\n"),
 * so a cut line is still well-formed.
 */
#define RESERVE 8
struct line {
	char buf[8192];
	size_t len;
};

/* Bytes put() and putf() may still use (the reserve excluded). */
static size_t room(const struct line *l)
{
	size_t limit = sizeof(l->buf) - RESERVE;
	return l->len < limit ? limit - l->len : 0;
}

static void put_closing(struct line *l, const char *s)
{
	size_t n = strlen(s);
	if (l->len + n <= sizeof(l->buf)) {
		memcpy(l->buf + l->len, s, n);
		l->len += n;
	}
}

static void put(struct line *l, const char *s, size_t n)
{
	if (n > room(l))
		n = room(l);
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
	size_t left = room(l);
	if (left == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->buf + l->len, left + 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len += (size_t)n < left ? (size_t)n : left;
}

/*
 * A double-quoted string with Go-style escapes (what klog's %q and JSON both
 * accept for the characters we emit): \" \\ \n \t \r, other control bytes
 * as \u00XX, everything else (UTF-8 included) as is.
 */
static void put_quoted(struct line *l, const char *s)
{
	puts_(l, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"':
			puts_(l, "\\\"");
			break;
		case '\\':
			puts_(l, "\\\\");
			break;
		case '\n':
			puts_(l, "\\n");
			break;
		case '\t':
			puts_(l, "\\t");
			break;
		case '\r':
			puts_(l, "\\r");
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				putf(l, "\\u%04x", c);
			else
				put(l, (const char *)&c, 1);
		}
	}
	put_closing(l, "\"");
}

static void put_text_header(struct line *l, enum log_severity sev, const char *file, int line)
{
	static const char letters[] = "IWEF";
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	putf(l, "%c%02d%02d %02d:%02d:%02d.%06ld %7d %s:%d] ", letters[sev], tm.tm_mon + 1,
	     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec, (int)getpid(), file,
	     line);
}

static void put_json_header(struct line *l, enum log_severity sev, int v, const char *file,
                            int line, const char *msg)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* component-base: ts in milliseconds since the epoch, as a float. */
	putf(l, "{\"ts\":%lld.%06ld,\"caller\":\"%s:%d\",\"msg\":",
	     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, ts.tv_nsec % 1000000, file, line);
	put_quoted(l, msg);
	if (sev == LOG_INFO)
		putf(l, ",\"v\":%d", v);
}

static void emit(struct line *l)
{
	put_closing(l, "\n");
	/* A short write to stderr cannot be recovered from; there is nowhere to report it. */
	ssize_t n = write(STDERR_FILENO, l->buf, l->len);
	(void)n;
}

static void write_pairs(struct line *l, va_list ap)
{
	const char *key;
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		/* A cut line keeps whole pairs only, so it stays well-formed. */
		if (room(l) < 64 + strlen(key))
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

void log_write(enum log_severity sev, int v, const char *file, int line, const char *msg, ...)
{
	if (sev == LOG_INFO && !log_enabled(v))
		return;
	struct line l = {.len = 0};
	va_list ap;
	va_start(ap, msg);
	if (log_fmt == LOG_FORMAT_JSON) {
		put_json_header(&l, sev, v, file, line, msg);
		write_pairs(&l, ap);
		put_closing(&l, "}");
	} else {
		if (!log_skip_headers)
			put_text_header(&l, sev, file, line);
		put_quoted(&l, msg);
		write_pairs(&l, ap);
	}
	va_end(ap);
	emit(&l);
}

void log_writef(enum log_severity sev, int v, const char *file, int line, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_write(sev, v, file, line, msg, (char *)NULL);
}
