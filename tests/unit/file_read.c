/*
 * Reading a user's file (src/file_read.c): regular files whole, symlinks
 * followed, and everything else refused at once with "not a regular file",
 * a FIFO without a writer included (a blocking open would hang for ever).
 */
#include "file_read.h"
#include "testing.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[] = "/tmp/lp-file-read-XXXXXX";
static char err[512];

static char *path_of(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void write_text(const char *name, const char *text, size_t len)
{
	FILE *f = fopen(path_of(name), "wb");
	if (!f || fwrite(text, 1, len, f) != len) {
		perror("write_text");
		exit(2);
	}
	fclose(f);
}

static void check_refused(const char *name, const char *reason)
{
	size_t len = 99;
	char want[512];
	char *text = file_read(path_of(name), 1024, &len, err, sizeof(err));
	CHECK(text == NULL);
	free(text);
	snprintf(want, sizeof(want), "%s: %s", path_of(name), reason);
	CHECK_STR(err, want);
	CHECK_INT(len, 99); /* untouched */
}

static void test_regular(void)
{
	write_text("a.lua", "x\0y", 3);
	size_t len = 0;
	char *text = file_read(path_of("a.lua"), 1024, &len, err, sizeof(err));
	CHECK(text != NULL);
	CHECK_INT(len, 3);
	if (text) {
		CHECK(memcmp(text, "x\0y", 4) == 0); /* NULs kept, and terminated */
		free(text);
	}
	/* Empty is fine. */
	write_text("empty.lua", "", 0);
	text = file_read(path_of("empty.lua"), 1024, &len, err, sizeof(err));
	CHECK(text != NULL && len == 0 && text[0] == '\0');
	free(text);
}

static void test_symlink_followed(void)
{
	CHECK(symlink("a.lua", path_of("link.lua")) == 0); /* relative, as ConfigMaps do */
	size_t len = 0;
	char *text = file_read(path_of("link.lua"), 1024, &len, err, sizeof(err));
	CHECK(text != NULL && len == 3);
	free(text);
	/* A loop is an error, not a hang. */
	CHECK(symlink("loop2", path_of("loop1")) == 0);
	CHECK(symlink("loop1", path_of("loop2")) == 0);
	check_refused("loop1", "Too many levels of symbolic links");
}

static void test_limit(void)
{
	char big[2000];
	memset(big, 'x', sizeof(big));
	write_text("big.lua", big, sizeof(big));
	check_refused("big.lua", "larger than 1024 bytes");
	write_text("edge.lua", big, 1024);
	size_t len = 0;
	char *text = file_read(path_of("edge.lua"), 1024, &len, err, sizeof(err));
	CHECK(text != NULL && len == 1024);
	free(text);
}

static void test_not_regular(void)
{
	/* No writer: a blocking open would never return; the alarm ends a hang. */
	alarm(5);
	mkfifo(path_of("fifo.lua"), 0600);
	check_refused("fifo.lua", "not a regular file");
	mkdir(path_of("dir.lua"), 0700);
	check_refused("dir.lua", "not a regular file");
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path_of("sock.lua"));
	CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	check_refused("sock.lua", "not a regular file");
	close(s);
	CHECK(symlink("/dev/zero", path_of("zero.lua")) == 0);
	check_refused("zero.lua", "not a regular file");
	check_refused("missing.lua", "No such file or directory");
	alarm(0);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_regular();
	test_symlink_followed();
	test_limit();
	test_not_regular();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return testing_result("file_read");
}
