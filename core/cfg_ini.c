/* A configuration as INI text: rendering it, and parsing it with inih.
 * The model itself is in cfg.c. */
#include "cfg_i.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "util.h"

/* Stands for ';' while inih reads a line (see parse_reader). */
#define INI_SEMICOLON '\x01'

size_t mcfg_max_line(void)
{
	/* inih reads a line fgets-style into INI_MAX_LINE bytes, which must
	 * also hold the newline and the NUL. */
	return INI_MAX_LINE - 2;
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
	for (const struct mcfg_section *s = mcfg_section_next(cfg, NULL); s;
	     s = mcfg_section_next(cfg, s)) {
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
	struct mcfg_section *s = mcfg_section_find(st->cfg, name, &idx);
	if (!s && mcfg_section_insert(st->cfg, idx, name, st->lineno, &s) < 0) {
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
	struct mcfg_section *s = mcfg_section_find(st->cfg, st->section, NULL);
	struct mcfg_key *k = s ? mcfg_key_find(s, st->last_key, NULL) : NULL;
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
	if (!v || mcfg_put_key(st->cfg, st->section, name, v, st->lineno) < 0) {
		free(v);
		ini_fail(st, -ENOMEM, "out of memory");
		return 0;
	}
	/* mcfg_put_key found the section, so the key's name is stable in cfg. */
	struct mcfg_section *s = mcfg_section_find(st->cfg, st->section, NULL);
	st->last_key = mcfg_key_find(s, name, NULL)->name;
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
