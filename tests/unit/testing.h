/*
 * A tiny assertion kit for the unit tests: each failed CHECK prints where and
 * what, and the test's main returns testing_result() so CTest sees a failure.
 */
#ifndef LP_TESTING_H
#define LP_TESTING_H

#include <stdio.h>
#include <string.h>

static int testing_failures;
static int testing_checks;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		testing_checks++;                                                                  \
		if (!(cond)) {                                                                     \
			testing_failures++;                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
		}                                                                                  \
	} while (0)

#define CHECK_STR(got, want)                                                                       \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (want);                                              \
		testing_checks++;                                                                  \
		if (g_ == NULL || w_ == NULL ? g_ != w_ : strcmp(g_, w_) != 0) {                   \
			testing_failures++;                                                        \
			fprintf(stderr, "%s:%d: %s: got \"%s\", want \"%s\"\n", __FILE__,          \
			        __LINE__, #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");           \
		}                                                                                  \
	} while (0)

#define CHECK_INT(got, want)                                                                       \
	do {                                                                                       \
		long long g_ = (long long)(got), w_ = (long long)(want);                           \
		testing_checks++;                                                                  \
		if (g_ != w_) {                                                                    \
			testing_failures++;                                                        \
			fprintf(stderr, "%s:%d: %s: got %lld, want %lld\n", __FILE__, __LINE__,    \
			        #got, g_, w_);                                                     \
		}                                                                                  \
	} while (0)

static inline int testing_result(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, testing_checks, testing_failures);
	return testing_failures == 0 ? 0 : 1;
}

#endif
