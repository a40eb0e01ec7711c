/* The configuration model. Sections and their keys live in arrays kept sorted
 * by strcmp, so lookups are binary searches and every walk (foreach, render,
 * equal) sees one stable order without sorting. Configurations are small and
 * rarely written, so the memmove on insertion costs nothing that matters. */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "util.h"

/* Stands for ';' while inih reads a line (see parse_reader). */
#define INI_SEMICOLON '\x01'

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
static struct mcfg_section *section_find(const struct mallafs_cfg *cfg, const char *name,
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
	struct mcfg_section *s = section_find(cfg, name, NULL);
	return s && !s->removed ? s : NULL;
}

static struct mcfg_key *key_find(const struct mcfg_section *s, const char *name, size_t *ret_idx)
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

/* Inserts an empty section at idx (from section_find). Pointers into
 * cfg->secs are invalid afterwards. */
static int section_insert(struct mallafs_cfg *cfg, size_t idx, const char *name, int line,
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

/* Inserts a key at idx (from key_find), taking ownership of value (which may
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
static int put_key(struct mallafs_cfg *cfg, const char *section, const char *key, char *value,
                   int line)
{
	size_t si, ki;
	struct mcfg_section *s = section_find(cfg, section, &si);
	bool created = false;
	int r;

	if (!s) {
		r = section_insert(cfg, si, section, 0, &s);
		if (r < 0)
			return r;
		created = true;
	}
	struct mcfg_key *k = key_find(s, key, &ki);
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
	struct mcfg_section *s = section_find(cfg, section, &idx);
	if (s) {
		/* Adding a section replaces its tombstone, as a set does. */
		if (!s->removed)
			return -EEXIST;
		s->removed = false;
		return 0;
	}
	return section_insert(cfg, idx, section, 0, NULL);
}

int mcfg_del_section(struct mallafs_cfg *cfg, const char *section)
{
	if (!cfg || !section)
		return -EINVAL;
	size_t idx;
	struct mcfg_section *s = section_find(cfg, section, &idx);
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
	struct mcfg_section *s = section_find(update, section, NULL);
	/* The whole section goes already, this key with it. */
	if (s && s->removed)
		return 0;
	return put_key(update, section, key, NULL, 0);
}

