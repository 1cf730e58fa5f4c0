/*
 * livenessprobe: flags → config → modules → loop. The only place that exits.
 *
 * Start-up order (UPSTREAM.md §2.1): parse and validate flags, load the
 * policy, wait for the driver, GetPluginInfo once, then listen. Everything
 * after flag parsing runs on one libevent loop, so SIGTERM during any phase
 * ends in the same clean shutdown.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "config.h"
#include "csi.h"
#include "file_read.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "policy_worker.h"
#include "watch.h"

struct daemon {
	struct config cfg;
	struct event_base *base;
	struct metrics *metrics;
	struct csi *csi;
	struct policy *builtin;
	struct worker *custom; /* NULL: the built-in policy decides; owned by check once set */
	char *custom_source;   /* the text custom runs, to tell real changes on reload */
	size_t custom_len;
	char *failed_source; /* the text whose reload failed last: not tried again */
	size_t failed_len;
	struct worker *reloading; /* a reload's worker, loading */
	char *reload_source;
	size_t reload_len;
	struct policy_limits limits;
	struct watch *watch;
	char *driver_name, *driver_vendor; /* from GetPluginInfo */
	struct check *check;
	struct http_server *main_server;
	struct http_server *metrics_server;
	struct event *sig_term, *sig_int, *sig_hup;
	int exit_code;
};

static void stop(struct daemon *d, int code)
{
	d->exit_code = code;
	event_base_loopbreak(d->base);
}

/* A policy file larger than this is refused (it is a ConfigMap's text, at most 1 MiB there). */
#define POLICY_FILE_MAX (16u * 1024 * 1024)

static char *read_file(const char *path, size_t *len, char *errbuf, size_t errlen)
{
	return file_read(path, POLICY_FILE_MAX, len, errbuf, errlen);
}

/* --check-policy loads in this process: it contacts no driver and exits. */
static struct policy *load_policy_file(const char *path, const struct policy_limits *limits,
                                       char *errbuf, size_t errlen)
{
	size_t len = 0;
	char *text = read_file(path, &len, errbuf, errlen);
	if (!text)
		return NULL;
	char chunkname[4200];
	snprintf(chunkname, sizeof(chunkname), "@%s", path);
	struct policy *p = policy_new(text, len, chunkname, limits, errbuf, errlen);
	free(text);
	return p;
}

/*
 * Reads the policy file into *source (kept by the caller on success) and
 * fills the worker options for it. chunkname must hold PATH_MAX + 2 bytes.
 */
static int policy_options(struct daemon *d, struct worker_options *opts, char *chunkname,
                          size_t chunklen, char **source, size_t *len, char *errbuf, size_t errlen)
{
	*source = read_file(d->cfg.policy_file, len, errbuf, errlen);
	if (!*source)
		return -1;
	snprintf(chunkname, chunklen, "@%s", d->cfg.policy_file);
	*opts = (struct worker_options){.source = *source,
	                                .source_len = *len,
	                                .chunkname = chunkname,
	                                .limits = d->limits,
	                                .verbosity = d->cfg.verbosity,
	                                .log_format = d->cfg.log_format};
	return 0;
}

/* Start-up: the policy must load before anything else happens. */
static struct worker *start_policy_worker(struct daemon *d, char *errbuf, size_t errlen)
{
	struct worker_options opts;
	char chunkname[4200];
	if (policy_options(d, &opts, chunkname, sizeof(chunkname), &d->custom_source,
	                   &d->custom_len, errbuf, errlen) < 0)
		return NULL;
	return worker_new(d->base, &opts, errbuf, errlen);
}

static bool same_text(const char *a, size_t alen, const char *b, size_t blen)
{
	return a && b && alen == blen && memcmp(a, b, alen) == 0;
}

/* A reload's new worker answered: swap it in, or keep the old policy. */
static void on_reload_loaded(struct worker *w, const char *error, void *arg)
{
	struct daemon *d = arg;
	d->reloading = NULL;
	if (error) {
		LOG_E("Policy reload failed, keeping the previous policy", "policy",
		      d->cfg.policy_file, "err", error);
		metrics_count_reload(d->metrics, false);
		worker_free(w);
		free(d->failed_source);
		d->failed_source = d->reload_source;
		d->failed_len = d->reload_len;
		d->reload_source = NULL;
		return;
	}
	if (d->check) {
		worker_set_driver(w, d->driver_name, d->driver_vendor);
		check_set_worker(d->check, w);
	} else {
		worker_free(d->custom);
		d->custom = w;
	}
	free(d->custom_source);
	d->custom_source = d->reload_source;
	d->custom_len = d->reload_len;
	d->reload_source = NULL;
	metrics_count_reload(d->metrics, true);
	LOG_I("Policy reloaded", "policy", d->cfg.policy_file);
}

