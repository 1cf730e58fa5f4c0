/*
 * http_clean_path (src/http.c): Go's path.Clean plus ServeMux's cleanPath,
 * which decides whether a request is redirected (UPSTREAM.md §3.2): a path
 * is served only when it equals its cleaned form, else 301 to the cleaned
 * form. So "//healthz" must clean to "/healthz", and "/healthz/" must stay
 * as it is (then 404, not a redirect). Also Accept-Encoding as HTTP reads
 * it (when /metrics is gzipped), Accept: text/plain and query parameters
 * (src/http_request.c: /status's format, ?verbose), and the Location of a
 * redirect.
 */
#include "../../src/http.c" /* the statics: redirect_location */
#include "testing.h"

static void check_clean(const char *path, const char *want)
{
	char out[256];
	memset(out, 'Z', sizeof(out));
	http_clean_path(path, out, sizeof(out));
	if (strcmp(out, want) != 0)
		fprintf(stderr, "http_clean_path(\"%s\")\n", path);
	CHECK_STR(out, want);
}

/* Canonical paths are their own cleaned form: served, not redirected. */
static void test_canonical(void)
{
	check_clean("/healthz", "/healthz");
	check_clean("/metrics", "/metrics");
	check_clean("/", "/");
	check_clean("/a/b/c", "/a/b/c");
	check_clean("/..a/b..", "/..a/b..");
	check_clean("/.well-known", "/.well-known");
	check_clean("/%2e%2e", "/%2e%2e"); /* decoding happens before, not here */
}

/* What Go redirects: doubled slashes, ".", ".." (never above the root). */
static void test_dots_and_slashes(void)
{
	check_clean("//healthz", "/healthz");
	check_clean("///healthz", "/healthz");
	check_clean("/./healthz", "/healthz");
	check_clean("/foo/../healthz", "/healthz");
	check_clean("/../healthz", "/healthz");
	check_clean("/../../healthz", "/healthz");
	check_clean("/a/b/../../c", "/c");
	check_clean("/a//b/./c/..", "/a/b");
	check_clean("/a/b/..", "/a");
	check_clean("/a/..", "/");
	check_clean("/..", "/");
	check_clean("/.", "/");
	check_clean("//", "/");
	check_clean("/healthz/.", "/healthz");
	check_clean("/healthz/..", "/");
}

/* ServeMux keeps a trailing slash the request had (except on the root). */
static void test_trailing_slash(void)
{
	check_clean("/healthz/", "/healthz/");
	check_clean("/a/b/", "/a/b/");
	check_clean("/a/b//", "/a/b/");
	check_clean("/a/b/../", "/a/");
	check_clean("/a/./", "/a/");
	check_clean("/a/../", "/");
	check_clean("/./", "/");
	check_clean("/metrics/", "/metrics/");
}

/* A path without a leading slash gets one; the empty path is the root. */
static void test_relative(void)
{
	check_clean("", "/");
	check_clean("healthz", "/healthz");
	check_clean("a/../healthz", "/healthz");
	check_clean(".", "/");
	check_clean("..", "/");
	check_clean("a/", "/a/");
}

/* The output buffer bounds the result; it is always terminated. */
static void test_small_buffer(void)
{
	char out[4];
	memset(out, 'Z', sizeof(out));
	http_clean_path("//healthz", out, sizeof(out));
	CHECK_STR(out, "/he");
	char one[1] = {'Z'};
	http_clean_path("/healthz", one, sizeof(one));
	CHECK_INT(one[0], '\0');
}

/* Long paths work (no fixed-size scratch buffer). */
static void test_long(void)
{
	static char in[10001], want[10001], out[10010];
	in[0] = '/';
	in[1] = '/';
	memset(in + 2, 'a', 9998);
	in[10000] = '\0';
	want[0] = '/';
	memset(want + 1, 'a', 9998);
	want[9999] = '\0';
	http_clean_path(in, out, sizeof(out));
	CHECK_STR(out, want);
}

/* Whether Accept-Encoding headers (given as NULL-terminated values) allow gzip. */
static bool gzip_for(const char *const *values)
{
	struct evhttp_request *req = evhttp_request_new(NULL, NULL);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	for (; *values; values++)
		evhttp_add_header(h, "Accept-Encoding", *values);
	bool yes = http_accepts_gzip(req);
	evhttp_request_free(req);
	return yes;
}