int mcfg_set_removed_section(struct mallafs_cfg *update, const char *section)
{
	if (!update || !section)
		return -EINVAL;
	size_t idx;
	struct mcfg_section *s = section_find(update, section, &idx);
	if (!s) {
		int r = section_insert(update, idx, section, 0, &s);
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
	struct mcfg_section *s = section_find(cfg, u->name, &idx);
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
		r = section_insert(cfg, idx, u->name, u->line, &s);
		if (r < 0)
			return r;
	}
	s->removed = false;
	for (size_t i = 0; i < u->nkeys; i++) {
		const struct mcfg_key *k = &u->keys[i];
		size_t ki;
		if (!k->value) {
			if (key_find(s, k->name, &ki))
				key_remove(s, ki);
			continue;
		}
		char *v = strdup(k->value);
		if (!v)
			return -ENOMEM;
		r = put_key(cfg, u->name, k->name, v, k->line);
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
	const struct mcfg_section *s = section_find(cfg, section, NULL);
	if (!s)
		return 0;
	if (!key)
		return s->line;
	const struct mcfg_key *k = key_find(s, key, NULL);
	return k ? k->line : 0;
}

size_t mcfg_max_line(void)
{
	/* inih reads a line fgets-style into INI_MAX_LINE bytes, which must
	 * also hold the newline and the NUL. */
	return INI_MAX_LINE - 2;
}

/* The plugin API. */

const char *mallafs_cfg_get(const struct mallafs_cfg *cfg, const char *section, const char *key)
{
	const struct mcfg_section *s = section_live(cfg, section);
	if (!s || !key)
		return NULL;
	const struct mcfg_key *k = key_find(s, key, NULL);
	return k ? k->value : NULL;
}

int mallafs_cfg_set(struct mallafs_cfg *cfg, const char *section, const char *key,
                    const char *value)
{
	if (!cfg || !section || !key || !value)
		return -EINVAL;
	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	int r = put_key(cfg, section, key, v, 0);
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
	struct mcfg_key *k = key_find(s, key, &idx);
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

/* Writes a value, turning each embedded newline into a continuation line
 * (indented by two spaces) that the parser joins back with '\n'. */
static int render_value(struct mu_buf *b, const char *v)
{
	int r;
	for (;;) {
		const char *nl = strchr(v, '\n');
		size_t n = nl ? (size_t)(nl - v) : strlen(v);
		r = mu_buf_append(b, v, n);
		if (r < 0)
			return r;
		if (!nl)
			break;
		r = mu_buf_append(b, "\n  ", 3);
		if (r < 0)
			return r;
		v = nl + 1;
	}
	return mu_buf_append(b, "\n", 1);
}

int mallafs_cfg_render(const struct mallafs_cfg *cfg, char **ret_text, size_t *ret_len)
{
	struct mu_buf b = {0};
	bool first = true;
	int r = 0;

	if (!ret_text)
		return -EINVAL;
	for (size_t i = 0; cfg && i < cfg->nsecs; i++) {
		const struct mcfg_section *s = &cfg->secs[i];
		if (s->removed)
			continue;
		r = mu_buf_printf(&b, "%s[%s]\n", first ? "" : "\n", s->name);
		if (r < 0)
			goto fail;
		first = false;
		for (size_t j = 0; j < s->nkeys; j++) {
			if (!s->keys[j].value)
				continue;
			r = mu_buf_printf(&b, "%s = ", s->keys[j].name);
			if (r < 0)
				goto fail;
			r = render_value(&b, s->keys[j].value);
			if (r < 0)
				goto fail;
		}
	}
	size_t len;
	char *text = mu_buf_steal(&b, &len);
	if (!text) {
		r = -ENOMEM;
		goto fail;
	}
	*ret_text = text;
	if (ret_len)
		*ret_len = len;
	return 0;
fail:
	mu_buf_free(&b);
	return r;
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

/* INI parsing.
 *
 * inih drives the parse; our reader feeds it one line at a time from the
 * buffer, which lets us do what this inih build cannot: count lines (the
 * handler gets no line number), refuse over-long lines instead of letting
 * inih split them, see bare section headers (the handler is not called for
 * them), keep section names past inih's 50-byte section buffer, and tell an
 * indented continuation line from a repeated key. The reader mirrors inih's
 * own rules for what a header and a continuation are, so both stay in step. */

struct ini_state {
	const char *text;
	size_t len;
	size_t pos;
	int lineno;
	struct mallafs_cfg *cfg;
	/* Names point into cfg, which never frees a section or key during a parse. */
	const char *section;  /* NULL before the first header */
	const char *last_key; /* the key a continuation line extends */
	bool have_prev;       /* inih's "prev_name is set" */
	bool indented;        /* the current raw line starts with whitespace */
	int err;              /* first error of ours, -errno */
	int err_line;
	char msg[512];
};

static void ini_fail(struct ini_state *st, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void ini_fail(struct ini_state *st, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (st->err)
		return;
	st->err = err;
	st->err_line = st->lineno;
	n = snprintf(st->msg, sizeof(st->msg), "line %d: ", st->lineno);
	if (n < 0 || (size_t)n >= sizeof(st->msg))
		return;
	va_start(ap, fmt);
	vsnprintf(st->msg + n, sizeof(st->msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* inih's find_chars_or_comment() for "]": the end of a section name, stopped
 * early by an inline comment (';' after whitespace). */
static const char *header_end(const char *s)
{
	bool was_space = false;
	while (*s && *s != ']' && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

/* Sees a section header before inih does. Returns false to stop the parse. */
static bool ini_header(struct ini_state *st, const char *line)
{
	const char *p = line;
	while (*p && isspace((unsigned char)*p))
		p++;
	/* An indented line after a key continues its value, '[' or not. */
	if (*p != '[' || (st->indented && st->have_prev))
		return true;
	const char *end = header_end(p + 1);
	if (*end != ']')
		return true; /* inih reports the syntax error */

	char *name = mu_memdup0(p + 1, (size_t)(end - p - 1));
	if (!name) {
		ini_fail(st, -ENOMEM, "out of memory");
		return false;
	}
	if (mu_name_check_str(name, MU_NAME_STRICT) < 0) {
		ini_fail(st, -EINVAL, "invalid section name '%s'", name);
		free(name);
		return false;
	}
	size_t idx;
	struct mcfg_section *s = section_find(st->cfg, name, &idx);
	if (!s && section_insert(st->cfg, idx, name, st->lineno, &s) < 0) {
		free(name);
		ini_fail(st, -ENOMEM, "out of memory");
		return false;
	}
	free(name);
	st->section = s->name;
	st->last_key = NULL;
	st->have_prev = false;
	return true;
}

static char *parse_reader(char *str, int num, void *stream)
{
	struct ini_state *st = stream;

	if (st->err || st->pos >= st->len)
		return NULL;
	const char *start = st->text + st->pos;
	const char *nl = memchr(start, '\n', st->len - st->pos);
	size_t n = nl ? (size_t)(nl - start) : st->len - st->pos;
	st->pos += n + (nl ? 1 : 0);
	st->lineno++;

	if (memchr(start, '\0', n)) {
		ini_fail(st, -EINVAL, "NUL byte");
		return NULL;
	}
	if (n && start[n - 1] == '\r')
		n--;
	/* Room for the newline and the NUL, or inih would cut the line in two. */
	if (num < 2 || n > (size_t)num - 2) {
		ini_fail(st, -EINVAL, "longer than %d bytes", num < 2 ? 0 : num - 2);
		return NULL;
	}
	if (memchr(start, INI_SEMICOLON, n)) {
		ini_fail(st, -EINVAL, "control character \\x01");
		return NULL;
	}
	memcpy(str, start, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	/* inih cuts a value at " ;" (an inline comment): hide the semicolons of
	 * every line but a comment from it, so that what config.ini shows reads
	 * back the same; the handler puts them back. */
	size_t lead = strspn(str, " \t");
	if (str[lead] != ';' && str[lead] != '#')
		for (size_t i = lead; i < n; i++)
			if (str[i] == ';')
				str[i] = INI_SEMICOLON;
	st->indented = isspace((unsigned char)str[0]) != 0;
	if (!ini_header(st, str))
		return NULL;
	return str;
}

/* Appends "\n" + more to the value of the key the previous line set. */
static int ini_continue(struct ini_state *st, const char *more)
{
	struct mcfg_section *s = section_find(st->cfg, st->section, NULL);
	struct mcfg_key *k = s ? key_find(s, st->last_key, NULL) : NULL;
	if (!k || !k->value)
		return -EINVAL;
	size_t a = strlen(k->value), b = strlen(more);
	char *v = malloc(a + b + 2);
	if (!v)
		return -ENOMEM;
	memcpy(v, k->value, a);
	v[a] = '\n';
	memcpy(v + a + 1, more, b + 1);
	free(k->value);
	k->value = v;
	return 0;
}

static char *unmask(const char *s)
{
	char *c = strdup(s);
	for (char *p = c; p && *p; p++)
		if (*p == INI_SEMICOLON)
			*p = ';';
	return c;
}

static int parse_handler_unmasked(struct ini_state *st, const char *name, const char *value);

static int parse_handler(void *user, const char *section, const char *name, const char *value)
{
	struct ini_state *st = user;
	if (!name || !value)
		return 1;
	char *n = unmask(name), *v = unmask(value);
	int r = 0;
	if (n && v)
		r = parse_handler_unmasked(st, n, v);
	else
		ini_fail(st, -ENOMEM, "out of memory");
	free(n);
	free(v);
	return r;
}

static int parse_handler_unmasked(struct ini_state *st, const char *name, const char *value)
{
	int r;

	if (st->err)
		return 0;
	/* inih's test for a continuation line, which it passes with the
	 * previous key's name cut to its 50-byte buffer: use ours. */
	if (st->indented && st->have_prev) {
		if (!st->section || !st->last_key) {
			ini_fail(st, -EINVAL, "continuation line without a key");
			return 0;
		}
		r = ini_continue(st, value);
		if (r < 0) {
			ini_fail(st, r, "%s", r == -ENOMEM ? "out of memory" : "bad continuation");
			return 0;
		}
		return 1;
	}
	st->have_prev = name[0] != '\0';
	st->last_key = NULL;
	if (!st->section) {
		ini_fail(st, -EINVAL, "key '%s' outside a section", name);
		return 0;
	}
	if (mu_name_check_str(name, MU_NAME_FILE) < 0) {
		ini_fail(st, -EINVAL, "invalid key name '%s'", name);
		return 0;
	}
	if (mallafs_cfg_get(st->cfg, st->section, name)) {
		ini_fail(st, -EINVAL, "duplicate key '%s' in [%s]", name, st->section);
		return 0;
	}
	char *v = strdup(value);
	if (!v || put_key(st->cfg, st->section, name, v, st->lineno) < 0) {
		free(v);
		ini_fail(st, -ENOMEM, "out of memory");
		return 0;
	}
	/* put_key found the section, so the key's name is stable in cfg. */
	struct mcfg_section *s = section_find(st->cfg, st->section, NULL);
	st->last_key = key_find(s, name, NULL)->name;
	return 1;
}

int mcfg_parse_ini(const char *text, size_t len, struct mallafs_cfg **ret, int *ret_line, char *err,
                   size_t errlen)
{
	struct ini_state st = {.text = text, .len = text ? len : 0};
	int r = 0, line = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!ret)
		return -EINVAL;
	st.cfg = mcfg_new();
	if (!st.cfg)
		return -ENOMEM;
	/* Drop a UTF-8 BOM here, so the reader's view of line 1 is inih's. */
	if (st.len >= 3 && memcmp(st.text, "\xEF\xBB\xBF", 3) == 0)
		st.pos = 3;

	int ini_line = ini_parse_stream(parse_reader, &st, parse_handler, &st);
	/* inih goes on past its own syntax errors and returns the first line;
	 * ours stop the reader. The earlier of the two is the first error. */
	if (ini_line > 0 && (!st.err || ini_line < st.err_line)) {
		r = -EINVAL;
		line = ini_line;
		if (err && errlen)
			snprintf(err, errlen,
			         "line %d: syntax error (expected [section] or key = value)", line);
	} else if (st.err) {
		r = st.err;
		line = st.err_line;
		if (err && errlen)
			snprintf(err, errlen, "%s", st.msg);
	} else if (ini_line < 0) {
		r = -ENOMEM;
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
	}
	if (ret_line)
		*ret_line = line;
	if (r < 0) {
		mcfg_free(st.cfg);
		return r;
	}
	*ret = st.cfg;
	return 0;
}
