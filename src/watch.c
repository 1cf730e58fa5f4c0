/*
 * inotify on the policy file's directory (watch.h). When the directory
 * itself goes (deleted, renamed, unmounted: inotify then drops the watch),
 * it is looked for again once a second; when it is back, the watch is
 * renewed and the callback runs, since the file in it may be new.
 */
#include "watch.h"

#include <errno.h>
#include <stdbool.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"

/* Events closer together than this are one change (a ConfigMap swap is several). */
#define QUIET_MS 200
/* How often a vanished directory is looked for. */
#define REWATCH_MS 1000
#define WATCHED_EVENTS                                                                             \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |        \
	 IN_DELETE_SELF | IN_MOVE_SELF)

struct watch {
	int fd;
	int wd; /* -1 while the directory is gone */
	char *dir;
	struct event *readable;
	struct event *quiet;
	struct event *rewatch;
	watch_cb cb;
	void *arg;
};

static void arm(struct event *ev, int ms)
{
	struct timeval tv = clock_timeval((int64_t)ms * 1000000);
	evtimer_add(ev, &tv);
}

static void on_quiet(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	w->cb(w->arg);
}

/* The directory is gone: its watch no longer exists, or should not. */
static void lost_directory(struct watch *w)
{
	if (w->wd >= 0)
		inotify_rm_watch(w->fd, w->wd); /* after a move: the old place is not ours */
	w->wd = -1;
	LOG_W("Policy directory gone; waiting for it to come back", "dir", w->dir);
	arm(w->rewatch, REWATCH_MS);
}

static void on_rewatch(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	w->wd = inotify_add_watch(w->fd, w->dir, WATCHED_EVENTS);
	if (w->wd < 0) {
		arm(w->rewatch, REWATCH_MS);
		return;
	}
	LOG_I("Policy directory is back, watching it again", "dir", w->dir);
	arm(w->quiet, QUIET_MS);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool gone = false;
	ssize_t n;
	/* Which entry changed does not matter: the file is read again and compared. */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n;) {
			const struct inotify_event *ev = (const void *)(buf + i);
			if (ev->wd == w->wd &&
			    (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)))
				gone = true;
			i += (ssize_t)(sizeof(*ev) + ev->len);
		}
	}
	if (gone && w->wd >= 0)
		lost_directory(w);
	arm(w->quiet, QUIET_MS);
}

struct watch *watch_new(struct event_base *base, const char *path, watch_cb cb, void *arg,
                        char *errbuf, size_t errlen)
{
	struct watch *w = calloc(1, sizeof(*w));
	char *copy = strdup(path);
	if (w)
		w->fd = w->wd = -1;
	if (!w || !copy) {
		snprintf(errbuf, errlen, "out of memory");
		goto err;
	}
	w->cb = cb;
	w->arg = arg;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		snprintf(errbuf, errlen, "inotify: %s", strerror(errno));
		goto err;
	}
	w->dir = strdup(dirname(copy));
	if (!w->dir) {
		snprintf(errbuf, errlen, "out of memory");
		goto err;
	}
	w->wd = inotify_add_watch(w->fd, w->dir, WATCHED_EVENTS);
	if (w->wd < 0) {
		snprintf(errbuf, errlen, "cannot watch %s: %s", w->dir, strerror(errno));
		goto err;
	}
	w->readable = event_new(base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
	w->quiet = evtimer_new(base, on_quiet, w);
	w->rewatch = evtimer_new(base, on_rewatch, w);
	if (!w->readable || !w->quiet || !w->rewatch || event_add(w->readable, NULL) < 0) {
		snprintf(errbuf, errlen, "cannot watch %s", w->dir);
		goto err;
	}
	free(copy);
	return w;
err:
	free(copy);
	watch_free(w);
	return NULL;
}

void watch_free(struct watch *w)
{
	if (!w)
		return;
	if (w->readable)
		event_free(w->readable);
	if (w->quiet)
		event_free(w->quiet);
	if (w->rewatch)
		event_free(w->rewatch);
	if (w->fd >= 0)
		close(w->fd);
	free(w->dir);
	free(w);
}
