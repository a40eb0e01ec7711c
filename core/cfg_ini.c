/* SPDX-License-Identifier: MIT */
/* A configuration as INI text: rendering it, and parsing it with inih.
 * The model itself is in cfg.c. */
#include "cfg_i.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "util.h"

/* Stands for ';' while inih reads a line (see next_line). */
#define INI_SEMICOLON '\x01'

/* inih as Debian builds it takes its options at run time: a line buffer on
 * the heap that grows to fit the line, so lines have no length limit. The
 * cap only bounds the doubling (inih's counters are ints). Set once, before
 * the first parse; nothing else in the daemon uses inih. */
#define INI_LINE_CAP (1 << 30)

static pthread_once_t ini_once = PTHREAD_ONCE_INIT;

static void ini_setup(void)
{
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = INI_LINE_CAP;
}

/* INI rendering.
 *
 * A value is written plain when the parser gives it back as it is: no
 * control character but tabs inside lines, no space at either end of any of
 * its lines, no empty line and none starting with '#' or ';' after the
 * first (inih drops those), and no '"' first. Each newline then starts an
 * indented continuation line. Any other value is quoted: "..." with
 * escapes, one piece per line of the value, on indented lines that the
 * parser joins with nothing between them. */

static bool plain_ok(const char *v)
{
	if (v[0] == '"')
		return false;
	for (size_t line = 0;; line++) {
		size_t n = strcspn(v, "\n");
		if (n == 0 && line > 0)
			return false;
		if (n > 0 && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))
			return false;
		if (line > 0 && (v[0] == '#' || v[0] == ';'))
			return false;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v[i];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return false;
		}
		if (!v[n])
			return true;
		v += n + 1;
	}
}

static int render_quoted(struct mu_buf *b, const char *v)
{
	int r = mu_buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)v; r == 0 && *p; p++) {
		switch (*p) {
		case '\\':
			r = mu_buf_append(b, "\\\\", 2);
			break;
		case '"':
			r = mu_buf_append(b, "\\\"", 2);
			break;
		case '\t':
			r = mu_buf_append(b, "\\t", 2);
			break;
		case '\r':
			r = mu_buf_append(b, "\\r", 2);
			break;
		case '\n':
			/* A piece per line of the value, but none empty at the end. */
			r = mu_buf_append(b, p[1] ? "\\n\"\n  \"" : "\\n", p[1] ? 7 : 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				r = mu_buf_printf(b, "\\x%02x", *p);
			else
				r = mu_buf_append(b, p, 1);
		}
	}
	return r ? r : mu_buf_append(b, "\"\n", 2);
}

