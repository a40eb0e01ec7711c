/* SPDX-License-Identifier: MIT */
/* The FUSE low-level operations: entry points that only dispatch. Each
 * sets up its request (req.c), asks the policy whether the node's kind
 * does the operation, calls the kind's worker (kind.h), which returns
 * -errno or a result, and replies once. The notifier's own requests never
 * get here: echo.c answers them in front of this table.
 *
 * Caching: the skeleton, services and values (store keys, config/APP/KEY)
 * get long entry and attribute timeouts and keep their page cache across
 * opens while the value is unchanged; anything that changes them behind the
 * kernel's back is invalidated by the notifier. Rendered files are direct
 * I/O with zero attribute timeouts: every read renders fresh and every stat
 * tells the current size. Entries that can vanish out of band (config keys
 * and sections, plugins, registry entries) have zero entry timeouts. Failed
 * lookups are not cached (no negative entries). The timeouts are the kinds'
 * rows. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "kind.h"
#include "service.h"

/* The epilogue every entry point ends with. */
static void done(struct mfs_req *c)
{
	mfs_req_finish(c);
	mfs_req_end();
}

static void reply_status(struct mfs_req *c, int r)
{
	fuse_reply_err(c->req, r < 0 ? -r : 0);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_req c;
	struct mfs_child ch;
	mfs_req_begin(0, parent, name, 0, NULL);
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = mfs_lookup(&c, name, &ch);
	if (r == 0) {
		r = mfs_reply_entry(&c, name, &ch, NULL, false);
		msvc_unref(ch.svc);
	} else if (c.node && (c.kind->flags & MK_DIR)) {
		/* A control file made by create() and not written yet stays
		 * visible to its creator's lookups. */
		struct mnode *n = mfs_node_find(c.fs, c.node, name);
		if (n && mfs_node_pending(c.fs, n)) {
			struct mfs_child pend = {.kind = n->kind};
			r = mfs_reply_entry(&c, name, &pend, NULL, true);
		}
		mfs_node_put(c.fs, n);
	}
	if (r < 0)
		reply_status(&c, r);
	done(&c);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	mfs_node_forget(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mfs *fs = fuse_req_userdata(req);
	for (size_t i = 0; i < count; i++)
		mfs_node_forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_req c;
	struct stat st;
	mfs_req_begin(ino, 0, NULL, 0, NULL);
	int r = mfs_req_start(&c, req, ino, true);
	c.fi = fi; /* FUSE_GETATTR_FH: that open file's view */
	if (r == 0)
		r = mfs_stat(&c, &st);
	if (r == 0)
		fuse_reply_attr(req, &st, mfs_attr_timeout(&c));
	else
		reply_status(&c, r);
	done(&c);
}

/* Owners and modes are perm.c's; a size is a truncation, times are a value's. */
static int do_setattr(struct mfs_req *c, struct stat *attr, int to_set, struct stat *st)
{
	int r = mfs_stat(c, st);
	if (r == 0)
		r = mfs_refuse(c, MFS_OP_SETATTR, NULL, 0);
	if (r < 0)
		return r;
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		r = mfs_perm_setattr(c, attr, to_set, st);
		if (r < 0)
			return r;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		r = mfs_refuse(c, MFS_OP_TRUNCATE, NULL, 0);
		if (r == 0)
			r = c->kind->truncate(c, (uint64_t)attr->st_size);
		if (r < 0)
			return r;
	}
	if ((to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) && c->kind->set_mtime) {
		const struct timespec *m =
		        (to_set & FUSE_SET_ATTR_MTIME_NOW) ? NULL : &attr->st_mtim;
		r = c->kind->set_mtime(c, m);
		if (r < 0)
			return r;
	}
	return mfs_stat(c, st);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct mfs_req c;
	struct stat st;
	int r = mfs_req_start(&c, req, ino, true);
	mfs_req_begin(ino, 0, c.name, 0, NULL);
	c.fi = fi; /* ftruncate: the open file's */
	if (r == 0)
		r = do_setattr(&c, attr, to_set, &st);
	if (r == 0)
		fuse_reply_attr(req, &st, mfs_attr_timeout(&c));
	else
		reply_status(&c, r);
	done(&c);
}

/* ---- folders ---- */

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mfs_req c;
	mfs_req_begin(0, parent, name, 0, NULL);
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = mfs_refuse(&c, MFS_OP_MKDIR, name, 0);
	if (r == 0)
		r = c.kind->mkdir(&c, name);
	if (r == 0)
		r = mfs_reply_found(&c, name);
	if (r < 0)
		reply_status(&c, r);
	done(&c);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_req c;
	mfs_req_begin(0, parent, name, 0, NULL);
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = mfs_refuse(&c, MFS_OP_RMDIR, name, 0);
	if (r == 0)
		r = c.kind->rmdir(&c, name);
	if (r == 0)
		mfs_node_unhash(c.fs, c.node, name);
	reply_status(&c, r);
	done(&c);
}

