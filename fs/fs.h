/* The FUSE low-level layer: the runtime's state as a tree of files.
 *
 * Usage, from main():
 *     struct mfs *fs = mfs_new(rt);
 *     se = fuse_session_new(&args, mfs_lowlevel_ops(), sizeof(struct fuse_lowlevel_ops), fs);
 *     fuse_session_mount(se, mountpoint);  ... fuse_daemonize() ...
 *     mfs_start(fs, se, mountpoint);       (the notifier thread)
 *     fuse_session_loop[_mt](se, ...);
 *     mfs_stop(fs);                        (before unmounting)
 *     fuse_session_unmount(se); fuse_session_destroy(se); mfs_free(fs);
 */
#ifndef MALLAFS_FS_H
#define MALLAFS_FS_H

#include <fuse_lowlevel.h>

struct mrt;
struct mfs;

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

#endif
