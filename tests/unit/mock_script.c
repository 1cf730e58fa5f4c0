/*
 * csi-mock-driver --script (src/mockdriver/mock_script.c): hooks that
 * decide an answer field by field, and every way a script can be wrong,
 * each answered INTERNAL with its reason, the driver going on.
 */
#include "mock_script.h"
#include "testing.h"

#include <stdlib.h>
#include <unistd.h>

#include <grpc/status.h>

static char path[] = "/tmp/lp-mock-script-XXXXXX";
static char err[1024];

static struct mock_script *load(const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	return mock_script_load(path, err, sizeof(err));
}

/* The flags' answer for a Probe: OK, ready unset. */
static void flags_answer(struct mock_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->message = strdup("");
	r->name = strdup("mock");
	r->vendor_version = strdup("1");
	r->exit_code = 1;
}

static void test_fields(void)
{
	struct mock_script *s =
	        load("local d = {}\n"
	             "function d.probe(call)\n"
	             "  if call.n == 1 then return nil end\n"
	             "  if call.n == 2 then return {ready = false, delay = 0.25} end\n"
	             "  return {code = 'UNAVAILABLE', message = call.method,\n"
	             "          action = 'close_connection'}\n"
	             "end\n"
	             "return d\n");
	CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "load: %s\n", err);
		return;
	}
	struct mock_reply r;
	flags_answer(&r);
	CHECK_INT(mock_script_answer(s, MOCK_HOOK_PROBE, 1, 0.0, &r, err, sizeof(err)), 0);
	CHECK_INT(r.code, 0); /* nil: the flags' answer */
	CHECK_INT(mock_script_answer(s, MOCK_HOOK_PROBE, 2, 0.0, &r, err, sizeof(err)), 1);
	CHECK_INT(r.ready, MOCK_READY_FALSE);
	CHECK_INT(r.delay_ns, 250000000);
	CHECK_INT(mock_script_answer(s, MOCK_HOOK_PROBE, 3, 0.0, &r, err, sizeof(err)), 1);
	CHECK_INT(r.code, GRPC_STATUS_UNAVAILABLE);
	CHECK_STR(r.message, "Probe");
	CHECK_INT(r.action, MOCK_ACTION_CLOSE_CONNECTION);
	/* No get_plugin_info hook: the flags decide. */
	CHECK_INT(mock_script_answer(s, MOCK_HOOK_INFO, 1, 0.0, &r, err, sizeof(err)), 0);
	mock_reply_clear(&r);
	mock_script_free(s);
}

/* Each wrong answer is INTERNAL with "probe hook: file: reason"; the next call works. */
static void test_wrong_answers(void)
{
	struct mock_script *s = load("local d = {}\n"
	                             "function d.probe(call)\n"
	                             "  if call.n == 1 then error('boom') end\n"
	                             "  if call.n == 2 then return {colour = 'red'} end\n"
	                             "  if call.n == 3 then return {delay = -1} end\n"
	                             "  if call.n == 4 then return 42 end\n"
	                             "  if call.n == 5 then while true do end end\n"
	                             "  if call.n == 6 then return os.time() end\n"
	                             "  return {ready = true}\n"
	                             "end\n"
	                             "return d\n");
	CHECK(s != NULL);
	if (!s)
		return;
	static const char *const wants[] = {
	        ":3: boom",
	        ": unknown field colour in probe's answer",
	        ": delay must be a number of seconds from 0 to 86400",
	        ": probe must return nil or a plain table, not number",
	        NULL, /* the instruction limit, or the time limit on a loaded machine */
	        ":8: attempt to index a nil value (global 'os')"};
	for (unsigned long n = 1; n <= 6; n++) {
		struct mock_reply r;
		flags_answer(&r);
		CHECK_INT(mock_script_answer(s, MOCK_HOOK_PROBE, n, 0.0, &r, err, sizeof(err)), -1);
		CHECK_INT(r.code, GRPC_STATUS_INTERNAL);
		CHECK(strncmp(r.message, "probe hook: ", 12) == 0);
		CHECK(strstr(r.message, path) != NULL);
		const char *want = wants[n - 1];
		if (want) {
			CHECK(strstr(r.message, want) != NULL);
		} else {
			CHECK(strstr(r.message, ": exceeded the instruction limit") ||
			      strstr(r.message, ": ran out of time"));
		}
		CHECK_STR(err, r.message);
		mock_reply_clear(&r);
	}
	struct mock_reply ok;
	flags_answer(&ok);
	CHECK_INT(mock_script_answer(s, MOCK_HOOK_PROBE, 7, 0.0, &ok, err, sizeof(err)), 1);
	CHECK_INT(ok.code, 0);
	CHECK_INT(ok.ready, MOCK_READY_TRUE);
	mock_reply_clear(&ok);
	mock_script_free(s);
}

static void test_load_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	        {"return 5", "the script must return a plain table of hooks, got number"},
	        {"return {Probe = function() end}", "unknown key Probe in the returned table"},
	        {"return {probe = 3}", "probe must be a function, not number"},
	        {"return setmetatable({}, {})", "the table of hooks must not have a metatable"},
	        {"x = = 1", ":1: unexpected symbol near '='"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(load(cases[i].text) == NULL);
		CHECK(strstr(err, cases[i].want) != NULL);
		CHECK(strncmp(err, path, strlen(path)) == 0);
	}
	CHECK(mock_script_load("/nonexistent/x.lua", err, sizeof(err)) == NULL);
	CHECK(strncmp(err, "cannot read /nonexistent/x.lua: ", 32) == 0);
}

int main(void)
{
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		return 2;
	}
	close(fd);
	test_fields();
	test_wrong_answers();
	test_load_errors();
	unlink(path);
	return testing_result("mock_script");
}
