/* SPDX-License-Identifier: MIT */
/* An open value (a store key or config/APP/KEY): every open gets a handle
 * (fi->fh) that holds two things.
 *
 * Atomic put. An open with O_TRUNC does not truncate: it asks the backend
 * whether the truncation would pass (the store's chain may refuse it, and
 * then the open fails as it always did) and holds it back. The first write
 * on the open file replaces the value in one step (zeros up to its offset,
 * then its data: one put through the chain, under the store's lock). With
 * nothing written, the truncation is applied at close(), its error
 * close()'s: at the first, unless the closing process may still hold a
 * duplicate of the descriptor (a shell's redirection closes the one it
 * opened right after dup2(), before the command writes: procfd.c), else at
 * the next (`: > k`), or at the release. So readers see the old value or the new one,
 * never the empty one in between, and a refused write (EFBIG, EPERM) leaves
 * the old value whole: the held truncation goes with it. An ftruncate on
 * the open file applies it too (to size 0, or as a put of that many zeros).
 *
 * What the writer's descriptor sees is a regular file's: while held, its
 * reads give EOF and stat gives size 0. The kernel does not say whose fstat
 * it is (FUSE_GETATTR carries a file handle only on its own read paths), so
 * while any open file of the value holds one, a stat without a handle
 * answers size 0 too, and every stat of the value is answered uncached, so
 * that readers (whose reads fetch the size with their own handle, and get
 * the real one) and the writer each ask again.
 *
 * With atomic O_TRUNC the kernel itself sets the file's size to 0 at the
 * writer's open, for every descriptor: a reader served from the page cache
 * could then stop at that size. So a read-only open within MFS_PUT_HOT_MS
 * of an O_TRUNC open of the value (or while one holds) reads through the
 * daemon (direct I/O), which answers each open file's view; other readers
 * keep the page cache, as the benchmarks' `cat` does.
 *
 * poll(). The handle remembers the value it last saw: the value's id (a
 * new one for a new key of that name, or a rename) and its version (kv.h:
 * a counter of the table taken at every change of the value, not moved by
 * touch). It is set at open and by the open file's own writes and
 * truncations; poll() reports POLLPRI|POLLERR when the value is another
 * since, or gone, and marks what it reported as seen: each change wakes
 * each open file's poll() once (then read from offset 0, as with sysfs),
 * and a change through the poller's own file descriptor wakes it never.
 * The notifier wakes the node's pollers on every change, whoever made it
 * (notify.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"
#include "value.h"

/* How long after an O_TRUNC open the value's readers read through the daemon. */
#define MFS_PUT_HOT_MS 2000

static const struct value_backend *backend(const struct mfs_req *c)
{
	return c->kind->data;
}

/* The value's stat, or -ENOENT when its service is gone. */
static int value_kstat(struct mfs_req *c, struct mkv_stat *ks)
{
	if (!mfs_req_live(c))
		return -ENOENT;
	return backend(c)->stat(c, c->pname, c->name, ks);
}

/* ---- what the handle holds ---- */

static void held_count(struct mfs *fs, struct mnode *n, int delta)
{
	pthread_mutex_lock(&fs->lock);
	n->held_trunc = (unsigned)((int)n->held_trunc + delta);
	if (delta > 0)
		n->trunc_ms = mu_now_ms();
	pthread_mutex_unlock(&fs->lock);
}

/* A value being replaced by `>` now, or a moment ago: its readers read
 * through the daemon, as the kernel's size of it may be 0 for a while. */
static bool recently_held(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	bool hot = n->held_trunc > 0 || (n->trunc_ms && mu_now_ms() - n->trunc_ms < MFS_PUT_HOT_MS);
	pthread_mutex_unlock(&fs->lock);
	return hot;
}

static bool held_any(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	bool held = n->held_trunc > 0;
	pthread_mutex_unlock(&fs->lock);
	return held;
}

/* Takes the held truncation from h: true when it held one (once). */
static bool take_held(struct mfs_req *c, struct handle *h)
{
	if (!h)
		return false;
	pthread_mutex_lock(&h->lock);
	struct mnode *n = h->held_node;
	h->held = false;
	h->held_node = NULL;
	pthread_mutex_unlock(&h->lock);
	if (n) {
		held_count(c->fs, n, -1);
		mfs_node_put(c->fs, n);
	}
	return n != NULL;
}

