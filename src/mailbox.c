/*
 * Other threads to the loop through a locked queue and an edge-triggered
 * eventfd (mailbox.h).
 *
 * The queue is two arrays: posters append to `posted` under the lock; the
 * loop swaps it with its own emptied `receiving` array under the lock and
 * calls back outside it. Both keep their capacity, so a steady state
 * allocates nothing. `signalled` says a wake-up is on its way and not yet
 * taken: posters write the eventfd only when they are the first to set it.
 */
#include "mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

/* Queue slots to start with: more than the calls a daemon has in flight. */
#define MAILBOX_START_SLOTS 16
/*
 * The eventfd's counter only grows (the loop never has to read it); it is
 * read back to zero once in this many wake-ups so that it can never reach
 * its limit (2^64 - 2), where a write would fail.
 */
#define MAILBOX_RESET_EVERY 65536

struct mail {
	void *ptr;
	int value;
};

struct queue {
	struct mail *slots;
	size_t n, cap;
};

struct mailbox {
	mailbox_cb cb;
	void *cb_arg;
	int fd;
	struct event *event;
	unsigned wakeups; /* the loop's: since the counter was last reset */

	pthread_mutex_t lock;
	pthread_cond_t emptied; /* posters short of memory wait on it */
	struct queue posted;    /* under lock */
	bool signalled;         /* under lock */
	struct queue receiving; /* the loop's */
};

static bool queue_grow(struct queue *q)
{
	size_t cap = q->cap ? q->cap * 2 : MAILBOX_START_SLOTS;
	struct mail *slots = realloc(q->slots, cap * sizeof(*slots));
	if (!slots)
		return false;
	q->slots = slots;
	q->cap = cap;
	return true;
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *m = arg;
	(void)what;
	if (++m->wakeups == MAILBOX_RESET_EVERY) {
		uint64_t count;
		/* Non-blocking: EAGAIN when a poster has not written yet, which is fine. */
		if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			m->wakeups--; /* try again next time */
		else
			m->wakeups = 0;
	}

	pthread_mutex_lock(&m->lock);
	struct queue mine = m->posted;
	m->posted = m->receiving; /* emptied by the previous wake-up */
	m->receiving = mine;
	m->signalled = false;
	pthread_cond_broadcast(&m->emptied);
	pthread_mutex_unlock(&m->lock);

	for (size_t i = 0; i < m->receiving.n; i++)
		m->cb(m->receiving.slots[i].ptr, m->receiving.slots[i].value, m->cb_arg);
	m->receiving.n = 0;
}

void mailbox_post(struct mailbox *m, void *ptr, int value)
{
	pthread_mutex_lock(&m->lock);
	while (m->posted.n == m->posted.cap && !queue_grow(&m->posted))
		/* Full and no memory: the queue is not empty, so the loop is signalled. */
		pthread_cond_wait(&m->emptied, &m->lock);
	m->posted.slots[m->posted.n++] = (struct mail){.ptr = ptr, .value = value};
	bool first = !m->signalled;
	m->signalled = true;
	pthread_mutex_unlock(&m->lock);

	if (first) {
		uint64_t one = 1;
		/* Only EINTR can fail an 8-byte write to an eventfd this far from its limit. */
		while (write(m->fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
}

struct mailbox *mailbox_new(struct event_base *base, mailbox_cb cb, void *arg, char *errbuf,
                            size_t errlen)
{
	struct mailbox *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	m->cb = cb;
	m->cb_arg = arg;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->emptied, NULL);
	m->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->fd < 0) {
		snprintf(errbuf, errlen, "eventfd: %s", strerror(errno));
		goto err;
	}
	if (!queue_grow(&m->posted) || !queue_grow(&m->receiving)) {
		snprintf(errbuf, errlen, "out of memory");
		goto err;
	}
	m->event = event_new(base, m->fd, EV_READ | EV_PERSIST | EV_ET, on_signal, m);
	if (!m->event || event_add(m->event, NULL) < 0) {
		snprintf(errbuf, errlen, "cannot watch the mailbox's eventfd");
		goto err;
	}
	return m;
err:
	mailbox_free(m, NULL, NULL);
	return NULL;
}

void mailbox_free(struct mailbox *m, mailbox_cb drain, void *arg)
{
	if (!m)
		return;
	for (size_t i = 0; drain && i < m->posted.n; i++)
		drain(m->posted.slots[i].ptr, m->posted.slots[i].value, arg);
	if (m->event)
		event_free(m->event);
	if (m->fd >= 0)
		close(m->fd);
	free(m->posted.slots);
	free(m->receiving.slots);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->emptied);
	free(m);
}
