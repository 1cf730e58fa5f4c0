/*
 * NodeGetInfoResponse.accessible_topology as the mock sends it: absent, or
 * a Topology whose segments (a proto map) are kept sorted by key, so that
 * the wire bytes do not depend on the order a flag or a Lua table gave.
 */
#ifndef MOCK_TOPOLOGY_H
#define MOCK_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>

/* Most segments: real drivers send a handful; a script cannot make a huge reply. */
#define MOCK_TOPOLOGY_MAX 64

struct mock_topology {
	bool present; /* false: no accessible_topology field at all */
	size_t n;
	char *key[MOCK_TOPOLOGY_MAX],
	        *value[MOCK_TOPOLOGY_MAX]; /* owned, sorted by key, keys unique */
};

/*
 * Adds one segment (key and value of klen and vlen bytes, copied) and marks
 * t present. NULL, or why not: "duplicate key", "more than 64 segments",
 * "out of memory".
 */
const char *mock_topology_add(struct mock_topology *t, const char *key, size_t klen,
                              const char *value, size_t vlen);

/*
 * "key=value,key2=value2" (values may hold '='; keys may not be empty) into
 * t, replacing what it held; "" leaves the field absent. NULL, or why not
 * (static, or written to why), with t unchanged.
 */
const char *mock_topology_parse(const char *text, struct mock_topology *t, char *why,
                                size_t whylen);

/* dst (empty or cleared) becomes a copy of src. 0, or -1 out of memory with dst cleared. */
int mock_topology_copy(struct mock_topology *dst, const struct mock_topology *src);

/* Frees the strings and empties t (absent); safe on a zeroed one. */
void mock_topology_clear(struct mock_topology *t);

#endif
