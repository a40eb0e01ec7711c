/* SPDX-License-Identifier: MIT */
/* Values: the keys of a service's store (services/NAME/store/KEY) and of
 * the node-wide configuration (config/APP/KEY). Both are byte-exact regular
 * files, served from the kernel's page cache while unchanged, over one
 * interface with two backends: the store (through the service's plugin
 * chain) and the node config. This file holds their folders too: store/,
 * config/ and config/APP/.
 *
 * A key's folder is named by its request: for the folder's own operations
 * c is the folder (app: c->name), for a key's operations c is the key (its
 * app: c->pname). The store's folder is the service's, c->svc. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "value.h"
#include "nodecfg.h"
#include "runtime.h"
#include "service.h"

static const struct value_backend *backend(const struct mfs_req *c)
{
	return c->kind->data;
}

/* ---- the store's backend ---- */

static int store_stat(struct mfs_req *c, const char *app, const char *key, struct mkv_stat *ret)
{
	return msvc_store_stat(c->svc, key, ret);
}

static ssize_t store_read(struct mfs_req *c, const char *app, const char *key, char *buf,
                          size_t size, off_t off)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_GET,
	                              .key = key,
	                              .buf = buf,
	                              .size = size,
	                              .offset = (uint64_t)off,
	                              .flags = MALLAFS_OPF_PAGE};
	return (ssize_t)msvc_store_op(c->svc, &op);
}

/* A plugin may change what is written, or where. */
static ssize_t store_write(struct mfs_req *c, const char *app, const char *key, const char *buf,
                           size_t size, off_t off, bool replace, bool append, bool *exact)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_WRITE,
	                              .key = key,
	                              .data = buf,
	                              .size = size,
	                              .offset = (uint64_t)off,
	                              .flags = replace  ? MALLAFS_OPF_REPLACE
	                                       : append ? MALLAFS_OPF_APPEND
	                                                : 0};
	ssize_t r = (ssize_t)msvc_store_op(c->svc, &op);
	*exact = !append && op.data == buf && op.size == size && op.offset == (uint64_t)off &&
	         (r < 0 || (size_t)r == size);
	return r < 0 ? r : (ssize_t)size;
}

static int store_truncate(struct mfs_req *c, const char *app, const char *key, uint64_t size)
{
	return msvc_store_truncate(c->svc, key, size);
}

static int store_probe_truncate(struct mfs_req *c, const char *app, const char *key)
{
	struct mallafs_store_op op = {
	        .code = MALLAFS_OP_TRUNCATE, .key = key, .flags = MALLAFS_OPF_PROBE};
	return (int)msvc_store_op(c->svc, &op);
}

static int store_set_mtime(struct mfs_req *c, const char *app, const char *key,
                           const struct timespec *mtime)
{
	return msvc_store_set_mtime(c->svc, key, mtime);
}

static int store_create(struct mfs_req *c, const char *app, const char *key)
{
	return msvc_store_create(c->svc, key);
}

static int store_unlink(struct mfs_req *c, const char *app, const char *key)
{
	return msvc_store_delete(c->svc, key);
}

static int store_rename(struct mfs_req *c, const char *app, const char *key, struct mfs_req *to,
                        const char *to_app, const char *to_key)
{
	return msvc_store_rename(c->svc, key, to_key);
}

static int store_list(struct mfs_req *c, const char *app, uint64_t after,
                      int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg)
{
	return msvc_store_list(c->svc, after, fn, arg);
}

static int store_get(struct mfs_req *c, const char *app, const char *key)
{
	char none;
	struct mallafs_store_op op = {
	        .code = MALLAFS_OP_GET, .key = key, .buf = &none, .flags = MALLAFS_OPF_OPEN};
	int64_t r = msvc_store_op(c->svc, &op);
	return r < 0 ? (int)r : 0;
}

static const struct value_backend store_backend = {
        .key_kind = N_KEY,
        .stat = store_stat,
        .read = store_read,
        .write = store_write,
        .truncate = store_truncate,
        .probe_truncate = store_probe_truncate,
        .set_mtime = store_set_mtime,
        .create = store_create,
        .unlink = store_unlink,
        .rename = store_rename,
        .list = store_list,
        .get = store_get,
};

/* ---- the node config's backend ---- */

static struct mnodecfg *nodecfg(const struct mfs_req *c)
{
	return mrt_nodecfg(c->fs->rt);
}

static int app_stat(struct mfs_req *c, const char *app, const char *key, struct mkv_stat *ret)
{
	return mnodecfg_stat(nodecfg(c), app, key, ret);
}

static ssize_t app_read(struct mfs_req *c, const char *app, const char *key, char *buf, size_t size,
                        off_t off)
{
	return mnodecfg_read(nodecfg(c), app, key, (uint64_t)off, buf, size);
}

static ssize_t app_write(struct mfs_req *c, const char *app, const char *key, const char *buf,
                         size_t size, off_t off, bool replace, bool append, bool *exact)
{
	*exact = !append;
	return mnodecfg_write(nodecfg(c), app, key, (uint64_t)off, buf, size,
	                      replace  ? MKV_REPLACE
	                      : append ? MKV_APPEND
	                               : 0);
}

static int app_truncate(struct mfs_req *c, const char *app, const char *key, uint64_t size)
{
	return mnodecfg_truncate(nodecfg(c), app, key, size);
}

static int app_set_mtime(struct mfs_req *c, const char *app, const char *key,
                         const struct timespec *mtime)
{
	return mnodecfg_set_mtime(nodecfg(c), app, key, mtime);
}

