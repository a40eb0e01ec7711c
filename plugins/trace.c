/* SPDX-License-Identifier: MIT */
/* trace: a ring of the service's recent store operations and
 * reconfigurations, published read-only in services/NAME/trace, one line
 * each, oldest first:
 *
 *   2024-05-01T12:00:00.123Z put greeting 6
 *   2024-05-01T12:00:00.200Z get nope ENOENT
 *   2024-05-01T12:00:00.250Z put big EFBIG (value of 2048 bytes is over max_value_bytes 1024)
 *   2024-05-01T12:00:00.300Z rename greeting hello 0
 *   2024-05-01T12:00:01.000Z reconfigure limits.max_keys=10 -limits.max_value_bytes
 *
 * A store operation reads "OP KEY [NEW_KEY] RESULT [(REASON)]": RESULT is
 * the bytes read or written, 0, or the errno name of a failure, with the
 * refusing plugin's reason when it gave one. A read that finds no key is no
 * special case: it shows ENOENT. A reconfiguration lists every key whose
 * explicit value changed as SECTION.KEY=VALUE, a removed key as
 * -SECTION.KEY, a section added or removed empty as +[SECTION] or
 * -[SECTION]. Keys and values holding spaces, quotes, backslashes or
 * control characters are double-quoted with C escapes. "start" and "stop"
 * mark the plugin's own lifecycle (a restart shows both).
 *
 * Only what reaches this plugin is seen: an operation refused by a plugin
 * above it never does, so trace belongs at the top of the chain. */
#include "builtin.h"
#include "plugin_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRACE_LINES_MAX 100000
/* Longest line kept, timestamp included. Store operations always fit (two
 * keys of 255 bytes, escaped); a long reconfiguration is cut with "...". */
#define TRACE_LINE_MAX 4096
#define STAMP_LEN 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */

struct slot {
	char *text; /* NUL-terminated; reused, grown as needed */
	size_t cap;
};

struct trace {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;
	/* Guards everything below. GET hooks run concurrently under the
	 * store's read lock, renders too, and updated under neither. Held
	 * only to copy a line in or out, never across a call into the core. */
	pthread_mutex_t lock;
	struct slot *ring;
	size_t cap;   /* the lines setting in force */
	size_t first; /* index of the oldest line */
	size_t count;
	/* gmtime_r once per second, not per line. */
	time_t stamp_sec;
	char stamp[32];
};

static const struct mallafs_setting trace_settings[] = {
        {.key = "lines", .def = "100"},
        {.key = NULL},
};

/* ---- building a line ---- */

struct line {
	char buf[TRACE_LINE_MAX - STAMP_LEN - 1];
	size_t len;
	bool cut;
};

