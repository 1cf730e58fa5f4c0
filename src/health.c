/*
 * The record of checks and probes (health.h): two rings and one summary
 * per endpoint. A change of an endpoint's verdict is logged once, at
 * info, and counted; steady health stays silent, as upstream.
 */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "csi.h"
#include "log.h"
#include "metrics.h"
#include "utf8.h"

struct health {
	struct metrics *metrics;
	struct health_check checks[HEALTH_CHECKS]; /* a ring: the next goes at n_checks % size */
	struct health_probe probes[HEALTH_PROBES];
	uint64_t n_checks, n_probes; /* ever added; a probe's seq is its number */
	struct health_endpoint endpoints[ENDPOINT_COUNT];
};

struct health *health_new(struct metrics *metrics)
{
	struct health *h = calloc(1, sizeof(*h));
	if (h)
		h->metrics = metrics;
	return h;
}

void health_free(struct health *h)
{
	free(h);
}

size_t health_copy_text(char *dst, const char *src, size_t len)
{
	return utf8_copy(dst, HEALTH_TEXT_MAX, src, len);
}

uint64_t health_next_seq(const struct health *h)
{
	return h->n_probes + 1;
}

uint64_t health_add_probe(struct health *h, enum endpoint e, const struct csi_result *r)
{
	struct health_probe *p = &h->probes[h->n_probes % HEALTH_PROBES];
	p->seq = ++h->n_probes;
	p->at = clock_wall_s();
	p->endpoint = e;
	p->code = r->code;
	p->ready = r->code == 0 ? r->ready : -1;
	p->connected = r->connected;
	p->seconds = r->seconds;
	health_copy_text(p->error, r->error, r->code == 0 ? 0 : strlen(r->error));
	return p->seq;
}

static const char *verdict_word(bool healthy)
{
	return healthy ? "healthy" : "unhealthy";
}

const struct health_check *health_add_check(struct health *h, const struct health_check *c)
{
	struct health_check *kept = &h->checks[h->n_checks++ % HEALTH_CHECKS];
	*kept = *c;
	struct health_endpoint *ep = &h->endpoints[c->endpoint];
	if (ep->known && ep->last.healthy != c->healthy) {
		char streak[32];
		snprintf(streak, sizeof(streak), "%llu", (unsigned long long)ep->streak);
		LOG_I("Health changed", "endpoint", endpoint_name(c->endpoint), "from",
		      verdict_word(ep->last.healthy), "to", verdict_word(c->healthy), "reason",
		      c->reason, "streak", streak);
		metrics_count_transition(h->metrics, c->endpoint, c->healthy);
	}
	if (!ep->known || ep->last.healthy != c->healthy) {
		ep->streak = 0;
		ep->streak_since = c->at;
	}
	ep->streak++;
	ep->known = true;
	ep->last = *c;
	if (c->healthy)
		ep->last_success = c->at;
	else
		ep->last_failure = c->at;
	metrics_set_health(h->metrics, c->endpoint, c->healthy, ep->last_success);
	return kept;
}

const struct health_endpoint *health_endpoint(const struct health *h, enum endpoint e)
{
	return &h->endpoints[e];
}

const struct health_check *health_check_at(const struct health *h, unsigned i)
{
	uint64_t kept = h->n_checks < HEALTH_CHECKS ? h->n_checks : HEALTH_CHECKS;
	if (i >= kept)
		return NULL;
	return &h->checks[(h->n_checks - kept + i) % HEALTH_CHECKS];
}

const struct health_probe *health_probe_at(const struct health *h, unsigned i)
{
	uint64_t kept = h->n_probes < HEALTH_PROBES ? h->n_probes : HEALTH_PROBES;
	if (i >= kept)
		return NULL;
	return &h->probes[(h->n_probes - kept + i) % HEALTH_PROBES];
}
