/*
 * The capability lists of the three GetCapabilities calls, as the user
 * names them (flags, script): the names are the enum values' names in the
 * generated protobuf-c descriptors (proto/csi.proto), never a list of ours,
 * so a capability added to the proto is known here at once.
 *
 *   plugin      PluginCapability.Service.Type names (CONTROLLER_SERVICE, ...),
 *               and VolumeExpansion.Type names prefixed "VOLUME_EXPANSION_"
 *               (VOLUME_EXPANSION_ONLINE, VOLUME_EXPANSION_OFFLINE)
 *   node        NodeServiceCapability.RPC.Type names (STAGE_UNSTAGE_VOLUME, ...)
 *   controller  ControllerServiceCapability.RPC.Type names (CREATE_DELETE_VOLUME, ...)
 *
 * UNKNOWN (and VOLUME_EXPANSION_UNKNOWN) are names too: they send a type of
 * 0, as a broken driver could. A list may repeat a name; the wire allows it.
 */
#ifndef MOCK_CAPS_H
#define MOCK_CAPS_H

#include <stddef.h>

enum mock_caps_kind { MOCK_CAPS_PLUGIN, MOCK_CAPS_NODE, MOCK_CAPS_CONTROLLER };

/* Longest list: a test tool has no use for more, and a script cannot make a huge reply. */
#define MOCK_CAPS_MAX 64
/* A plugin's VolumeExpansion.Type value v is held as MOCK_CAPS_EXPANSION + v. */
#define MOCK_CAPS_EXPANSION 0x100

/* The enum values, in the order they are sent. */
struct mock_caps {
	size_t n;
	int type[MOCK_CAPS_MAX];
};

/* The value of name (len bytes) for kind k, or -1 for an unknown name. */
int mock_caps_value(enum mock_caps_kind k, const char *name, size_t len);

/*
 * Parses a comma-separated list of names ("" is an empty list; blanks
 * around a name are ignored) into out. NULL, or why not: a static reason,
 * or one written to why (a name list needs at least 512 bytes).
 */
const char *mock_caps_parse(enum mock_caps_kind k, const char *text, struct mock_caps *out,
                            char *why, size_t whylen);

/* Every name of kind k, ", "-separated, into buf (truncated to len). */
void mock_caps_names(enum mock_caps_kind k, char *buf, size_t len);

#endif
