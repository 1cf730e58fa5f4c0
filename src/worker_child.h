/*
 * The policy worker process (worker.h has the daemon's side): it loads the
 * policy it is sent and runs checks on it, one frame in, one frame out, with
 * plain blocking I/O on its end of the socketpair. It has nothing else to
 * do, so blocking is what it should do; the daemon never waits for it.
 */
#ifndef LP_WORKER_CHILD_H
#define LP_WORKER_CHILD_H

/* Entry point: argv is {exe, WORKER_ARG, verbosity, "text"|"json"}. Returns the exit status. */
int worker_child_main(int argc, char **argv);

#endif
