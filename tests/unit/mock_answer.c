/*
 * Answer tables (src/mockdriver/mock_answer.c), read straight from a Lua
 * state: each method's data fields, the OK start of methods without flags,
 * and every field a method cannot take, refused with its reason. Hostile
 * sizes must stop at the caps, not at the memory.
 */
#include "mock_answer.h"
#include "testing.h"

#include <stdlib.h>

#include <grpc/status.h>
#include <lauxlib.h>

#include "mock_config.h"

static lua_State *L;
static char msg[2048];

/* Helpers the answers below may use. */
static const char prelude[] = "local function big(n, map)\n"
                              "  local t = {}\n"
                              "  for i = 1, n do\n"
                              "    if map then t['k' .. i] = 'v' else t[i] = 'GET_VOLUME' end\n"
                              "  end\n"
                              "  return t\n"
                              "end\n"
                              "return ";

/* The flags' answer for method name, then answer (Lua) applied to it: mock_answer_apply's result.
 */
static int apply(const char *name, const char *answer, struct mock_reply *r)
{
	char *argv[] = {"mock", "--node-id=flag-node", NULL};
	struct mock_config cfg;
	FILE *devnull = fopen("/dev/null", "w");
	char *chunk = malloc(sizeof(prelude) + strlen(answer));
	int rc;

	CHECK_INT(mock_config_parse(&cfg, 2, argv, devnull), MOCK_CONFIG_OK);
	fclose(devnull);
	CHECK_INT(mock_reply_from_flags(r, &cfg, csi_method_by_name(name)), 0);
	mock_config_free(&cfg);
	strcpy(chunk, prelude);
	strcat(chunk, answer);
	CHECK_INT(luaL_dostring(L, chunk), LUA_OK);
	free(chunk);
	msg[0] = '\0';
	rc = mock_answer_apply(L, csi_method_by_name(name), r, msg, sizeof(msg));
	CHECK_INT(lua_gettop(L), 1); /* the table stays; nothing else is left */
	lua_settop(L, 0);
	return rc;
}

static void test_common_fields(void)
{
	struct mock_reply r;

	CHECK_INT(apply("Probe",
	                "{code = 'UNAVAILABLE', message = 'm', delay = 0.25, hang = false,\n"
	                " action = 'oversized_response', size = 100, exit_code = 3, ready = false}",
	                &r),
	          0);
	CHECK_INT(r.code, GRPC_STATUS_UNAVAILABLE);
	CHECK_STR(r.message, "m");
	CHECK_INT(r.delay_ns, 250000000);
	CHECK_INT(r.action, MOCK_ACTION_OVERSIZED_RESPONSE);
	CHECK_INT(r.size, 100);
	CHECK_INT(r.exit_code, 3);
	CHECK_INT(r.ready, MOCK_READY_FALSE);
	mock_reply_clear(&r);
	CHECK_INT(apply("Probe", "{code = 9}", &r), 0);
	CHECK_INT(r.code, GRPC_STATUS_FAILED_PRECONDITION);
	mock_reply_clear(&r);
}

static void test_data_fields(void)
{
	struct mock_reply r;

	CHECK_INT(apply("NodeGetInfo",
	                "{node_id = 'n', max_volumes_per_node = 9, topology = {b = '2', a = '1'}}",
	                &r),
	          0);
	CHECK_STR(r.node_id, "n");
	CHECK_INT(r.max_volumes_per_node, 9);
	CHECK_INT(r.topology.n, 2);
	CHECK_STR(r.topology.key[0], "a");
	CHECK_STR(r.topology.value[1], "2");
	mock_reply_clear(&r);
	CHECK_INT(apply("NodeGetInfo", "{}", &r), 0); /* the flags' answer, untouched */
	CHECK_STR(r.node_id, "flag-node");
	CHECK(!r.topology.present);
	mock_reply_clear(&r);
	CHECK_INT(apply("GetPluginInfo", "{name = 'x', vendor_version = ''}", &r), 0);
	CHECK_STR(r.name, "x");
	CHECK_STR(r.vendor_version, "");
	mock_reply_clear(&r);
	CHECK_INT(apply("ControllerGetCapabilities", "{capabilities = big(64)}", &r), 0);
	CHECK_INT(r.caps.n, 64);
	CHECK_INT(r.caps.type[63], 12);
	mock_reply_clear(&r);
	/* Methods without flags start from OK. */
	CHECK_INT(apply("DeleteSnapshot", "{}", &r), 0);
	CHECK_INT(r.code, GRPC_STATUS_OK);
	CHECK_STR(r.message, "");
	mock_reply_clear(&r);
	CHECK_INT(apply("DeleteSnapshot", "{code = 'ABORTED'}", &r), 0);
	CHECK_INT(r.code, GRPC_STATUS_ABORTED);
	mock_reply_clear(&r);
}

