/* SPDX-License-Identifier: MIT */
/* The configuration model: sections of keys with string values, deep merge,
 * INI parsing (inih) and rendering. struct mallafs_cfg is the type the plugin
 * API names; these are the daemon's own operations on it. Not thread-safe: a
 * configuration is owned by one thread at a time (services publish committed
 * ones as immutable snapshots). */
#ifndef MALLAFS_CORE_CFG_H
#define MALLAFS_CORE_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "mallafs-plugin.h"

struct mallafs_cfg *mcfg_new(void);
/* Accepts NULL. */
void mcfg_free(struct mallafs_cfg *cfg);
/* A deep copy, tombstones included; NULL on out-of-memory. */
struct mallafs_cfg *mcfg_dup(const struct mallafs_cfg *cfg);

/* Whether key can name a configuration key: a file name (util.h) that
 * config.ini can write and read back, so none of "=:[];#", no control
 * character (a newline included), no space at either end. 0, or -EINVAL
 * with *ret_why (when not NULL) saying why. */
int mcfg_key_check(const char *key, const char **ret_why);

/* Sections. Names are validated by the callers (fs, bootstrap), not here. */
int mcfg_add_section(struct mallafs_cfg *cfg, const char *section); /* -EEXIST */
int mcfg_del_section(struct mallafs_cfg *cfg, const char *section); /* -ENOENT */
bool mcfg_has_section(const struct mallafs_cfg *cfg, const char *section);
/* Keys in the section that hold values (tombstones do not count); 0 when absent. */
size_t mcfg_section_len(const struct mallafs_cfg *cfg, const char *section);
size_t mcfg_nsections(const struct mallafs_cfg *cfg);
/* Every section, sorted by name; stops on a non-zero return and returns it. */
int mcfg_foreach_section(const struct mallafs_cfg *cfg, int (*fn)(const char *section, void *arg),
                         void *arg);

/* Tombstones, only meaningful in an update given to mcfg_merge(): remove this
 * key / this whole section from the destination. A later mallafs_cfg_set of the
 * same key or section replaces the tombstone. */
int mcfg_set_removed_key(struct mallafs_cfg *update, const char *section, const char *key);
int mcfg_set_removed_section(struct mallafs_cfg *update, const char *section);

/* Deep merge in place: every section and key of update is added to dst or
 * replaces dst's; tombstones remove (removing what is absent is no error);
 * everything update does not name stays. 0 or -ENOMEM (dst unchanged then). */
int mcfg_merge(struct mallafs_cfg *dst, const struct mallafs_cfg *update);
/* The same without the safety copy, for a scratch configuration thrown
 * away on failure (dst may be half merged then). */
int mcfg_merge_scratch(struct mallafs_cfg *dst, const struct mallafs_cfg *update);

/* Same sections, same keys, same values (tombstones compared too). */
bool mcfg_equal(const struct mallafs_cfg *a, const struct mallafs_cfg *b);

/* Parses INI text (need not be NUL-terminated) with inih. On error returns
 * -EINVAL (or -ENOMEM), *ret_line gets the 1-based line of the first error and
 * err a message such as "line 3: expected 'key = value'"; *ret is untouched.
 * Lines may be of any length. A key seen twice in one section is an error.
 * A value is plain or quoted. Plain: the text after '=' (or ':'), spaces at
 * both ends dropped, and each indented line after it joined with '\n' (as
 * trimmed; blank and comment lines are skipped). Quoted: it starts with '"';
 * it and each indented line after it is one piece "...", with the escapes
 * \\ \" \n \t \r \xHH inside, and the pieces are joined with nothing
 * between them. mallafs_cfg_render() writes every value so that this gives
 * it back byte for byte. Every parsed key remembers its line (mcfg_line). */
int mcfg_parse_ini(const char *text, size_t len, struct mallafs_cfg **ret, int *ret_line, char *err,
                   size_t errlen);
/* The line a key (or, with key NULL, a section header) was parsed from; 0 when
 * it was not parsed from text. */
int mcfg_line(const struct mallafs_cfg *cfg, const char *section, const char *key);

#endif
