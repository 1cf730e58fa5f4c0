/*
 * csi-mock-driver's answers (src/mockdriver/mock_reply.c, mock_config.c):
 * what the flags say each method answers, an error answer replacing one,
 * the kind of each method, and the action names a script may use.
 */
#include "mock_config.h"
#include "mock_reply.h"
#include "testing.h"

#include <grpc/status.h>

static int parse(struct mock_config *cfg, char **argv, int argc)
{
	FILE *devnull = fopen("/dev/null", "w");
	int rc = mock_config_parse(cfg, argc, argv, devnull);
	fclose(devnull);
	return rc;
}

static void test_from_flags(void)
{
	char *argv[] = {"mock",
	                "--csi-address=unix:///tmp/x.sock",
	                "--ready=false",
	                "--probe-code=FailedPrecondition",
	                "--probe-message=broken",
	                "--probe-delay=300ms",
	                "--info-hang",
	                "--name=",
	                NULL};
	struct mock_config cfg;
	CHECK_INT(parse(&cfg, argv, 8), MOCK_CONFIG_OK);
	CHECK_STR(cfg.socket_path, "/tmp/x.sock");

	struct mock_reply r;
	CHECK_INT(mock_reply_from_flags(&r, &cfg, csi_method_by_name("Probe")), 0);
	CHECK_INT(r.code, GRPC_STATUS_FAILED_PRECONDITION);
	CHECK_STR(r.message, "broken");
	CHECK_INT(r.delay_ns, 300000000);
	CHECK(!r.hang);
	CHECK_INT(r.ready, MOCK_READY_FALSE);
	CHECK_INT(r.action, MOCK_ACTION_NONE);
	CHECK_INT(r.size, MOCK_OVERSIZED_DEFAULT);
	mock_reply_clear(&r);

	CHECK_INT(mock_reply_from_flags(&r, &cfg, csi_method_by_name("GetPluginInfo")), 0);
	CHECK_INT(r.code, 0);
	CHECK(r.hang);
	CHECK_STR(r.name, ""); /* empty on purpose */
	CHECK_STR(r.vendor_version, "0.1.0");

	/* An error answer replaces everything, and leaves nothing to leak. */
	mock_reply_set_error(&r, "probe hook: x.lua:1: boom");
	CHECK_INT(r.code, GRPC_STATUS_INTERNAL);
	CHECK_STR(r.message, "probe hook: x.lua:1: boom");
	CHECK(!r.hang);
	CHECK_INT(r.delay_ns, 0);
	mock_reply_clear(&r);
	mock_reply_clear(&r); /* twice is fine */
	mock_config_free(&cfg);
}

static void test_bad_flags(void)
{
	struct mock_config cfg;
	char *unknown[] = {"mock", "--nope", NULL};
	CHECK_INT(parse(&cfg, unknown, 2), MOCK_CONFIG_BAD_FLAG);
	char *positional[] = {"mock", "extra", NULL};
	CHECK_INT(parse(&cfg, positional, 2), MOCK_CONFIG_BAD_FLAG);
	char *code[] = {"mock", "--probe-code=NOPE", NULL};
	CHECK_INT(parse(&cfg, code, 2), MOCK_CONFIG_BAD_FLAG);
	char *delay[] = {"mock", "--probe-delay=-1s", NULL};
	CHECK_INT(parse(&cfg, delay, 2), MOCK_CONFIG_BAD_FLAG);
	char *relative[] = {"mock", "--csi-address=unix://relative", NULL};
	CHECK_INT(parse(&cfg, relative, 2), MOCK_CONFIG_BAD_FLAG);
	char *tcp[] = {"mock", "--csi-address=dns:///x:1", NULL};
	CHECK_INT(parse(&cfg, tcp, 2), MOCK_CONFIG_BAD_FLAG);
	char *help[] = {"mock", "-h", NULL};
	CHECK_INT(parse(&cfg, help, 2), MOCK_CONFIG_HELP);
	/* Go's syntax: one dash, separate value, "--" ends the flags. */
	char *go[] = {"mock", "-csi-address", "/tmp/y.sock", "-quiet", "--", NULL};
	CHECK_INT(parse(&cfg, go, 5), MOCK_CONFIG_OK);
	CHECK_STR(cfg.socket_path, "/tmp/y.sock");
	CHECK(cfg.quiet);
	mock_config_free(&cfg);
}

