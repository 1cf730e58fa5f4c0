/*
 * What a request asks for beyond its path (http_request.h): the codings it
 * accepts, the media type it prefers, its query parameters.
 */
#include "http_request.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h> /* TAILQ_FOREACH over libevent's header list */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

/*
 * The weight of one Accept-Encoding element, from its parameters (what
 * follows the coding): 1 without "q", the q value (0 to 1, up to three
 * decimals, RFC 7231 section 5.3.1), or -1 when the weight is malformed
 * (the element is then ignored). Names are case-insensitive.
 */
static double coding_weight(const char *p, const char *end)
{
	double q = 1;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
			p++;
		const char *name = p;
		while (p < end && *p != '=' && *p != ';')
			p++;
		if (p == end || *p != '=') {
			if (p > name)
				return -1; /* a parameter without a value */
			continue;
		}
		bool is_q = p - name == 1 && (*name == 'q' || *name == 'Q');
		const char *v = ++p;
		while (p < end && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		if (!is_q)
			continue;
		size_t n = (size_t)(p - v);
		size_t frac = n > 2 ? n - 2 : 0;
		if (n == 0 || (v[0] != '0' && v[0] != '1') || (n > 1 && v[1] != '.') || frac > 3 ||
		    strspn(v + (n > 1 ? 2 : 1), v[0] == '1' ? "0" : "0123456789") != frac)
			return -1;
		q = strtod(v, NULL);
	}
	return q;
}

/*
 * Whether the request's Accept-Encoding headers (all of them: they add up)
 * let the answer be gzipped, as HTTP says (RFC 7231 section 5.3.4):
 * "gzip" (or "x-gzip") with a weight above 0; or, gzip not named, "*" with
 * a weight above 0. Codings are case-insensitive; "gzip;q=0" refuses it.
 */
bool http_accepts_gzip(struct evhttp_request *req)
{
	double gzip = -1, any = -1; /* -1: not named */
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
	{
		if (evutil_ascii_strcasecmp(kv->key, "Accept-Encoding") != 0)
			continue;
		for (const char *e = kv->value; *e;) {
			const char *end = e + strcspn(e, ",");
			const char *c = e + strspn(e, " \t");
			size_t n = strcspn(c, " \t;,");
			double q = coding_weight(c + n, end);
			if (q >= 0 && ((n == 4 && evutil_ascii_strncasecmp(c, "gzip", 4) == 0) ||
			               (n == 6 && evutil_ascii_strncasecmp(c, "x-gzip", 6) == 0)))
				gzip = gzip < 0 || q > gzip ? q : gzip;
			else if (q >= 0 && n == 1 && *c == '*')
				any = any < 0 || q > any ? q : any;
			e = *end ? end + 1 : end;
		}
	}
	return gzip >= 0 ? gzip > 0 : any > 0;
}

/*
 * The value of the query parameter key (decoded, '+' as space) in a
 * malloc'd string, "" for a key without '=', NULL when absent (or out of
 * memory); *len (if not NULL) its length, which may pass a decoded NUL.
 * Like Go's url.ParseQuery, '&' separates parameters.
 */
char *http_query_param(const char *query, const char *key, size_t *len)
{
	for (const char *p = query; p && *p;) {
		size_t n = strcspn(p, "&");
		char *part = strndup(p, n);
		p = p[n] ? p + n + 1 : p + n;
		if (!part)
			return NULL;
		char *eq = strchr(part, '=');
		if (eq)
			*eq = '\0';
		size_t name_len = 0;
		char *name = evhttp_uridecode(part, 1, &name_len);
		bool match = name && name_len == strlen(key) && strcmp(name, key) == 0;
		free(name);
		char *value = match ? evhttp_uridecode(eq ? eq + 1 : "", 1, len) : NULL;
		free(part);
		if (value)
			return value;
	}
	return NULL;
}

bool http_query_has(const char *query, const char *key)
{
	char *v = http_query_param(query, key, NULL);
	free(v);
	return v != NULL;
}

/* Whether an Accept header names text/plain (then /status answers as a table). */
bool http_accepts_text(struct evhttp_request *req)
{
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
	{
		if (evutil_ascii_strcasecmp(kv->key, "Accept") != 0)
			continue;
		for (const char *v = kv->value; (v = strstr(v, "text/plain")); v++) {
			size_t before = (size_t)(v - kv->value);
			char after = v[10];
			if ((before == 0 || strchr(" ,\t", v[-1])) && strchr(",; \t", after))
				return true;
		}
	}
	return false;
}
