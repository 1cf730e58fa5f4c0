/* Framing for the daemon ↔ policy worker socket (wire.h). */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HEADER 5

static int write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int wire_send(int fd, enum wire_type type, const void *a, size_t alen, const void *b, size_t blen,
              const void *c, size_t clen, const void *d, size_t dlen)
{
	size_t total = alen + blen + clen + dlen;
	if (total + 1 > WIRE_MAX_FRAME)
		return -1;
	uint8_t header[HEADER];
	uint32_t len = (uint32_t)(total + 1);
	memcpy(header, &len, 4);
	header[4] = (uint8_t)type;
	struct iovec iov[5];
	int n = 0;
	iov[n++] = (struct iovec){header, HEADER};
	const void *parts[] = {a, b, c, d};
	size_t lens[] = {alen, blen, clen, dlen};
	for (int i = 0; i < 4; i++)
		if (parts[i] && lens[i])
			iov[n++] = (struct iovec){(void *)parts[i], lens[i]};
	return write_all(fd, iov, n);
}

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t r = read(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int wire_recv(int fd, enum wire_type *type, uint8_t **payload, size_t *len)
{
	uint8_t header[HEADER];
	*payload = NULL;
	if (read_all(fd, header, HEADER) < 0)
		return -1;
	uint32_t n;
	memcpy(&n, header, 4);
	if (n < 1 || n > WIRE_MAX_FRAME)
		return -1;
	*type = (enum wire_type)header[4];
	*len = n - 1;
	*payload = malloc(*len + 1);
	if (!*payload || read_all(fd, *payload, *len) < 0) {
		free(*payload);
		*payload = NULL;
		return -1;
	}
	(*payload)[*len] = 0;
	return 0;
}

int wire_reader_feed(struct wire_reader *r, const void *data, size_t len)
{
	if (r->len + len > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + len)
			cap *= 2;
		if (cap > 2 * (size_t)WIRE_MAX_FRAME)
			return -1;
		uint8_t *n = realloc(r->buf, cap);
		if (!n)
			return -1;
		r->buf = n;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	return 0;
}

int wire_reader_next(struct wire_reader *r, enum wire_type *type, const uint8_t **payload,
                     size_t *len)
{
	if (r->consumed) {
		memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
		r->len -= r->consumed;
		r->consumed = 0;
	}
	if (r->len < HEADER)
		return 0;
	uint32_t n;
	memcpy(&n, r->buf, 4);
	if (n < 1 || n > WIRE_MAX_FRAME)
		return -1;
	if (r->len < 4 + (size_t)n)
		return 0;
	*type = (enum wire_type)r->buf[4];
	*payload = r->buf + HEADER;
	*len = n - 1;
	r->consumed = 4 + (size_t)n;
	return 1;
}

void wire_reader_reset(struct wire_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
