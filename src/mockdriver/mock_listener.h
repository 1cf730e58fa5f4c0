/*
 * The mock driver's own unix-socket listener. gRPC's listener cannot be told
 * to stop accepting or to forget its socket file while the server runs, and
 * the failure modes need both; so a thread of ours accepts connections and
 * hands each one to gRPC (grpc_server_add_channel_from_fd).
 *
 * Every function is thread-safe.
 */
#ifndef MOCK_LISTENER_H
#define MOCK_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

struct mock_listener;

/* Called on the listener's thread with each accepted, non-blocking fd; takes ownership. */
typedef void (*mock_accept_fn)(int fd, void *arg);

/*
 * Removes a stale socket file at path (anything else there is an error),
 * binds, listens and starts accepting. NULL with the reason in err.
 */
struct mock_listener *mock_listener_new(const char *path, mock_accept_fn fn, void *arg, char *err,
                                        size_t errlen);

/* Stops or resumes accept(); pending connections wait in the backlog meanwhile. */
void mock_listener_set_accepting(struct mock_listener *l, bool accepting);

/*
 * Unlinks the socket file if it is still the one we bound. The listening
 * socket stays open: connections made before keep working, new ones cannot
 * find us.
 */
void mock_listener_remove_socket(struct mock_listener *l);

/*
 * Stops accepting for good: after it returns fn is never called again.
 * Idempotent.
 */
void mock_listener_stop(struct mock_listener *l);

/* Stops, closes the socket and removes its file (if still ours). NULL is a no-op. */
void mock_listener_free(struct mock_listener *l);

#endif
