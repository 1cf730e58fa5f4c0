/*
 * The CSI driver, seen through one long-lived gRPC channel (DESIGN.md):
 * start-up (wait for the driver, then GetPluginInfo once, no deadline) and
 * asynchronous Probe calls. gRPC completions are handed from a dedicated
 * completion-queue thread to the libevent loop, so every callback below runs
 * on the loop thread.
 */
#ifndef LP_CSI_H
#define LP_CSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct csi;
struct metrics;

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

/*
 * Status messages and driver names are kept whole up to this many bytes.
 * gRPC refuses status metadata over 16 KiB itself (over 8 KiB it may), so
 * no message a driver can deliver is cut; a longer driver name is cut at a
 * UTF-8 character boundary.
 */
#define CSI_TEXT_MAX 16384
/* Upstream's error text: "rpc error: code = <GoName> desc = " + message. */
#define CSI_ERROR_MAX (CSI_TEXT_MAX + 64)

/* The outcome of one Probe, as the policy's ctx.probe() returns it. */
struct csi_probe_result {
	bool connected;             /* a connection to the driver was made in time */
	int code;                   /* gRPC status (UNAVAILABLE when !connected) */
	int ready;                  /* -1 absent, 0 present and false, 1 true (only when code OK) */
	double seconds;             /* wall time from start to answer */
	char message[CSI_TEXT_MAX]; /* status details */
	char error[CSI_ERROR_MAX];  /* upstream's body text; empty when code is OK */
};

typedef void (*csi_probe_cb)(const struct csi_probe_result *result, void *arg);

/*
 * The result of a probe that made no connection in time (socket missing,
 * refused, silent, or no time at all): UNAVAILABLE with upstream's bare
 * "context deadline exceeded".
 */
void csi_unreachable_result(struct csi_probe_result *r, double seconds);

/*
 * GetPluginInfo's outcome. On success code is 0 and name non-empty; on
 * failure error holds upstream's text ("rpc error: code = ..." or
 * "driver name is empty").
 */
struct csi_plugin_info {
	int code;
	char name[CSI_TEXT_MAX];
	char vendor_version[CSI_TEXT_MAX];
	char error[CSI_ERROR_MAX];
};

typedef void (*csi_info_cb)(const struct csi_plugin_info *info, void *arg);

/* Creates the channel and the completion thread. NULL with errbuf on failure. */
struct csi *csi_new(struct event_base *base, const struct csi_address *address,
                    struct metrics *metrics, char *errbuf, size_t errlen);

/*
 * Start-up: waits for the driver forever ("Still connecting" every 10 s),
 * then calls GetPluginInfo once with no deadline and reports through cb.
 */
void csi_start(struct csi *csi, csi_info_cb cb, void *arg);

/*
 * Sends one Probe that must answer by deadline_ns (CLOCK_MONOTONIC). At
 * most one probe may be in flight; cb is called exactly once, later, unless
 * csi_free comes first. The socket path is checked first: a missing file
 * fails the probe at the deadline as upstream; a new inode (the driver
 * restarted) rebuilds the channel at once.
 */
int csi_probe(struct csi *csi, int64_t deadline_ns, csi_probe_cb cb, void *arg);

/* The driver name for metrics, once known (NULL before). */
void csi_set_driver_name(struct csi *csi, const char *name);

/* Cancels what is in flight without calling back, stops the thread, frees. */
void csi_free(struct csi *csi);

#endif
