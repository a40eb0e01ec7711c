/* SPDX-License-Identifier: MIT */
/* Undoing a writer's changes: the documents one open file of config.ini or
 * of a config key carries may take several reconfigurations (a document
 * written a line a write, or split by the kernel into requests); when a
 * later part is refused, the earlier parts are undone as one
 * reconfiguration, so the document is applied whole or not at all.
 *
 * The record keeps, for every key a part changed, the value it had before
 * the first part (orig) and the value the last part left (wrote), each as
 * "+VALUE" or "-" for no value. Undoing restores orig only where the key
 * still holds wrote: a change another writer made meanwhile stays. A
 * section the parts made is removed again when undoing leaves it empty.
 *
 * Locks: msvc_reconfigure_undo() records with op_lock held, from the
 * configuration committed before and after; msvc_undo_apply() takes
 * op_lock and reconfigures under it, so no change slips between the check
 * and the restore. A record belongs to one writer (the fs holds it in the
 * open file's document, under that document's lock). */
#include "service_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "util.h"

struct msvc_undo {
	struct mallafs_cfg *orig, *wrote;
	struct mallafs_cfg *made; /* sections the parts made (no keys) */
	/* config.ini: the document as last applied (parsed), so that each
	 * part applies only what it adds or changes. */
	struct mallafs_cfg *doc;
};

struct msvc_undo *msvc_undo_new(void)
{
	struct msvc_undo *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->orig = mcfg_new();
	u->wrote = mcfg_new();
	u->made = mcfg_new();
	if (!u->orig || !u->wrote || !u->made) {
		msvc_undo_free(u);
		return NULL;
	}
	return u;
}

void msvc_undo_free(struct msvc_undo *u)
{
	if (!u)
		return;
	mcfg_free(u->orig);
	mcfg_free(u->wrote);
	mcfg_free(u->made);
	mcfg_free(u->doc);
	free(u);
}

bool msvc_undo_empty(const struct msvc_undo *u)
{
	return !u || (mcfg_nsections(u->wrote) == 0 && mcfg_nsections(u->made) == 0);
}

/* "+VALUE", or "-" for no value (malloc'd). */
static char *encode(const char *value)
{
	if (!value)
		return strdup("-");
	size_t len = strlen(value);
	char *e = malloc(len + 2);
	if (e) {
		e[0] = '+';
		memcpy(e + 1, value, len + 1);
	}
	return e;
}

