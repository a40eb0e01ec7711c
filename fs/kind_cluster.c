/* SPDX-License-Identifier: MIT */
/* The cluster's family, in cluster mode only (the root lists cluster/ when
 * the runtime has a view, core/clview.h): cluster/, cluster/status,
 * cluster/nodes/, a node's folder and a service's file. All of it is
 * read-only, as the view's only writer is the cluster engine: the rows
 * have no entry operations and their files are MK_RDONLY, so req.c's
 * policy answers every change (create and mkdir EPERM, writes EACCES, rm
 * EPERM, rmdir EBUSY, mv EPERM), and chmod and chown are EPERM
 * (MK_FOREIGN, perm.c). Changes reach watchers and poll() through the
 * view's events and the notifier, as every other change does; the files
 * are rendered, so poll() on an open one reports POLLPRI|POLLERR once its
 * text differs from what the open file last read (rendered.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clview.h"
#include "kind.h"
#include "runtime.h"

static struct mclview *view(const struct mfs_req *c)
{
	return mrt_clview(c->fs->rt);
}

static void set_times(struct stat *st, const struct mkv_stat *ks)
{
	st->st_mtim = st->st_atim = ks->mtime;
	st->st_ctim = ks->ctime;
}

/* ---- cluster/ ---- */

static int cluster_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	if (strcmp(name, MCLVIEW_STATUS) == 0)
		ret->kind = N_CLSTATUS;
	else if (strcmp(name, MCLVIEW_NODES) == 0)
		ret->kind = N_CLNODES;
	else
		return -ENOENT;
	return 0;
}

static int cluster_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	return mfs_dir_add_next(db, MCLVIEW_STATUS, false) ||
	       mfs_dir_add_next(db, MCLVIEW_NODES, true);
}

/* A node of the family outside cluster mode (none can be made). */
static int cluster_stat(struct mfs_req *c, struct stat *st)
{
	return view(c) ? 0 : -ENOENT;
}

const struct mfs_kind mfs_kind_cluster = {
        .what = "cluster/",
        .flags = MK_DIR | MK_FOREIGN,
        .mode = 0555,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_CLSTATUS,
        .stat = cluster_stat,
        .lookup = cluster_lookup,
        .list = cluster_list,
};

/* ---- cluster/status ---- */

static int clstatus_stat(struct mfs_req *c, struct stat *st)
{
	char *text;
	size_t len;
	struct mkv_stat ks;
	struct mclview *v = view(c);
	int r = v ? mclview_status(v, &text, &len, &ks) : -ENOENT;
	if (r == 0) {
		free(text);
		set_times(st, &ks);
	}
	return r;
}

static int clstatus_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	struct mclview *v = view(c);
	return v ? mclview_status(v, ret, ret_len, NULL) : -ENOENT;
}

const struct mfs_kind mfs_kind_clstatus = {
        .what = "cluster/status",
        .flags = MK_RENDERED | MK_RDONLY | MK_FOREIGN,
        .entry_timeout = MFS_LONG_TIMEOUT,
        MFS_RENDERED_OPS,
        .stat = clstatus_stat,
        .render = clstatus_render,
};

/* ---- cluster/nodes/ ---- */

static int clnodes_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mkv_stat ks;
	struct mclview *v = view(c);
	int r = v ? mclview_node_stat(v, name, &ks) : -ENOENT;
	ret->kind = N_CLNODE;
	ret->id = r == 0 ? ks.id : 0;
	return r;
}

static int list_node(const char *name, const struct mkv_stat *st, void *arg)
{
	return mfs_dir_add(arg, name, true, mfs_dir_id_off(st->cookie));
}

static int clnodes_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	struct mclview *v = view(c);
	return v ? mclview_node_list(v, mfs_dir_after(db), list_node, db) : -ENOENT;
}

const struct mfs_kind mfs_kind_clnodes = {
        .what = "cluster/nodes/",
        .flags = MK_DIR | MK_FOREIGN,
        .mode = 0555,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_CLNODE,
        .stat = cluster_stat,
        .lookup = clnodes_lookup,
        .list = clnodes_list,
};

/* ---- cluster/nodes/NODE/ ---- */

static int clnode_stat(struct mfs_req *c, struct stat *st)
{
	struct mkv_stat ks;
	struct mclview *v = view(c);
	int r = v ? mclview_node_stat(v, c->name, &ks) : -ENOENT;
	if (r == 0)
		set_times(st, &ks);
	return r;
}

static int clnode_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mkv_stat ks;
	struct mclview *v = view(c);
	int r = v ? mclview_service_stat(v, c->name, name, &ks, NULL) : -ENOENT;
	ret->kind = N_CLSVC;
	ret->id = r == 0 ? ks.id : 0;
	return r;
}

static int list_svc(const char *name, const struct mkv_stat *st, void *arg)
{
	return mfs_dir_add(arg, name, false, mfs_dir_id_off(st->cookie));
}

static int clnode_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	struct mclview *v = view(c);
	return v ? mclview_service_list(v, c->name, mfs_dir_after(db), list_svc, db) : -ENOENT;
}

const struct mfs_kind mfs_kind_clnode = {
        .what = "a node of cluster/nodes/",
        .flags = MK_DIR | MK_FOREIGN,
        .mode = 0555,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .standin = N_CLSVC,
        .stat = clnode_stat,
        .lookup = clnode_lookup,
        .list = clnode_list,
};

/* ---- cluster/nodes/NODE/SERVICE ---- */

/* Its service's owner and group on NODE, and the service's mode without
 * write and execute bits: whoever may not read services/S/status there
 * may not read this (the kernel checks, default_permissions). */
static int clsvc_stat(struct mfs_req *c, struct stat *st)
{
	struct mkv_stat ks;
	struct mclview_owner own;
	struct mclview *v = view(c);
	int r = v ? mclview_service_stat(v, c->pname, c->name, &ks, &own) : -ENOENT;
	if (r == 0) {
		st->st_uid = own.uid;
		st->st_gid = own.gid;
		st->st_mode = (st->st_mode & S_IFMT) | (own.mode & 0444);
		set_times(st, &ks);
	}
	return r;
}

static int clsvc_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	struct mclview *v = view(c);
	return v ? mclview_service_get(v, c->pname, c->name, ret, ret_len, NULL) : -ENOENT;
}

const struct mfs_kind mfs_kind_clsvc = {
        .what = "a service of cluster/nodes/NODE/",
        .flags = MK_RENDERED | MK_RDONLY | MK_FOREIGN,
        .entry_timeout = MFS_LONG_TIMEOUT,
        MFS_RENDERED_OPS,
        .stat = clsvc_stat,
        .render = clsvc_render,
};
