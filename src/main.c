/*
 * livenessprobe: start-up and shut-down; the only place that exits.
 *
 * Start-up order (UPSTREAM.md §2.1): parse and validate flags, load the
 * policy, wait for the driver, GetPluginInfo once, then listen. Everything
 * after flag parsing runs on one libevent loop, each phase started by the
 * end of the one before, so SIGTERM during any phase ends in the same clean
 * shutdown. The modules do the work: policy_source (the policy and its
 * reloads), csi (the driver), check (the checks), http (the listeners).
 */
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "clock.h"
#include "config.h"
#include "csi.h"
#include "file_check.h"
#include "grpc_loop.h"
#include "health.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "policy_source.h"
#include "policy_verify.h"
#include "runner.h"
#include "runner_local.h"
#include "sha256.h"
#include "status.h"
#include "worker.h"
#include "worker_child.h"

struct daemon {
	struct config cfg;
	struct policy_limits limits;
	struct csi_address *address; /* until csi_new has copied it */
	struct event_base *base;
	struct metrics *metrics;
	struct runner *builtin;
	struct policy_source *policy; /* NULL: the built-in policy decides */
	struct csi *csi;
	struct health *health;
	struct check *checks[ENDPOINT_COUNT];
	struct file_checker *files;   /* ctx.file's stats */
	struct event *interval_timer; /* --probe-interval */
	struct status_sources status;
	char builtin_sha256[SHA256_HEX_LEN + 1];
	struct http_server *main_server;
	struct http_server *metrics_server;
	struct event *sig_term, *sig_int, *sig_hup;
	int exit_code;
	bool stopping; /* the loop was told to end: start nothing more */
};

