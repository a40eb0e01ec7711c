/* SPDX-License-Identifier: MIT */
/* Rendered files: status, chain, config.ini, config keys, registry entries
 * and plugins' files. Their text is rendered from core state: at open, and
 * again at every read from offset 0 (as sysfs does), into the open file's
 * handle, which the reads of that open file are served from. Their writes
 * are commands (the row's store), applied before write() returns, or
 * documents applied a line at a time and whole (doc.c). poll()
 * reports POLLPRI|POLLERR once the text differs from what the open file
 * last read. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "service.h"

int mfs_rendered_open(struct mfs_req *c, struct fuse_file_info *fi)
{
	char *text = NULL;
	size_t len = 0;
	int r = c->kind->render(c, &text, &len);
	/* A control file made by create() and not yet written reads empty. */
	if (r == -ENOENT && (c->kind->flags & MK_PENDING) && mfs_node_pending(c->fs, c->node))
		r = 1;
	if (r < 0)
		return r;
	struct handle *h = mfs_handle_new();
	if (!h) {
		free(text);
		return -ENOMEM;
	}
	if (r == 0) {
		/* What poll() compares with until the first read. */
		h->text = text;
		h->len = len;
		h->have = true;
	}
	mfs_handle_register(c->fs, h, fi);
	fi->direct_io = 1;
	/* A document's last line may wait for close() (doc.c). */
	fi->noflush = !(c->kind->flush && (fi->flags & O_ACCMODE) != O_RDONLY);
	return 0;
}

ssize_t mfs_rendered_read(struct mfs_req *c, struct fuse_file_info *fi, char *buf, size_t size,
                          off_t off)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	if (!h)
		return -EBADF;
	pthread_mutex_lock(&h->lock);
	bool fresh = off == 0 || !h->have;
	pthread_mutex_unlock(&h->lock);

	int r = 0;
	if (fresh) {
		/* Rendered outside the handle's lock: core's locks come first. */
		char *text = NULL;
		size_t len = 0;
		r = c->kind->render(c, &text, &len);
		if (r == 0) {
			pthread_mutex_lock(&h->lock);
			free(h->text);
			h->text = text;
			h->len = len;
			h->have = true;
			pthread_mutex_unlock(&h->lock);
		} else if (r == -ENOENT && mfs_node_pending(c->fs, c->node)) {
			r = 0; /* created, never written: empty */
		}
	}
	ssize_t n = r;
	if (r == 0) {
		pthread_mutex_lock(&h->lock);
		size_t start = (size_t)off < h->len ? (size_t)off : h->len;
		size_t count = h->len - start < size ? h->len - start : size;
		if (count)
			memcpy(buf, h->text + start, count);
		pthread_mutex_unlock(&h->lock);
		n = (ssize_t)count;
	}
	mfs_handle_put(c->fs, h);
	return n;
}

ssize_t mfs_rendered_write(struct mfs_req *c, struct fuse_file_info *fi, const char *buf,
                           size_t size, off_t off)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	int r = c->kind->store(c, h, buf, size, off);
	bool pending = (c->kind->flags & MK_PENDING) && mfs_node_pending(c->fs, c->node);
	if (r < 0 && pending) {
		/* A refused first write leaves no entry behind. */
		mfs_node_unhash_self(c->fs, c->node);
	} else if (r == 0 && pending) {
		/* (r 1: held back, the entry stays pending until close) */
		/* What the first write made, by its core id if it has one. */
		mfs_node_made_real(c->fs, c->node, c->kind->id ? c->kind->id(c) : 0);
	}
	if (r == 0 && h) {
		pthread_mutex_lock(&h->lock);
		h->have = false; /* the next read renders the new state */
		pthread_mutex_unlock(&h->lock);
	}
	mfs_handle_put(c->fs, h);
	return r < 0 ? r : (ssize_t)size;
}

/* Truncation wipes nothing, as with sysfs: `echo x > status` opens with
 * O_TRUNC, and the write is the command. */
int mfs_rendered_truncate(struct mfs_req *c, uint64_t size)
{
	return 0;
}

unsigned mfs_rendered_poll(struct mfs_req *c, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	unsigned revents = POLLIN | POLLRDNORM;
	/* The notifier's opens have no handle: always ready. */
	struct handle *h = mfs_handle_poll_open(c->fs, fi, c->node, ph);
	if (!h)
		return revents;

	char *text = NULL;
	size_t len = 0;
	int r = c->kind->render(c, &text, &len);
	pthread_mutex_lock(&h->lock);
	if (r < 0 || !h->have || len != h->len || (len && memcmp(text, h->text, len) != 0))
		revents |= POLLPRI | POLLERR;
	pthread_mutex_unlock(&h->lock);
	free(text);
	if (c->kind->store)
		revents |= POLLOUT | POLLWRNORM;
	mfs_handle_put(c->fs, h);
	return revents;
}

void mfs_rendered_release(struct mfs_req *c, struct fuse_file_info *fi)
{
	/* Created and closed without a write that made it real: gone. */
	if ((c->kind->flags & MK_PENDING) && mfs_node_pending(c->fs, c->node))
		mfs_node_unhash_self(c->fs, c->node);
}

int mfs_rendered_svc(struct mfs_req *c, int r, char **ret, size_t *ret_len)
{
	if (r == 0 && !msvc_alive(c->svc)) {
		/* The service went while rendering: nothing is returned. */
		free(*ret);
		*ret = NULL;
		*ret_len = 0;
		r = -ENOENT;
	}
	return r;
}
