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
	/* The allocations the kept texts live in (NULL: texts are ""), slot by slot. */
	char *check_texts[HEALTH_CHECKS];
	char *probe_texts[HEALTH_PROBES];
	char *endpoint_texts[ENDPOINT_COUNT];
};

struct health *health_new(struct metrics *metrics)
{
	struct health *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->metrics = metrics;
	for (size_t i = 0; i < HEALTH_CHECKS; i++)
		h->checks[i].body = h->checks[i].reason = "";
	for (size_t i = 0; i < HEALTH_PROBES; i++)
		h->probes[i].error = "";
	for (size_t i = 0; i < ENDPOINT_COUNT; i++)
		h->endpoints[i].last.body = h->endpoints[i].last.reason = "";
	return h;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < HEALTH_CHECKS; i++)
		free(h->check_texts[i]);
	for (size_t i = 0; i < HEALTH_PROBES; i++)
		free(h->probe_texts[i]);
	for (size_t i = 0; i < ENDPOINT_COUNT; i++)
		free(h->endpoint_texts[i]);
	free(h);
}

size_t health_copy_text(char *dst, const char *src, size_t len)
{
	return utf8_copy(dst, HEALTH_TEXT_MAX, src, len);
}

/* The room a text of len bytes takes once kept: cut to fit, plus its NUL. */
static size_t kept_size(size_t len)
{
	return (len < HEALTH_TEXT_MAX - 1 ? len : HEALTH_TEXT_MAX - 1) + 1;
}

/*
 * *dst = *src with its own copies of body and reason, in one allocation
 * that replaces *texts (the slot's previous one is freed).
 */
static void keep_check(struct health_check *dst, char **texts, const struct health_check *src)
{
	const char *body = src->body ? src->body : "", *reason = src->reason ? src->reason : "";
	size_t body_len = src->body ? src->body_len : 0,
	       reason_len = src->reason ? src->reason_len : 0;
	size_t body_size = kept_size(body_len), reason_size = kept_size(reason_len);
	char *mem = malloc(body_size + reason_size);
	*dst = *src;
	if (mem) {
		dst->body = mem;
		dst->body_len = utf8_copy(mem, body_size, body, body_len);
		dst->reason = mem + body_size;
		dst->reason_len = utf8_copy(mem + body_size, reason_size, reason, reason_len);
	} else {
		dst->body = dst->reason = "";
		dst->body_len = dst->reason_len = 0;
	}
	free(*texts);
	*texts = mem;
}

uint64_t health_next_seq(const struct health *h)
{
	return h->n_probes + 1;
}

uint64_t health_add_probe(struct health *h, enum endpoint e, const struct csi_result *r)
{
	size_t slot = h->n_probes % HEALTH_PROBES;
	struct health_probe *p = &h->probes[slot];
	p->seq = ++h->n_probes;
	p->at = clock_wall_s();
	p->endpoint = e;
	p->code = r->code;
	p->ready = r->code == 0 ? r->ready : -1;
	p->connected = r->connected;
	p->seconds = r->seconds;
	free(h->probe_texts[slot]);
	h->probe_texts[slot] = NULL;
	p->error = "";
	size_t len = r->code == 0 ? 0 : strlen(r->error);
	if (len > 0) {
		char *error = malloc(kept_size(len));
		if (error) {
			utf8_copy(error, kept_size(len), r->error, len);
			h->probe_texts[slot] = error;
			p->error = error;
		}
	}
	return p->seq;
}

static const char *verdict_word(bool healthy)
{
	return healthy ? "healthy" : "unhealthy";
}

const struct health_check *health_add_check(struct health *h, const struct health_check *c)
{
	size_t slot = h->n_checks++ % HEALTH_CHECKS;
	struct health_check *kept = &h->checks[slot];
	keep_check(kept, &h->check_texts[slot], c);
	c = kept; /* its texts cut, as they are shown */
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
	keep_check(&ep->last, &h->endpoint_texts[c->endpoint], c);
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
