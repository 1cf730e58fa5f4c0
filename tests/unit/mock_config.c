/*
 * csi-mock-driver's command line (src/mockdriver/mock_config.c): the flags
 * of the read-only calls' data, their defaults, and each bad value refused
 * with Go's message.
 */
#include "mock_config.h"
#include "testing.h"

#include <stdlib.h>
#include <unistd.h>

static char messages[8192];

/* Parses argv (NULL-terminated); what the parser printed lands in messages. */
static int parse(struct mock_config *cfg, char **argv)
{
	int argc = 0;
	FILE *f = tmpfile();
	size_t n;
	int rc;

	while (argv[argc])
		argc++;
	rc = mock_config_parse(cfg, argc, argv, f);
	rewind(f);
	n = fread(messages, 1, sizeof(messages) - 1, f);
	messages[n] = '\0';
	fclose(f);
	return rc;
}

static void test_defaults(void)
{
	char *argv[] = {"mock", NULL};
	char host[256] = "";
	struct mock_config cfg;

	CHECK_INT(parse(&cfg, argv), MOCK_CONFIG_OK);
	gethostname(host, sizeof(host) - 1);
	CHECK_STR(cfg.node_id, host[0] ? host : "localhost");
	CHECK(cfg.node_id[0] != '\0');
	CHECK_INT(cfg.max_volumes_per_node, 0);
	CHECK(!cfg.topology.present);
	CHECK_INT(cfg.plugin_caps.n, 1);
	CHECK_INT(cfg.plugin_caps.type[0], 1); /* CONTROLLER_SERVICE */
	CHECK_INT(cfg.node_caps.n, 2);
	CHECK_INT(cfg.node_caps.type[0], 1); /* STAGE_UNSTAGE_VOLUME */
	CHECK_INT(cfg.node_caps.type[1], 2); /* GET_VOLUME_STATS */
	CHECK_INT(cfg.controller_caps.n, 2);
	CHECK_INT(cfg.controller_caps.type[0], 1); /* CREATE_DELETE_VOLUME */
	CHECK_INT(cfg.controller_caps.type[1], 2); /* PUBLISH_UNPUBLISH_VOLUME */
	CHECK(cfg.call_log_path == NULL);
	mock_config_free(&cfg);
}

static void test_values(void)
{
	char *argv[] = {"mock",
	                "--node-id=",
	                "--max-volumes-per-node=0x10",
	                "--topology=zone=a",
	                "--topology=zone=b,region=r=1", /* the last one counts */
	                "--plugin-capabilities= VOLUME_ACCESSIBILITY_CONSTRAINTS ,"
	                "VOLUME_EXPANSION_OFFLINE,UNKNOWN",
	                "--node-capabilities=",
	                "-controller-capabilities",
	                "GET_SNAPSHOT,GET_SNAPSHOT",
	                "--call-log=/tmp/calls.jsonl",
	                NULL};
	struct mock_config cfg;

	CHECK_INT(parse(&cfg, argv), MOCK_CONFIG_OK);
	CHECK_STR(cfg.node_id, ""); /* empty on purpose */
	CHECK_INT(cfg.max_volumes_per_node, 16);
	CHECK(cfg.topology.present);
	CHECK_INT(cfg.topology.n, 2);
	CHECK_STR(cfg.topology.key[0], "region");
	CHECK_STR(cfg.topology.value[0], "r=1");
	CHECK_STR(cfg.topology.key[1], "zone");
	CHECK_STR(cfg.topology.value[1], "b");
	CHECK_INT(cfg.plugin_caps.n, 3);
	CHECK_INT(cfg.plugin_caps.type[0], 2);
	CHECK_INT(cfg.plugin_caps.type[1], MOCK_CAPS_EXPANSION + 2);
	CHECK_INT(cfg.plugin_caps.type[2], 0);
	CHECK_INT(cfg.node_caps.n, 0);
	CHECK_INT(cfg.controller_caps.n, 2); /* repeated on purpose: the wire allows it */
	CHECK_INT(cfg.controller_caps.type[1], 15);
	CHECK_STR(cfg.call_log_path, "/tmp/calls.jsonl");
	mock_config_free(&cfg);
	mock_config_free(&cfg); /* twice is fine */
}

