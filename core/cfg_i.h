/* What core/cfg.c and core/cfg_ini.c share: the configuration's layout and
 * the lookups the INI parser borrows from the model. Private to those two
 * files; everything else goes through cfg.h. */
#ifndef MALLAFS_CORE_CFG_I_H
#define MALLAFS_CORE_CFG_I_H

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
	struct mcfg_key *keys;
	size_t nkeys;
	size_t cap;
	bool removed; /* a tombstone: "remove this section" in an update */
	int line;
};

struct mallafs_cfg {
	struct mcfg_section *secs;
	size_t nsecs;
	size_t cap;
};

/* The section called name, or NULL with *ret_idx where it would go. */
struct mcfg_section *mcfg_section_find(const struct mallafs_cfg *cfg, const char *name,
                                       size_t *ret_idx);
/* The key called name, or NULL with *ret_idx where it would go. */
struct mcfg_key *mcfg_key_find(const struct mcfg_section *s, const char *name, size_t *ret_idx);
/* Inserts an empty section at idx (from mcfg_section_find). Pointers into
 * cfg->secs are invalid afterwards. */
int mcfg_section_insert(struct mallafs_cfg *cfg, size_t idx, const char *name, int line,
                        struct mcfg_section **ret);
/* Stores value (owned, NULL for a tombstone) under section/key, creating the
 * section as needed. On failure value is still the caller's and cfg is as it
 * was. */
int mcfg_put_key(struct mallafs_cfg *cfg, const char *section, const char *key, char *value,
                 int line);

#endif
