/* gRPC status codes: Go's names (upstream's texts) and the canonical ones (policies). */
#include "grpc_status.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct status_name {
	const char *go;
	const char *canonical;
};

/* Indexed by code. Note Go spells "Canceled", the canonical name "CANCELLED". */
static const struct status_name names[] = {
        {"OK", "OK"},
        {"Canceled", "CANCELLED"},
        {"Unknown", "UNKNOWN"},
        {"InvalidArgument", "INVALID_ARGUMENT"},
        {"DeadlineExceeded", "DEADLINE_EXCEEDED"},
        {"NotFound", "NOT_FOUND"},
        {"AlreadyExists", "ALREADY_EXISTS"},
        {"PermissionDenied", "PERMISSION_DENIED"},
        {"ResourceExhausted", "RESOURCE_EXHAUSTED"},
        {"FailedPrecondition", "FAILED_PRECONDITION"},
        {"Aborted", "ABORTED"},
        {"OutOfRange", "OUT_OF_RANGE"},
        {"Unimplemented", "UNIMPLEMENTED"},
        {"Internal", "INTERNAL"},
        {"Unavailable", "UNAVAILABLE"},
        {"DataLoss", "DATA_LOSS"},
        {"Unauthenticated", "UNAUTHENTICATED"},
};

#define NAME_COUNT ((int)(sizeof(names) / sizeof(names[0])))

/* Numbers accepted by grpc_status_parse: enough for any code a driver could send. */
#define MAX_PARSED_CODE 999

const char *grpc_status_go_name(int code, char *buf, unsigned len)
{
	if (code >= 0 && code < NAME_COUNT)
		return names[code].go;
	if (buf == NULL || len == 0)
		return "Unknown";
	/* Go's codes.Code is a uint32, so a negative int prints as its unsigned value. */
	snprintf(buf, len, "Code(%u)", (unsigned)(uint32_t)code);
	return buf;
}

const char *grpc_status_canonical_name(int code)
{
	if (code >= 0 && code < NAME_COUNT)
		return names[code].canonical;
	return "UNKNOWN";
}

int grpc_status_parse(const char *name)
{
	if (name == NULL || *name == '\0')
		return -1;
	for (int code = 0; code < NAME_COUNT; code++) {
		if (strcmp(name, names[code].go) == 0 || strcmp(name, names[code].canonical) == 0)
			return code;
	}
	int value = 0;
	for (const char *p = name; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		value = value * 10 + (*p - '0');
		if (value > MAX_PARSED_CODE)
			return -1;
	}
	return value;
}
