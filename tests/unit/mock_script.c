/*
 * csi-mock-driver --script (src/mockdriver/mock_script.c): hooks that
 * decide an answer field by field, one per CSI method with its own data
 * fields, and every way a script can be wrong, each answered INTERNAL with
 * its reason, the driver going on.
 */
#include "mock_script.h"
#include "testing.h"

#include <stdlib.h>
#include <unistd.h>

#include "mock_config.h"

#include <grpc/status.h>

static char path[] = "/tmp/lp-mock-script-XXXXXX";
static char err[2048];

static const struct csi_method *method(const char *name)
{
	const struct csi_method *m = csi_method_by_name(name);

	if (!m) {
		fprintf(stderr, "no method %s\n", name);
		abort();
	}
	return m;
}

#define PROBE method("Probe")
#define INFO  method("GetPluginInfo")

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
	CHECK_INT(mock_script_answer(s, PROBE, 1, 0.0, NULL, &r, err, sizeof(err)), 0);
	CHECK_INT(r.code, 0); /* nil: the flags' answer */
	CHECK_INT(mock_script_answer(s, PROBE, 2, 0.0, NULL, &r, err, sizeof(err)), 1);
	CHECK_INT(r.ready, MOCK_READY_FALSE);
	CHECK_INT(r.delay_ns, 250000000);
	CHECK_INT(mock_script_answer(s, PROBE, 3, 0.0, NULL, &r, err, sizeof(err)), 1);
	CHECK_INT(r.code, GRPC_STATUS_UNAVAILABLE);
	CHECK_STR(r.message, "Probe");
	CHECK_INT(r.action, MOCK_ACTION_CLOSE_CONNECTION);
	/* No get_plugin_info hook: the flags decide. */
	CHECK_INT(mock_script_answer(s, INFO, 1, 0.0, NULL, &r, err, sizeof(err)), 0);
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
		CHECK_INT(mock_script_answer(s, PROBE, n, 0.0, NULL, &r, err, sizeof(err)), -1);
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
	CHECK_INT(mock_script_answer(s, PROBE, 7, 0.0, NULL, &ok, err, sizeof(err)), 1);
	CHECK_INT(ok.code, 0);
	CHECK_INT(ok.ready, MOCK_READY_TRUE);
	mock_reply_clear(&ok);
	mock_script_free(s);
}

/* The flags' answer for method name, from the default flags. */
static void default_answer(const char *name, struct mock_reply *r)
{
	char *argv[] = {"mock", "--node-id=flag-node", NULL};
	struct mock_config cfg;
	FILE *devnull = fopen("/dev/null", "w");

	CHECK_INT(mock_config_parse(&cfg, 2, argv, devnull), MOCK_CONFIG_OK);
	fclose(devnull);
	CHECK_INT(mock_reply_from_flags(r, &cfg, method(name)), 0);
	mock_config_free(&cfg);
}

/* Asks name's hook about call n; returns mock_script_answer's result, the answer in r. */
static int ask(struct mock_script *s, const char *name, unsigned long n, struct mock_reply *r)
{
	default_answer(name, r);
	return mock_script_answer(s, method(name), n, 0.0, NULL, r, err, sizeof(err));
}

