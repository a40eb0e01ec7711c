/* SPDX-License-Identifier: MIT */
/* The notifier's comparison of a service's derived files (resync.c). */
#ifndef MALLAFS_FS_RESYNC_H
#define MALLAFS_FS_RESYNC_H

#include "fs_i.h"

struct mfs_snaps; /* what each service's derived files said, a list */

/* Compares service name's derived files with *snaps, echoes what changed
 * (but what target's request did itself), and remembers them. */
void mfs_resync(struct mfs *fs, struct mfs_snaps **snaps, const char *name,
                const struct mfs_target *target);
/* A first look at every service (those of the bootstrap). */
void mfs_resync_all(struct mfs *fs, struct mfs_snaps **snaps);
void mfs_snaps_free(struct mfs_snaps *s); /* accepts NULL */

#endif
