/* Reading a user's file without blocking on it (file_read.h). */
#include "file_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *file_read(const char *path, size_t max, size_t *len, char *errbuf, size_t errlen)
{
	char *text = NULL;
	size_t used = 0;
	struct stat st;
	/*
	 * Looked at before it is opened: open(2) of a socket fails with a
	 * puzzling ENXIO, and of a device may act. O_NONBLOCK: a FIFO put there
	 * in between would otherwise wait for a writer, for ever; it changes
	 * nothing for a regular file, the only kind read.
	 */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(errbuf, errlen, "%s: not a regular file", path);
		return NULL;
	}
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(errbuf, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		snprintf(errbuf, errlen, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	/*
	 * Room for one byte more than the size seen (up to one past the
	 * limit), to notice a file that grows while it is read; and the NUL.
	 */
	size_t cap = (size_t)st.st_size + 1;
	text = malloc(cap + 1);
	if (!text) {
		snprintf(errbuf, errlen, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, text + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used == cap) {
			if (used > max) {
				snprintf(errbuf, errlen, "%s: larger than %zu bytes", path, max);
				goto fail;
			}
			/* The file grew past its size at open: make room up to the limit. */
			size_t bigger = cap * 2 < max + 1 ? cap * 2 : max + 1;
			char *grown = realloc(text, bigger + 1);
			if (!grown) {
				snprintf(errbuf, errlen, "%s: out of memory", path);
				goto fail;
			}
			text = grown;
			cap = bigger;
		}
	}
	text[used] = '\0';
	*len = used;
	close(fd);
	return text;
fail:
	free(text);
	text = NULL;
out:
	close(fd);
	return NULL;
}
