/* The endpoint table (endpoint.h). */
#include "endpoint.h"

static const struct {
	const char *name, *path, *function;
} table[ENDPOINT_COUNT] = {
        [ENDPOINT_HEALTHZ] = {"healthz", "/healthz", "check"},
        [ENDPOINT_READYZ] = {"readyz", "/readyz", "ready"},
        [ENDPOINT_STARTUPZ] = {"startupz", "/startupz", "startup"},
};

const char *endpoint_name(enum endpoint e)
{
	return table[e].name;
}

const char *endpoint_path(enum endpoint e)
{
	return table[e].path;
}

const char *endpoint_function(enum endpoint e)
{
	return table[e].function;
}
