/* inotify on the policy file's directory (watch.h). */
#include "watch.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

/* Events closer together than this are one change (a ConfigMap swap is several). */
#define QUIET_MS 200

struct watch {
	int fd;
	struct event *readable;
	struct event *quiet;
	watch_cb cb;
	void *arg;
};

static void on_quiet(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	w->cb(w->arg);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	/* Which entry changed does not matter: the file is read again and compared. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	struct timeval tv = {.tv_sec = 0, .tv_usec = QUIET_MS * 1000};
	evtimer_add(w->quiet, &tv);
}

struct watch *watch_new(struct event_base *base, const char *path, watch_cb cb, void *arg,
                        char *errbuf, size_t errlen)
{
	struct watch *w = calloc(1, sizeof(*w));
	char *copy = strdup(path);
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
	const char *dir = dirname(copy);
	if (inotify_add_watch(w->fd, dir,
	                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
	                              IN_ATTRIB) < 0) {
		snprintf(errbuf, errlen, "cannot watch %s: %s", dir, strerror(errno));
		goto err;
	}
	w->readable = event_new(base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
	w->quiet = evtimer_new(base, on_quiet, w);
	if (!w->readable || !w->quiet || event_add(w->readable, NULL) < 0) {
		snprintf(errbuf, errlen, "cannot watch %s", dir);
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
	if (w->fd > 0)
		close(w->fd);
	free(w);
}
