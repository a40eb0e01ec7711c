/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int mu_name_check(const char *name, size_t len, enum mu_name_kind kind)
{
	if (!name || len == 0 || len > MU_NAME_MAX)
		return -EINVAL;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '\0' || c == '/')
			return -EINVAL;
		if (kind == MU_NAME_STRICT &&
		    !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	return 0;
}

int mu_name_check_str(const char *name, enum mu_name_kind kind)
{
	if (!name)
		return -EINVAL;
	return mu_name_check(name, strnlen(name, MU_NAME_MAX + 1), kind);
}

int mu_buf_reserve(struct mu_buf *b, size_t extra)
{
	if (b->cap - b->len > extra)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len <= extra)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int mu_buf_append(struct mu_buf *b, const void *data, size_t len)
{
	int r = mu_buf_reserve(b, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int mu_buf_vprintf(struct mu_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	int r = mu_buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int mu_buf_printf(struct mu_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = mu_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

char *mu_buf_steal(struct mu_buf *b, size_t *ret_len)
{
	if (!b->data && mu_buf_reserve(b, 0) < 0)
		return NULL;
	b->data[b->len] = '\0';
	char *p = b->data;
	if (ret_len)
		*ret_len = b->len;
	*b = (struct mu_buf){0};
	return p;
}

void mu_buf_free(struct mu_buf *b)
{
	free(b->data);
	*b = (struct mu_buf){0};
}

/* SipHash (Aumasson and Bernstein, 2012): four 64-bit words of state mixed
 * by add-rotate-xor rounds; c rounds per 8-byte word of input, d rounds to
 * finish. */
#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static void sip_rounds(uint64_t v[4], int n)
{
	for (int i = 0; i < n; i++) {
		v[0] += v[1];
		v[1] = SIP_ROTL(v[1], 13);
		v[1] ^= v[0];
		v[0] = SIP_ROTL(v[0], 32);
		v[2] += v[3];
		v[3] = SIP_ROTL(v[3], 16);
		v[3] ^= v[2];
		v[0] += v[3];
		v[3] = SIP_ROTL(v[3], 21);
		v[3] ^= v[0];
		v[2] += v[1];
		v[1] = SIP_ROTL(v[1], 17);
		v[1] ^= v[2];
		v[2] = SIP_ROTL(v[2], 32);
	}
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t w = 0;
	for (int i = 7; i >= 0; i--)
		w = (w << 8) | p[i];
	return w;
}

static uint64_t siphash(uint64_t k0, uint64_t k1, const void *data, size_t len, int c, int d)
{
	const unsigned char *p = data;
	uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
	                 k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
	size_t whole = len - len % 8;
	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = le64(p + i);
		v[3] ^= m;
		sip_rounds(v, c);
		v[0] ^= m;
	}
	/* The last word: the bytes left over, and the length's low byte on top. */
	uint64_t m = (uint64_t)(len & 0xff) << 56;
	for (size_t i = 0; i < len % 8; i++)
		m |= (uint64_t)p[whole + i] << (8 * i);
	v[3] ^= m;
	sip_rounds(v, c);
	v[0] ^= m;
	v[2] ^= 0xff;
	sip_rounds(v, d);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t mu_siphash24(const uint8_t key[16], const void *data, size_t len)
{
	return siphash(le64(key), le64(key + 8), data, len, 2, 4);
}

/* Written once (hash_key_init, under pthread_once, or mu_hash_set_key
 * before threads), then only read. */
static uint64_t hash_k0, hash_k1;
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
	uint8_t key[16];
	size_t got = 0;
	while (got < sizeof(key)) {
		ssize_t n = getrandom(key + got, sizeof(key) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < sizeof(key)) {
		/* No kernel entropy (a kernel before 3.17): a key nobody can
		 * read from outside still beats a fixed one. */
		mu_log(MU_LOG_WARNING, "getrandom: %s; hash key from the clock and the pid",
		       strerror(errno));
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t a =
		        (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
		uint64_t b = (uint64_t)(uintptr_t)&got ^ (uint64_t)time(NULL);
		memcpy(key, &a, 8);
		memcpy(key + 8, &b, 8);
	}
	hash_k0 = le64(key);
	hash_k1 = le64(key + 8);
}

void mu_hash_set_key(const uint8_t key[16])
{
	pthread_once(&hash_once, hash_key_init);
	hash_k0 = le64(key);
	hash_k1 = le64(key + 8);
}

uint64_t mu_hash(const void *data, size_t len)
{
	pthread_once(&hash_once, hash_key_init);
	return siphash(hash_k0, hash_k1, data, len, 1, 3);
}

uint64_t mu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void mu_now_real(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

char *mu_memdup0(const void *data, size_t len)
{
	if (len == SIZE_MAX)
		return NULL;
	char *p = malloc(len + 1);
	if (!p)
		return NULL;
	if (len)
		memcpy(p, data, len);
	p[len] = '\0';
	return p;
}

int mu_parse_u64(const char *s, uint64_t *ret)
{
	if (!s || !*s)
		return -EINVAL;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (INT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*ret = v;
	return 0;
}

static const char *const level_names[] = {
        [MU_LOG_ERR] = "error",
        [MU_LOG_WARNING] = "warning",
        [MU_LOG_INFO] = "info",
        [MU_LOG_DEBUG] = "debug",
};

/* Set by mu_log_set_priorities, read by stderr_sink: both under log_cfg.lock. */
static bool stderr_priorities;

static void stderr_sink(enum mu_log_level level, const char *line, void *arg)
{
	const char *name =
	        (level >= 0 && (size_t)level < MU_ARRAY_SIZE(level_names) && level_names[level])
	                ? level_names[level]
	                : "log";
	if (stderr_priorities)
		fprintf(stderr, "<%d>mallafs: %s: %s\n", (int)level, name, line);
	else
		fprintf(stderr, "mallafs: %s: %s\n", name, line);
}

static struct {
	pthread_mutex_t lock;
	mu_log_sink sink;
	void *arg;
	enum mu_log_level max;
} log_cfg = {PTHREAD_MUTEX_INITIALIZER, stderr_sink, NULL, MU_LOG_INFO};

void mu_log_set_sink(mu_log_sink sink, void *arg, enum mu_log_level max_level)
{
	pthread_mutex_lock(&log_cfg.lock);
	log_cfg.sink = sink ? sink : stderr_sink;
	log_cfg.arg = arg;
	log_cfg.max = max_level;
	pthread_mutex_unlock(&log_cfg.lock);
}

void mu_log_set_priorities(bool on)
{
	pthread_mutex_lock(&log_cfg.lock);
	stderr_priorities = on;
	pthread_mutex_unlock(&log_cfg.lock);
}

void mu_log(enum mu_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	pthread_mutex_lock(&log_cfg.lock);
	if (level > log_cfg.max) {
		pthread_mutex_unlock(&log_cfg.lock);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One line each: a value with a newline must not forge a log line. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	log_cfg.sink(level, line, log_cfg.arg);
	pthread_mutex_unlock(&log_cfg.lock);
}

void mallafs_reason_set(struct mallafs_reason *why, const char *fmt, ...)
{
	if (!why)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why->text, sizeof(why->text), fmt, ap);
	va_end(ap);
	why->section[0] = why->key[0] = '\0';
}

void mallafs_reason_key(struct mallafs_reason *why, const char *section, const char *key)
{
	if (!why)
		return;
	why->section[0] = why->key[0] = '\0';
	if ((section && strlen(section) >= sizeof(why->section)) ||
	    (key && strlen(key) >= sizeof(why->key)))
		return;
	if (section)
		strcpy(why->section, section);
	if (key)
		strcpy(why->key, key);
}

int mu_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mu_thread_start(pthread_t *ret, const char *name, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = -pthread_create(ret, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		pthread_setname_np(*ret, name);
	return r;
}
