/* One character of a quoted string (quote.h). */
#include "quote.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

size_t quote_next(const char *s, size_t left, bool json, char tok[QUOTE_TOKEN_MAX], size_t *used)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	int n = utf8_decode(p, left, &cp);
	*used = n > 0 ? (size_t)n : 1;
	if (n == 0)
		return (size_t)(json ? snprintf(tok, QUOTE_TOKEN_MAX, "\\ufffd")
		                     : snprintf(tok, QUOTE_TOKEN_MAX, "\\x%02x", *p));
	switch (cp) {
	case '"':
		return (size_t)snprintf(tok, QUOTE_TOKEN_MAX, "\\\"");
	case '\\':
		return (size_t)snprintf(tok, QUOTE_TOKEN_MAX, "\\\\");
	case '\n':
		return (size_t)snprintf(tok, QUOTE_TOKEN_MAX, "\\n");
	case '\t':
		return (size_t)snprintf(tok, QUOTE_TOKEN_MAX, "\\t");
	case '\r':
		return (size_t)snprintf(tok, QUOTE_TOKEN_MAX, "\\r");
	}
	if (cp < 0x20 || cp == 0x7f)
		return (size_t)snprintf(tok, QUOTE_TOKEN_MAX, "\\u%04x", (unsigned)cp);
	memcpy(tok, p, (size_t)n);
	return (size_t)n;
}

void quote_json_fwrite(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	while (len > 0) {
		char tok[QUOTE_TOKEN_MAX];
		size_t used, n = quote_next(s, len, true, tok, &used);
		fwrite(tok, 1, n, out);
		s += used;
		len -= used;
	}
	fputc('"', out);
}