static void test_method_hooks(void)
{
	struct mock_script *s = load(
	        "local d = {}\n"
	        "function d.node_get_info(call)\n"
	        "  if call.n == 1 then return {node_id = call.method, max_volumes_per_node = 7,\n"
	        "    topology = {zone = 'z1', ['topology.kubernetes.io/region'] = 'r'}} end\n"
	        "  if call.n == 2 then return {topology = {}} end\n"
	        "  return {code = 'UNAVAILABLE', delay = 0.5}\n"
	        "end\n"
	        "function d.get_plugin_capabilities()\n"
	        "  return {capabilities = {'VOLUME_EXPANSION_ONLINE', 'CONTROLLER_SERVICE'}}\n"
	        "end\n"
	        "function d.node_get_capabilities() return {capabilities = {}} end\n"
	        "function d.controller_get_capabilities()\n"
	        "  return {capabilities = {'GET_SNAPSHOT', 'UNKNOWN'}}\n"
	        "end\n"
	        "function d.node_publish_volume(call)\n"
	        "  if call.n == 1 then return nil end\n"
	        "  if call.n == 2 then return {} end\n"
	        "  if call.n == 3 then return {code = 'NOT_FOUND', message = 'no volume'} end\n"
	        "  return {hang = true}\n"
	        "end\n"
	        "return d\n");
	struct mock_reply r;

	CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "load: %s\n", err);
		return;
	}
	CHECK_INT(ask(s, "NodeGetInfo", 1, &r), 1);
	CHECK_INT(r.code, 0);
	CHECK_STR(r.node_id, "NodeGetInfo");
	CHECK_INT(r.max_volumes_per_node, 7);
	CHECK(r.topology.present);
	CHECK_INT(r.topology.n, 2);
	CHECK_STR(r.topology.key[0], "topology.kubernetes.io/region"); /* sorted by key */
	CHECK_STR(r.topology.value[1], "z1");
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "NodeGetInfo", 2, &r), 1);
	CHECK_STR(r.node_id, "flag-node"); /* not overridden */
	CHECK(r.topology.present);         /* {}: an empty Topology, not none */
	CHECK_INT(r.topology.n, 0);
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "NodeGetInfo", 3, &r), 1);
	CHECK_INT(r.code, GRPC_STATUS_UNAVAILABLE);
	CHECK_INT(r.delay_ns, 500000000);
	mock_reply_clear(&r);

	CHECK_INT(ask(s, "GetPluginCapabilities", 1, &r), 1);
	CHECK_INT(r.caps.n, 2);
	CHECK_INT(r.caps.type[0], MOCK_CAPS_EXPANSION + 1);
	CHECK_INT(r.caps.type[1], 1);
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "NodeGetCapabilities", 1, &r), 1);
	CHECK_INT(r.caps.n, 0);
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "ControllerGetCapabilities", 1, &r), 1);
	CHECK_INT(r.caps.n, 2);
	CHECK_INT(r.caps.type[0], 15);
	CHECK_INT(r.caps.type[1], 0);
	mock_reply_clear(&r);

	/* A method without flags: nil keeps UNIMPLEMENTED, a table starts from OK. */
	CHECK_INT(ask(s, "NodePublishVolume", 1, &r), 0);
	CHECK_INT(r.code, GRPC_STATUS_UNIMPLEMENTED);
	CHECK(strstr(r.message, "NodePublishVolume") && strstr(r.message, "node_publish_volume"));
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "NodePublishVolume", 2, &r), 1);
	CHECK_INT(r.code, 0);
	CHECK_STR(r.message, "");
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "NodePublishVolume", 3, &r), 1);
	CHECK_INT(r.code, GRPC_STATUS_NOT_FOUND);
	CHECK_STR(r.message, "no volume");
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "NodePublishVolume", 4, &r), 1);
	CHECK(r.hang);
	mock_reply_clear(&r);

	/* No hook: the flags decide. */
	CHECK_INT(ask(s, "DeleteVolume", 1, &r), 0);
	CHECK_INT(r.code, GRPC_STATUS_UNIMPLEMENTED);
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "Probe", 1, &r), 0);
	mock_reply_clear(&r);
	mock_script_free(s);
}

/* An answer the hook's method cannot take is INTERNAL, with the reason (mock_answer.h has all). */
/*
 * call.request: the request's fields by number, from its wire bytes (no
 * schema): strings for length-delimited fields, integers otherwise, the
 * first of a repeated field; nil without a request or for bytes that are
 * no message. And, proxying (mock_proxy.h), what a table means.
 */
