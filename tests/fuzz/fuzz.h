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

/* The next line of data (from *pos) cut into op and at most nargs
 * arguments, the last one taking the rest of the line (text true) or the
 * next word. false at the end of data. Free with fuzz_op_free. */
bool fuzz_next_op(const uint8_t *data, size_t size, size_t *pos, size_t nargs, bool text,
                  struct fuzz_op *ret);
/* How many arguments (and whether a TEXT) op takes: peeks at the op letter. */
char fuzz_peek_op(const uint8_t *data, size_t size, size_t pos);
void fuzz_op_free(struct fuzz_op *op);

/* A copy of exactly a->len bytes, no NUL after them (malloc'd): reading
 * past the end is caught. */
char *fuzz_exact(const struct fuzz_arg *a);

/* A decimal number of an argument, or def when it is not one. */
uint64_t fuzz_u64(const struct fuzz_arg *a, uint64_t def);

#endif