static void reply_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct mfs_req c;
	mfs_req_begin(ino, 0, NULL, 0, NULL);
	int r = mfs_req_start(&c, req, ino, true);
	if (r == 0)
		mfs_reply_dir(&c, size, off, plus);
	else
		reply_status(&c, r);
	done(&c);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	reply_dir(req, ino, size, off, false);
}

/* ls -l, find -size: the attributes come with the names, so the kernel
 * makes no lookup per entry; each entry given is a lookup it will forget. */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	reply_dir(req, ino, size, off, true);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_req c;
	mfs_req_begin(0, parent, name, 0, NULL);
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = mfs_refuse(&c, MFS_OP_UNLINK, name, 0);
	if (r == 0)
		r = c.kind->unlink(&c, name);
	if (r == -EINVAL)
		r = -ENOENT; /* a name that cannot exist */
	if (r == 0)
		mfs_node_unhash(c.fs, c.node, name);
	reply_status(&c, r);
	done(&c);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	struct mfs_req c, to;
	uint64_t new_id = 0;
	mfs_req_begin(0, parent, name, newparent, newname);
	int r = mfs_req_start(&c, req, parent, true);
	int r2 = mfs_req_start(&to, req, newparent, true);
	if (r == 0)
		r = r2;
	if (r == 0 && (flags & ~RENAME_NOREPLACE))
		r = -EINVAL; /* no RENAME_EXCHANGE or WHITEOUT for values */
	if (r == 0)
		r = mfs_refuse_rename(&c, &to);
	if (r == 0)
		r = c.kind->rename(&c, name, &to, newname, flags, &new_id);
	if (r == -EINVAL && !(flags & ~RENAME_NOREPLACE))
		r = -ENOENT;
	if (r == 0)
		mfs_node_move(c.fs, c.node, name, to.node, newname, new_id);
	reply_status(&c, r);
	mfs_req_finish(&to);
	done(&c);
}

/* ---- files ---- */

static int do_open(struct mfs_req *c, struct fuse_file_info *fi)
{
	int r = mfs_refuse(c, MFS_OP_OPEN, NULL, fi->flags & (O_ACCMODE | O_TRUNC));
	if (r == 0 && c->kind->open)
		r = c->kind->open(c, fi);
	return r;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_req c;
	int r = mfs_req_start(&c, req, ino, true);
	mfs_req_begin(ino, 0, c.name, 0, NULL);
	if (r == 0)
		r = do_open(&c, fi);
	if (r < 0)
		reply_status(&c, r);
	else if (fuse_reply_open(req, fi) != 0)
		mfs_handle_release(c.fs, fi->fh);
	done(&c);
}

static int do_create(struct mfs_req *c, const char *name, struct fuse_file_info *fi)
{
	enum mnode_kind kind;
	bool pending = false;
	int r = mfs_refuse(c, MFS_OP_CREATE, name, 0);
	if (r == 0)
		r = c->kind->create(c, name, &kind, &pending);
	bool existed = r == -EEXIST;
	if (existed && !(fi->flags & O_EXCL))
		r = 0; /* lost a race with another creator: open theirs, as open() would */
	if (r < 0)
		return r;

	struct mfs_child ch;
	if (mfs_lookup(c, name, &ch) == 0) {
		pending = false;
		msvc_unref(ch.svc);
	} else if (pending) {
		ch = (struct mfs_child){.kind = kind};
	} else {
		return -ENOENT;
	}
	struct mnode *n = mfs_node_child(c->fs, c->node, name, ch.kind, ch.id);
	if (!n)
		return -ENOMEM;
	if (pending)
		mfs_node_set_pending(c->fs, n);
	struct mfs_req cc;
	mfs_req_child(c, n, NULL, &cc);
	mfs_node_put(c->fs, n);
	if (!existed)
		fi->flags &= ~O_TRUNC; /* just made: nothing to truncate */
	r = do_open(&cc, fi);
	mfs_req_finish(&cc);
	if (r == 0) {
		ch.svc = NULL;
		r = mfs_reply_entry(c, name, &ch, fi, pending);
		if (r < 0)
			mfs_handle_release(c->fs, fi->fh);
	}
	return r;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	struct mfs_req c;
	mfs_req_begin(0, parent, name, 0, NULL);
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = do_create(&c, name, fi);
	if (r < 0)
		reply_status(&c, r);
	done(&c);
}

