/* TCP listening sockets with Go's net.Listen("tcp", addr) semantics. */
#ifndef LP_LISTEN_H
#define LP_LISTEN_H

#include <stddef.h>

/*
 * Binds and listens on "host:port", "[v6]:port" or ":port". An empty host,
 * 0.0.0.0 or :: binds a dual-stack wildcard (IPv4 and IPv6), as Go does; an
 * IP literal binds that address only; a name binds its first address.
 * Returns a non-blocking, close-on-exec fd, or -1 with Go's wording in
 * errbuf ("listen tcp 0.0.0.0:9808: bind: address already in use").
 */
int listen_tcp(const char *address, char *errbuf, size_t errlen);

#endif
