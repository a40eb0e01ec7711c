/* SPDX-License-Identifier: MIT */
/* Keeping the state database up to date: the listeners mark what changed
 * (by path, in the dirty set), and the flush thread commits the dirty set
 * in one transaction within 50 ms of its first mark, reading each marked
 * item from core as it is then: present, its rows are written; gone, they
 * are deleted. A commit costs what changed, not the tree.
 *
 * A commit that fails (a full disk) rolls back and leaves the marks in
 * place: the reason is logged once (again when it changes), the commit is
 * tried again every second without waiting for a change, and a line says
 * when it catches up. Locks: see state.c. */
#include "state_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "events.h"
#include "fs.h"
#include "kv.h"
#include "msql.h"
#include "nodecfg.h"
#include "registry.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

/* A first mark waits this long for the rest of its burst to join it. */
#define BATCH_MS 10
/* A failed commit is tried again after this long. */
#define RETRY_MS 1000
/* The longest path a mark names: services/NAME/config/SECTION/KEY and the
 * like are five names of at most 255 bytes. */
#define MARK_MAX 2048

/* ---- marks ---- */

static void mark_locked(struct mstate *st, char letter, const char *path, size_t len)
{
	char key[MARK_MAX];
	if (len + 3 > sizeof(key)) {
		st->all = true;
		return;
	}
	key[0] = letter;
	key[1] = ':';
	memcpy(key + 2, path, len);
	key[len + 2] = '\0';
	int r = mkv_create(st->dirty, key);
	if (r < 0 && r != -EEXIST)
		st->all = true; /* out of memory: every row is saved again */
	if (!st->marked) {
		st->marked = true;
		st->first_mark_ms = mu_now_ms();
		pthread_cond_signal(&st->wake);
	}
}

void mst_mark(struct mstate *st, char letter, const char *path)
{
	pthread_mutex_lock(&st->lock);
	mark_locked(st, letter, path, strlen(path));
	pthread_mutex_unlock(&st->lock);
}

static bool starts(const char *s, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);
	if (strncmp(s, prefix, n) != 0)
		return false;
	*rest = s + n;
	return true;
}

/* A change of a service's chain, configuration or (letter MST_ADMIN) of
 * its status: a service restored not as saved is saved whole, as it is,
 * from now on. */
static void mark_service(struct mstate *st, char letter, const char *name, size_t len)
{
	char key[MU_NAME_MAX + 1];
	pthread_mutex_lock(&st->lock);
	if (len < sizeof(key) && mkv_count(st->held)) {
		memcpy(key, name, len);
		key[len] = '\0';
		if (mkv_delete(st->held, key) == 0)
			letter = MST_SERVICE;
	}
	mark_locked(st, letter, name, len);
	pthread_mutex_unlock(&st->lock);
}

/* Called by every event, in the emitting thread (events.h: no blocking,
 * no call into core). */
static void on_event(const struct mev *ev, void *arg)
{
	struct mstate *st = arg;
	const char *rest;
	if (starts(ev->path, "services/", &rest)) {
		const char *slash = strchr(rest, '/');
		const char *sub;
		if (!slash) {
			/* mkdir, rmdir, reconfigure */
			if (ev->op != MEV_RESTART)
				mark_service(st, MST_SERVICE, rest, strlen(rest));
		} else if (ev->op == MEV_STATUS && strcmp(slash + 1, "status") == 0) {
			/* The admin status may have changed (or the state alone,
			 * which is no change, but cheap to save again: one row). */
			mark_service(st, MST_ADMIN, rest, (size_t)(slash - rest));
		} else if ((ev->op == MEV_PLUGIN_ADD || ev->op == MEV_PLUGIN_DEL) &&
		           starts(slash + 1, "plugins/", &sub)) {
			mark_service(st, MST_SERVICE, rest, (size_t)(slash - rest));
		}
	} else if (st->local_only) {
		return;
	} else if (starts(ev->path, "config/", &rest)) {
		mst_mark(st, strchr(rest, '/') ? MST_KEY : MST_APP, rest);
		if (ev->op == MEV_RENAME && ev->detail && starts(ev->detail, "config/", &rest))
			mst_mark(st, MST_KEY, rest);
	} else if (starts(ev->path, "registry/", &rest)) {
		mst_mark(st, MST_REG, rest);
	}
}

/* Told by fs/perm.c of every owner and mode set or dropped, and of a
 * service's owner, under its table's lock. */
