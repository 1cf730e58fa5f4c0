/*
 * Capability names (src/mockdriver/mock_caps.c): every name of the
 * generated enums is known, nothing else is, and lists parse as the flags
 * and the README say.
 */
#include "mock_caps.h"
#include "testing.h"

#include "csi.pb-c.h"

static void test_every_enum_name(void)
{
	static const struct {
		enum mock_caps_kind kind;
		const ProtobufCEnumDescriptor *d;
	} enums[] = {
	        {MOCK_CAPS_PLUGIN, &csi__v1__plugin_capability__service__type__descriptor},
	        {MOCK_CAPS_NODE, &csi__v1__node_service_capability__rpc__type__descriptor},
	        {MOCK_CAPS_CONTROLLER,
	         &csi__v1__controller_service_capability__rpc__type__descriptor},
	};
	for (size_t e = 0; e < sizeof(enums) / sizeof(enums[0]); e++) {
		for (unsigned i = 0; i < enums[e].d->n_values; i++) {
			const char *name = enums[e].d->values[i].name;
			CHECK_INT(mock_caps_value(enums[e].kind, name, strlen(name)),
			          enums[e].d->values[i].value);
		}
	}
	const ProtobufCEnumDescriptor *x =
	        &csi__v1__plugin_capability__volume_expansion__type__descriptor;
	for (unsigned i = 0; i < x->n_values; i++) {
		char name[64];
		snprintf(name, sizeof(name), "VOLUME_EXPANSION_%s", x->values[i].name);
		CHECK_INT(mock_caps_value(MOCK_CAPS_PLUGIN, name, strlen(name)),
		          MOCK_CAPS_EXPANSION + x->values[i].value);
		CHECK_INT(mock_caps_value(MOCK_CAPS_NODE, name, strlen(name)), -1);
	}
	CHECK_INT(mock_caps_value(MOCK_CAPS_PLUGIN, "ONLINE", 6), -1);
	CHECK_INT(mock_caps_value(MOCK_CAPS_PLUGIN, "VOLUME_EXPANSION_", 17), -1);
	CHECK_INT(mock_caps_value(MOCK_CAPS_NODE, "CREATE_DELETE_VOLUME", 20), -1);
	CHECK_INT(mock_caps_value(MOCK_CAPS_CONTROLLER, "CREATE_DELETE_VOLUME", 20), 1);
	CHECK_INT(mock_caps_value(MOCK_CAPS_CONTROLLER, "CREATE_DELETE_VOLUMEX", 20), 1); /* len */
	CHECK_INT(mock_caps_value(MOCK_CAPS_CONTROLLER, "create_delete_volume", 20), -1);
}

static void test_names(void)
{
	char buf[512], tiny[12];

	mock_caps_names(MOCK_CAPS_NODE, buf, sizeof(buf));
	CHECK_STR(buf, "UNKNOWN, STAGE_UNSTAGE_VOLUME, GET_VOLUME_STATS, EXPAND_VOLUME, "
	               "VOLUME_CONDITION, SINGLE_NODE_MULTI_WRITER, VOLUME_MOUNT_GROUP");
	mock_caps_names(MOCK_CAPS_PLUGIN, buf, sizeof(buf));
	CHECK(strstr(buf, ", SNAPSHOT_METADATA_SERVICE, VOLUME_EXPANSION_UNKNOWN, "
	                  "VOLUME_EXPANSION_ONLINE, VOLUME_EXPANSION_OFFLINE") != NULL);
	mock_caps_names(MOCK_CAPS_CONTROLLER, tiny, sizeof(tiny)); /* truncated, terminated */
	CHECK_STR(tiny, "UNKNOWN, CR");
}

static void test_parse(void)
{
	struct mock_caps caps = {.n = 99};
	char why[600];

	CHECK(mock_caps_parse(MOCK_CAPS_NODE, "", &caps, why, sizeof(why)) == NULL);
	CHECK_INT(caps.n, 0);
	CHECK(mock_caps_parse(MOCK_CAPS_NODE, "EXPAND_VOLUME,\tGET_VOLUME_STATS ", &caps, why,
	                      sizeof(why)) == NULL);
	CHECK_INT(caps.n, 2);
	CHECK_INT(caps.type[0], 3);
	CHECK_INT(caps.type[1], 2);
	/* Refused: caps unchanged. */
	CHECK_STR(mock_caps_parse(MOCK_CAPS_NODE, " ", &caps, why, sizeof(why)),
	          "empty name in the list");
	CHECK_STR(mock_caps_parse(MOCK_CAPS_NODE, ",EXPAND_VOLUME", &caps, why, sizeof(why)),
	          "empty name in the list");
	CHECK(strncmp(mock_caps_parse(MOCK_CAPS_NODE, "EXPAND_VOLUME,NOPE", &caps, why,
	                              sizeof(why)),
	              "unknown capability NOPE (known: UNKNOWN, ", 40) == 0);
	CHECK_INT(caps.n, 2);
}

int main(void)
{
	test_every_enum_name();
	test_names();
	test_parse();
	return testing_result("mock_caps");
}
