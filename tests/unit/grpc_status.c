/* gRPC status names: Go's (upstream texts, metrics) and canonical (policies). */
#include "grpc_status.h"
#include "testing.h"

static const char *const go_names[] = {
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
};

static const char *const canonical_names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
};

static void test_known_codes(void)
{
	char buf[24];
	for (int code = 0; code <= 16; code++) {
		CHECK_STR(grpc_status_go_name(code, buf, sizeof(buf)), go_names[code]);
		CHECK_STR(grpc_status_go_name(code, NULL, 0), go_names[code]);
		CHECK_STR(grpc_status_canonical_name(code), canonical_names[code]);
		CHECK_INT(grpc_status_parse(go_names[code]), code);
		CHECK_INT(grpc_status_parse(canonical_names[code]), code);
	}
	/* Spot checks against the table above being wrong in the same way. */
	CHECK_STR(grpc_status_go_name(9, buf, sizeof(buf)), "FailedPrecondition");
	CHECK_STR(grpc_status_canonical_name(1), "CANCELLED");
	CHECK_STR(grpc_status_go_name(1, buf, sizeof(buf)), "Canceled");
	CHECK_STR(grpc_status_canonical_name(14), "UNAVAILABLE");
}

static void test_unknown_codes(void)
{
	char buf[24];
	const char *name = grpc_status_go_name(17, buf, sizeof(buf));
	CHECK(name == buf);
	CHECK_STR(name, "Code(17)");
	CHECK_STR(grpc_status_go_name(12345, buf, sizeof(buf)), "Code(12345)");
	CHECK_STR(grpc_status_go_name(-1, buf, sizeof(buf)), "Code(4294967295)"); /* uint32 in Go */
	CHECK_STR(grpc_status_go_name(2147483647, buf, sizeof(buf)), "Code(2147483647)");
	CHECK_STR(grpc_status_go_name(17, NULL, 0), "Unknown");
	char tiny[6];
	CHECK_STR(grpc_status_go_name(17, tiny, sizeof(tiny)), "Code("); /* truncated, terminated */
	CHECK_STR(grpc_status_canonical_name(17), "UNKNOWN");
	CHECK_STR(grpc_status_canonical_name(-1), "UNKNOWN");
}

static void test_parse(void)
{
	CHECK_INT(grpc_status_parse("0"), 0);
	CHECK_INT(grpc_status_parse("9"), 9);
	CHECK_INT(grpc_status_parse("16"), 16);
	CHECK_INT(grpc_status_parse("17"), 17);
	CHECK_INT(grpc_status_parse("999"), 999);
	CHECK_INT(grpc_status_parse("0014"), 14);
	CHECK_INT(grpc_status_parse("1000"), -1);
	CHECK_INT(grpc_status_parse("99999999999999999999"), -1);
	CHECK_INT(grpc_status_parse("-1"), -1);
	CHECK_INT(grpc_status_parse("+1"), -1);
	CHECK_INT(grpc_status_parse(" 1"), -1);
	CHECK_INT(grpc_status_parse("1 "), -1);
	CHECK_INT(grpc_status_parse("0x1"), -1);
	CHECK_INT(grpc_status_parse(""), -1);
	CHECK_INT(grpc_status_parse(NULL), -1);
	/* Names are exact: no case folding, no mixing of the two spellings. */
	CHECK_INT(grpc_status_parse("ok"), -1);
	CHECK_INT(grpc_status_parse("unavailable"), -1);
	CHECK_INT(grpc_status_parse("failed_precondition"), -1);
	CHECK_INT(grpc_status_parse("FAILEDPRECONDITION"), -1);
	CHECK_INT(grpc_status_parse("Cancelled"), -1);
	CHECK_INT(grpc_status_parse("CANCELED"), -1);
	CHECK_INT(grpc_status_parse("Code(17)"), -1);
	CHECK_INT(grpc_status_parse("Unavailable "), -1);
}

int main(void)
{
	test_known_codes();
	test_unknown_codes();
	test_parse();
	return testing_result("grpc_status");
}
