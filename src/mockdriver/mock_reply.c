/* struct mock_reply: building, resetting and naming (see mock_reply.h). */
#include "mock_reply.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

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

int mock_reply_from_flags(struct mock_reply *r, const struct mock_config *cfg, enum mock_hook h)
{
	const struct mock_answer *a = h == MOCK_HOOK_PROBE ? &cfg->probe : &cfg->info;

	memset(r, 0, sizeof(*r));
	r->code = a->code;
	r->delay_ns = a->delay_ns;
	r->hang = a->hang;
	r->ready = cfg->ready;
	r->exit_code = 1;
	r->size = MOCK_OVERSIZED_DEFAULT;
	r->message = strdup(a->message);
	r->name = strdup(cfg->name);
	r->vendor_version = strdup(cfg->vendor_version);
	if (!r->message || !r->name || !r->vendor_version) {
		mock_reply_clear(r);
		return -1;
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
	memset(r, 0, sizeof(*r));
}
