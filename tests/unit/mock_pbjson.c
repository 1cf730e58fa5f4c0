/*
 * protobuf-c messages as JSON (src/mockdriver/mock_pbjson.c): the CSI
 * messages the mock knows, and a hand-made descriptor holding every scalar
 * type, presence rule and repetition, since no CSI message has them all.
 */
#include "mock_pbjson.h"
#include "testing.h"

#include <stdlib.h>

#include "csi.pb-c.h"

static char *json(const ProtobufCMessage *m)
{
	static char *text;
	size_t len;
	FILE *f;

	free(text);
	f = open_memstream(&text, &len);
	mock_pbjson_write(f, m);
	fclose(f);
	return text;
}

static void test_csi_messages(void)
{
	Csi__V1__NodeGetInfoResponse info = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;
	Csi__V1__Topology topology = CSI__V1__TOPOLOGY__INIT;
	Csi__V1__Topology__SegmentsEntry a = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT,
	                                 b = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT,
	                                 *segments[] = {&a, &b};
	Csi__V1__ProbeRequest empty = CSI__V1__PROBE_REQUEST__INIT;
	Csi__V1__ProbeResponse probe = CSI__V1__PROBE_RESPONSE__INIT;
	Csi__V1__BoolValue no = CSI__V1__BOOL_VALUE__INIT;

	CHECK_STR(json(NULL), "null");
	CHECK_STR(json(&empty.base), "{}");
	CHECK_STR(json(&info.base), "{}"); /* every field at its default */
	info.node_id = "n\"1\xff";
	info.max_volumes_per_node = -5;
	a.key = "zone";
	a.value = "z";
	b.key = "empty";
	topology.n_segments = 2;
	topology.segments = segments;
	info.accessible_topology = &topology;
	CHECK_STR(json(&info.base),
	          "{\"node_id\":\"n\\\"1\\ufffd\",\"max_volumes_per_node\":\"-5\","
	          "\"accessible_topology\":{\"segments\":[{\"key\":\"zone\",\"value\":\"z\"},"
	          "{\"key\":\"empty\"}]}}");
	probe.ready = &no; /* present, value at its default */
	CHECK_STR(json(&probe.base), "{\"ready\":{}}");
}

static void test_oneof_and_enums(void)
{
	Csi__V1__GetPluginCapabilitiesResponse resp =
	        CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__PluginCapability c1 = CSI__V1__PLUGIN_CAPABILITY__INIT,
	                          c2 = CSI__V1__PLUGIN_CAPABILITY__INIT,
	                          c3 = CSI__V1__PLUGIN_CAPABILITY__INIT, *list[] = {&c1, &c2, &c3};
	Csi__V1__PluginCapability__Service s1 = CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT,
	                                   s3 = CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT;
	Csi__V1__PluginCapability__VolumeExpansion x =
	        CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__INIT;

	s1.type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__CONTROLLER_SERVICE;
	x.type = 99; /* newer than our proto */
	c1.type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
	c1.service = &s1;
	c2.type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION;
	c2.volume_expansion = &x;
	c3.type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
	c3.service = &s3; /* UNKNOWN: the default, left out */
	resp.n_capabilities = 3;
	resp.capabilities = list;
	CHECK_STR(json(&resp.base),
	          "{\"capabilities\":[{\"service\":{\"type\":\"CONTROLLER_SERVICE\"}},"
	          "{\"volume_expansion\":{\"type\":99}},{\"service\":{}}]}");
}

/* A message with one field of each kind the CSI messages lack. */
struct every {
	ProtobufCMessage base;
	int32_t i32;
	uint32_t u32;
	uint64_t u64;
	float f;
	double d;
	protobuf_c_boolean b;
	ProtobufCBinaryData bytes;
	protobuf_c_boolean has_opt;
	int32_t opt;
	char *opt_string;
	int32_t req;
	size_t n_rep;
	char **rep;
	struct every *child;
};

#define FIELD(n, i, lab, t, q, member)                                                             \
	{                                                                                          \
		.name = n, .id = i, .label = PROTOBUF_C_LABEL_##lab, .type = PROTOBUF_C_TYPE_##t,  \
		.quantifier_offset = q, .offset = offsetof(struct every, member)                   \
	}