static void line_add(struct line *l, const char *s, size_t n)
{
	/* Room for "..." is kept so a cut line still says it was cut. */
	size_t room = sizeof(l->buf) - 3 - l->len;
	if (l->cut)
		return;
	if (n > room) {
		memcpy(l->buf + l->len, s, room);
		l->len += room;
		memcpy(l->buf + l->len, "...", 3);
		l->len += 3;
		l->cut = true;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void line_str(struct line *l, const char *s)
{
	line_add(l, s, strlen(s));
}

static void line_printf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line_printf(struct line *l, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		line_add(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static bool needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\')
			return true;
	return false;
}

/* One word of the line: as is when it is plain, else quoted with C escapes,
 * so that a line always splits on its spaces and keeps to one line. */
static void line_word(struct line *l, const char *s)
{
	if (!needs_quotes(s)) {
		line_str(l, s);
		return;
	}
	line_add(l, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[5];
		switch (*p) {
		case '"':
			line_add(l, "\\\"", 2);
			break;
		case '\\':
			line_add(l, "\\\\", 2);
			break;
		case '\n':
			line_add(l, "\\n", 2);
			break;
		case '\t':
			line_add(l, "\\t", 2);
			break;
		default:
			if (*p < ' ' || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", *p);
				line_add(l, esc, 4);
			} else {
				line_add(l, (const char *)p, 1);
			}
		}
	}
	line_add(l, "\"", 1);
}

/* ---- the ring ---- */

static void ring_free(struct slot *ring, size_t n)
{
	for (size_t i = 0; ring && i < n; i++)
		free(ring[i].text);
	free(ring);
}

/* Resizes to n lines, keeping the newest. The new array is made before the
 * lock is taken so that a failure changes nothing. */
static int ring_resize(struct trace *t, size_t n)
{
	struct slot *ring = calloc(n, sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	struct slot *old = t->ring;
	size_t oldcap = t->cap, keep = t->count < n ? t->count : n;
	size_t skip = t->count - keep;
	for (size_t i = 0; i < keep; i++) {
		struct slot *s = &old[(t->first + skip + i) % oldcap];
		ring[i] = *s;
		*s = (struct slot){0};
	}
	t->ring = ring;
	t->cap = n;
	t->first = 0;
	t->count = keep;
	pthread_mutex_unlock(&t->lock);
	/* What was dropped (the oldest lines) is freed outside the lock. */
	ring_free(old, oldcap);
	return 0;
}

static void stamp_now(struct trace *t, char *dst)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != t->stamp_sec || !t->stamp[0]) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(t->stamp, sizeof(t->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		t->stamp_sec = ts.tv_sec;
	}
	unsigned ms = (unsigned)(ts.tv_nsec / 1000000) % 1000;
	memcpy(dst, t->stamp, 19);
	dst[19] = '.';
	dst[20] = (char)('0' + ms / 100);
	dst[21] = (char)('0' + ms / 10 % 10);
	dst[22] = (char)('0' + ms % 10);
	dst[23] = 'Z';
}

/* Appends "TIMESTAMP TEXT" as the newest line, dropping the oldest when the
 * ring is full. The timestamp is taken under the lock, so lines are in time
 * order even when concurrent reads race to record. */
static void record(struct trace *t, const struct line *l)
{
	size_t need = STAMP_LEN + 1 + l->len + 1;
	bool done = false;

	pthread_mutex_lock(&t->lock);
	if (t->cap == 0)
		goto out;
	size_t idx = (t->first + t->count) % t->cap;
	struct slot *s = &t->ring[idx];
	if (s->cap < need) {
		/* Grown in steps so that a slot soon stops reallocating. */
		size_t cap = need < 128 ? 128 : (need + 127) / 128 * 128;
		char *p = realloc(s->text, cap);
		if (!p)
			goto out; /* the line is lost, the ring is intact */
		s->text = p;
		s->cap = cap;
	}
	stamp_now(t, s->text);
	s->text[STAMP_LEN] = ' ';
	memcpy(s->text + STAMP_LEN + 1, l->buf, l->len);
	s->text[STAMP_LEN + 1 + l->len] = '\0';
	if (t->count < t->cap)
		t->count++;
	else
		t->first = (t->first + 1) % t->cap;
	done = true;
out:
	pthread_mutex_unlock(&t->lock);
	if (done)
		mallafs_svc_file_changed(t->svc, "trace");
}

static void record_str(struct trace *t, const char *text)
{
	struct line l = {.len = 0};
	line_str(&l, text);
	record(t, &l);
}

/* ---- settings ---- */

static int check_lines(const struct trace *t, const struct mallafs_cfg *cfg, size_t *ret,
                       struct mallafs_reason *why)
{
	const char *v = mallafs_setting(cfg, t->self, "lines");
	char shown[48];
	uint64_t n;
	/* An empty ring would record nothing: at least one line. */
	if (pu_parse_uint(v, TRACE_LINES_MAX, &n) == 0 && n >= 1) {
		*ret = (size_t)n;
		return 0;
	}
	mallafs_reason_set(why, "lines must be an integer from 1 to %d, not '%s'", TRACE_LINES_MAX,
	                   pu_excerpt(v ? v : "", shown, sizeof(shown)));
	mallafs_reason_key(why, t->self->name, "lines");
	return -EINVAL;
}

/* A misspelt key would otherwise be accepted and silently do nothing. */
static int check_known(const char *key, const char *value, void *arg)
{
	struct mallafs_reason *why = arg;
	char shown[48];
	if (strcmp(key, "lines") == 0)
		return 0;
	mallafs_reason_set(why, "unknown setting '%s' (trace has lines)",
	                   pu_excerpt(key, shown, sizeof(shown)));
	mallafs_reason_key(why, NULL, key);
	return -EINVAL;
}

/* ---- callbacks ---- */

static int trace_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret_state)
{
	struct trace *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->svc = svc;
	t->self = self;
	pthread_mutex_init(&t->lock, NULL);
	*ret_state = t;
	return 0;
}

static void trace_fini(void *state)
{
	struct trace *t = state;
	if (!t)
		return;
	ring_free(t->ring, t->cap);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* The ring outlives stop and start: a restart keeps the history. */
static int trace_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct trace *t = state;
	size_t n;
	int r = check_lines(t, cfg, &n, why);
	if (r < 0)
		return r;
	if (n != t->cap) {
		r = ring_resize(t, n);
		if (r < 0) {
			mallafs_reason_set(why, "cannot keep %zu lines: out of memory", n);
			return r;
		}
	}
	record_str(t, "start");
	return 0;
}

static void trace_stop(void *state)
{
	record_str(state, "stop");
}

static int trace_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                       struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	struct trace *t = state;
	size_t n;
	int r = mallafs_cfg_foreach(merged, t->self->name, check_known, why);
	if (r == 0)
		r = check_lines(t, merged, &n, why);
	return r;
}

/* ---- what a reconfiguration changed ---- */

/* The plugin API walks the keys of a named section but cannot list the
 * sections, so they are read off the rendered INI text: a header is a whole
 * line "[NAME]" (section names are [A-Za-z0-9._-]); key lines hold " = "
 * and continuation lines start with spaces, so neither can pass for one. */
struct names {
	char **v;
	size_t n, cap;
};

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

static int names_add(struct names *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == len && memcmp(s->v[i], name, len) == 0)
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	char *copy = strndup(name, len);
	if (!copy)
		return -ENOMEM;
	s->v[s->n++] = copy;
	return 0;
}

