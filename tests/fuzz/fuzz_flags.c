/*
 * fuzz_flags: the command line parser (src/config.c config_parse). The input
 * is split into arguments at NUL and newline bytes (empty arguments kept)
 * and given as argv[1..] after argv[0] = "livenessprobe"; then the config is
 * freed, and freed again (config_free must be safe after any result).
 *
 * Invariants: no crash, no leak, no sanitizer report, and the documented
 * outcome shapes:
 *   CONFIG_OK        nothing written to the error stream, errbuf empty, the
 *                    string flags set, check-timeout defaulted;
 *   CONFIG_HELP      the stream holds exactly the usage;
 *   CONFIG_BAD_FLAG  the stream holds one line of message, then the usage;
 *   CONFIG_INVALID   nothing on the stream, errbuf one non-empty line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define USAGE "Usage of livenessprobe:\n"

static void fail(const char *what, const char *out)
{
	fprintf(stderr, "fuzz_flags: %s\n---\n%s\n---\n", what, out ? out : "");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Arguments are NUL-terminated copies, each its own allocation (ASan sees overreads). */
	size_t argc = 1;
	for (size_t i = 0; i < size; i++)
		argc += data[i] == '\0' || data[i] == '\n';
	argc += 1;
	char **argv = calloc(argc + 1, sizeof(*argv));
	if (!argv)
		return 0;
	argv[0] = strdup("livenessprobe");
	size_t n = 1, start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\0' || data[i] == '\n') {
			if (i == size && size == 0)
				break; /* no input: no argument at all */
			argv[n] = malloc(i - start + 1);
			if (argv[n]) {
				memcpy(argv[n], data + start, i - start);
				argv[n][i - start] = '\0';
			}
			n++;
			start = i + 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (!argv[i])
			goto out;

	char *text = NULL;
	size_t text_len = 0;
	FILE *err = open_memstream(&text, &text_len);
	if (!err)
		goto out;
	struct config cfg;
	char errbuf[2048];
	enum config_result res =
	        config_parse(&cfg, (int)n, argv, err, errbuf, (unsigned)sizeof(errbuf));
	fclose(err);

	switch (res) {
	case CONFIG_OK:
		if (text_len != 0 || errbuf[0] != '\0')
			fail("CONFIG_OK with a message", text);
		if (!cfg.csi_address || !cfg.health_port || !cfg.http_endpoint ||
		    !cfg.metrics_address || !cfg.metrics_path || !cfg.vmodule)
			fail("CONFIG_OK with a string flag unset", NULL);
		if (!cfg.check_timeout_set && cfg.check_timeout_ns != cfg.probe_timeout_ns)
			fail("check-timeout does not default to probe-timeout", NULL);
		if (cfg.log_format != LOG_FORMAT_TEXT && cfg.log_format != LOG_FORMAT_JSON)
			fail("bad log format", NULL);
		break;
	case CONFIG_HELP:
		if (strncmp(text, USAGE, strlen(USAGE)) != 0)
			fail("CONFIG_HELP without the usage", text);
		break;
	case CONFIG_BAD_FLAG: {
		const char *nl = strchr(text, '\n');
		if (!nl || nl == text || strncmp(text, "Usage of", 8) == 0 ||
		    strncmp(nl + 1, USAGE, strlen(USAGE)) != 0)
			fail("CONFIG_BAD_FLAG without one line of message, then the usage", text);
		break;
	}
	case CONFIG_INVALID:
		if (text_len != 0 || errbuf[0] == '\0' || strchr(errbuf, '\n'))
			fail("CONFIG_INVALID without one line in errbuf", errbuf);
		break;
	default:
		fail("unknown result", NULL);
	}
	config_free(&cfg);
	config_free(&cfg);
	free(text);
out:
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return 0;
}
