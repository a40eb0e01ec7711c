/* SPDX-License-Identifier: MIT */
/* The notifier's requests, answered in front of the real operations (as
 * sshfs's cache wraps its operations table): the notifier makes inotify
 * see a change the daemon already made by doing the same operation on the
 * mount, and these answer it without changing anything, so nothing feeds
 * back into core. Any other request goes straight to the next table.
 *
 * What each answers to its echo (notify.c sets which echo is under way):
 *  - lookup: ENOENT to a create's (the kernel must believe it creates the
 *    entry); a stand-in to a delete's when the entry is gone already;
 *  - mkdir, create: the entry that exists; unlink, rmdir: success, and the
 *    name is forgotten;
 *  - open: a plain open that caches nothing and waits for no flush;
 *    write: every byte taken; setattr: the attributes as they are. */
#include <errno.h>

#include "kind.h"
#include "service.h"

static const struct fuse_lowlevel_ops *next;

static bool is_echo(fuse_req_t req)
{
	return mfs_req_is_echo(fuse_req_userdata(req), req);
}

static void echo_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!is_echo(req)) {
		next->lookup(req, parent, name);
		return;
	}
	struct mfs_req c;
	struct mfs_child ch;
	int r = mfs_req_start(&c, req, parent, false);
	enum mfs_echo echo = r == 0 ? mfs_echo_for(c.fs, parent, name) : MFS_ECHO_NONE;
	if (r < 0 || echo == MFS_ECHO_CREATE) {
		fuse_reply_err(req, ENOENT);
		goto out;
	}
	r = mfs_req_live(&c) ? mfs_lookup(&c, name, &ch) : -ENOENT;
	if (r == 0) {
		r = mfs_reply_entry(&c, name, &ch, NULL, false);
		msvc_unref(ch.svc);
		if (r < 0)
			fuse_reply_err(req, -r);
		goto out;
	}
	if (echo == MFS_ECHO_DELETE) {
		r = mfs_reply_standin(&c, name, c.kind->standin);
	} else if (mfs_echo_current(c.fs) == MFS_ECHO_DELETE) {
		/* Deleting for watchers, the notifier walks folders that went
		 * too (a section's keys, then the section): the kernel's own
		 * nodes answer. */
		struct mnode *known = mfs_node_find(c.fs, c.node, name);
		r = known ? mfs_reply_standin(&c, name, known->kind) : r;
		mfs_node_put(c.fs, known);
	}
	if (r < 0)
		fuse_reply_err(req, -r);
out:
	mfs_req_finish(&c);
}

/* The kernel asks for the attributes of the folder an echo removes from
 * (default_permissions checks it): one that is gone answers as a stand-in,
 * so the echo goes on. */
static void echo_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!is_echo(req)) {
		next->getattr(req, ino, fi);
		return;
	}
	struct mfs_req c;
	struct stat st;
	int r = mfs_req_start(&c, req, ino, false);
	if (r == 0)
		r = mfs_req_live(&c) ? mfs_stat(&c, &st) : -ENOENT;
	if (r == -ENOENT && c.node) {
		mfs_standin_stat(c.fs, c.node, &st);
		fuse_reply_attr(req, &st, 0);
	} else if (r == 0) {
		fuse_reply_attr(req, &st, mfs_attr_timeout(&c));
	} else {
		fuse_reply_err(req, -r);
	}
	mfs_req_finish(&c);
}

/* The attributes as they are: what getattr answers. */
static void echo_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                         struct fuse_file_info *fi)
{
	if (!is_echo(req)) {
		next->setattr(req, ino, attr, to_set, fi);
		return;
	}
	next->getattr(req, ino, fi);
}

static void echo_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (!is_echo(req)) {
		next->mkdir(req, parent, name, mode);
		return;
	}
	struct mfs_req c;
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = mfs_reply_found(&c, name);
	if (r < 0)
		fuse_reply_err(req, -r);
	mfs_req_finish(&c);
}

/* unlink and rmdir: the entry is gone already. */
static void echo_remove(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	if (!is_echo(req)) {
		(dir ? next->rmdir : next->unlink)(req, parent, name);
		return;
	}
	struct mfs_req c;
	int r = mfs_req_start(&c, req, parent, false);
	if (c.node)
		mfs_node_unhash(c.fs, c.node, name);
	fuse_reply_err(req, c.node ? 0 : -r);
	mfs_req_finish(&c);
}

static void echo_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	echo_remove(req, parent, name, false);
}

static void echo_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	echo_remove(req, parent, name, true);
}

/* An echo open goes straight through, touching no cache, and its close
 * waits for nothing (no FLUSH, no handle). */
static void plain_open(struct fuse_file_info *fi)
{
	fi->direct_io = 1;
	fi->noflush = 1;
	fi->fh = 0;
}

static void echo_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                        struct fuse_file_info *fi)
{
	if (!is_echo(req)) {
		next->create(req, parent, name, mode, fi);
		return;
	}
	struct mfs_req c;
	struct mfs_child ch = {0};
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = mfs_lookup(&c, name, &ch);
	if (r == 0 && (mfs_kind(ch.kind)->flags & MK_DIR))
		r = -EISDIR;
	if (r == 0) {
		plain_open(fi);
		r = mfs_reply_entry(&c, name, &ch, fi, false);
	}
	msvc_unref(ch.svc);
	if (r < 0)
		fuse_reply_err(req, -r);
	mfs_req_finish(&c);
}

static void echo_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!is_echo(req)) {
		next->open(req, ino, fi);
		return;
	}
	struct mfs_req c;
	int r = mfs_req_start(&c, req, ino, false);
	if (r == 0) {
		plain_open(fi);
		fuse_reply_open(req, fi);
	} else {
		fuse_reply_err(req, -r);
	}
	mfs_req_finish(&c);
}

static void echo_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	if (!is_echo(req)) {
		next->write(req, ino, buf, size, off, fi);
		return;
	}
	fuse_reply_write(req, size); /* the echo of a change already made */
}

static struct fuse_lowlevel_ops wrapped;

const struct fuse_lowlevel_ops *mfs_echo_wrap(const struct fuse_lowlevel_ops *real)
{
	next = real;
	wrapped = *real;
	wrapped.lookup = echo_lookup;
	wrapped.getattr = echo_getattr;
	wrapped.setattr = echo_setattr;
	wrapped.mkdir = echo_mkdir;
	wrapped.rmdir = echo_rmdir;
	wrapped.unlink = echo_unlink;
	wrapped.create = echo_create;
	wrapped.open = echo_open;
	wrapped.write = echo_write;
	return &wrapped;
}
