/*
 * gRPC completions into the libevent loop, and channels destroyed off it
 * (grpc_loop.h).
 *
 * The completion thread does nothing but post each completion to the loop's
 * mailbox (mailbox.h), which calls back on the loop thread. So callers'
 * state is only ever touched by the loop thread. The reaper thread only calls
 * grpc_channel_destroy, which gRPC allows from any thread.
 */
#include "grpc_loop.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <grpc/support/time.h>

#include "absl_tuning.h"
#include "log.h"
#include "mailbox.h"

struct retired {
	grpc_channel *channel;
	struct retired *next;
};

struct grpc_loop {
	grpc_loop_cb cb;
	void *cb_arg;
	grpc_completion_queue *cq;
	struct mailbox *mailbox;
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
		if (ev.type == GRPC_OP_COMPLETE)
			mailbox_post(l->mailbox, ev.tag, ev.success);
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

static void on_completion(void *tag, int success, void *arg)
{
	struct grpc_loop *l = arg;
	l->cb(tag, success != 0, l->cb_arg);
}

/* arg: grpc_loop_free's drain (a pointer to it). */
static void drain_completion(void *tag, int success, void *arg)
{
	void (*const *drain)(void *tag) = arg;
	(void)success;
	if (*drain)
		(*drain)(tag);
}

void grpc_loop_choose_poller(void)
{
	/* gRPC reads them at grpc_init; 0: an operator's setting is kept. */
	setenv("GRPC_POLL_STRATEGY", "poll", 0);
	setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "0", 0);
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
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->wake, NULL);

	l->mailbox = mailbox_new(base, on_completion, l, errbuf, errlen);
	if (!l->mailbox)
		goto err;

	absl_tuning_quiet_mutexes();
	grpc_init();
	l->cq = grpc_completion_queue_create_for_next(NULL);
	if (pthread_create(&l->completion_thread, NULL, completion_main, l) != 0) {
		snprintf(errbuf, errlen, "cannot start the gRPC completion thread");
		goto err;
	}
	l->completion_started = true;
	/* The reaper starts with the first retired channel (grpc_loop_retire_channel). */
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
	/*
	 * Started with the first retired channel (a driver restart: rare), not
	 * at start-up: a thread idle for good costs 8 kB. Without one (thread
	 * limits), the channels wait in the list: the next retirement tries
	 * again, and grpc_loop_free destroys what is left.
	 */
	if (!l->reaper_started) {
		if (pthread_create(&l->reaper_thread, NULL, reaper_main, l) == 0)
			l->reaper_started = true;
		else
			LOG_E("Cannot start the gRPC channel reaper thread", "err",
			      "the old channel is destroyed later");
	}
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
	/* Left by a reaper that never started: here, before gRPC shuts down. */
	while (l->retired) {
		struct retired *r = l->retired;
		l->retired = r->next;
		grpc_channel_destroy(r->channel);
		free(r);
	}
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
		/* Completions posted but not yet delivered by the loop. */
		mailbox_free(l->mailbox, drain_completion, &drain);
		l->mailbox = NULL;
		grpc_completion_queue_destroy(l->cq);
		grpc_shutdown();
	}
	mailbox_free(l->mailbox, NULL, NULL);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->wake);
	free(l);
}
