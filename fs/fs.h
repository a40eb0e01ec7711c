/* SPDX-License-Identifier: MIT */
/* The FUSE low-level layer: the runtime's state as a tree of files.
 *
 * Usage, from main():
 *     struct mfs *fs = mfs_new(rt);
 *     se = fuse_session_new(&args, mfs_lowlevel_ops(), sizeof(struct fuse_lowlevel_ops), fs);
 *     fuse_session_mount(se, mountpoint);  ... fuse_daemonize() ...
 *     mfs_start(fs, se, mountpoint);       (the notifier thread)
 *     fuse_session_loop[_mt](se, ...);
 *     mfs_stop(fs);                        (before unmounting)
 *     fuse_session_unmount(se); mfs_unmounted(fs);
 *     fuse_session_destroy(se); mfs_free(fs);
 */
#ifndef MALLAFS_FS_H
#define MALLAFS_FS_H

#include <stdbool.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

struct mrt;
struct mfs;
struct mallafs_svc;

struct mfs *mfs_new(struct mrt *rt);
void mfs_free(struct mfs *fs); /* accepts NULL */

const struct fuse_lowlevel_ops *mfs_lowlevel_ops(void);

/* -o ro, before mfs_start: users' changes (writes, creations, removals,
 * renames, chmod, chown, utimes) get EROFS; the daemon's own still reach
 * watchers. The kernel's mount stays read-write: a read-only one would
 * refuse the notifier's echoes too. */
void mfs_set_readonly(struct mfs *fs);

/* Starts the notifier thread, which tells the kernel about changes that did
 * not come through the current request. 0 or -errno. */
int mfs_start(struct mfs *fs, struct fuse_session *se, const char *mountpoint);
/* Stops it; call before unmounting. */
void mfs_stop(struct mfs *fs);
/* After the unmount, before the session is destroyed: waits for the
 * notifier thread, which mfs_stop leaves running when it was inside a
 * write to the kernel that only the unmount ends. */
void mfs_unmounted(struct mfs *fs);

/* Owners and modes set by chmod and chown (perm.c), for the state
 * database (-o state=): what is kept for one path of the tree. */
struct mfs_perm_entry {
	bool has_owner, has_mode;
	uid_t uid;
	gid_t gid;
	mode_t mode;
};
/* path's entry: 0, or -ENOENT when chmod and chown left it to the rules. */
int mfs_perm_get(struct mfs *fs, const char *path, struct mfs_perm_entry *ret);
/* Every entry, under the table's lock: fn must not call into fs. A non-zero
 * return stops the walk and is returned. */
int mfs_perm_foreach(struct mfs *fs,
                     int (*fn)(const char *path, const struct mfs_perm_entry *e, void *arg),
                     void *arg);
/* Sets path's entry (one with neither field set drops it), as chmod and
 * chown would have; once the tree is served, the kernel's cached
 * attributes of path and below are dropped (by the notifier thread). Takes
 * the table's lock, then mfs.lock. 0 or -errno. */
int mfs_perm_import(struct mfs *fs, const char *path, const struct mfs_perm_entry *e);
/* fn is told the path of every entry set or dropped, and "services/S" when
 * the owner of S changes (chown, or its creation by a user:
 * mfs_perm_owner_changed), in the changing thread with the table's lock
 * held: it must not block nor call into fs or core (it may enqueue, under
 * a leaf lock of its own). At most 4 listeners (the state database, cluster
 * mode): -ENOSPC past that. remove: fn with arg is told no more. */
typedef void (*mfs_perm_listener_fn)(const char *path, void *arg);
int mfs_perm_add_listener(struct mfs *fs, mfs_perm_listener_fn fn, void *arg);
void mfs_perm_remove_listener(struct mfs *fs, mfs_perm_listener_fn fn, void *arg);
/* Tells the listener that the owner of the service at path changed. */
void mfs_perm_owner_changed(struct mfs *fs, const char *path);
/* Gives the service NAME to uid:gid from outside the mount (a reload of the
 * bootstrap file), as a chown of services/NAME by root would: core's owner,
 * owners set below it dropped, the listener told, the kernel's cached
 * attributes of the tree dropped. Any thread but the listener's. */
void mfs_service_set_owner(struct mfs *fs, struct mallafs_svc *svc, uid_t uid, gid_t gid);

#endif
