/* SPDX-License-Identifier: MIT */
/* The sections of a configuration: a persistent treap. Nodes and sections
 * are shared between configurations and counted, so a copy of a whole
 * configuration is one reference (services copy theirs on every change and
 * every read of config/), and a change copies only the path to the section
 * it touches: O(log n) in the number of sections, never O(n).
 *
 * A node or section with one reference belongs to the one configuration
 * that reaches it and is changed in place; one with more is copied first
 * (copy on write), from the root down, so a shared node is never changed.
 * The counts are atomic: configurations that share nodes are owned by
 * different threads (a service's committed one, a reader's copy of it).
 *
 * Each node's priority is the keyed hash of its section's name (mu_hash):
 * the tree's shape depends only on the set of names, not on the order of
 * the changes, and nobody who cannot read the key can choose names that
 * make it deep. Two configurations that share most nodes are compared by
 * walking down only where their nodes differ. */
#include "cfg_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct mcfg_node {
	struct mcfg_node *l, *r; /* names before and after this one */
	const char *name;        /* sec->name, one pointer less to chase */
	struct mcfg_section *sec;
	uint64_t prio; /* mu_hash of the name; a parent's is higher than its children's */
	atomic_uint refs;
};

/* ---- sections ---- */

struct mcfg_section *mcfg_section_new(const char *name, int line)
{
	struct mcfg_section *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->name = strdup(name);
	if (!s->name) {
		free(s);
		return NULL;
	}
	s->line = line;
	atomic_init(&s->refs, 1);
	return s;
}

void mcfg_section_clear(struct mcfg_section *s)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		free(s->keys[i].name);
		free(s->keys[i].value);
	}
	free(s->keys);
	s->keys = NULL;
	s->nkeys = 0;
	s->cap = 0;
}

static void section_unref(struct mcfg_section *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	mcfg_section_clear(s);
	free(s->name);
	free(s);
}

/* A private deep copy of a shared section. */
static struct mcfg_section *section_copy(const struct mcfg_section *src)
{
	struct mcfg_section *d = mcfg_section_new(src->name, src->line);
	if (!d)
		return NULL;
	d->removed = src->removed;
	if (src->nkeys) {
		d->keys = calloc(src->nkeys, sizeof(*d->keys));
		if (!d->keys)
			goto fail;
		d->cap = src->nkeys;
	}
	for (size_t i = 0; i < src->nkeys; i++) {
		struct mcfg_key *k = &d->keys[i];
		const struct mcfg_key *sk = &src->keys[i];
		k->line = sk->line;
		k->name = strdup(sk->name);
		/* Counted before the check, so that clearing frees a partial copy. */
		d->nkeys++;
		if (!k->name || (sk->value && !(k->value = strdup(sk->value))))
			goto fail;
	}
	return d;
fail:
	section_unref(d);
	return NULL;
}

/* ---- nodes ---- */

static struct mcfg_node *node_ref(struct mcfg_node *n)
{
	if (n)
		atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
	return n;
}

void mcfg_tree_unref(struct mcfg_node *n)
{
	/* Recursion on the left, a loop on the right: the depth is the
	 * tree's height, O(log n) since nobody can choose priorities. */
	while (n && atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) == 1) {
		struct mcfg_node *r = n->r;
		mcfg_tree_unref(n->l);
		section_unref(n->sec);
		free(n);
		n = r;
	}
}

struct mcfg_node *mcfg_tree_ref(struct mcfg_node *root)
{
	return node_ref(root);
}

/* Makes *np this configuration's own before it is changed. Out of memory
 * leaves it as it was. */
static int own(struct mcfg_node **np)
{
	struct mcfg_node *n = *np;
	if (atomic_load_explicit(&n->refs, memory_order_acquire) == 1)
		return 0;
	struct mcfg_node *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct mcfg_node){
	        .l = node_ref(n->l), .r = node_ref(n->r), .name = n->name, .prio = n->prio};
	atomic_fetch_add_explicit(&n->sec->refs, 1, memory_order_relaxed);
	c->sec = n->sec;
	atomic_init(&c->refs, 1);
	mcfg_tree_unref(n); /* shared: this only drops our reference */
	*np = c;
	return 0;
}

/* Whether a belongs above b: the higher priority, the name on a tie. */
static bool above(const struct mcfg_node *a, const struct mcfg_node *b)
{
	if (a->prio != b->prio)
		return a->prio > b->prio;
	return strcmp(a->name, b->name) < 0;
}

static void rotate_right(struct mcfg_node **tp)
{
	struct mcfg_node *t = *tp, *l = t->l;
	t->l = l->r;
	l->r = t;
	*tp = l;
}

static void rotate_left(struct mcfg_node **tp)
{
	struct mcfg_node *t = *tp, *r = t->r;
	t->r = r->l;
	r->l = t;
	*tp = r;
}

const struct mcfg_section *mcfg_tree_get(const struct mcfg_node *n, const char *name)
{
	while (n) {
		int c = strcmp(name, n->name);
		if (c == 0)
			return n->sec;
		n = c < 0 ? n->l : n->r;
	}
	return NULL;
}

