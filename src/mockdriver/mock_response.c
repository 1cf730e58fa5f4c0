/*
 * Response messages (mock_response.h). Each builder fills the generated
 * protobuf-c structs on its own stack, pointing at the reply's strings
 * (protobuf-c's pack only reads them), and packs them at once.
 */
#include "mock_response.h"

#include <string.h>

#include "csi.pb-c.h"

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * m packed (NULL: the empty message), then padded with one unknown
 * length-delimited field (number 15, tag byte 0x7a) to total bytes, or one
 * more where the varint's width makes total itself impossible: still a
 * valid message, just too large. A total smaller than the message leaves it
 * unpadded.
 */
static grpc_slice pack_padded(const ProtobufCMessage *m, size_t total)
{
	size_t len = m ? protobuf_c_message_get_packed_size(m) : 0, body = 0, width = 0, t, w;
	grpc_slice out;
	uint8_t *p;

	for (t = total; t <= total + 1 && !width; t++) {
		for (w = 1; w <= 10 && !width; w++) {
			if (t >= len + 1 + w && varint_len(t - len - 1 - w) == w) {
				width = w;
				body = t - len - 1 - w;
			}
		}
	}
	out = grpc_slice_malloc(width ? len + 1 + width + body : len);
	p = GRPC_SLICE_START_PTR(out);
	if (m)
		p += protobuf_c_message_pack(m, p);
	if (width) {
		*p++ = 0x7a;
		for (t = body; t >= 0x80; t >>= 7)
			*p++ = (uint8_t)(t | 0x80);
		*p++ = (uint8_t)t;
		memset(p, 0, body);
	}
	return out;
}

/*
 * ready: unset leaves the field out (0 bytes); false sets it to a BoolValue
 * whose value is the proto3 default and so not sent, giving exactly 0a 00
 * (UPSTREAM.md §6).
 */
static grpc_slice probe_bytes(const struct mock_reply *r, size_t pad)
{
	Csi__V1__BoolValue ready = CSI__V1__BOOL_VALUE__INIT;
	Csi__V1__ProbeResponse probe = CSI__V1__PROBE_RESPONSE__INIT;

	if (r->ready != MOCK_READY_UNSET) {
		ready.value = r->ready == MOCK_READY_TRUE;
		probe.ready = &ready;
	}
	return pack_padded(&probe.base, pad);
}

static grpc_slice info_bytes(const struct mock_reply *r, size_t pad)
{
	Csi__V1__GetPluginInfoResponse info = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;

	info.name = r->name ? r->name : "";
	info.vendor_version = r->vendor_version ? r->vendor_version : "";
	return pack_padded(&info.base, pad);
}

/* Service types as they are; volume expansion types offset by MOCK_CAPS_EXPANSION (mock_caps.h). */
static grpc_slice plugin_caps_bytes(const struct mock_reply *r, size_t pad)
{
	Csi__V1__GetPluginCapabilitiesResponse resp =
	        CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__PluginCapability caps[MOCK_CAPS_MAX], *list[MOCK_CAPS_MAX];
	Csi__V1__PluginCapability__Service services[MOCK_CAPS_MAX];
	Csi__V1__PluginCapability__VolumeExpansion expansions[MOCK_CAPS_MAX];

	for (size_t i = 0; i < r->caps.n; i++) {
		int type = r->caps.type[i];

		caps[i] = (Csi__V1__PluginCapability)CSI__V1__PLUGIN_CAPABILITY__INIT;
		if (type >= MOCK_CAPS_EXPANSION) {
			expansions[i] = (Csi__V1__PluginCapability__VolumeExpansion)
			        CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__INIT;
			expansions[i].type = type - MOCK_CAPS_EXPANSION;
			caps[i].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION;
			caps[i].volume_expansion = &expansions[i];
		} else {
			services[i] = (Csi__V1__PluginCapability__Service)
			        CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT;
			services[i].type = type;
			caps[i].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
			caps[i].service = &services[i];
		}
		list[i] = &caps[i];
	}
	resp.n_capabilities = r->caps.n;
	resp.capabilities = list;
	return pack_padded(&resp.base, pad);
}

