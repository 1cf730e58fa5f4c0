/*
 * listen_tcp (src/listen.c): Go's net.Listen("tcp", addr) semantics and
 * wording (UPSTREAM.md §2.6). Uses port 0 (any free port) throughout; the
 * IPv6 parts are skipped, with a note, on machines without IPv6.
 */
#include "listen.h"
#include "testing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

static char err[512];

static bool have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* The bound port and address family of a listening fd. */
static int bound_port(int fd, int *family)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	*family = ss.ss_family;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A blocking connect to ip:port; true when the listener accepted it. */
static bool can_connect(const char *ip, int port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *six = (struct sockaddr_in6 *)&ss;
		six->sin6_family = AF_INET6;
		six->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &six->sin6_addr);
		len = sizeof(*six);
	} else {
		struct sockaddr_in *four = (struct sockaddr_in *)&ss;
		four->sin_family = AF_INET;
		four->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &four->sin_addr);
		len = sizeof(*four);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	bool ok = connect(fd, (struct sockaddr *)&ss, len) == 0;
	close(fd);
	return ok;
}

/* An IP literal binds that address only; the fd is non-blocking and close-on-exec. */
static void test_ipv4_loopback(void)
{
	int fd = listen_tcp("127.0.0.1:0", err, sizeof(err));
	CHECK(fd >= 0);
	if (fd < 0) {
		fprintf(stderr, "listen_tcp(127.0.0.1:0): %s\n", err);
		return;
	}
	int family = 0;
	int port = bound_port(fd, &family);
	CHECK_INT(family, AF_INET);
	CHECK(port > 0);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	int accepting = 0;
	socklen_t alen = sizeof(accepting);
	CHECK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &alen) == 0 && accepting);
	CHECK(can_connect("127.0.0.1", port));
	if (have_ipv6())
		CHECK(!can_connect("::1", port)); /* IPv4 only */
	close(fd);
}

/* An empty host, 0.0.0.0 and [::] bind a dual-stack wildcard, as Go does. */
static void check_wildcard(const char *address)
{
	int fd = listen_tcp(address, err, sizeof(err));
	CHECK(fd >= 0);
	if (fd < 0) {
		fprintf(stderr, "listen_tcp(%s): %s\n", address, err);
		return;
	}
	int family = 0;
	int port = bound_port(fd, &family);
	CHECK(port > 0);
	CHECK(can_connect("127.0.0.1", port));
	if (have_ipv6()) {
		CHECK_INT(family, AF_INET6);
		int v6only = -1;
		socklen_t len = sizeof(v6only);
		CHECK(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) == 0);
		CHECK_INT(v6only, 0);
		if (!can_connect("::1", port))
			fprintf(stderr, "%s: no IPv6 connection on port %d\n", address, port);
		CHECK(can_connect("::1", port));
	}
	close(fd);
}

static void test_wildcards(void)
{
	if (!have_ipv6())
		printf("listen: no IPv6 on this machine; dual-stack connects over ::1 skipped\n");
	check_wildcard(":0");
	check_wildcard("0.0.0.0:0");
	check_wildcard("[::]:0");
	check_wildcard(":"); /* Go: an empty port means any port */
}

/* [::1] binds IPv6 loopback only. */
static void test_ipv6_loopback(void)
{
	if (!have_ipv6()) {
		printf("listen: no IPv6 on this machine; [::1] skipped\n");
		return;
	}
	int fd = listen_tcp("[::1]:0", err, sizeof(err));
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	int family = 0;
	int port = bound_port(fd, &family);
	CHECK_INT(family, AF_INET6);
	CHECK(can_connect("::1", port));
	CHECK(!can_connect("127.0.0.1", port));
	close(fd);
}

/* A port in use fails with Go's text: "listen tcp ADDR: bind: address already in use". */
static void test_busy_port(void)
{
	int fd = listen_tcp("127.0.0.1:0", err, sizeof(err));
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	int family;
	int port = bound_port(fd, &family);
	char address[64], want[128];
	snprintf(address, sizeof(address), "127.0.0.1:%d", port);
	snprintf(want, sizeof(want), "listen tcp %s: bind: address already in use", address);
	snprintf(err, sizeof(err), "untouched");
	int fd2 = listen_tcp(address, err, sizeof(err));
	CHECK_INT(fd2, -1);
	CHECK(strstr(err, "bind: address already in use") != NULL);
	CHECK_STR(err, want);
	if (fd2 >= 0)
		close(fd2);

	/* The wildcard on the same port is busy too. */
	snprintf(address, sizeof(address), "0.0.0.0:%d", port);
	snprintf(want, sizeof(want), "listen tcp %s: bind: address already in use", address);
	fd2 = listen_tcp(address, err, sizeof(err));
	CHECK_INT(fd2, -1);
	CHECK_STR(err, want);
	if (fd2 >= 0)
		close(fd2);
	close(fd);
}

static void check_refused(const char *address, const char *want)
{
	snprintf(err, sizeof(err), "untouched");
	int fd = listen_tcp(address, err, sizeof(err));
	CHECK_INT(fd, -1);
	if (fd >= 0)
		close(fd);
	CHECK_STR(err, want);
}

/* Malformed addresses: Go's messages, word for word. */
static void test_bad_addresses(void)
{
	check_refused("bogus", "listen tcp: address bogus: missing port in address");
	check_refused("0.0.0.0:abc", "listen tcp: address tcp/abc: unknown port");
	check_refused("::1:80", "listen tcp: address ::1:80: too many colons in address");
	check_refused("[::1:80", "listen tcp: address [::1:80: missing ']' in address");

	/* Go: &AddrError{Err: "invalid port", Addr: service}, the port text alone. */
	snprintf(err, sizeof(err), "untouched");
	int fd = listen_tcp("0.0.0.0:70000", err, sizeof(err));
	CHECK_INT(fd, -1);
	if (fd >= 0)
		close(fd);
	CHECK(strstr(err, "invalid port") != NULL);
	CHECK_STR(err, "listen tcp: address 70000: invalid port");
}

int main(void)
{
	test_ipv4_loopback();
	test_wildcards();
	test_ipv6_loopback();
	test_busy_port();
	test_bad_addresses();
	return testing_result("listen");
}
