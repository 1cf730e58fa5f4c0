/*
 * What the checks found, kept for /status, /healthz?verbose, the
 * transition log and the health metrics (DESIGN.md "Contracts added after
 * the first release"): per endpoint its last verdict, streak and last
 * success and failure; across endpoints the last HEALTH_CHECKS checks and
 * the last HEALTH_PROBES probe results, as the policies saw them. Only
 * the loop thread touches it. Reading it never starts a probe.
 */
#ifndef LP_HEALTH_H
#define LP_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "sandbox.h" /* enum stop_reason */

struct csi_result;
struct metrics;
struct health;

#define HEALTH_CHECKS 32
#define HEALTH_PROBES 32
/*
 * Room for a body, reason or error kept (cut between characters, NUL
 * included): bodies may be 1 MiB. A kept text takes only the bytes it
 * needs, so that the rings cost what their texts hold (mostly "ok").
 */
#define HEALTH_TEXT_MAX 1024

struct health_probe {
	uint64_t seq; /* 1, 2, ...: the order probes ended in */
	double at;    /* when it ended: seconds since the epoch */
	enum endpoint endpoint;
	int code;  /* gRPC status */
	int ready; /* -1 absent, 0 false, 1 true */
	bool connected;
	double seconds;
	const char *error; /* "" when code is OK; the record's own copy */
};

/*
 * A check's record. Handed to health_add_check, body and reason are the
 * caller's (NULL: ""), whole; kept, they are the record's own copies, cut
 * to HEALTH_TEXT_MAX - 1 bytes and NUL-terminated.
 */
struct health_check {
	double at; /* when it ended: seconds since the epoch */
	enum endpoint endpoint;
	bool healthy;
	int status;
	const char *body;
	size_t body_len;    /* the body may hold NUL bytes */
	const char *reason; /* the body, or why the policy failed */
	size_t reason_len;
	enum stop_reason fallback;   /* STOP_NONE: the policy decided */
	double seconds;              /* from start to verdict */
	unsigned probes;             /* probes it made */
	uint64_t first_seq, end_seq; /* its probes: this endpoint's seqs in [first, end) */
};

struct health_endpoint {
	bool known; /* a check has ended */
	struct health_check last;
	uint64_t streak;                   /* checks in a row with last.healthy */
	double streak_since;               /* when the first of them ended */
	double last_success, last_failure; /* 0: never */
};

struct health *health_new(struct metrics *metrics);
void health_free(struct health *h);

/* A probe ended; returns its seq. */
uint64_t health_add_probe(struct health *h, enum endpoint e, const struct csi_result *r);

/* The seq the next probe will get: a check notes it when it starts. */
uint64_t health_next_seq(const struct health *h);

/*
 * A check ended with c (at, seq range and texts filled by the caller):
 * kept (its texts copied), the endpoint's verdict, streak and metrics
 * updated, and a change of verdict logged ("Health changed"). Returns the
 * kept record, valid until the next check ends. Out of memory, the kept
 * texts are empty.
 */
const struct health_check *health_add_check(struct health *h, const struct health_check *c);

/*
 * Copies text into dst (HEALTH_TEXT_MAX bytes), cut between characters;
 * returns the bytes kept.
 */
size_t health_copy_text(char *dst, const char *src, size_t len);

const struct health_endpoint *health_endpoint(const struct health *h, enum endpoint e);

/* The i-th kept check or probe, oldest first (i < count); NULL past the end. */
const struct health_check *health_check_at(const struct health *h, unsigned i);
const struct health_probe *health_probe_at(const struct health *h, unsigned i);

#endif
