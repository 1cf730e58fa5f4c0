/*
 * ctx.file(path) for policies (README "ctx.file"): a stat of a path under
 * one of the --policy-allow-path directories, done by the daemon on a
 * thread of its own, never on the event loop (a hung mount must not stop
 * /healthz) and never in the policy worker (which has no file access).
 *
 * A path is resolved before it is checked against the directories, so
 * neither ".." nor a symlink leads out of them: the resolved path must be a
 * directory or lie beneath one. Missing components are resolved lexically
 * once the existing part is resolved: such a path cannot exist, and only
 * its place decides between "missing" and "refused". The directories
 * themselves are resolved once, at start-up (config.c).
 */
#ifndef LP_FILE_CHECK_H
#define LP_FILE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct file_checker;
struct file_check;

enum file_check_outcome {
	FILE_CHECK_DONE,    /* exists, and type, size and age when it exists */
	FILE_CHECK_REFUSED, /* not allowed: ctx.file raises error */
	FILE_CHECK_FAILED,  /* no answer (timed out, permission denied): error says why */
};

enum file_type {
	FILE_TYPE_FILE,
	FILE_TYPE_DIR,
	FILE_TYPE_SOCKET,
	FILE_TYPE_SYMLINK,
	FILE_TYPE_OTHER
};

/* "file", "dir", "socket", "symlink", "other" (as ctx.file's type says). */
const char *file_type_name(enum file_type t);

struct file_check_result {
	enum file_check_outcome outcome;
	bool exists;
	enum file_type type;
	int64_t size;     /* bytes (st_size) */
	double age;       /* seconds since the last modification (negative: in the future) */
	char error[1024]; /* REFUSED, FAILED: why */
};

/*
 * The checker proper, blocking: resolves path, checks it against the n
 * directories in dirs (resolved, absolute) and stats it; now is the wall
 * clock (seconds) that ages are counted from. A path holding a NUL byte
 * is the caller's to refuse (this sees a C string).
 */
void file_check_path(const char *path, char *const *dirs, size_t n, double now,
                     struct file_check_result *r);

typedef void (*file_check_cb)(const struct file_check_result *r, void *arg);

/*
 * A checker for the n directories in dirs (copied). Its thread starts with
 * the first check. check_path: file_check_path, or a stand-in (tests).
 * NULL when out of memory.
 */
struct file_checker *file_checker_new(struct event_base *base, char *const *dirs, size_t n,
                                      void (*check_path)(const char *path, char *const *dirs,
                                                         size_t n, double now,
                                                         struct file_check_result *r));

/*
 * Checks path for an answer by deadline_ns (CLOCK_MONOTONIC): cb is called
 * exactly once, from the loop, later, unless file_check_cancel comes first.
 * Without directories it refuses at once (from the loop too); a stat that
 * has not answered by the deadline is answered FAILED ("timed out"), and
 * the checks queued behind it wait. NULL when out of memory.
 */
struct file_check *file_check_start(struct file_checker *fc, const char *path, int64_t deadline_ns,
                                    file_check_cb cb, void *arg);

/* The caller no longer wants the answer: no callback comes. NULL is a no-op. */
void file_check_cancel(struct file_check *check);

/*
 * Cancels every check and frees the checker without waiting for its
 * thread: a thread stuck in a hung stat lets go of what is left when (if)
 * the stat returns. NULL is a no-op.
 */
void file_checker_free(struct file_checker *fc);

#endif
