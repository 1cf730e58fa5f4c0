/*
 * Command line → struct config, with Go `flag` package syntax and messages
 * (UPSTREAM.md §1, DESIGN.md "Flags"). No I/O besides the caller-supplied
 * error stream and resolving --policy-allow-path's directories; never
 * exits: main.c acts on the result.
 */
#ifndef LP_CONFIG_H
#define LP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h" /* enum log_format */

/* Directories, resolved (realpath) as they were given. */
struct path_list {
	char **paths;
	size_t count;
};

struct config {
	/* Program flags, upstream names and defaults. */
	char *csi_address;        /* "/run/csi/socket" */
	int64_t probe_timeout_ns; /* 1s (seed README; upstream v2.17+: 3s) */
	char *health_port;        /* "9808", kept as a string as upstream does */
	bool health_port_set;     /* given on the command line at all */
	char *http_endpoint;      /* "" = unused */
	char *metrics_address;    /* "" = no separate metrics listener */
	char *metrics_path;       /* "/metrics" */
	bool automaxprocs;        /* accepted, no effect */

	/* Logging: both surfaces of UPSTREAM.md §1.3. */
	int verbosity;                  /* -v */
	char *vmodule;                  /* accepted; see README */
	enum log_format log_format;     /* --logging-format */
	int64_t log_flush_frequency_ns; /* 5s; must be > 0 */
	bool log_split_stream;          /* --log-{json,text}-split-stream: must stay false */
	int64_t log_info_buffer_size;   /* --log-{json,text}-info-buffer-size: must stay 0 */
	bool skip_headers;              /* klog -skip_headers: drop the "I1126 ..." prefix */

	/* Our own flags (DESIGN.md). */
	bool version;             /* --version: print and exit 0 */
	char *policy_file;        /* --policy; NULL = built-in */
	char *check_policy_file;  /* --check-policy; NULL = not asked */
	int64_t check_timeout_ns; /* --check-timeout; defaults to probe_timeout_ns */
	bool check_timeout_set;
	bool status;                 /* --status: serve /status (default true) */
	int64_t probe_interval_ns;   /* --probe-interval: background /healthz checks; 0 = off */
	int64_t policy_memory_limit; /* bytes, default 16 MiB */
	int64_t policy_instruction_limit;    /* per check, default 10,000,000 */
	struct path_list policy_allow_paths; /* --policy-allow-path, repeatable: ctx.file's reach */
};

enum config_result {
	CONFIG_OK = 0,       /* run */
	CONFIG_HELP = 1,     /* usage printed; exit 0 */
	CONFIG_BAD_FLAG = 2, /* message + usage printed; exit 2 */
	CONFIG_INVALID = 3,  /* semantic error (conflict, logging config); exit 1 */
};

/*
 * Parses argv into cfg (which it initialises with defaults first). Messages
 * for CONFIG_HELP and CONFIG_BAD_FLAG are written to err exactly as Go's flag
 * package writes them (usage starts with "Usage of <argv[0]>:").
 * For CONFIG_INVALID, errbuf gets the message main.c should log.
 * Positional arguments end parsing and are ignored, as upstream.
 */
enum config_result config_parse(struct config *cfg, int argc, char **argv, FILE *err, char *errbuf,
                                unsigned errlen);

/* Releases the strings in cfg; safe on a zeroed or parsed config. */
void config_free(struct config *cfg);

#endif
