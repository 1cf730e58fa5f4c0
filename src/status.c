/*
 * Rendering /status and /healthz?verbose (status.h). The JSON keys are the
 * contract; the text table is for people and may change.
 */
#include "status.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "csi.h"
#include "grpc_status.h"
#include "clock.h"
#include "health.h"
#include "json.h"
#include "metrics.h"

#ifndef LP_VERSION
#define LP_VERSION "dev"
#endif

static const char *healthy_word(bool healthy)
{
	return healthy ? "healthy" : "unhealthy";
}

static const char *ready_word(int ready)
{
	return ready < 0 ? "absent" : ready ? "true" : "false";
}

/* The driver's identity; "" before GetPluginInfo, or with no driver (the HTTP fuzzer). */
static const struct csi_driver *driver_of(const struct status_sources *s)
{
	static const struct csi_driver none = {.name = "", .vendor_version = ""};
	return s->csi ? csi_driver(s->csi) : &none;
}

static bool connected(const struct status_sources *s)
{
	return s->csi && csi_connected(s->csi);
}

static void put_bool(struct evbuffer *out, bool v)
{
	evbuffer_add_printf(out, "%s", v ? "true" : "false");
}

/* ---- JSON ---- */

/* "healthy", "status", "body", "reason", "at", "fallback" of one check. */
static void json_check_fields(struct evbuffer *out, const struct health_check *c)
{
	evbuffer_add_printf(out, "\"healthy\":");
	put_bool(out, c->healthy);
	evbuffer_add_printf(out, ",\"status\":%d,\"body\":", c->status);
	json_put_string(out, c->body, c->body_len);
	evbuffer_add_printf(out, ",\"reason\":");
	json_put_cstring(out, c->reason);
	evbuffer_add_printf(out, ",\"at\":");
	json_put_time(out, c->at);
	evbuffer_add_printf(out, ",\"fallback\":");
	json_put_cstring(out, c->fallback == STOP_NONE ? NULL : stop_reason_label(c->fallback));
}

/* The same of an endpoint's last check; nulls before one. */
static void json_verdict_fields(struct evbuffer *out, const struct health_endpoint *ep)
{
	if (ep->known)
		json_check_fields(out, &ep->last);
	else
		evbuffer_add_printf(out, "\"healthy\":null,\"status\":null,\"body\":null,"
		                         "\"reason\":null,\"at\":null,\"fallback\":null");
}

static void json_streak(struct evbuffer *out, const struct health_endpoint *ep)
{
	evbuffer_add_printf(out, "{\"healthy\":");
	if (ep->known)
		put_bool(out, ep->last.healthy);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ",\"count\":%llu,\"since\":", (unsigned long long)ep->streak);
	json_put_time(out, ep->known ? ep->streak_since : 0);
	evbuffer_add_printf(out, "}");
}

/* ,"streak":{...},"last_success":...,"last_failure":... of an endpoint. */
static void json_summary(struct evbuffer *out, const struct health_endpoint *ep)
{
	evbuffer_add_printf(out, ",\"streak\":");
	json_streak(out, ep);
	evbuffer_add_printf(out, ",\"last_success\":");
	json_put_time(out, ep->last_success);
	evbuffer_add_printf(out, ",\"last_failure\":");
	json_put_time(out, ep->last_failure);
}

/* /readyz and /startupz, inside "verdict": their verdict, streak and last times. */
static void json_other_endpoints(struct evbuffer *out, const struct health *h)
{
	evbuffer_add_printf(out, ",\"endpoint\":\"%s\",\"endpoints\":{",
	                    endpoint_name(ENDPOINT_HEALTHZ));
	for (int e = ENDPOINT_HEALTHZ + 1; e < ENDPOINT_COUNT; e++) {
		const struct health_endpoint *ep = health_endpoint(h, (enum endpoint)e);
		evbuffer_add_printf(out, "%s\"%s\":{", e > ENDPOINT_HEALTHZ + 1 ? "," : "",
		                    endpoint_name((enum endpoint)e));
		json_verdict_fields(out, ep);
		json_summary(out, ep);
		evbuffer_add_printf(out, "}");
	}
	evbuffer_add_printf(out, "}");
}

