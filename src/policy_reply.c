/* A read-only call's reply, field by field, into Lua (policy_reply.h). */
#include "policy_reply.h"

#include <stdio.h>

#include "csi.pb-c.h"

/* An enum value's CSI name, or its number as text for a value newer than our proto. */
static void push_enum(lua_State *L, const ProtobufCEnumDescriptor *d, int value, const char *prefix)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
	if (v)
		lua_pushfstring(L, "%s%s", prefix, v->name);
	else
		lua_pushfstring(L, "%s%d", prefix, value);
}

/* t[#t + 1] = the value on top (t at index t). */
static void append(lua_State *L, int t)
{
	lua_rawseti(L, t, (lua_Integer)lua_rawlen(L, t) + 1);
}

static void set_string(lua_State *L, const char *field, const char *value)
{
	lua_pushstring(L, value ? value : "");
	lua_setfield(L, -2, field);
}

static void set_plugin_info(lua_State *L, const Csi__V1__GetPluginInfoResponse *r)
{
	set_string(L, "name", r->name);
	set_string(L, "vendor_version", r->vendor_version);
	lua_createtable(L, 0, (int)r->n_manifest);
	for (size_t i = 0; i < r->n_manifest; i++) {
		lua_pushstring(L, r->manifest[i]->value ? r->manifest[i]->value : "");
		lua_setfield(L, -2, r->manifest[i]->key ? r->manifest[i]->key : "");
	}
	lua_setfield(L, -2, "manifest");
}

/* Service types by their names; volume expansion as VOLUME_EXPANSION_ONLINE or _OFFLINE. */
static void set_plugin_capabilities(lua_State *L, const Csi__V1__GetPluginCapabilitiesResponse *r)
{
	lua_createtable(L, (int)r->n_capabilities, 0);
	int t = lua_gettop(L);
	for (size_t i = 0; i < r->n_capabilities; i++) {
		const Csi__V1__PluginCapability *c = r->capabilities[i];
		if (c->type_case == CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE && c->service)
			push_enum(L, &csi__v1__plugin_capability__service__type__descriptor,
			          (int)c->service->type, "");
		else if (c->type_case == CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION &&
		         c->volume_expansion)
			push_enum(L,
			          &csi__v1__plugin_capability__volume_expansion__type__descriptor,
			          (int)c->volume_expansion->type, "VOLUME_EXPANSION_");
		else
			lua_pushliteral(L, "UNKNOWN"); /* a kind newer than our proto */
		append(L, t);
	}
	lua_setfield(L, -2, "capabilities");
}

static void set_node_info(lua_State *L, const Csi__V1__NodeGetInfoResponse *r)
{
	set_string(L, "node_id", r->node_id);
	lua_pushinteger(L, (lua_Integer)r->max_volumes_per_node);
	lua_setfield(L, -2, "max_volumes_per_node");
	if (!r->accessible_topology)
		return; /* absent: nil, as the spec says "no constraint" */
	const Csi__V1__Topology *topo = r->accessible_topology;
	lua_createtable(L, 0, 1);
	lua_createtable(L, 0, (int)topo->n_segments);
	for (size_t i = 0; i < topo->n_segments; i++) {
		lua_pushstring(L, topo->segments[i]->value ? topo->segments[i]->value : "");
		lua_setfield(L, -2, topo->segments[i]->key ? topo->segments[i]->key : "");
	}
	lua_setfield(L, -2, "segments");
	lua_setfield(L, -2, "accessible_topology");
}

/* The message in m's field name (a oneof's only when set), or NULL. */
static const ProtobufCMessage *field_message(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	const char *base = (const char *)m;
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
		return NULL;
	return *(ProtobufCMessage *const *)(base + f->offset);
}

/*
 * Node and Controller capabilities share a shape, not a type: a list of
 * messages whose oneof holds an RPC with an enum type. Read through the
 * descriptors, one function serves both.
 */
static void set_rpc_capabilities(lua_State *L, size_t n, ProtobufCMessage *const *caps)
{
	lua_createtable(L, (int)n, 0);
	int t = lua_gettop(L);
	for (size_t i = 0; i < n; i++) {
		const ProtobufCMessage *rpc = field_message(caps[i], "rpc");
		const ProtobufCFieldDescriptor *type =
		        rpc ? protobuf_c_message_descriptor_get_field_by_name(rpc->descriptor,
		                                                              "type")
		            : NULL;
		if (type && type->type == PROTOBUF_C_TYPE_ENUM)
			push_enum(L, type->descriptor,
			          *(const int *)((const char *)rpc + type->offset), "");
		else
			lua_pushliteral(L, "UNKNOWN"); /* a kind newer than our proto */
		append(L, t);
	}
	lua_setfield(L, -2, "capabilities");
}

void policy_reply_push(lua_State *L, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	if (d == &csi__v1__get_plugin_info_response__descriptor) {
		set_plugin_info(L, (const Csi__V1__GetPluginInfoResponse *)msg);
	} else if (d == &csi__v1__get_plugin_capabilities_response__descriptor) {
		set_plugin_capabilities(L, (const Csi__V1__GetPluginCapabilitiesResponse *)msg);
	} else if (d == &csi__v1__node_get_info_response__descriptor) {
		set_node_info(L, (const Csi__V1__NodeGetInfoResponse *)msg);
	} else if (d == &csi__v1__node_get_capabilities_response__descriptor) {
		const Csi__V1__NodeGetCapabilitiesResponse *r = (const void *)msg;
		set_rpc_capabilities(L, r->n_capabilities,
		                     (ProtobufCMessage *const *)r->capabilities);
	} else if (d == &csi__v1__controller_get_capabilities_response__descriptor) {
		const Csi__V1__ControllerGetCapabilitiesResponse *r = (const void *)msg;
		set_rpc_capabilities(L, r->n_capabilities,
		                     (ProtobufCMessage *const *)r->capabilities);
	}
}
