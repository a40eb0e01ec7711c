/* SPDX-License-Identifier: MIT */
/* The filesystem's life: made before the session, started once mounted
 * (the feed's thread, the notifier and its echo process; defer.c's threads
 * start as requests need them), stopped before the unmount, freed after it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"
#include "kind.h"

const struct fuse_lowlevel_ops *mfs_lowlevel_ops(void)
{
	return mfs_echo_wrap(mfs_defer_wrap(mfs_ops()));
}

struct mfs *mfs_new(struct mrt *rt)
{
	if (mfs_kinds_check() < 0) {
		errno = EINVAL;
		return NULL;
	}
	struct mfs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	fs->rt = rt;
	fs->uid = getuid();
	fs->gid = getgid();
	mu_now_real(&fs->born);
	pthread_mutex_init(&fs->lock, NULL);
	if (mfs_nodes_init(fs) < 0 || mfs_perm_init(fs) < 0 || mfs_defer_init(fs) < 0) {
		mfs_free(fs);
		return NULL;
	}
	return fs;
}

void mfs_free(struct mfs *fs)
{
	if (!fs)
		return;
	mfs_notifier_join(fs);
	mfs_defer_free(fs);
	mfs_handles_fini(fs);
	mfs_perm_fini(fs);
	mfs_nodes_fini(fs);
	pthread_mutex_destroy(&fs->lock);
	free(fs->mountpoint);
	free(fs);
}

void mfs_set_readonly(struct mfs *fs)
{
	fs->rdonly = true;
}

int mfs_start(struct mfs *fs, struct fuse_session *se, const char *mountpoint)
{
	fs->se = se;
	if (!mountpoint)
		return -EINVAL;
	fs->mountpoint = strdup(mountpoint);
	if (!fs->mountpoint)
		return -ENOMEM;
	int r = mfs_feed_start(fs);
	if (r < 0)
		return r;
	r = mfs_notifier_start(fs);
	if (r < 0)
		mfs_feed_stop(fs);
	return r;
}

void mfs_stop(struct mfs *fs)
{
	mfs_notifier_stop(fs);
	mfs_feed_stop(fs);
	mfs_defer_stop(fs);
}

void mfs_unmounted(struct mfs *fs)
{
	mfs_notifier_join(fs);
}
