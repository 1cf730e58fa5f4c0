/*
 * The one way a file named by a user (a policy, a mock driver script) is
 * read: without ever blocking on what is not a regular file.
 */
#ifndef LP_FILE_READ_H
#define LP_FILE_READ_H

#include <stddef.h>

/*
 * Reads the whole of path into a malloc'd, NUL-terminated buffer (*len
 * bytes, which may include NULs). Symlinks are followed (a ConfigMap's file
 * is one). Refused, with "PATH: reason" in errbuf and NULL returned: what
 * cannot be opened, anything that is not a regular file ("not a regular
 * file": a FIFO, a directory, a socket, a device), and a file over max
 * bytes. The open never blocks: a FIFO without a writer is refused at once.
 */
char *file_read(const char *path, size_t max, size_t *len, char *errbuf, size_t errlen);

#endif
