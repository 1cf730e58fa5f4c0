/*
 * Flag parsing for csi-mock-driver: one table of flags read by goflag.h,
 * with the mock's own value kinds (a socket address, ready, a gRPC code, a
 * delay, capability lists, topology segments) as custom parsers, so the
 * parser and the usage text cannot disagree.
 */
#include "mock_config.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "csi_address.h"
#include "duration.h"
#include "goflag.h"
#include "grpc_status.h"

#define PROG "csi-mock-driver"

#define AT(field) 0, offsetof(struct mock_config, field)

/*
 * The address forms of --csi-address (csi_address.h), reduced to a
 * filesystem path: this driver serves only unix sockets, and a path the
 * kernel cannot hold fails here rather than at bind.
 */
static const char *parse_socket(const char *value, void *target, char *why, size_t whylen)
{
	const size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	struct csi_address a;
	char err[256];
	switch (csi_address_parse(value, &a, err, sizeof(err))) {
	case CSI_ADDRESS_UNIX:
		break;
	case CSI_ADDRESS_INVALID:
		return "unix:// needs an absolute path (unix:///abs/path)";
	case CSI_ADDRESS_NEVER:
		return "empty socket path";
	default:
		return "only unix socket addresses are supported";
	}
	if (a.path[0] == '\0')
		return "empty socket path";
	if (strlen(a.path) > max) {
		snprintf(why, whylen, "socket path longer than %zu bytes", max);
		return why;
	}
	char *copy = strdup(a.path);
	if (!copy)
		return "out of memory";
	free(*(char **)target);
	*(char **)target = copy;
	return NULL;
}

static const char *parse_ready(const char *value, void *target, char *why, size_t whylen)
{
	static const char *const names[] = {[MOCK_READY_UNSET] = "unset",
	                                    [MOCK_READY_TRUE] = "true",
	                                    [MOCK_READY_FALSE] = "false"};
	for (int i = 0; i < 3; i++) {
		if (strcmp(value, names[i]) == 0) {
			*(enum mock_ready *)target = (enum mock_ready)i;
			return NULL;
		}
	}
	return "want unset, true or false";
}

static const char *parse_code(const char *value, void *target, char *why, size_t whylen)
{
	int code = grpc_status_parse(value);
	if (code < 0)
		return "not a gRPC status code (e.g. 9, FailedPrecondition, FAILED_PRECONDITION)";
	*(int *)target = code;
	return NULL;
}

static const char *parse_delay(const char *value, void *target, char *why, size_t whylen)
{
	int64_t ns;
	if (duration_parse(value, &ns) < 0)
		return "not a duration (e.g. 300ms, 1.5s, 2m)";
	if (ns < 0)
		return "must not be negative";
	*(int64_t *)target = ns;
	return NULL;
}

/*
 * goflag gives a parser 96 bytes for its reason; the list of known names
 * needs more. Flags are parsed once, on the main thread, before anything
 * else runs, so one static buffer will do.
 */
static char caps_why[640];

static const char *parse_caps(enum mock_caps_kind k, const char *value, void *target)
{
	return mock_caps_parse(k, value, target, caps_why, sizeof(caps_why));
}

static const char *parse_plugin_caps(const char *value, void *target, char *why, size_t whylen)
{
	return parse_caps(MOCK_CAPS_PLUGIN, value, target);
}

static const char *parse_node_caps(const char *value, void *target, char *why, size_t whylen)
{
	return parse_caps(MOCK_CAPS_NODE, value, target);
}

static const char *parse_controller_caps(const char *value, void *target, char *why, size_t whylen)
{
	return parse_caps(MOCK_CAPS_CONTROLLER, value, target);
}

static const char *parse_topology(const char *value, void *target, char *why, size_t whylen)
{
	return mock_topology_parse(value, target, why, whylen);
}

