/* The inode table: O(1) lookup by inode number and by (parent, name).
 *
 * Inode numbers come from a 64-bit counter and are never reused, so the
 * generation is always 0. A node lives while the kernel holds a lookup
 * reference to it (nlookup) or we do (refs: its children, and requests in
 * flight); a removed object's node is unhashed at once, so a new object of
 * the same name gets a new inode. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "service.h"
#include "util.h"

#define INITIAL_BUCKETS 1024

static size_t ino_slot(const struct mfs *fs, uint64_t ino)
{
	return (size_t)(ino * 0x9e3779b97f4a7c15ULL >> 17) & (fs->nbuckets - 1);
}

static size_t name_slot(const struct mfs *fs, uint64_t parent, const char *name)
{
	uint64_t h = mu_hash(name, strlen(name)) ^ (parent * 0x9e3779b97f4a7c15ULL);
	return (size_t)(h ^ (h >> 29)) & (fs->nbuckets - 1);
}

static void name_link(struct mfs *fs, struct mnode *n)
{
	size_t s = name_slot(fs, n->parent->ino, n->name);
	n->name_next = fs->by_name[s];
	fs->by_name[s] = n;
	n->hashed = true;
}

static void name_unlink(struct mfs *fs, struct mnode *n)
{
	if (!n->hashed)
		return;
	struct mnode **pp = &fs->by_name[name_slot(fs, n->parent->ino, n->name)];
	while (*pp && *pp != n)
		pp = &(*pp)->name_next;
	if (*pp)
		*pp = n->name_next;
	n->name_next = NULL;
	n->hashed = false;
}

/* Doubles both tables when they fill up; on failure they just stay. */
static void maybe_grow(struct mfs *fs)
{
	if (fs->count < fs->nbuckets)
		return;
	size_t nb = fs->nbuckets * 2;
	struct mnode **bi = calloc(nb, sizeof(*bi));
	struct mnode **bn = calloc(nb, sizeof(*bn));
	if (!bi || !bn) {
		free(bi);
		free(bn);
		return;
	}
	struct mnode **oi = fs->by_ino;
	size_t ob = fs->nbuckets;
	fs->by_ino = bi;
	fs->nbuckets = nb;
	for (size_t i = 0; i < ob; i++) {
		struct mnode *n = oi[i];
		while (n) {
			struct mnode *next = n->ino_next;
			size_t s = ino_slot(fs, n->ino);
			n->ino_next = bi[s];
			bi[s] = n;
			n = next;
		}
	}
	free(oi);
	struct mnode **on = fs->by_name;
	fs->by_name = bn;
	for (size_t i = 0; i < ob; i++) {
		struct mnode *n = on[i];
		while (n) {
			struct mnode *next = n->name_next;
			n->hashed = false;
			name_link(fs, n);
			n = next;
		}
	}
	free(on);
}

static struct mnode *node_new_locked(struct mfs *fs, struct mnode *parent, const char *name,
                                     enum mnode_kind kind, uint64_t obj_id)
{
	struct mnode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->ino = fs->next_ino++;
	n->kind = kind;
	n->obj_id = obj_id;
	n->parent = parent;
	if (parent)
		parent->refs++;
	size_t s = ino_slot(fs, n->ino);
	n->ino_next = fs->by_ino[s];
	fs->by_ino[s] = n;
	fs->count++;
	if (parent)
		name_link(fs, n);
	maybe_grow(fs);
	return n;
}

/* Frees n if nothing holds it, then its parent likewise. A freed service
 * node's service is handed back, to be dropped once fs->lock is released
 * (dropping the last reference frees the service's plugins). */
static struct mallafs_svc *node_release_locked(struct mfs *fs, struct mnode *n)
{
	struct mallafs_svc *drop = NULL;
	while (n && n != fs->root && n->nlookup == 0 && n->refs == 0) {
		struct mnode *parent = n->parent;
		name_unlink(fs, n);
		struct mnode **pp = &fs->by_ino[ino_slot(fs, n->ino)];
		while (*pp && *pp != n)
			pp = &(*pp)->ino_next;
		if (*pp)
			*pp = n->ino_next;
		fs->count--;
		if (n->svc)
			drop = n->svc; /* one service node on the way up, at most */
		free(n->name);
		free(n);
		if (!parent)
			break;
		parent->refs--;
		n = parent;
	}
	return drop;
}

