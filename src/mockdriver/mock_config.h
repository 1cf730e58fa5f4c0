/*
 * csi-mock-driver command line → struct mock_config (README
 * "csi-mock-driver"), read by goflag.h with Go's flag syntax and messages,
 * as the sidecar reads its own. No I/O besides the caller-supplied error stream;
 * never exits: main.c acts on the result.
 */
#ifndef MOCK_CONFIG_H
#define MOCK_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mock_caps.h"
#include "mock_topology.h"

/* ProbeResponse.ready as sent on the wire (UPSTREAM.md §6). */
enum mock_ready {
	MOCK_READY_UNSET, /* field absent: empty message, 0 bytes */
	MOCK_READY_TRUE,  /* 0a 02 08 01 */
	MOCK_READY_FALSE, /* 0a 00: field present, BoolValue empty */
};

/* How one method answers: status, and when (now, later or never). */
struct mock_answer {
	int code;         /* gRPC status code; 0 (OK) sends a response message */
	char *message;    /* status details, sent as given, even when empty */
	int64_t delay_ns; /* >= 0; reply this long after the request arrived */
	bool hang;        /* never reply; the call lives until the client ends it */
};

/* The strings are the config's own: mock_config_free releases them. */
struct mock_config {
	char *socket_path; /* plain filesystem path, "unix:" forms already stripped */
	char *name;        /* GetPluginInfo name; may be "" on purpose */
	char *vendor_version;
	enum mock_ready ready;
	struct mock_answer probe; /* /csi.v1.Identity/Probe */
	struct mock_answer info;  /* /csi.v1.Identity/GetPluginInfo */
	/* The other read-only calls' data; they answer OK at once unless a script says otherwise.
	 */
	struct mock_caps plugin_caps;     /* GetPluginCapabilities */
	char *node_id;                    /* NodeGetInfo: the host name unless given; may be "" */
	int64_t max_volumes_per_node;     /* >= 0 */
	struct mock_topology topology;    /* absent unless given */
	struct mock_caps node_caps;       /* NodeGetCapabilities */
	struct mock_caps controller_caps; /* ControllerGetCapabilities */
	char *script_path;                /* --script; NULL: the flags answer every call */
	char *call_log_path;              /* --call-log; NULL: no call log */
	char *proxy_to; /* --proxy-to: the backend driver's address; NULL: answer calls ourselves */
	bool quiet;     /* no "call method=..." lines */
	bool verbose;   /* let gRPC's own log lines through to stderr */
	bool version;   /* --version: print "csi-mock-driver VERSION" and exit 0 */
};

enum mock_config_result {
	MOCK_CONFIG_OK = 0,      /* run */
	MOCK_CONFIG_HELP = 1,    /* usage printed; exit 0 */
	MOCK_CONFIG_BAD_FLAG = 2 /* one-line error and usage printed; exit 2 */
};

/*
 * Fills cfg with the defaults, then applies argv with Go's flag syntax.
 * Unlike the sidecar, positional arguments are an error: the mock takes
 * none. Messages go to err. On anything but MOCK_CONFIG_OK the config holds
 * nothing to free.
 */
enum mock_config_result mock_config_parse(struct mock_config *cfg, int argc, char **argv,
                                          FILE *err);

/* Releases the config's strings; safe on a zeroed or parsed config. */
void mock_config_free(struct mock_config *cfg);

#endif
