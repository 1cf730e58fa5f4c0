/* The --call-log file (mock_call_log.h). */
#include "mock_call_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grpc_status.h"
#include "mock_pbjson.h"
#include "quote.h"

struct mock_call_log {
	int fd;
};

struct mock_call_log *mock_call_log_open(const char *path, char *err, size_t errlen)
{
	struct mock_call_log *log = calloc(1, sizeof(*log));

	if (!log) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	/*
	 * Non-blocking, so that a FIFO with no reader fails (ENXIO) rather than
	 * stopping the driver before it listens; then only a regular file is
	 * kept: a pipe or a device could block every call's end.
	 */
	struct stat st;
	log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
	if (log->fd < 0 || fstat(log->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	fcntl(log->fd, F_SETFL, O_APPEND);
	return log;
fail:
	if (log->fd >= 0)
		close(log->fd);
	free(log);
	return NULL;
}

void mock_call_log_free(struct mock_call_log *log)
{
	if (!log)
		return;
	close(log->fd);
	free(log);
}

/* "2026-11-27T19:00:00.123Z": truncated to the millisecond, as Go's time formatting does. */
static void put_time(FILE *out, struct timespec t)
{
	struct tm tm;
	char date[32];

	gmtime_r(&t.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(out, "\"%s.%03ldZ\"", date, t.tv_nsec / 1000000);
}

/* The request as JSON: decoded from its bytes when its type is known, else null. */
static void put_request(FILE *out, const struct mock_call_record *rec)
{
	static const uint8_t none[1];
	ProtobufCMessage *m;

	if (!rec->request_type || !rec->request) {
		fputs("null", out);
		return;
	}
	m = protobuf_c_message_unpack(rec->request_type, NULL, rec->request_len,
	                              rec->request_len ? rec->request : none);
	mock_pbjson_write(out, m); /* NULL (undecodable) is written as null */
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

int mock_call_log_write(struct mock_call_log *log, const struct mock_call_record *rec)
{
	char *line = NULL;
	size_t len = 0, done = 0;
	FILE *out = open_memstream(&line, &len);

	if (!out)
		return -1;
	fputs("{\"time\":", out);
	put_time(out, rec->arrived);
	fputs(",\"method\":", out);
	quote_json_fwrite(out, rec->method, rec->method_len);
	fputs(",\"request\":", out);
	put_request(out, rec);
	fprintf(out, ",\"code\":\"%s\",\"seconds\":%.6f", grpc_status_canonical_name(rec->code),
	        rec->seconds > 0 ? rec->seconds : 0.0);
	if (rec->proxy) {
		fputs(",\"backend\":", out);
		if (rec->backend_code < 0)
			fputs("null", out);
		else
			fprintf(out, "\"%s\"", grpc_status_canonical_name(rec->backend_code));
		fputs(",\"injected\":", out);
		if (rec->injected)
			quote_json_fwrite(out, rec->injected, strlen(rec->injected));
		else
			fputs("null", out);
	}
	fputs("}\n", out);
	if (fclose(out) != 0) {
		free(line);
		errno = ENOMEM;
		return -1;
	}
	while (done < len) { /* one write() but for a signal or a full disk */
		ssize_t n = write(log->fd, line + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(line);
			if (n == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)n;
	}
	free(line);
	return 0;
}
