/* SPDX-License-Identifier: MIT */
/* The registry's pools: making one (mkdir) and removing one (rmdir). Their
 * members are stored and removed in registry.c, as names are.
 *
 * Locks: as registry.c: the registry's lock around lookups and changes,
 * allocations before it; in cluster mode the change lock first, held
 * across the shared store's hook, which runs with the registry's lock
 * dropped. */
#include "registry_i.h"

#include "events.h"
#include "slots.h"
#include "tree.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Whether pool can be made: 0, or -EEXIST (a pool, or a name held by a
 * live process here or by another node's); the lock is held. */
static int pool_free_check(struct mreg *reg, const char *pool)
{
	struct ent *e = mreg_ent_find(&reg->names, pool);
	if (e && e->kind == 'n' && !e->node) {
		mreg_reap_if_exited(reg, e->pid);
		e = mreg_ent_find(&reg->names, pool);
	}
	return e ? -EEXIST : 0;
}

/* Puts the new pool p in place, with its mkdir event; the lock is held.
 * -ENOMEM, -ENOSPC before anything changed. */
static int pool_apply(struct mreg *reg, struct ent *p)
{
	char path[MTREE_PATH_MAX];

	p->kind = 'p';
	int r = mreg_ent_place(reg, p);
	if (r < 0)
		return r;
	mu_now_real(&p->mtime);
	mreg_htab_insert(&reg->names, &p->h, mreg_name_hash(p->name));
	mreg_ent_path(path, sizeof(path), p);
	mev_emit(reg->ring, MEV_MKDIR, path, NULL);
	return 0;
}

/* Cluster mode, holding the change lock and the lock, once pool_free_check
 * passed: asks the shared store with the lock dropped, then makes the
 * pool here (*pp taken) or undoes it there. Returns with the lock dropped. */
static int pool_shared(struct mreg *reg, const char *pool, uid_t creator, struct ent **pp)
{
	struct mreg_saved s = {.name = pool, .kind = 'p', .uid = creator};
	struct ent *e;
	int r;

	r = mreg_ask_hold(reg, &s);
	if (r < 0)
		return r;
	/* Another node's stale name gives way, as in hold_shared; a pool the
	 * mirror has put meanwhile (the shared store's echo) is this one. */
	mreg_drop_stale(reg, pool);
	e = mreg_ent_find(&reg->names, pool);
	r = e && e->kind == 'p' ? 0 : pool_free_check(reg, pool);
	if (r == 0 && !e) {
		r = pool_apply(reg, *pp);
		if (r == 0)
			*pp = NULL;
	}
	mreg_unlock(reg);
	if (r < 0)
		mreg_undo_hold(reg, &s);
	return r;
}

static int pool_make(struct mreg *reg, const char *pool, uid_t creator, bool hooks)
{
	struct ent *p = NULL;
	int r;

	if (!reg || mu_name_check_str(pool, MU_NAME_STRICT) < 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->name = strdup(pool)) || mreg_htab_init(&p->members, 8) < 0) {
		mreg_ent_free(p);
		return -ENOMEM;
	}

	hooks = hooks && reg->cluster;
	if (hooks)
		pthread_mutex_lock(&reg->change);
	pthread_mutex_lock(&reg->lock);
	r = pool_free_check(reg, pool);
	if (r == 0 && hooks) {
		r = pool_shared(reg, pool, creator, &p);
		pthread_mutex_unlock(&reg->change);
		mreg_ent_free(p);
		return r;
	}
	if (r == 0)
		r = pool_apply(reg, p);
	if (r == 0)
		p = NULL;
	mreg_unlock(reg);
	if (hooks)
		pthread_mutex_unlock(&reg->change);
	mreg_ent_free(p);
	return r;
}

int mreg_pool_make(struct mreg *reg, const char *pool, uid_t creator)
{
	return pool_make(reg, pool, creator, true);
}

int mreg_pool_make_here(struct mreg *reg, const char *pool)
{
	return pool_make(reg, pool, 0, false);
}

int mreg_pool_create(struct mreg *reg, const char *pool)
{
	return pool_make(reg, pool, 0, true);
}

/* -ENOTEMPTY when p has a member: of a live process here (those of an
 * exited one are reaped now, as for names) or of another node. The lock is
 * held. */
static int pool_busy(struct mreg *reg, struct ent *p)
{
	/* Reaping a member's process removes it and no other member of this
	 * pool; the first member left ends the walk. */
	for (uint32_t pos = 0; p->slots && mslots_next(p->slots, pos, &pos); pos++) {
		struct ent *m = mslots_get(p->slots, pos);
		if (!m->node)
			mreg_reap_if_exited(reg, m->pid);
		if (p->slots && mslots_get(p->slots, pos) == m)
			return -ENOTEMPTY;
	}
	return 0;
}

int mreg_pool_destroy(struct mreg *reg, const char *pool)
{
	bool hooks = reg && reg->cluster;
	struct ent *p;
	int r;

	if (!reg)
		return -EINVAL;
	if (hooks)
		pthread_mutex_lock(&reg->change);
	pthread_mutex_lock(&reg->lock);
	r = mreg_find_pool(reg, pool, &p);
	if (r == 0)
		r = pool_busy(reg, p);
	if (r == 0 && hooks) {
		struct mreg_saved s = {.name = pool, .kind = 'p'};
		mreg_unlock(reg);
		r = reg->remote.release(reg->remote_arg, &s);
		if (r < 0)
			goto out;
		pthread_mutex_lock(&reg->lock);
		/* With what the mirror put in it meanwhile, stale: the shared
		 * store has just removed the pool. */
		if (mreg_find_pool(reg, pool, &p) == 0)
			mreg_remove_pool(reg, p);
	} else if (r == 0) {
		mreg_remove_pool(reg, p);
	}
	mreg_unlock(reg);
out:
	if (hooks)
		pthread_mutex_unlock(&reg->change);
	return r;
}
