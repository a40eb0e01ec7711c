/* SPDX-License-Identifier: MIT */
/* The fixed names of the mounted tree, in one table: the folders and files
 * at the root and inside each services/NAME/. Core spells event paths with
 * it, the plugin registry refuses published files that would shadow a fixed
 * entry with it, and the FUSE layer looks up and lists with it, so a name
 * changes in one place only. No state, no locks. */
#ifndef MALLAFS_CORE_TREE_H
#define MALLAFS_CORE_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Root entries first, then the entries of services/NAME/, each group in
 * the order `ls` shows them. */
enum mtree_name {
	/* MOUNTPOINT/ */
	MTREE_SERVICES,
	MTREE_REGISTRY,
	MTREE_CONFIG,
	MTREE_EVENTS,
	MTREE_METRICS,
	MTREE_CLUSTER, /* in cluster mode only (core/clview.h) */
	/* MOUNTPOINT/services/NAME/ */
	MTREE_STORE,
	MTREE_PLUGINS,
	MTREE_SVC_CONFIG,
	MTREE_CONFIG_INI,
	MTREE_CHAIN,
	MTREE_STATUS,
	MTREE_COUNT_,
};

struct mtree_entry {
	const char *name;
	bool in_service; /* in services/NAME/, not at the root */
	bool dir;        /* a folder, not a file */
};

/* Indexed by enum mtree_name; tree.c checks at compile time that it has
 * exactly MTREE_COUNT_ entries. */
extern const struct mtree_entry mtree[];

static inline const char *mtree_name(enum mtree_name n)
{
	return mtree[n].name;
}

/* The entry called name at the root (in_service false) or in services/NAME/
 * (in_service true), or -ENOENT. "config" is at both places. */
int mtree_lookup(const char *name, bool in_service);

/* True for a name that a plugin may not publish as a file in services/NAME/,
 * since a fixed entry has it. */
bool mtree_service_reserved(const char *name);

/* The longest path below the mount that core builds:
 * "services/NAME/config/SECTION/KEY", with its NUL. */
#define MTREE_PATH_MAX (sizeof("services//config//") + 3 * MU_NAME_MAX)

/* Joins path components with '/' into buf: mtree_join(buf, len,
 * mtree_name(MTREE_SERVICES), svc, mtree_name(MTREE_STORE), key, NULL). The
 * first NULL ends the list, so trailing parts may be left out by passing
 * NULL. 0, or -ENAMETOOLONG when it does not fit (buf then holds the whole
 * components that did). */
int mtree_join(char *buf, size_t len, const char *first, ...) __attribute__((sentinel));

#endif