/*
 * Reload (file change or SIGHUP): the new text loads in a new worker while
 * the old policy keeps answering; it is swapped in only if it loads,
 * otherwise the old one stays and the error is logged and counted. A change
 * notice for text already running (or already refused) is ignored; SIGHUP
 * always reloads (and so starts ctx.state afresh).
 */
static void reload_policy(struct daemon *d, bool forced)
{
	char err[2048];
	struct worker_options opts;
	char chunkname[4200];
	char *source = NULL;
	size_t len = 0;
	if (policy_options(d, &opts, chunkname, sizeof(chunkname), &source, &len, err,
	                   sizeof(err)) < 0) {
		LOG_E("Policy reload failed, keeping the previous policy", "policy",
		      d->cfg.policy_file, "err", err);
		metrics_count_reload(d->metrics, false);
		return;
	}
	if (!forced &&
	    (same_text(source, len, d->custom_source, d->custom_len) ||
	     same_text(source, len, d->failed_source, d->failed_len) ||
	     (d->reloading && same_text(source, len, d->reload_source, d->reload_len)))) {
		free(source);
		return;
	}
	/* A newer text replaces a load still in progress. */
	worker_free(d->reloading);
	free(d->reload_source);
	d->reload_source = source;
	d->reload_len = len;
	d->reloading = worker_load(d->base, &opts, on_reload_loaded, d, err, sizeof(err));
	if (!d->reloading)
		on_reload_loaded(NULL, err, d);
}

static void on_policy_changed(void *arg)
{
	reload_policy(arg, false);
}

/*
 * Idle keep-alive connections are closed after 2 × (check timeout + probe
 * timeout) + 60 s, so a parked request never waits that long. Saturates:
 * the largest Go durations must give "a very long time", not an overflow.
 */
static int idle_timeout_s(const struct config *cfg)
{
	int64_t check_s = cfg->check_timeout_ns > 0 ? cfg->check_timeout_ns / 1000000000 : 0;
	int64_t probe_s = cfg->probe_timeout_ns > 0 ? cfg->probe_timeout_ns / 1000000000 : 0;
	int64_t idle = 2 * (check_s + probe_s) + 60; /* each term < 2^34: no overflow */
	return idle < INT_MAX ? (int)idle : INT_MAX;
}

static int start_listeners(struct daemon *d)
{
	const struct config *cfg = &d->cfg;
	char err[512];
	struct http_routes routes = {.healthz = d->check, .idle_timeout_s = idle_timeout_s(cfg)};

	if (cfg->metrics_address[0]) {
		struct http_routes mroutes = {.metrics = d->metrics,
		                              .metrics_path = cfg->metrics_path,
		                              .idle_timeout_s = routes.idle_timeout_s};
		LOG_I("Separate metrics ServeMux listening", "address", cfg->metrics_address);
		int fd = listen_tcp(cfg->metrics_address, err, sizeof(err));
		d->metrics_server = fd >= 0 ? http_new(d->base, &mroutes) : NULL;
		if (fd < 0 || !d->metrics_server || http_serve(d->metrics_server, fd) < 0) {
			LOG_E("Failed to start prometheus metrics endpoint on specified address "
			      "and "
			      "path",
			      "err", fd < 0 ? err : "cannot serve", "addr", cfg->metrics_address,
			      "path", cfg->metrics_path);
			return -1;
		}
	} else if (cfg->http_endpoint[0]) {
		routes.metrics = d->metrics;
		routes.metrics_path = cfg->metrics_path;
	}

	char address[512];
	if (cfg->http_endpoint[0])
		snprintf(address, sizeof(address), "%s", cfg->http_endpoint);
	else
		snprintf(address, sizeof(address), "0.0.0.0:%s", cfg->health_port);
	/* Logged before binding, as upstream does. */
	LOG_I("ServeMux listening", "address", address);
	int fd = listen_tcp(address, err, sizeof(err));
	d->main_server = fd >= 0 ? http_new(d->base, &routes) : NULL;
	if (fd < 0 || !d->main_server || http_serve(d->main_server, fd) < 0) {
		LOG_E("Failed to start http server", "err", fd < 0 ? err : "cannot serve");
		return -1;
	}
	return 0;
}

