/* protobuf-c messages as JSON (mock_pbjson.h). */
#include "mock_pbjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "quote.h"

static void put_base64(FILE *out, const ProtobufCBinaryData *b)
{
	static const char digits[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	fputc('"', out);
	for (i = 0; i + 2 < b->len; i += 3) {
		uint32_t v =
		        (uint32_t)b->data[i] << 16 | (uint32_t)b->data[i + 1] << 8 | b->data[i + 2];

		fputc(digits[v >> 18], out);
		fputc(digits[v >> 12 & 63], out);
		fputc(digits[v >> 6 & 63], out);
		fputc(digits[v & 63], out);
	}
	if (i < b->len) {
		uint32_t v = (uint32_t)b->data[i] << 16 |
		             (i + 1 < b->len ? (uint32_t)b->data[i + 1] << 8 : 0);

		fputc(digits[v >> 18], out);
		fputc(digits[v >> 12 & 63], out);
		fputc(i + 1 < b->len ? digits[v >> 6 & 63] : '=', out);
		fputc('=', out);
	}
	fputc('"', out);
}

/* proto3 JSON spells the non-finite numbers as strings. */
static void put_double(FILE *out, double v)
{
	if (isnan(v))
		fputs("\"NaN\"", out);
	else if (isinf(v))
		fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
	else
		fprintf(out, "%.17g", v);
}

/* The size of one value of type t in a message struct (an element of a repeated field). */
static size_t value_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return sizeof(int32_t);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(int64_t);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		break;
	}
	return sizeof(ProtobufCMessage *);
}

static void put_message(FILE *out, const ProtobufCMessage *m, int depth);

/* One value of field f, stored at p. */
static void put_value(FILE *out, const ProtobufCFieldDescriptor *f, const void *p, int depth)
{
	const ProtobufCEnumValue *e;
	const char *s;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(out, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(out, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		fprintf(out, "\"%" PRId64 "\"", *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		fprintf(out, "\"%" PRIu64 "\"", *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		put_double(out, *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		put_double(out, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", out);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		e = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
		if (e)
			quote_json_fwrite(out, e->name, strlen(e->name));
		else
			fprintf(out, "%d", *(const int *)p); /* a value newer than our proto */
		break;
	case PROTOBUF_C_TYPE_STRING:
		s = *(const char *const *)p;
		quote_json_fwrite(out, s ? s : "", s ? strlen(s) : 0);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		put_base64(out, p);
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		put_message(out, *(const ProtobufCMessage *const *)p, depth + 1);
		break;
	}
}

/* A proto3 field without explicit presence is sent (and shown) only away from its default. */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
	static const char zeros[sizeof(ProtobufCBinaryData)];
	const char *s;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		s = *(const char *const *)p;
		return !s || s[0] == '\0';
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len == 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(const ProtobufCMessage *const *)p == NULL;
	default:
		return memcmp(p, zeros, value_size(f->type)) == 0;
	}
}

static bool is_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *value = (const char *)m + f->offset;
	const char *quantifier = (const char *)m + f->quantifier_offset;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)quantifier > 0;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)quantifier == f->id;
	switch (f->label) {
	case PROTOBUF_C_LABEL_REQUIRED:
		return true;
	case PROTOBUF_C_LABEL_OPTIONAL:
		/* Strings and messages have no has_ member: NULL is absent. */
		if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
			return *(const void *const *)value != NULL;
		return *(const protobuf_c_boolean *)quantifier;
	default:
		return !is_default(f, value);
	}
}

static void put_message(FILE *out, const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d;
	bool first = true;

	if (!m || depth > MOCK_PBJSON_MAX_DEPTH) {
		fputs("null", out);
		return;
	}
	d = m->descriptor;
	fputc('{', out);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *value = (const char *)m + f->offset;

		if (!is_present(m, f))
			continue;
		fputs(first ? "" : ",", out);
		first = false;
		quote_json_fwrite(out, f->name, strlen(f->name));
		fputc(':', out);
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			put_value(out, f, value, depth);
			continue;
		}
		size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
		const char *array = *(const char *const *)value;

		fputc('[', out);
		for (size_t j = 0; j < n; j++) {
			fputs(j ? "," : "", out);
			put_value(out, f, array + j * value_size(f->type), depth);
		}
		fputc(']', out);
	}
	fputc('}', out);
}

void mock_pbjson_write(FILE *out, const ProtobufCMessage *m)
{
	put_message(out, m, 0);
}
