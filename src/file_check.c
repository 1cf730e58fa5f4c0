/*
 * ctx.file's stats, off the loop (file_check.h).
 *
 * One thread does the stats, one at a time, from a queue; each finished
 * check goes back to the loop through a pipe. (Not the mailbox gRPC's
 * completions take, mailbox.h: the thread may outlive the checker, and
 * the pipe's write end is shared state it keeps alive, below.) Each
 * check also has a timer at its deadline, which answers it "timed out" if
 * the thread has not: a stat stuck on a hung mount holds up the thread,
 * never the loop.
 *
 * Who owns a check (struct file_check): the loop, until it is queued; the
 * queue (under the lock) until the thread takes it; the thread while it
 * runs; the loop again once it is in the pipe. A check the loop gave up
 * on (cancelled, or answered by its timer) while the thread held it is
 * marked abandoned and freed when it comes back. The state the thread and
 * the loop share (struct shared) is reference-counted, so that freeing the
 * checker never waits for a thread stuck in a stat.
 */
#include "file_check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"

/* How long freeing the checker waits for an idle thread to end (a stuck one is left). */
#define JOIN_WAIT_NS 200000000LL

typedef void (*check_path_fn)(const char *path, char *const *dirs, size_t n, double now,
                              struct file_check_result *r);

enum job_state {
	JOB_LOOP,    /* the loop's: not queued (yet), or read back from the pipe */
	JOB_QUEUED,  /* in the queue */
	JOB_RUNNING, /* the thread's */
	JOB_POSTED,  /* in the pipe: the loop's, freed only once read from it */
};

struct file_check {
	struct file_checker *fc;
	char *path;
	file_check_cb cb;
	void *arg;
	struct event *timer;  /* the deadline, or "answer now" (refused at once) */
	bool refused_now;     /* answered at once with result, never queued */
	enum job_state state; /* under the lock */
	bool abandoned;       /* the loop is done with it: free it when it comes back */
	struct file_check_result result;
	struct file_check *next;                  /* queue */
	struct file_check *live_prev, *live_next; /* the loop's list of every check not yet freed */
};

/* What the loop and the thread share. */
struct shared {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct file_check *head, *tail; /* the queue */
	bool stopping;
	int refs; /* the checker's, and the thread's while it runs */
	int pipe_wr;
	char **dirs;
	size_t n;
	check_path_fn check_path;
};

struct file_checker {
	struct event_base *base;
	struct shared *sh;
	int pipe_rd;
	struct event *pipe_event;
	pthread_t thread;
	bool thread_started;
	struct file_check *live;
};

const char *file_type_name(enum file_type t)
{
	switch (t) {
	case FILE_TYPE_FILE:
		return "file";
	case FILE_TYPE_DIR:
		return "dir";
	case FILE_TYPE_SOCKET:
		return "socket";
	case FILE_TYPE_SYMLINK:
		return "symlink";
	case FILE_TYPE_OTHER:
		break;
	}
	return "other";
}

/* ---- resolving and stat'ing one path (any thread) ---------------------------------------- */

