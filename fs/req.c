/* SPDX-License-Identifier: MIT */
/* What every request shares: the prologue that sets up a struct mfs_req
 * and the epilogue that drops it, the attributes every kind starts from,
 * entry lookups and replies, folder listings, and the one place that says
 * which errno an operation gets when the node's kind refuses or lacks it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "service.h"

/* The names, and (want_svc) the node's service, in one hold of the lock. */
static void req_setup(struct mfs_req *c, struct mfs *fs, fuse_req_t req, struct mnode *n,
                      bool want_svc)
{
	c->req = req;
	c->fs = fs;
	c->node = n;
	c->kind = mfs_kind(n->kind);
	c->svc = NULL;
	mfs_node_names(fs, n, c->name, c->pname, sizeof(c->name), want_svc ? &c->svc : NULL);
}

bool mfs_req_live(const struct mfs_req *c)
{
	return !(c->kind->flags & MK_IN_SVC) || (c->svc && msvc_alive(c->svc));
}

int mfs_req_start(struct mfs_req *c, fuse_req_t req, uint64_t ino, bool live)
{
	struct mfs *fs = fuse_req_userdata(req);
	struct mnode *n = mfs_node_get(fs, ino);
	memset(c, 0, sizeof(*c));
	c->req = req;
	c->fs = fs;
	if (!n)
		return -ENOENT;
	bool in_svc = mfs_kind(n->kind)->flags & MK_IN_SVC;
	req_setup(c, fs, req, n, in_svc);
	if (live && !mfs_req_live(c))
		return -ENOENT;
	return 0;
}

void mfs_req_child(const struct mfs_req *c, struct mnode *n, struct mallafs_svc *svc,
                   struct mfs_req *ret)
{
	memset(ret, 0, sizeof(*ret));
	mfs_node_ref(c->fs, n);
	req_setup(ret, c->fs, c->req, n, false);
	if (ret->kind->flags & MK_IN_SVC) {
		svc = svc ? svc : c->svc;
		ret->svc = svc ? msvc_ref(svc) : NULL;
	}
}

void mfs_req_finish(struct mfs_req *c)
{
	msvc_unref(c->svc);
	mfs_node_put(c->fs, c->node);
	c->svc = NULL;
	c->node = NULL;
}

/* ---- what an operation gets when the kind refuses or lacks it ---- */

/* Whether op changes something: what a read-only mount refuses. */
static bool op_changes(enum mfs_op op, int acc)
{
	switch (op) {
	case MFS_OP_LOOKUP:
	case MFS_OP_LIST:
	case MFS_OP_READ:
		return false;
	case MFS_OP_OPEN:
		return (acc & O_ACCMODE) != O_RDONLY || (acc & O_TRUNC);
	default:
		return true;
	}
}

/* The policy, for each operation, in the order it is checked:
 *  - on a read-only mount (-o ro), whatever would change something: EROFS,
 *    before anything else (as the kernel's own read-only check comes
 *    first); a MK_CURSOR file's open and write change nothing (a reader
 *    resuming the events feed). The notifier's echoes never get here
 *    (echo.c);
 *  - an entry operation on a file: ENOTDIR; a file operation on a folder:
 *    EISDIR (lookup and listing of a folder without entries: ENOENT, empty);
 *  - a write, a truncation or an open for writing of a MK_RDONLY file: EACCES;
 *  - mknod, symlink and link: EPERM (folders and regular files only);
 *  - a kind that lacks the operation: mkdir and create EPERM (no subfolders
 *    in store/, no files in plugins/), write EACCES, truncate EPERM, read
 *    EBADF, set_mtime and poll do nothing (the file keeps its times, and is
 *    always ready), rename EPERM, or EXDEV between two folders that rename
 *    with different backends (store and config/APP, two services);
 *  - rmdir and unlink of an entry the folder cannot remove: EBUSY for a
 *    fixed folder (store/, plugins/, ...), ENOTDIR for rmdir of a file,
 *    EISDIR for unlink of a folder, EPERM for unlink of a fixed file
 *    (status, chain, ...); ENOENT when there is no such entry. */