static int app_create(struct mfs_req *c, const char *app, const char *key)
{
	return mnodecfg_create(nodecfg(c), app, key);
}

static int app_unlink(struct mfs_req *c, const char *app, const char *key)
{
	return mnodecfg_delete(nodecfg(c), app, key);
}

static int app_rename(struct mfs_req *c, const char *app, const char *key, struct mfs_req *to,
                      const char *to_app, const char *to_key)
{
	return mnodecfg_rename(nodecfg(c), app, key, to_app, to_key);
}

static int app_list(struct mfs_req *c, const char *app, uint64_t after,
                    int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg)
{
	return mnodecfg_list(nodecfg(c), app, after, fn, arg);
}

static const struct value_backend app_backend = {
        .key_kind = N_APPKEY,
        .stat = app_stat,
        .read = app_read,
        .write = app_write,
        .truncate = app_truncate,
        .set_mtime = app_set_mtime,
        .create = app_create,
        .unlink = app_unlink,
        .rename = app_rename,
        .list = app_list,
};

/* ---- a folder of values: store/ and config/APP/ ---- */

static int folder_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mkv_stat st;
	int r = backend(c)->stat(c, c->name, name, &st);
	ret->kind = backend(c)->key_kind;
	ret->id = r == 0 ? st.id : 0;
	return r;
}

static int list_value(const char *key, const struct mkv_stat *st, void *arg)
{
	struct mfs_dirbuf *db = arg;
	/* A key's inode number is known without a node (node.c). */
	uint64_t ino = db->dir->kind == N_STORE ? mfs_key_ino(db->fs, db->dir, st->id) : 0;
	return mfs_dir_add_ino(db, key, false, mfs_dir_id_off(st->cookie), ino);
}

static int folder_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	return backend(c)->list(c, c->name, mfs_dir_after(db), list_value, db);
}

static int folder_create(struct mfs_req *c, const char *name, enum mnode_kind *ret_kind,
                         bool *ret_pending)
{
	*ret_kind = backend(c)->key_kind;
	*ret_pending = false;
	return backend(c)->create(c, c->name, name);
}

static int folder_unlink(struct mfs_req *c, const char *name)
{
	return backend(c)->unlink(c, c->name, name);
}

static int folder_rename(struct mfs_req *c, const char *name, struct mfs_req *to,
                         const char *newname, unsigned flags, uint64_t *ret_id)
{
	const struct value_backend *be = backend(c);
	struct mkv_stat st;
	if (c->svc != to->svc)
		return -EXDEV; /* mv copies across services */
	if ((flags & RENAME_NOREPLACE) && be->stat(to, to->name, newname, &st) == 0)
		return -EEXIST;
	int r = be->rename(c, c->name, name, to, to->name, newname);
	if (r == 0 && be->stat(to, to->name, newname, &st) == 0)
		*ret_id = st.id;
	return r;
}

/* config/APP/ has times of its own. */
static int app_folder_stat(struct mfs_req *c, struct stat *st)
{
	struct mkv_stat ks;
	int r = mnodecfg_app_stat(nodecfg(c), c->name, &ks);
	if (r == 0) {
		st->st_mtim = st->st_atim = ks.mtime;
		st->st_ctim = ks.ctime;
	}
	return r;
}

#define VALUE_FOLDER_OPS                                                       \
	.lookup = folder_lookup, .list = folder_list, .create = folder_create, \
	.unlink = folder_unlink, .rename = folder_rename

const struct mfs_kind mfs_kind_store = {
        .what = "store/",
        .flags = MK_DIR | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_KEY,
        VALUE_FOLDER_OPS,
        .data = &store_backend,
};

const struct mfs_kind mfs_kind_app = {
        .what = "config/APP/",
        .flags = MK_DIR,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .standin = N_APPKEY,
        .stat = app_folder_stat,
        VALUE_FOLDER_OPS,
        .data = &app_backend,
};

/* ---- a value: its file operations are value_file.c's ---- */

const struct mfs_kind mfs_kind_key = {
        .what = "a store key",
        .flags = MK_VALUE | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        VALUE_OPS,
        .data = &store_backend,
};

const struct mfs_kind mfs_kind_appkey = {
        .what = "a node config key",
        .flags = MK_VALUE,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        VALUE_OPS,
        .data = &app_backend,
};

/* ---- config/: the apps ---- */

static int nodecfg_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mkv_stat st;
	int r = mnodecfg_app_stat(nodecfg(c), name, &st);
	ret->kind = N_APP;
	ret->id = r == 0 ? st.id : 0;
	return r;
}

static int list_app(const char *app, const struct mkv_stat *st, void *arg)
{
	return mfs_dir_add(arg, app, true, mfs_dir_id_off(st->cookie));
}

static int nodecfg_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	return mnodecfg_app_list(nodecfg(c), mfs_dir_after(db), list_app, db);
}

static int nodecfg_mkdir(struct mfs_req *c, const char *name)
{
	int r = mnodecfg_app_create(nodecfg(c), name);
	if (r == 0)
		mfs_perm_created(c, name);
	return r;
}

static int nodecfg_rmdir(struct mfs_req *c, const char *name)
{
	return mnodecfg_app_destroy(nodecfg(c), name);
}

const struct mfs_kind mfs_kind_nodecfg = {
        .what = "config/",
        .flags = MK_DIR,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_APP,
        .lookup = nodecfg_lookup,
        .list = nodecfg_list,
        .mkdir = nodecfg_mkdir,
        .rmdir = nodecfg_rmdir,
};