int mfs_nodes_init(struct mfs *fs)
{
	fs->nbuckets = INITIAL_BUCKETS;
	fs->by_ino = calloc(fs->nbuckets, sizeof(*fs->by_ino));
	fs->by_name = calloc(fs->nbuckets, sizeof(*fs->by_name));
	if (!fs->by_ino || !fs->by_name)
		return -ENOMEM;
	fs->next_ino = 1;
	fs->root = node_new_locked(fs, NULL, "", N_ROOT, 0);
	if (!fs->root)
		return -ENOMEM;
	fs->root->nlookup = 1;
	return 0;
}

void mfs_nodes_fini(struct mfs *fs)
{
	for (size_t i = 0; fs->by_ino && i < fs->nbuckets; i++) {
		struct mnode *n = fs->by_ino[i];
		while (n) {
			struct mnode *next = n->ino_next;
			if (n->svc)
				msvc_unref(n->svc);
			free(n->name);
			free(n);
			n = next;
		}
	}
	free(fs->by_ino);
	free(fs->by_name);
	fs->by_ino = fs->by_name = NULL;
}

static struct mnode *get_locked(struct mfs *fs, uint64_t ino)
{
	for (struct mnode *n = fs->by_ino[ino_slot(fs, ino)]; n; n = n->ino_next)
		if (n->ino == ino)
			return n;
	return NULL;
}

