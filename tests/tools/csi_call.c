/*
 * csi-call SOCKET METHOD_PATH [TIMEOUT_SECONDS]: one unary gRPC call with an
 * empty request message to a unix socket, for the end-to-end tests (Python
 * has no gRPC here). Prints one JSON line:
 *
 *   {"code":"OK","message":"","reply_hex":"0a0b6e6f64652d31"}
 *
 * code is the status the call ended with by its canonical name (a client
 * deadline gives DEADLINE_EXCEEDED), message its details, reply_hex the
 * response message's bytes (null when none came). Exit status 0 when the
 * call completed, whatever its status; 1 when gRPC failed us; 2 for a bad
 * command line. The default timeout is 10 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "grpc_status.h"
#include "quote.h"

static void put_reply(grpc_byte_buffer *reply)
{
	grpc_byte_buffer_reader reader;
	grpc_slice all;

	if (!reply || !grpc_byte_buffer_reader_init(&reader, reply)) {
		fputs("null", stdout);
		return;
	}
	all = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	putchar('"');
	for (size_t i = 0; i < GRPC_SLICE_LENGTH(all); i++)
		printf("%02x", GRPC_SLICE_START_PTR(all)[i]);
	putchar('"');
	grpc_slice_unref(all);
}

int main(int argc, char **argv)
{
	double timeout = argc > 3 ? strtod(argv[3], NULL) : 10.0;
	char target[4200];
	grpc_channel_credentials *creds;
	grpc_channel *channel;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_slice method, details = grpc_empty_slice();
	grpc_byte_buffer *request, *reply = NULL;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_op ops[6];
	grpc_event ev;
	int rc = 0;

	if (argc < 3 || argc > 4 || !(timeout > 0)) {
		fprintf(stderr, "usage: csi-call SOCKET METHOD_PATH [TIMEOUT_SECONDS]\n");
		return 2;
	}
	snprintf(target, sizeof(target), "unix:%s", argv[1]);
	grpc_init();
	creds = grpc_insecure_credentials_create();
	channel = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	cq = grpc_completion_queue_create_for_pluck(NULL);
	method = grpc_slice_from_copied_string(argv[2]);
	call = grpc_channel_create_call(
	        channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
	        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                     gpr_time_from_millis((int64_t)(timeout * 1000), GPR_TIMESPAN)),
	        NULL);
	request = grpc_raw_byte_buffer_create(NULL, 0);
	grpc_metadata_array_init(&initial_md);
	grpc_metadata_array_init(&trailing_md);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = request;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &reply;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, 6, ops, NULL) != GRPC_CALL_OK) {
		fprintf(stderr, "csi-call: cannot start the call\n");
		rc = 1;
		goto out;
	}
	ev = grpc_completion_queue_pluck(cq, ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
		fprintf(stderr, "csi-call: the call did not complete\n");
		rc = 1;
		goto out;
	}
	fputs("{\"code\":", stdout);
	quote_json_fwrite(stdout, grpc_status_canonical_name(status),
	                  strlen(grpc_status_canonical_name(status)));
	fputs(",\"message\":", stdout);
	quote_json_fwrite(stdout, (const char *)GRPC_SLICE_START_PTR(details),
	                  GRPC_SLICE_LENGTH(details));
	fputs(",\"reply_hex\":", stdout);
	put_reply(reply);
	fputs("}\n", stdout);
out:
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(channel);
	grpc_byte_buffer_destroy(request);
	if (reply)
		grpc_byte_buffer_destroy(reply);
	grpc_metadata_array_destroy(&initial_md);
	grpc_metadata_array_destroy(&trailing_md);
	grpc_slice_unref(details);
	grpc_slice_unref(method);
	grpc_shutdown_blocking();
	return rc;
}
