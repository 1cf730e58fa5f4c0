/*
 * The pieces of a JSON document written to an evbuffer: strings (escaped
 * as quote.h says, always valid UTF-8), numbers, times (RFC 3339, UTC),
 * and null. /status is made of these.
 */
#ifndef LP_JSON_H
#define LP_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* A string of len bytes (which may hold NUL bytes and invalid UTF-8). */
void json_put_string(struct evbuffer *out, const char *s, size_t len);
/* The same for a NUL-terminated string; NULL is written as null. */
void json_put_cstring(struct evbuffer *out, const char *s);
/* A number as the shortest text that reads back the same (Go's 'g', -1). */
void json_put_number(struct evbuffer *out, double v);
/* An RFC 3339 time in UTC with microseconds ("2026-11-27T16:00:00.123456Z"); 0 is null. */
void json_put_time(struct evbuffer *out, double epoch_seconds);
/* The same time as text, into buf (at least 32 bytes); "-" for 0. */
void json_format_time(double epoch_seconds, char *buf, size_t len);

#endif
