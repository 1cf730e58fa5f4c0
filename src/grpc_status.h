/* gRPC status codes under the two names users see. */
#ifndef LP_GRPC_STATUS_H
#define LP_GRPC_STATUS_H

/*
 * Go's name of a status code ("FailedPrecondition"), used in upstream's
 * "rpc error: code = X desc = Y" text and in metrics labels. Unknown numbers
 * print as "Code(N)" like Go; buf must hold 24 bytes for that case.
 */
const char *grpc_status_go_name(int code, char *buf, unsigned len);

/* The CSI spec's canonical name ("FAILED_PRECONDITION"), used by policies. */
const char *grpc_status_canonical_name(int code);

/* Parses either form, or a decimal number; returns -1 when unknown. */
int grpc_status_parse(const char *name);

#endif