int mfs_refuse(struct mfs_req *c, enum mfs_op op, const char *name, int acc)
{
	const struct mfs_kind *k = c->kind;
	bool dir = k->flags & MK_DIR;

	if (c->fs->rdonly && op_changes(op, acc) &&
	    !((k->flags & MK_CURSOR) && (op == MFS_OP_OPEN || op == MFS_OP_WRITE)))
		return -EROFS;
	switch (op) {
	case MFS_OP_LOOKUP:
	case MFS_OP_LIST:
		return dir ? 0 : -ENOTDIR;
	case MFS_OP_MKDIR:
		return !dir ? -ENOTDIR : k->mkdir ? 0 : -EPERM;
	case MFS_OP_CREATE:
		return !dir ? -ENOTDIR : k->create ? 0 : -EPERM;
	case MFS_OP_RMDIR:
	case MFS_OP_UNLINK: {
		if (!dir)
			return -ENOTDIR;
		if (op == MFS_OP_RMDIR ? k->rmdir != NULL : k->unlink != NULL)
			return 0;
		struct mfs_child ch;
		int r = mfs_lookup(c, name, &ch);
		if (r < 0)
			return r;
		msvc_unref(ch.svc);
		bool cdir = mfs_kind(ch.kind)->flags & MK_DIR;
		if (op == MFS_OP_RMDIR)
			return cdir ? -EBUSY : -ENOTDIR;
		return cdir ? -EISDIR : -EPERM;
	}
	case MFS_OP_RENAME:
		return dir && k->rename ? 0 : -EPERM;
	case MFS_OP_OPEN:
		if (dir)
			return -EISDIR;
		return (k->flags & MK_RDONLY) && (acc & O_ACCMODE) != O_RDONLY ? -EACCES : 0;
	case MFS_OP_READ:
		if (dir)
			return -EISDIR;
		return k->read || k->read_reply ? 0 : -EBADF;
	case MFS_OP_WRITE:
	case MFS_OP_TRUNCATE:
		if (dir)
			return -EISDIR;
		if (k->flags & MK_RDONLY)
			return -EACCES;
		if (op == MFS_OP_WRITE)
			return k->write ? 0 : -EACCES;
		return k->truncate ? 0 : -EPERM;
	case MFS_OP_SETATTR:
		return 0; /* perm.c and the kind decide */
	case MFS_OP_MKNOD:
		return -EPERM;
	}
	return -EINVAL;
}

int mfs_refuse_rename(struct mfs_req *from, struct mfs_req *to)
{
	int r = mfs_refuse(from, MFS_OP_RENAME, NULL, 0);
	if (r == 0)
		r = mfs_refuse(to, MFS_OP_RENAME, NULL, 0);
	if (r == 0 &&
	    (from->kind->rename != to->kind->rename || from->kind->data != to->kind->data))
		r = -EXDEV; /* mv copies across backends */
	return r;
}

/* ---- attributes ---- */

int mfs_stat(struct mfs_req *c, struct stat *st)
{
	const struct mfs_kind *k = c->kind;
	struct mfs *fs = c->fs;
	int r = 0;

	memset(st, 0, sizeof(*st));
	st->st_ino = c->node->ino;
	st->st_blksize = 4096;
	st->st_mtim = st->st_atim = st->st_ctim = fs->born;
	st->st_mode = k->flags & MK_DIR ? S_IFDIR : S_IFREG;
	st->st_nlink = k->flags & MK_DIR ? 2 : 1;
	mfs_perm_rules(c, st);
	if (!mfs_req_live(c))
		r = -ENOENT;
	if (r == 0 && k->stat)
		r = k->stat(c, st);
	if (r == 0)
		mfs_perm_own(c, st);
	if (r == 0 && (k->flags & MK_RENDERED)) {
		char *text = NULL;
		size_t len = 0;
		r = k->render(c, &text, &len);
		if (r == 0)
			st->st_size = (off_t)len;
		free(text);
	}
	/* A control file made by create() exists, empty, until its first write
	 * makes it real or fails and leaves nothing behind. */
	if (r == -ENOENT && (k->flags & MK_PENDING) && mfs_node_pending(fs, c->node)) {
		st->st_size = 0;
		r = 0;
	}
	st->st_blocks = (st->st_size + 511) / 512;
	return r;
}

double mfs_attr_timeout(const struct mfs_req *c)
{
	return c->attr_uncached ? 0 : c->kind->attr_timeout;
}

/* ---- entries ---- */

