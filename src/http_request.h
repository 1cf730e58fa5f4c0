/*
 * Reading what an HTTP request asks for beyond its path: whether it
 * accepts gzip (Accept-Encoding, as HTTP weighs it), whether it prefers
 * text/plain (Accept), and its query parameters (decoded as Go's
 * url.ParseQuery does). Pure functions of the request; http.c routes.
 */
#ifndef LP_HTTP_REQUEST_H
#define LP_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct evhttp_request;

/*
 * Whether the request's Accept-Encoding headers (all of them: they add up)
 * let the answer be gzipped (RFC 7231 section 5.3.4): "gzip" (or "x-gzip")
 * with a weight above 0; or, gzip not named, "*" with a weight above 0.
 */
bool http_accepts_gzip(struct evhttp_request *req);

/* Whether an Accept header names text/plain. */
bool http_accepts_text(struct evhttp_request *req);

/*
 * The value of query parameter key (decoded, '+' as space) in a malloc'd
 * string, "" for a key without '=', NULL when absent (or out of memory);
 * *len (if not NULL) its length, which may pass a decoded NUL. query may
 * be NULL (no query).
 */
char *http_query_param(const char *query, const char *key, size_t *len);

/* Whether key is among the query's parameters, with or without a value. */
bool http_query_has(const char *query, const char *key);

#endif
