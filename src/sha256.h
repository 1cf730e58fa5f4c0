/*
 * SHA-256 (FIPS 180-4), for the policy's fingerprint in /status: which
 * text is loaded, comparable with `sha256sum` of the ConfigMap's file.
 */
#ifndef LP_SHA256_H
#define LP_SHA256_H

#include <stddef.h>

#define SHA256_HEX_LEN 64

/* Writes the digest of data as 64 lowercase hex digits and a NUL to hex. */
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1]);

#endif
