/* SPDX-License-Identifier: MIT */
/* batch mode's map of the changes not committed yet: one entry per key,
 * the latest change of it (a value, copied, or a deletion), so that a burst
 * of changes to one key costs one row. Keys hash with the daemon's keyed
 * hash (mu_hash), as the store's own table does: keys that other users
 * choose cannot be made to collide. No lock of its own: persist.c guards
 * each map with p->lock, or owns it alone once taken out. */
#include "persist_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static size_t bucket(const struct pdirty *m, const char *key)
{
	return (size_t)mu_hash(key, strlen(key)) & (m->nbuckets - 1);
}

static struct pdirty_ent **find(struct pdirty *m, const char *key)
{
	struct pdirty_ent **pp = &m->tab[bucket(m, key)];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* Doubles the table when it holds as many entries as buckets. */
static int grow(struct pdirty *m)
{
	if (m->n < m->nbuckets)
		return 0;
	size_t nb = m->nbuckets ? m->nbuckets * 2 : 64;
	struct pdirty_ent **tab = calloc(nb, sizeof(*tab));
	if (!tab)
		return m->nbuckets ? 0 : -ENOMEM; /* a full table still works */
	struct pdirty old = *m;
	m->tab = tab;
	m->nbuckets = nb;
	for (size_t i = 0; i < old.nbuckets; i++) {
		for (struct pdirty_ent *e = old.tab[i], *next; e; e = next) {
			next = e->next;
			struct pdirty_ent **pp = &m->tab[bucket(m, e->key)];
			e->next = *pp;
			*pp = e;
		}
	}
	free(old.tab);
	return 0;
}

static void ent_free(struct pdirty_ent *e)
{
	free(e->value);
	free(e);
}

int pdirty_put(struct pdirty *m, const char *key, bool del, const void *value, size_t len,
               int64_t mtime)
{
	size_t klen = strlen(key);
	if (grow(m) < 0)
		return -ENOMEM;
	struct pdirty_ent *e = malloc(sizeof(*e) + klen + 1);
	char *copy = !del && len ? malloc(len) : NULL;
	if (!e || (!del && len && !copy)) {
		free(e);
		free(copy);
		return -ENOMEM;
	}
	memcpy(e->key, key, klen + 1);
	e->del = del;
	e->mtime = mtime;
	e->len = del ? 0 : len;
	e->value = copy;
	if (copy)
		memcpy(copy, value, len);
	struct pdirty_ent **pp = find(m, key);
	if (*pp) {
		e->next = (*pp)->next;
		ent_free(*pp);
	} else {
		e->next = NULL;
		m->n++;
	}
	*pp = e;
	return 0;
}

void pdirty_merge_older(struct pdirty *to, struct pdirty *from)
{
	for (size_t i = 0; i < from->nbuckets; i++) {
		for (struct pdirty_ent *e = from->tab[i], *next; e; e = next) {
			next = e->next;
			struct pdirty_ent **pp = to->nbuckets ? find(to, e->key) : NULL;
			if ((pp && *pp) || grow(to) < 0) {
				ent_free(e); /* to holds a newer change (or no room) */
				continue;
			}
			pp = find(to, e->key);
			e->next = NULL;
			*pp = e;
			to->n++;
		}
	}
	free(from->tab);
	*from = (struct pdirty){0};
}

int pdirty_foreach(const struct pdirty *m, int (*fn)(const struct pdirty_ent *e, void *arg),
                   void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (const struct pdirty_ent *e = m->tab[i]; e; e = e->next) {
			int r = fn(e, arg);
			if (r)
				return r;
		}
	return 0;
}

void pdirty_free(struct pdirty *m)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct pdirty_ent *e = m->tab[i], *next; e; e = next) {
			next = e->next;
			ent_free(e);
		}
	free(m->tab);
	*m = (struct pdirty){0};
}