static void json_checks(struct evbuffer *out, const struct health *h)
{
	const struct health_check *c;
	evbuffer_add_printf(out, "[");
	for (unsigned i = 0; (c = health_check_at(h, i)); i++) {
		evbuffer_add_printf(out, "%s{\"endpoint\":\"%s\",", i ? "," : "",
		                    endpoint_name(c->endpoint));
		json_check_fields(out, c);
		evbuffer_add_printf(out, ",\"seconds\":");
		json_put_number(out, c->seconds);
		evbuffer_add_printf(out, ",\"probes\":%u}", c->probes);
	}
	evbuffer_add_printf(out, "]");
}

static void json_probes(struct evbuffer *out, const struct health *h)
{
	const struct health_probe *p;
	evbuffer_add_printf(out, "[");
	for (unsigned i = 0; (p = health_probe_at(h, i)); i++) {
		evbuffer_add_printf(out, "%s{\"at\":", i ? "," : "");
		json_put_time(out, p->at);
		evbuffer_add_printf(out, ",\"endpoint\":\"%s\",\"code\":\"%s\",\"ready\":",
		                    endpoint_name(p->endpoint),
		                    grpc_status_canonical_name(p->code));
		evbuffer_add_printf(out, "%s", p->ready < 0 ? "null" : p->ready ? "true" : "false");
		evbuffer_add_printf(out, ",\"connected\":");
		put_bool(out, p->connected);
		evbuffer_add_printf(out, ",\"seconds\":");
		json_put_number(out, p->seconds);
		evbuffer_add_printf(out, ",\"error\":");
		json_put_cstring(out, p->code == 0 ? NULL : p->error);
		evbuffer_add_printf(out, "}");
	}
	evbuffer_add_printf(out, "]");
}

static void json_policy(struct evbuffer *out, const struct status_sources *s)
{
	struct status_policy p;
	unsigned long long ok, failed;
	memset(&p, 0, sizeof(p));
	s->policy(s->policy_ctx, &p);
	metrics_reloads(s->metrics, &ok, &failed);
	evbuffer_add_printf(out, "{\"source\":");
	json_put_cstring(out, p.source);
	evbuffer_add_printf(out, ",\"sha256\":");
	json_put_cstring(out, p.sha256);
	evbuffer_add_printf(out, ",\"loaded_at\":");
	json_put_time(out, p.loaded_at);
	evbuffer_add_printf(out, ",\"runs_in\":");
	json_put_cstring(out, p.runs_in);
	evbuffer_add_printf(out, ",\"reloads\":{\"success\":%llu,\"failure\":%llu}", ok, failed);
	evbuffer_add_printf(out, ",\"last_reload_error\":");
	json_put_cstring(out, p.last_reload_error);
	evbuffer_add_printf(out, ",\"memory_bytes\":%zu}", metrics_policy_memory(s->metrics));
}

static void json_driver(struct evbuffer *out, const struct status_sources *s)
{
	const struct csi_driver *d = driver_of(s);
	evbuffer_add_printf(out, "{\"address\":");
	json_put_cstring(out, s->address);
	evbuffer_add_printf(out, ",\"name\":");
	json_put_cstring(out, d->name);
	evbuffer_add_printf(out, ",\"vendor_version\":");
	json_put_cstring(out, d->vendor_version);
	evbuffer_add_printf(out, ",\"connected\":");
	put_bool(out, connected(s));
	evbuffer_add_printf(out, "}");
}

static void json_process(struct evbuffer *out, const struct status_sources *s)
{
	double started = metrics_start_time(s->metrics);
	double uptime = clock_wall_s() - started;
	evbuffer_add_printf(out, "{\"version\":\"%s\",\"started_at\":", LP_VERSION);
	json_put_time(out, started);
	evbuffer_add_printf(out, ",\"uptime_seconds\":");
	json_put_number(out, uptime > 0 ? uptime : 0);
	evbuffer_add_printf(out, "}");
}

