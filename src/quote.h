/*
 * Quoting text inside a double-quoted string the way Go's %q and JSON both
 * read it: \" \\ \n \t \r, other control bytes as \u00XX, valid UTF-8 as
 * is; a byte that is not valid UTF-8 becomes \ufffd (U+FFFD) in JSON, which
 * must be UTF-8, and \xNN otherwise, as Go's %q writes it. One character
 * at a time, so that callers can stop between characters (log lines are
 * bounded) or write anywhere (an evbuffer for /status).
 */
#ifndef LP_QUOTE_H
#define LP_QUOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define QUOTE_TOKEN_MAX 8

/*
 * The first character of s (left > 0 bytes) as it goes inside the quotes:
 * writes it to tok, returns its length, and sets *used to the bytes of s it
 * stands for (at least 1).
 */
size_t quote_next(const char *s, size_t left, bool json, char tok[QUOTE_TOKEN_MAX], size_t *used);

/* Writes the len bytes of s to out as a JSON string, quotes included. */
void quote_json_fwrite(FILE *out, const char *s, size_t len);

#endif
