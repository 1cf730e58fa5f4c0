/*
 * --csi-address forms (src/csi.c csi_address_parse, UPSTREAM.md §2.2): what
 * is dialled, which file is stat'ed before each probe, and what logs show.
 * No gRPC call is made here.
 */
#include "csi.h"
#include "testing.h"

static const char *kind_name(enum csi_address_kind k)
{
	switch (k) {
	case CSI_ADDRESS_UNIX:
		return "UNIX";
	case CSI_ADDRESS_GRPC:
		return "GRPC";
	case CSI_ADDRESS_NEVER:
		return "NEVER";
	case CSI_ADDRESS_INVALID:
		return "INVALID";
	}
	return "?";
}

static struct csi_address addr;
static char err[512];

static enum csi_address_kind parse(const char *value)
{
	/* Garbage first, so stale fields would show. */
	memset(&addr, 'Z', sizeof(addr));
	addr.target[sizeof(addr.target) - 1] = '\0';
	addr.path[sizeof(addr.path) - 1] = '\0';
	addr.display[sizeof(addr.display) - 1] = '\0';
	snprintf(err, sizeof(err), "untouched");
	enum csi_address_kind k = csi_address_parse(value, &addr, err, sizeof(err));
	CHECK_INT(k, addr.kind); /* returned and stored agree */
	return k;
}

static void check_unix(const char *value, const char *path, const char *target, const char *display)
{
	enum csi_address_kind k = parse(value);
	if (k != CSI_ADDRESS_UNIX)
		fprintf(stderr, "\"%s\": got %s, want UNIX\n", value, kind_name(k));
	CHECK_INT(k, CSI_ADDRESS_UNIX);
	CHECK_STR(addr.path, path);
	CHECK_STR(addr.target, target);
	CHECK_STR(addr.display, display);
}

static void check_grpc(const char *value)
{
	enum csi_address_kind k = parse(value);
	if (k != CSI_ADDRESS_GRPC)
		fprintf(stderr, "\"%s\": got %s, want GRPC\n", value, kind_name(k));
	CHECK_INT(k, CSI_ADDRESS_GRPC);
	CHECK_STR(addr.target, value); /* verbatim to gRPC's resolver */
	CHECK_STR(addr.display, value);
	CHECK_STR(addr.path, ""); /* nothing to stat */
}

static void check_invalid(const char *value, const char *authority)
{
	char want[256];
	snprintf(want, sizeof(want), "invalid (non-empty) authority: %s", authority);
	enum csi_address_kind k = parse(value);
	if (k != CSI_ADDRESS_INVALID)
		fprintf(stderr, "\"%s\": got %s, want INVALID\n", value, kind_name(k));
	CHECK_INT(k, CSI_ADDRESS_INVALID);
	CHECK(strstr(err, want) != NULL);
	/* Upstream's fatal text ends with the authority, nothing after it. */
	size_t el = strlen(err), wl = strlen(want);
	CHECK(el >= wl && strcmp(err + el - wl, want) == 0);
}

/* connlib: an absolute path, or unix:// + absolute path, is a unix socket. */
static void test_unix_absolute(void)
{
	check_unix("/tmp/x.sock", "/tmp/x.sock", "unix:/tmp/x.sock", "unix:///tmp/x.sock");
	check_unix("unix:///tmp/x.sock", "/tmp/x.sock", "unix:/tmp/x.sock", "unix:///tmp/x.sock");
	check_unix("/run/csi/socket", "/run/csi/socket", "unix:/run/csi/socket",
	           "unix:///run/csi/socket");
	check_unix("/", "/", "unix:/", "unix:///");
}

/* gRPC's own unix resolver: "unix:/abs" and "unix:relative" (kept relative to cwd). */
static void test_unix_grpc_forms(void)
{
	check_unix("unix:/tmp/x.sock", "/tmp/x.sock", "unix:/tmp/x.sock", "unix:///tmp/x.sock");
	enum csi_address_kind k = parse("unix:x.sock");
	CHECK_INT(k, CSI_ADDRESS_UNIX);
	CHECK_STR(addr.path, "x.sock");
	CHECK_STR(addr.target, "unix:x.sock");
	k = parse("unix:sub/dir/x.sock");
	CHECK_INT(k, CSI_ADDRESS_UNIX);
	CHECK_STR(addr.path, "sub/dir/x.sock");
	CHECK_STR(addr.target, "unix:sub/dir/x.sock");
}

/* unix://relative is read by Go's resolver as an authority: fatal at start-up. */
static void test_invalid_authority(void)
{
	check_invalid("unix://tmp/x.sock", "tmp");
	check_invalid("unix://x.sock", "x.sock");
	check_invalid("unix://host:1/a/b", "host:1");
}

/* Anything else goes to gRPC's resolver as it is (TCP, dns:///, or never connecting). */
static void test_grpc_targets(void)
{
	check_grpc("127.0.0.1:10000");
	check_grpc("dns:///h:1");
	check_grpc("x.sock");
	check_grpc("./x.sock");
	check_grpc("tcp://127.0.0.1:1");
	check_grpc("[::1]:10000");
}

/* An empty address can never connect (upstream retries forever). */
static void test_empty(void)
{
	enum csi_address_kind k = parse("");
	CHECK_INT(k, CSI_ADDRESS_NEVER);
	CHECK_STR(addr.path, "");
}

/* Long values are cut to the buffers, never overflowed. */
static void test_long_path(void)
{
	static char value[6000];
	value[0] = '/';
	memset(value + 1, 'a', sizeof(value) - 2);
	value[sizeof(value) - 1] = '\0';
	enum csi_address_kind k = parse(value);
	CHECK_INT(k, CSI_ADDRESS_UNIX);
	CHECK_INT(strlen(addr.path), sizeof(addr.path) - 1);
	CHECK_INT(strlen(addr.target), sizeof(addr.target) - 1);
	CHECK(strncmp(addr.target, "unix:/aaa", 9) == 0);
}

int main(void)
{
	test_unix_absolute();
	test_unix_grpc_forms();
	test_invalid_authority();
	test_grpc_targets();
	test_empty();
	test_long_path();
	return testing_result("csi");
}