struct mnode *mfs_node_get(struct mfs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = get_locked(fs, ino);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

void mfs_node_ref(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	n->refs++;
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_put(struct mfs *fs, struct mnode *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&fs->lock);
	n->refs--;
	struct mallafs_svc *drop = node_release_locked(fs, n);
	pthread_mutex_unlock(&fs->lock);
	msvc_unref(drop);
}

static struct mnode *find_locked(struct mfs *fs, struct mnode *parent, const char *name)
{
	for (struct mnode *n = fs->by_name[name_slot(fs, parent->ino, name)]; n; n = n->name_next)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

struct mnode *mfs_node_find(struct mfs *fs, struct mnode *parent, const char *name)
{
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = find_locked(fs, parent, name);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

struct mnode *mfs_node_child(struct mfs *fs, struct mnode *parent, const char *name,
                             enum mnode_kind kind, uint64_t obj_id)
{
	struct mallafs_svc *drop = NULL;
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = find_locked(fs, parent, name);
	if (n && (n->kind != kind || (obj_id && n->obj_id && n->obj_id != obj_id))) {
		/* Another object under the same name: it gets its own inode. */
		name_unlink(fs, n);
		drop = node_release_locked(fs, n);
		n = NULL;
	}
	if (n && obj_id && !n->obj_id)
		n->obj_id = obj_id; /* a pending node became the real thing */
	if (!n)
		n = node_new_locked(fs, parent, name, kind, obj_id);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->lock);
	msvc_unref(drop);
	return n;
}

void mfs_node_unhash(struct mfs *fs, struct mnode *parent, const char *name)
{
	struct mallafs_svc *drop = NULL;
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = find_locked(fs, parent, name);
	if (n) {
		name_unlink(fs, n);
		drop = node_release_locked(fs, n);
	}
	pthread_mutex_unlock(&fs->lock);
	msvc_unref(drop);
}

void mfs_node_move(struct mfs *fs, struct mnode *parent, const char *name, struct mnode *newparent,
                   const char *newname, uint64_t new_id)
{
	struct mallafs_svc *drop = NULL, *drop2 = NULL;
	pthread_mutex_lock(&fs->lock);
	struct mnode *target = find_locked(fs, newparent, newname);
	struct mnode *n = find_locked(fs, parent, name);
	if (target && target != n) {
		name_unlink(fs, target);
		drop = node_release_locked(fs, target);
	}
	if (n) {
		char *nn = strdup(newname);
		name_unlink(fs, n);
		if (nn) {
			free(n->name);
			n->name = nn;
			if (newparent != n->parent) {
				newparent->refs++;
				n->parent->refs--;
				/* The old parent is still referenced by the caller. */
				n->parent = newparent;
			}
			n->obj_id = new_id;
			name_link(fs, n);
		} else {
			drop2 = node_release_locked(fs, n);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	msvc_unref(drop);
	msvc_unref(drop2);
}

void mfs_node_lookup_inc(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	n->nlookup++;
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_forget(struct mfs *fs, uint64_t ino, uint64_t nlookup)
{
	struct mallafs_svc *drop = NULL;
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = get_locked(fs, ino);
	if (n && n != fs->root) {
		n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
		drop = node_release_locked(fs, n);
	}
	pthread_mutex_unlock(&fs->lock);
	msvc_unref(drop);
}

void mfs_node_set_svc(struct mfs *fs, struct mnode *n, struct mallafs_svc *svc)
{
	pthread_mutex_lock(&fs->lock);
	if (!n->svc)
		n->svc = msvc_ref(svc);
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_names(struct mfs *fs, struct mnode *n, char *name, char *pname, size_t len,
                    struct mallafs_svc **ret_svc)
{
	pthread_mutex_lock(&fs->lock);
	if (name)
		snprintf(name, len, "%s", n->name);
	if (pname)
		snprintf(pname, len, "%s", n->parent ? n->parent->name : "");
	if (ret_svc) {
		struct mnode *s = n;
		while (s && s->kind != N_SVC)
			s = s->parent;
		*ret_svc = s && s->svc ? msvc_ref(s->svc) : NULL;
	}
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_unhash_self(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	name_unlink(fs, n);
	pthread_mutex_unlock(&fs->lock);
}

bool mfs_node_pending(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	bool p = n->pending && !n->obj_id;
	pthread_mutex_unlock(&fs->lock);
	return p;
}

void mfs_node_set_pending(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	n->pending = true;
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_made_real(struct mfs *fs, struct mnode *n, uint64_t obj_id)
{
	pthread_mutex_lock(&fs->lock);
	n->pending = false;
	if (obj_id)
		n->obj_id = obj_id;
	pthread_mutex_unlock(&fs->lock);
}

bool mfs_node_cache_valid(struct mfs *fs, struct mnode *n, const struct timespec *mtime)
{
	pthread_mutex_lock(&fs->lock);
	bool ok = n->cache_ok && n->cache_mtime.tv_sec == mtime->tv_sec &&
	          n->cache_mtime.tv_nsec == mtime->tv_nsec;
	pthread_mutex_unlock(&fs->lock);
	return ok;
}

void mfs_node_cache_set(struct mfs *fs, struct mnode *n, bool ok, const struct timespec *mtime)
{
	pthread_mutex_lock(&fs->lock);
	n->cache_ok = ok;
	if (mtime)
		n->cache_mtime = *mtime;
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_cache_wrote(struct mfs *fs, struct mnode *n, bool exact, const struct timespec *mtime)
{
	pthread_mutex_lock(&fs->lock);
	n->cache_ok = n->cache_ok && exact;
	n->cache_mtime = *mtime;
	pthread_mutex_unlock(&fs->lock);
}

int mfs_node_path(struct mfs *fs, struct mnode *n, char *buf, size_t len)
{
	const char *names[16];
	size_t depth = 0, at = 0;
	int r = 0;

	pthread_mutex_lock(&fs->lock);
	for (struct mnode *p = n; p && p->parent; p = p->parent) {
		if (depth == sizeof(names) / sizeof(names[0])) {
			r = -ENAMETOOLONG;
			break;
		}
		names[depth++] = p->name;
	}
	while (r == 0 && depth > 0) {
		int w = snprintf(buf + at, len - at, "%s%s", at ? "/" : "", names[--depth]);
		if (w < 0 || (size_t)w >= len - at)
			r = -ENAMETOOLONG;
		else
			at += (size_t)w;
	}
	if (r == 0 && at == 0 && len > 0)
		buf[0] = '\0';
	pthread_mutex_unlock(&fs->lock);
	return r;
}

int mfs_node_inos_under(struct mfs *fs, struct mnode *top, uint64_t **ret, size_t *ret_count)
{
	size_t count = 0, cap = 0;
	uint64_t *inos = NULL;
	int r = 0;

	pthread_mutex_lock(&fs->lock);
	for (size_t b = 0; b < fs->nbuckets && r == 0; b++) {
		for (struct mnode *n = fs->by_ino[b]; n; n = n->ino_next) {
			struct mnode *p = n->parent;
			while (p && p != top)
				p = p->parent;
			if (!p)
				continue;
			if (count == cap) {
				size_t nc = cap ? cap * 2 : 64;
				uint64_t *g = realloc(inos, nc * sizeof(*g));
				if (!g) {
					r = -ENOMEM;
					break;
				}
				inos = g;
				cap = nc;
			}
			inos[count++] = n->ino;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	if (r < 0) {
		free(inos);
		return r;
	}
	*ret = inos;
	*ret_count = count;
	return 0;
}