static grpc_slice node_info_bytes(const struct mock_reply *r, size_t pad)
{
	Csi__V1__NodeGetInfoResponse info = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;
	Csi__V1__Topology topology = CSI__V1__TOPOLOGY__INIT;
	Csi__V1__Topology__SegmentsEntry segments[MOCK_TOPOLOGY_MAX], *list[MOCK_TOPOLOGY_MAX];

	info.node_id = r->node_id ? r->node_id : "";
	info.max_volumes_per_node = r->max_volumes_per_node;
	if (r->topology.present) {
		for (size_t i = 0; i < r->topology.n; i++) {
			segments[i] = (Csi__V1__Topology__SegmentsEntry)
			        CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT;
			segments[i].key = r->topology.key[i];
			segments[i].value = r->topology.value[i];
			list[i] = &segments[i];
		}
		topology.n_segments = r->topology.n;
		topology.segments = list;
		info.accessible_topology = &topology;
	}
	return pack_padded(&info.base, pad);
}

static grpc_slice node_caps_bytes(const struct mock_reply *r, size_t pad)
{
	Csi__V1__NodeGetCapabilitiesResponse resp = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__NodeServiceCapability caps[MOCK_CAPS_MAX], *list[MOCK_CAPS_MAX];
	Csi__V1__NodeServiceCapability__RPC rpcs[MOCK_CAPS_MAX];

	for (size_t i = 0; i < r->caps.n; i++) {
		rpcs[i] = (Csi__V1__NodeServiceCapability__RPC)
		        CSI__V1__NODE_SERVICE_CAPABILITY__RPC__INIT;
		rpcs[i].type = r->caps.type[i];
		caps[i] = (Csi__V1__NodeServiceCapability)CSI__V1__NODE_SERVICE_CAPABILITY__INIT;
		caps[i].type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
		caps[i].rpc = &rpcs[i];
		list[i] = &caps[i];
	}
	resp.n_capabilities = r->caps.n;
	resp.capabilities = list;
	return pack_padded(&resp.base, pad);
}

static grpc_slice controller_caps_bytes(const struct mock_reply *r, size_t pad)
{
	Csi__V1__ControllerGetCapabilitiesResponse resp =
	        CSI__V1__CONTROLLER_GET_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__ControllerServiceCapability caps[MOCK_CAPS_MAX], *list[MOCK_CAPS_MAX];
	Csi__V1__ControllerServiceCapability__RPC rpcs[MOCK_CAPS_MAX];

	for (size_t i = 0; i < r->caps.n; i++) {
		rpcs[i] = (Csi__V1__ControllerServiceCapability__RPC)
		        CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__INIT;
		rpcs[i].type = r->caps.type[i];
		caps[i] = (Csi__V1__ControllerServiceCapability)
		        CSI__V1__CONTROLLER_SERVICE_CAPABILITY__INIT;
		caps[i].type_case = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
		caps[i].rpc = &rpcs[i];
		list[i] = &caps[i];
	}
	resp.n_capabilities = r->caps.n;
	resp.capabilities = list;
	return pack_padded(&resp.base, pad);
}

grpc_slice mock_response_bytes(const struct csi_method *m, const struct mock_reply *r)
{
	/* Field 1, length 5, then 1 byte: truncated, so no message type parses it. */
	static const char invalid[] = "\x0a\x05\x08";
	size_t pad = r->action == MOCK_ACTION_OVERSIZED_RESPONSE ? r->size : 0;

	if (r->action == MOCK_ACTION_INVALID_RESPONSE)
		return grpc_slice_from_static_buffer(invalid, sizeof(invalid) - 1);
	switch (mock_kind_of(m)) {
	case MOCK_KIND_PROBE:
		return probe_bytes(r, pad);
	case MOCK_KIND_INFO:
		return info_bytes(r, pad);
	case MOCK_KIND_PLUGIN_CAPS:
		return plugin_caps_bytes(r, pad);
	case MOCK_KIND_NODE_INFO:
		return node_info_bytes(r, pad);
	case MOCK_KIND_NODE_CAPS:
		return node_caps_bytes(r, pad);
	case MOCK_KIND_CONTROLLER_CAPS:
		return controller_caps_bytes(r, pad);
	case MOCK_KIND_OTHER:
		break;
	}
	return pack_padded(NULL, pad);
}
