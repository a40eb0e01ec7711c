/* SPDX-License-Identifier: MIT */
/* Finding plugins: the built-in table first, then NAME.so in the plugin
 * directory. Descriptors of loaded objects are checked (ABI version, size)
 * and copied into a full-size descriptor, so the rest of core can read every
 * field. Thread-safe; loaded objects stay loaded until the registry is freed.
 *
 * Locks: one mutex guards the list of loaded objects; it is held across
 * dlopen (the dynamic loader's own lock comes after it) and taken under a
 * service's op_lock when a chain is planned. Nothing is called back with it
 * held. Built-in plugins are found without it. */
#ifndef MALLAFS_CORE_PLUGIN_H
#define MALLAFS_CORE_PLUGIN_H

#include "mallafs-plugin.h"

struct mplugreg;

/* builtins: NULL-terminated array (may be NULL). plugin_dir may be NULL. */
struct mplugreg *mplugreg_new(const struct mallafs_plugin *const *builtins, const char *plugin_dir);
void mplugreg_free(struct mplugreg *reg);

/* 0 and *ret; -ENOENT no such plugin; -EINVAL bad object (wrong ABI, no
 * descriptor, bad name), with the reason in why. */
int mplugreg_find(struct mplugreg *reg, const char *name, const struct mallafs_plugin **ret,
                  struct mallafs_reason *why);

/* Checks a descriptor as an external one would be checked (exported for tests). */
int mplugreg_check(const struct mallafs_plugin *desc, const char *name, struct mallafs_reason *why);

#endif