static bool is_held(struct handle *h)
{
	if (!h)
		return false;
	pthread_mutex_lock(&h->lock);
	bool held = h->held;
	pthread_mutex_unlock(&h->lock);
	return held;
}

/* What the open file saw last: the value as it is now (its own change). */
static void saw_now(struct mfs_req *c, struct handle *h)
{
	struct mkv_stat ks;
	if (!h || value_kstat(c, &ks) < 0)
		return;
	pthread_mutex_lock(&h->lock);
	h->seen_id = ks.id;
	h->seen_ver = ks.ver;
	pthread_mutex_unlock(&h->lock);
}

/* ---- the operations ---- */

int mfs_value_stat(struct mfs_req *c, struct stat *st)
{
	struct mkv_stat ks;
	int r = value_kstat(c, &ks);
	if (r < 0)
		return r;
	st->st_size = (off_t)ks.size;
	st->st_mtim = st->st_atim = ks.mtime;
	st->st_ctim = ks.ctime;
	if (held_any(c->fs, c->node)) {
		/* With a handle, that open file's view; without, the writer's. */
		struct handle *h = mfs_handle_get(c->fs, c->fi);
		if (!c->fi || is_held(h))
			st->st_size = 0;
		mfs_handle_put(c->fs, h);
		c->attr_uncached = true;
	}
	return 0;
}

/* Decides whether the kernel's page cache of the value still holds. */
int mfs_value_open(struct mfs_req *c, struct fuse_file_info *fi)
{
	const struct value_backend *be = backend(c);
	int acc = fi->flags & O_ACCMODE;
	bool trunc = fi->flags & O_TRUNC;
	int r;
	if (trunc && be->probe_truncate) {
		r = be->probe_truncate(c, c->pname, c->name);
		if (r < 0)
			return r;
	}
	if (be->get && acc != O_WRONLY) {
		r = be->get(c, c->pname, c->name);
		if (r < 0)
			return r;
	}
	struct mkv_stat ks;
	r = value_kstat(c, &ks);
	if (r < 0)
		return r;
	struct handle *h = mfs_handle_new();
	if (!h)
		return -ENOMEM;
	h->held = trunc;
	h->acc = acc;
	h->append = fi->flags & O_APPEND;
	h->seen_id = ks.id;
	h->seen_ver = ks.ver;
	if (trunc) {
		mfs_node_ref(c->fs, c->node);
		h->held_node = c->node;
		held_count(c->fs, c->node, 1);
	}
	mfs_handle_register(c->fs, h, fi);
	fi->keep_cache = !trunc && mfs_node_cache_valid(c->fs, c->node, &ks.mtime);
	fi->direct_io = acc == O_RDONLY && recently_held(c->fs, c->node);
	/* Opened without keep_cache, the kernel drops what it had. */
	mfs_node_cache_set(c->fs, c->node, true, &ks.mtime);
	/* Only a held truncation needs the close. */
	fi->noflush = !trunc;
	return 0;
}

ssize_t mfs_value_read(struct mfs_req *c, struct fuse_file_info *fi, char *buf, size_t size,
                       off_t off)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	bool held = is_held(h);
	mfs_handle_put(c->fs, h);
	if (held)
		return 0; /* truncated, as this open file sees it */
	return backend(c)->read(c, c->pname, c->name, buf, size, off);
}

/* The first write of an O_TRUNC open is a put. When a plugin changed what
 * was written (or where), the kernel's page cache no longer matches: it is
 * told to drop it. */
ssize_t mfs_value_write(struct mfs_req *c, struct fuse_file_info *fi, const char *buf, size_t size,
                        off_t off)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	bool put = take_held(c, h);
	bool append = !put && h && h->append;
	bool exact = true;
	ssize_t r = backend(c)->write(c, c->pname, c->name, buf, size, off, put, append, &exact);
	struct mkv_stat ks;
	if (r >= 0 && value_kstat(c, &ks) == 0) {
		/* A put at an offset leaves zeros the pages do not hold. */
		exact = exact && (!put || off == 0);
		mfs_node_cache_wrote(c->fs, c->node, exact, &ks.mtime);
		if (!exact)
			mfs_notify_inval_inode(c->fs, c->node->ino);
		if (h) {
			pthread_mutex_lock(&h->lock);
			h->seen_id = ks.id;
			h->seen_ver = ks.ver;
			pthread_mutex_unlock(&h->lock);
		}
	} else if (r < 0 && put) {
		/* The old value stays; the kernel set the size to 0 at open. */
		mfs_notify_inval_inode(c->fs, c->node->ino);
	}
	mfs_handle_put(c->fs, h);
	return r;
}

