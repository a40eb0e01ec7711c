/* SPDX-License-Identifier: MIT */
/* Cluster mode (issue 15): turning the shared store's hooks on
 * (mreg_set_remote; the writers that call them are in registry.c and
 * registry_pools.c), and the mirror: other nodes' entries, put here and
 * removed by the cluster engine as etcd's watch reports them.
 *
 * What another node's entry costs: its struct ent (about 200 bytes on
 * 64-bit), its name (a member's is its PID, a few bytes), its value, and
 * its position in a slots table (about 12 bytes); no watch, no fd. The
 * node's name is held once per node (struct mreg_node), however many
 * entries it has here, and goes with its last entry.
 *
 * Locks: the mirror takes the registry's lock only, never the change lock:
 * a writer of this node waiting on the shared store holds the change lock,
 * and the mirror keeps flowing meanwhile. It removes no exited process's
 * entries, so exited() is never called from here. */
#include "registry_i.h"

#include "events.h"
#include "slots.h"
#include "tree.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "PID@NODE" must fit a file name: a PID has at most 10 digits. */
#define NODE_MAX (MU_NAME_MAX - 11)

static int node_check(const char *node)
{
	if (mu_name_check_str(node, MU_NAME_STRICT) < 0 || strlen(node) > NODE_MAX)
		return -EINVAL;
	return 0;
}

int mreg_set_remote(struct mreg *reg, const char *node, const struct mreg_remote *ops, void *arg)
{
	char *copy = NULL;

	if (!reg)
		return -EINVAL;
	if (ops) {
		if (node_check(node) < 0 || !ops->hold || !ops->release || !ops->exited)
			return -EINVAL;
		copy = strdup(node);
		if (!copy)
			return -ENOMEM;
	}
	pthread_mutex_lock(&reg->lock);
	free(reg->node);
	reg->node = copy;
	reg->cluster = ops != NULL;
	reg->remote = ops ? *ops : (struct mreg_remote){0};
	reg->remote_arg = ops ? arg : NULL;
	pthread_mutex_unlock(&reg->lock);
	return 0;
}

int mreg_member_name_check(struct mreg *reg, const char *name)
{
	pid_t pid;

	if (!name)
		return -EINVAL;
	size_t len = strlen(name);
	if (mreg_parse_pid(name, len, true, &pid) == 0)
		return 0;
	return reg && reg->cluster && mreg_remote_form(name, len) ? -EPERM : -EINVAL;
}

/* A pool of the shared store; the lock is not held. */
static int mirror_pool(struct mreg *reg, const char *name, const struct timespec *mtime)
{
	char path[MTREE_PATH_MAX];
	struct ent *p, *e;
	int r = 0;

	p = calloc(1, sizeof(*p));
	if (!p || !(p->name = strdup(name)) || mreg_htab_init(&p->members, 8) < 0) {
		mreg_ent_free(p);
		return -ENOMEM;
	}
	p->kind = 'p';
	pthread_mutex_lock(&reg->lock);
	e = mreg_ent_find(&reg->names, name);
	if (!e || e->kind != 'p')
		r = mreg_ent_place(reg, p);
	if ((!e || e->kind != 'p') && r == 0) {
		/* A name by that name, this node's or another's, gives way. */
		if (e)
			mreg_remove_name(reg, e, NULL);
		p->mtime = *mtime;
		mreg_htab_insert(&reg->names, &p->h, mreg_name_hash(p->name));
		mreg_ent_path(path, sizeof(path), p);
		mev_emit(reg->ring, MEV_MKDIR, path, NULL);
		p = NULL;
	}
	pthread_mutex_unlock(&reg->lock);
	mreg_ent_free(p);
	return r;
}

/* Puts n (made, not placed) for s held by node; the lock is held. The
 * entry already there for the same holder takes n's value instead. */
static int mirror_place(struct mreg *reg, const struct mreg_saved *s, const char *node,
                        struct ent *n, struct mreg_node **spare, const struct timespec *mtime)
{
	struct ent *p = NULL, *e;
	int r;

