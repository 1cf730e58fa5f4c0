/*
 * --csi-address as upstream reads it (UPSTREAM.md §2.2), normalised for
 * gRPC's C core, which takes a bare path for a DNS name (GRPC-NOTES.md).
 * Shared by the daemon and csi-mock-driver.
 */
#ifndef LP_CSI_ADDRESS_H
#define LP_CSI_ADDRESS_H

#include <stddef.h>

/* How --csi-address is reached (UPSTREAM.md §2.2, normalised by us). */
enum csi_address_kind {
	CSI_ADDRESS_UNIX,    /* a unix socket path (absolute, or relative to cwd) */
	CSI_ADDRESS_GRPC,    /* anything else: handed to gRPC's resolver (TCP, dns:///) */
	CSI_ADDRESS_NEVER,   /* empty: a target that can never connect, as upstream */
	CSI_ADDRESS_INVALID, /* unix://relative: fatal at start-up, as upstream */
};

struct csi_address {
	enum csi_address_kind kind;
	char target[4200];  /* what gRPC dials ("unix:/abs", "127.0.0.1:1") */
	char path[4100];    /* CSI_ADDRESS_UNIX: the socket file to stat */
	char display[4200]; /* what logs show ("unix:///abs", as upstream) */
};

/* Classifies an address; for CSI_ADDRESS_INVALID, errbuf says why. */
enum csi_address_kind csi_address_parse(const char *value, struct csi_address *out, char *errbuf,
                                        size_t errlen);

#endif
