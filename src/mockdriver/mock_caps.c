/* Capability names ↔ enum values, from the protobuf-c descriptors (mock_caps.h). */
#include "mock_caps.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "csi.pb-c.h"

static const char expansion_prefix[] = "VOLUME_EXPANSION_";
#define EXPANSION_PREFIX_LEN (sizeof(expansion_prefix) - 1)

/* The enum whose names kind k takes (for a plugin, besides the volume expansion ones). */
static const ProtobufCEnumDescriptor *enum_of(enum mock_caps_kind k)
{
	switch (k) {
	case MOCK_CAPS_PLUGIN:
		return &csi__v1__plugin_capability__service__type__descriptor;
	case MOCK_CAPS_NODE:
		return &csi__v1__node_service_capability__rpc__type__descriptor;
	case MOCK_CAPS_CONTROLLER:
		break;
	}
	return &csi__v1__controller_service_capability__rpc__type__descriptor;
}

static int value_in(const ProtobufCEnumDescriptor *d, const char *name, size_t len)
{
	for (unsigned i = 0; i < d->n_values; i++) {
		if (strlen(d->values[i].name) == len && memcmp(d->values[i].name, name, len) == 0)
			return d->values[i].value;
	}
	return -1;
}

int mock_caps_value(enum mock_caps_kind k, const char *name, size_t len)
{
	int v = value_in(enum_of(k), name, len);

	if (v >= 0 || k != MOCK_CAPS_PLUGIN || len <= EXPANSION_PREFIX_LEN ||
	    memcmp(name, expansion_prefix, EXPANSION_PREFIX_LEN) != 0)
		return v;
	v = value_in(&csi__v1__plugin_capability__volume_expansion__type__descriptor,
	             name + EXPANSION_PREFIX_LEN, len - EXPANSION_PREFIX_LEN);
	return v < 0 ? -1 : MOCK_CAPS_EXPANSION + v;
}

static size_t append(char *buf, size_t len, size_t at, const char *sep, const char *prefix,
                     const char *name)
{
	int n;

	if (at >= len)
		return at;
	n = snprintf(buf + at, len - at, "%s%s%s", sep, prefix, name);
	return n < 0 ? at : at + (size_t)n;
}

void mock_caps_names(enum mock_caps_kind k, char *buf, size_t len)
{
	const ProtobufCEnumDescriptor *d = enum_of(k);
	size_t at = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (unsigned i = 0; i < d->n_values; i++)
		at = append(buf, len, at, i ? ", " : "", "", d->values[i].name);
	if (k != MOCK_CAPS_PLUGIN)
		return;
	d = &csi__v1__plugin_capability__volume_expansion__type__descriptor;
	for (unsigned i = 0; i < d->n_values; i++)
		at = append(buf, len, at, ", ", expansion_prefix, d->values[i].name);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

const char *mock_caps_parse(enum mock_caps_kind k, const char *text, struct mock_caps *out,
                            char *why, size_t whylen)
{
	struct mock_caps caps = {0};
	const char *p = text, *end = NULL;
	char names[512];

	for (; *text != '\0'; p = end + 1) { /* "" is the empty list, "A," a list with a hole */
		const char *stop;
		int v;

		end = strchr(p, ',');
		stop = end ? end : p + strlen(p);
		while (p < stop && is_blank(*p))
			p++;
		while (stop > p && is_blank(stop[-1]))
			stop--;
		if (stop == p)
			return "empty name in the list";
		if (caps.n == MOCK_CAPS_MAX)
			return "more than 64 names";
		v = mock_caps_value(k, p, (size_t)(stop - p));
		if (v < 0) {
			mock_caps_names(k, names, sizeof(names));
			snprintf(why, whylen, "unknown capability %.*s (known: %s)",
			         (int)(stop - p), p, names);
			return why;
		}
		caps.type[caps.n++] = v;
		if (!end)
			break;
	}
	*out = caps;
	return NULL;
}
