/*
 * The mailbox (src/mailbox.c): the kernel's contract it stands on (an
 * edge-triggered eventfd reports every write, read or not), pairs from
 * another thread arriving complete and in order, batching, the counter's
 * reset, and the pairs handed to drain at the end.
 */
#include "mailbox.h"
#include "testing.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

/* What the callbacks saw. */
struct seen {
	size_t n;
	size_t out_of_order;
};

static void on_mail(void *ptr, int value, void *arg)
{
	struct seen *s = arg;
	uintptr_t i = (uintptr_t)ptr;
	/* Pair i (from 1) carries value i % 7. */
	if (i != s->n + 1 || value != (int)(i % 7))
		s->out_of_order++;
	s->n++;
}

static int epoll_events_now(int ep)
{
	struct epoll_event ev;
	return epoll_wait(ep, &ev, 1, 0);
}

/* Without this, the loop would wait forever for pairs already posted. */
static void test_edge_triggered_eventfd_reports_every_write(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event want = {.events = EPOLLIN | EPOLLET};
	CHECK(fd >= 0 && ep >= 0);
	CHECK_INT(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &want), 0);
	uint64_t one = 1;
	CHECK_INT(epoll_events_now(ep), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(write(fd, &one, sizeof(one)), sizeof(one));
		CHECK_INT(epoll_events_now(ep), 1);
		CHECK_INT(epoll_events_now(ep), 0); /* reported once per write, never read */
	}
	close(ep);
	close(fd);
}

#define FROM_THREAD 200000

struct poster {
	struct mailbox *m;
	size_t count;
};

static void *post_all(void *arg)
{
	struct poster *p = arg;
	for (uintptr_t i = 1; i <= p->count; i++)
		mailbox_post(p->m, (void *)i, (int)(i % 7));
	return NULL;
}

static void on_give_up(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void test_pairs_from_another_thread_arrive_in_order(void)
{
	struct event_base *base = event_base_new();
	struct seen s = {0};
	char err[128];
	struct mailbox *m = mailbox_new(base, on_mail, &s, err, sizeof(err));
	CHECK(m != NULL);
	struct poster p = {.m = m, .count = FROM_THREAD};
	pthread_t t;
	CHECK_INT(pthread_create(&t, NULL, post_all, &p), 0);
	/* Not a timing assertion: a bound that turns a lost wake-up into a failure, not a hang. */
	struct event *give_up = evtimer_new(base, on_give_up, base);
	struct timeval limit = {.tv_sec = 50};
	evtimer_add(give_up, &limit);
	while (s.n < FROM_THREAD && !event_base_got_break(base))
		event_base_loop(base, EVLOOP_ONCE);
	pthread_join(t, NULL);
	CHECK_INT(s.n, FROM_THREAD);
	CHECK_INT(s.out_of_order, 0);
	event_free(give_up);
	mailbox_free(m, NULL, NULL);
	event_base_free(base);
}

/* Pairs posted while the loop was busy come in one pass. */
static void test_pairs_posted_meanwhile_come_in_one_pass(void)
{
	struct event_base *base = event_base_new();
	struct seen s = {0};
	char err[128];
	struct mailbox *m = mailbox_new(base, on_mail, &s, err, sizeof(err));
	struct poster p = {.m = m, .count = 1000};
	pthread_t t;
	CHECK_INT(pthread_create(&t, NULL, post_all, &p), 0);
	pthread_join(t, NULL);
	CHECK_INT(s.n, 0);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CHECK_INT(s.n, 1000);
	CHECK_INT(s.out_of_order, 0);
	mailbox_free(m, NULL, NULL);
	event_base_free(base);
}

/*
 * One wake-up per pair, past the point where the loop reads the counter
 * back to zero (65,536 wake-ups): none is lost on either side of it. The
 * loop is not running while this thread posts, as mailbox_post requires.
 */
static void test_wakeups_past_the_counter_reset(void)
{
	struct event_base *base = event_base_new();
	struct seen s = {0};
	char err[128];
	struct mailbox *m = mailbox_new(base, on_mail, &s, err, sizeof(err));
	size_t lost = 0;
	for (uintptr_t i = 1; i <= 140000; i++) {
		mailbox_post(m, (void *)i, (int)(i % 7));
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		if (s.n != i)
			lost++;
	}
	CHECK_INT(lost, 0);
	CHECK_INT(s.out_of_order, 0);
	mailbox_free(m, NULL, NULL);
	event_base_free(base);
}

static struct seen drained;

static void on_drain(void *ptr, int value, void *arg)
{
	CHECK(arg == &drained);
	on_mail(ptr, value, arg);
}

static void test_free_drains_what_was_not_delivered(void)
{
	struct event_base *base = event_base_new();
	struct seen s = {0};
	char err[128];
	struct mailbox *m = mailbox_new(base, on_mail, &s, err, sizeof(err));
	for (uintptr_t i = 1; i <= 3; i++)
		mailbox_post(m, (void *)i, (int)(i % 7));
	mailbox_free(m, on_drain, &drained);
	CHECK_INT(drained.n, 3);
	CHECK_INT(drained.out_of_order, 0);
	CHECK_INT(s.n, 0);
	mailbox_free(NULL, on_drain, &drained); /* a no-op */
	event_base_free(base);
}

int main(void)
{
	test_edge_triggered_eventfd_reports_every_write();
	test_pairs_from_another_thread_arrive_in_order();
	test_pairs_posted_meanwhile_come_in_one_pass();
	test_wakeups_past_the_counter_reset();
	test_free_drains_what_was_not_delivered();
	return testing_result("mailbox");
}
