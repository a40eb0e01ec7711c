#include "plugin_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *pu_excerpt(const char *v, char *buf, size_t len)
{
	size_t n = 0, i = 0;
	/* Room is kept for "..." and the terminator. */
	for (; v[i] && n + 4 < len; i++)
		buf[n++] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
	if (v[i]) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

int pu_parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		uint64_t d = (uint64_t)(*p - '0');
		/* v * 10 + d > max, tested without overflowing whatever max is. */
		if (d > max || v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int pu_cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t ca;
	int r = -pthread_condattr_init(&ca);
	if (r < 0)
		return r;
	r = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (r == 0)
		r = -pthread_cond_init(cond, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

struct thread_start {
	void *(*fn)(void *arg);
	void *arg;
	char name[16]; /* the kernel's limit, NUL included */
};

/* Named from the inside, before fn runs: named by the creator after
 * pthread_create, the thread would run unnamed for a moment. */
static void *thread_main(void *p)
{
	struct thread_start ts = *(struct thread_start *)p;
	free(p);
	pthread_setname_np(pthread_self(), ts.name);
	return ts.fn(ts.arg);
}

int pu_thread_start(pthread_t *ret, const char *name, void *(*fn)(void *arg), void *arg)
{
	struct thread_start *ts = malloc(sizeof(*ts));
	sigset_t all, old;

	if (!ts)
		return -ENOMEM;
	ts->fn = fn;
	ts->arg = arg;
	snprintf(ts->name, sizeof(ts->name), "%s", name);
	/* The new thread inherits the mask in force at its creation. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = -pthread_create(ret, NULL, thread_main, ts);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		free(ts);
	return r;
}
