/* SPDX-License-Identifier: MIT */
/* The identity persist's threads act with: the service owner's filesystem
 * uid and gid and supplementary groups, so that the kernel checks each open,
 * create, rename and unlink against the owner's rights, and files persist
 * creates belong to the owner.
 *
 * Per thread only. setfsuid and setfsgid act on the calling thread (glibc's
 * wrappers are plain system calls). glibc's setgroups() does not: it changes
 * every thread of the process (the set*id broadcast), so the raw system call
 * is used. The threads doing this are persist's own (load, last write),
 * which do nothing else, and the timer loop's workers, which give the
 * identity back (persist_as_daemon) as soon as a save ends and before they
 * run anything else; the rest of the daemon keeps its identity.
 *
 * The owner is read at each call (a chown of the service changes it while
 * it runs), and the identity is applied at each call too: cheap, and right
 * even when something in the process reset the thread's credentials. Groups
 * come from the user database once per owner: a change of group membership
 * applies at the next change of owner or restart of the daemon, as for a
 * login session. */
#include "persist_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "plugin_util.h"

#ifdef SYS_setgroups32
#define PERSIST_SYS_SETGROUPS SYS_setgroups32 /* 32-bit gids on 16-bit-uid ABIs */
#else
#define PERSIST_SYS_SETGROUPS SYS_setgroups
#endif

static int cmp_gid(const void *a, const void *b)
{
	gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
	return x < y ? -1 : x > y;
}

/* The calling thread's supplementary groups, sorted (malloc'd). */
static int thread_groups(gid_t **ret, size_t *ret_n)
{
	int n = getgroups(0, NULL);
	if (n < 0)
		return -errno;
	gid_t *v = malloc(((size_t)n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = getgroups(n, v);
	if (n < 0) {
		int r = -errno;
		free(v);
		return r;
	}
	qsort(v, (size_t)n, sizeof(*v), cmp_gid);
	*ret = v;
	*ret_n = (size_t)n;
	return 0;
}

int persist_as_init(struct persist_as *as)
{
	*as = (struct persist_as){0};
	return thread_groups(&as->own_groups, &as->nown);
}

void persist_as_free(struct persist_as *as)
{
	free(as->groups);
	free(as->own_groups);
	*as = (struct persist_as){0};
}

static gid_t *copy_groups(const gid_t *v, size_t n)
{
	gid_t *c = malloc((n + 1) * sizeof(*c));
	if (c && n)
		memcpy(c, v, n * sizeof(*c));
	return c;
}

/* The user database's groups of uid with gid as its primary group, or gid
 * alone when uid has no entry; sorted, as thread_groups gives them. */
static int user_groups(uid_t uid, gid_t gid, gid_t **ret, size_t *ret_n, struct mallafs_reason *why)
{
	int r = pu_user_lookup(uid, gid, ret, ret_n, NULL);
	if (r == -E2BIG) {
		mallafs_reason_set(why, "cannot list the groups of uid %u", (unsigned)uid);
		return -EINVAL;
	}
	if (r < 0) {
		mallafs_reason_set(why, "cannot look up uid %u in the user database: %s",
		                   (unsigned)uid, strerror(-r));
		return r;
	}
	qsort(*ret, *ret_n, sizeof(**ret), cmp_gid);
	return 0;
}

static int set_groups(const struct persist_as *as, struct mallafs_reason *why)
{
	gid_t *now = NULL;
	size_t n = 0;
	int r = thread_groups(&now, &n);
	if (r == 0 && n == as->ngroups && memcmp(now, as->groups, n * sizeof(*now)) == 0) {
		free(now);
		return 0; /* a daemon that is not root acting as itself lands here */
	}
	free(now);
	if (syscall(PERSIST_SYS_SETGROUPS, as->ngroups, as->groups) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot take the supplementary groups of uid %u: %s",
		                   (unsigned)as->uid, strerror(-r));
		return -EPERM;
	}
	r = thread_groups(&now, &n);
	bool same = r == 0 && n == as->ngroups && memcmp(now, as->groups, n * sizeof(*now)) == 0;
	free(now);
	if (!same) {
		mallafs_reason_set(why, "the supplementary groups of uid %u did not take",
		                   (unsigned)as->uid);
		return -EPERM;
	}
	return 0;
}

int persist_as_owner(struct persist_as *as, struct mallafs_svc *svc, struct mallafs_reason *why)
{
	uid_t uid;
	gid_t gid;
	int r;
	mallafs_svc_owner(svc, &uid, &gid);
	if (!as->known || as->uid != uid || as->gid != gid) {
		gid_t *groups = NULL;
		size_t n = 0;
		if (uid == geteuid() && gid == getegid()) {
			/* The daemon itself: its own groups, which a daemon that
			 * is not root could not set anyway. */
			groups = copy_groups(as->own_groups, as->nown);
			n = as->nown;
			r = groups ? 0 : -ENOMEM;
		} else {
			r = user_groups(uid, gid, &groups, &n, why);
		}
		if (r < 0)
			return r;
		free(as->groups);
		as->groups = groups;
		as->ngroups = n;
		as->uid = uid;
		as->gid = gid;
		as->known = true;
	}
	r = set_groups(as, why);
	if (r < 0)
		return r;
	/* Each returns the previous value: a second call tells whether the
	 * first took. Groups, then gid, then uid: giving up fsuid 0 drops the
	 * filesystem capabilities, not those needed to set the others. */
	setfsgid(gid);
	if ((gid_t)setfsgid(gid) != gid) {
		mallafs_reason_set(why, "cannot act as gid %u: setfsgid did not take",
		                   (unsigned)gid);
		return -EPERM;
	}
	setfsuid(uid);
	if ((uid_t)setfsuid(uid) != uid) {
		mallafs_reason_set(why, "cannot act as uid %u: setfsuid did not take",
		                   (unsigned)uid);
		return -EPERM;
	}
	return 0;
}

uid_t persist_fsuid(void)
{
	/* An invalid id changes nothing and returns the current one. */
	return (uid_t)setfsuid((uid_t)-1);
}

int persist_as_daemon(struct persist_as *as, struct mallafs_reason *why)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	/* uid first: back to fsuid 0, a root daemon has its filesystem
	 * capabilities again. */
	setfsuid(uid);
	if ((uid_t)setfsuid(uid) != uid) {
		mallafs_reason_set(why, "cannot act as the daemon's uid %u again", (unsigned)uid);
		return -EPERM;
	}
	setfsgid(gid);
	if ((gid_t)setfsgid(gid) != gid) {
		mallafs_reason_set(why, "cannot act as the daemon's gid %u again", (unsigned)gid);
		return -EPERM;
	}
	gid_t *now = NULL;
	size_t n = 0;
	int r = thread_groups(&now, &n);
	bool same = r == 0 && n == as->nown && memcmp(now, as->own_groups, n * sizeof(*now)) == 0;
	free(now);
	if (!same && syscall(PERSIST_SYS_SETGROUPS, as->nown, as->own_groups) < 0) {
		mallafs_reason_set(why, "cannot take the daemon's groups again: %s",
		                   strerror(errno));
		return -EPERM;
	}
	return 0;
}
