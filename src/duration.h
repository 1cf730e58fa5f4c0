/* Go time.Duration text: parsing and formatting, as Go's time package does. */
#ifndef LP_DURATION_H
#define LP_DURATION_H

#include <stdint.h>

/*
 * Parses Go duration syntax ("1s", "1m30s", "1.5h", "-2ms", "0") into
 * nanoseconds. Units: ns, us, µs, μs, ms, s, m, h. Returns 0 on success,
 * -1 on a malformed or overflowing value (Go says "parse error" for both in
 * flag messages).
 */
int duration_parse(const char *text, int64_t *out_ns);

/* Formats like Go's Duration.String(): "1s", "1m30s", "1.5s", "300ms", "0s". */
void duration_format(int64_t ns, char *buf, unsigned len);

#endif
