/* SPDX-License-Identifier: MIT */
/* The root's family: the root itself, services/ (one folder per service)
 * and the events feed. registry/ and config/ are their families' own. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>

#include "events.h"
#include "kind.h"
#include "runtime.h"
#include "service.h"

/* ---- the root ---- */

static int root_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	int r = mfs_fixed_lookup(name, false, ret);
	/* cluster/ is there in cluster mode only. */
	if (r == 0 && ret->kind == N_CLUSTER && !mrt_clview(c->fs->rt))
		r = -ENOENT;
	return r;
}

static int root_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	return mfs_fixed_list(db, false);
}

const struct mfs_kind mfs_kind_root = {
        .what = "the root",
        .flags = MK_DIR,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_REGNAME,
        .lookup = root_lookup,
        .list = root_list,
};

/* ---- services/ ---- */

static int services_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mallafs_svc *s = mrt_service_get(c->fs->rt, name);
	if (!s)
		return -ENOENT;
	ret->kind = N_SVC;
	ret->id = msvc_id(s);
	ret->svc = s;
	return 0;
}

static int list_service(const char *name, uint64_t cookie, void *arg)
{
	return mfs_dir_add(arg, name, true, mfs_dir_id_off(cookie));
}

static int services_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	return mrt_service_list(c->fs->rt, mfs_dir_after(db), list_service, db);
}

static int services_mkdir(struct mfs_req *c, const char *name)
{
	struct mallafs_reason why = {{0}};
	int r = mrt_service_create(c->fs->rt, name, &why);
	if (r == 0) {
		/* Its creator owns it: its hooks and files act as them. */
		const struct fuse_ctx *ctx = fuse_req_ctx(c->req);
		struct mallafs_svc *s = mrt_service_get(c->fs->rt, name);
		if (s) {
			char path[MU_NAME_MAX + 16];
			msvc_set_owner(s, ctx->uid, ctx->gid);
			snprintf(path, sizeof(path), "services/%s", name);
			mfs_perm_owner_changed(c->fs, path);
		}
		msvc_unref(s);
	}
	return r;
}

static int services_rmdir(struct mfs_req *c, const char *name)
{
	return mrt_service_destroy(c->fs->rt, name);
}

const struct mfs_kind mfs_kind_services = {
        .what = "services/",
        .flags = MK_DIR,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_SVC,
        .lookup = services_lookup,
        .list = services_list,
        .mkdir = services_mkdir,
        .rmdir = services_rmdir,
};

/* ---- events ---- */

static int events_open(struct mfs_req *c, struct fuse_file_info *fi)
{
	struct handle *h = mfs_handle_new();
	if (!h)
		return -ENOMEM;
	/* Each open starts at the moment of opening. */
	h->cursor = mev_ring_next_seq(mrt_events(c->fs->rt));
	h->nonblock = (fi->flags & O_NONBLOCK) != 0;
	mfs_handle_register(c->fs, h, fi);
	fi->direct_io = 1;
	/* A stream: lseek gets ESPIPE, so a shell's read loop takes it byte
	 * by byte rather than reading ahead and seeking back (feed.c). */
	fi->nonseekable = 1;
	fi->noflush = 1;
	return 0;
}

static void events_read(struct mfs_req *c, struct fuse_file_info *fi, size_t size, off_t off)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	if (!h) {
		fuse_reply_err(c->req, EBADF);
		return;
	}
	/* The feed keeps the reference while the read is parked. */
	mfs_feed_read(c->fs, c->req, h, h->nonblock || (fi->flags & O_NONBLOCK), size);
}

/* "SEQ\n": this open file's reads go on after event SEQ. */
static ssize_t events_write(struct mfs_req *c, struct fuse_file_info *fi, const char *buf,
                            size_t size, off_t off)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	if (!h)
		return -EBADF;
	ssize_t r = mfs_feed_resume(c->fs, h, buf, size);
	mfs_handle_put(c->fs, h);
	return r;
}

static unsigned events_poll(struct mfs_req *c, struct fuse_file_info *fi,
                            struct fuse_pollhandle *ph)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	if (!h) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		return POLLIN | POLLRDNORM;
	}
	unsigned revents = mfs_feed_poll(c->fs, h, ph);
	mfs_handle_put(c->fs, h);
	return revents;
}

static void events_release(struct mfs_req *c, struct fuse_file_info *fi)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	if (h)
		mfs_feed_forget(c->fs, h);
	mfs_handle_put(c->fs, h);
}

const struct mfs_kind mfs_kind_events = {
        .what = "events",
        .flags = MK_CURSOR,
        .mode = 0600, /* every change of every service: the mount's owner's */
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .open = events_open,
        .read_reply = events_read,
        .write = events_write,
        .poll = events_poll,
        .release = events_release,
};
