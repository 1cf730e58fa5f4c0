/*
 * The policy file, its reloads and the runner of each text that loaded
 * (policy_source.h).
 *
 * Texts: current (the one deciding), loading (a newer one in a worker
 * being started), failed (the last one that did not load: a change notice
 * for it again is ignored; SIGHUP tries it anyway). A reload's worker
 * loads while the current policy keeps answering; it is swapped in only
 * once it loaded.
 */
#include "policy_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "csi.h"
#include "file_read.h"
#include "metrics.h"
#include "clock.h"
#include "runner.h"
#include "sha256.h"
#include "status.h"
#include "utf8.h"
#include "watch.h"
#include "worker.h"

/* A policy file larger than this is refused (a ConfigMap holds at most 1 MiB). */
#define POLICY_FILE_MAX (16u * 1024 * 1024)
#define MAX_CHECKS      4 /* one per endpoint */

struct text {
	char *bytes;
	size_t len;
};

struct policy_source {
	struct event_base *base;
	struct metrics *metrics;
	struct policy_source_options opts;
	char chunkname[4200];
	struct watch *watch;
	const struct csi_driver *driver;
	struct check *checks[MAX_CHECKS];
	int n_checks;

	struct runner *current; /* deciding; NULL until the first load ended */
	struct text current_text;
	struct runner *loading; /* a newer text, loading */
	struct text loading_text;
	struct text failed_text;

	/* For /status: the current text's digest and load time, the last reload's error. */
	char sha256[SHA256_HEX_LEN + 1];
	double loaded_at;
	char last_error[1024]; /* "": the last reload did not fail */

	policy_source_ready_cb ready_cb; /* the first load's reporter; NULL once it reported */
	void *ready_arg;
};

static void text_set(struct text *t, struct text *from)
{
	free(t->bytes);
	*t = *from;
	from->bytes = NULL;
	from->len = 0;
}

static bool text_same(const struct text *a, const char *bytes, size_t len)
{
	return a->bytes && a->len == len && memcmp(a->bytes, bytes, len) == 0;
}

/* text (taken over) decides from now on. */
static void set_current_text(struct policy_source *s, struct text *text)
{
	text_set(&s->current_text, text);
	sha256_hex(s->current_text.bytes, s->current_text.len, s->sha256);
	s->loaded_at = clock_wall_s();
	s->last_error[0] = '\0';
}

/* A reload failed: logged, counted, kept for /status; the previous policy stays. */
static void reload_failed(struct policy_source *s, const char *error)
{
	LOG_E("Policy reload failed, keeping the previous policy", "policy", s->opts.path, "err",
	      error);
	metrics_count_reload(s->metrics, false);
	utf8_copy(s->last_error, sizeof(s->last_error), error, strlen(error));
}

static void on_changed(void *arg)
{
	policy_source_reload(arg, false);
}

static void give_driver(struct policy_source *s, struct runner *r)
{
	if (r && s->driver && s->driver->name[0])
		runner_set_driver(r, s->driver->name, s->driver->vendor_version);
}

/* The first load ended. */
static void first_loaded(struct policy_source *s, struct runner *r, const char *error)
{
	policy_source_ready_cb cb = s->ready_cb;
	s->ready_cb = NULL;
	s->loading = NULL;
	if (error) {
		runner_unref(r);
		cb(error, s->ready_arg);
		return;
	}
	s->current = r;
	set_current_text(s, &s->loading_text);
	char err[512];
	s->watch = watch_new(s->base, s->opts.path, on_changed, s, err, sizeof(err));
	if (!s->watch)
		LOG_W("Policy changes will not be noticed; SIGHUP still reloads", "err", err);
	cb(NULL, s->ready_arg);
}

