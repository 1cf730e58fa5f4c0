/*
 * The accept thread (see mock_listener.h). It sleeps in poll() on the
 * listening socket and a wake-up pipe; when accepting is off it polls the
 * pipe alone, so connections pile up in the kernel's backlog exactly as
 * they do against a driver that stopped calling accept().
 *
 * The mutex makes "check stopped, hand the fd over" atomic against
 * mock_listener_stop: once stop has returned, no fd reaches the callback.
 */
#include "mock_listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct mock_listener {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	int wake[2]; /* written to when accepting or stopped changes */
	mock_accept_fn fn;
	void *arg;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	bool accepting, stopped; /* under lock */
	bool socket_owned;       /* under lock: the file at path is our socket */
	dev_t dev;
	ino_t ino;
};

static void wake(struct mock_listener *l)
{
	char b = 1;
	ssize_t n = write(l->wake[1], &b, 1); /* a full pipe already means "look again" */

	(void)n;
}

static void drain_wake(struct mock_listener *l)
{
	char buf[64];

	while (read(l->wake[0], buf, sizeof(buf)) > 0) {
	}
}

static void *accept_loop(void *arg)
{
	struct mock_listener *l = arg;

	for (;;) {
		struct pollfd p[2] = {{l->wake[0], POLLIN, 0}, {l->fd, POLLIN, 0}};
		bool accepting;
		int fd;

		pthread_mutex_lock(&l->lock);
		accepting = l->accepting;
		if (l->stopped) {
			pthread_mutex_unlock(&l->lock);
			return NULL;
		}
		pthread_mutex_unlock(&l->lock);
		if (poll(p, accepting ? 2 : 1, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[0].revents)
			drain_wake(l);
		if (!accepting || !(p[1].revents & POLLIN))
			continue;
		/*
		 * Accepted under the lock (the socket does not block), so that a
		 * stop_accepting made meanwhile leaves the connection in the
		 * kernel's queue: one accepted and then closed would be reset.
		 */
		pthread_mutex_lock(&l->lock);
		fd = l->stopped || !l->accepting
		             ? -1
		             : accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		/* fd < 0: not accepting any more, EAGAIN, a peer that left, or no fds: poll again.
		 */
		if (fd >= 0)
			l->fn(fd, l->arg);
		pthread_mutex_unlock(&l->lock);
	}
}

/* Clears the way and binds; err gets the reason only. */
static int bind_socket(struct mock_listener *l, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;

	if (lstat(l->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "a file that is not a socket is in the way");
			return -1;
		}
		if (unlink(l->path) < 0) {
			snprintf(err, errlen, "cannot remove stale socket: %s", strerror(errno));
			return -1;
		}
	}
	memcpy(sa.sun_path, l->path, sizeof(l->path));
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (lstat(l->path, &st) == 0) {
		l->socket_owned = true; /* from here on free removes it */
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	if (listen(l->fd, SOMAXCONN) < 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		return -1;
	}
	return 0;
}

struct mock_listener *mock_listener_new(const char *path, mock_accept_fn fn, void *arg, char *err,
                                        size_t errlen)
{
	struct mock_listener *l = calloc(1, sizeof(*l));

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->fd = l->wake[0] = l->wake[1] = -1;
	l->fn = fn;
	l->arg = arg;
	l->accepting = true;
	pthread_mutex_init(&l->lock, NULL);
	if (strlen(path) >= sizeof(l->path)) {
		snprintf(err, errlen, "socket path too long");
		goto fail;
	}
	snprintf(l->path, sizeof(l->path), "%s", path);
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	if (bind_socket(l, err, errlen) < 0)
		goto fail;
	if (pthread_create(&l->thread, NULL, accept_loop, l) != 0) {
		snprintf(err, errlen, "cannot start the accept thread");
		goto fail;
	}
	l->thread_started = true;
	return l;
fail:
	mock_listener_free(l);
	return NULL;
}

void mock_listener_set_accepting(struct mock_listener *l, bool accepting)
{
	pthread_mutex_lock(&l->lock);
	l->accepting = accepting;
	pthread_mutex_unlock(&l->lock);
	wake(l);
}

void mock_listener_remove_socket(struct mock_listener *l)
{
	struct stat st;

	pthread_mutex_lock(&l->lock);
	/* Another process may have bound a new socket there since: leave that alone. */
	if (l->socket_owned && lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	l->socket_owned = false;
	pthread_mutex_unlock(&l->lock);
}

void mock_listener_stop(struct mock_listener *l)
{
	pthread_mutex_lock(&l->lock);
	l->stopped = true;
	pthread_mutex_unlock(&l->lock);
	wake(l);
}

void mock_listener_free(struct mock_listener *l)
{
	if (!l)
		return;
	mock_listener_stop(l);
	if (l->thread_started)
		pthread_join(l->thread, NULL);
	mock_listener_remove_socket(l);
	if (l->fd >= 0)
		close(l->fd);
	if (l->wake[0] >= 0)
		close(l->wake[0]);
	if (l->wake[1] >= 0)
		close(l->wake[1]);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
