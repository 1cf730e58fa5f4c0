/*
 * ctx.file's checker (src/file_check.c): paths resolved before the
 * allow-list check, so that neither ".." nor a symlink leads out; missing
 * paths; what each file type reports; and the thread: a stat that hangs is
 * answered "timed out" by the deadline while the loop goes on, and freeing
 * the checker does not wait for it.
 */
#include "clock.h"
#include "file_check.h"
#include "testing.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#define MS 1000000LL

static char root[PATH_MAX - 64]; /* the test's directory, resolved */
static char allowed[PATH_MAX];   /* root/allowed: the one allowed directory */
static char *dirs[1] = {allowed};

static void make_file(const char *name, const char *text)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void make_link(const char *target, const char *name)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	CHECK(symlink(target, path) == 0);
}

static int make_socket(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	CHECK(strlen(root) + strlen(name) + 2 <= sizeof(sa.sun_path));
	memcpy(sa.sun_path, root, strlen(root));
	sa.sun_path[strlen(root)] = '/';
	memcpy(sa.sun_path + strlen(root) + 1, name, strlen(name) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

/* Checks root-relative path (or an absolute one) against the allowed directory. */
static struct file_check_result check(const char *path)
{
	char full[PATH_MAX + 64];
	struct file_check_result r;
	if (path[0] == '/')
		snprintf(full, sizeof(full), "%s", path);
	else
		snprintf(full, sizeof(full), "%s/%s", root, path);
	file_check_path(full, dirs, 1, clock_wall_s(), &r);
	return r;
}

static void expect_type(const char *path, enum file_type type)
{
	struct file_check_result r = check(path);
	if (r.outcome != FILE_CHECK_DONE || !r.exists || r.type != type)
		fprintf(stderr, "%s: outcome %d exists %d type %s (%s)\n", path, r.outcome,
		        r.exists, file_type_name(r.type), r.error);
	CHECK_INT(r.outcome, FILE_CHECK_DONE);
	CHECK(r.exists);
	CHECK_STR(file_type_name(r.type), file_type_name(type));
}

static void expect_missing(const char *path)
{
	struct file_check_result r = check(path);
	if (r.outcome != FILE_CHECK_DONE || r.exists)
		fprintf(stderr, "%s: outcome %d exists %d (%s)\n", path, r.outcome, r.exists,
		        r.error);
	CHECK_INT(r.outcome, FILE_CHECK_DONE);
	CHECK(!r.exists);
}

static void expect_refused(const char *path, const char *why)
{
	struct file_check_result r = check(path);
	if (r.outcome != FILE_CHECK_REFUSED || !strstr(r.error, why))
		fprintf(stderr, "%s: outcome %d, error \"%s\", want \"%s\"\n", path, r.outcome,
		        r.error, why);
	CHECK_INT(r.outcome, FILE_CHECK_REFUSED);
	CHECK(strstr(r.error, why) != NULL);
}

static void test_paths(void)
{
	make_file("allowed/file", "12345");
	make_file("outside", "secret");
	make_file("allowed-sibling", "not beneath allowed");
	char sub[PATH_MAX + 8];
	snprintf(sub, sizeof(sub), "%s/sub", allowed);
	CHECK(mkdir(sub, 0755) == 0);
	int sock = make_socket("allowed/plugin.sock");
	make_link("file", "allowed/link-in");
	make_link("../outside", "allowed/link-out");
	make_link("/", "allowed/link-root");
	make_link("nowhere", "allowed/dangling");
	make_link("loop", "allowed/loop");

	struct file_check_result r = check("allowed/file");
	CHECK_INT(r.outcome, FILE_CHECK_DONE);
	CHECK(r.exists);
	CHECK_STR(file_type_name(r.type), "file");
	CHECK_INT(r.size, 5);
	CHECK(r.age >= -1 && r.age < 60);      /* just written */
	expect_type("allowed", FILE_TYPE_DIR); /* the directory itself */
	expect_type("allowed/sub", FILE_TYPE_DIR);
	expect_type("allowed/sub/", FILE_TYPE_DIR);
	expect_type("allowed/plugin.sock", FILE_TYPE_SOCKET);
	expect_type("allowed/link-in", FILE_TYPE_FILE); /* followed: it stays inside */
	expect_type("allowed/./sub/../file", FILE_TYPE_FILE);
	/* A link that cannot be followed is reported as what it is, not followed. */
	expect_type("allowed/dangling", FILE_TYPE_SYMLINK);
	expect_type("allowed/loop", FILE_TYPE_SYMLINK);

	expect_missing("allowed/missing");
	expect_missing("allowed/missing/deeper");
	expect_missing("allowed/missing/.."); /* a missing component: the kernel says ENOENT */
	expect_missing("allowed/file/child"); /* ENOTDIR */

	expect_refused("allowed/../outside", "is outside every --policy-allow-path");
	expect_refused("allowed/missing/../../outside", "is outside every");
	expect_refused("allowed/link-out", "is outside every");
	expect_refused("allowed/link-root", "is outside every");
	expect_refused("allowed/sub/../../outside", "is outside every");
	expect_refused("allowed-sibling",
	               "is outside every"); /* a prefix of the name is not enough */
	expect_refused("/etc/passwd", "is outside every");
	expect_refused("/", "is outside every");
	r = check("/etc/passwd");
	CHECK(strstr(r.error, "/etc/passwd") != NULL); /* names what it refused */

	/* Relative paths, and no directory at all. */
	file_check_path("allowed/file", dirs, 1, 0, &r);
	CHECK_INT(r.outcome, FILE_CHECK_REFUSED);
	CHECK(strstr(r.error, "not an absolute path") != NULL);
	file_check_path("/etc/passwd", NULL, 0, 0, &r);
	CHECK_INT(r.outcome, FILE_CHECK_REFUSED);
	CHECK(strstr(r.error, "no directory is allowed") != NULL);
	/* "/" allows everything. */
	char *everything[] = {"/"};
	file_check_path("/dev/null", everything, 1, clock_wall_s(), &r);
	CHECK_INT(r.outcome, FILE_CHECK_DONE);
	CHECK(r.exists);
	CHECK_STR(file_type_name(r.type), "other"); /* a character device */
	close(sock);
}

/* ---- the thread ---- */

static struct event_base *base;
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int stand_in_calls;

/* A stat on a hung mount: blocks until the gate opens. */
static void hanging_check(const char *path, char *const *d, size_t n, double now,
                          struct file_check_result *r)
{
	pthread_mutex_lock(&gate_lock);
	stand_in_calls++;
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	file_check_path(path, d, n, now, r);
}

static void open_gate(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

struct answer {
	bool got;
	int64_t at;
	struct file_check_result r;
};

static void on_answer(const struct file_check_result *r, void *arg)
{
	struct answer *a = arg;
	CHECK(!a->got); /* exactly once */
	a->got = true;
	a->at = clock_now_ns();
	a->r = *r;
}

static void run_until(const struct answer *a, int64_t limit_ns)
{
	int64_t end = clock_deadline(limit_ns);
	while (!a->got && clock_now_ns() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(*(int *)arg)++;
}

static void test_thread(void)
{
	base = event_base_new();
	char file[PATH_MAX + 64];
	snprintf(file, sizeof(file), "%s/file", allowed);

	/* A real stat, through the thread. */
	struct file_checker *fc = file_checker_new(base, dirs, 1, NULL);
	struct answer a = {0};
	CHECK(file_check_start(fc, file, clock_deadline(2000 * MS), on_answer, &a) != NULL);
	CHECK(!a.got); /* never from inside the start */
	run_until(&a, 3000 * MS);
	CHECK(a.got);
	CHECK(a.r.exists);
	CHECK_INT(a.r.size, 5);
	file_checker_free(fc);

	/* No directory: refused from the loop, without a thread. */
	fc = file_checker_new(base, NULL, 0, NULL);
	struct answer b = {0};
	file_check_start(fc, file, clock_deadline(2000 * MS), on_answer, &b);
	CHECK(!b.got);
	run_until(&b, 1000 * MS);
	CHECK_INT(b.r.outcome, FILE_CHECK_REFUSED);
	file_checker_free(fc);

	/*
	 * A hung stat: answered "timed out" at its deadline, and so is the one
	 * queued behind it; the loop keeps running meanwhile (the ticker).
	 */
	fc = file_checker_new(base, dirs, 1, hanging_check);
	int ticks = 0;
	struct event *ticker = event_new(base, -1, EV_PERSIST, on_tick, &ticks);
	struct timeval every = clock_timeval(20 * MS);
	evtimer_add(ticker, &every);
	struct answer c = {0}, d = {0}, e = {0};
	int64_t t0 = clock_now_ns();
	file_check_start(fc, file, clock_deadline(300 * MS), on_answer, &c);
	file_check_start(fc, file, clock_deadline(400 * MS), on_answer, &d);
	struct file_check *cancelled =
	        file_check_start(fc, file, clock_deadline(400 * MS), on_answer, &e);
	file_check_cancel(cancelled); /* queued: gone at once, never answered */
	run_until(&d, 3000 * MS);
	CHECK(c.got && d.got && !e.got);
	CHECK_INT(c.r.outcome, FILE_CHECK_FAILED);
	CHECK(strstr(c.r.error, "timed out") != NULL);
	CHECK(c.at - t0 >= 290 * MS && c.at - t0 < 1500 * MS);
	CHECK(d.at - t0 >= 390 * MS && d.at - t0 < 1500 * MS);
	CHECK(ticks >= 5); /* the loop went on: 20 ms ticks over 0.4 s */
	/* Freeing does not wait for the hung stat; the thread lets go when it returns. */
	int64_t t1 = clock_now_ns();
	file_checker_free(fc);
	CHECK(clock_now_ns() - t1 < 1000 * MS);
	open_gate();
	/* The stand-in returns and the thread frees what is left (ASan would see a leak or UAF). */
	int64_t end = clock_deadline(2000 * MS);
	while (clock_now_ns() < end) {
		pthread_mutex_lock(&gate_lock);
		int calls = stand_in_calls;
		pthread_mutex_unlock(&gate_lock);
		if (calls >= 1)
			break;
		usleep(1000);
	}
	usleep(50000); /* let the detached thread finish its exit path */
	event_free(ticker);
	event_base_free(base);
}

int main(void)
{
	char tmpl[] = "/tmp/lp-file-check-XXXXXX";
	CHECK(mkdtemp(tmpl) != NULL);
	char resolved[PATH_MAX];
	CHECK(realpath(tmpl, resolved) != NULL && strlen(resolved) < sizeof(root));
	memcpy(root, resolved, strlen(resolved) + 1);
	snprintf(allowed, sizeof(allowed), "%s/allowed", root);
	CHECK(mkdir(allowed, 0755) == 0);
	test_paths();
	test_thread();
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	CHECK(system(cmd) == 0);
	return testing_result("file_check");
}
