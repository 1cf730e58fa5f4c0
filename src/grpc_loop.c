/*
 * gRPC completions into the libevent loop, and channels destroyed off it
 * (grpc_loop.h).
 *
 * The completion thread does nothing but forward each completion through a
 * pipe; the loop reads the pipe and calls back. So callers' state is only
 * ever touched by the loop thread. The reaper thread only calls
 * grpc_channel_destroy, which gRPC allows from any thread.
 */
#include "grpc_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <grpc/support/time.h>

#include "log.h"

/* What the completion thread writes into the pipe: small enough to be atomic. */
struct completion {
	void *tag;
	int success;
};

struct retired {
	grpc_channel *channel;
	struct retired *next;
};

struct grpc_loop {
	grpc_loop_cb cb;
	void *cb_arg;
	grpc_completion_queue *cq;
	int pipe_rd, pipe_wr;
	struct event *pipe_event;
	pthread_t completion_thread;
	bool completion_started;

	/* The reaper: channels waiting to be destroyed, under lock. */
	pthread_t reaper_thread;
	bool reaper_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct retired *retired;
	bool stopping;
};

static void *completion_main(void *arg)
{
	struct grpc_loop *l = arg;
	for (;;) {
		grpc_event ev =
		        grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		struct completion c;
		memset(&c, 0, sizeof(c)); /* padding too: the bytes go through a pipe */
		c.tag = ev.tag;
		c.success = ev.success;
		/* A pipe write of 16 bytes is atomic; EINTR is the only retry case. */
		while (write(l->pipe_wr, &c, sizeof(c)) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static void *reaper_main(void *arg)
{
	struct grpc_loop *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->retired && !l->stopping)
			pthread_cond_wait(&l->wake, &l->lock);
		struct retired *r = l->retired;
		if (!r)
			break; /* stopping, and nothing left */
		l->retired = r->next;
		pthread_mutex_unlock(&l->lock);
		grpc_channel_destroy(r->channel);
		free(r);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static void on_pipe_readable(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_loop *l = arg;
	struct completion batch[32];
	ssize_t n = read(fd, batch, sizeof(batch));
	for (ssize_t i = 0; i + (ssize_t)sizeof(batch[0]) <= n; i += sizeof(batch[0])) {
		const struct completion *c = &batch[i / sizeof(batch[0])];
		l->cb(c->tag, c->success != 0, l->cb_arg);
	}
}

struct grpc_loop *grpc_loop_new(struct event_base *base, grpc_loop_cb cb, void *arg, char *errbuf,
                                size_t errlen)
{
	struct grpc_loop *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	l->cb = cb;
	l->cb_arg = arg;
	l->pipe_rd = l->pipe_wr = -1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->wake, NULL);

	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
		goto err;
	}
	l->pipe_rd = fds[0];
	l->pipe_wr = fds[1];
	/* The loop (and the drain at shutdown) must never block on an empty pipe. */
	fcntl(l->pipe_rd, F_SETFL, O_NONBLOCK);
	l->pipe_event = event_new(base, l->pipe_rd, EV_READ | EV_PERSIST, on_pipe_readable, l);
	if (!l->pipe_event || event_add(l->pipe_event, NULL) < 0) {
		snprintf(errbuf, errlen, "cannot set up loop events");
		goto err;
	}

	grpc_init();
	l->cq = grpc_completion_queue_create_for_next(NULL);
	if (pthread_create(&l->completion_thread, NULL, completion_main, l) != 0) {
		snprintf(errbuf, errlen, "cannot start the gRPC completion thread");
		goto err;
	}
	l->completion_started = true;
	if (pthread_create(&l->reaper_thread, NULL, reaper_main, l) != 0) {
		snprintf(errbuf, errlen, "cannot start the gRPC channel reaper thread");
		goto err;
	}
	l->reaper_started = true;
	return l;
err:
	grpc_loop_free(l, NULL);
	return NULL;
}

grpc_completion_queue *grpc_loop_queue(struct grpc_loop *l)
{
	return l->cq;
}

void grpc_loop_retire_channel(struct grpc_loop *l, grpc_channel *ch)
{
	if (!ch)
		return;
	struct retired *r = malloc(sizeof(*r));
	if (!r) {
		/* Leaking one channel beats blocking the loop on it. */
		LOG_E("Cannot retire a gRPC channel", "err", "out of memory");
		return;
	}
	r->channel = ch;
	pthread_mutex_lock(&l->lock);
	r->next = l->retired;
	l->retired = r;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->lock);
}

/* Completions forwarded but not yet read by the loop. */
static void drain_pipe(struct grpc_loop *l, void (*drain)(void *tag))
{
	struct completion c;
	if (l->pipe_rd < 0)
		return;
	while (read(l->pipe_rd, &c, sizeof(c)) == (ssize_t)sizeof(c))
		if (drain)
			drain(c.tag);
}

void grpc_loop_free(struct grpc_loop *l, void (*drain)(void *tag))
{
	if (!l)
		return;
	if (l->reaper_started) {
		pthread_mutex_lock(&l->lock);
		l->stopping = true;
		pthread_cond_signal(&l->wake);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->reaper_thread, NULL);
	}
	/* Without a reaper (start-up failed) nothing was retired. */
	if (l->cq) {
		grpc_completion_queue_shutdown(l->cq);
		if (l->completion_started) {
			pthread_join(l->completion_thread, NULL);
		} else {
			grpc_event ev;
			do {
				ev = grpc_completion_queue_next(
				        l->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
				if (ev.type == GRPC_OP_COMPLETE && drain)
					drain(ev.tag);
			} while (ev.type != GRPC_QUEUE_SHUTDOWN);
		}
		drain_pipe(l, drain);
		grpc_completion_queue_destroy(l->cq);
		grpc_shutdown();
	}
	if (l->pipe_event)
		event_free(l->pipe_event);
	if (l->pipe_rd >= 0)
		close(l->pipe_rd);
	if (l->pipe_wr >= 0)
		close(l->pipe_wr);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->wake);
	free(l);
}
