/*
 * csi-mock-driver --call-log=FILE: one JSON object per line and per call,
 * written when the call ends, so that a test (or a user's CI job) can assert
 * what a client asked and what it got:
 *
 *   {"time":"2026-11-27T19:00:00.123Z","method":"NodeGetInfo","request":{},
 *    "code":"OK","seconds":0.000412}
 *
 *   time     the call's arrival, RFC 3339 in UTC with milliseconds
 *   method   the CSI method's name, or the raw :path of an unknown method
 *   request  the decoded request (mock_pbjson.h) of a method whose request
 *            type we know (csi_methods.h); null for the others, for bytes
 *            that do not decode, and when no request came
 *   code     the gRPC status the client got, by its canonical name
 *   seconds  from arrival to the end of the call
 *
 * With --proxy-to two more keys follow (mock_proxy.h):
 *
 *   backend  the status the backend answered, by name; null when the call
 *            never reached it (answered instead, or its socket missing)
 *   injected what the script did to the call, e.g. "delay 0.5s",
 *            "answered UNAVAILABLE", "status replaced with INTERNAL",
 *            "hang", "action close_connection"; null when it passed untouched
 *
 * The file is opened O_APPEND and each line written with one write(), so
 * several drivers may share a file, and a line is on disk (in the page
 * cache) when the call has ended.
 */
#ifndef MOCK_CALL_LOG_H
#define MOCK_CALL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <protobuf-c/protobuf-c.h>

struct mock_call_log;

struct mock_call_record {
	struct timespec arrived; /* CLOCK_REALTIME */
	const char *method;      /* method_len bytes, not NUL-terminated */
	size_t method_len;
	const ProtobufCMessageDescriptor *request_type; /* NULL: "request" is null */
	const uint8_t *request;                         /* the bytes received; NULL: none came */
	size_t request_len;
	int code; /* gRPC status code */
	double seconds;
	/* --proxy-to: two more keys */
	bool proxy;
	int backend_code;     /* "backend": the backend's status; -1: null (never reached it) */
	const char *injected; /* "injected": what the hook did to the call; NULL: null (nothing) */
};

/* Opens (creating, mode 0644) path for appending. NULL with "PATH: reason" in err. */
struct mock_call_log *mock_call_log_open(const char *path, char *err, size_t errlen);

/* Writes rec's line. 0, or -1 with errno set (the line is lost). */
int mock_call_log_write(struct mock_call_log *log, const struct mock_call_record *rec);

/* Closes the file. NULL is a no-op. */
void mock_call_log_free(struct mock_call_log *log);

#endif