/* Data fields on the wrong method, bad names, wrong types, hostile sizes: refused, with why. */
static void test_refused(void)
{
	static const struct {
		const char *method, *answer, *want;
	} cases[] = {
	        {"Probe", "{node_id = 'x'}",
	         "unknown field node_id in probe's answer (a field of node_get_info)"},
	        {"NodeGetInfo", "{ready = true}",
	         "unknown field ready in node_get_info's answer (a field of probe)"},
	        {"NodeGetInfo", "{capabilities = {}}",
	         "unknown field capabilities in node_get_info's answer (a field of "
	         "get_plugin_capabilities, controller_get_capabilities, node_get_capabilities)"},
	        {"NodePublishVolume", "{name = 'x'}",
	         "unknown field name in node_publish_volume's answer (a field of "
	         "get_plugin_info)"},
	        {"NodeGetInfo", "{node_id = 5}", "node_id must be a string, not number"},
	        {"NodeGetInfo", "{node_id = 'a\\0b'}", "node_id must not contain NUL bytes"},
	        {"NodeGetInfo", "{max_volumes_per_node = -1}",
	         "max_volumes_per_node must be an integer from 0 to 9223372036854775807"},
	        {"NodeGetInfo", "{max_volumes_per_node = 1.5}",
	         "max_volumes_per_node must be an integer from 0"},
	        {"NodeGetInfo", "{topology = 'zone=a'}",
	         "topology must be a table of segments (key = value), not string"},
	        {"NodeGetInfo", "{topology = {zone = 1}}",
	         "topology[\"zone\"] must be a string, not number"},
	        {"NodeGetInfo", "{topology = {zone = {deep = {deeper = {}}}}}",
	         "topology[\"zone\"] must be a string, not table"},
	        {"NodeGetInfo", "{topology = {'x'}}",
	         "a topology key must be a string, not number"},
	        {"NodeGetInfo", "{topology = {[''] = 'x'}}", "a topology key must not be empty"},
	        {"NodeGetInfo", "{topology = big(65, true)}", "topology: more than 64 segments"},
	        {"NodeGetInfo", "{topology = big(1e5, true)}", "topology: more than 64 segments"},
	        {"NodeGetCapabilities", "{capabilities = 'GET_VOLUME_STATS'}",
	         "capabilities must be a list of names, not string"},
	        {"NodeGetCapabilities", "{capabilities = {'NOPE'}}",
	         "capabilities: unknown capability NOPE (known: UNKNOWN, STAGE_UNSTAGE_VOLUME, "
	         "GET_VOLUME_STATS, EXPAND_VOLUME, VOLUME_CONDITION, SINGLE_NODE_MULTI_WRITER, "
	         "VOLUME_MOUNT_GROUP)"},
	        {"NodeGetCapabilities", "{capabilities = {'CREATE_DELETE_VOLUME'}}",
	         "capabilities: unknown capability CREATE_DELETE_VOLUME"}, /* a controller's */
	        {"GetPluginCapabilities", "{capabilities = {'VOLUME_EXPANSION_SIDEWAYS'}}",
	         ", VOLUME_EXPANSION_ONLINE, VOLUME_EXPANSION_OFFLINE)"},
	        {"ControllerGetCapabilities", "{capabilities = {{}}}",
	         "capabilities must be a list of names; capabilities[1] is table"},
	        {"ControllerGetCapabilities", "{capabilities = {[2] = 'GET_VOLUME'}}",
	         "capabilities must be a list of names; capabilities[1] is nil"},
	        {"ControllerGetCapabilities", "{capabilities = big(65)}",
	         "capabilities: more than 64 names"},
	        {"ControllerGetCapabilities", "{capabilities = big(1e5)}",
	         "capabilities: more than 64 names"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mock_reply r;

		CHECK_INT(apply(cases[i].method, cases[i].answer, &r), -1);
		if (!strstr(msg, cases[i].want)) {
			CHECK(!"the reason");
			fprintf(stderr, "  got  %s\n  want %s\n", msg, cases[i].want);
		}
		/* r is left as the flags made it. */
		CHECK_INT(r.code,
		          mock_kind_of(csi_method_by_name(cases[i].method)) == MOCK_KIND_OTHER
		                  ? GRPC_STATUS_UNIMPLEMENTED
		                  : GRPC_STATUS_OK);
		mock_reply_clear(&r);
	}
}

int main(void)
{
	L = luaL_newstate();
	test_common_fields();
	test_data_fields();
	test_refused();
	lua_close(L);
	return testing_result("mock_answer");
}
