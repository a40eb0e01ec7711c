/* SPDX-License-Identifier: MIT */
/* Values (store keys and config/APP/KEY): the interface kind_value.c's two
 * backends implement, and the file operations value_file.c gives both. */
#ifndef MALLAFS_FS_VALUE_H
#define MALLAFS_FS_VALUE_H

#include "kind.h"
#include "kv.h"

struct value_backend {
	enum mnode_kind key_kind; /* what its folder holds */
	int (*stat)(struct mfs_req *c, const char *app, const char *key, struct mkv_stat *ret);
	ssize_t (*read)(struct mfs_req *c, const char *app, const char *key, char *buf, size_t size,
	                off_t off);
	/* replace: the value becomes off zero bytes, then buf, in one step (a
	 * put); append: buf goes at the value's end, wherever off says (an
	 * O_APPEND open: the kernel's idea of the end may be stale when another
	 * node appended). *exact: what was written is exactly what the value
	 * became there. */
	ssize_t (*write)(struct mfs_req *c, const char *app, const char *key, const char *buf,
	                 size_t size, off_t off, bool replace, bool append, bool *exact);
	int (*truncate)(struct mfs_req *c, const char *app, const char *key, uint64_t size);
	/* Whether the truncation an O_TRUNC open holds back would pass (the
	 * store's chain may refuse it), changing nothing. NULL: it would. */
	int (*probe_truncate)(struct mfs_req *c, const char *app, const char *key);
	int (*set_mtime)(struct mfs_req *c, const char *app, const char *key,
	                 const struct timespec *mtime);
	int (*create)(struct mfs_req *c, const char *app, const char *key);
	int (*unlink)(struct mfs_req *c, const char *app, const char *key);
	int (*rename)(struct mfs_req *c, const char *app, const char *key, struct mfs_req *to,
	              const char *to_app, const char *to_key);
	int (*list)(struct mfs_req *c, const char *app, uint64_t after,
	            int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg);
	/* An open for reading: the store's get passes the chain even when the
	 * data then comes from the kernel's cache. NULL: nothing to do. */
	int (*get)(struct mfs_req *c, const char *app, const char *key);
};

/* value_file.c: a value's file operations. */
int mfs_value_stat(struct mfs_req *c, struct stat *st);
int mfs_value_open(struct mfs_req *c, struct fuse_file_info *fi);
ssize_t mfs_value_read(struct mfs_req *c, struct fuse_file_info *fi, char *buf, size_t size,
                       off_t off);
ssize_t mfs_value_write(struct mfs_req *c, struct fuse_file_info *fi, const char *buf, size_t size,
                        off_t off);
int mfs_value_truncate(struct mfs_req *c, uint64_t size);
int mfs_value_set_mtime(struct mfs_req *c, const struct timespec *mtime);
unsigned mfs_value_poll(struct mfs_req *c, struct fuse_file_info *fi, struct fuse_pollhandle *ph);
int mfs_value_flush(struct mfs_req *c, struct fuse_file_info *fi);
void mfs_value_release(struct mfs_req *c, struct fuse_file_info *fi);

#define VALUE_OPS                                                                           \
	.stat = mfs_value_stat, .open = mfs_value_open, .read = mfs_value_read,             \
	.write = mfs_value_write, .truncate = mfs_value_truncate,                           \
	.set_mtime = mfs_value_set_mtime, .poll = mfs_value_poll, .flush = mfs_value_flush, \
	.release = mfs_value_release

#endif
