/*
 * Response messages (src/mockdriver/mock_response.c): the wire bytes of
 * each method's answer, which the method's reply type reads back, and the
 * invalid and oversized variants.
 */
#include "mock_response.h"
#include "testing.h"

#include <stdlib.h>

#include "csi.pb-c.h"

static char hex[1024];

/* m's answer r as hex; also checks that m's reply type (if any) reads it. */
static const char *bytes(const char *method, const struct mock_reply *r)
{
	const struct csi_method *m = csi_method_by_name(method);
	grpc_slice s = mock_response_bytes(m, r);
	size_t len = GRPC_SLICE_LENGTH(s);

	hex[0] = '\0';
	for (size_t i = 0; i < len && 2 * i + 2 < sizeof(hex); i++)
		snprintf(hex + 2 * i, 3, "%02x", GRPC_SLICE_START_PTR(s)[i]);
	if (m->reply && r->action != MOCK_ACTION_INVALID_RESPONSE) {
		ProtobufCMessage *back =
		        protobuf_c_message_unpack(m->reply, NULL, len, GRPC_SLICE_START_PTR(s));
		CHECK(back != NULL);
		if (back)
			protobuf_c_message_free_unpacked(back, NULL);
	}
	grpc_slice_unref(s);
	return hex;
}

static void test_identity(void)
{
	struct mock_reply r = {0};

	CHECK_STR(bytes("Probe", &r), ""); /* ready unset: no field */
	r.ready = MOCK_READY_TRUE;
	CHECK_STR(bytes("Probe", &r), "0a020801");
	r.ready = MOCK_READY_FALSE;
	CHECK_STR(bytes("Probe", &r), "0a00");
	r.name = "ab";
	CHECK_STR(bytes("GetPluginInfo", &r), "0a026162"); /* vendor_version NULL: "" */
	r.caps = (struct mock_caps){2, {1, MOCK_CAPS_EXPANSION + 1}};
	CHECK_STR(bytes("GetPluginCapabilities", &r), "0a040a0208010a0412020801");
}

static void test_node_and_controller(void)
{
	struct mock_reply r = {0};
	char why[96];

	CHECK_STR(bytes("NodeGetInfo", &r), ""); /* node_id NULL: "", no topology */
	r.node_id = "n";
	r.max_volumes_per_node = 3;
	r.topology.present = true;
	CHECK_STR(bytes("NodeGetInfo", &r), "0a016e10031a00");
	CHECK(mock_topology_parse("z=1", &r.topology, why, sizeof(why)) == NULL);
	CHECK_STR(bytes("NodeGetInfo", &r), "0a016e10031a080a060a017a120131");
	mock_topology_clear(&r.topology);
	r.caps = (struct mock_caps){2, {2, 0}};
	CHECK_STR(bytes("NodeGetCapabilities", &r), "0a040a0208020a020a00");
	r.caps = (struct mock_caps){1, {15}};
	CHECK_STR(bytes("ControllerGetCapabilities", &r), "0a040a02080f");
	r.caps.n = 0;
	CHECK_STR(bytes("ControllerGetCapabilities", &r), "");
}

static void test_other_and_actions(void)
{
	struct mock_reply r = {0};

	CHECK_STR(bytes("NodePublishVolume", &r), ""); /* the empty message */
	r.action = MOCK_ACTION_INVALID_RESPONSE;
	CHECK_STR(bytes("NodePublishVolume", &r), "0a0508");
	CHECK_STR(bytes("Probe", &r), "0a0508");
	r.action = MOCK_ACTION_OVERSIZED_RESPONSE;
	r.size = 100;
	/* 100 bytes: tag 7a, length 0x62 (98), 98 zero bytes. */
	char want[201] = "7a62";
	for (int i = 0; i < 98; i++)
		strcat(want, "00");
	CHECK_STR(bytes("NodePublishVolume", &r), want);
	r.node_id = "n";
	r.size = 10;
	CHECK_STR(bytes("NodeGetInfo", &r), "0a016e7a050000000000");
	r.size = 1; /* smaller than the message: unpadded */
	CHECK_STR(bytes("NodeGetInfo", &r), "0a016e");
}

int main(void)
{
	test_identity();
	test_node_and_controller();
	test_other_and_actions();
	return testing_result("mock_response");
}
