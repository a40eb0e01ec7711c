/* SPDX-License-Identifier: MIT */
/* The node-wide config store (Malla's Config): apps of keys with byte-exact
 * values. Paths in events are "config/APP" and "config/APP/KEY".
 *
 * Locks: thread-safe through one rwlock, read for lookups and listings,
 * written for changes. Events are emitted with the write lock held, so the
 * feed has the order of the changes and the event ring's lock comes after
 * it. Listing callbacks run under the read lock and must not call into the
 * config store. */
#ifndef MALLAFS_CORE_NODECFG_H
#define MALLAFS_CORE_NODECFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kv.h"

struct mev_ring;
struct mnodecfg;

struct mnodecfg *mnodecfg_new(struct mev_ring *ring); /* ring may be NULL */
void mnodecfg_free(struct mnodecfg *nc);
/* Charges every table (app names, keys and values) to a, NULL for none; a
 * change past its limit is -ENOSPC, with the reason in the log. */
void mnodecfg_set_account(struct mnodecfg *nc, struct mkv_account *a);

int mnodecfg_app_create(struct mnodecfg *nc, const char *app);  /* -EINVAL, -EEXIST */
int mnodecfg_app_destroy(struct mnodecfg *nc, const char *app); /* -ENOENT, -ENOTEMPTY */
/* The apps after the one whose cookie is after (0: from the start), as
 * mkv_list lists (st.size is the number of keys). */
int mnodecfg_app_list(struct mnodecfg *nc, uint64_t after,
                      int (*fn)(const char *app, const struct mkv_stat *st, void *arg), void *arg);
int mnodecfg_app_stat(struct mnodecfg *nc, const char *app, struct mkv_stat *ret);

/* Keys: -ENOENT when the app (or key) is absent, -EINVAL for a bad key name. */
int mnodecfg_stat(struct mnodecfg *nc, const char *app, const char *key, struct mkv_stat *ret);
ssize_t mnodecfg_read(struct mnodecfg *nc, const char *app, const char *key, uint64_t off,
                      void *buf, size_t len);
ssize_t mnodecfg_write(struct mnodecfg *nc, const char *app, const char *key, uint64_t off,
                       const void *data, size_t len, unsigned flags /* MKV_* */);
int mnodecfg_create(struct mnodecfg *nc, const char *app, const char *key); /* -EEXIST */
int mnodecfg_truncate(struct mnodecfg *nc, const char *app, const char *key, uint64_t size);
int mnodecfg_delete(struct mnodecfg *nc, const char *app, const char *key);
/* Sets a key's mtime (NULL: now). */
int mnodecfg_set_mtime(struct mnodecfg *nc, const char *app, const char *key,
                       const struct timespec *mtime);
/* Renames within an app or across apps, replacing the target. */
int mnodecfg_rename(struct mnodecfg *nc, const char *app, const char *key, const char *to_app,
                    const char *to_key);
/* The keys after the one whose cookie is after (0: from the start). */
int mnodecfg_list(struct mnodecfg *nc, const char *app, uint64_t after,
                  int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg);

/* A copy of a key's whole value (malloc'd, NUL after it). -ENOENT. */
int mnodecfg_get(struct mnodecfg *nc, const char *app, const char *key, char **ret,
                 size_t *ret_len);

/* ---- Cluster mode ----
 * With a remote set, each change above (but mnodecfg_set_mtime: an mtime is
 * this node's) is handed to it instead of being made here: the cluster
 * engine commits it to the shared store, then makes it here with the apply
 * calls below. The checks that need no lookup (names) come first. */
struct mnodecfg_remote {
	int (*app_create)(void *arg, const char *app);
	int (*app_destroy)(void *arg, const char *app);
	ssize_t (*write)(void *arg, const char *app, const char *key, uint64_t off,
	                 const void *data, size_t len, unsigned flags);
	int (*create)(void *arg, const char *app, const char *key);
	int (*truncate)(void *arg, const char *app, const char *key, uint64_t size);
	int (*remove)(void *arg, const char *app, const char *key);
	int (*rename)(void *arg, const char *app, const char *key, const char *to_app,
	              const char *to_key);
};
/* ops NULL: back to node-local. Set before the tree is served. */
void mnodecfg_set_remote(struct mnodecfg *nc, const struct mnodecfg_remote *ops, void *arg);
/* What the shared store says, made here with the events a local change
 * gives and no remote call: an app there (made when absent) or gone (with
 * the keys it still has here); a key's whole value (the key made when
 * absent; -ENOENT without its app); a key gone (-ENOENT); a rename. */
int mnodecfg_apply_app(struct mnodecfg *nc, const char *app, bool present);
int mnodecfg_apply_put(struct mnodecfg *nc, const char *app, const char *key, const void *value,
                       size_t len);
int mnodecfg_apply_delete(struct mnodecfg *nc, const char *app, const char *key);
int mnodecfg_apply_rename(struct mnodecfg *nc, const char *app, const char *key, const char *to_app,
                          const char *to_key);

#endif
