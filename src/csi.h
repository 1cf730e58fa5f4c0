/*
 * The CSI driver, seen through one long-lived gRPC channel (DESIGN.md):
 * start-up (wait for the driver, then GetPluginInfo once, no deadline), the
 * driver's identity, and asynchronous Probe calls. gRPC completions reach
 * the libevent loop through grpc_loop.h, so every callback below runs on the
 * loop thread.
 */
#ifndef LP_CSI_H
#define LP_CSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csi_address.h"

struct event_base;
struct csi;
struct csi_method;
struct csi_request;
struct metrics;

/*
 * Status messages and driver names are kept whole up to this many bytes.
 * gRPC refuses status metadata over 16 KiB itself (over 8 KiB it may), so
 * no message a driver can deliver is cut; a longer driver name is cut at a
 * UTF-8 character boundary.
 */
#define CSI_TEXT_MAX 16384
/* Upstream's error text: "rpc error: code = <GoName> desc = " + message. */
#define CSI_ERROR_MAX (CSI_TEXT_MAX + 64)

/*
 * The outcome of one Probe or read-only call, as the policy's ctx.probe()
 * and ctx.call() return it.
 */
struct csi_result {
	bool connected;             /* a connection to the driver was made in time */
	int code;                   /* gRPC status (UNAVAILABLE when !connected) */
	int ready;                  /* Probe: -1 absent, 0 present and false, 1 true (code OK) */
	double seconds;             /* wall time from start to answer */
	char message[CSI_TEXT_MAX]; /* status details */
	char error[CSI_ERROR_MAX];  /* upstream's body text; empty when code is OK */
	/*
	 * A read-only call with code OK: its reply message, which decodes as the
	 * method's reply type (csi_methods.h). Borrowed: valid during the
	 * callback only, so a kept copy of the result must not use it.
	 */
	const uint8_t *reply;
	size_t reply_len;
};

typedef void (*csi_result_cb)(const struct csi_result *result, void *arg);

/*
 * A result is 33 kB, nearly all of it room for texts that are mostly a few
 * bytes long, and memory pages never written cost nothing. So results are
 * never cleared or assigned whole: these write the fields and only the
 * bytes of the texts in use.
 */
/* *r empty: every field 0 (ready too), both texts "", no reply. */
void csi_result_reset(struct csi_result *r);
/* *dst = *src (the borrowed reply pointer included). */
void csi_result_copy(struct csi_result *dst, const struct csi_result *src);

/*
 * The result of a probe that made no connection in time (socket missing,
 * refused, silent, or no time at all): UNAVAILABLE with upstream's bare
 * "context deadline exceeded".
 */
void csi_unreachable_result(struct csi_result *r, double seconds);

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

/*
 * The driver's identity, held here and only here: set once GetPluginInfo
 * succeeded (both "" before); everyone else reads it through csi_driver().
 */
struct csi_driver {
	const char *name;
	const char *vendor_version;
};

/* Creates the channel and the completion thread. NULL with errbuf on failure. */
struct csi *csi_new(struct event_base *base, const struct csi_address *address,
                    struct metrics *metrics, char *errbuf, size_t errlen);

/*
 * Start-up: waits for the driver forever ("Still connecting" every 10 s),
 * then calls GetPluginInfo once with no deadline and reports through cb.
 */
void csi_start(struct csi *csi, csi_info_cb cb, void *arg);

/*
 * Sends one Probe that must answer by deadline_ns (CLOCK_MONOTONIC); several
 * may be in flight. cb is called exactly once, later, unless the probe is
 * cancelled or csi_free comes first. The socket path is checked first: a
 * missing file fails the probe at the deadline as upstream; a new inode
 * (the driver restarted) rebuilds the channel at once. NULL when out of
 * memory (no callback then).
 */
struct csi_request *csi_probe(struct csi *csi, int64_t deadline_ns, csi_result_cb cb, void *arg);

/*
 * Makes the read-only call m (csi_methods.h: m->callable) with an empty
 * request, as csi_probe makes a Probe: the same channel, socket checks,
 * deadline and retry, counted in the metrics under m's path. An OK reply
 * that does not decode as m's reply type becomes INTERNAL, as a Go client
 * reports it.
 */
struct csi_request *csi_call(struct csi *csi, const struct csi_method *m, int64_t deadline_ns,
                             csi_result_cb cb, void *arg);

/* The caller no longer wants the answer: no callback comes. */
void csi_request_cancel(struct csi_request *probe);

/* The driver's address as logs show it (csi_address.h's display). */
const char *csi_display(const struct csi *csi);

/* The driver's identity (csi_driver above); "" fields until GetPluginInfo succeeded. */
const struct csi_driver *csi_driver(const struct csi *csi);

/* Whether the channel to the driver is connected now (asks gRPC; sends nothing). */
bool csi_connected(const struct csi *csi);

/* Cancels what is in flight without calling back, stops the threads, frees. */
void csi_free(struct csi *csi);

#endif
