/*
 * UTF-8 as text leaving the process needs it: JSON log lines and metric
 * label values must be valid UTF-8, and text cut to a bound must not end
 * inside a character.
 */
#ifndef LP_UTF8_H
#define LP_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes available), with
 * its code point in *cp; 0 when the bytes there are not valid UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included).
 */
int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/*
 * The largest length <= max at which s (len bytes) can be cut without
 * splitting a valid character. Invalid bytes count as one character each.
 */
size_t utf8_cut(const char *s, size_t len, size_t max);

/*
 * Copies src (len bytes) into dst of size cap as a NUL-terminated string,
 * cut at a character boundary when it does not fit. Returns the length
 * copied.
 */
size_t utf8_copy(char *dst, size_t cap, const char *src, size_t len);

#endif
