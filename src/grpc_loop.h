/*
 * gRPC's C core driven from the libevent loop (GRPC-NOTES.md): one
 * completion queue, a thread blocked in grpc_completion_queue_next that
 * hands each completion (tag + success) to the loop, and a thread that
 * destroys retired channels (started with the first one).
 *
 * Why a thread for destroying channels: grpc_channel_destroy can block. When
 * the last channel goes, gRPC 1.51 tears its event engine down and waits for
 * its thread pool; a pool whose threads could not be created (address space
 * or thread limits) is waited for forever. The loop thread never calls it
 * while serving.
 */
#ifndef LP_GRPC_LOOP_H
#define LP_GRPC_LOOP_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>

struct event_base;
struct grpc_loop;

/* A completion, on the loop thread. tag is what the operation was started with. */
typedef void (*grpc_loop_cb)(void *tag, bool success, void *arg);

/*
 * How gRPC polls, for the daemon's one channel and its one polling thread
 * (the completion thread), set through the environment unless the operator
 * set the variable already (theirs wins):
 * - GRPC_POLL_STRATEGY=poll: gRPC's default engine watches every socket
 *   for EPOLLOUT edge-triggered, so each time the driver reads what we
 *   sent, the completion thread wakes for nothing (two wake-ups and system
 *   calls per probe against grpc-go). Its poll(2) engine asks for POLLOUT
 *   only while a write is blocked.
 * - GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS=0: the "backup poller"
 *   polls idle channels every 5 s for clients that have no thread polling;
 *   the completion thread always is, and the channel's socket stays in its
 *   set between calls. (With the poll engine, the backup poller would also
 *   open an eventfd of its own 5 s after start.)
 * It changes no answer and no deadline: the whole e2e suite, and
 * test_godriver against grpc-go, run with it. It sets environment
 * variables, so it must run before any thread starts and before
 * grpc_loop_new.
 */
void grpc_loop_choose_poller(void);

/*
 * Initialises gRPC, creates the queue and starts the completion thread.
 * NULL with errbuf on failure (gRPC is then shut down again).
 */
struct grpc_loop *grpc_loop_new(struct event_base *base, grpc_loop_cb cb, void *arg, char *errbuf,
                                size_t errlen);

/* The queue every call is started on. */
grpc_completion_queue *grpc_loop_queue(struct grpc_loop *l);

/*
 * Hands ch to the reaper thread (started by the first call), which
 * destroys it. Returns at once; the caller must not touch ch again. Calls on it should be finished
 * or cancelled first. NULL is a no-op.
 */
void grpc_loop_retire_channel(struct grpc_loop *l, grpc_channel *ch);

/*
 * Shuts gRPC down: destroys the retired channels, shuts the queue down,
 * joins the threads, and hands every completion still undelivered to
 * drain (on this thread, instead of the callback), then grpc_shutdown.
 * Cancel the calls in flight before. This may block where gRPC blocks: the
 * daemon bounds its shutdown as a whole (main.c). NULL is a no-op.
 */
void grpc_loop_free(struct grpc_loop *l, void (*drain)(void *tag));

#endif