static bool section_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int sections_of(const struct mallafs_cfg *cfg, struct names *out)
{
	char *text = NULL;
	size_t len = 0;
	int r = mallafs_cfg_render(cfg, &text, &len);
	if (r < 0)
		return r;
	for (char *p = text; r == 0 && p < text + len;) {
		char *nl = memchr(p, '\n', (size_t)(text + len - p));
		char *end = nl ? nl : text + len;
		if (end - p >= 3 && p[0] == '[' && end[-1] == ']') {
			bool ok = true;
			for (char *q = p + 1; ok && q < end - 1; q++)
				ok = section_char(*q);
			if (ok)
				r = names_add(out, p + 1, (size_t)(end - p - 2));
		}
		p = end + 1;
	}
	free(text);
	return r;
}

struct diff_ctx {
	struct line *l;
	const char *section;
	const struct mallafs_cfg *other;
	bool removed; /* walking the old configuration: report what is gone */
	size_t changes;
};

static int diff_key(const char *key, const char *value, void *arg)
{
	struct diff_ctx *c = arg;
	const char *there = mallafs_cfg_get(c->other, c->section, key);
	if (c->removed) {
		if (there)
			return 0;
		line_str(c->l, " -");
	} else {
		if (there && strcmp(there, value) == 0)
			return 0;
		line_str(c->l, " ");
	}
	line_str(c->l, c->section);
	line_str(c->l, ".");
	line_word(c->l, key);
	if (!c->removed) {
		line_str(c->l, "=");
		line_word(c->l, value);
	}
	c->changes++;
	return 0;
}

static bool has_section(const struct names *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return true;
	return false;
}

/* "reconfigure" and the changes, section by section, in the order the
 * configuration renders them. */
