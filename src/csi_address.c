/* --csi-address forms (csi_address.h). */
#include "csi_address.h"

#include <stdio.h>
#include <string.h>

enum csi_address_kind csi_address_parse(const char *value, struct csi_address *out, char *errbuf,
                                        size_t errlen)
{
	memset(out, 0, sizeof(*out));
	/* connlib: "/abs" gets "unix://" prepended; "unix://" + rest is a path. */
	const char *path = NULL;
	if (value[0] == '/') {
		path = value;
	} else if (strncmp(value, "unix://", 7) == 0) {
		path = value + 7;
		if (path[0] != '/') {
			/* Go's resolver reads the text before the next '/' as an authority. */
			size_t n = strcspn(path, "/");
			snprintf(errbuf, errlen,
			         "failed to build resolver: invalid (non-empty) authority: %.*s",
			         (int)n, path);
			out->kind = CSI_ADDRESS_INVALID;
			return out->kind;
		}
	} else if (strncmp(value, "unix:", 5) == 0) {
		/* gRPC's own unix resolver: "unix:/abs" or "unix:relative". */
		path = value + 5;
	}

	if (path) {
		out->kind = CSI_ADDRESS_UNIX;
		snprintf(out->path, sizeof(out->path), "%s", path);
		snprintf(out->target, sizeof(out->target), "unix:%s", path);
		if (path[0] == '/')
			snprintf(out->display, sizeof(out->display), "unix://%s", path);
		else
			snprintf(out->display, sizeof(out->display), "%s", value);
	} else if (value[0] == '\0') {
		out->kind = CSI_ADDRESS_NEVER;
	} else {
		out->kind = CSI_ADDRESS_GRPC;
		snprintf(out->target, sizeof(out->target), "%s", value);
		snprintf(out->display, sizeof(out->display), "%s", value);
	}
	return out->kind;
}
