/*
 * Every unary method of CSI v1, in one table (the spec's csi.proto, v1.12):
 * its name, its HTTP/2 path, the name of its csi-mock-driver script hook
 * (the name in snake case), and, for the calls policies may make with
 * ctx.call, the message types of request and reply (proto/csi.proto).
 * SnapshotMetadata's streaming methods are not unary and are left out.
 */
#ifndef LP_CSI_METHODS_H
#define LP_CSI_METHODS_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct csi_method {
	const char *name; /* "NodeGetInfo" */
	const char *path; /* "/csi.v1.Node/NodeGetInfo" */
	const char *hook; /* "node_get_info" */
	/*
	 * The read-only calls (Probe and the ctx.call ones): their message types,
	 * so that the mock decodes their requests and a client their replies.
	 * NULL for every other method.
	 */
	const ProtobufCMessageDescriptor *request;
	const ProtobufCMessageDescriptor *reply;
	bool callable; /* ctx.call may make it */
};

/* The number of methods, and method i of them (0 <= i < csi_method_count()). */
size_t csi_method_count(void);
const struct csi_method *csi_method_at(size_t i);

/* The method named name ("NodeGetInfo"), or NULL. */
const struct csi_method *csi_method_by_name(const char *name);
/* The method at path (not NUL-terminated), or NULL. */
const struct csi_method *csi_method_by_path(const char *path, size_t len);

/*
 * The methods ctx.call may make, for error messages: "GetPluginInfo, ...,
 * ControllerGetCapabilities", in the order the README and the issue list
 * them (unit/csi_methods checks it names exactly the callable methods).
 */
const char *csi_callable_methods(void);

#endif