/* The read-only calls answer OK at once with their flags' data; the rest UNIMPLEMENTED. */
static void test_other_methods(void)
{
	char *argv[] = {"mock",
	                "--node-id=n1",
	                "--max-volumes-per-node=3",
	                "--topology=zone=a",
	                "--node-capabilities=",
	                "--probe-code=INTERNAL",
	                NULL};
	struct mock_config cfg;
	struct mock_reply r;

	CHECK_INT(parse(&cfg, argv, 6), MOCK_CONFIG_OK);
	CHECK_INT(mock_reply_from_flags(&r, &cfg, csi_method_by_name("NodeGetInfo")), 0);
	CHECK_INT(r.code, 0);
	CHECK_STR(r.message, "");
	CHECK_INT(r.delay_ns, 0);
	CHECK_STR(r.node_id, "n1");
	CHECK_INT(r.max_volumes_per_node, 3);
	CHECK(r.topology.present);
	CHECK_STR(r.topology.key[0], "zone");
	CHECK(r.topology.key[0] != cfg.topology.key[0]); /* a copy: the reply owns it */
	mock_reply_clear(&r);

	CHECK_INT(mock_reply_from_flags(&r, &cfg, csi_method_by_name("NodeGetCapabilities")), 0);
	CHECK_INT(r.caps.n, 0);
	mock_reply_clear(&r);
	CHECK_INT(mock_reply_from_flags(&r, &cfg, csi_method_by_name("GetPluginCapabilities")), 0);
	CHECK_INT(r.caps.n, 1);
	CHECK_INT(r.caps.type[0], 1); /* CONTROLLER_SERVICE */
	mock_reply_clear(&r);
	CHECK_INT(mock_reply_from_flags(&r, &cfg, csi_method_by_name("ControllerGetCapabilities")),
	          0);
	CHECK_INT(r.caps.n, 2);
	mock_reply_clear(&r);

	CHECK_INT(mock_reply_from_flags(&r, &cfg, csi_method_by_name("CreateVolume")), 0);
	CHECK_INT(r.code, GRPC_STATUS_UNIMPLEMENTED);
	CHECK_STR(r.message, "csi-mock-driver does not implement CreateVolume "
	                     "(a --script hook create_volume can answer it)");
	mock_reply_clear(&r);
	mock_config_free(&cfg);
}

static void test_kinds(void)
{
	CHECK_INT(mock_kind_of(csi_method_by_name("Probe")), MOCK_KIND_PROBE);
	CHECK_INT(mock_kind_of(csi_method_by_name("GetPluginInfo")), MOCK_KIND_INFO);
	CHECK_INT(mock_kind_of(csi_method_by_name("GetPluginCapabilities")), MOCK_KIND_PLUGIN_CAPS);
	CHECK_INT(mock_kind_of(csi_method_by_name("NodeGetInfo")), MOCK_KIND_NODE_INFO);
	CHECK_INT(mock_kind_of(csi_method_by_name("NodeGetCapabilities")), MOCK_KIND_NODE_CAPS);
	CHECK_INT(mock_kind_of(csi_method_by_name("ControllerGetCapabilities")),
	          MOCK_KIND_CONTROLLER_CAPS);
	CHECK_INT(mock_kind_of(csi_method_by_name("NodePublishVolume")), MOCK_KIND_OTHER);
	CHECK_INT(mock_kind_of(NULL), MOCK_KIND_OTHER);
	CHECK_INT(mock_kind_caps(MOCK_KIND_NODE_CAPS), MOCK_CAPS_NODE);
	for (size_t i = 0; i < csi_method_count(); i++)
		CHECK_INT(mock_method_index(csi_method_at(i)), i);
}

static void test_actions(void)
{
	CHECK_INT(mock_action_parse("exit"), MOCK_ACTION_EXIT);
	CHECK_INT(mock_action_parse("oversized_response"), MOCK_ACTION_OVERSIZED_RESPONSE);
	CHECK_INT(mock_action_parse("close_connection"), MOCK_ACTION_CLOSE_CONNECTION);
	CHECK_INT(mock_action_parse("explode"), -1);
	CHECK_INT(mock_action_parse(""), -1);
}

int main(void)
{
	test_from_flags();
	test_bad_flags();
	test_other_methods();
	test_kinds();
	test_actions();
	return testing_result("mock_reply");
}