static void stop(struct daemon *d, int code)
{
	d->exit_code = code;
	d->stopping = true;
	event_base_loopbreak(d->base);
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
	struct http_routes routes = {.health = d->health,
	                             .status = cfg->status ? &d->status : NULL,
	                             .idle_timeout_s = idle_timeout_s(cfg)};
	memcpy(routes.checks, d->checks, sizeof(routes.checks));

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

/* Probes and calls go to the driver, stats to the file checker (check.h's prober). */
static struct csi_request *probe_driver(void *ctx, int64_t deadline_ns, csi_result_cb cb, void *arg)
{
	return csi_probe(ctx, deadline_ns, cb, arg);
}

static struct csi_request *call_driver(void *ctx, const struct csi_method *m, int64_t deadline_ns,
                                       csi_result_cb cb, void *arg)
{
	return csi_call(ctx, m, deadline_ns, cb, arg);
}

static struct file_check *stat_file(void *files, const char *path, int64_t deadline_ns,
                                    file_check_cb cb, void *arg)
{
	return file_check_start(files, path, deadline_ns, cb, arg);
}

/* What /status says of the policy deciding now. */
static void status_policy(void *ctx, struct status_policy *out)
{
	struct daemon *d = ctx;
	if (d->policy) {
		policy_source_status(d->policy, out);
		return;
	}
	out->source = "builtin";
	out->sha256 = d->builtin_sha256;
	out->loaded_at = metrics_start_time(d->metrics);
	out->runs_in = runner_runs_in(d->builtin);
	out->last_reload_error = NULL;
}

/* --probe-interval: a background /healthz check, unless one is in flight. */
static void on_interval(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	check_start(d->checks[ENDPOINT_HEALTHZ]);
}

/* GetPluginInfo answered: the checks and the listeners start. */
static void on_plugin_info(const struct csi_plugin_info *info, void *arg)
{
	struct daemon *d = arg;
	if (info->error[0]) {
		LOG_E("Failed to get CSI driver name", "err", info->error);
		stop(d, 1);
		return;
	}
	const struct csi_driver *driver = csi_driver(d->csi);
	LOG_I("CSI driver name", "driver", driver->name);
	LOG_INFO_V(5, "CSI driver info", "driver", driver->name, "vendor_version",
	           driver->vendor_version);
	runner_set_driver(d->builtin, driver->name, driver->vendor_version);
	struct check_prober prober = {.probe = probe_driver,
	                              .call = call_driver,
	                              .cancel = csi_request_cancel,
	                              .ctx = d->csi,
	                              .stat = stat_file,
	                              .cancel_stat = file_check_cancel,
	                              .files = d->files};
	for (int e = 0; e < ENDPOINT_COUNT; e++) {
		struct check_options opts = {.probe_timeout_ns = d->cfg.probe_timeout_ns,
		                             .check_timeout_ns = d->cfg.check_timeout_ns,
		                             .endpoint = (enum endpoint)e,
		                             .health = d->health};
		d->checks[e] = check_new(d->base, &prober, d->builtin, d->metrics, driver, &opts);
		if (!d->checks[e]) {
			LOG_E("Cannot set up health checks", "err", "out of memory");
			stop(d, 1);
			return;
		}
		if (d->policy && policy_source_add_check(d->policy, d->checks[e]) < 0) {
			LOG_E("Cannot set up health checks", "err",
			      "too many checks for the policy");
			stop(d, 1);
			return;
		}
	}
	if (d->policy)
		policy_source_set_driver(d->policy, driver);
	d->status = (struct status_sources){.health = d->health,
	                                    .metrics = d->metrics,
	                                    .csi = d->csi,
	                                    .address = csi_display(d->csi),
	                                    .policy = status_policy,
	                                    .policy_ctx = d};
	if (d->cfg.probe_interval_ns > 0) {
		struct timeval tv = clock_timeval(d->cfg.probe_interval_ns);
		d->interval_timer = event_new(d->base, -1, EV_PERSIST, on_interval, d);
		if (!d->interval_timer || evtimer_add(d->interval_timer, &tv) < 0) {
			LOG_E("Cannot set up health checks", "err", "out of memory");
			stop(d, 1);
			return;
		}
	}
	if (start_listeners(d) < 0)
		stop(d, 1);
}

/* The policy is there (or there is none): wait for the driver. -1 when that cannot start. */
static int start_driver(struct daemon *d)
{
	char err[2048];
	d->csi = csi_new(d->base, d->address, d->metrics, err, sizeof(err));
	free(d->address); /* 12.5 kB of room, mostly: its pages go back at the next trim */
	d->address = NULL;
	if (!d->csi) {
		LOG_E("Failed to establish connection to CSI driver", "err", err);
		return -1;
	}
	d->files = file_checker_new(d->base, d->cfg.policy_allow_paths.paths,
	                            d->cfg.policy_allow_paths.count, NULL);
	if (!d->files) {
		LOG_E("Cannot set up file checks", "err", "out of memory");
		return -1;
	}
	LOG_INFO_V(5, "Connecting", "address", csi_display(d->csi));
	LOG_I("Calling CSI driver to discover driver name");
	csi_start(d->csi, on_plugin_info, d);
	return 0;
}

static void on_policy_ready(const char *error, void *arg)
{
	struct daemon *d = arg;
	if (d->stopping)
		return;
	if (error) {
		LOG_E("Cannot load the policy", "err", error);
		stop(d, 1);
	} else if (start_driver(d) < 0) {
		stop(d, 1);
	}
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
	if (d->stopping)
		return; /* cleanup's last loop pass: the policy source may be gone */
	if (!d->policy) {
		LOG_INFO_V(2, "SIGHUP: no policy file to reload");
		return;
	}
	policy_source_reload(d->policy, true);
}

/*
 * The loop. With epoll, libevent's changelist folds the changes one loop
 * pass makes to a socket's events into one epoll_ctl: answering a request
 * stops reading (http.c) and starts writing in the same pass, and
 * finishing the write does the reverse. (The changelist is unsafe only
 * for descriptors dup()ed within this process, which the daemon never
 * makes.)
 */
static struct event_base *new_event_base(void)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

/*
 * Shut-down is bounded: gRPC's teardown can wait for threads that never
 * come (when none could be created), and SIGTERM must still end the
 * process. Past the limit the process exits at once with the code it was
 * going to exit with, after one log line formatted in advance (a signal
 * handler may not format).
 */
#define SHUTDOWN_LIMIT_S 5
/* Within it: how long killed policy workers may take to die before we leave them to init. */
#define WORKER_REAP_TIMEOUT_NS 1000000000LL
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
	 * The policy source goes first: a reload finishing now must not reach
	 * the check or the driver's identity once they are gone (the check
	 * keeps its own reference to the runner it uses). No new requests may
	 * reach the check once it is freed: stop listening next. The check
	 * cancels its probe and answers its parked requests; then
	 * (GRPC-NOTES.md) gRPC stops, the last replies are flushed, and HTTP is
	 * freed.
	 */
	d->stopping = true;
	policy_source_free(d->policy);
	d->policy = NULL;
	http_shutdown(d->main_server);
	http_shutdown(d->metrics_server);
	if (d->interval_timer)
		event_free(d->interval_timer);
	for (int e = 0; e < ENDPOINT_COUNT; e++)
		check_free(d->checks[e]);
	file_checker_free(d->files);
	csi_free(d->csi);
	if (d->base)
		event_base_loop(d->base, EVLOOP_NONBLOCK); /* flush the last replies */
	http_free(d->main_server);
	http_free(d->metrics_server);
	runner_unref(d->builtin);
	/* The workers are killed by now; SIGKILL ends them within milliseconds. */
	worker_reap_before_exit(WORKER_REAP_TIMEOUT_NS);
	health_free(d->health);
	metrics_free(d->metrics);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->base)
		event_base_free(d->base);
	free(d->address);
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
	/*
	 * Static, not on the stack: stack clash protection writes every page
	 * of a frame, which then stays resident. Here only the bytes written
	 * are.
	 */
	static struct daemon d;
	static char err[2048];

	/*
	 * One malloc arena for every thread: glibc gives each thread that
	 * allocates an arena of its own, whose pages stay private memory
	 * (gRPC's threads each allocate a little). Measured against the Go
	 * driver: RssAnon idle 800 -> 720 kB, CPU per probe unchanged, as the
	 * threads take turns per probe rather than allocating at once.
	 */
	mallopt(M_ARENA_MAX, 1);
	if (argc > 1 && strcmp(argv[1], WORKER_ARG) == 0)
		return worker_child_main(argc, argv);

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
	grpc_loop_choose_poller(); /* before any thread */

	d.limits = (struct policy_limits){.memory = (size_t)d.cfg.policy_memory_limit,
	                                  .instructions = d.cfg.policy_instruction_limit};
	if (d.cfg.check_policy_file) {
		int rc = policy_verify(d.cfg.check_policy_file, &d.limits, d.cfg.probe_timeout_ns,
		                       d.cfg.check_timeout_ns, stderr);
		config_free(&d.cfg);
		return rc;
	}

	d.exit_code = 1;
	struct policy *builtin = policy_new_builtin(&d.limits, err, sizeof(err));
	if (!builtin) {
		LOG_E("Cannot load the built-in policy", "err", err);
		goto out;
	}
	d.base = new_event_base();
	d.metrics = metrics_new();
	d.health = d.metrics ? health_new(d.metrics) : NULL;
	sha256_hex(lp_default_policy_source, lp_default_policy_source_len, d.builtin_sha256);
	d.builtin = d.base ? runner_local_new(d.base, builtin) : (policy_free(builtin), NULL);
	if (!d.base || !d.metrics || !d.health || !d.builtin) {
		LOG_E("Cannot start", "err", "out of memory");
		goto out;
	}
	/* 12.5 kB of room for three short texts: freed once csi_new has copied them. */
	d.address = malloc(sizeof(*d.address));
	if (!d.address) {
		LOG_E("Cannot start", "err", "out of memory");
		goto out;
	}
	if (csi_address_parse(d.cfg.csi_address, d.address, err, sizeof(err)) ==
	    CSI_ADDRESS_INVALID) {
		LOG_E("Failed to establish connection to CSI driver", "err", err);
		goto out;
	}
	/*
	 * libevent restores a signal's previous disposition when its event is
	 * freed: SIGHUP's is "ignore", so that one arriving during the last
	 * steps of shut-down is not the default "terminate".
	 */
	signal(SIGHUP, SIG_IGN);
	d.sig_term = evsignal_new(d.base, SIGTERM, on_shutdown_signal, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_shutdown_signal, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_reload_signal, &d);
	if (!d.sig_term || !d.sig_int || !d.sig_hup || evsignal_add(d.sig_term, NULL) < 0 ||
	    evsignal_add(d.sig_int, NULL) < 0 || evsignal_add(d.sig_hup, NULL) < 0) {
		LOG_E("Cannot install signal handlers");
		goto out;
	}
	if (d.cfg.policy_file) {
		struct policy_source_options o = {.path = d.cfg.policy_file,
		                                  .limits = d.limits,
		                                  .verbosity = d.cfg.verbosity,
		                                  .log_format = d.cfg.log_format};
		d.policy = policy_source_new(d.base, d.metrics, &o, on_policy_ready, &d, err,
		                             sizeof(err));
		if (!d.policy) {
			LOG_E("Cannot load the policy", "err", err);
			goto out;
		}
	} else if (start_driver(&d) < 0) {
		goto out;
	}

	d.exit_code = 0;
	event_base_dispatch(d.base);
out:
	cleanup(&d);
	return d.exit_code;
}
