/*
 * Counters and histograms, and their Prometheus text exposition
 * (UPSTREAM.md §4). Only the loop thread touches a struct metrics.
 */
#ifndef LP_METRICS_H
#define LP_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"
#include "sandbox.h" /* enum stop_reason */

struct metrics;
struct evbuffer;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/*
 * One csi_sidecar_operations_seconds observation: an RPC that reached the
 * driver. code is the gRPC status number (printed under Go's name).
 */
void metrics_observe_rpc(struct metrics *m, const char *driver, const char *method, int code,
                         double seconds);

/* livenessprobe_checks_total{result}: result is "healthy", "unhealthy". */
void metrics_count_check(struct metrics *m, bool healthy);
/* livenessprobe_requests_coalesced_total: a request that joined a check in flight. */
void metrics_count_coalesced(struct metrics *m);
/* livenessprobe_policy_fallbacks_total{reason}: the label comes from stop_reason_label. */
void metrics_count_fallback(struct metrics *m, enum stop_reason reason);

/* Go strconv.FormatFloat(v, 'g', -1, 64), as every sample value is printed. */
void metrics_format_float(double v, char *out, size_t len);

/* livenessprobe_policy_memory_bytes: what the deciding policy's Lua state holds. */
void metrics_set_policy_memory(struct metrics *m, size_t bytes);
/* livenessprobe_policy_reloads_total{result}: result is "success" or "failure". */
void metrics_count_reload(struct metrics *m, bool success);

/*
 * livenessprobe_healthy{endpoint} (the last verdict, 1 or 0) and
 * livenessprobe_last_success_timestamp_seconds{endpoint} (0: never); both
 * have every endpoint's series, at 0, from the start.
 */
void metrics_set_health(struct metrics *m, enum endpoint e, bool healthy, double last_success);
/* livenessprobe_health_transitions_total{endpoint,to}: e's verdict changed to healthy or not. */
void metrics_count_transition(struct metrics *m, enum endpoint e, bool healthy);

/* What /status reports beside the metrics. */
void metrics_reloads(const struct metrics *m, unsigned long long *success,
                     unsigned long long *failure);
size_t metrics_policy_memory(const struct metrics *m);
double metrics_start_time(const struct metrics *m); /* process_start_time_seconds */

/* Appends the text exposition format (version 0.0.4) to out. */
int metrics_render(struct metrics *m, struct evbuffer *out);

#endif
