/* SPDX-License-Identifier: MIT */
/* What a node knows, read and set under fs->lock (fs_i.h): its names and
 * path, whether it is a control file waiting for its first write, what the
 * kernel's page cache of a value holds, and the nodes below it. The table
 * itself (making, finding and freeing nodes, inode numbers) is node.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "service.h"

struct mallafs_svc *mfs_node_svc_locked(struct mnode *n)
{
	while (n && n->kind != N_SVC)
		n = n->parent;
	return n && n->svc ? msvc_ref(n->svc) : NULL;
}

void mfs_node_names(struct mfs *fs, struct mnode *n, char *name, char *pname, size_t len,
                    struct mallafs_svc **ret_svc)
{
	pthread_mutex_lock(&fs->lock);
	if (name)
		snprintf(name, len, "%s", n->name);
	if (pname)
		snprintf(pname, len, "%s", n->parent ? n->parent->name : "");
	if (ret_svc)
		*ret_svc = mfs_node_svc_locked(n);
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