static int describe(const struct mallafs_cfg *old, const struct mallafs_cfg *cfg, struct line *l)
{
	struct names so = {0}, sn = {0}, all = {0};
	int r = sections_of(old, &so);
	if (r == 0)
		r = sections_of(cfg, &sn);
	for (size_t i = 0; r == 0 && i < sn.n; i++)
		r = names_add(&all, sn.v[i], strlen(sn.v[i]));
	for (size_t i = 0; r == 0 && i < so.n; i++)
		r = names_add(&all, so.v[i], strlen(so.v[i]));
	if (r < 0)
		goto out;

	line_str(l, "reconfigure");
	for (size_t i = 0; i < all.n; i++) {
		const char *s = all.v[i];
		struct diff_ctx c = {.l = l, .section = s, .other = old};
		mallafs_cfg_foreach(cfg, s, diff_key, &c);
		c.other = cfg;
		c.removed = true;
		mallafs_cfg_foreach(old, s, diff_key, &c);
		/* A section that came or went with no keys of its own. */
		if (c.changes == 0 && has_section(&sn, s) != has_section(&so, s)) {
			line_str(l, has_section(&sn, s) ? " +[" : " -[");
			line_str(l, s);
			line_str(l, "]");
		}
	}
out:
	names_free(&so);
	names_free(&sn);
	names_free(&all);
	return r;
}

static enum mallafs_update trace_updated(void *state, const struct mallafs_cfg *old,
                                         const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct trace *t = state;
	size_t n;
	if (check_lines(t, cfg, &n, why) < 0)
		return MALLAFS_UPDATE_ERROR;
	if (n != t->cap && ring_resize(t, n) < 0) {
		mallafs_reason_set(why, "cannot keep %zu lines: out of memory", n);
		return MALLAFS_UPDATE_ERROR;
	}
	/* Out of memory here loses the line, not the change. */
	struct line l = {.len = 0};
	if (describe(old, cfg, &l) == 0)
		record(t, &l);
	return MALLAFS_UPDATE_OK;
}

/* ---- store operations ---- */

static void trace_after(void *state, const struct mallafs_store_op *op)
{
	struct trace *t = state;
	struct line l = {.len = 0};

	/* One line a read: its opening; the pages that follow add nothing. */
	if (op->code == MALLAFS_OP_GET && (op->flags & MALLAFS_OPF_PAGE) && op->result >= 0)
		return;
	/* A probe that passed changed nothing; one refused shows its refusal. */
	if ((op->flags & MALLAFS_OPF_PROBE) && op->result >= 0)
		return;
	line_str(&l, mallafs_store_opname(op->code));
	if (op->code != MALLAFS_OP_LIST) {
		line_str(&l, " ");
		line_word(&l, op->key);
	}
	if (op->code == MALLAFS_OP_RENAME) {
		line_str(&l, " ");
		line_word(&l, op->new_key ? op->new_key : "");
	}
	if (op->result >= 0) {
		/* An opening get reads nothing yet: it shows the value's size. */
		bool opening = op->code == MALLAFS_OP_GET && (op->flags & MALLAFS_OPF_OPEN);
		line_printf(&l, " %lld", (long long)(opening ? op->old_size : op->result));
	} else {
		const char *name = strerrorname_np((int)-op->result);
		if (name)
			line_printf(&l, " %s", name);
		else
			line_printf(&l, " E%lld", (long long)-op->result);
		if (op->why && op->why->text[0]) {
			/* The reason is free text: keep it on one line. */
			line_str(&l, " (");
			for (const char *p = op->why->text; *p; p++)
				line_add(&l, (unsigned char)*p < ' ' ? "?" : p, 1);
			line_str(&l, ")");
		}
	}
	record(t, &l);
}

static int render_trace(void *state, struct mallafs_out *out)
{
	struct trace *t = state;
	int r = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; r == 0 && i < t->count; i++) {
		const struct slot *s = &t->ring[(t->first + i) % t->cap];
		r = mallafs_out_printf(out, "%s\n", s->text);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static const struct mallafs_file trace_files[] = {
        {.name = "trace", .render = render_trace},
        {.name = NULL},
};

const struct mallafs_plugin mallafs_plugin_trace = {
        MALLAFS_PLUGIN_INIT,
        .name = "trace",
        .settings = trace_settings,
        .files = trace_files,
        /* lifecycle and configuration */
        .init = trace_init,
        .fini = trace_fini,
        .start = trace_start,
        .stop = trace_stop,
        .config_merge = trace_merge,
        .updated = trace_updated,
        /* store hooks */
        .store_after = trace_after,
};
