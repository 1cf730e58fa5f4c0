/*
 * The bytes of a successful answer's response message: the method's reply
 * type filled from struct mock_reply (mock_kind_of says which fields), an
 * empty message for every other method, or, as the reply's action says,
 * bytes that are no valid message or a valid one padded past a size.
 */
#ifndef MOCK_RESPONSE_H
#define MOCK_RESPONSE_H

#include <grpc/slice.h>

#include "csi_methods.h"
#include "mock_reply.h"

/* The message for method m (a csi_methods entry) answering r; the caller unrefs it. */
grpc_slice mock_response_bytes(const struct csi_method *m, const struct mock_reply *r);

#endif