static void render_json(const struct status_sources *s, struct evbuffer *out)
{
	const struct health_endpoint *ep = health_endpoint(s->health, ENDPOINT_HEALTHZ);
	evbuffer_add_printf(out, "{\"verdict\":{");
	json_verdict_fields(out, ep);
	json_other_endpoints(out, s->health);
	evbuffer_add_printf(out, "}");
	json_summary(out, ep);
	evbuffer_add_printf(out, ",\"checks\":");
	json_checks(out, s->health);
	evbuffer_add_printf(out, ",\"probes\":");
	json_probes(out, s->health);
	evbuffer_add_printf(out, ",\"policy\":");
	json_policy(out, s);
	evbuffer_add_printf(out, ",\"driver\":");
	json_driver(out, s);
	evbuffer_add_printf(out, ",\"process\":");
	json_process(out, s);
	evbuffer_add_printf(out, "}\n");
}

/* ---- text ---- */

/* Text in a table cell: JSON-quoted when it is not plain, so a line stays a line. */
static void text_put(struct evbuffer *out, const char *s, size_t len)
{
	bool plain = len > 0;
	for (size_t i = 0; i < len && plain; i++)
		plain = (unsigned char)s[i] > 0x20 && s[i] != '"' && s[i] != 0x7f &&
		        (unsigned char)s[i] < 0x80;
	if (plain)
		evbuffer_add(out, s, len);
	else
		json_put_string(out, s, len);
}

static void text_time(struct evbuffer *out, double t)
{
	char buf[64];
	json_format_time(t, buf, sizeof(buf));
	evbuffer_add_printf(out, "%-27s", buf);
}

static void render_text(const struct status_sources *s, struct evbuffer *out)
{
	struct status_policy p;
	unsigned long long ok, failed;
	const struct csi_driver *d = driver_of(s);
	memset(&p, 0, sizeof(p));
	s->policy(s->policy_ctx, &p);
	metrics_reloads(s->metrics, &ok, &failed);
	double started = metrics_start_time(s->metrics);

	evbuffer_add_printf(out, "livenessprobe %s, started ", LP_VERSION);
	text_time(out, started);
	evbuffer_add_printf(out, "\ndriver    ");
	text_put(out, d->name, strlen(d->name));
	evbuffer_add_printf(out, " ");
	text_put(out, d->vendor_version, strlen(d->vendor_version));
	evbuffer_add_printf(out, " at ");
	text_put(out, s->address, strlen(s->address));
	evbuffer_add_printf(out, ", %s\npolicy    ", connected(s) ? "connected" : "not connected");
	text_put(out, p.source, strlen(p.source));
	evbuffer_add_printf(out, " sha256 %.12s, runs in %s, loaded ", p.sha256, p.runs_in);
	text_time(out, p.loaded_at);
	evbuffer_add_printf(out, "\n          reloads %llu ok, %llu failed, %zu bytes of Lua", ok,
	                    failed, metrics_policy_memory(s->metrics));
	if (p.last_reload_error) {
		evbuffer_add_printf(out, ", last reload error ");
		text_put(out, p.last_reload_error, strlen(p.last_reload_error));
	}

	evbuffer_add_printf(out, "\n\n%-9s %-9s %-6s %-6s %-27s %-27s %-27s %s\n", "ENDPOINT",
	                    "VERDICT", "STATUS", "STREAK", "SINCE", "LAST SUCCESS", "LAST FAILURE",
	                    "REASON");
	for (int e = 0; e < ENDPOINT_COUNT; e++) {
		const struct health_endpoint *ep = health_endpoint(s->health, (enum endpoint)e);
		evbuffer_add_printf(out, "%-9s ", endpoint_name((enum endpoint)e));
		if (!ep->known) {
			evbuffer_add_printf(out, "%-9s %-6s %-6s ", "-", "-", "0");
			text_time(out, 0);
		} else {
			evbuffer_add_printf(out, "%-9s %-6d %-6llu ",
			                    healthy_word(ep->last.healthy), ep->last.status,
			                    (unsigned long long)ep->streak);
			text_time(out, ep->streak_since);
		}
		evbuffer_add_printf(out, " ");
		text_time(out, ep->last_success);
		evbuffer_add_printf(out, " ");
		text_time(out, ep->last_failure);
		evbuffer_add_printf(out, " ");
		if (ep->known)
			text_put(out, ep->last.reason, strlen(ep->last.reason));
		evbuffer_add_printf(out, "\n");
	}

	evbuffer_add_printf(
	        out, "\nCHECKS (oldest first)\n%-27s %-9s %-9s %-6s %-9s %-6s %-12s %s\n", "AT",
	        "ENDPOINT", "VERDICT", "STATUS", "SECONDS", "PROBES", "FALLBACK", "BODY");
	const struct health_check *c;
	for (unsigned i = 0; (c = health_check_at(s->health, i)); i++) {
		text_time(out, c->at);
		evbuffer_add_printf(
		        out, " %-9s %-9s %-6d %-9.6f %-6u %-12s ", endpoint_name(c->endpoint),
		        healthy_word(c->healthy), c->status, c->seconds, c->probes,
		        c->fallback == STOP_NONE ? "-" : stop_reason_label(c->fallback));
		text_put(out, c->body, c->body_len);
		evbuffer_add_printf(out, "\n");
	}

	evbuffer_add_printf(out, "\nPROBES (oldest first)\n%-27s %-9s %-19s %-6s %-9s %-9s %s\n",
	                    "AT", "ENDPOINT", "CODE", "READY", "CONNECTED", "SECONDS", "ERROR");
	const struct health_probe *pr;
	for (unsigned i = 0; (pr = health_probe_at(s->health, i)); i++) {
		text_time(out, pr->at);
		evbuffer_add_printf(out, " %-9s %-19s %-6s %-9s %-9.6f ",
		                    endpoint_name(pr->endpoint),
		                    grpc_status_canonical_name(pr->code),
		                    pr->code == 0 ? ready_word(pr->ready) : "-",
		                    pr->connected ? "yes" : "no", pr->seconds);
		if (pr->code != 0)
			text_put(out, pr->error, strlen(pr->error));
		evbuffer_add_printf(out, "\n");
	}
}