static void on_perm(const char *path, void *arg)
{
	struct mstate *st = arg;
	const char *rest;
	pthread_mutex_lock(&st->lock);
	mark_locked(st, MST_OVERRIDE, path, strlen(path));
	if (starts(path, "services/", &rest) && !strchr(rest, '/'))
		mark_locked(st, MST_SERVICE, rest, strlen(rest));
	pthread_mutex_unlock(&st->lock);
}

int mst_listen(struct mstate *st)
{
	int r = mev_ring_add_listener(mrt_events(st->rt), on_event, st);
	if (r < 0)
		return r;
	if (st->fs && (r = mfs_perm_add_listener(st->fs, on_perm, st)) < 0) {
		mev_ring_remove_listener(mrt_events(st->rt), on_event, st);
		return r;
	}
	st->listening = true;
	return 0;
}

void mst_unlisten(struct mstate *st)
{
	if (!st->listening)
		return;
	if (st->fs)
		mfs_perm_remove_listener(st->fs, on_perm, st);
	mev_ring_remove_listener(mrt_events(st->rt), on_event, st);
	st->listening = false;
}

/* ---- marking everything ---- */

static int mark_svc_cb(const char *name, uint64_t cookie, void *arg)
{
	mst_mark(arg, MST_SERVICE, name);
	return 0;
}

struct apps {
	struct mstate *st;
	char **v;
	size_t n, cap;
	const char *app;
};

static int mark_app_cb(const char *app, const struct mkv_stat *sb, void *arg)
{
	struct apps *a = arg;
	mst_mark(a->st, MST_APP, app);
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 16;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(app)))
		return -ENOMEM;
	a->n++;
	return 0;
}

static int mark_key_cb(const char *key, const struct mkv_stat *sb, void *arg)
{
	struct apps *a = arg;
	char path[MARK_MAX];
	snprintf(path, sizeof(path), "%s/%s", a->app, key);
	mst_mark(a->st, MST_KEY, path);
	return 0;
}

static int mark_reg_cb(const struct mreg_saved *s, void *arg)
{
	char path[MARK_MAX];
	if (s->member)
		snprintf(path, sizeof(path), "%s/%s", s->name, s->member);
	mst_mark(arg, MST_REG, s->member ? path : s->name);
	return 0;
}

static int mark_ov_cb(const char *path, const struct mfs_perm_entry *e, void *arg)
{
	mst_mark(arg, MST_OVERRIDE, path);
	return 0;
}

/* Every row of one query, each column 0 joined to column 1 (when not '')
 * by a slash, marked. */
static int mark_rows(struct mstate *st, char letter, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(s, 0);
		const char *b = sqlite3_column_count(s) > 1
		                        ? (const char *)sqlite3_column_text(s, 1)
		                        : NULL;
		char path[MARK_MAX];
		if (!a)
			continue;
		if (b && b[0])
			snprintf(path, sizeof(path), "%s/%s", a, b);
		mst_mark(st, letter, b && b[0] ? path : a);
		rc = SQLITE_OK;
	}
	int r = rc == SQLITE_DONE ? 0 : msql_fail(st->db, rc, "reading the state", NULL);
	sqlite3_finalize(s);
	return r;
}

int mst_mark_all(struct mstate *st)
{
	struct apps a = {.st = st};
	int r = mark_rows(st, MST_SERVICE, "SELECT name FROM services");
	if (r == 0 && !st->local_only)
		r = mark_rows(st, MST_APP, "SELECT app FROM node_apps");
	if (r == 0 && !st->local_only)
		r = mark_rows(st, MST_KEY, "SELECT app, key FROM node_config");
	if (r == 0 && !st->local_only)
		r = mark_rows(st, MST_REG, "SELECT name, member FROM registry");
	if (r == 0)
		r = mark_rows(st, MST_OVERRIDE, "SELECT path FROM overrides");
	if (r == 0)
		r = mrt_service_list(st->rt, 0, mark_svc_cb, st);
	if (r == 0 && !st->local_only)
		r = mnodecfg_app_list(mrt_nodecfg(st->rt), 0, mark_app_cb, &a);
	for (size_t i = 0; i < a.n; i++) {
		a.app = a.v[i];
		if (r == 0)
			mnodecfg_list(mrt_nodecfg(st->rt), a.v[i], 0, mark_key_cb, &a);
		free(a.v[i]);
	}
	free(a.v);
	if (r == 0 && !st->local_only)
		r = mreg_save_foreach(mrt_registry(st->rt), mark_reg_cb, st);
	if (r == 0 && st->fs)
		r = mfs_perm_foreach(st->fs, mark_ov_cb, st);
	return r;
}

