/*
 * Structured log lines on stderr, as upstream ≥ v2.12 writes them.
 *   text: I1126 13:37:49.898615   12345 main.c:42] "Message" key="value"
 *   json: {"ts":1764164269898.615,"caller":"main.c:42","msg":"Message","v":0,"key":"value"}
 * Key/value pairs are passed as a NULL-terminated list of strings.
 * Only log_* functions write to stderr; nothing writes to stdout. Every
 * line is valid UTF-8, and a JSON line valid JSON, whatever the values hold;
 * a line is at most 8 KiB, cut between characters.
 */
#ifndef LP_LOG_H
#define LP_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* --logging-format. */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

enum log_severity { LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };

/* Sets verbosity, format and header mode; before this, defaults (-v=0, text). */
void log_setup(int verbosity, enum log_format format, bool skip_headers);

/* True when an info line at this -v level would be written. */
bool log_enabled(int v);

/*
 * Writes one line. For LOG_INFO, v is the -v level the line needs; errors
 * and warnings are always written. Keys and values alternate after msg;
 * a value of NULL prints as null. In JSON, a key "err" on an error line is
 * placed as component-base places it.
 */
void log_write(enum log_severity sev, int v, const char *file, int line, const char *msg, ...)
        __attribute__((sentinel));

/*
 * Formats the line log_write would write (as an error or warning: no -v
 * gating) into buf without writing it, for code that must write it later
 * where formatting is not allowed (a signal handler). Returns its length,
 * or 0 when it does not fit in len.
 */
size_t log_format_line(char *buf, size_t len, enum log_severity sev, const char *file, int line,
                       const char *msg, ...) __attribute__((sentinel));

#define LOG_INFO_V(v, ...)                                                                         \
	do {                                                                                       \
		if (log_enabled(v))                                                                \
			log_write(LOG_INFO, (v), __FILE_NAME__, __LINE__, __VA_ARGS__,             \
			          (char *)NULL);                                                   \
	} while (0)
#define LOG_I(...) LOG_INFO_V(0, __VA_ARGS__)
#define LOG_W(...) log_write(LOG_WARNING, 0, __FILE_NAME__, __LINE__, __VA_ARGS__, (char *)NULL)
#define LOG_E(...) log_write(LOG_ERROR, 0, __FILE_NAME__, __LINE__, __VA_ARGS__, (char *)NULL)

#endif