/* Booleans and strings are goflag's own; the rest are the kinds above. */
static const struct goflag flags[] = {
        {"csi-address", GOFLAG_CUSTOM, AT(socket_path), "/run/csi/socket", 0,
         "socket to serve: PATH, unix:///abs/path or unix:path", parse_socket, "string", true},
        {"name", GOFLAG_STRING, AT(name), "mock.csi.example.com", 0,
         "GetPluginInfo name, may be empty", NULL, NULL, false},
        {"vendor-version", GOFLAG_STRING, AT(vendor_version), "0.1.0", 0,
         "GetPluginInfo vendor_version", NULL, NULL, false},
        {"ready", GOFLAG_CUSTOM, AT(ready), "unset", 0,
         "ProbeResponse.ready: unset (no field), true or false", parse_ready, "value", false},
        {"probe-code", GOFLAG_CUSTOM, AT(probe.code), "OK", 0,
         "Probe status: 9, FailedPrecondition or FAILED_PRECONDITION", parse_code, "value", false},
        {"probe-message", GOFLAG_STRING, AT(probe.message), NULL, 0, "Probe status details", NULL,
         NULL, false},
        {"probe-delay", GOFLAG_CUSTOM, AT(probe.delay_ns), "0s", 0,
         "answer each Probe after this delay, e.g. 300ms, 1.5s", parse_delay, "duration", false},
        {"probe-hang", GOFLAG_BOOL, AT(probe.hang), NULL, 0,
         "never answer Probe: calls stay open until the client gives up", NULL, NULL, false},
        {"info-code", GOFLAG_CUSTOM, AT(info.code), "OK", 0, "GetPluginInfo status", parse_code,
         "value", false},
        {"info-message", GOFLAG_STRING, AT(info.message), NULL, 0, "GetPluginInfo status details",
         NULL, NULL, false},
        {"info-delay", GOFLAG_CUSTOM, AT(info.delay_ns), "0s", 0,
         "answer each GetPluginInfo after this delay", parse_delay, "duration", false},
        {"info-hang", GOFLAG_BOOL, AT(info.hang), NULL, 0, "never answer GetPluginInfo", NULL, NULL,
         false},
        {"plugin-capabilities", GOFLAG_CUSTOM, AT(plugin_caps), "CONTROLLER_SERVICE", 0,
         "GetPluginCapabilities: comma list of PluginCapability.Service.Type names and\n"
         "VOLUME_EXPANSION_ONLINE / VOLUME_EXPANSION_OFFLINE; \"\" for none",
         parse_plugin_caps, "list", false},
        {"node-id", GOFLAG_STRING, AT(node_id), NULL, 0,
         "NodeGetInfo node_id, may be empty (default: the host name)", NULL, NULL, false},
        {"max-volumes-per-node", GOFLAG_INT, AT(max_volumes_per_node), NULL, 0,
         "NodeGetInfo max_volumes_per_node", NULL, NULL, false},
        {"topology", GOFLAG_CUSTOM, AT(topology), NULL, 0,
         "NodeGetInfo accessible_topology segments: key=value,key2=value2 (default: no field)",
         parse_topology, "string", false},
        {"node-capabilities", GOFLAG_CUSTOM, AT(node_caps), "STAGE_UNSTAGE_VOLUME,GET_VOLUME_STATS",
         0,
         "NodeGetCapabilities: comma list of NodeServiceCapability.RPC.Type names;\n"
         "\"\" for none",
         parse_node_caps, "list", false},
        {"controller-capabilities", GOFLAG_CUSTOM, AT(controller_caps),
         "CREATE_DELETE_VOLUME,PUBLISH_UNPUBLISH_VOLUME", 0,
         "ControllerGetCapabilities: comma list of ControllerServiceCapability.RPC.Type names;\n"
         "\"\" for none",
         parse_controller_caps, "list", false},
        {"script", GOFLAG_OPT_STRING, AT(script_path), NULL, 0,
         "Lua script whose hooks (one per CSI method: probe, node_get_info, ...) decide each\n"
         "answer (README)",
         NULL, NULL, false},
        {"call-log", GOFLAG_OPT_STRING, AT(call_log_path), NULL, 0,
         "append one JSON line per call to this file (time, method, request, code, seconds)", NULL,
         NULL, false},
        {"proxy-to", GOFLAG_OPT_STRING, AT(proxy_to), NULL, 0,
         "forward every call to the driver at this address (as --csi-address takes it),\n"
         "the script's hooks injecting faults on the way (README)",
         NULL, NULL, false},
        {"quiet", GOFLAG_BOOL, AT(quiet), NULL, 0,
         "do not print a \"call method=M n=N\" line per call", NULL, NULL, false},
        {"verbose", GOFLAG_BOOL, AT(verbose), NULL, 0, "let gRPC's own log lines through to stderr",
         NULL, NULL, false},
        {"version", GOFLAG_BOOL, AT(version), NULL, 0, "print the version and exit", NULL, NULL,
         false},
};

