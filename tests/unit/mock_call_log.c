/*
 * The --call-log file (src/mockdriver/mock_call_log.c): one JSON line per
 * record, appended, with the request decoded or null, and an unusable path
 * refused with its reason.
 */
#include "mock_call_log.h"
#include "testing.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/status.h>

#include "csi.pb-c.h"

static char dir[] = "/tmp/lp-mock-call-log-XXXXXX";
static char path[64];

static char *read_all(void)
{
	static char text[4096];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;

	if (f)
		fclose(f);
	text[n] = '\0';
	return text;
}

static void test_lines(void)
{
	char err[256];
	struct mock_call_log *log = mock_call_log_open(path, err, sizeof(err));
	struct mock_call_record rec = {
	        .arrived = {.tv_sec = 1795806000, .tv_nsec = 123999999},
	        .method = "NodeGetInfo",
	        .method_len = 11,
	        .request_type = &csi__v1__node_get_info_request__descriptor,
	        .request = (const uint8_t *)"",
	        .request_len = 0,
	        .code = GRPC_STATUS_OK,
	        .seconds = 0.0123456789,
	};
	struct stat st;

	CHECK(log != NULL);
	if (!log)
		return;
	CHECK_INT(mock_call_log_write(log, &rec), 0);
	/* Unknown fields are skipped, as any protobuf reader does. */
	rec.request = (const uint8_t *)"\x78\x01";
	rec.request_len = 2;
	rec.code = GRPC_STATUS_CANCELLED;
	rec.seconds = 2.5;
	CHECK_INT(mock_call_log_write(log, &rec), 0);
	/* Bytes that are no message: null. */
	rec.request = (const uint8_t *)"\x0a\x05\x08";
	rec.request_len = 3;
	CHECK_INT(mock_call_log_write(log, &rec), 0);
	/* No request came. */
	rec.request = NULL;
	rec.code = GRPC_STATUS_UNAVAILABLE;
	CHECK_INT(mock_call_log_write(log, &rec), 0);
	/* An unknown method: its raw path, escaped; no request type. */
	rec.method = "/x\"y\xff\n";
	rec.method_len = 6;
	rec.request_type = NULL;
	rec.request = (const uint8_t *)"";
	rec.code = GRPC_STATUS_UNIMPLEMENTED;
	rec.seconds = -1e-9; /* clocks never run backwards in the log */
	CHECK_INT(mock_call_log_write(log, &rec), 0);
	mock_call_log_free(log);

	CHECK_STR(
	        read_all(),
	        "{\"time\":\"2026-11-27T19:00:00.123Z\",\"method\":\"NodeGetInfo\",\"request\":{},"
	        "\"code\":\"OK\",\"seconds\":0.012346}\n"
	        "{\"time\":\"2026-11-27T19:00:00.123Z\",\"method\":\"NodeGetInfo\",\"request\":{},"
	        "\"code\":\"CANCELLED\",\"seconds\":2.500000}\n"
	        "{\"time\":\"2026-11-27T19:00:00.123Z\",\"method\":\"NodeGetInfo\",\"request\":"
	        "null,"
	        "\"code\":\"CANCELLED\",\"seconds\":2.500000}\n"
	        "{\"time\":\"2026-11-27T19:00:00.123Z\",\"method\":\"NodeGetInfo\",\"request\":"
	        "null,"
	        "\"code\":\"UNAVAILABLE\",\"seconds\":2.500000}\n"
	        "{\"time\":\"2026-11-27T19:00:00.123Z\",\"method\":\"/x\\\"y\\ufffd\\n\","
	        "\"request\":null,\"code\":\"UNIMPLEMENTED\",\"seconds\":0.000000}\n");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);

	/* Opening again appends. */
	log = mock_call_log_open(path, err, sizeof(err));
	rec.method = "Probe";
	rec.method_len = 5;
	CHECK_INT(mock_call_log_write(log, &rec), 0);
	mock_call_log_free(log);
	CHECK(strstr(read_all(), "\"seconds\":0.000000}\n{\"time\":") != NULL);
	mock_call_log_free(NULL);
}

static void test_open_errors(void)
{
	char err[256], missing[96];

	snprintf(missing, sizeof(missing), "%s/no/such/dir/calls.jsonl", dir);
	CHECK(mock_call_log_open(missing, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/no/such/dir/calls.jsonl: No such file or directory") != NULL);
	CHECK(mock_call_log_open(dir, err, sizeof(err)) == NULL); /* a directory */
	CHECK(strstr(err, ": Is a directory") != NULL);
	/* A FIFO nobody reads: refused at once, never waited on; a device: not a regular file. */
	char fifo[96];
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	CHECK(mkfifo(fifo, 0600) == 0);
	CHECK(mock_call_log_open(fifo, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/fifo: No such device or address") != NULL);
	unlink(fifo);
	CHECK(mock_call_log_open("/dev/null", err, sizeof(err)) == NULL);
	CHECK_STR(err, "/dev/null: not a regular file");
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/calls.jsonl", dir);
	umask(022);
	test_lines();
	test_open_errors();
	unlink(path);
	rmdir(dir);
	return testing_result("mock_call_log");
}