static void check_gzip(const char *value, bool want)
{
	const char *values[] = {value, NULL};
	if (gzip_for(values) != want)
		fprintf(stderr, "Accept-Encoding: %s\n", value);
	CHECK_INT(gzip_for(values), want);
}

static void test_accept_encoding(void)
{
	check_gzip("gzip", true);
	check_gzip("GZIP", true);
	check_gzip("gzip, deflate, br", true);
	check_gzip("deflate;q=0.5, gzip;q=0.8", true);
	check_gzip("gzip ; q=0.001", true);
	check_gzip("gzip;Q=1.000", true);
	check_gzip("x-gzip", true);
	check_gzip("*", true);
	check_gzip("gzip;q=0", false);
	check_gzip("gzip;q=0.000", false);
	check_gzip("GZIP; Q=0", false);
	check_gzip("*;q=1, gzip;q=0", false); /* named beats the wildcard */
	check_gzip("identity", false);
	check_gzip("deflate", false);
	check_gzip("nogzip, gzipx", false);
	check_gzip("gzip;q=abc", false); /* a malformed weight: the element is ignored */
	check_gzip("gzip;q=1.5", false);
	check_gzip("*;q=0", false);
	check_gzip("", false);
	const char *none[] = {NULL};
	CHECK(!gzip_for(none));
	/* Several headers add up. */
	const char *two[] = {"deflate", "gzip", NULL};
	CHECK(gzip_for(two));
}

/* A redirect's Location is the cleaned path escaped as Go escapes it. */
static void test_redirect_location(void)
{
	char *l = redirect_location("/\\evil.example/", NULL);
	CHECK_STR(l, "/%5Cevil.example/");
	free(l);
	l = redirect_location("/healthz\nX:1", "a=1&b=\xc3\xa9");
	CHECK_STR(l, "/healthz%0AX:1?a=1&b=%C3%A9");
	free(l);
	l = redirect_location("/a b/?#\"", "");
	CHECK_STR(l, "/a%20b/%3F%23%22?");
	free(l);
}

/* Whether an Accept header value asks for text/plain. */
static bool text_for(const char *value)
{
	struct evhttp_request *req = evhttp_request_new(NULL, NULL);
	evhttp_add_header(evhttp_request_get_input_headers(req), "Accept", value);
	bool yes = http_accepts_text(req);
	evhttp_request_free(req);
	return yes;
}

static void test_accept_and_query(void)
{
	CHECK(text_for("text/plain"));
	CHECK(text_for("application/json, text/plain;q=0.5"));
	CHECK(text_for("text/html,text/plain"));
	CHECK(!text_for("*/*"));
	CHECK(!text_for("text/plainish"));
	CHECK(!text_for("xtext/plain"));

	size_t len = 99;
	char *v = http_query_param("a=1&format=text&b", "format", &len);
	CHECK_STR(v, "text");
	CHECK_INT(len, 4);
	free(v);
	v = http_query_param("f%6Frmat=j+s%6Fn", "format", &len); /* names and values decode */
	CHECK_STR(v, "j son");
	free(v);
	v = http_query_param("format=js%00on", "format", &len); /* a decoded NUL is counted */
	CHECK_INT(len, 5);
	free(v);
	v = http_query_param("verbose", "verbose", &len); /* no '=': "" */
	CHECK_STR(v, "");
	CHECK_INT(len, 0);
	free(v);
	CHECK(http_query_param("format=x", "form", NULL) == NULL);
	CHECK(http_query_param("formatx=x", "format", NULL) == NULL);
	CHECK(http_query_param(NULL, "format", NULL) == NULL);
	CHECK(http_query_param("", "format", NULL) == NULL);
	CHECK(http_query_has("&&verbose=&", "verbose"));
	CHECK(http_query_has("x=1&verbose=false", "verbose")); /* any value, as kube-apiserver */
	CHECK(!http_query_has("verbosely", "verbose"));
	/* The first of repeated parameters counts, as Go's Query().Get. */
	v = http_query_param("format=json&format=text", "format", NULL);
	CHECK_STR(v, "json");
	free(v);
}

int main(void)
{
	test_accept_and_query();
	test_accept_encoding();
	test_redirect_location();
	test_canonical();
	test_dots_and_slashes();
	test_trailing_slash();
	test_relative();
	test_small_buffer();
	test_long();
	return testing_result("http");
}