/* The tree holds folders and regular files only: no symlink, device, FIFO
 * or socket, and no second name for a node (a key is its name). Regular
 * files are made by open(O_CREAT), which comes as create. */
static void refuse_node(fuse_req_t req, fuse_ino_t parent)
{
	struct mfs_req c;
	int r = mfs_req_start(&c, req, parent, true);
	if (r == 0)
		r = mfs_refuse(&c, MFS_OP_MKNOD, NULL, 0);
	reply_status(&c, r);
	mfs_req_finish(&c);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	refuse_node(req, parent);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	refuse_node(req, parent);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	refuse_node(req, newparent);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct mfs_req c;
	char *buf = NULL;
	ssize_t r = mfs_req_start(&c, req, ino, true);
	mfs_req_begin(ino, 0, c.name, 0, NULL);
	if (r == 0)
		r = mfs_refuse(&c, MFS_OP_READ, NULL, 0);
	if (r == 0 && c.kind->read_reply) {
		c.kind->read_reply(&c, fi, size, off);
		done(&c);
		return;
	}
	if (r == 0)
		r = (buf = malloc(size ? size : 1)) ? 0 : -ENOMEM;
	if (r == 0)
		r = c.kind->read(&c, fi, buf, size, off);
	if (r >= 0)
		fuse_reply_buf(req, buf, (size_t)r);
	else
		reply_status(&c, (int)r);
	free(buf);
	done(&c);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct mfs_req c;
	ssize_t r = mfs_req_start(&c, req, ino, true);
	mfs_req_begin(ino, 0, c.name, 0, NULL);
	if (r == 0)
		r = mfs_refuse(&c, MFS_OP_WRITE, NULL, 0);
	if (r == 0)
		r = c.kind->write(&c, fi, buf, size, off);
	if (r >= 0)
		fuse_reply_write(req, (size_t)r);
	else
		reply_status(&c, (int)r);
	done(&c);
}

/* close(): what the open file held back is applied now, and an error
 * found is close()'s. Sent only for opens that asked for it (noflush off). */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_req c;
	int r = mfs_req_start(&c, req, ino, false);
	mfs_req_begin(ino, 0, c.name, 0, NULL);
	if (r == 0)
		r = c.kind->flush ? c.kind->flush(&c, fi) : 0;
	else
		r = 0; /* gone: nothing is left to apply */
	reply_status(&c, r);
	done(&c);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_req c;
	/* Whatever became of the node or its service, the open file goes. */
	if (mfs_req_start(&c, req, ino, false) == 0 && c.kind->release)
		c.kind->release(&c, fi);
	mfs_handle_release(c.fs, fi->fh);
	fuse_reply_err(req, 0);
	mfs_req_finish(&c);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph)
{
	struct mfs_req c;
	unsigned revents = POLLIN | POLLRDNORM;
	if (mfs_req_start(&c, req, ino, false) == 0 && c.kind->poll) {
		revents = c.kind->poll(&c, fi, ph);
		ph = NULL;
	}
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, revents);
	mfs_req_finish(&c);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {0};
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = MU_NAME_MAX;
	sv.f_files = 1 << 30;
	sv.f_ffree = 1 << 30;
	sv.f_favail = 1 << 30;
	fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with open: a rendered file can then ignore it, and
	 * a value holds it back until its first write or close (value_file.c). */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* readdirplus when the kernel finds it pays (its adaptive mode): for
	 * a folder's first reply, and for the next while the entries it gave
	 * are being used (ls -l stats each entry as it reads); plain readdir
	 * otherwise (ls, ls -f). find reads a whole folder before it stats, so
	 * only its first reply has the attributes. Always readdirplus would
	 * make the kernel build an inode for every entry of every listing:
	 * ls -f of a large store ten times slower. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
		conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops ops = {
        .init = op_init,
        .lookup = op_lookup,
        .forget = op_forget,
        .forget_multi = op_forget_multi,
        .getattr = op_getattr,
        .setattr = op_setattr,
        .mkdir = op_mkdir,
        .rmdir = op_rmdir,
        .unlink = op_unlink,
        .rename = op_rename,
        .create = op_create,
        .mknod = op_mknod,
        .symlink = op_symlink,
        .link = op_link,
        .open = op_open,
        .read = op_read,
        .write = op_write,
        .flush = op_flush,
        .release = op_release,
        .readdir = op_readdir,
        .readdirplus = op_readdirplus,
        .statfs = op_statfs,
        .poll = op_poll,
};

const struct fuse_lowlevel_ops *mfs_ops(void)
{
	return &ops;
}
