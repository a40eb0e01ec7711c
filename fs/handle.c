/* SPDX-License-Identifier: MIT */
/* Open files that need state of their own (rendered files, the events
 * feed), found by their id in fi->fh, and the poll() lists of nodes.
 * Every field this file touches but a handle's own lock's is guarded by
 * fs->lock (fs_i.h); no reply or notification is made under it. */
#include <errno.h>
#include <stdlib.h>

#include "fs_i.h"

struct handle *mfs_handle_new(void)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (h)
		pthread_mutex_init(&h->lock, NULL);
	return h;
}

static void handle_destroy(struct mfs *fs, struct handle *h)
{
	struct fuse_pollhandle *ph = NULL;
	if (h->node) {
		pthread_mutex_lock(&fs->lock);
		struct handle **pp = &h->node->polls;
		while (*pp && *pp != h)
			pp = &(*pp)->poll_next;
		if (*pp)
			*pp = h->poll_next;
		ph = h->ph;
		h->ph = NULL;
		fs->polling--;
		pthread_mutex_unlock(&fs->lock);
		mfs_node_put(fs, h->node);
	}
	if (ph)
		fuse_pollhandle_destroy(ph);
	if (h->held_node) {
		/* A value's open file that went with its truncation still held
		 * (an open whose reply failed, the daemon's exit): not applied. */
		pthread_mutex_lock(&fs->lock);
		h->held_node->held_trunc--;
		pthread_mutex_unlock(&fs->lock);
		mfs_node_put(fs, h->held_node);
	}
	pthread_mutex_destroy(&h->lock);
	mfs_doc_free(h->doc);
	free(h->text);
	free(h->kept);
	free(h);
}

void mfs_handle_register(struct mfs *fs, struct handle *h, struct fuse_file_info *fi)
{
	pthread_mutex_lock(&fs->lock);
	h->id = ++fs->next_fh;
	h->refs = 1; /* the open file's */
	size_t s = h->id % MFS_HANDLE_BUCKETS;
	h->hnext = fs->handles[s];
	fs->handles[s] = h;
	pthread_mutex_unlock(&fs->lock);
	fi->fh = h->id;
}

struct handle *mfs_handle_get(struct mfs *fs, const struct fuse_file_info *fi)
{
	if (!fi || !fi->fh)
		return NULL;
	pthread_mutex_lock(&fs->lock);
	struct handle *h = fs->handles[fi->fh % MFS_HANDLE_BUCKETS];
	while (h && h->id != fi->fh)
		h = h->hnext;
	if (h)
		h->refs++;
	pthread_mutex_unlock(&fs->lock);
	return h;
}

void mfs_handle_put(struct mfs *fs, struct handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fs->lock);
	bool last = --h->refs == 0;
	pthread_mutex_unlock(&fs->lock);
	if (last)
		handle_destroy(fs, h);
}

void mfs_handle_release(struct mfs *fs, uint64_t id)
{
	if (!id)
		return;
	pthread_mutex_lock(&fs->lock);
	struct handle **pp = &fs->handles[id % MFS_HANDLE_BUCKETS];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->hnext;
	struct handle *h = *pp;
	if (h)
		*pp = h->hnext;
	pthread_mutex_unlock(&fs->lock);
	mfs_handle_put(fs, h);
}

void mfs_handles_fini(struct mfs *fs)
{
	for (size_t i = 0; i < MFS_HANDLE_BUCKETS; i++)
		while (fs->handles[i])
			mfs_handle_release(fs, fs->handles[i]->id);
}

void mfs_handle_poll(struct mfs *fs, struct handle *h, struct mnode *n, struct fuse_pollhandle *ph)
{
	struct fuse_pollhandle *old = NULL;
	pthread_mutex_lock(&fs->lock);
	if (ph) {
		old = h->ph;
		h->ph = ph;
	}
	if (!h->node) {
		h->node = n;
		n->refs++; /* kept until the handle goes */
		h->poll_next = n->polls;
		n->polls = h;
		fs->polling++;
	}
	pthread_mutex_unlock(&fs->lock);
	if (old)
		fuse_pollhandle_destroy(old);
}

struct handle *mfs_handle_poll_open(struct mfs *fs, const struct fuse_file_info *fi,
                                    struct mnode *n, struct fuse_pollhandle *ph)
{
	struct handle *h = mfs_handle_get(fs, fi);
	if (h)
		mfs_handle_poll(fs, h, n, ph);
	else if (ph)
		fuse_pollhandle_destroy(ph);
	return h;
}

/* The poll handles are taken off their handles under the lock and used
 * after it: a notification is a write to /dev/fuse, never made holding
 * fs->lock. The kernel polls again after a wake-up, with a new handle. */
void mfs_poll_wake(struct mfs *fs, struct mnode *n)
{
	struct fuse_pollhandle *stack[16], **phs = stack;
	size_t count = 0, cap = MU_ARRAY_SIZE(stack);

	pthread_mutex_lock(&fs->lock);
	for (struct handle *h = n->polls; h; h = h->poll_next)
		if (h->ph)
			count++;
	if (count > cap) {
		struct fuse_pollhandle **big = malloc(count * sizeof(*big));
		if (big) {
			phs = big;
			cap = count;
		}
	}
	count = 0;
	for (struct handle *h = n->polls; h && count < cap; h = h->poll_next) {
		if (h->ph) {
			phs[count++] = h->ph;
			h->ph = NULL;
		}
	}
	pthread_mutex_unlock(&fs->lock);

	for (size_t i = 0; i < count; i++) {
		fuse_lowlevel_notify_poll(phs[i]);
		fuse_pollhandle_destroy(phs[i]);
	}
	if (phs != stack)
		free(phs);
}