/* ---- saving one item as it is now ---- */

static int fail_oom(char *why, size_t whylen)
{
	if (why && whylen)
		snprintf(why, whylen, "out of memory");
	return -ENOMEM;
}

struct put {
	struct mstate *st;
	const char *svc;
	const char *section;
	char *why;
	size_t whylen;
};

static int put_key_cb(const char *key, const char *value, void *arg)
{
	struct put *p = arg;
	sqlite3_stmt *s = mst_q(p->st, Q_CFG_PUT);
	mst_bind_text(s, 1, p->svc);
	mst_bind_text(s, 2, p->section);
	mst_bind_text(s, 3, key);
	mst_bind_text(s, 4, value);
	return mst_step(p->st, s, "saving a configuration key", p->why, p->whylen);
}

/* Runs one statement of one text parameter (or two). */
static int run1(struct mstate *st, enum mst_stmt q, const char *a, const char *b, char *why,
                size_t whylen)
{
	sqlite3_stmt *s = mst_q(st, q);
	mst_bind_text(s, 1, a);
	if (b)
		mst_bind_text(s, 2, b);
	return mst_step(st, s, "saving the state", why, whylen);
}

static bool is_held(struct mstate *st, const char *name)
{
	struct mkv_stat sb;
	pthread_mutex_lock(&st->lock);
	bool held = mkv_stat(st->held, name, &sb) == 0;
	pthread_mutex_unlock(&st->lock);
	return held;
}

struct cfg_walk {
	struct put p;
	const struct mallafs_cfg *cfg;
};

static int walk_section_cb(const char *section, void *arg)
{
	struct cfg_walk *w = arg;
	sqlite3_stmt *s = mst_q(w->p.st, Q_SEC_PUT);
	mst_bind_text(s, 1, w->p.svc);
	mst_bind_text(s, 2, section);
	int r = mst_step(w->p.st, s, "saving a configuration section", w->p.why, w->p.whylen);
	w->p.section = section;
	return r ? r : mallafs_cfg_foreach(w->cfg, section, put_key_cb, &w->p);
}

/* A service's row: its admin status and owner. */
static int put_service_row(struct mstate *st, const char *name, struct mallafs_svc *svc, char *why,
                           size_t whylen)
{
	struct msvc_status ss;
	uid_t uid;
	gid_t gid;
	msvc_status(svc, &ss);
	mallafs_svc_owner(svc, &uid, &gid);
	sqlite3_stmt *s = mst_q(st, Q_SVC_PUT);
	mst_bind_text(s, 1, name);
	mst_bind_text(s, 2, msvc_admin_name(ss.admin));
	sqlite3_bind_int64(s, 3, uid);
	sqlite3_bind_int64(s, 4, gid);
	return mst_step(st, s, "saving a service", why, whylen);
}

/* The service's row alone. */
static int save_admin(struct mstate *st, const char *name, char *why, size_t whylen)
{
	struct mallafs_svc *svc = mrt_service_get(st->rt, name);
	int r = 0;
	/* Gone: the mark of its rmdir deletes it. Held: its row stays. */
	if (svc && msvc_alive(svc) && !is_held(st, name))
		r = put_service_row(st, name, svc, why, whylen);
	msvc_unref(svc);
	return r;
}