int mfs_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	memset(ret, 0, sizeof(*ret));
	int r = mfs_refuse(c, MFS_OP_LOOKUP, name, 0);
	if (r == 0)
		r = c->kind->lookup ? c->kind->lookup(c, name, ret) : -ENOENT;
	if (r < 0) {
		msvc_unref(ret->svc);
		ret->svc = NULL;
		/* Names core refuses outright cannot exist. */
		return r == -EINVAL ? -ENOENT : r;
	}
	return 0;
}

int mfs_entry_make(struct mfs_req *c, const char *name, const struct mfs_child *child, bool pending,
                   struct fuse_entry_param *e, uint64_t *ret_ino)
{
	struct mfs_req cc;
	struct mnode *n = mfs_node_child(c->fs, c->node, name, child->kind, child->id);
	if (!n)
		return -ENOMEM;
	if (child->svc)
		mfs_node_set_svc(c->fs, n, child->svc);
	if (pending)
		mfs_node_set_pending(c->fs, n);
	mfs_req_child(c, n, child->svc, &cc);
	mfs_node_put(c->fs, n);

	memset(e, 0, sizeof(*e));
	int r = mfs_stat(&cc, &e->attr);
	if (r == 0) {
		e->ino = n->ino;
		e->generation = 0;
		e->entry_timeout = cc.kind->entry_timeout;
		e->attr_timeout = mfs_attr_timeout(&cc);
		mfs_node_lookup_inc(c->fs, n);
		*ret_ino = n->ino;
	}
	mfs_req_finish(&cc);
	return r;
}

int mfs_reply_entry(struct mfs_req *c, const char *name, const struct mfs_child *child,
                    struct fuse_file_info *create_fi, bool pending)
{
	struct fuse_entry_param e;
	uint64_t ino;
	int r = mfs_entry_make(c, name, child, pending, &e, &ino);
	if (r < 0)
		return r;
	int sent =
	        create_fi ? fuse_reply_create(c->req, &e, create_fi) : fuse_reply_entry(c->req, &e);
	if (sent != 0) {
		mfs_node_forget(c->fs, ino, 1); /* the kernel never got it */
		if (create_fi)
			mfs_handle_release(c->fs, create_fi->fh);
	}
	return 0;
}

int mfs_reply_found(struct mfs_req *c, const char *name)
{
	struct mfs_child ch;
	int r = mfs_lookup(c, name, &ch);
	if (r == 0)
		r = mfs_reply_entry(c, name, &ch, NULL, false);
	msvc_unref(ch.svc);
	return r;
}

void mfs_standin_stat(struct mfs *fs, struct mnode *n, struct stat *st)
{
	bool dir = mfs_kind(n->kind)->flags & MK_DIR;
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = dir ? S_IFDIR | 0755 : S_IFREG | 0644;
	st->st_nlink = dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
}

int mfs_reply_standin(struct mfs_req *c, const char *name, enum mnode_kind kind)
{
	struct mnode *n = mfs_node_child(c->fs, c->node, name, kind, 0);
	if (!n)
		return -ENOMEM;
	struct fuse_entry_param e = {0};
	e.ino = n->ino;
	mfs_standin_stat(c->fs, n, &e.attr);
	mfs_node_lookup_inc(c->fs, n);
	if (fuse_reply_entry(c->req, &e) != 0)
		mfs_node_forget(c->fs, n->ino, 1);
	mfs_node_put(c->fs, n);
	return 0;
}

/* ---- listings ---- */

void mfs_reply_dir(struct mfs_req *c, size_t size, off_t off, bool plus)
{
	struct mfs_dirbuf db;
	int r = mfs_refuse(c, MFS_OP_LIST, NULL, 0);
	if (r == 0)
		r = mfs_dirbuf_init(&db, c, size, off, plus);
	if (r < 0) {
		fuse_reply_err(c->req, -r);
		return;
	}
	if ((off < 1 && mfs_dir_add(&db, ".", true, 1)) ||
	    (off < 2 && mfs_dir_add(&db, "..", true, 2)))
		goto done;
	if (c->kind->list)
		r = c->kind->list(c, &db);
	if (r > 0)
		r = 0; /* a callback stopped the listing: the buffer is full */
done:
	if (r == 0)
		r = mfs_dirbuf_finish(&db);
	if (r < 0)
		fuse_reply_err(c->req, -r);
	else if (fuse_reply_buf(c->req, db.buf, db.len) != 0)
		mfs_dirbuf_unsent(&db); /* the kernel never got those entries */
	mfs_dirbuf_free(&db);
}
