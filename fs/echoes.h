/* SPDX-License-Identifier: MIT */
/* The notifier's echoes (echoes.c), for the notifier's thread. */
#ifndef MALLAFS_FS_ECHOES_H
#define MALLAFS_FS_ECHOES_H

#include <limits.h>

#include "fs_i.h"

/* Starts the echo process; fs->echoes from then on. 0 or -errno. */
int mfs_echoes_start(struct mfs *fs);
/* Kills the process at shutdown, so that an echo under way ends at once
 * (the notifier's thread is stopping); accepts none. */
void mfs_echoes_kill(struct mfs *fs);
/* Ends it, once nothing echoes any more (after the unmount); accepts none. */
void mfs_echoes_stop(struct mfs *fs);

/* path (relative to the mount) along the table: the node if the kernel
 * knows it, its parent's if the kernel knows that, the last component. */
struct resolved {
	struct mnode *node, *parent; /* referenced, or NULL */
	const char *last;            /* into buf */
	char buf[PATH_MAX];
};
void mfs_resolve(struct mfs *fs, const char *path, struct resolved *r);
/* The same for the nodes in the table only, asking core nothing: what an
 * event listener may do, in the changing thread, under core's locks. */
void mfs_resolve_in_table(struct mfs *fs, const char *path, struct resolved *r);
void mfs_resolved_put(struct mfs *fs, struct resolved *r);
/* Whether the request recorded in t acted on this entry itself. */
bool mfs_in_band(const struct mfs_target *t, const struct resolved *r);

/* A changed file: IN_MODIFY and IN_CLOSE_WRITE, then fresh caches. */
void mfs_echo_modify(struct mfs *fs, const char *path);
/* A new entry: IN_CREATE. */
void mfs_echo_create(struct mfs *fs, const char *path, bool dir);
/* A removed entry: IN_DELETE. */
void mfs_echo_delete(struct mfs *fs, const char *path, bool dir);

#endif
