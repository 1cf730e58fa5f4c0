/* UTF-8 decoding and cutting (utf8.h). */
#include "utf8.h"

#include <string.h>

int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	int len;
	uint32_t value;
	unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		value = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		value = s[0] & 0x0f;
		if (s[0] == 0xe0)
			lo = 0xa0; /* overlong */
		if (s[0] == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		value = s[0] & 0x07;
		if (s[0] == 0xf0)
			lo = 0x90; /* overlong */
		if (s[0] == 0xf4)
			hi = 0x8f; /* beyond U+10FFFF */
	} else {
		return 0;
	}
	if ((size_t)len > n)
		return 0;
	for (int i = 1; i < len; i++) {
		unsigned char c = s[i];
		if (i == 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf)
			return 0;
		value = value << 6 | (c & 0x3f);
	}
	*cp = value;
	return len;
}

size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	const unsigned char *p = (const unsigned char *)s;
	size_t at = 0;
	while (at < max) {
		uint32_t cp;
		int n = utf8_decode(p + at, len - at, &cp);
		if (n == 0)
			n = 1;
		if (at + (size_t)n > max)
			break;
		at += (size_t)n;
	}
	return at;
}

size_t utf8_copy(char *dst, size_t cap, const char *src, size_t len)
{
	if (cap == 0)
		return 0;
	size_t n = utf8_cut(src, len, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}