/* Writes a value, plain or quoted (see above), and the end of its line. */
static int render_value(struct mu_buf *b, const char *v)
{
	int r;
	if (!plain_ok(v))
		return render_quoted(b, v);
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
 * inih drives the parse; our reader feeds it from the buffer, a line at a
 * time (in as many pieces as inih's growing buffer asks for), which lets us
 * do what inih alone cannot: count lines (the handler gets no line number),
 * see bare section headers (the handler is not called for them), keep
 * section names past inih's 50-byte section buffer, and tell an indented
 * continuation line from a repeated key. The reader mirrors inih's own rules
 * for what a header and a continuation are, so both stay in step. A value
 * grows in a buffer of the state while continuation lines come, and goes to
 * the configuration when the next key or header, or the end, comes. */

struct ini_state {
	const char *text;
	size_t len;
	size_t pos;
	int lineno;
	struct mu_buf line; /* the current line as inih is given it */
	size_t line_off;    /* how much of it inih has had */
	struct mallafs_cfg *cfg;
	/* Names point into cfg, which never frees a section or key during a parse. */
	const char *section;  /* NULL before the first header */
	const char *last_key; /* the key a continuation line extends */
	bool quoted;          /* last_key's value is quoted */
	struct mu_buf value;  /* last_key's value so far */
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

/* Hands the value being read to its key in cfg. */
static void flush_value(struct ini_state *st)
{
	if (!st->last_key)
		return;
	char *v = mu_buf_steal(&st->value, NULL);
	if (!v) {
		ini_fail(st, -ENOMEM, "out of memory");
		return;
	}
	struct mcfg_section *s = mcfg_section_find(st->cfg, st->section, NULL);
	struct mcfg_key *k = mcfg_key_find(s, st->last_key, NULL);
	free(k->value);
	k->value = v;
	st->last_key = NULL;
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

	flush_value(st);
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
	st->have_prev = false;
	return !st->err;
}

/* Takes the next line of the text into st->line, as inih is to see it.
 * False at the end of the text or on an error. */
static bool next_line(struct ini_state *st)
{
	if (st->err || st->pos >= st->len)
		return false;
	const char *start = st->text + st->pos;
	const char *nl = memchr(start, '\n', st->len - st->pos);
	size_t n = nl ? (size_t)(nl - start) : st->len - st->pos;
	st->pos += n + (nl ? 1 : 0);
	st->lineno++;

	if (memchr(start, '\0', n)) {
		ini_fail(st, -EINVAL, "NUL byte");
		return false;
	}
	if (n && start[n - 1] == '\r')
		n--;
	/* Room for the newline and the NUL, or inih would cut the line in two. */
	if (n > INI_LINE_CAP - 2) {
		ini_fail(st, -EINVAL, "longer than %d bytes", INI_LINE_CAP - 2);
		return false;
	}
	if (memchr(start, INI_SEMICOLON, n)) {
		ini_fail(st, -EINVAL, "control character \\x01");
		return false;
	}
	st->line.len = 0;
	st->line_off = 0;
	if (mu_buf_append(&st->line, start, n) < 0 || mu_buf_append(&st->line, "\n", 1) < 0) {
		ini_fail(st, -ENOMEM, "out of memory");
		return false;
	}
	char *str = st->line.data;
	/* inih cuts a value at " ;" (an inline comment): hide the semicolons of
	 * every line but a comment from it, so that what config.ini shows reads
	 * back the same; the handler puts them back. A comment is what inih
	 * takes for one: ';' or '#' after any isspace() (a '\r' too). */
	size_t lead = 0;
	while (lead < n && isspace((unsigned char)str[lead]))
		lead++;
	if (str[lead] != ';' && str[lead] != '#')
		for (size_t i = lead; i < n; i++)
			if (str[i] == ';')
				str[i] = INI_SEMICOLON;
	st->indented = isspace((unsigned char)str[0]) != 0;
	return ini_header(st, str);
}

/* inih's reader: fgets() over our lines. */
static char *parse_reader(char *str, int num, void *stream)
{
	struct ini_state *st = stream;

	if (num < 2)
		return NULL;
	if (st->line_off >= st->line.len && !next_line(st))
		return NULL;
	size_t n = st->line.len - st->line_off;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1;
	memcpy(str, st->line.data + st->line_off, n);
	str[n] = '\0';
	st->line_off += n;
	return str;
}

static char *unmask(const char *s)
{
	char *c = strdup(s);
	for (char *p = c; p && *p; p++)
		if (*p == INI_SEMICOLON)
			*p = ';';
	return c;
}

/* Appends the bytes of one quoted piece ("..." with escapes, as inih gives
 * it: trimmed) to st->value. */
static int unquote(struct ini_state *st, const char *piece)
{
	size_t n = strlen(piece);
	if (n < 2 || piece[0] != '"' || piece[n - 1] != '"') {
		ini_fail(st, -EINVAL, "a quoted value is one \"...\" piece per line");
		return -EINVAL;
	}
	for (size_t i = 1; i < n - 1; i++) {
		char c = piece[i];
		if (c == '"') {
			ini_fail(st, -EINVAL, "a '\"' inside a quoted value must be written \\\"");
			return -EINVAL;
		}
		if (c == '\\') {
			if (i + 1 >= n - 1) {
				ini_fail(st, -EINVAL, "a quoted value ends inside an escape");
				return -EINVAL;
			}
			switch (piece[++i]) {
			case '\\':
			case '"':
				c = piece[i];
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'x': {
				int hi = i + 2 < n - 1 ? mu_hex_digit((unsigned char)piece[i + 1])
				                       : -1;
				int lo = hi >= 0 ? mu_hex_digit((unsigned char)piece[i + 2]) : -1;
				if (lo < 0 || (hi == 0 && lo == 0)) {
					ini_fail(st, -EINVAL, "\\x takes two hex digits, not 00");
					return -EINVAL;
				}
				c = (char)(hi * 16 + lo);
				i += 2;
				break;
			}
			default:
				ini_fail(st, -EINVAL, "unknown escape \\%c in a quoted value",
				         piece[i]);
				return -EINVAL;
			}
		}
		if (mu_buf_append(&st->value, &c, 1) < 0) {
			ini_fail(st, -ENOMEM, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

/* The value part of a line: a quoted piece, or plain text. */
static int take_value(struct ini_state *st, const char *value, bool continued)
{
	if (st->quoted)
		return unquote(st, value);
	if ((continued && mu_buf_append(&st->value, "\n", 1) < 0) ||
	    mu_buf_append(&st->value, value, strlen(value)) < 0) {
		ini_fail(st, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int parse_key(struct ini_state *st, const char *name, const char *value)
{
	const char *why;

	if (st->err)
		return 0;
	/* inih's test for a continuation line, which it passes with the
	 * previous key's name cut to its 50-byte buffer: use ours. */
	if (st->indented && st->have_prev) {
		if (!st->section || !st->last_key) {
			ini_fail(st, -EINVAL, "continuation line without a key");
			return 0;
		}
		return take_value(st, value, true) == 0;
	}
	flush_value(st);
	st->have_prev = name[0] != '\0';
	if (!st->section) {
		ini_fail(st, -EINVAL, "key '%s' outside a section", name);
		return 0;
	}
	if (mcfg_key_check(name, &why) < 0) {
		ini_fail(st, -EINVAL, "invalid key name '%s': %s", name, why);
		return 0;
	}
	if (mallafs_cfg_get(st->cfg, st->section, name)) {
		ini_fail(st, -EINVAL, "duplicate key '%s' in [%s]", name, st->section);
		return 0;
	}
	/* The key holds "" until its value is complete (flush_value). */
	char *v = strdup("");
	if (!v || mcfg_put_key(st->cfg, st->section, name, v, st->lineno) < 0) {
		free(v);
		ini_fail(st, -ENOMEM, "out of memory");
		return 0;
	}
	/* mcfg_put_key found the section, so the key's name is stable in cfg. */
	struct mcfg_section *s = mcfg_section_find(st->cfg, st->section, NULL);
	st->last_key = mcfg_key_find(s, name, NULL)->name;
	st->value.len = 0;
	st->quoted = value[0] == '"';
	return take_value(st, value, false) == 0;
}

static int parse_handler(void *user, const char *section, const char *name, const char *value)
{
	struct ini_state *st = user;
	if (!name || !value)
		return 1;
	char *n = unmask(name), *v = unmask(value);
	int r = 0;
	if (n && v)
		r = parse_key(st, n, v);
	else
		ini_fail(st, -ENOMEM, "out of memory");
	free(n);
	free(v);
	return r;
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
	pthread_once(&ini_once, ini_setup);
	st.cfg = mcfg_new();
	if (!st.cfg)
		return -ENOMEM;
	/* Drop a UTF-8 BOM here, so the reader's view of line 1 is inih's. */
	if (st.len >= 3 && memcmp(st.text, "\xEF\xBB\xBF", 3) == 0)
		st.pos = 3;

	int ini_line = ini_parse_stream(parse_reader, &st, parse_handler, &st);
	flush_value(&st);
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
	mu_buf_free(&st.line);
	mu_buf_free(&st.value);
	if (ret_line)
		*ret_line = line;
	if (r < 0) {
		mcfg_free(st.cfg);
		return r;
	}
	*ret = st.cfg;
	return 0;
}