	if (s->kind == 'm') {
		r = mreg_find_pool(reg, s->name, &p);
		if (r < 0)
			return -ENOENT;
		struct mreg_node *nd = mreg_node_find(reg, node);
		e = nd ? mreg_member_find(p, n->name, nd) : NULL;
	} else {
		e = mreg_ent_find(&reg->names, s->name);
		if (e && e->kind == 'p')
			return -EEXIST;
		if (e && (!e->node || strcmp(e->node->name, node) != 0 || e->pid != s->pid))
			e = NULL; /* another holder: replaced below */
	}
	if (e) {
		free(e->value);
		e->value = n->value;
		n->value = NULL;
		e->uid = s->uid;
		e->starttime = s->starttime;
		e->mtime = *mtime;
		if (p)
			p->mtime = *mtime;
		mreg_emit_register(reg, e);
		return 0;
	}
	n->kind = s->kind;
	n->pool = p;
	r = mreg_ent_place(reg, n);
	if (r < 0)
		return r;
	/* Placed, nothing can fail now: the name's other holder goes (this
	 * node's too: the shared store settled the race otherwise). */
	e = p ? NULL : mreg_ent_find(&reg->names, s->name);
	if (e)
		mreg_remove_name(reg, e, NULL);
	n->node = mreg_node_get(reg, node, spare);
	n->pid = s->pid;
	n->uid = s->uid;
	n->starttime = s->starttime;
	n->mtime = *mtime;
	if (p)
		p->mtime = *mtime;
	mreg_htab_insert(p ? &p->members : &reg->names, &n->h, mreg_name_hash(n->name));
	mreg_emit_register(reg, n);
	return 1;
}

int mreg_mirror_put(struct mreg *reg, const struct mreg_saved *s, const char *node,
                    const struct timespec *mtime)
{
	struct mreg_node *spare = NULL;
	struct timespec now;
	struct ent *n;
	char pid_text[16];
	int r;

	if (!reg || !s || mu_name_check_str(s->name, MU_NAME_STRICT) < 0)
		return -EINVAL;
	if (mtime)
		now = *mtime;
	else
		mu_now_real(&now);
	if (s->kind == 'p')
		return mirror_pool(reg, s->name, &now);
	size_t vlen = s->value ? strlen(s->value) : 0;
	if ((s->kind != 'n' && s->kind != 'm') || s->pid <= 0 || node_check(node) < 0 ||
	    mreg_check_value(s->value, vlen) < 0)
		return -EINVAL;
	snprintf(pid_text, sizeof(pid_text), "%d", (int)s->pid);

	/* A name's empty value is no value, a member's is "", as here. */
	n = calloc(1, sizeof(*n));
	spare = malloc(sizeof(*spare) + strlen(node) + 1);
	if (!n || !spare || !(n->name = strdup(s->kind == 'n' ? s->name : pid_text)) ||
	    ((s->kind == 'm' || vlen) &&
	     !(n->value = mu_memdup0(s->value ? s->value : "", vlen)))) {
		r = -ENOMEM;
		goto out;
	}
	strcpy(spare->name, node);
	pthread_mutex_lock(&reg->lock);
	/* This node's own entries come from its writers, never the mirror. */
	if (reg->node && strcmp(node, reg->node) == 0)
		r = -EINVAL;
	else
		r = mirror_place(reg, s, node, n, &spare, &now);
	pthread_mutex_unlock(&reg->lock);
	if (r > 0) {
		n = NULL;
		r = 0;
	}
out:
	mreg_ent_free(n);
	free(spare);
	return r;
}

int mreg_mirror_remove(struct mreg *reg, const char *name, const char *member)
{
	struct ent *e;
	int r;

	if (!reg || !name)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = member ? mreg_find_member(reg, name, member, &e) : mreg_find_any(reg, name, NULL, &e);
	if (r == 0 && e->kind != 'p' && !e->node)
		r = -ENOENT; /* this node's: not the mirror's to remove */
	if (r == 0 && e->kind == 'p')
		mreg_remove_pool(reg, e);
	else if (r == 0 && e->kind == 'm')
		mreg_remove_member(reg, e, NULL);
	else if (r == 0)
		mreg_remove_name(reg, e, NULL);
	pthread_mutex_unlock(&reg->lock);
	return r < 0 ? -ENOENT : 0;
}

void mreg_mirror_remove_node(struct mreg *reg, const char *node)
{
	if (!reg || !node)
		return;
	pthread_mutex_lock(&reg->lock);
	struct mreg_node *nd = mreg_node_find(reg, node);
	if (nd) {
		nd->refs++; /* so that it outlives its last entry here */
		for (uint32_t pos = 0; mslots_next(reg->top, pos, &pos); pos++) {
			struct ent *e = mslots_get(reg->top, pos);
			if (e->kind == 'n' && e->node == nd) {
				mreg_remove_name(reg, e, NULL);
				continue;
			}
			for (uint32_t m = 0;
			     e->kind == 'p' && e->slots && mslots_next(e->slots, m, &m); m++) {
				struct ent *x = mslots_get(e->slots, m);
				if (x->node == nd)
					mreg_remove_member(reg, x, NULL);
			}
		}
		mreg_node_unref(nd);
	}
	pthread_mutex_unlock(&reg->lock);
}
