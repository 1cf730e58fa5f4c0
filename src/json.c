/* JSON values on an evbuffer (json.h). */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "metrics.h" /* metrics_format_float */
#include "quote.h"

void json_put_string(struct evbuffer *out, const char *s, size_t len)
{
	evbuffer_add(out, "\"", 1);
	while (len > 0) {
		char tok[QUOTE_TOKEN_MAX];
		size_t used;
		size_t n = quote_next(s, len, true, tok, &used);
		evbuffer_add(out, tok, n);
		s += used;
		len -= used;
	}
	evbuffer_add(out, "\"", 1);
}

void json_put_cstring(struct evbuffer *out, const char *s)
{
	if (s)
		json_put_string(out, s, strlen(s));
	else
		evbuffer_add(out, "null", 4);
}

void json_put_number(struct evbuffer *out, double v)
{
	char num[64];
	if (!isfinite(v)) { /* JSON has no NaN or infinities */
		evbuffer_add(out, "null", 4);
		return;
	}
	metrics_format_float(v, num, sizeof(num));
	evbuffer_add(out, num, strlen(num));
}

void json_format_time(double epoch_seconds, char *buf, size_t len)
{
	if (epoch_seconds <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	time_t sec = (time_t)epoch_seconds;
	long usec = (long)((epoch_seconds - (double)sec) * 1e6);
	if (usec > 999999)
		usec = 999999;
	struct tm tm;
	gmtime_r(&sec, &tm);
	char date[32];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", date, usec);
}

void json_put_time(struct evbuffer *out, double epoch_seconds)
{
	if (epoch_seconds <= 0) {
		evbuffer_add(out, "null", 4);
		return;
	}
	char t[64];
	json_format_time(epoch_seconds, t, sizeof(t));
	evbuffer_add_printf(out, "\"%s\"", t);
}