static void test_bad_values(void)
{
	static const struct {
		const char *arg, *want;
	} cases[] = {
	        {"--max-volumes-per-node=-1",
	         "invalid value \"-1\" for flag -max-volumes-per-node: must be at least 0\n"},
	        {"--max-volumes-per-node=many",
	         "invalid value \"many\" for flag -max-volumes-per-node: parse error\n"},
	        {"--topology=zone",
	         "invalid value \"zone\" for flag -topology: want key=value, got "
	         "\"zone\"\n"},
	        {"--topology==a", "want key=value, got \"=a\"\n"},
	        {"--topology=zone=a,", "want key=value, got \"\"\n"},
	        {"--topology=zone=a,zone=b", ": duplicate key zone\n"},
	        {"--node-capabilities=NOPE",
	         "invalid value \"NOPE\" for flag -node-capabilities: unknown capability NOPE "
	         "(known: UNKNOWN, STAGE_UNSTAGE_VOLUME, GET_VOLUME_STATS, EXPAND_VOLUME, "
	         "VOLUME_CONDITION, SINGLE_NODE_MULTI_WRITER, VOLUME_MOUNT_GROUP)\n"},
	        {"--plugin-capabilities=ONLINE",
	         "(known: UNKNOWN, CONTROLLER_SERVICE, VOLUME_ACCESSIBILITY_CONSTRAINTS, "
	         "GROUP_CONTROLLER_SERVICE, SNAPSHOT_METADATA_SERVICE, VOLUME_EXPANSION_UNKNOWN, "
	         "VOLUME_EXPANSION_ONLINE, VOLUME_EXPANSION_OFFLINE)\n"},
	        {"--controller-capabilities=create_delete_volume",
	         "unknown capability create_delete_volume"},
	        {"--controller-capabilities=GET_VOLUME,,GET_SNAPSHOT",
	         ": empty name in the list\n"},
	        {"--controller-capabilities=GET_VOLUME,", ": empty name in the list\n"},
	};
	char many[2048] = "--node-capabilities=";

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"mock", (char *)cases[i].arg, NULL};
		struct mock_config cfg;

		CHECK_INT(parse(&cfg, argv), MOCK_CONFIG_BAD_FLAG);
		if (!strstr(messages, cases[i].want)) {
			CHECK(!"the message");
			fprintf(stderr, "  %s:\n  got  %.300s\n  want %s\n", cases[i].arg, messages,
			        cases[i].want);
		}
		CHECK(strstr(messages, "Usage of csi-mock-driver:") != NULL);
	}
	for (int i = 0; i < 65; i++)
		strcat(many, i ? ",EXPAND_VOLUME" : "EXPAND_VOLUME");
	char *argv[] = {"mock", many, NULL};
	struct mock_config cfg;
	CHECK_INT(parse(&cfg, argv), MOCK_CONFIG_BAD_FLAG);
	CHECK(strstr(messages, ": more than 64 names\n") != NULL);
	many[strlen(many) - strlen(",EXPAND_VOLUME")] = '\0'; /* 64 */
	CHECK_INT(parse(&cfg, argv), MOCK_CONFIG_OK);
	CHECK_INT(cfg.node_caps.n, 64);
	mock_config_free(&cfg);
}

static void test_usage(void)
{
	char *argv[] = {"mock", "-help", NULL};
	struct mock_config cfg;

	CHECK_INT(parse(&cfg, argv), MOCK_CONFIG_HELP);
	CHECK(strstr(messages, "  -node-id string\n    \tNodeGetInfo node_id, may be empty "
	                       "(default: the host name)\n") != NULL);
	CHECK(strstr(messages, "(default STAGE_UNSTAGE_VOLUME,GET_VOLUME_STATS)\n") != NULL);
	CHECK(strstr(messages, "(default CREATE_DELETE_VOLUME,PUBLISH_UNPUBLISH_VOLUME)\n") !=
	      NULL);
	CHECK(strstr(messages, "  -plugin-capabilities list\n") != NULL);
	CHECK(strstr(messages, "  -topology string\n") != NULL);
	CHECK(strstr(messages, "  -max-volumes-per-node int\n") != NULL);
	CHECK(strstr(messages, "  -call-log string\n") != NULL);
}

int main(void)
{
	test_defaults();
	test_values();
	test_bad_values();
	test_usage();
	return testing_result("mock_config");
}