void status_render(const struct status_sources *s, enum status_format format, struct evbuffer *out)
{
	if (format == STATUS_JSON)
		render_json(s, out);
	else
		render_text(s, out);
}

void status_render_verbose(const struct health *h, const struct health_check *c,
                           struct evbuffer *out)
{
	evbuffer_add_printf(out, "\n[%c]reason: ", c->healthy ? '+' : '-');
	evbuffer_add(out, c->reason, strlen(c->reason));
	if (c->fallback != STOP_NONE)
		evbuffer_add_printf(out, " (the policy failed: %s; the built-in policy answered)",
		                    stop_reason_label(c->fallback));
	evbuffer_add_printf(out, "\n");
	/* The check's probes: this endpoint's, between its first seq and its end. */
	unsigned kept = 0;
	const struct health_probe *p;
	for (unsigned i = 0; (p = health_probe_at(h, i)); i++)
		kept += p->endpoint == c->endpoint && p->seq >= c->first_seq && p->seq < c->end_seq;
	if (kept < c->probes)
		evbuffer_add_printf(out, "(%u earlier probes of this check are no longer kept)\n",
		                    c->probes - kept);
	unsigned n = c->probes - kept;
	for (unsigned i = 0; (p = health_probe_at(h, i)); i++) {
		if (p->endpoint != c->endpoint || p->seq < c->first_seq || p->seq >= c->end_seq)
			continue;
		evbuffer_add_printf(out, "[%c]probe %u: %s", p->code == 0 ? '+' : '-', ++n,
		                    grpc_status_canonical_name(p->code));
		if (p->code == 0)
			evbuffer_add_printf(out, " ready=%s", ready_word(p->ready));
		evbuffer_add_printf(out, " connected=%s seconds=%.6f",
		                    p->connected ? "true" : "false", p->seconds);
		if (p->code != 0) {
			evbuffer_add_printf(out, ": ");
			evbuffer_add(out, p->error, strlen(p->error));
		}
		evbuffer_add_printf(out, "\n");
	}
	if (c->probes == 0)
		evbuffer_add_printf(out, "(no probe)\n");
}