static void on_plugin_info(const struct csi_plugin_info *info, void *arg)
{
	struct daemon *d = arg;
	if (info->error[0]) {
		LOG_E("Failed to get CSI driver name", "err", info->error);
		stop(d, 1);
		return;
	}
	LOG_I("CSI driver name", "driver", info->name);
	LOG_INFO_V(5, "CSI driver info", "driver", info->name, "vendor_version",
	           info->vendor_version);
	d->driver_name = strdup(info->name);
	d->driver_vendor = strdup(info->vendor_version);
	if (!d->driver_name || !d->driver_vendor) {
		LOG_E("Cannot set up health checks", "err", "out of memory");
		stop(d, 1);
		return;
	}
	csi_set_driver_name(d->csi, info->name);
	policy_set_driver(d->builtin, info->name, info->vendor_version);
	struct check_options opts = {.probe_timeout_ns = d->cfg.probe_timeout_ns,
	                             .check_timeout_ns = d->cfg.check_timeout_ns};
	d->check = check_new(d->base, d->csi, d->builtin, d->metrics, &opts);
	if (!d->check) {
		LOG_E("Cannot set up health checks", "err", "out of memory");
		stop(d, 1);
		return;
	}
	check_set_driver(d->check, info->name);
	if (d->custom) {
		worker_set_driver(d->custom, info->name, info->vendor_version);
		check_set_worker(d->check, d->custom); /* the check owns it from here */
		d->custom = NULL;
	}
	if (start_listeners(d) < 0)
		stop(d, 1);
}

static void on_shutdown_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	LOG_I("Shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	stop(d, 0);
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	if (!d->cfg.policy_file) {
		LOG_INFO_V(2, "SIGHUP: no policy file to reload");
		return;
	}
	reload_policy(d, true);
}

/* --check-policy: validate and exit, without touching a driver. */
/* --check-policy's guard against a load stuck inside C code (no hook can stop it). */
static void on_check_alarm(int sig)
{
	static const char msg[] = "policy: loading did not finish within 5 s\n";
	ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	_exit(1);
}

static int check_policy_only(const struct config *cfg, const struct policy_limits *limits)
{
	char err[2048];
	signal(SIGALRM, on_check_alarm);
	alarm(5);
	struct policy *p = load_policy_file(cfg->check_policy_file, limits, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	policy_free(p);
	fprintf(stderr, "%s: policy loads\n", cfg->check_policy_file);
	return 0;
}

/*
 * Shut-down is bounded: gRPC's teardown can wait for threads that never
 * come (when none could be created), and SIGTERM must still end the
 * process. Past the limit the process exits at once with the code it was
 * going to exit with, after one log line formatted in advance (a signal
 * handler may not format).
 */
#define SHUTDOWN_LIMIT_S 5
static char late_line[1024];
static size_t late_len;
static volatile sig_atomic_t late_exit_code;

static void on_shutdown_late(int sig)
{
	ssize_t n = write(STDERR_FILENO, late_line, late_len);
	(void)n;
	_exit(late_exit_code);
}

static void bound_shutdown(int exit_code)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_shutdown_late;
	late_exit_code = exit_code;
	late_len = log_format_line(late_line, sizeof(late_line), LOG_ERROR, __FILE_NAME__, __LINE__,
	                           "Shutdown did not finish in time, exiting anyway", "limit", "5s",
	                           (char *)NULL);
	sigaction(SIGALRM, &sa, NULL);
	alarm(SHUTDOWN_LIMIT_S);
}

static void cleanup(struct daemon *d)
{
	bound_shutdown(d->exit_code);
	/*
	 * No new requests may reach the check once it is freed: stop listening
	 * first. Then (GRPC-NOTES.md) cancel calls, stop gRPC, answer parked
	 * requests, and free HTTP.
	 */
	http_shutdown(d->main_server);
	http_shutdown(d->metrics_server);
	csi_free(d->csi);
	check_free(d->check);
	if (d->base)
		event_base_loop(d->base, EVLOOP_NONBLOCK); /* flush the last replies */
	http_free(d->main_server);
	http_free(d->metrics_server);
	watch_free(d->watch);
	worker_free(d->custom);
	free(d->custom_source);
	free(d->failed_source);
	worker_free(d->reloading);
	free(d->reload_source);
	policy_free(d->builtin);
	metrics_free(d->metrics);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->base)
		event_base_free(d->base);
	free(d->driver_name);
	free(d->driver_vendor);
	config_free(&d->cfg);
}

