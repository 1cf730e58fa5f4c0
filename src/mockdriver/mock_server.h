/*
 * The csi-mock-driver gRPC server: every unary CSI method (csi_methods.h) on
 * a unix socket, answered as struct mock_config says (the read-only calls;
 * UNIMPLEMENTED for the others) or, per call, as a --script hook decides,
 * with delayed and hanging replies and the failure actions of mock_reply.h;
 * each call ends in a --call-log line (mock_call_log.h).
 *
 * Threading: mock_server_run drives the only completion queue on the calling
 * thread and owns all call state; mock_server_stop is the one function that
 * may be called from another thread.
 */
#ifndef MOCK_SERVER_H
#define MOCK_SERVER_H

#include <stddef.h>
#include <stdio.h>

#include "mock_call_log.h"
#include "mock_config.h"
#include "mock_script.h"

struct mock_server;

/*
 * Initialises gRPC, removes a stale socket file at cfg->socket_path, binds
 * and starts listening. cfg, script (NULL: flags only) and log (NULL: no
 * call log) must outlive the server. Call lines go to out (flushed per
 * line) unless cfg->quiet; script errors go to stderr. On failure returns
 * NULL with err set to "cannot listen on PATH: REASON" or another one-line
 * reason.
 */
struct mock_server *mock_server_new(const struct mock_config *cfg, struct mock_script *script,
                                    struct mock_call_log *log, FILE *out, char *err, size_t errlen);

/*
 * Serves until shutdown has completed: mock_server_stop was called (or the
 * server hit an internal error and stopped itself), every live call was
 * cancelled, and gRPC has released them all. Returns 0, or -1 with err set
 * when it stopped on an internal error.
 */
int mock_server_run(struct mock_server *s, char *err, size_t errlen);

/*
 * Starts shutdown: no new calls, live ones (delayed, hanging) cancelled.
 * Thread-safe and idempotent; the caller must have returned from it before
 * mock_server_free.
 */
void mock_server_stop(struct mock_server *s);

/*
 * Finishes any shutdown still in progress (stopping the server first if
 * needed), gives gRPC ~100 ms to finish tearing connections down, destroys
 * the server, removes the socket file (unless a script removed it, or
 * another process has bound a new one there), and shuts gRPC down. NULL is
 * a no-op.
 */
void mock_server_free(struct mock_server *s);

#endif
