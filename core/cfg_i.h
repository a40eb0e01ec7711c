/* SPDX-License-Identifier: MIT */
/* What core/cfg.c and core/cfg_ini.c share: the configuration's layout and
 * the lookups the INI parser borrows from the model. Private to those two
 * files; everything else goes through cfg.h. */
#ifndef MALLAFS_CORE_CFG_I_H
#define MALLAFS_CORE_CFG_I_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

struct mcfg_key {
	char *name;
	char *value; /* NULL: a tombstone, "remove this key" in an update */
	int line;    /* where it was parsed from, 0 when set by code */
};

struct mcfg_section {
	char *name;
	struct mcfg_key *keys; /* sorted by strcmp */
	size_t nkeys;
	size_t cap;
	bool removed; /* a tombstone: "remove this section" in an update */
	int line;
	atomic_uint refs; /* configurations share sections: see cfg_tree.c */
};

struct mcfg_node;

/* Sections, sorted by name, in a tree shared with copies (cfg_tree.c). */
struct mallafs_cfg {
	struct mcfg_node *root;
};

/* The section called name, made this configuration's own so that it may be
 * changed, or NULL when absent. ret_idx is not used (sections are no
 * longer an array); it is set to 0 when given. */
struct mcfg_section *mcfg_section_find(struct mallafs_cfg *cfg, const char *name, size_t *ret_idx);
/* The section that follows prev in name order (prev NULL: the first). */
const struct mcfg_section *mcfg_section_next(const struct mallafs_cfg *cfg,
                                             const struct mcfg_section *prev);
/* The key called name, or NULL with *ret_idx where it would go. */
struct mcfg_key *mcfg_key_find(const struct mcfg_section *s, const char *name, size_t *ret_idx);
/* Adds an empty section called name (absent; idx is not used). Pointers to
 * other sections stay valid. */
int mcfg_section_insert(struct mallafs_cfg *cfg, size_t idx, const char *name, int line,
                        struct mcfg_section **ret);
/* Stores value (owned, NULL for a tombstone) under section/key, creating the
 * section as needed. On failure value is still the caller's and cfg is as it
 * was. */
int mcfg_put_key(struct mallafs_cfg *cfg, const char *section, const char *key, char *value,
                 int line);

/* cfg_tree.c: the persistent tree of sections. */
struct mcfg_section *mcfg_section_new(const char *name, int line);
void mcfg_section_clear(struct mcfg_section *s); /* drops every key */
struct mcfg_node *mcfg_tree_ref(struct mcfg_node *root);
void mcfg_tree_unref(struct mcfg_node *root); /* accepts NULL */
const struct mcfg_section *mcfg_tree_get(const struct mcfg_node *root, const char *name);
/* The section called name, copied first wherever shared; NULL with
 * *ret_err 0 when absent, -ENOMEM when out of memory. */
struct mcfg_section *mcfg_tree_mut(struct mcfg_node **root, const char *name, int *ret_err);
/* Adds sec (its name absent), which the tree owns on success. */
int mcfg_tree_insert(struct mcfg_node **root, struct mcfg_section *sec);
int mcfg_tree_delete(struct mcfg_node **root, const char *name); /* -ENOENT */
int mcfg_tree_foreach(const struct mcfg_node *root,
                      int (*fn)(const struct mcfg_section *s, void *arg), void *arg);
/* The first section whose name sorts after after (NULL: the first of all). */
const struct mcfg_section *mcfg_tree_next(const struct mcfg_node *root, const char *after);
bool mcfg_tree_equal(const struct mcfg_node *a, const struct mcfg_node *b,
                     bool (*sec_equal)(const struct mcfg_section *, const struct mcfg_section *));
size_t mcfg_tree_height(const struct mcfg_node *root);

#endif
