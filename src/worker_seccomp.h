/*
 * The worker process contained by the kernel too (DESIGN.md): from before
 * the policy's text arrives, a seccomp filter lets the worker do only what
 * a Lua state needs: read and write frames on its socket, write log lines on
 * stderr, manage memory, read the clock, exit. Anything else (opening a
 * file, a socket, a process) kills it, so a policy that found a way out of
 * the Lua sandbox still could not act. Whatever the daemon must do for a
 * policy (probes, sleeps) it does itself.
 */
#ifndef LP_WORKER_SECCOMP_H
#define LP_WORKER_SECCOMP_H

#include <stdbool.h>

/*
 * Installs the filter on this process. True when it holds; false when the
 * kernel refused it (some emulators, old kernels) or the build left it out
 * (-DLP_SECCOMP=OFF, for the sanitizer builds): the worker then runs
 * without it.
 */
bool worker_seccomp_apply(void);

/*
 * Test-only: when the environment had LP_TEST_WORKER_FORBIDDEN_OPEN=1 at
 * start, tries to open a file, as an escaped policy would. Nothing a policy
 * can reach calls this; the end-to-end test uses it to see the worker
 * killed.
 */
void worker_seccomp_test_hook(void);

#endif
