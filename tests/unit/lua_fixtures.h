/*
 * Shared by the policy and sandbox tests: loading inline policies, probe
 * results made by hand, and running a case that might hang or crash the
 * process in a forked child with a time limit, so that a runaway is reported
 * as one failed check instead of stopping the whole test.
 */
#ifndef LP_LUA_FIXTURES_H
#define LP_LUA_FIXTURES_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "csi.h"
#include "policy.h"
#include "testing.h"

#define MS_NS  1000000LL
#define SEC_NS 1000000000LL

static char fixture_err[1024];

/* Loads src as "@test.lua" under the given limits; prints why when it fails. */
static inline struct policy *fixture_policy(const char *src, size_t memory, int64_t instructions)
{
	struct policy_limits limits = {.memory = memory, .instructions = instructions};
	fixture_err[0] = '\0';
	struct policy *p = policy_new(src, strlen(src), "@test.lua", &limits, fixture_err,
	                              sizeof(fixture_err));
	if (!p)
		fprintf(stderr, "policy_new failed: %s\n", fixture_err);
	return p;
}

/* A Probe outcome as csi.c would report it. */
static inline struct csi_result fixture_result(bool connected, int code, int ready,
                                               const char *message, const char *error)
{
	struct csi_result r;
	memset(&r, 0, sizeof(r));
	r.connected = connected;
	r.code = code;
	r.ready = ready;
	r.seconds = 0.004;
	snprintf(r.message, sizeof(r.message), "%s", message);
	snprintf(r.error, sizeof(r.error), "%s", error);
	return r;
}

static inline int64_t fixture_deadline_ms(int64_t ms)
{
	return clock_now_ns() + ms * MS_NS;
}

static inline double fixture_elapsed_s(int64_t since_ns)
{
	return (double)(clock_now_ns() - since_ns) / 1e9;
}

/*
 * Runs fn(arg) in a child, killed (SIGKILL, so no leak report of a killed
 * child clutters a valgrind run) after timeout_s seconds. True when the
 * child returned 0; a hang or a crash (a signal) is printed under the name
 * what. The child's own CHECKs do not count: fn reports through its return
 * value.
 */
static inline bool fixture_isolated(const char *what, int (*fn)(const void *), const void *arg,
                                    unsigned timeout_s)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return false;
	}
	if (pid == 0)
		_exit(fn(arg) == 0 ? 0 : 1);
	int status = 0;
	bool killed = false;
	int64_t give_up = clock_now_ns() + (int64_t)timeout_s * SEC_NS;
	for (;;) {
		pid_t done = waitpid(pid, &status, WNOHANG);
		if (done == pid)
			break;
		if (done < 0 && errno != EINTR) {
			perror("waitpid");
			return false;
		}
		if (!killed && clock_now_ns() > give_up) {
			kill(pid, SIGKILL);
			killed = true;
		}
		usleep(10000);
	}
	if (killed) {
		fprintf(stderr, "%s: did not finish in %u s: the runaway was not stopped\n", what,
		        timeout_s);
		return false;
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: crashed (signal %d)\n", what, WTERMSIG(status));
		return false;
	}
	if (WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s: failed in the child (exit %d)\n", what, WEXITSTATUS(status));
		return false;
	}
	return true;
}

#endif
