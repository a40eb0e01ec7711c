/* The configuration model. Sections and their keys live in arrays kept sorted
 * by strcmp, so lookups are binary searches and every walk (foreach, render,
 * equal) sees one stable order without sorting. Configurations are small and
 * rarely written, so the memmove on insertion costs nothing that matters.
 * Reading and writing INI text is in cfg_ini.c. */
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

static void section_clear(struct mcfg_section *s)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		free(s->keys[i].name);
		free(s->keys[i].value);
	}
	free(s->keys);
	s->keys = NULL;
	s->nkeys = 0;
	s->cap = 0;
}

static void section_free(struct mcfg_section *s)
{
	section_clear(s);
	free(s->name);
}

/* The section called name, or NULL with *ret_idx where it would go. */
struct mcfg_section *mcfg_section_find(const struct mallafs_cfg *cfg, const char *name,
                                       size_t *ret_idx)
{
	size_t lo = 0, hi = cfg->nsecs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, cfg->secs[mid].name);
		if (c == 0) {
			if (ret_idx)
				*ret_idx = mid;
			return &cfg->secs[mid];
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

/* A live section: tombstoned sections are invisible to readers. */
static struct mcfg_section *section_live(const struct mallafs_cfg *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	struct mcfg_section *s = mcfg_section_find(cfg, name, NULL);
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

/* Inserts an empty section at idx (from mcfg_section_find). Pointers into
 * cfg->secs are invalid afterwards. */
int mcfg_section_insert(struct mallafs_cfg *cfg, size_t idx, const char *name, int line,
                        struct mcfg_section **ret)
{
	char *n = strdup(name);
	if (!n)
		return -ENOMEM;
	struct mcfg_section *secs = grow(cfg->secs, &cfg->cap, cfg->nsecs, sizeof(*secs));
	if (!secs) {
		free(n);
		return -ENOMEM;
	}
	cfg->secs = secs;
	memmove(&cfg->secs[idx + 1], &cfg->secs[idx], (cfg->nsecs - idx) * sizeof(*cfg->secs));
	cfg->secs[idx] = (struct mcfg_section){.name = n, .line = line};
	cfg->nsecs++;
	if (ret)
		*ret = &cfg->secs[idx];
	return 0;
}

static void section_remove(struct mallafs_cfg *cfg, size_t idx)
{
	section_free(&cfg->secs[idx]);
	memmove(&cfg->secs[idx], &cfg->secs[idx + 1], (cfg->nsecs - idx - 1) * sizeof(*cfg->secs));
	cfg->nsecs--;
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
	size_t si, ki;
	struct mcfg_section *s = mcfg_section_find(cfg, section, &si);
	bool created = false;
	int r;

	if (!s) {
		r = mcfg_section_insert(cfg, si, section, 0, &s);
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
			section_remove(cfg, si);
		return r;
	}
	s->removed = false;
	return 0;
}

static int section_copy(struct mcfg_section *dst, const struct mcfg_section *src)
{
	*dst = (struct mcfg_section){.removed = src->removed, .line = src->line};
	dst->name = strdup(src->name);
	if (!dst->name)
		goto fail;
	if (src->nkeys) {
		dst->keys = calloc(src->nkeys, sizeof(*dst->keys));
		if (!dst->keys)
			goto fail;
		dst->cap = src->nkeys;
	}
	for (size_t i = 0; i < src->nkeys; i++) {
		struct mcfg_key *d = &dst->keys[i];
		const struct mcfg_key *k = &src->keys[i];
		d->line = k->line;
		d->name = strdup(k->name);
		/* Count the key before checking, so section_free sees partial copies. */
		dst->nkeys++;
		if (!d->name)
			goto fail;
		if (k->value) {
			d->value = strdup(k->value);
			if (!d->value)
				goto fail;
		}
	}
	return 0;
fail:
	section_free(dst);
	return -ENOMEM;
}

struct mallafs_cfg *mcfg_new(void)
{
	return calloc(1, sizeof(struct mallafs_cfg));
}

void mcfg_free(struct mallafs_cfg *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nsecs; i++)
		section_free(&cfg->secs[i]);
	free(cfg->secs);
	free(cfg);
}

struct mallafs_cfg *mcfg_dup(const struct mallafs_cfg *cfg)
{
	struct mallafs_cfg *d = mcfg_new();
	if (!d || !cfg || !cfg->nsecs)
		return d;
	d->secs = calloc(cfg->nsecs, sizeof(*d->secs));
	if (!d->secs)
		goto fail;
	d->cap = cfg->nsecs;
	for (size_t i = 0; i < cfg->nsecs; i++) {
		if (section_copy(&d->secs[i], &cfg->secs[i]) < 0)
			goto fail;
		d->nsecs++;
	}
	return d;
fail:
	mcfg_free(d);
	return NULL;
}

int mcfg_add_section(struct mallafs_cfg *cfg, const char *section)
{
	if (!cfg || !section)
		return -EINVAL;
	size_t idx;
	struct mcfg_section *s = mcfg_section_find(cfg, section, &idx);
	if (s) {
		/* Adding a section replaces its tombstone, as a set does. */
		if (!s->removed)
			return -EEXIST;
		s->removed = false;
		return 0;
	}
	return mcfg_section_insert(cfg, idx, section, 0, NULL);
}

int mcfg_del_section(struct mallafs_cfg *cfg, const char *section)
{
	if (!cfg || !section)
		return -EINVAL;
	size_t idx;
	struct mcfg_section *s = mcfg_section_find(cfg, section, &idx);
	if (!s || s->removed)
		return -ENOENT;
	section_remove(cfg, idx);
	return 0;
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

size_t mcfg_nsections(const struct mallafs_cfg *cfg)
{
	size_t n = 0;
	if (!cfg)
		return 0;
	for (size_t i = 0; i < cfg->nsecs; i++)
		if (!cfg->secs[i].removed)
			n++;
	return n;
}

int mcfg_foreach_section(const struct mallafs_cfg *cfg, int (*fn)(const char *section, void *arg),
                         void *arg)
{
	if (!cfg || !fn)
		return 0;
	for (size_t i = 0; i < cfg->nsecs; i++) {
		if (cfg->secs[i].removed)
			continue;
		int r = fn(cfg->secs[i].name, arg);
		if (r)
			return r;
	}
	return 0;
}

int mcfg_set_removed_key(struct mallafs_cfg *update, const char *section, const char *key)
{
	if (!update || !section || !key)
		return -EINVAL;
	struct mcfg_section *s = mcfg_section_find(update, section, NULL);
	/* The whole section goes already, this key with it. */
	if (s && s->removed)
		return 0;
	return mcfg_put_key(update, section, key, NULL, 0);
}

int mcfg_set_removed_section(struct mallafs_cfg *update, const char *section)
{
	if (!update || !section)
		return -EINVAL;
	size_t idx;
	struct mcfg_section *s = mcfg_section_find(update, section, &idx);
	if (!s) {
		int r = mcfg_section_insert(update, idx, section, 0, &s);
		if (r < 0)
			return r;
	}
	/* Keys set before in this update would be removed with the section. */
	section_clear(s);
	s->removed = true;
	return 0;
}

/* Applies one section of an update to cfg (a scratch copy, so a failure
 * half-way does not matter: the caller throws the copy away). */
static int merge_section(struct mallafs_cfg *cfg, const struct mcfg_section *u)
{
	size_t idx;
	struct mcfg_section *s = mcfg_section_find(cfg, u->name, &idx);
	int r;

	if (u->removed) {
		if (s)
			section_remove(cfg, idx);
		return 0;
	}
	if (!s) {
		/* A section named only by key tombstones removes keys that are
		 * not there: nothing to do, and no reason to create it. An empty
		 * section, though, is an explicit "this section exists". */
		bool has_value = u->nkeys == 0;
		for (size_t i = 0; i < u->nkeys && !has_value; i++)
			has_value = u->keys[i].value != NULL;
		if (!has_value)
			return 0;
		r = mcfg_section_insert(cfg, idx, u->name, u->line, &s);
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

int mcfg_merge(struct mallafs_cfg *dst, const struct mallafs_cfg *update)
{
	if (!dst)
		return -EINVAL;
	if (!update)
		return 0;
	struct mallafs_cfg *tmp = mcfg_dup(dst);
	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < update->nsecs; i++) {
		int r = merge_section(tmp, &update->secs[i]);
		if (r < 0) {
			mcfg_free(tmp);
			return r;
		}
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

bool mcfg_equal(const struct mallafs_cfg *a, const struct mallafs_cfg *b)
{
	if (!a || !b)
		return a == b;
	if (a->nsecs != b->nsecs)
		return false;
	for (size_t i = 0; i < a->nsecs; i++) {
		const struct mcfg_section *sa = &a->secs[i], *sb = &b->secs[i];
		if (strcmp(sa->name, sb->name) != 0 || sa->removed != sb->removed ||
		    sa->nkeys != sb->nkeys)
			return false;
		for (size_t j = 0; j < sa->nkeys; j++) {
			if (strcmp(sa->keys[j].name, sb->keys[j].name) != 0 ||
			    !str_eq_null(sa->keys[j].value, sb->keys[j].value))
				return false;
		}
	}
	return true;
}

int mcfg_line(const struct mallafs_cfg *cfg, const char *section, const char *key)
{
	if (!cfg || !section)
		return 0;
	const struct mcfg_section *s = mcfg_section_find(cfg, section, NULL);
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
	struct mcfg_section *s = section_live(cfg, section);
	size_t idx;
	if (!s)
		return -ENOENT;
	struct mcfg_key *k = mcfg_key_find(s, key, &idx);
	/* A tombstone holds no value: there is nothing to unset. */
	if (!k || !k->value)
		return -ENOENT;
	key_remove(s, idx);
	return 0;
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