__attribute__((format(printf, 3, 4))) static void
set_error(struct file_check_result *r, enum file_check_outcome o, const char *fmt, ...)
{
	va_list ap;
	r->outcome = o;
	r->exists = false;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* Whether path is dir or lies beneath it (both resolved). */
static bool beneath(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1) /* "/" */
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*
 * Appends the components of rest to base (a resolved path, PATH_MAX
 * bytes), lexically: "." and empty ones are skipped, ".." drops the last
 * component. Returns false when the result would not fit.
 */
static bool join_lexically(char *base, const char *rest)
{
	size_t len = strlen(base);
	while (*rest) {
		const char *end = strchr(rest, '/');
		size_t n = end ? (size_t)(end - rest) : strlen(rest);
		if (n == 2 && rest[0] == '.' && rest[1] == '.') {
			char *slash = strrchr(base, '/');
			len = slash && slash != base ? (size_t)(slash - base) : 1;
			base[len] = '\0';
		} else if (n > 0 && !(n == 1 && rest[0] == '.')) {
			bool root = len == 1;
			if (len + !root + n >= PATH_MAX)
				return false;
			if (!root)
				base[len++] = '/';
			memcpy(base + len, rest, n);
			len += n;
			base[len] = '\0';
		}
		rest += n;
		while (*rest == '/')
			rest++;
	}
	return true;
}

static void fill_from_stat(struct file_check_result *r, const struct stat *st, double now)
{
	r->outcome = FILE_CHECK_DONE;
	r->exists = true;
	if (S_ISREG(st->st_mode))
		r->type = FILE_TYPE_FILE;
	else if (S_ISDIR(st->st_mode))
		r->type = FILE_TYPE_DIR;
	else if (S_ISSOCK(st->st_mode))
		r->type = FILE_TYPE_SOCKET;
	else if (S_ISLNK(st->st_mode))
		r->type = FILE_TYPE_SYMLINK;
	else
		r->type = FILE_TYPE_OTHER;
	r->size = (int64_t)st->st_size;
	r->age = now - ((double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9);
}

/*
 * The longest leading part of path that realpath resolves, into resolved;
 * *rest points at what follows it in path (no leading '/').
 */
static void resolve_existing_part(const char *path, char *resolved, const char **rest)
{
	char part[PATH_MAX];
	size_t len = strlen(path);
	memcpy(part, path, len + 1);
	for (;;) {
		char *slash = strrchr(part, '/');
		if (!slash || slash == part) {
			strcpy(resolved, "/");
			*rest = path + 1;
			break;
		}
		*slash = '\0';
		if (realpath(part, resolved)) {
			*rest = path + (slash - part) + 1;
			break;
		}
	}
	while (**rest == '/')
		(*rest)++;
}

void file_check_path(const char *path, char *const *dirs, size_t n, double now,
                     struct file_check_result *r)
{
	memset(r, 0, sizeof(*r));
	if (n == 0) {
		set_error(r, FILE_CHECK_REFUSED,
		          "ctx.file(\"%s\"): no directory is allowed (see --policy-allow-path)",
		          path);
		return;
	}
	if (path[0] != '/') {
		set_error(r, FILE_CHECK_REFUSED, "ctx.file(\"%s\"): not an absolute path", path);
		return;
	}
	if (strlen(path) >= PATH_MAX) {
		set_error(r, FILE_CHECK_REFUSED, "ctx.file(\"%.64s...\"): the path is too long",
		          path);
		return;
	}
	char resolved[PATH_MAX];
	const char *rest = "";
	int err = 0;
	if (!realpath(path, resolved)) {
		err = errno;
		resolve_existing_part(path, resolved, &rest);
		if (!join_lexically(resolved, rest)) {
			set_error(r, FILE_CHECK_REFUSED, "ctx.file(\"%s\"): the path is too long",
			          path);
			return;
		}
	}
	bool allowed = false;
	for (size_t i = 0; i < n && !allowed; i++)
		allowed = beneath(resolved, dirs[i]);
	if (!allowed) {
		set_error(r, FILE_CHECK_REFUSED,
		          "ctx.file(\"%s\"): %s is outside every --policy-allow-path directory",
		          path, resolved);
		return;
	}
	struct stat st;
	if (err == 0) {
		/* lstat: were a component swapped for a symlink since, it is not followed. */
		if (lstat(resolved, &st) == 0)
			fill_from_stat(r, &st, now);
		else if (errno != ENOENT && errno != ENOTDIR)
			set_error(r, FILE_CHECK_FAILED, "ctx.file(\"%s\"): %s", path,
			          strerror(errno));
		/* else: removed since: it does not exist (zeroed r) */
		return;
	}
	if (err == ENOENT || err == ENOTDIR || err == ELOOP) {
		/*
		 * Missing. The one case that exists is a symlink that cannot be
		 * followed (dangling, or a loop) as the last component: it is
		 * reported as what it is, not followed.
		 */
		if (strchr(rest, '/') == NULL && lstat(resolved, &st) == 0 && S_ISLNK(st.st_mode))
			fill_from_stat(r, &st, now);
		else
			r->outcome = FILE_CHECK_DONE; /* exists = false */
		return;
	}
	set_error(r, FILE_CHECK_FAILED, "ctx.file(\"%s\"): %s", path, strerror(err));
}

/* ---- the thread --------------------------------------------------------------------------- */

static void shared_unref(struct shared *sh)
{
	pthread_mutex_lock(&sh->lock);
	bool last = --sh->refs == 0;
	pthread_mutex_unlock(&sh->lock);
	if (!last)
		return;
	pthread_mutex_destroy(&sh->lock);
	pthread_cond_destroy(&sh->wake);
	if (sh->pipe_wr >= 0)
		close(sh->pipe_wr);
	for (size_t i = 0; i < sh->n; i++)
		free(sh->dirs[i]);
	free(sh->dirs);
	free(sh);
}

static void job_free(struct file_check *job)
{
	if (job->timer)
		event_free(job->timer);
	free(job->path);
	free(job);
}

static void *thread_main(void *arg)
{
	struct shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	for (;;) {
		while (!sh->head && !sh->stopping)
			pthread_cond_wait(&sh->wake, &sh->lock);
		if (sh->stopping)
			break;
		struct file_check *job = sh->head;
		sh->head = job->next;
		if (!sh->head)
			sh->tail = NULL;
		job->state = JOB_RUNNING;
		pthread_mutex_unlock(&sh->lock);

		struct file_check_result r;
		sh->check_path(job->path, sh->dirs, sh->n, clock_wall_s(), &r);

		pthread_mutex_lock(&sh->lock);
		if (sh->stopping) {
			job_free(job); /* the checker is gone and left it to us (its timer freed) */
			break;
		}
		job->result = r;
		job->state = JOB_POSTED;
		/* A pointer's write to a pipe is atomic; written under the lock, so that
		 * the checker, once it set stopping, knows nothing more arrives. */
		while (write(sh->pipe_wr, &job, sizeof(job)) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&sh->lock);
	shared_unref(sh);
	return NULL;
}

/* ---- the loop side ------------------------------------------------------------------------- */

static void live_unlink(struct file_check *job)
{
	if (job->live_prev)
		job->live_prev->live_next = job->live_next;
	else
		job->fc->live = job->live_next;
	if (job->live_next)
		job->live_next->live_prev = job->live_prev;
	job->live_prev = job->live_next = NULL;
}

/* Frees a check the loop owns. */
static void release(struct file_check *job)
{
	live_unlink(job);
	job_free(job);
}

/* Answers job once and lets go of it (freed now, or when the thread hands it back). */
static void answer(struct file_check *job, const struct file_check_result *r)
{
	file_check_cb cb = job->cb;
	void *arg = job->arg;
	struct file_check_result copy = *r;
	file_check_cancel(job);
	cb(&copy, arg);
}

static void on_pipe_readable(evutil_socket_t fd, short what, void *arg)
{
	struct file_check *batch[16];
	ssize_t n = read(fd, batch, sizeof(batch));
	for (ssize_t i = 0; i + (ssize_t)sizeof(batch[0]) <= n; i += sizeof(batch[0])) {
		struct file_check *job = batch[i / sizeof(batch[0])];
		job->state = JOB_LOOP; /* the thread wrote it under the lock, before the pipe */
		if (job->abandoned)
			release(job);
		else
			answer(job, &job->result);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct file_check *job = arg;
	if (job->refused_now) {
		answer(job, &job->result);
		return;
	}
	struct file_check_result r;
	memset(&r, 0, sizeof(r));
	set_error(&r, FILE_CHECK_FAILED,
	          "ctx.file(\"%s\"): timed out: the file system did not answer by the check "
	          "deadline",
	          job->path);
	answer(job, &r);
}

struct file_checker *file_checker_new(struct event_base *base, char *const *dirs, size_t n,
                                      check_path_fn check_path)
{
	struct file_checker *fc = calloc(1, sizeof(*fc));
	struct shared *sh = calloc(1, sizeof(*sh));
	if (!fc || !sh)
		goto err_alloc;
	fc->base = base;
	fc->sh = sh;
	fc->pipe_rd = -1;
	sh->pipe_wr = -1;
	sh->refs = 1;
	sh->check_path = check_path ? check_path : file_check_path;
	pthread_mutex_init(&sh->lock, NULL);
	pthread_cond_init(&sh->wake, NULL);
	sh->dirs = calloc(n ? n : 1, sizeof(*sh->dirs));
	if (!sh->dirs)
		goto err;
	for (; sh->n < n; sh->n++)
		if (!(sh->dirs[sh->n] = strdup(dirs[sh->n])))
			goto err;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto err;
	fc->pipe_rd = fds[0];
	sh->pipe_wr = fds[1];
	fcntl(fc->pipe_rd, F_SETFL, O_NONBLOCK);
	fc->pipe_event = event_new(base, fc->pipe_rd, EV_READ | EV_PERSIST, on_pipe_readable, fc);
	if (!fc->pipe_event || event_add(fc->pipe_event, NULL) < 0)
		goto err;
	return fc;
err:
	file_checker_free(fc);
	return NULL;
err_alloc:
	free(fc);
	free(sh);
	return NULL;
}

/* The thread, at the first check that needs it. */
static bool thread_running(struct file_checker *fc)
{
	if (fc->thread_started)
		return true;
	fc->sh->refs++; /* the thread's; nobody else holds the lock yet */
	if (pthread_create(&fc->thread, NULL, thread_main, fc->sh) != 0) {
		fc->sh->refs--;
		return false;
	}
	fc->thread_started = true;
	return true;
}

struct file_check *file_check_start(struct file_checker *fc, const char *path, int64_t deadline_ns,
                                    file_check_cb cb, void *arg)
{
	struct file_check *job = calloc(1, sizeof(*job));
	if (!job)
		return NULL;
	job->fc = fc;
	job->cb = cb;
	job->arg = arg;
	job->state = JOB_LOOP;
	job->path = strdup(path);
	job->timer = evtimer_new(fc->base, on_timer, job);
	if (!job->path || !job->timer) {
		job_free(job);
		return NULL;
	}
	job->live_next = fc->live;
	if (fc->live)
		fc->live->live_prev = job;
	fc->live = job;
	struct shared *sh = fc->sh;
	if (sh->n == 0) {
		/* Refused without touching the file system: answered from the loop, now. */
		file_check_path(path, NULL, 0, 0, &job->result);
		job->refused_now = true;
		event_active(job->timer, EV_TIMEOUT, 0);
		return job;
	}
	if (!thread_running(fc)) {
		set_error(&job->result, FILE_CHECK_FAILED,
		          "ctx.file(\"%s\"): cannot start the file check thread", path);
		job->refused_now = true;
		event_active(job->timer, EV_TIMEOUT, 0);
		return job;
	}
	pthread_mutex_lock(&sh->lock);
	job->state = JOB_QUEUED;
	if (sh->tail)
		sh->tail->next = job;
	else
		sh->head = job;
	sh->tail = job;
	pthread_cond_signal(&sh->wake);
	pthread_mutex_unlock(&sh->lock);
	struct timeval tv = clock_timeval(clock_left(deadline_ns));
	evtimer_add(job->timer, &tv);
	return job;
}

/* Removes job from the queue if it is there (under the lock). */
static bool dequeue(struct shared *sh, struct file_check *job)
{
	for (struct file_check **pp = &sh->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == job) {
			*pp = job->next;
			if (sh->tail == job)
				sh->tail = prev;
			job->next = NULL;
			return true;
		}
	}
	return false;
}

void file_check_cancel(struct file_check *job)
{
	if (!job)
		return;
	struct shared *sh = job->fc->sh;
	event_del(job->timer);
	pthread_mutex_lock(&sh->lock);
	bool ours = job->state == JOB_LOOP || (job->state == JOB_QUEUED && dequeue(sh, job));
	if (!ours)
		job->abandoned = true; /* running or in the pipe: freed when read back */
	pthread_mutex_unlock(&sh->lock);
	if (ours)
		release(job);
}

void file_checker_free(struct file_checker *fc)
{
	if (!fc)
		return;
	struct shared *sh = fc->sh;
	/*
	 * Under the lock: the thread, once it has its stat back, sees stopping
	 * and frees a running check itself; nothing more comes through the pipe,
	 * and what is in it is on the live list.
	 */
	pthread_mutex_lock(&sh->lock);
	sh->stopping = true;
	sh->head = sh->tail = NULL; /* the queued checks are on the live list too */
	while (fc->live) {
		struct file_check *job = fc->live;
		live_unlink(job);
		if (job->state == JOB_RUNNING) {
			event_free(job->timer); /* the loop's part; the rest is the thread's */
			job->timer = NULL;
		} else {
			job_free(job);
		}
	}
	pthread_cond_signal(&sh->wake);
	pthread_mutex_unlock(&sh->lock);
	if (fc->thread_started) {
		/* An idle thread ends at once; one stuck in a stat is left to end (or not). */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += JOIN_WAIT_NS;
		until.tv_sec += until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		if (pthread_timedjoin_np(fc->thread, NULL, &until) != 0) {
			LOG_INFO_V(2, "A file check is still running, leaving it behind");
			pthread_detach(fc->thread);
		}
	}
	if (fc->pipe_event)
		event_free(fc->pipe_event);
	if (fc->pipe_rd >= 0)
		close(fc->pipe_rd);
	free(fc);
	shared_unref(sh);
}