static int save_service(struct mstate *st, const char *name, char *why, size_t whylen)
{
	struct mallafs_svc *svc = mrt_service_get(st->rt, name);
	char **declared = NULL;
	size_t n = 0;
	struct mallafs_cfg *cfg = NULL;
	int r;

	if (svc && !msvc_alive(svc)) {
		msvc_unref(svc);
		svc = NULL;
	}
	if (!svc) {
		/* Held and absent: it could not be made; its rows wait. */
		if (is_held(st, name))
			return 0;
		r = run1(st, Q_SVC_DEL, name, NULL, why, whylen);
		if (r == 0)
			r = run1(st, Q_PLUG_DEL, name, NULL, why, whylen);
		if (r == 0)
			r = run1(st, Q_SEC_DEL, name, NULL, why, whylen);
		if (r == 0)
			r = run1(st, Q_CFG_DEL, name, NULL, why, whylen);
		return r;
	}
	uid_t uid;
	gid_t gid;
	mallafs_svc_owner(svc, &uid, &gid);
	if (is_held(st, name)) {
		/* Its chain, admin status and configuration stay as saved. */
		sqlite3_stmt *s = mst_q(st, Q_SVC_OWNER);
		mst_bind_text(s, 1, name);
		sqlite3_bind_int64(s, 2, uid);
		sqlite3_bind_int64(s, 3, gid);
		r = mst_step(st, s, "saving a service's owner", why, whylen);
		goto out;
	}
	r = msvc_declared(svc, &declared, &n);
	if (r == -ENOENT) {
		r = 0; /* removed meanwhile: its own mark deletes it */
		goto out;
	}
	cfg = msvc_config_committed(svc);
	if (r < 0 || !cfg) {
		r = fail_oom(why, whylen);
		goto out;
	}
	r = put_service_row(st, name, svc, why, whylen);
	if (r == 0)
		r = run1(st, Q_PLUG_DEL, name, NULL, why, whylen);
	sqlite3_stmt *s;
	for (size_t i = 0; r == 0 && i < n; i++) {
		s = mst_q(st, Q_PLUG_PUT);
		mst_bind_text(s, 1, name);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
		mst_bind_text(s, 3, declared[i]);
		r = mst_step(st, s, "saving a chain", why, whylen);
	}
	if (r == 0)
		r = run1(st, Q_SEC_DEL, name, NULL, why, whylen);
	if (r == 0)
		r = run1(st, Q_CFG_DEL, name, NULL, why, whylen);
	if (r == 0) {
		struct cfg_walk w = {.p = {.st = st, .svc = name, .why = why, .whylen = whylen},
		                     .cfg = cfg};
		r = mcfg_foreach_section(cfg, walk_section_cb, &w);
	}
out:
	for (size_t i = 0; declared && i < n; i++)
		free(declared[i]);
	free(declared);
	mcfg_free(cfg);
	msvc_unref(svc);
	return r;
}

static int save_app(struct mstate *st, const char *app, char *why, size_t whylen)
{
	struct mkv_stat sb;
	if (mnodecfg_app_stat(mrt_nodecfg(st->rt), app, &sb) == 0)
		return run1(st, Q_APP_PUT, app, NULL, why, whylen);
	int r = run1(st, Q_APP_DEL, app, NULL, why, whylen);
	return r ? r : run1(st, Q_APPKEYS_DEL, app, NULL, why, whylen);
}

/* The whole value of a node-wide key (malloc'd): 0, -ENOENT. */
static int read_key(struct mnodecfg *nc, const char *app, const char *key, char **ret,
                    size_t *ret_len)
{
	for (;;) {
		struct mkv_stat sb;
		int r = mnodecfg_stat(nc, app, key, &sb);
		if (r < 0)
			return r;
		/* One byte more tells a value that grew meanwhile. */
		char *buf = malloc(sb.size + 1);
		if (!buf)
			return -ENOMEM;
		ssize_t n = mnodecfg_read(nc, app, key, 0, buf, sb.size + 1);
		if (n < 0 || (uint64_t)n <= sb.size) {
			if (n < 0) {
				free(buf);
				return (int)n;
			}
			*ret = buf;
			*ret_len = (size_t)n;
			return 0;
		}
		free(buf);
	}
}

static int save_key(struct mstate *st, const char *path, char *why, size_t whylen)
{
	char app[MU_NAME_MAX + 1];
	const char *slash = strchr(path, '/');
	if (!slash || (size_t)(slash - path) >= sizeof(app))
		return 0;
	memcpy(app, path, (size_t)(slash - path));
	app[slash - path] = '\0';
	const char *key = slash + 1;
	char *value = NULL;
	size_t len = 0;
	int r = read_key(mrt_nodecfg(st->rt), app, key, &value, &len);
	if (r == -ENOENT || r == -EINVAL)
		return run1(st, Q_KEY_DEL, app, key, why, whylen);
	if (r < 0)
		return fail_oom(why, whylen);
	sqlite3_stmt *s = mst_q(st, Q_KEY_PUT);
	mst_bind_text(s, 1, app);
	mst_bind_text(s, 2, key);
	sqlite3_bind_blob64(s, 3, value, len, SQLITE_TRANSIENT);
	r = mst_step(st, s, "saving a node-wide key", why, whylen);
	free(value);
	return r;
}

