/*
 * One call's answer, decided when the call arrives: by the flags
 * (mock_reply_from_flags) or by a --script hook (mock_script.h). The server
 * acts on it at reply time, after the delay.
 */
#ifndef MOCK_REPLY_H
#define MOCK_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csi_methods.h"
#include "mock_caps.h"
#include "mock_config.h"
#include "mock_topology.h"

/* Something the driver does besides (or instead of) answering. */
enum mock_action {
	MOCK_ACTION_NONE,
	MOCK_ACTION_EXIT,               /* _exit(exit_code) at reply time, like a crash */
	MOCK_ACTION_REMOVE_SOCKET,      /* unlink the socket file, then answer */
	MOCK_ACTION_STOP_ACCEPTING,     /* stop accept()ing new connections, then answer */
	MOCK_ACTION_START_ACCEPTING,    /* accept again, then answer */
	MOCK_ACTION_CLOSE_CONNECTION,   /* shut the call's connection down instead of answering */
	MOCK_ACTION_INVALID_RESPONSE,   /* status OK with bytes that are no valid message */
	MOCK_ACTION_OVERSIZED_RESPONSE, /* status OK with a valid message padded to size bytes */
};

/* Default size of an oversized response: above gRPC's 4 MiB receive limit. */
#define MOCK_OVERSIZED_DEFAULT (5u << 20)
/* Largest size a script may ask for: a test tool must not eat the machine. */
#define MOCK_OVERSIZED_MAX (256u << 20)

/*
 * What a method's successful answer carries, by its reply type: the data
 * fields of struct mock_reply it reads, and those a script may set.
 */
enum mock_kind {
	MOCK_KIND_OTHER,           /* no data: an empty message (any CSI type reads it) */
	MOCK_KIND_PROBE,           /* ready */
	MOCK_KIND_INFO,            /* name, vendor_version */
	MOCK_KIND_PLUGIN_CAPS,     /* caps (plugin names) */
	MOCK_KIND_NODE_INFO,       /* node_id, max_volumes_per_node, topology */
	MOCK_KIND_NODE_CAPS,       /* caps (node names) */
	MOCK_KIND_CONTROLLER_CAPS, /* caps (controller names) */
};

struct mock_reply {
	int code;                    /* gRPC status; OK sends a response message */
	char *message;               /* status details; owned; NULL sends none */
	int64_t delay_ns;            /* >= 0, counted from the call's arrival */
	bool hang;                   /* never answer */
	enum mock_ready ready;       /* Probe only */
	char *name, *vendor_version; /* GetPluginInfo only; owned; NULL sends "" */
	char *node_id;               /* NodeGetInfo only; owned; NULL sends "" */
	int64_t max_volumes_per_node;
	struct mock_topology topology;
	struct mock_caps caps; /* the GetCapabilities calls: names of the method's kind */
	enum mock_action action;
	int exit_code; /* MOCK_ACTION_EXIT */
	size_t size;   /* MOCK_ACTION_OVERSIZED_RESPONSE: total message bytes */
	/* --proxy-to (mock_proxy.h) */
	bool forward; /* pass the call to the backend (after delay_ns) instead of answering */
	bool replace; /* forward, then answer with code and message instead of the backend */
};

/* The kind of method m (NULL, an unknown method, is MOCK_KIND_OTHER). */
enum mock_kind mock_kind_of(const struct csi_method *m);

/* The capability names a method of kind k answers with (k one of the _CAPS kinds). */
enum mock_caps_kind mock_kind_caps(enum mock_kind k);

/* m's position in the csi_methods table: 0 <= i < csi_method_count(). */
size_t mock_method_index(const struct csi_method *m);

/*
 * Fills r with the flags' answer for method m: Probe and GetPluginInfo as
 * their flags say, the other read-only calls OK at once with their flags'
 * data, every other method UNIMPLEMENTED; with --proxy-to, forward (m may
 * then be NULL, an unknown method). 0, or -1 when out of memory (r
 * then holds nothing to free).
 */
int mock_reply_from_flags(struct mock_reply *r, const struct mock_config *cfg,
                          const struct csi_method *m);

/*
 * Sets r to an INTERNAL error answer with the given details, replacing what
 * it held. Never fails: without memory the details are dropped.
 */
void mock_reply_set_error(struct mock_reply *r, const char *details);

/* Frees what r owns and zeroes it; safe on a zeroed reply. */
void mock_reply_clear(struct mock_reply *r);

/* "exit", "remove_socket", ... → action; -1 for an unknown name. */
int mock_action_parse(const char *name);
/* The name of a, as scripts write it ("none" for MOCK_ACTION_NONE). */
const char *mock_action_name(enum mock_action a);

#endif