/*
 * The signals a Go program (so upstream) neither handles nor dies of: Go's
 * runtime catches them and carries on. Left at their defaults they would
 * kill us (SIGALRM, SIGPROF, SIGXCPU, ...). SIGPIPE: libevent also writes to
 * sockets whose peers are gone. glibc keeps the first two real-time signals
 * for itself; SIGRTMIN is the first one it leaves to programs.
 */
static void ignore_signals(void)
{
	static const int ignored[] = {SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM,
	                              SIGPROF, SIGIO,   SIGPWR,  SIGXFSZ, SIGXCPU};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		signal(ignored[i], SIG_IGN);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		signal(sig, SIG_IGN);
}

/*
 * Like a Go program (>= 1.19, so upstream): the soft open-files limit is
 * raised to the hard one, so that idle clients cannot exhaust a default
 * soft limit of 1024. Failure leaves the limit as it was.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct daemon d;
	char err[2048];
	memset(&d, 0, sizeof(d));

	if (argc > 1 && strcmp(argv[1], POLICY_WORKER_ARG) == 0)
		return policy_worker_main(argc, argv);

	switch (config_parse(&d.cfg, argc, argv, stderr, err, sizeof(err))) {
	case CONFIG_OK:
		break;
	case CONFIG_HELP:
		config_free(&d.cfg);
		return 0;
	case CONFIG_BAD_FLAG:
		config_free(&d.cfg);
		return 2;
	case CONFIG_INVALID:
		LOG_E(err);
		config_free(&d.cfg);
		return 1;
	}
	if (d.cfg.version) {
		printf("livenessprobe %s\n", LP_VERSION);
		config_free(&d.cfg);
		return 0;
	}
	log_setup(d.cfg.verbosity, d.cfg.log_format, d.cfg.skip_headers);
	raise_fd_limit();
	ignore_signals();

	d.limits = (struct policy_limits){.memory = (size_t)d.cfg.policy_memory_limit,
	                                  .instructions = d.cfg.policy_instruction_limit};
	if (d.cfg.check_policy_file) {
		int rc = check_policy_only(&d.cfg, &d.limits);
		config_free(&d.cfg);
		return rc;
	}

	d.exit_code = 1;
	d.builtin = policy_new_builtin(&d.limits, err, sizeof(err));
	if (!d.builtin) {
		LOG_E("Cannot load the built-in policy", "err", err);
		goto out;
	}

	struct csi_address address;
	if (csi_address_parse(d.cfg.csi_address, &address, err, sizeof(err)) ==
	    CSI_ADDRESS_INVALID) {
		LOG_E("Failed to establish connection to CSI driver", "err", err);
		goto out;
	}

	d.base = event_base_new();
	d.metrics = metrics_new();
	if (!d.base || !d.metrics) {
		LOG_E("Cannot start", "err", "out of memory");
		goto out;
	}
	/* The worker is spawned before gRPC starts (GRPC-NOTES.md: no fork after). */
	if (d.cfg.policy_file) {
		d.custom = start_policy_worker(&d, err, sizeof(err));
		if (!d.custom) {
			LOG_E("Cannot load the policy", "err", err);
			goto out;
		}
		d.watch = watch_new(d.base, d.cfg.policy_file, on_policy_changed, &d, err,
		                    sizeof(err));
		if (!d.watch)
			LOG_W("Policy changes will not be noticed; SIGHUP still reloads", "err",
			      err);
	}
	d.sig_term = evsignal_new(d.base, SIGTERM, on_shutdown_signal, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_shutdown_signal, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_reload_signal, &d);
	if (!d.sig_term || !d.sig_int || !d.sig_hup || evsignal_add(d.sig_term, NULL) < 0 ||
	    evsignal_add(d.sig_int, NULL) < 0 || evsignal_add(d.sig_hup, NULL) < 0) {
		LOG_E("Cannot install signal handlers");
		goto out;
	}

	d.csi = csi_new(d.base, &address, d.metrics, err, sizeof(err));
	if (!d.csi) {
		LOG_E("Failed to establish connection to CSI driver", "err", err);
		goto out;
	}
	LOG_INFO_V(5, "Connecting", "address", address.display);
	LOG_I("Calling CSI driver to discover driver name");
	csi_start(d.csi, on_plugin_info, &d);

	d.exit_code = 0;
	event_base_dispatch(d.base);
out:
	cleanup(&d);
	return d.exit_code;
}