/* A registration copied out of the registry's lock. */
struct reg_copy {
	char kind;
	pid_t pid;
	uint64_t starttime;
	uid_t uid;
	char *value;
	bool has_value;
	bool failed;
};

static int copy_reg_cb(const struct mreg_saved *s, void *arg)
{
	struct reg_copy *c = arg;
	c->kind = s->kind;
	c->pid = s->pid;
	c->starttime = s->starttime;
	c->uid = s->uid;
	c->has_value = s->value != NULL;
	if (s->value && !(c->value = strdup(s->value)))
		c->failed = true;
	return 0;
}

static int save_reg(struct mstate *st, const char *path, char *why, size_t whylen)
{
	char name[MU_NAME_MAX + 1];
	const char *slash = strchr(path, '/');
	const char *member = slash ? slash + 1 : NULL;
	size_t nlen = slash ? (size_t)(slash - path) : strlen(path);
	struct reg_copy c = {0};
	if (nlen >= sizeof(name))
		return 0;
	memcpy(name, path, nlen);
	name[nlen] = '\0';
	int r = mreg_save_get(mrt_registry(st->rt), name, member, copy_reg_cb, &c);
	if (r == -ENOENT || r == -EINVAL)
		return run1(st, Q_REG_DEL, name, member ? member : "", why, whylen);
	if (r < 0 || c.failed) {
		free(c.value);
		return fail_oom(why, whylen);
	}
	char kind[2] = {c.kind, '\0'};
	sqlite3_stmt *s = mst_q(st, Q_REG_PUT);
	mst_bind_text(s, 1, name);
	mst_bind_text(s, 2, member ? member : "");
	mst_bind_text(s, 3, kind);
	sqlite3_bind_int64(s, 4, c.pid);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)c.starttime);
	if (c.has_value)
		sqlite3_bind_blob64(s, 6, c.value, strlen(c.value), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, 6);
	sqlite3_bind_int64(s, 7, c.uid);
	r = mst_step(st, s, "saving a registration", why, whylen);
	free(c.value);
	return r;
}

static int save_override(struct mstate *st, const char *path, char *why, size_t whylen)
{
	struct mfs_perm_entry e;
	if (!st->fs)
		return 0;
	if (mfs_perm_get(st->fs, path, &e) < 0)
		return run1(st, Q_OV_DEL, path, NULL, why, whylen);
	sqlite3_stmt *s = mst_q(st, Q_OV_PUT);
	mst_bind_text(s, 1, path);
	if (e.has_owner) {
		sqlite3_bind_int64(s, 2, e.uid);
		sqlite3_bind_int64(s, 3, e.gid);
	}
	if (e.has_mode)
		sqlite3_bind_int64(s, 4, e.mode & 07777);
	return mst_step(st, s, "saving an owner or mode", why, whylen);
}

/* ---- the flush ---- */

struct flush {
	struct mstate *st;
	char *why;
	size_t whylen;
	size_t n;
};

static int save_one_cb(const char *key, const void *value, size_t len, const struct mkv_stat *sb,
                       void *arg)
{
	struct flush *f = arg;
	const char *path = key + 2;
	f->n++;
	switch (key[0]) {
	case MST_SERVICE:
		return save_service(f->st, path, f->why, f->whylen);
	case MST_ADMIN:
		return save_admin(f->st, path, f->why, f->whylen);
	case MST_APP:
		return save_app(f->st, path, f->why, f->whylen);
	case MST_KEY:
		return save_key(f->st, path, f->why, f->whylen);
	case MST_REG:
		return save_reg(f->st, path, f->why, f->whylen);
	case MST_OVERRIDE:
		return save_override(f->st, path, f->why, f->whylen);
	default:
		return 0;
	}
}

static int remark_cb(const char *key, const void *value, size_t len, const struct mkv_stat *sb,
                     void *arg)
{
	struct mstate *st = arg;
	int r = mkv_create(st->dirty, key);
	if (r < 0 && r != -EEXIST)
		st->all = true;
	return 0;
}

/* The marks of a batch that did not commit go back (lock held). */
static void remark_locked(struct mstate *st, struct mkv *batch)
{
	mkv_foreach(batch, remark_cb, st);
	if (!st->marked) {
		st->marked = true;
		st->first_mark_ms = mu_now_ms();
	}
}

