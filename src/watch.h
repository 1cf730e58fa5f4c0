/*
 * Watches a file for changes the way a mounted ConfigMap changes: kubelet
 * swaps a "..data" symlink in the file's directory, so the directory is
 * watched (inotify), not the file. Plain rewrites, renames over the file
 * and symlink swaps all end in one callback, after a short quiet period.
 */
#ifndef LP_WATCH_H
#define LP_WATCH_H

#include <stddef.h>

struct event_base;
struct watch;

typedef void (*watch_cb)(void *arg);

/* NULL with errbuf when the directory cannot be watched. */
struct watch *watch_new(struct event_base *base, const char *path, watch_cb cb, void *arg,
                        char *errbuf, size_t errlen);
void watch_free(struct watch *w);

#endif