/* A reload's worker answered: swap it in, or keep the old policy. */
static void on_loaded(struct runner *r, const char *error, void *arg)
{
	struct policy_source *s = arg;
	if (s->ready_cb) {
		first_loaded(s, r, error);
		return;
	}
	s->loading = NULL;
	if (error) {
		reload_failed(s, error);
		runner_unref(r);
		text_set(&s->failed_text, &s->loading_text);
		return;
	}
	give_driver(s, r);
	for (int i = 0; i < s->n_checks; i++)
		check_set_runner(s->checks[i], r);
	runner_unref(s->current);
	s->current = r;
	set_current_text(s, &s->loading_text);
	metrics_count_reload(s->metrics, true);
	LOG_I("Policy reloaded", "policy", s->opts.path);
}

/* Starts loading text (taken over) in a new worker; the one loading before is dropped. */
static int load(struct policy_source *s, struct text *text, char *errbuf, size_t errlen)
{
	struct worker_options o = {.source = text->bytes,
	                           .source_len = text->len,
	                           .chunkname = s->chunkname,
	                           .limits = s->opts.limits,
	                           .verbosity = s->opts.verbosity,
	                           .log_format = s->opts.log_format};
	runner_unref(s->loading);
	s->loading = worker_new(s->base, &o, on_loaded, s, errbuf, errlen);
	text_set(&s->loading_text, text);
	return s->loading ? 0 : -1;
}

struct policy_source *policy_source_new(struct event_base *base, struct metrics *metrics,
                                        const struct policy_source_options *options,
                                        policy_source_ready_cb cb, void *arg, char *errbuf,
                                        size_t errlen)
{
	struct policy_source *s = calloc(1, sizeof(*s));
	struct text t = {0};
	if (!s) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->metrics = metrics;
	s->opts = *options;
	s->ready_cb = cb;
	s->ready_arg = arg;
	snprintf(s->chunkname, sizeof(s->chunkname), "@%s", options->path);
	t.bytes = file_read(options->path, POLICY_FILE_MAX, &t.len, errbuf, errlen);
	if (!t.bytes || load(s, &t, errbuf, errlen) < 0) {
		free(t.bytes);
		policy_source_free(s);
		return NULL;
	}
	return s;
}

int policy_source_add_check(struct policy_source *s, struct check *c)
{
	if (s->n_checks == MAX_CHECKS)
		return -1;
	s->checks[s->n_checks++] = c;
	if (s->current)
		check_set_runner(c, s->current);
	return 0;
}

void policy_source_set_driver(struct policy_source *s, const struct csi_driver *driver)
{
	s->driver = driver;
	give_driver(s, s->current);
}

void policy_source_reload(struct policy_source *s, bool forced)
{
	char err[2048];
	struct text t = {0};
	if (s->ready_cb)
		return; /* the first load is still going: it reads the file as it was */
	t.bytes = file_read(s->opts.path, POLICY_FILE_MAX, &t.len, err, sizeof(err));
	if (!t.bytes) {
		reload_failed(s, err);
		return;
	}
	if (!forced && (text_same(&s->current_text, t.bytes, t.len) ||
	                text_same(&s->failed_text, t.bytes, t.len) ||
	                (s->loading && text_same(&s->loading_text, t.bytes, t.len)))) {
		free(t.bytes);
		return;
	}
	/* A newer text replaces a load still in progress. */
	if (load(s, &t, err, sizeof(err)) < 0) {
		free(t.bytes);
		reload_failed(s, err);
	}
}

void policy_source_status(const struct policy_source *s, struct status_policy *out)
{
	out->source = s->opts.path;
	out->sha256 = s->sha256;
	out->loaded_at = s->loaded_at;
	out->runs_in = s->current ? runner_runs_in(s->current) : "worker";
	out->last_reload_error = s->last_error[0] ? s->last_error : NULL;
}

void policy_source_free(struct policy_source *s)
{
	if (!s)
		return;
	watch_free(s->watch);
	runner_unref(s->loading);
	runner_unref(s->current);
	free(s->current_text.bytes);
	free(s->loading_text.bytes);
	free(s->failed_text.bytes);
	free(s);
}
