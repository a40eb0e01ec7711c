/* SPDX-License-Identifier: MIT */
/* The registry read whole: listings of registry/ and of a pool resumed at
 * a cookie, one entry's stat, and walks of every entry for the state
 * database (this node's) and for a cluster resync (other nodes').
 *
 * Locks: each call holds the registry's lock throughout, callbacks
 * included (they must not call into the registry); never the change lock. */
#include "registry_i.h"

#include "slots.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

/* buf (MU_NAME_MAX + 1 bytes) holds another node's member's file name. */
static void to_entry(const struct ent *e, struct mreg_entry *ret, char *buf)
{
	ret->name = mreg_ent_fname(e, buf, MU_NAME_MAX + 1);
	ret->kind = e->kind;
	ret->id = e->id;
	ret->cookie = mslots_cookie(e->pos);
	ret->mtime = e->mtime;
	ret->uid = e->kind == 'p' ? 0 : e->uid;
}

/* Calls fn under the lock, so fn must not call into the registry; the
 * name it gets lives only for the call. A non-zero return from fn stops
 * the walk and is returned. It starts where cookie says, without looking
 * at what comes before: O(1) per entry it returns. */
static int walk(struct mreg *reg, const struct mslots *slots, uint64_t cookie,
                int (*fn)(const struct mreg_entry *e, void *arg), void *arg)
{
	for (uint32_t pos = mslots_resume(cookie); mslots_next(slots, pos, &pos); pos++) {
		struct mreg_entry x;
		char fname[MU_NAME_MAX + 1];
		reg->list_steps++;
		to_entry(mslots_get(slots, pos), &x, fname);
		int r = fn(&x, arg);
		if (r)
			return r;
	}
	return 0;
}

int mreg_list(struct mreg *reg, uint64_t cookie, int (*fn)(const struct mreg_entry *e, void *arg),
              void *arg)
{
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = walk(reg, reg->top, cookie, fn, arg);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_pool_list(struct mreg *reg, const char *pool, uint64_t cookie,
                   int (*fn)(const struct mreg_entry *e, void *arg), void *arg)
{
	struct ent *p;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = mreg_find_pool(reg, pool, &p);
	if (r == 0 && p->slots)
		r = walk(reg, p->slots, cookie, fn, arg);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

uint64_t mreg_list_steps(struct mreg *reg)
{
	pthread_mutex_lock(&reg->lock);
	uint64_t n = reg->list_steps;
	pthread_mutex_unlock(&reg->lock);
	return n;
}

void mreg_counts(struct mreg *reg, struct mreg_counts *ret)
{
	pthread_mutex_lock(&reg->lock);
	*ret = reg->counts;
	pthread_mutex_unlock(&reg->lock);
}

/* ret->name is set to NULL: the entry's own name lives only while the lock
 * is held, and the caller knows the name it asked for. */
int mreg_stat(struct mreg *reg, const char *name, const char *member, struct mreg_entry *ret)
{
	struct ent *e = NULL;
	int r;

	if (!reg || !ret)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = mreg_find_any(reg, name, member, &e);
	if (r == 0) {
		char fname[MU_NAME_MAX + 1];
		to_entry(e, ret, fname);
		ret->name = NULL;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* The saved form of e; the lock is held (the strings live while it is). */
static void to_saved(const struct ent *e, struct mreg_saved *ret)
{
	*ret = (struct mreg_saved){.kind = e->kind};
	if (e->kind == 'p') {
		ret->name = e->name;
		return;
	}
	ret->name = e->kind == 'm' ? e->pool->name : e->name;
	ret->member = e->kind == 'm' ? e->name : NULL;
	ret->pid = e->pid;
	ret->starttime = e->starttime;
	ret->value = e->value;
	ret->uid = e->uid;
}

/* Where a walk hands each entry: the state database's callback (save) or
 * a resync's (mirror, which is also told the entry's node). */
struct each_fn {
	int (*save)(const struct mreg_saved *s, void *arg);
	int (*mirror)(const struct mreg_saved *s, const char *node, void *arg);
	void *arg;
};

static int each_one(const struct ent *e, const struct each_fn *f)
{
	struct mreg_saved s;
	to_saved(e, &s);
	if (f->save)
		return f->save(&s, f->arg);
	return f->mirror(&s, e->node ? e->node->name : NULL, f->arg);
}

/* Every pool, then every name and member of this node (mine) or of the
 * other nodes; the lock is held. Pools come first, so that restoring in
 * this order finds each member's pool made already. */
static int each(struct mreg *reg, bool mine, const struct each_fn *f)
{
	int r = 0;

	for (uint32_t pos = 0; r == 0 && mslots_next(reg->top, pos, &pos); pos++) {
		const struct ent *e = mslots_get(reg->top, pos);
		if (e->kind == 'p')
			r = each_one(e, f);
	}
	for (uint32_t pos = 0; r == 0 && mslots_next(reg->top, pos, &pos); pos++) {
		const struct ent *e = mslots_get(reg->top, pos);
		if (e->kind == 'n') {
			if (!e->node == mine)
				r = each_one(e, f);
			continue;
		}
		for (uint32_t m = 0; r == 0 && e->slots && mslots_next(e->slots, m, &m); m++) {
			const struct ent *x = mslots_get(e->slots, m);
			if (!x->node == mine)
				r = each_one(x, f);
		}
	}
	return r;
}

int mreg_save_foreach(struct mreg *reg, int (*fn)(const struct mreg_saved *s, void *arg), void *arg)
{
	struct each_fn f = {.save = fn, .arg = arg};

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	int r = each(reg, true, &f);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_mirror_foreach(struct mreg *reg,
                        int (*fn)(const struct mreg_saved *s, const char *node, void *arg),
                        void *arg)
{
	struct each_fn f = {.mirror = fn, .arg = arg};

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	int r = each(reg, false, &f);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* Another node's entry is not this node's to save: -ENOENT. */
int mreg_save_get(struct mreg *reg, const char *name, const char *member,
                  int (*fn)(const struct mreg_saved *s, void *arg), void *arg)
{
	struct each_fn f = {.save = fn, .arg = arg};
	struct ent *e = NULL;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = mreg_find_any(reg, name, member, &e);
	if (r == 0)
		r = e->node ? -ENOENT : each_one(e, &f);
	pthread_mutex_unlock(&reg->lock);
	return r;
}