/* An ftruncate of an open file that holds its truncation applies it: to 0,
 * or as a put of size zero bytes (nothing of the old value stays). */
int mfs_value_truncate(struct mfs_req *c, uint64_t size)
{
	const struct value_backend *be = backend(c);
	struct handle *h = mfs_handle_get(c->fs, c->fi);
	int r;
	if (take_held(c, h) && size > 0) {
		bool exact;
		ssize_t n =
		        be->write(c, c->pname, c->name, "", 0, (off_t)size, true, false, &exact);
		r = n < 0 ? (int)n : 0;
	} else {
		r = be->truncate(c, c->pname, c->name, size);
	}
	if (r == 0)
		saw_now(c, h);
	mfs_handle_put(c->fs, h);
	return r;
}

int mfs_value_set_mtime(struct mfs_req *c, const struct timespec *mtime)
{
	return backend(c)->set_mtime(c, c->pname, c->name, mtime);
}

/* The held truncation, applied at last: the open file wrote nothing. */
static int apply_held(struct mfs_req *c, struct handle *h)
{
	if (!take_held(c, h))
		return 0;
	int r = backend(c)->truncate(c, c->pname, c->name, 0);
	if (r == 0) {
		mfs_node_cache_set(c->fs, c->node, false, NULL);
		saw_now(c, h);
	} else {
		mfs_notify_inval_inode(c->fs, c->node->ino); /* the old size stands */
	}
	return r;
}

/* close(). A shell's redirection opens the file, dup2()s it to its place and
 * closes the first descriptor (a flush) before anything is written, then
 * closes the second after the command. So a flush applies a truncation
 * still held unless it is the open file's first and the closing process
 * may still hold a duplicate (procfd.c); then the next close applies it
 * (`: > k`), or the release. Its error is close()'s. A program that opens
 * with O_TRUNC and closes without writing sees the value empty at once. */
int mfs_value_flush(struct mfs_req *c, struct fuse_file_info *fi)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	int r = 0;
	if (h) {
		pthread_mutex_lock(&h->lock);
		bool first = h->flushes++ == 0;
		bool held = h->held;
		int acc = h->acc;
		pthread_mutex_unlock(&h->lock);
		if (held &&
		    (!first || !mfs_proc_may_dup(fuse_req_ctx(c->req)->pid, c->node->ino, acc)))
			r = apply_held(c, h);
	}
	mfs_handle_put(c->fs, h);
	return r;
}

/* The last close: a truncation still held is applied now; its error can
 * only be logged (and is in last_error, for the store). */
void mfs_value_release(struct mfs_req *c, struct fuse_file_info *fi)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	int r = mfs_req_live(c) ? apply_held(c, h) : (take_held(c, h), 0);
	if (r < 0)
		mu_log(MU_LOG_WARNING, "%s %s: the truncation of an O_TRUNC open, at its close: %s",
		       c->kind->what, c->name, strerror(-r));
	mfs_handle_put(c->fs, h);
}

unsigned mfs_value_poll(struct mfs_req *c, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	unsigned revents = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
	/* On the node's list before looking: a change from now on wakes it. */
	struct handle *h = mfs_handle_poll_open(c->fs, fi, c->node, ph);
	if (!h)
		return revents;
	struct mkv_stat ks;
	int r = value_kstat(c, &ks);
	pthread_mutex_lock(&h->lock);
	if (r < 0 && h->seen_id != 0) {
		revents |= POLLPRI | POLLERR; /* gone: told once */
		h->seen_id = 0;
	} else if (r == 0 && (ks.id != h->seen_id || ks.ver != h->seen_ver)) {
		revents |= POLLPRI | POLLERR;
		h->seen_id = ks.id;
		h->seen_ver = ks.ver;
	}
	pthread_mutex_unlock(&h->lock);
	mfs_handle_put(c->fs, h);
	return revents;
}
