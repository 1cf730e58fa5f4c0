/* Go-compatible TCP listeners (listen.h). */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <ctype.h>
#include <unistd.h>

/* strerror as Go's syscall errors read: "address already in use". */
static const char *go_errno_text(int err, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(err));
	if (buf[0])
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

/* Go's net.SplitHostPort, reduced to what listening needs. */
static int split_host_port(const char *address, char *host, size_t hostlen, char *port,
                           size_t portlen, char *errbuf, size_t errlen)
{
	const char *colon = strrchr(address, ':');
	if (!colon) {
		snprintf(errbuf, errlen, "listen tcp: address %s: missing port in address",
		         address);
		return -1;
	}
	const char *h = address;
	size_t hn = (size_t)(colon - address);
	if (hn > 0 && h[0] == '[') {
		if (h[hn - 1] != ']') {
			snprintf(errbuf, errlen, "listen tcp: address %s: missing ']' in address",
			         address);
			return -1;
		}
		h++;
		hn -= 2;
	} else if (memchr(h, ':', hn)) {
		snprintf(errbuf, errlen, "listen tcp: address %s: too many colons in address",
		         address);
		return -1;
	}
	if (hn >= hostlen || strlen(colon + 1) >= portlen) {
		snprintf(errbuf, errlen, "listen tcp: address %s: address too long", address);
		return -1;
	}
	memcpy(host, h, hn);
	host[hn] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

static int parse_port(const char *address, const char *port, char *errbuf, size_t errlen)
{
	char *end;
	if (port[0] == '\0')
		return 0; /* Go: an empty port means "any" */
	long n = strtol(port, &end, 10);
	if (*end != '\0' || port[0] == '-' || port[0] == '+') {
		snprintf(errbuf, errlen, "listen tcp: address tcp/%s: unknown port", port);
		return -1;
	}
	if (n < 0 || n > 65535) {
		snprintf(errbuf, errlen, "listen tcp: address %s: invalid port", port);
		return -1;
	}
	return (int)n;
}

static int bind_listen(int family, const struct sockaddr *sa, socklen_t salen, int v6only,
                       const char *address, char *errbuf, size_t errlen)
{
	char why[128];
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(errbuf, errlen, "listen tcp %s: socket: %s", address,
		         go_errno_text(errno, why, sizeof(why)));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (bind(fd, sa, salen) < 0) {
		snprintf(errbuf, errlen, "listen tcp %s: bind: %s", address,
		         go_errno_text(errno, why, sizeof(why)));
		goto err;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		snprintf(errbuf, errlen, "listen tcp %s: listen: %s", address,
		         go_errno_text(errno, why, sizeof(why)));
		goto err;
	}
	return fd;
err:
	one = errno; /* the caller looks at why bind failed */
	close(fd);
	errno = one;
	return -1;
}

int listen_tcp(const char *address, char *errbuf, size_t errlen)
{
	char host[256], portstr[64];
	if (split_host_port(address, host, sizeof(host), portstr, sizeof(portstr), errbuf, errlen) <
	    0)
		return -1;
	int port = parse_port(address, portstr, errbuf, errlen);
	if (port < 0)
		return -1;

	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
		/* Dual-stack wildcard; an IPv4-only kernel gets the IPv4 wildcard. */
		struct sockaddr_in6 six = {.sin6_family = AF_INET6,
		                           .sin6_port = htons((uint16_t)port),
		                           .sin6_addr = in6addr_any};
		int fd = bind_listen(AF_INET6, (struct sockaddr *)&six, sizeof(six), 0, address,
		                     errbuf, errlen);
		if (fd >= 0 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL))
			return fd;
		struct sockaddr_in four = {.sin_family = AF_INET,
		                           .sin_port = htons((uint16_t)port),
		                           .sin_addr.s_addr = htonl(INADDR_ANY)};
		return bind_listen(AF_INET, (struct sockaddr *)&four, sizeof(four), 0, address,
		                   errbuf, errlen);
	}

	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char portnum[16];
	snprintf(portnum, sizeof(portnum), "%d", port);
	int rc = getaddrinfo(host, portnum, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(errbuf, errlen, "listen tcp: lookup %s: %s", host,
		         rc ? gai_strerror(rc) : "no such host");
		return -1;
	}
	int fd = bind_listen(res->ai_family, res->ai_addr, res->ai_addrlen, 1, address, errbuf,
	                     errlen);
	freeaddrinfo(res);
	return fd;
}
