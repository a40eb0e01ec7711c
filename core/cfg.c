/* SPDX-License-Identifier: MIT */
/* The configuration model. Sections live in a persistent tree sorted by
 * name (cfg_tree.c), shared between a configuration and its copies, so a
 * copy costs one reference and a change O(log n) in the number of sections:
 * a service with 10,000 sections reconfigures and answers lookups as fast
 * as one with 10. A section's keys are an array kept sorted by strcmp
 * (binary search; sections hold few keys). Every walk (foreach, render,
 * equal) sees one stable order without sorting. Reading and writing INI
 * text is in cfg_ini.c. */
#include "cfg_i.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Makes room for one more element in an array of n, returning the array
 * (moved or not) or NULL on out-of-memory, when arr is left as it was. */
static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return arr;
	size_t ncap = *cap ? *cap * 2 : 4;
	if (ncap > SIZE_MAX / elem)
		return NULL;
	void *p = realloc(arr, ncap * elem);
	if (!p)
		return NULL;
	*cap = ncap;
	return p;
}

struct mcfg_section *mcfg_section_find(struct mallafs_cfg *cfg, const char *name, size_t *ret_idx)
{
	int err;
	if (ret_idx)
		*ret_idx = 0;
	return mcfg_tree_mut(&cfg->root, name, &err);
}

const struct mcfg_section *mcfg_section_next(const struct mallafs_cfg *cfg,
                                             const struct mcfg_section *prev)
{
	return cfg ? mcfg_tree_next(cfg->root, prev ? prev->name : NULL) : NULL;
}

/* A live section: tombstoned sections are invisible to readers. */
static const struct mcfg_section *section_live(const struct mallafs_cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	const struct mcfg_section *s = mcfg_tree_get(cfg->root, name);
	return s && !s->removed ? s : NULL;
}

struct mcfg_key *mcfg_key_find(const struct mcfg_section *s, const char *name, size_t *ret_idx)
{
	size_t lo = 0, hi = s->nkeys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, s->keys[mid].name);
		if (c == 0) {
			if (ret_idx)
				*ret_idx = mid;
			return &s->keys[mid];
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (ret_idx)
		*ret_idx = lo;
	return NULL;
}

int mcfg_section_insert(struct mallafs_cfg *cfg, size_t idx, const char *name, int line,
                        struct mcfg_section **ret)
{
	struct mcfg_section *s = mcfg_section_new(name, line);
	if (!s)
		return -ENOMEM;
	int r = mcfg_tree_insert(&cfg->root, s);
	if (r < 0) {
		mcfg_section_clear(s);
		free(s->name);
		free(s);
		return r;
	}
	if (ret)
		*ret = s;
	return 0;
}

/* Inserts a key at idx (from mcfg_key_find), taking ownership of value (which may
 * be NULL for a tombstone) only on success. */
static int key_insert(struct mcfg_section *s, size_t idx, const char *name, char *value, int line)
{
	char *n = strdup(name);
	if (!n)
		return -ENOMEM;
	struct mcfg_key *keys = grow(s->keys, &s->cap, s->nkeys, sizeof(*keys));
	if (!keys) {
		free(n);
		return -ENOMEM;
	}
	s->keys = keys;
	memmove(&s->keys[idx + 1], &s->keys[idx], (s->nkeys - idx) * sizeof(*s->keys));
	s->keys[idx] = (struct mcfg_key){.name = n, .value = value, .line = line};
	s->nkeys++;
	return 0;
}

static void key_remove(struct mcfg_section *s, size_t idx)
{
	free(s->keys[idx].name);
	free(s->keys[idx].value);
	memmove(&s->keys[idx], &s->keys[idx + 1], (s->nkeys - idx - 1) * sizeof(*s->keys));
	s->nkeys--;
}

/* Stores value (owned, NULL for a tombstone) under section/key, creating the
 * section as needed. On failure value is still the caller's and cfg is as it
 * was: a section created here is taken back out. */
int mcfg_put_key(struct mallafs_cfg *cfg, const char *section, const char *key, char *value,
                 int line)
{
	size_t ki;
	int r;
	struct mcfg_section *s = mcfg_tree_mut(&cfg->root, section, &r);
	bool created = false;

	if (r < 0)
		return r;
	if (!s) {
		r = mcfg_section_insert(cfg, 0, section, 0, &s);
		if (r < 0)
			return r;
		created = true;
	}
	struct mcfg_key *k = mcfg_key_find(s, key, &ki);
	if (k) {
		free(k->value);
		k->value = value;
		k->line = line;
		s->removed = false;
		return 0;
	}
	r = key_insert(s, ki, key, value, line);
	if (r < 0) {
		if (created)
			mcfg_tree_delete(&cfg->root, section);
		return r;
	}
	s->removed = false;
	return 0;
}

struct mallafs_cfg *mcfg_new(void)
{
	return calloc(1, sizeof(struct mallafs_cfg));
}

void mcfg_free(struct mallafs_cfg *cfg)
{
	if (!cfg)
		return;
	mcfg_tree_unref(cfg->root);
	free(cfg);
}

