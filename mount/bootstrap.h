/* SPDX-License-Identifier: MIT */
/* The bootstrap file (SPEC.md "The bootstrap file"): an INI document naming
 * the services to create, their chains, admin status and initial
 * configuration, and the node-wide configuration, read before anything is
 * mounted.
 *
 *     [services.NAME]          plugins = a, b   (top to bottom, base implied)
 *                              admin = active|pause|inactive
 *     [services.NAME.SECTION]  keys of the service's configuration section
 *     [config.APP]             keys of the node-wide app APP
 *
 * NAME is everything between "services." and the next dot, so a service
 * whose name holds a dot cannot be declared here; SECTION and APP are the
 * rest of the header and may hold dots. */
#ifndef MALLAFS_MOUNT_BOOTSTRAP_H
#define MALLAFS_MOUNT_BOOTSTRAP_H

#include <stddef.h>

struct mrt;

/* Reads the file at path and creates what it says in rt: first the whole file
 * is parsed and checked, then apps and services are created in the order
 * they first appear in it. Returns 0, or -errno (-EINVAL for the content)
 * with err holding one line without a newline, "PATH:LINE: reason" (or
 * "PATH: reason" when the file cannot be read). On an error found while
 * creating, rt keeps what was created before it. err may be NULL. */
int mboot_load(struct mrt *rt, const char *path, char *err, size_t errlen);

#endif