static void test_request_and_forwarding(void)
{
	struct mock_script *s = load(
	        "local d = {}\n"
	        "function d.node_publish_volume(call)\n"
	        "  local r = call.request\n"
	        "  if r == nil then return {code = 'INVALID_ARGUMENT', message = 'none'} end\n"
	        "  return {code = 'NOT_FOUND', message = string.format('%s %s %s %s', r[1], r[2],\n"
	        "    math.type(r[3]), tostring(r[9]))}\n"
	        "end\n"
	        "function d.probe(call)\n"
	        "  if call.n == 1 then return {} end\n"
	        "  if call.n == 2 then return {delay = 0.25} end\n"
	        "  if call.n == 3 then return {code = 'UNAVAILABLE'} end\n"
	        "  if call.n == 4 then return {forward = true, code = 'INTERNAL', message = 'x'} "
	        "end\n"
	        "  return {forward = false}\n"
	        "end\n"
	        "return d\n");
	struct mock_reply r;
	/* field 1 "vol-1", field 1 again (ignored), field 2 varint 7, field 3 fixed32 */
	static const uint8_t wire[] = {0x0a, 5,    'v', 'o',  'l', '-', '1', 0x0a, 1,
	                               'x',  0x10, 7,   0x1d, 1,   0,   0,   0};
	struct mock_request req = {wire, sizeof(wire)};
	default_answer("NodePublishVolume", &r);
	CHECK_INT(mock_script_answer(s, method("NodePublishVolume"), 1, 0.0, &req, &r, err,
	                             sizeof(err)),
	          1);
	CHECK_STR(r.message, "vol-1 7 integer nil");
	mock_reply_clear(&r);
	static const uint8_t bad[] = {0x0a, 9, 'c', 'u', 't'}; /* a length past the end */
	struct mock_request cut = {bad, sizeof(bad)};
	default_answer("NodePublishVolume", &r);
	mock_script_answer(s, method("NodePublishVolume"), 2, 0.0, &cut, &r, err, sizeof(err));
	CHECK_STR(r.message, "none");
	mock_reply_clear(&r);

	/* Proxying: the flags' answer forwards; a table keeps forwarding unless it answers. */
	static const struct {
		bool forward, replace;
		int code;
		int64_t delay_ns;
	} want[] = {
	        {true, false, 0, 0},         /* {} */
	        {true, false, 0, 250000000}, /* a delay, then forwarded */
	        {false, false, 14, 0},       /* answered instead */
	        {true, true, 13, 0},         /* forwarded, status replaced */
	        {false, false, 0, 0},        /* answered as the mock would */
	};
	char *argv[] = {"mock", "--csi-address=/tmp/a.sock", "--proxy-to=/tmp/b.sock", NULL};
	struct mock_config cfg;
	FILE *devnull = fopen("/dev/null", "w");
	CHECK_INT(mock_config_parse(&cfg, 3, argv, devnull), MOCK_CONFIG_OK);
	fclose(devnull);
	for (unsigned long n = 1; n <= 5; n++) {
		CHECK_INT(mock_reply_from_flags(&r, &cfg, method("Probe")), 0);
		CHECK(r.forward);
		CHECK_INT(
		        mock_script_answer(s, method("Probe"), n, 0.0, NULL, &r, err, sizeof(err)),
		        1);
		CHECK_INT(r.forward, want[n - 1].forward);
		CHECK_INT(r.replace, want[n - 1].replace);
		CHECK_INT(r.code, want[n - 1].code);
		CHECK(r.delay_ns == want[n - 1].delay_ns);
		mock_reply_clear(&r);
	}
	mock_config_free(&cfg);
	/* Without --proxy-to there is nowhere to forward to: the hook's answer is an error. */
	default_answer("Probe", &r);
	CHECK_INT(mock_script_answer(s, method("Probe"), 4, 0.0, NULL, &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "forward = true needs --proxy-to") != NULL);
	mock_reply_clear(&r);
	mock_script_free(s);
}

static void test_data_field_errors(void)
{
	struct mock_script *s = load("return {probe = function() return {node_id = 'x'} end,\n"
	                             "  node_get_capabilities = function()\n"
	                             "    return {capabilities = {'CREATE_DELETE_VOLUME'}} end}\n");
	struct mock_reply r;

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(ask(s, "Probe", 1, &r), -1);
	CHECK_INT(r.code, GRPC_STATUS_INTERNAL);
	CHECK_STR(err, r.message);
	CHECK(strncmp(r.message, "probe hook: ", 12) == 0);
	CHECK(strstr(r.message,
	             ": unknown field node_id in probe's answer (a field of node_get_info)"));
	mock_reply_clear(&r);
	CHECK_INT(ask(s, "NodeGetCapabilities", 1, &r), -1);
	CHECK(strncmp(r.message, "node_get_capabilities hook: ", 28) == 0);
	CHECK(strstr(r.message,
	             ": capabilities: unknown capability CREATE_DELETE_VOLUME (known: "));
	mock_reply_clear(&r);
	mock_script_free(s);
}

static void test_load_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	        {"return 5", "the script must return a plain table of hooks, got number"},
	        {"return {Probe = function() end}",
	         "unknown key Probe in the returned table (did you mean probe?)"},
	        {"return {NodeGetInfo = function() end}",
	         "unknown key NodeGetInfo in the returned table (did you mean node_get_info?)"},
	        {"return {frobnicate = function() end}",
	         "unknown key frobnicate in the returned table (hooks are CSI method names in "
	         "snake "
	         "case: probe, get_plugin_info, node_get_info, ...)"},
	        {"return {[1] = function() end}", "unknown key number in the returned table"},
	        {"return {node_get_info = true}", "node_get_info must be a function, not boolean"},
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
	test_method_hooks();
	test_request_and_forwarding();
	test_data_field_errors();
	test_load_errors();
	unlink(path);
	return testing_result("mock_script");
}
