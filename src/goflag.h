/*
 * Command lines read as Go's flag package reads them (UPSTREAM.md §1.4),
 * from a table of flags: one or two dashes, -flag=value or -flag value,
 * booleans as -flag or -flag=false, parsing stops at the first non-flag
 * argument or "--"; messages and usage text as Go writes them. Shared by
 * livenessprobe (config.c) and csi-mock-driver (mockdriver/mock_config.c).
 * No I/O besides the given stream; never exits.
 */
#ifndef LP_GOFLAG_H
#define LP_GOFLAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum goflag_kind {
	GOFLAG_BOOL,       /* bool */
	GOFLAG_STRING,     /* char *, malloc'd, never NULL once parsed */
	GOFLAG_OPT_STRING, /* char *, malloc'd; "" is stored as NULL: "not given" */
	GOFLAG_DURATION,   /* int64_t ns, Go duration syntax */
	GOFLAG_INT,        /* int64_t, Go strconv.ParseInt base 0, at least min */
	GOFLAG_UINT,       /* uint64_t, Go strconv.ParseUint base 0 */
	GOFLAG_SIZE,       /* int64_t bytes: N, N{Ki,Mi,Gi}, N{KiB,MiB,GiB}, at least min */
	GOFLAG_CUSTOM,     /* parsed by the flag's parse function */
};

/*
 * A custom kind's parser: stores value into target, or returns why not (a
 * static reason, or why[] filled). Reasons GOFLAG_STRCONV_SYNTAX and
 * GOFLAG_STRCONV_RANGE print inside Go's strconv wording.
 */
typedef const char *(*goflag_parse_fn)(const char *value, void *target, char *why, size_t whylen);

struct goflag {
	const char *name;
	enum goflag_kind kind;
	int base;      /* which of the caller's structs holds the value */
	size_t offset; /* of the value in that struct */
	/* Default as the user would type it; NULL = the zero value, not shown. */
	const char *def;
	int64_t min; /* GOFLAG_INT, GOFLAG_SIZE: smallest value accepted */
	const char *usage;
	/* GOFLAG_CUSTOM: */
	goflag_parse_fn parse;
	const char *type_word; /* in the usage ("string", "int", "value"); without a
	                          default, an "int" starts from "0", others from "" */
	bool owns_string;      /* its target is a malloc'd char * (freed by goflag_free) */
};

enum goflag_result {
	GOFLAG_OK = 0,       /* the flags ended: *next is the first argument left */
	GOFLAG_HELP = 1,     /* -h or -help: usage printed */
	GOFLAG_BAD_FLAG = 2, /* message and usage printed */
	GOFLAG_NO_MEMORY = 3,
};

/* Reasons a custom parser may return, printed as Go's strconv errors. */
extern const char GOFLAG_STRCONV_SYNTAX[];
extern const char GOFLAG_STRCONV_RANGE[];

/*
 * Sets every flag to its default, then applies argv[1..]. bases[i] is the
 * struct a flag with base i lives in. seen[i] (n entries) tells which flags
 * the command line gave. On GOFLAG_OK, *next is the index of the first
 * argument that is not a flag. Messages go to err, with the usage of prog.
 */
enum goflag_result goflag_parse(const struct goflag *flags, size_t n, void *const *bases,
                                bool *seen, int argc, char **argv, int *next, FILE *err);

/* Frees the strings the flags own in bases, leaving NULLs; safe to call twice. */
void goflag_free(const struct goflag *flags, size_t n, void *const *bases);

/* Go's flag.PrintDefaults: "Usage of prog:" and each flag, sorted by name. */
void goflag_usage(FILE *out, const char *prog, const struct goflag *flags, size_t n);

/* "invalid value "v" for flag -name: reason" (and the strconv forms), as Go writes it. */
void goflag_report_bad_value(FILE *err, const struct goflag *f, const char *value,
                             const char *reason);

/* The index of the flag named name (len bytes), or -1. */
int goflag_find(const struct goflag *flags, size_t n, const char *name, size_t len);

/* A signed number as Go's strconv.ParseInt(s, base, bits) reads it: 0, or -1 (syntax), -2 (range).
 */
int goflag_parse_int(const char *s, int base, int bits, int64_t *out);

/* Go's strconv.ParseBool: 1 true, 0 false, -1 not a boolean. */
int goflag_parse_bool(const char *s);

/* Writes s double-quoted as Go's strconv.Quote does. */
void goflag_put_quoted(FILE *out, const char *s);

#endif
