/*
 * A decoded protobuf-c message as one JSON object, written from its
 * descriptor alone, so a field added to proto/csi.proto shows up without a
 * line here. The mapping is proto3 JSON's with the .proto field names:
 * fields at their default are left out (those with explicit presence are
 * written when set), 64-bit integers are strings, enums are their value
 * names, bytes are base64, repeated fields arrays. A map is what the wire
 * holds: an array of {"key": ..., "value": ...} entries. Nesting deeper
 * than MOCK_PBJSON_MAX_DEPTH is written as null.
 */
#ifndef MOCK_PBJSON_H
#define MOCK_PBJSON_H

#include <stddef.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#define MOCK_PBJSON_MAX_DEPTH 32

/* Writes m (NULL: null) to out. */
void mock_pbjson_write(FILE *out, const ProtobufCMessage *m);

#endif
