/* SPDX-License-Identifier: MIT */
#include "plugin_util.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* uid's passwd entry into pw, its strings in *buf (the caller frees it).
 * 1 found, 0 no entry, or -errno. */
static int passwd_of(uid_t uid, struct passwd *pw, char **buf)
{
	for (size_t len = 4096;; len *= 2) {
		char *b = realloc(*buf, len);
		if (!b)
			return -ENOMEM;
		*buf = b;
		struct passwd *found = NULL;
		int r = getpwuid_r(uid, pw, b, len, &found);
		if (r == ERANGE && len < (1u << 20))
			continue;
		if (r == 0 || r == ENOENT || r == ESRCH)
			return found != NULL;
		return -r;
	}
}

static int groups_of(const char *user, gid_t gid, gid_t **ret, size_t *ret_n)
{
	long max = sysconf(_SC_NGROUPS_MAX);
	gid_t *g = NULL;
	if (max <= 0)
		max = 65536;
	for (int n = 32;;) {
		gid_t *ng = realloc(g, (size_t)n * sizeof(*g));
		if (!ng) {
			free(g);
			return -ENOMEM;
		}
		g = ng;
		int got = n;
		if (getgrouplist(user, gid, g, &got) >= 0) {
			*ret = g;
			*ret_n = (size_t)got;
			return 0;
		}
		/* got is how many there are; older libcs leave it alone. */
		int want = got > n ? got : 2 * n;
		if (want > max) {
			free(g);
			return -E2BIG;
		}
		n = want;
	}
}

int pu_user_lookup(uid_t uid, gid_t gid, gid_t **ret_groups, size_t *ret_n, char **ret_home)
{
	struct passwd pw;
	char *buf = NULL, *home = NULL;
	gid_t *groups = NULL;
	size_t n = 0;
	int r = passwd_of(uid, &pw, &buf);
	bool known = r == 1;
	if (r >= 0 && ret_groups) {
		if (known) {
			r = groups_of(pw.pw_name, gid, &groups, &n);
		} else if ((groups = malloc(sizeof(*groups)))) {
			groups[0] = gid;
			n = 1;
		} else {
			r = -ENOMEM;
		}
	}
	if (r >= 0 && ret_home && !(home = strdup(known && pw.pw_dir[0] ? pw.pw_dir : "/")))
		r = -ENOMEM;
	free(buf);
	if (r < 0) {
		free(groups);
		return r;
	}
	if (ret_groups) {
		*ret_groups = groups;
		*ret_n = n;
	}
	if (ret_home)
		*ret_home = home;
	return 0;
}