static int flush(struct mstate *st, bool force)
{
	char why[512] = "";
	bool all;
	int r = 0;

	pthread_mutex_lock(&st->lock);
	all = st->all;
	st->all = false;
	pthread_mutex_unlock(&st->lock);
	if (all)
		r = mst_mark_all(st);
	struct mkv *fresh = r == 0 ? mkv_new() : NULL;
	if (!fresh) {
		pthread_mutex_lock(&st->lock);
		st->all = st->all || all;
		pthread_mutex_unlock(&st->lock);
		snprintf(why, sizeof(why), "%s", r ? "cannot read the tree" : "out of memory");
		r = r ? r : -ENOMEM;
		goto failed;
	}
	pthread_mutex_lock(&st->lock);
	struct mkv *batch = st->dirty;
	st->dirty = fresh;
	st->marked = false;
	pthread_mutex_unlock(&st->lock);

	struct flush f = {.st = st, .why = why, .whylen = sizeof(why)};
	if (mkv_count(batch) || force) {
		r = msql_exec(st->db, "BEGIN IMMEDIATE", "beginning a transaction", NULL);
		if (r < 0)
			snprintf(why, sizeof(why), "beginning a transaction: %s",
			         sqlite3_errmsg(st->db));
		if (r == 0)
			r = mkv_foreach(batch, save_one_cb, &f);
		if (r == 0)
			r = mst_step(st, mst_q(st, Q_SEEDED), "saving", why, sizeof(why));
		if (r == 0) {
			r = msql_exec(st->db, "COMMIT", "committing", NULL);
			if (r < 0)
				snprintf(why, sizeof(why), "committing: %s",
				         sqlite3_errmsg(st->db));
		}
		if (r < 0 && !sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (r < 0) {
		pthread_mutex_lock(&st->lock);
		remark_locked(st, batch);
		pthread_mutex_unlock(&st->lock);
	}
	mkv_free(batch);
	if (r == 0) {
		if (st->failing)
			mu_log(MU_LOG_WARNING, "state %s: saving again (%zu changes committed)",
			       st->path, f.n);
		st->failing = false;
		st->last_fail[0] = '\0';
		return 0;
	}
failed:
	if (!why[0])
		snprintf(why, sizeof(why), "%s", strerror(-r));
	if (!st->failing || strcmp(why, st->last_fail) != 0)
		mu_log(MU_LOG_ERR,
		       "state %s: cannot commit changes: %s; serving from memory, trying again "
		       "every second",
		       st->path, why);
	st->failing = true;
	snprintf(st->last_fail, sizeof(st->last_fail), "%s", why);
	st->retry_at_ms = mu_now_ms() + RETRY_MS;
	return r;
}

int mst_flush_now(struct mstate *st)
{
	return flush(st, false);
}

int mst_save_all(struct mstate *st)
{
	int r = mst_mark_all(st);
	return r ? r : flush(st, true);
}

static void deadline_ts(uint64_t ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000;
}

void *mst_thread(void *arg)
{
	struct mstate *st = arg;
	pthread_mutex_lock(&st->lock);
	while (!st->stopping) {
		uint64_t now = mu_now_ms();
		bool asked = st->asked > st->answered;
		if (!asked && !st->marked && !st->all) {
			pthread_cond_wait(&st->wake, &st->lock);
			continue;
		}
		uint64_t due = st->failing ? st->retry_at_ms : st->first_mark_ms + BATCH_MS;
		if (!asked && now < due) {
			struct timespec ts;
			deadline_ts(due, &ts);
			pthread_cond_timedwait(&st->wake, &st->lock, &ts);
			continue;
		}
		uint64_t serving = st->asked;
		pthread_mutex_unlock(&st->lock);
		int r = flush(st, false);
		pthread_mutex_lock(&st->lock);
		st->answered = serving;
		st->answer = r;
		pthread_cond_broadcast(&st->done);
	}
	pthread_mutex_unlock(&st->lock);
	/* The listeners are gone: this is the last of the changes. */
	int r = flush(st, false);
	if (r < 0)
		mu_log(MU_LOG_ERR, "state %s: changes since the last commit are lost: %s", st->path,
		       st->last_fail);
	pthread_mutex_lock(&st->lock);
	st->answered = st->asked;
	st->answer = r;
	pthread_cond_broadcast(&st->done);
	pthread_mutex_unlock(&st->lock);
	return NULL;
}
