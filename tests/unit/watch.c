/*
 * The policy file's watch (src/watch.c): a rewrite, a rename over the file
 * and a ConfigMap's ..data symlink swap each end in one callback after a
 * quiet period; a directory deleted and made again is watched again.
 */
#include "watch.h"
#include "clock.h"
#include "testing.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

static struct event_base *base;
static int calls;
static char dir[] = "/tmp/lp-watch-XXXXXX";

static void on_change(void *arg)
{
	calls++;
}

static char *path_of(const char *name)
{
	static char bufs[4][512];
	static int i;
	char *p = bufs[i++ % 4];
	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* Runs the loop for ms milliseconds. */
static void run_for(int ms)
{
	int64_t end = clock_deadline((int64_t)ms * 1000000);
	while (clock_now_ns() < end) {
		struct timeval tv = clock_timeval(clock_left(end));
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

/* Waits (on the condition, up to 3 s) until calls reaches n; then a quiet period. */
static void wait_calls(int n)
{
	int64_t end = clock_deadline(3000000000LL);
	while (calls < n && clock_now_ns() < end)
		run_for(20);
	run_for(300); /* no second callback for the same change */
}

static void test_changes(void)
{
	char err[256];
	write_text(path_of("policy.lua"), "v1");
	struct watch *w = watch_new(base, path_of("policy.lua"), on_change, NULL, err, sizeof(err));
	CHECK(w != NULL);
	run_for(300);
	CHECK_INT(calls, 0);

	write_text(path_of("policy.lua"), "v2"); /* a rewrite */
	wait_calls(1);
	CHECK_INT(calls, 1);

	write_text(path_of("new.lua"), "v3"); /* a rename over the file */
	rename(path_of("new.lua"), path_of("policy.lua"));
	wait_calls(2);
	CHECK_INT(calls, 2);

	/* A ConfigMap update: new data directory, ..data swapped, old removed. */
	mkdir(path_of("..2026_a"), 0700);
	write_text(path_of("..2026_a/policy.lua"), "v4");
	CHECK(symlink("..2026_a", path_of("..data_tmp")) == 0);
	rename(path_of("..data_tmp"), path_of("..data"));
	wait_calls(3);
	CHECK_INT(calls, 3);
	watch_free(w);
}

static void test_directory_recreated(void)
{
	char err[256];
	char sub[600];
	snprintf(sub, sizeof(sub), "%s/conf", dir);
	mkdir(sub, 0700);
	char file[700];
	snprintf(file, sizeof(file), "%s/policy.lua", sub);
	write_text(file, "v1");
	calls = 0;
	struct watch *w = watch_new(base, file, on_change, NULL, err, sizeof(err));
	CHECK(w != NULL);
	unlink(file);
	rmdir(sub);
	run_for(300);
	int before = calls;
	mkdir(sub, 0700);
	write_text(file, "v2");
	wait_calls(before + 1);
	CHECK(calls > before); /* found again, and told */
	int after = calls;
	write_text(file, "v3"); /* and watched again */
	wait_calls(after + 1);
	CHECK(calls > after);
	watch_free(w);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	base = event_base_new();
	test_changes();
	test_directory_recreated();
	event_base_free(base);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return testing_result("watch");
}