#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

/* path made absolute against the working directory (no file need exist); cut when too long. */
static void absolute(const char *path, char *out, size_t len)
{
	char cwd[PATH_MAX];
	size_t n = 0, plen = strlen(path);
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd))) {
		size_t clen = strlen(cwd);
		if (clen + 1 < len) {
			memcpy(out, cwd, clen);
			out[clen] = '/';
			n = clen + 1;
		}
	}
	if (plen > len - 1 - n)
		plen = len - 1 - n;
	memcpy(out + n, path, plen);
	out[n + plen] = '\0';
}

/*
 * --proxy-to: an address csi_address_parse takes, and not the socket we
 * serve (the proxy would call itself). The reason goes to why.
 */
static const char *check_proxy_to(const struct mock_config *cfg, char *why, size_t whylen)
{
	struct csi_address a;
	char ours[PATH_MAX + 8], theirs[PATH_MAX + 8];
	switch (csi_address_parse(cfg->proxy_to, &a, why, whylen)) {
	case CSI_ADDRESS_INVALID:
		return why;
	case CSI_ADDRESS_NEVER:
		return "must not be empty";
	case CSI_ADDRESS_GRPC:
		return NULL;
	case CSI_ADDRESS_UNIX:
		break;
	}
	absolute(cfg->socket_path, ours, sizeof(ours));
	absolute(a.path, theirs, sizeof(theirs));
	if (strcmp(ours, theirs) == 0)
		return "is the socket this driver serves (--csi-address): it would call itself";
	return NULL;
}

/* --node-id's default: the host name, as a node plugin would report it. */
static int default_node_id(struct mock_config *cfg)
{
	char host[256] = "";
	char *copy;

	if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	copy = strdup(host);
	if (!copy)
		return -1;
	free(cfg->node_id);
	cfg->node_id = copy;
	return 0;
}

enum mock_config_result mock_config_parse(struct mock_config *cfg, int argc, char **argv, FILE *err)
{
	void *const bases[] = {cfg};
	bool seen[N_FLAGS];
	int next;
	char *name = argc > 0 ? argv[0] : NULL;

	memset(cfg, 0, sizeof(*cfg));
	if (argc > 0)
		argv[0] = PROG; /* usage and messages name the program, not its path */
	enum goflag_result r = goflag_parse(flags, N_FLAGS, bases, seen, argc, argv, &next, err);
	if (argc > 0)
		argv[0] = name;
	switch (r) {
	case GOFLAG_OK:
		break;
	case GOFLAG_HELP:
		mock_config_free(cfg);
		return MOCK_CONFIG_HELP;
	case GOFLAG_NO_MEMORY:
		fputs(PROG ": out of memory\n", err);
		mock_config_free(cfg);
		return MOCK_CONFIG_BAD_FLAG;
	case GOFLAG_BAD_FLAG:
		mock_config_free(cfg);
		return MOCK_CONFIG_BAD_FLAG;
	}
	if (next < argc) {
		fprintf(err, "unexpected argument: %s\n", argv[next]);
		goflag_usage(err, PROG, flags, N_FLAGS);
		mock_config_free(cfg);
		return MOCK_CONFIG_BAD_FLAG;
	}
	if (cfg->proxy_to) {
		char why[512];
		const char *reason = check_proxy_to(cfg, why, sizeof(why));
		if (reason) {
			fprintf(err, "invalid value \"%s\" for flag -proxy-to: %s\n", cfg->proxy_to,
			        reason);
			goflag_usage(err, PROG, flags, N_FLAGS);
			mock_config_free(cfg);
			return MOCK_CONFIG_BAD_FLAG;
		}
	}
	if (!seen[goflag_find(flags, N_FLAGS, "node-id", 7)] && default_node_id(cfg) < 0) {
		fputs(PROG ": out of memory\n", err);
		mock_config_free(cfg);
		return MOCK_CONFIG_BAD_FLAG;
	}
	return MOCK_CONFIG_OK;
}

void mock_config_free(struct mock_config *cfg)
{
	void *const bases[] = {cfg};
	if (!cfg)
		return;
	goflag_free(flags, N_FLAGS, bases);
	mock_topology_clear(&cfg->topology);
}