struct mallafs_cfg *mcfg_dup(const struct mallafs_cfg *cfg)
{
	struct mallafs_cfg *d = mcfg_new();
	if (d && cfg)
		d->root = mcfg_tree_ref(cfg->root);
	return d;
}

int mcfg_add_section(struct mallafs_cfg *cfg, const char *section)
{
	if (!cfg || !section)
		return -EINVAL;
	const struct mcfg_section *c = mcfg_tree_get(cfg->root, section);
	if (!c)
		return mcfg_section_insert(cfg, 0, section, 0, NULL);
	/* Adding a section replaces its tombstone, as a set does. */
	if (!c->removed)
		return -EEXIST;
	int r;
	struct mcfg_section *s = mcfg_tree_mut(&cfg->root, section, &r);
	if (s)
		s->removed = false;
	return r;
}

int mcfg_del_section(struct mallafs_cfg *cfg, const char *section)
{
	if (!cfg || !section)
		return -EINVAL;
	if (!section_live(cfg, section))
		return -ENOENT;
	return mcfg_tree_delete(&cfg->root, section);
}

bool mcfg_has_section(const struct mallafs_cfg *cfg, const char *section)
{
	return section_live(cfg, section) != NULL;
}

size_t mcfg_section_len(const struct mallafs_cfg *cfg, const char *section)
{
	const struct mcfg_section *s = section_live(cfg, section);
	size_t n = 0;
	if (!s)
		return 0;
	for (size_t i = 0; i < s->nkeys; i++)
		if (s->keys[i].value)
			n++;
	return n;
}

static int count_live(const struct mcfg_section *s, void *arg)
{
	if (!s->removed)
		(*(size_t *)arg)++;
	return 0;
}

size_t mcfg_nsections(const struct mallafs_cfg *cfg)
{
	size_t n = 0;
	if (cfg)
		mcfg_tree_foreach(cfg->root, count_live, &n);
	return n;
}

struct foreach_ctx {
	int (*fn)(const char *section, void *arg);
	void *arg;
};

static int foreach_live(const struct mcfg_section *s, void *arg)
{
	struct foreach_ctx *c = arg;
	return s->removed ? 0 : c->fn(s->name, c->arg);
}

int mcfg_foreach_section(const struct mallafs_cfg *cfg, int (*fn)(const char *section, void *arg),
                         void *arg)
{
	if (!cfg || !fn)
		return 0;
	struct foreach_ctx c = {fn, arg};
	return mcfg_tree_foreach(cfg->root, foreach_live, &c);
}

int mcfg_set_removed_key(struct mallafs_cfg *update, const char *section, const char *key)
{
	if (!update || !section || !key)
		return -EINVAL;
	const struct mcfg_section *s = mcfg_tree_get(update->root, section);
	/* The whole section goes already, this key with it. */
	if (s && s->removed)
		return 0;
	return mcfg_put_key(update, section, key, NULL, 0);
}

int mcfg_set_removed_section(struct mallafs_cfg *update, const char *section)
{
	if (!update || !section)
		return -EINVAL;
	int r;
	struct mcfg_section *s = mcfg_tree_mut(&update->root, section, &r);
	if (r < 0)
		return r;
	if (!s) {
		r = mcfg_section_insert(update, 0, section, 0, &s);
		if (r < 0)
			return r;
	}
	/* Keys set before in this update would be removed with the section. */
	mcfg_section_clear(s);
	s->removed = true;
	return 0;
}

/* Applies one section of an update to cfg (a scratch copy, so a failure
 * half-way does not matter: the caller throws the copy away). */
static int merge_section(const struct mcfg_section *u, void *arg)
{
	struct mallafs_cfg *cfg = arg;
	int r;

	if (u->removed) {
		r = mcfg_tree_delete(&cfg->root, u->name);
		return r == -ENOENT ? 0 : r;
	}
	struct mcfg_section *s = mcfg_tree_mut(&cfg->root, u->name, &r);
	if (r < 0)
		return r;
	if (!s) {
		/* A section named only by key tombstones removes keys that are
		 * not there: nothing to do, and no reason to create it. An empty
		 * section, though, is an explicit "this section exists". */
		bool has_value = u->nkeys == 0;
		for (size_t i = 0; i < u->nkeys && !has_value; i++)
			has_value = u->keys[i].value != NULL;
		if (!has_value)
			return 0;
		r = mcfg_section_insert(cfg, 0, u->name, u->line, &s);
		if (r < 0)
			return r;
	}
	s->removed = false;
	for (size_t i = 0; i < u->nkeys; i++) {
		const struct mcfg_key *k = &u->keys[i];
		size_t ki;
		if (!k->value) {
			if (mcfg_key_find(s, k->name, &ki))
				key_remove(s, ki);
			continue;
		}
		char *v = strdup(k->value);
		if (!v)
			return -ENOMEM;
		r = mcfg_put_key(cfg, u->name, k->name, v, k->line);
		if (r < 0) {
			free(v);
			return r;
		}
	}
	return 0;
}

int mcfg_merge_scratch(struct mallafs_cfg *dst, const struct mallafs_cfg *update)
{
	if (!dst)
		return -EINVAL;
	return update ? mcfg_tree_foreach(update->root, merge_section, dst) : 0;
}

