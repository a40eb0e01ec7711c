/* SPDX-License-Identifier: MIT */
#ifndef MALLAFS_MOUNT_CMDLINE_H
#define MALLAFS_MOUNT_CMDLINE_H

#include <stddef.h>

/* The command line made into the one fuse_opt_parse reads (cmdline.c):
 * argv[0..argc-1], NULL-terminated, every string owned. */
struct mcmd {
	int argc;
	char **argv;
};

/* 0, or -1 with why (a sentence for stderr) filled in. */
int mcmd_normalize(int argc, char *const *argv, struct mcmd *out, char *why, size_t len);
void mcmd_free(struct mcmd *c);

#endif