static const ProtobufCMessageDescriptor every_descriptor;
static const ProtobufCFieldDescriptor every_fields[] = {
        FIELD("i32", 1, NONE, SINT32, 0, i32),
        FIELD("u32", 2, NONE, FIXED32, 0, u32),
        FIELD("u64", 3, NONE, UINT64, 0, u64),
        FIELD("f", 4, NONE, FLOAT, 0, f),
        FIELD("d", 5, NONE, DOUBLE, 0, d),
        FIELD("b", 6, NONE, BOOL, 0, b),
        FIELD("bytes", 7, NONE, BYTES, 0, bytes),
        FIELD("opt", 8, OPTIONAL, INT32, offsetof(struct every, has_opt), opt),
        FIELD("opt_string", 9, OPTIONAL, STRING, 0, opt_string),
        FIELD("req", 10, REQUIRED, INT32, 0, req),
        FIELD("rep", 11, REPEATED, STRING, offsetof(struct every, n_rep), rep),
        {.name = "child",
         .id = 12,
         .label = PROTOBUF_C_LABEL_NONE,
         .type = PROTOBUF_C_TYPE_MESSAGE,
         .offset = offsetof(struct every, child),
         .descriptor = &every_descriptor},
};
static const ProtobufCMessageDescriptor every_descriptor = {
        .name = "every", .n_fields = 12, .fields = every_fields};

static void test_every_kind(void)
{
	struct every m = {.base = {.descriptor = &every_descriptor}};
	struct every child = {.base = {.descriptor = &every_descriptor}};
	uint8_t bytes[] = {0xfb, 0xff, 0x00, 'a'};
	char *rep[] = {"x", ""};

	CHECK_STR(json(&m.base), "{\"req\":0}"); /* required: always there */
	m.i32 = -7;
	m.u32 = 4000000000u;
	m.u64 = UINT64_MAX;
	m.f = 0.5f;
	m.d = 1.0 / 3;
	m.b = 1;
	m.bytes = (ProtobufCBinaryData){4, bytes};
	m.has_opt = 1; /* set to its default: still shown */
	m.opt_string = "";
	m.n_rep = 2;
	m.rep = rep;
	m.child = &child;
	child.d = -1.0 / 0.0;
	CHECK_STR(json(&m.base),
	          "{\"i32\":-7,\"u32\":4000000000,\"u64\":\"18446744073709551615\","
	          "\"f\":0.5,\"d\":0.33333333333333331,\"b\":true,\"bytes\":\"+/8AYQ==\","
	          "\"opt\":0,\"opt_string\":\"\",\"req\":0,\"rep\":[\"x\",\"\"],"
	          "\"child\":{\"d\":\"-Infinity\",\"req\":0}}");
	/* base64 of 1 and 2 trailing bytes; NaN. */
	struct every small = {.base = {.descriptor = &every_descriptor}};
	small.bytes = (ProtobufCBinaryData){1, bytes};
	small.d = 0.0 / 0.0;
	CHECK_STR(json(&small.base), "{\"d\":\"NaN\",\"bytes\":\"+w==\",\"req\":0}");
	small.bytes.len = 2;
	small.d = 0;
	CHECK_STR(json(&small.base), "{\"bytes\":\"+/8=\",\"req\":0}");
}

/* A message nested past the limit is cut to null, not followed. */
static void test_depth(void)
{
	struct every chain[MOCK_PBJSON_MAX_DEPTH + 3];
	char *text;
	size_t opened = 0;

	for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++) {
		chain[i] = (struct every){.base = {.descriptor = &every_descriptor}, .req = 1};
		if (i > 0)
			chain[i - 1].child = &chain[i];
	}
	text = json(&chain[0].base);
	for (const char *p = text; *p; p++)
		opened += *p == '{';
	CHECK_INT(opened, MOCK_PBJSON_MAX_DEPTH + 1);
	CHECK(strstr(text, "\"child\":null}") != NULL);
}

int main(void)
{
	test_csi_messages();
	test_oneof_and_enums();
	test_every_kind();
	test_depth();
	return testing_result("mock_pbjson");
}