struct mcfg_section *mcfg_tree_mut(struct mcfg_node **np, const char *name, int *ret_err)
{
	*ret_err = 0;
	while (*np) {
		int c = strcmp(name, (*np)->name);
		if ((*ret_err = own(np)) < 0)
			return NULL;
		struct mcfg_node *n = *np;
		if (c < 0) {
			np = &n->l;
			continue;
		}
		if (c > 0) {
			np = &n->r;
			continue;
		}
		if (atomic_load_explicit(&n->sec->refs, memory_order_acquire) > 1) {
			struct mcfg_section *s = section_copy(n->sec);
			if (!s) {
				*ret_err = -ENOMEM;
				return NULL;
			}
			section_unref(n->sec);
			n->sec = s;
			n->name = s->name;
		}
		return n->sec;
	}
	return NULL;
}

/* Inserts the new node n (its name absent) below *tp. */
static int insert(struct mcfg_node **tp, struct mcfg_node *n)
{
	if (!*tp) {
		*tp = n;
		return 0;
	}
	int r = own(tp);
	if (r < 0)
		return r;
	struct mcfg_node *t = *tp;
	if (strcmp(n->name, t->name) < 0) {
		r = insert(&t->l, n);
		if (r == 0 && above(t->l, t))
			rotate_right(tp);
	} else {
		r = insert(&t->r, n);
		if (r == 0 && above(t->r, t))
			rotate_left(tp);
	}
	return r;
}

int mcfg_tree_insert(struct mcfg_node **root, struct mcfg_section *sec)
{
	struct mcfg_node *n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	*n = (struct mcfg_node){
	        .name = sec->name, .sec = sec, .prio = mu_hash(sec->name, strlen(sec->name))};
	atomic_init(&n->refs, 1);
	int r = insert(root, n);
	if (r < 0)
		free(n); /* sec stays the caller's */
	return r;
}

int mcfg_tree_delete(struct mcfg_node **np, const char *name)
{
	while (*np) {
		int c = strcmp(name, (*np)->name);
		int r = own(np);
		if (r < 0)
			return r;
		struct mcfg_node *n = *np;
		if (c != 0) {
			np = c < 0 ? &n->l : &n->r;
			continue;
		}
		/* Rotated down until it has at most one child, which takes its
		 * place. Out of memory half-way leaves every section there and
		 * in order, the shape merely not the canonical one, which
		 * costs mcfg_tree_equal a slower walk, never a wrong answer. */
		while (n->l && n->r) {
			bool left = above(n->l, n->r);
			r = own(left ? &n->l : &n->r);
			if (r < 0)
				return r;
			if (left) {
				rotate_right(np);
				np = &(*np)->r;
			} else {
				rotate_left(np);
				np = &(*np)->l;
			}
		}
		*np = n->l ? n->l : n->r;
		section_unref(n->sec);
		free(n);
		return 0;
	}
	return -ENOENT;
}

int mcfg_tree_foreach(const struct mcfg_node *n, int (*fn)(const struct mcfg_section *s, void *arg),
                      void *arg)
{
	while (n) {
		int r = mcfg_tree_foreach(n->l, fn, arg);
		if (r == 0)
			r = fn(n->sec, arg);
		if (r)
			return r;
		n = n->r;
	}
	return 0;
}

const struct mcfg_section *mcfg_tree_next(const struct mcfg_node *n, const char *after)
{
	const struct mcfg_section *best = NULL;
	while (n) {
		if (!after || strcmp(n->name, after) > 0) {
			best = n->sec;
			n = n->l;
		} else {
			n = n->r;
		}
	}
	return best;
}

size_t mcfg_tree_height(const struct mcfg_node *n)
{
	if (!n)
		return 0;
	size_t l = mcfg_tree_height(n->l), r = mcfg_tree_height(n->r);
	return 1 + (l > r ? l : r);
}

/* ---- comparing ---- */

struct flat {
	const struct mcfg_section **v;
	size_t n, cap;
};

static int flat_add(const struct mcfg_section *s, void *arg)
{
	struct flat *f = arg;
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		const struct mcfg_section **v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = s;
	return 0;
}

/* The slow way, for shapes that differ: both sides in name order. Out of
 * memory answers "different", which only costs a reconfiguration that
 * was not needed. */
static bool equal_flat(const struct mcfg_node *a, const struct mcfg_node *b,
                       bool (*sec_equal)(const struct mcfg_section *, const struct mcfg_section *))
{
	struct flat fa = {0}, fb = {0};
	bool eq = mcfg_tree_foreach(a, flat_add, &fa) == 0 &&
	          mcfg_tree_foreach(b, flat_add, &fb) == 0 && fa.n == fb.n;
	for (size_t i = 0; eq && i < fa.n; i++)
		eq = fa.v[i] == fb.v[i] || sec_equal(fa.v[i], fb.v[i]);
	free(fa.v);
	free(fb.v);
	return eq;
}

bool mcfg_tree_equal(const struct mcfg_node *a, const struct mcfg_node *b,
                     bool (*sec_equal)(const struct mcfg_section *, const struct mcfg_section *))
{
	/* Equal sets of names give equal shapes, so the two trees are walked
	 * side by side, skipping every subtree they share. */
	while (a != b) {
		if (!a || !b)
			return false;
		if (strcmp(a->name, b->name) != 0) {
			/* Each root holds its tree's highest priority: when
			 * both trees are canonical, one root's name is missing
			 * from the other tree, found in O(log n). Both present
			 * means a shape left odd by a failed delete. */
			if (!mcfg_tree_get(b, a->name) || !mcfg_tree_get(a, b->name))
				return false;
			return equal_flat(a, b, sec_equal);
		}
		if (a->sec != b->sec && !sec_equal(a->sec, b->sec))
			return false;
		if (!mcfg_tree_equal(a->l, b->l, sec_equal))
			return false;
		a = a->r;
		b = b->r;
	}
	return true;
}