static const char *decode(const char *e)
{
	return e && e[0] == '+' ? e + 1 : NULL;
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

struct record {
	struct msvc_undo *u;
	const struct mallafs_cfg *prev, *cur, *update;
	const char *section;
	int err;
};

static int put(struct mallafs_cfg *cfg, const char *section, const char *key, const char *value)
{
	char *e = encode(value);
	int r = e ? mallafs_cfg_set(cfg, section, key, e) : -ENOMEM;
	free(e);
	return r;
}

static int record_key(const char *key, const char *value, void *arg)
{
	struct record *rc = arg;
	const char *pv = mallafs_cfg_get(rc->prev, rc->section, key);
	const char *cv = mallafs_cfg_get(rc->cur, rc->section, key);
	int r = 0;
	if (same(pv, cv))
		return 0;
	if (!mallafs_cfg_get(rc->u->orig, rc->section, key))
		r = put(rc->u->orig, rc->section, key, pv);
	if (r == 0)
		r = put(rc->u->wrote, rc->section, key, cv);
	return r;
}

static int record_section(const char *section, void *arg)
{
	struct record *rc = arg;
	rc->section = section;
	if (!mcfg_has_section(rc->prev, section) && mcfg_has_section(rc->cur, section) &&
	    !mcfg_has_section(rc->u->made, section)) {
		int r = mcfg_add_section(rc->u->made, section);
		if (r < 0)
			return r;
	}
	return mallafs_cfg_foreach(rc->update, section, record_key, rc);
}

int msvc_undo_record(struct msvc_undo *u, const struct mallafs_cfg *prev,
                     const struct mallafs_cfg *cur, const struct mallafs_cfg *update)
{
	struct record rc = {.u = u, .prev = prev, .cur = cur, .update = update};
	return mcfg_foreach_section(update, record_section, &rc);
}

/* ---- a document applied in parts ---- */

struct delta {
	const struct mallafs_cfg *doc, *parsed;
	struct mallafs_cfg *out;
	const char *section;
};

static int delta_key(const char *key, const char *value, void *arg)
{
	struct delta *dl = arg;
	if (same(mallafs_cfg_get(dl->doc, dl->section, key), value))
		return 0;
	return mallafs_cfg_set(dl->out, dl->section, key, value);
}

static int delta_section(const char *section, void *arg)
{
	struct delta *dl = arg;
	dl->section = section;
	if (!mcfg_has_section(dl->doc, section)) {
		int r = mcfg_add_section(dl->out, section);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return mallafs_cfg_foreach(dl->parsed, section, delta_key, dl);
}

int msvc_undo_delta(const struct msvc_undo *u, const struct mallafs_cfg *parsed,
                    struct mallafs_cfg **ret)
{
	if (!u || !u->doc) {
		*ret = mcfg_dup(parsed);
		return *ret ? 0 : -ENOMEM;
	}
	struct delta dl = {.doc = u->doc, .parsed = parsed, .out = mcfg_new()};
	int r = dl.out ? mcfg_foreach_section(parsed, delta_section, &dl) : -ENOMEM;
	if (r < 0) {
		mcfg_free(dl.out);
		return r;
	}
	*ret = dl.out;
	return 0;
}

void msvc_undo_applied(struct msvc_undo *u, struct mallafs_cfg *parsed)
{
	mcfg_free(u->doc);
	u->doc = parsed;
}

/* ---- undoing ---- */

struct restore {
	struct msvc_undo *u;
	const struct mallafs_cfg *cur;
	struct mallafs_cfg *update;
	const char *section;
	bool any; /* update holds something */
};

static int restore_key(const char *key, const char *wrote, void *arg)
{
	struct restore *rs = arg;
	if (!same(decode(wrote), mallafs_cfg_get(rs->cur, rs->section, key)))
		return 0; /* changed since by another writer: theirs stays */
	const char *orig = decode(mallafs_cfg_get(rs->u->orig, rs->section, key));
	rs->any = true;
	return orig ? mallafs_cfg_set(rs->update, rs->section, key, orig)
	            : mcfg_set_removed_key(rs->update, rs->section, key);
}

static int restore_section(const char *section, void *arg)
{
	struct restore *rs = arg;
	rs->section = section;
	return mallafs_cfg_foreach(rs->u->wrote, section, restore_key, rs);
}

/* A section the parts made goes, if restoring leaves it empty. */
static int unmake_section(const char *section, void *arg)
{
	struct restore *rs = arg;
	struct mallafs_cfg *after = mcfg_dup(rs->cur);
	int r = after ? mcfg_merge(after, rs->update) : -ENOMEM;
	if (r == 0 && mcfg_has_section(after, section) && mcfg_section_len(after, section) == 0) {
		r = mcfg_set_removed_section(rs->update, section);
		rs->any = true;
	}
	mcfg_free(after);
	return r;
}

int msvc_undo_apply(struct mallafs_svc *svc, struct msvc_undo *u)
{
	struct mallafs_reason why = {{0}};
	struct restore rs = {.u = u};
	int r;

	if (msvc_undo_empty(u))
		return 0;
	rs.update = mcfg_new();
	if (!rs.update)
		return -ENOMEM;
	pthread_mutex_lock(&svc->op_lock);
	rs.cur = svc->cfg;
	r = svc->dead ? -ENOENT : mcfg_foreach_section(u->wrote, restore_section, &rs);
	if (r == 0)
		r = mcfg_foreach_section(u->made, unmake_section, &rs);
	if (r == 0 && rs.any) {
		r = msvc_reconfigure_locked(svc, rs.update, &why);
		if (r < 0)
			mu_log(MU_LOG_WARNING,
			       "service %s: the earlier part of a refused document "
			       "could not be undone: %s",
			       svc->name, why.text);
	}
	pthread_mutex_unlock(&svc->op_lock);
	mcfg_free(rs.update);
	/* Undone (or not undoable): the record starts again. */
	struct msvc_undo *fresh = msvc_undo_new();
	if (fresh) {
		struct msvc_undo tmp = *u;
		*u = *fresh;
		*fresh = tmp;
		msvc_undo_free(fresh);
	}
	return r;
}
