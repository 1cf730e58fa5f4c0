/*
 * csi-mock-driver: a CSI driver (Identity, Node, Controller) with scripted
 * answers, for tests and for users who want to see how a probe reacts to a
 * failing driver. flags → config → script, call log → server → loop; the
 * only place that exits.
 *
 * Exit status: 0 after SIGTERM/SIGINT or --help, 1 when the socket cannot
 * be served, 2 for a bad command line, a --script that cannot be loaded or
 * a --call-log that cannot be opened; a script's "exit" action exits with
 * the code it asks for.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "mock_config.h"
#include "mock_script.h"
#include "mock_server.h"

/*
 * Signals: SIGTERM and SIGINT are blocked before grpc_init, so every thread
 * (gRPC's included) inherits the mask, and a dedicated thread takes them
 * with sigwait. That thread runs ordinary code, not a handler, so it may
 * call mock_server_stop, the one server function made for other threads;
 * the serving thread never polls for signals and sleeps in the completion
 * queue until gRPC reports the shutdown complete.
 */
struct signal_waiter {
	pthread_t thread;
	sigset_t signals;
	struct mock_server *server;
};

static void *signal_waiter_main(void *arg)
{
	struct signal_waiter *w = arg;
	int sig;

	if (sigwait(&w->signals, &sig) == 0)
		mock_server_stop(w->server);
	return NULL;
}

/*
 * Wakes the waiter if no signal came (the server stopped on its own) and
 * joins it, so that mock_server_stop has returned before the server is freed.
 */
static void signal_waiter_join(struct signal_waiter *w)
{
	pthread_kill(w->thread, SIGTERM);
	pthread_join(w->thread, NULL);
}

int main(int argc, char **argv)
{
	struct mock_config cfg;
	struct mock_server *server = NULL;
	struct mock_script *script = NULL;
	struct mock_call_log *call_log = NULL;
	struct signal_waiter waiter;
	char err[512];
	int status = 1;

	switch (mock_config_parse(&cfg, argc, argv, stderr)) {
	case MOCK_CONFIG_OK:
		break;
	case MOCK_CONFIG_HELP:
		return 0;
	case MOCK_CONFIG_BAD_FLAG:
		return 2;
	}
	if (cfg.version) {
		printf("csi-mock-driver %s\n", LP_VERSION);
		mock_config_free(&cfg);
		return 0;
	}
	log_setup(0, LOG_FORMAT_TEXT, false);

	if (cfg.script_path) {
		script = mock_script_load(cfg.script_path, err, sizeof(err));
		if (!script) {
			LOG_E("Cannot load the script", "err", err);
			mock_config_free(&cfg);
			return 2;
		}
	}
	if (cfg.call_log_path) {
		call_log = mock_call_log_open(cfg.call_log_path, err, sizeof(err));
		if (!call_log) {
			LOG_E("Cannot open the call log", "err", err);
			mock_script_free(script);
			mock_config_free(&cfg);
			return 2;
		}
	}

	sigemptyset(&waiter.signals);
	sigaddset(&waiter.signals, SIGTERM);
	sigaddset(&waiter.signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &waiter.signals, NULL);
	/* A test harness that closes our stdout must not kill the driver. */
	signal(SIGPIPE, SIG_IGN);

	server = mock_server_new(&cfg, script, call_log, stdout, err, sizeof(err));
	if (!server) {
		LOG_E("Cannot serve", "err", err);
		goto out;
	}
	waiter.server = server;
	if (pthread_create(&waiter.thread, NULL, signal_waiter_main, &waiter) != 0) {
		LOG_E("Cannot serve", "err", "cannot start the signal thread");
		goto out;
	}
	printf("listening %s\n", cfg.socket_path);
	fflush(stdout);

	status = 0;
	if (mock_server_run(server, err, sizeof(err)) < 0) {
		LOG_E("Stopped on an internal error", "err", err);
		status = 1;
	}
	signal_waiter_join(&waiter);
out:
	mock_server_free(server); /* its last calls end, and are logged, here */
	mock_call_log_free(call_log);
	mock_script_free(script);
	mock_config_free(&cfg);
	return status;
}
