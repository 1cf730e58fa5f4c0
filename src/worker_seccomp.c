/* The worker's seccomp filter (worker_seccomp.h), with Debian's libseccomp. */
#include "worker_seccomp.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#ifdef LP_SECCOMP
#include <seccomp.h>
#endif

#include "worker.h"

/* The worker's socket (worker.h); stderr is the other fd it writes. */
#define SOCKET_FD WORKER_FD

static bool forbidden_open_wanted;

#ifdef LP_SECCOMP
/* Adds one rule; the filter is built whole or not at all. */
static int allow(scmp_filter_ctx ctx, int syscall, unsigned n, struct scmp_arg_cmp a,
                 struct scmp_arg_cmp b)
{
	if (n == 0)
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, syscall, 0);
	if (n == 1)
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, syscall, 1, a);
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, syscall, 2, a, b);
}
#endif

bool worker_seccomp_apply(void)
{
	forbidden_open_wanted = getenv("LP_TEST_WORKER_FORBIDDEN_OPEN") &&
	                        strcmp(getenv("LP_TEST_WORKER_FORBIDDEN_OPEN"), "1") == 0;
	/* Log lines need the time zone: read it now, while files can still be opened. */
	tzset();
#ifdef LP_SECCOMP
	struct scmp_arg_cmp none = SCMP_A0(SCMP_CMP_EQ, 0);
	struct scmp_arg_cmp on_socket = SCMP_A0(SCMP_CMP_EQ, SOCKET_FD);
	/* What the worker does, and nothing more. */
	static const int anywhere[] = {/* memory */
	                               SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap),
	                               SCMP_SYS(mremap), SCMP_SYS(madvise),
	                               /* the clock (the vDSO usually answers without a syscall) */
	                               SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
	                               SCMP_SYS(time),
	                               /* log lines carry the pid; the C library's own locks */
	                               SCMP_SYS(getpid), SCMP_SYS(futex),
	                               /* ending */
	                               SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn),
	                               SCMP_SYS(restart_syscall)};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return false;
	int rc = 0;
	for (size_t i = 0; i < sizeof(anywhere) / sizeof(anywhere[0]) && rc == 0; i++)
		rc = allow(ctx, anywhere[i], 0, none, none);
	/* Frames on the socket (evbuffer reads with readv after FIONREAD, writes with writev). */
	if (rc == 0)
		rc = allow(ctx, SCMP_SYS(read), 1, on_socket, none);
	if (rc == 0)
		rc = allow(ctx, SCMP_SYS(readv), 1, on_socket, none);
	if (rc == 0)
		rc = allow(ctx, SCMP_SYS(writev), 1, on_socket, none);
	if (rc == 0)
		rc = allow(ctx, SCMP_SYS(ioctl), 2, on_socket, SCMP_A1(SCMP_CMP_EQ, FIONREAD));
	/* write: frames on the socket, log lines on stderr. */
	if (rc == 0)
		rc = allow(ctx, SCMP_SYS(write), 1, on_socket, none);
	if (rc == 0)
		rc = allow(ctx, SCMP_SYS(write), 1, SCMP_A0(SCMP_CMP_EQ, STDERR_FILENO), none);
	/* The worker closes its socket on the way out. */
	if (rc == 0)
		rc = allow(ctx, SCMP_SYS(close), 1, on_socket, none);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	return rc == 0;
#else
	return false;
#endif
}

void worker_seccomp_test_hook(void)
{
	if (!forbidden_open_wanted)
		return;
	int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
}
