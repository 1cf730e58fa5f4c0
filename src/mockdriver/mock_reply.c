/* struct mock_reply: building, resetting and naming (see mock_reply.h). */
#include "mock_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "csi.pb-c.h"

static const char *const action_names[] = {
        [MOCK_ACTION_NONE] = "none",
        [MOCK_ACTION_EXIT] = "exit",
        [MOCK_ACTION_REMOVE_SOCKET] = "remove_socket",
        [MOCK_ACTION_STOP_ACCEPTING] = "stop_accepting",
        [MOCK_ACTION_START_ACCEPTING] = "start_accepting",
        [MOCK_ACTION_CLOSE_CONNECTION] = "close_connection",
        [MOCK_ACTION_INVALID_RESPONSE] = "invalid_response",
        [MOCK_ACTION_OVERSIZED_RESPONSE] = "oversized_response",
};

int mock_action_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
		if (strcmp(name, action_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

const char *mock_action_name(enum mock_action a)
{
	return (size_t)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[a] : "?";
}

/* By reply type, not by name: the table in csi_methods.c says which message each method returns. */
enum mock_kind mock_kind_of(const struct csi_method *m)
{
	static const struct {
		const ProtobufCMessageDescriptor *reply;
		enum mock_kind kind;
	} kinds[] = {
	        {&csi__v1__probe_response__descriptor, MOCK_KIND_PROBE},
	        {&csi__v1__get_plugin_info_response__descriptor, MOCK_KIND_INFO},
	        {&csi__v1__get_plugin_capabilities_response__descriptor, MOCK_KIND_PLUGIN_CAPS},
	        {&csi__v1__node_get_info_response__descriptor, MOCK_KIND_NODE_INFO},
	        {&csi__v1__node_get_capabilities_response__descriptor, MOCK_KIND_NODE_CAPS},
	        {&csi__v1__controller_get_capabilities_response__descriptor,
	         MOCK_KIND_CONTROLLER_CAPS},
	};

	for (size_t i = 0; m && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (m->reply == kinds[i].reply)
			return kinds[i].kind;
	}
	return MOCK_KIND_OTHER;
}

enum mock_caps_kind mock_kind_caps(enum mock_kind k)
{
	return k == MOCK_KIND_PLUGIN_CAPS ? MOCK_CAPS_PLUGIN
	       : k == MOCK_KIND_NODE_CAPS ? MOCK_CAPS_NODE
	                                  : MOCK_CAPS_CONTROLLER;
}

size_t mock_method_index(const struct csi_method *m)
{
	size_t i;

	for (i = 0; i < csi_method_count() && csi_method_at(i) != m; i++)
		;
	return i;
}

/* The flags' status for method m: what --probe-* and --info-* say, OK, or UNIMPLEMENTED. */
static int status_from_flags(struct mock_reply *r, const struct mock_config *cfg,
                             const struct csi_method *m, enum mock_kind k)
{
	char text[256];
	const struct mock_answer *a = k == MOCK_KIND_PROBE  ? &cfg->probe
	                              : k == MOCK_KIND_INFO ? &cfg->info
	                                                    : NULL;

	if (a) {
		r->code = a->code;
		r->delay_ns = a->delay_ns;
		r->hang = a->hang;
		r->message = strdup(a->message);
	} else if (k == MOCK_KIND_OTHER && !m) {
		r->code = GRPC_STATUS_UNIMPLEMENTED; /* an unknown path (a proxy forwards it) */
		r->message = strdup("");
	} else if (k == MOCK_KIND_OTHER) {
		snprintf(text, sizeof(text),
		         "csi-mock-driver does not implement %s (a --script hook %s can answer it)",
		         m->name, m->hook);
		r->code = GRPC_STATUS_UNIMPLEMENTED;
		r->message = strdup(text);
	} else {
		r->message = strdup("");
	}
	return r->message ? 0 : -1;
}

int mock_reply_from_flags(struct mock_reply *r, const struct mock_config *cfg,
                          const struct csi_method *m)
{
	enum mock_kind k = mock_kind_of(m);

	memset(r, 0, sizeof(*r));
	r->ready = cfg->ready;
	r->exit_code = 1;
	r->size = MOCK_OVERSIZED_DEFAULT;
	r->max_volumes_per_node = cfg->max_volumes_per_node;
	if (k == MOCK_KIND_PLUGIN_CAPS)
		r->caps = cfg->plugin_caps;
	else if (k == MOCK_KIND_NODE_CAPS)
		r->caps = cfg->node_caps;
	else if (k == MOCK_KIND_CONTROLLER_CAPS)
		r->caps = cfg->controller_caps;
	r->name = strdup(cfg->name);
	r->vendor_version = strdup(cfg->vendor_version);
	r->node_id = strdup(cfg->node_id);
	if (status_from_flags(r, cfg, m, k) < 0 || !r->name || !r->vendor_version || !r->node_id ||
	    mock_topology_copy(&r->topology, &cfg->topology) < 0) {
		mock_reply_clear(r);
		return -1;
	}
	if (cfg->proxy_to) {
		/* A proxy forwards every call, known method or not; the answer flags do not apply.
		 */
		r->forward = true;
		r->code = GRPC_STATUS_OK;
		r->delay_ns = 0;
		r->hang = false;
	}
	return 0;
}

void mock_reply_set_error(struct mock_reply *r, const char *details)
{
	mock_reply_clear(r);
	r->code = GRPC_STATUS_INTERNAL;
	r->exit_code = 1;
	r->message = strdup(details);
	r->name = strdup("");
	r->vendor_version = strdup("");
}

void mock_reply_clear(struct mock_reply *r)
{
	free(r->message);
	free(r->name);
	free(r->vendor_version);
	free(r->node_id);
	mock_topology_clear(&r->topology);
	memset(r, 0, sizeof(*r));
}