int mcfg_merge(struct mallafs_cfg *dst, const struct mallafs_cfg *update)
{
	if (!dst)
		return -EINVAL;
	if (!update)
		return 0;
	/* The copy is one reference; merging copies only the paths to the
	 * sections the update names. */
	struct mallafs_cfg *tmp = mcfg_dup(dst);
	if (!tmp)
		return -ENOMEM;
	int r = mcfg_tree_foreach(update->root, merge_section, tmp);
	if (r < 0) {
		mcfg_free(tmp);
		return r;
	}
	struct mallafs_cfg old = *dst;
	*dst = *tmp;
	*tmp = old;
	mcfg_free(tmp);
	return 0;
}

static bool str_eq_null(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool section_equal(const struct mcfg_section *sa, const struct mcfg_section *sb)
{
	if (strcmp(sa->name, sb->name) != 0 || sa->removed != sb->removed || sa->nkeys != sb->nkeys)
		return false;
	for (size_t j = 0; j < sa->nkeys; j++) {
		if (strcmp(sa->keys[j].name, sb->keys[j].name) != 0 ||
		    !str_eq_null(sa->keys[j].value, sb->keys[j].value))
			return false;
	}
	return true;
}

bool mcfg_equal(const struct mallafs_cfg *a, const struct mallafs_cfg *b)
{
	if (!a || !b)
		return a == b;
	return mcfg_tree_equal(a->root, b->root, section_equal);
}

int mcfg_line(const struct mallafs_cfg *cfg, const char *section, const char *key)
{
	if (!cfg || !section)
		return 0;
	const struct mcfg_section *s = mcfg_tree_get(cfg->root, section);
	if (!s)
		return 0;
	if (!key)
		return s->line;
	const struct mcfg_key *k = mcfg_key_find(s, key, NULL);
	return k ? k->line : 0;
}

/* Keys. */

int mcfg_key_check(const char *key, const char **ret_why)
{
	const char *why = NULL;
	size_t len = key ? strnlen(key, MU_NAME_MAX + 1) : 0;

	if (mu_name_check(key, len, MU_NAME_FILE) < 0) {
		why = "not a valid file name";
	} else if (key[0] == ' ' || key[len - 1] == ' ') {
		why = "a space at either end would not survive config.ini";
	} else {
		for (size_t i = 0; i < len && !why; i++) {
			unsigned char c = (unsigned char)key[i];
			if (c < 0x20 || c == 0x7f)
				why = "a control character (a newline, a tab) cannot be written in "
				      "config.ini";
			else if (strchr("=:[];#", c))
				why = "'=', ':', '[', ']', ';' and '#' are INI syntax";
		}
	}
	if (ret_why)
		*ret_why = why;
	return why ? -EINVAL : 0;
}

/* The plugin API. */

const char *mallafs_cfg_get(const struct mallafs_cfg *cfg, const char *section, const char *key)
{
	const struct mcfg_section *s = section_live(cfg, section);
	if (!s || !key)
		return NULL;
	const struct mcfg_key *k = mcfg_key_find(s, key, NULL);
	return k ? k->value : NULL;
}

int mallafs_cfg_set(struct mallafs_cfg *cfg, const char *section, const char *key,
                    const char *value)
{
	if (!cfg || !section || !value || mcfg_key_check(key, NULL) < 0)
		return -EINVAL;
	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	int r = mcfg_put_key(cfg, section, key, v, 0);
	if (r < 0)
		free(v);
	return r;
}

int mallafs_cfg_unset(struct mallafs_cfg *cfg, const char *section, const char *key)
{
	if (!cfg || !section || !key)
		return -EINVAL;
	const struct mcfg_section *c = section_live(cfg, section);
	size_t idx;
	if (!c)
		return -ENOENT;
	const struct mcfg_key *k = mcfg_key_find(c, key, &idx);
	/* A tombstone holds no value: there is nothing to unset. */
	if (!k || !k->value)
		return -ENOENT;
	int r;
	struct mcfg_section *s = mcfg_tree_mut(&cfg->root, section, &r);
	if (s)
		key_remove(s, idx);
	return r;
}

int mallafs_cfg_foreach(const struct mallafs_cfg *cfg, const char *section,
                        int (*fn)(const char *key, const char *value, void *arg), void *arg)
{
	const struct mcfg_section *s = section_live(cfg, section);
	if (!s || !fn)
		return 0;
	for (size_t i = 0; i < s->nkeys; i++) {
		if (!s->keys[i].value)
			continue;
		int r = fn(s->keys[i].name, s->keys[i].value, arg);
		if (r)
			return r;
	}
	return 0;
}

const char *mallafs_setting(const struct mallafs_cfg *cfg, const struct mallafs_plugin *self,
                            const char *key)
{
	if (!self || !self->name || !key)
		return NULL;
	const char *v = mallafs_cfg_get(cfg, self->name, key);
	if (v)
		return v;
	for (const struct mallafs_setting *s = self->settings; s && s->key; s++)
		if (strcmp(s->key, key) == 0)
			return s->def;
	return NULL;
}
