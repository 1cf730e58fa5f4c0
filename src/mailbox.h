/*
 * A mailbox from other threads to the libevent loop: any thread posts
 * (pointer, value) pairs; the loop thread receives them, in the order they
 * were posted, through a callback.
 *
 * Why not a pipe carrying the pairs: the loop would read(2) once per wake-up
 * on top of the writer's write(2). Here the pairs wait in a locked queue and
 * the writer signals an eventfd watched edge-triggered (EV_ET), which the
 * loop never needs to read: every write to an eventfd wakes its watchers
 * again, whatever its counter holds. So one wake-up costs one write(2), and
 * only the first post after the loop last emptied the queue writes at all.
 * tests/unit/mailbox.c checks that contract of the kernel's too.
 */
#ifndef LP_MAILBOX_H
#define LP_MAILBOX_H

#include <stddef.h>

struct event_base;
struct mailbox;

/* One posted pair, on the loop thread. */
typedef void (*mailbox_cb)(void *ptr, int value, void *arg);

/* NULL with errbuf on failure (no eventfd, no memory, no loop event). */
struct mailbox *mailbox_new(struct event_base *base, mailbox_cb cb, void *arg, char *errbuf,
                            size_t errlen);

/*
 * From any thread but the loop's. Never loses a pair: when the queue cannot
 * grow (out of memory) the poster waits until the loop has emptied it.
 */
void mailbox_post(struct mailbox *m, void *ptr, int value);

/*
 * Hands every pair not yet received to drain(ptr, value, arg) (NULL:
 * drops them), on the calling thread, then frees the mailbox. No thread
 * may post any more. NULL is a no-op.
 */
void mailbox_free(struct mailbox *m, mailbox_cb drain, void *arg);

#endif
