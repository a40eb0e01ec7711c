/* SPDX-License-Identifier: MIT */
/* What the libFuzzer targets of tests/fuzz share: a failed check that
 * aborts (libFuzzer saves the input as a crash), a silent log, and the
 * line format of the targets that replay operations (registry, nodecfg).
 *
 * Operation scripts are text, one operation a line: an op letter, then its
 * arguments separated by single spaces; an op whose last argument is TEXT
 * takes the rest of the line. Every argument is unescaped: \n newline, \0
 * NUL, \s space, \\ backslash, \xHH any byte; "$$" in an argument stands for
 * the fuzzer's own PID (a live process it owns). */
#ifndef MALLAFS_TESTS_FUZZ_H
#define MALLAFS_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Aborts with the message when cond is false: an input breaking a promise. */
#define FUZZ_CHECK(cond, ...)                                              \
	do {                                                               \
		if (!(cond))                                               \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
        __attribute__((noreturn, format(printf, 4, 5)));

/* Every log line is formatted, then dropped (fuzzing at full speed). */
void fuzz_quiet_log(void);

/* One operation of a script. */
#define FUZZ_MAX_ARGS 6
struct fuzz_arg {
	char *s;    /* unescaped, NUL-terminated (it may hold NULs of its own) */
	size_t len; /* bytes before the terminating NUL */
};
struct fuzz_op {
	char op;
	size_t nargs;
	struct fuzz_arg args[FUZZ_MAX_ARGS];
};

/* What an op letter takes: nargs arguments, the last one the rest of the
 * line when text, else a word. Tables end with op '\0'. */
struct fuzz_op_spec {
	char op;
	unsigned char nargs;
	bool text;
};

/* Calls run for each line of the script whose op the table names (missing
 * arguments are empty strings); other lines are skipped. */
void fuzz_replay(const uint8_t *data, size_t size, const struct fuzz_op_spec *specs,
                 void (*run)(void *ctx, const struct fuzz_op *o), void *ctx);

/* A file the code under test reads by path (a bootstrap file): a memfd
 * named /proc/self/fd/N, made once; fuzz_file_put gives it exactly these
 * bytes. Returns its path. */
const char *fuzz_file_path(void);
void fuzz_file_put(const uint8_t *data, size_t size);

/* Up to 64 names, copied (a listing callback's fn(name, arg) collects). */
struct fuzz_names {
	char *v[64];
	size_t n;
};
int fuzz_names_add(struct fuzz_names *ns, const char *name);
void fuzz_names_free(struct fuzz_names *ns);

/* Reads the whole change feed: its lines are formatted. */
struct mev_ring;
void fuzz_read_feed(struct mev_ring *ring);

/* r is a success (0 or a count), one of the n errnos of ok, or -ENOMEM. */
bool fuzz_errno_in(long r, const int *ok, size_t n);
#define FUZZ_EXPECT(what, r, ...)                                                                 \
	do {                                                                                      \
		static const int ok_[] = {0, __VA_ARGS__};                                        \
		long r_ = (long)(r);                                                              \
		FUZZ_CHECK(fuzz_errno_in(r_, ok_, sizeof(ok_) / sizeof(ok_[0])), "%s: %ld", what, \
		           r_);                                                                   \
	} while (0)

/* A copy of exactly a->len bytes, no NUL after them (malloc'd): reading
 * past the end is caught. */
char *fuzz_exact(const struct fuzz_arg *a);

/* A decimal number of an argument, or def when it is not one. */
uint64_t fuzz_u64(const struct fuzz_arg *a, uint64_t def);

#endif
