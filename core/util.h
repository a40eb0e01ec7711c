/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every core module. */
#ifndef MALLAFS_CORE_UTIL_H
#define MALLAFS_CORE_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mallafs-plugin.h"

#define MU_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MU_NAME_MAX 255

/* Kinds of names, see SPEC.md "Names". */
enum mu_name_kind {
	MU_NAME_FILE,   /* store and config keys: any valid file name */
	MU_NAME_STRICT, /* services, plugins, sections, pools, apps: [A-Za-z0-9._-] */
};

/* 0 when name (of len bytes, no NUL inside) is valid for kind, else -EINVAL. */
int mu_name_check(const char *name, size_t len, enum mu_name_kind kind);
/* Same for a NUL-terminated string. */
int mu_name_check_str(const char *name, enum mu_name_kind kind);

/* A growable byte buffer. Zero-initialise, then append; free with mu_buf_free. */
struct mu_buf {
	char *data;
	size_t len;
	size_t cap;
};

int mu_buf_reserve(struct mu_buf *b, size_t extra);
int mu_buf_append(struct mu_buf *b, const void *data, size_t len);
int mu_buf_printf(struct mu_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mu_buf_vprintf(struct mu_buf *b, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
/* Hands the (NUL-terminated) data over to the caller; b is reset. */
char *mu_buf_steal(struct mu_buf *b, size_t *ret_len);
void mu_buf_free(struct mu_buf *b);

/* The value of a hexadecimal digit, -1 for any other byte. */
int mu_hex_digit(int c);

/* The hash of every table keyed by names users choose (store keys, config
 * keys, registry names, inodes by name): SipHash-1-3 under a key drawn from
 * getrandom() once per daemon start, so nobody outside the daemon can pick
 * names that land in one bucket. Stable within one run only: never store it. */
uint64_t mu_hash(const void *data, size_t len);
/* Fixes the key of mu_hash (tests); call it before any thread hashes. */
void mu_hash_set_key(const uint8_t key[16]);
/* SipHash-2-4 of data under key, the reference variant (its published test
 * vectors check the code mu_hash shares with it). */
uint64_t mu_siphash24(const uint8_t key[16], const void *data, size_t len);

/* Monotonic and wall-clock time. */
uint64_t mu_now_ms(void);
void mu_now_real(struct timespec *ts);

/* Duplicates len bytes and adds a NUL; NULL on out-of-memory. */
char *mu_memdup0(const void *data, size_t len);

/* Parses a non-negative decimal integer that fits in 63 bits, with no sign,
 * spaces or suffix. 0 or -EINVAL. */
int mu_parse_u64(const char *s, uint64_t *ret);

/* Logging: one line each, through the sink set by the program (stderr by
 * default). The mount layer points it at syslog when in the background.
 * mu_log may be called with any core lock held; it calls the sink under its
 * own mutex, the last lock of all, so a sink must not log or call into
 * core. */
enum mu_log_level { MU_LOG_ERR = 3, MU_LOG_WARNING = 4, MU_LOG_INFO = 6, MU_LOG_DEBUG = 7 };
typedef void (*mu_log_sink)(enum mu_log_level level, const char *line, void *arg);
void mu_log_set_sink(mu_log_sink sink, void *arg, enum mu_log_level max_level);
/* With on, the stderr sink starts each line with its level as "<N>", as the
 * journal reads stderr (sd-daemon(3)); the mount layer turns it on when
 * stderr is the journal. */
void mu_log_set_priorities(bool on);
void mu_log(enum mu_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts a thread with every signal blocked (signals are the daemon's main
 * thread's, through libfuse's handlers) and a name that ps and gdb show.
 * 0 or -errno. */
int mu_thread_start(pthread_t *ret, const char *name, void *(*fn)(void *), void *arg);

#endif
