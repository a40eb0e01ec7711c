/* SPDX-License-Identifier: MIT */
/* Restoring the tree from the state database, before anything is mounted:
 * the node config, then the services (in their creation order), then the
 * registrations whose process still lives (the registry checks PID and
 * start time: a reused PID inherits nothing), and, once the filesystem
 * exists, the owners and modes of the nodes that came back.
 *
 * A service is made with its saved chain and configuration, inactive, then
 * handed to its owner and moved to its saved admin status, as the bootstrap
 * does: so it starts as it was, and one that fails to start is `failed`
 * with the reason and retried, as any. One that cannot be made as saved (a
 * plugin of its chain no longer exists, or its configuration is refused)
 * comes back `failed` and inactive (so it is not tried again, nor run in a
 * shape the user did not make) with what can be made of it (the plugins
 * that exist, with its configuration, or without it, or base alone), and
 * the reason in its status' last_error. Its rows are "held": the database keeps its
 * saved chain, configuration and admin status (only its owner follows) until
 * the service is changed (its chain, configuration or admin status, or
 * rmdir), so nothing the user made is dropped for a plugin missing for a
 * while. A service that cannot be made at all stays held, absent. */
#include "state_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "fs.h"
#include "kv.h"
#include "msql.h"
#include "nodecfg.h"
#include "plugin.h"
#include "registry.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

struct counts {
	size_t services, held, apps, keys, regs, gone, refused;
};

static const char *col(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	return t ? t : "";
}

static int prepare(struct mstate *st, const char *sql, sqlite3_stmt **ret, char *why, size_t whylen)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, ret, NULL);
	if (rc == SQLITE_OK)
		return 0;
	if (why && whylen)
		snprintf(why, whylen, "cannot read it: %s", sqlite3_errmsg(st->db));
	return msql_errno(st->db, rc);
}

static int done(struct mstate *st, int rc, char *why, size_t whylen)
{
	if (rc == SQLITE_DONE)
		return 0;
	if (why && whylen)
		snprintf(why, whylen, "cannot read it: %s", sqlite3_errmsg(st->db));
	return msql_errno(st->db, rc);
}

/* ---- node config ---- */

static int load_nodecfg(struct mstate *st, struct counts *n, char *why, size_t whylen)
{
	struct mnodecfg *nc = mrt_nodecfg(st->rt);
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, "SELECT app FROM node_apps ORDER BY rowid", &s, why, whylen);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		int e = mnodecfg_app_create(nc, col(s, 0));
		if (e < 0 && e != -EEXIST)
			mu_log(MU_LOG_WARNING, "state %s: config/%s not restored: %s", st->path,
			       col(s, 0), strerror(-e));
		n->apps += e == 0;
	}
	if (r == 0)
		r = done(st, rc, why, whylen);
	sqlite3_finalize(s);
	s = NULL;
	if (r == 0)
		r = prepare(st, "SELECT app, key, value FROM node_config ORDER BY rowid", &s, why,
		            whylen);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *app = col(s, 0), *key = col(s, 1);
		const void *v = sqlite3_column_blob(s, 2);
		size_t len = (size_t)sqlite3_column_bytes(s, 2);
		int e = mnodecfg_app_create(nc, app);
		if (e == 0 || e == -EEXIST) {
			ssize_t w = mnodecfg_write(nc, app, key, 0, v ? v : "", len, MKV_REPLACE);
			e = w < 0 ? (int)w : 0;
		}
		if (e < 0)
			mu_log(MU_LOG_WARNING, "state %s: config/%s/%s not restored: %s", st->path,
			       app, key, strerror(-e));
		n->keys += e == 0;
	}
	if (r == 0)
		r = done(st, rc, why, whylen);
	sqlite3_finalize(s);
	return r;
}

/* ---- services ---- */

struct saved_svc {
	const char *name;
	char **plugins;
	size_t n;
	struct mallafs_cfg *cfg;
	enum msvc_admin admin;
	uid_t uid;
	gid_t gid;
};

static void hold(struct mstate *st, const char *name)
{
	pthread_mutex_lock(&st->lock);
	if (mkv_create(st->held, name) < 0)
		mu_log(MU_LOG_WARNING, "state %s: service %s: cannot keep its saved rows", st->path,
		       name);
	pthread_mutex_unlock(&st->lock);
}

/* Made inactive, handed to its owner: 0 or the creation's error. */
static int make(struct mstate *st, const struct saved_svc *v, const char *const *plugins, size_t n,
                const struct mallafs_cfg *cfg, struct mallafs_reason *why, struct mallafs_svc **ret)
{
	int r = mrt_service_create_full(st->rt, v->name, plugins, n, cfg, "inactive", why);
	if (r < 0)
		return r;
	*ret = mrt_service_get(st->rt, v->name);
	if (!*ret)
		return -ENOENT;
	msvc_set_owner(*ret, v->uid, v->gid);
	return 0;
}

static void restore_service(struct mstate *st, const struct saved_svc *v, struct counts *cnt)
{
	struct mallafs_reason why = {{0}}, again = {{0}};
	struct mallafs_svc *svc = NULL;
	const char **kept = calloc(v->n + 1, sizeof(*kept));
	char missing[512] = "";
	size_t k = 0;

	int r = make(st, v, (const char *const *)v->plugins, v->n, v->cfg, &why, &svc);
	if (r == 0) {
		/* A start that fails leaves it failed, with the reason, retried. */
		msvc_set_admin(svc, v->admin);
		cnt->services++;
		goto out;
	}
	if (r == -EEXIST || !kept) {
		mu_log(MU_LOG_WARNING, "state %s: service %s not restored: %s", st->path, v->name,
		       why.text[0] ? why.text : strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct mallafs_plugin *d;
		if (mplugreg_find(mrt_plugins(st->rt), v->plugins[i], &d, NULL) == 0) {
			kept[k++] = v->plugins[i];
		} else {
			size_t at = strlen(missing);
			snprintf(missing + at, sizeof(missing) - at, "%s%s", at ? ", " : "",
			         v->plugins[i]);
		}
	}
	const char *made = "its plugins that exist, with its configuration";
	r = make(st, v, kept, k, v->cfg, &again, &svc);
	if (r < 0) {
		made = "its plugins that exist, without its configuration";
		r = make(st, v, kept, k, NULL, &again, &svc);
	}
	if (r < 0) {
		made = "base alone";
		r = make(st, v, NULL, 0, NULL, &again, &svc);
	}
	hold(st, v->name);
	cnt->held++;
	if (r < 0) {
		mu_log(MU_LOG_ERR,
		       "state %s: service %s cannot be restored: %s; its saved rows are kept until "
		       "a service of that name is made",
		       st->path, v->name, why.text[0] ? why.text : strerror(-r));
		goto out;
	}
	char reason[MALLAFS_REASON_MAX + 512];
	snprintf(reason, sizeof(reason),
	         "restored with %s%s%s%s, inactive: %s; the state database keeps its saved "
	         "chain, configuration and admin status until you change the service",
	         made, missing[0] ? " (missing: " : "", missing, missing[0] ? ")" : "",
	         why.text[0] ? why.text : strerror(-r));
	/* Failed, inactive (not tried again), the reason in last_error and the log. */
	msvc_set_failed(svc, reason);
out:
	msvc_unref(svc);
	free(kept);
}

static int load_config(struct mstate *st, sqlite3_stmt *secs, sqlite3_stmt *keys, const char *name,
                       struct mallafs_cfg **ret, char *why, size_t whylen)
{
	struct mallafs_cfg *cfg = mcfg_new();
	int rc = SQLITE_DONE;
	if (!cfg)
		return -ENOMEM;
	mst_bind_text(secs, 1, name);
	while ((rc = sqlite3_step(secs)) == SQLITE_ROW)
		mcfg_add_section(cfg, col(secs, 0));
	sqlite3_reset(secs);
	int r = done(st, rc, why, whylen);
	mst_bind_text(keys, 1, name);
	while (r == 0 && (rc = sqlite3_step(keys)) == SQLITE_ROW) {
		int e = mallafs_cfg_set(cfg, col(keys, 0), col(keys, 1), col(keys, 2));
		if (e < 0)
			mu_log(MU_LOG_WARNING, "state %s: service %s: key %s.%s not restored: %s",
			       st->path, name, col(keys, 0), col(keys, 1), strerror(-e));
	}
	if (r == 0)
		r = done(st, rc, why, whylen);
	sqlite3_reset(keys);
	if (r < 0) {
		mcfg_free(cfg);
		return r;
	}
	/* No configuration is no configuration to merge. */
	if (mcfg_nsections(cfg) == 0) {
		mcfg_free(cfg);
		cfg = NULL;
	}
	*ret = cfg;
	return 0;
}

static int load_plugins(struct mstate *st, sqlite3_stmt *s, struct saved_svc *v, char *why,
                        size_t whylen)
{
	int rc;
	mst_bind_text(s, 1, v->name);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char **p = realloc(v->plugins, (v->n + 2) * sizeof(*p));
		if (!p)
			break;
		v->plugins = p;
		if (!(p[v->n] = strdup(col(s, 0))))
			break;
		p[++v->n] = NULL;
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	return done(st, rc, why, whylen);
}

static int load_services(struct mstate *st, struct counts *n, char *why, size_t whylen)
{
	sqlite3_stmt *s = NULL, *plugs = NULL, *secs = NULL, *keys = NULL;
	int rc = SQLITE_DONE;
	int r = prepare(st, "SELECT name, admin, uid, gid FROM services ORDER BY rowid", &s, why,
	                whylen);
	if (r == 0)
		r = prepare(
		        st,
		        "SELECT plugin FROM service_plugins WHERE service = ?1 ORDER BY position",
		        &plugs, why, whylen);
	if (r == 0)
		r = prepare(
		        st,
		        "SELECT section FROM service_sections WHERE service = ?1 ORDER BY rowid",
		        &secs, why, whylen);
	if (r == 0)
		r = prepare(st,
		            "SELECT section, key, value FROM service_config WHERE service = ?1 "
		            "ORDER BY rowid",
		            &keys, why, whylen);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct saved_svc v = {.name = col(s, 0),
		                      .uid = (uid_t)sqlite3_column_int64(s, 2),
		                      .gid = (gid_t)sqlite3_column_int64(s, 3)};
		const char *admin = col(s, 1);
		if (msvc_admin_parse(admin, strlen(admin), &v.admin) < 0)
			v.admin = MSVC_ADMIN_INACTIVE;
		r = load_plugins(st, plugs, &v, why, whylen);
		if (r == 0)
			r = load_config(st, secs, keys, v.name, &v.cfg, why, whylen);
		if (r == 0)
			restore_service(st, &v, n);
		for (size_t i = 0; i < v.n; i++)
			free(v.plugins[i]);
		free(v.plugins);
		mcfg_free(v.cfg);
	}
	if (r == 0)
		r = done(st, rc, why, whylen);
	sqlite3_finalize(s);
	sqlite3_finalize(plugs);
	sqlite3_finalize(secs);
	sqlite3_finalize(keys);
	return r;
}

/* ---- the registry ---- */

static int load_registry(struct mstate *st, struct counts *n, char *why, size_t whylen)
{
	sqlite3_stmt *s = NULL;
	int rc = SQLITE_DONE;
	/* Pools first: their members need them. */
	int r = prepare(st,
	                "SELECT name, member, kind, pid, starttime, value, uid FROM registry "
	                "ORDER BY kind != 'p', rowid",
	                &s, why, whylen);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *member = col(s, 1);
		struct mreg_saved v = {
		        .name = col(s, 0),
		        .member = member[0] ? member : NULL,
		        .kind = col(s, 2)[0],
		        .pid = (pid_t)sqlite3_column_int64(s, 3),
		        .starttime = (uint64_t)sqlite3_column_int64(s, 4),
		        .value = sqlite3_column_type(s, 5) == SQLITE_NULL
		                         ? NULL
		                         : (const char *)sqlite3_column_text(s, 5),
		        .uid = (uid_t)sqlite3_column_int64(s, 6),
		};
		int e = mreg_restore(mrt_registry(st->rt), &v);
		if (e == 0 || e == -EEXIST)
			n->regs++;
		else if (e == -ESRCH)
			n->gone++;
		else
			mu_log(MU_LOG_WARNING, "state %s: registry/%s%s%s not restored: %s",
			       st->path, v.name, v.member ? "/" : "", v.member ? v.member : "",
			       strerror(-e));
	}
	if (r == 0)
		r = done(st, rc, why, whylen);
	sqlite3_finalize(s);
	return r;
}

int mstate_restore(struct mstate *st, struct mrt *rt, char *why, size_t whylen)
{
	struct counts n = {0};
	st->rt = rt;
	int r = st->local_only ? 0 : load_nodecfg(st, &n, why, whylen);
	if (r == 0)
		r = load_services(st, &n, why, whylen);
	if (r == 0 && !st->local_only)
		r = load_registry(st, &n, why, whylen);
	if (r < 0)
		return r;
	mu_log(MU_LOG_INFO,
	       "state %s: restored %zu services (%zu not as saved), %zu apps with %zu keys, %zu "
	       "registrations (%zu of processes gone)",
	       st->path, n.services + n.held, n.held, n.apps, n.keys, n.regs, n.gone);
	return 0;
}

/* ---- owners and modes ---- */

/* Whether the node an owner or mode was saved for came back (a registration
 * of a process gone did not: its name must not keep them). */
static bool node_exists(struct mstate *st, const char *path)
{
	char a[MU_NAME_MAX + 1], b[MU_NAME_MAX + 1];
	const char *rest;
	int n;
	a[0] = b[0] = '\0';
	if (strncmp(path, "services/", 9) == 0) {
		rest = path + 9;
		n = sscanf(rest, "%255[^/]/store/%255[^/]", a, b);
		struct mallafs_svc *svc = n >= 1 ? mrt_service_get(st->rt, a) : NULL;
		struct mkv_stat sb;
		bool ok = svc && (n < 2 || msvc_store_stat(svc, b, &sb) == 0);
		msvc_unref(svc);
		return ok;
	}
	if (strncmp(path, "config/", 7) == 0) {
		struct mkv_stat sb;
		n = sscanf(path + 7, "%255[^/]/%255[^/]", a, b);
		if (n == 2)
			return mnodecfg_stat(mrt_nodecfg(st->rt), a, b, &sb) == 0;
		return n == 1 && mnodecfg_app_stat(mrt_nodecfg(st->rt), a, &sb) == 0;
	}
	if (strncmp(path, "registry/", 9) == 0) {
		struct mreg_entry e;
		n = sscanf(path + 9, "%255[^/]/%255[^/]", a, b);
		return n >= 1 && mreg_stat(mrt_registry(st->rt), a, n == 2 ? b : NULL, &e) == 0;
	}
	return true;
}

int mstate_restore_perms(struct mstate *st, struct mfs *fs)
{
	sqlite3_stmt *s = NULL;
	int rc = SQLITE_DONE;
	size_t count = 0;
	int r = prepare(st, "SELECT path, uid, gid, mode FROM overrides", &s, NULL, 0);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *path = col(s, 0);
		struct mfs_perm_entry e = {
		        .has_owner = sqlite3_column_type(s, 1) != SQLITE_NULL &&
		                     sqlite3_column_type(s, 2) != SQLITE_NULL,
		        .has_mode = sqlite3_column_type(s, 3) != SQLITE_NULL,
		        .uid = (uid_t)sqlite3_column_int64(s, 1),
		        .gid = (gid_t)sqlite3_column_int64(s, 2),
		        .mode = (mode_t)(sqlite3_column_int64(s, 3) & 07777),
		};
		if (!node_exists(st, path))
			continue;
		int e2 = mfs_perm_import(fs, path, &e);
		if (e2 < 0)
			mu_log(MU_LOG_WARNING, "state %s: owner and mode of %s not restored: %s",
			       st->path, path, strerror(-e2));
		count += e2 == 0;
	}
	if (r == 0)
		r = done(st, rc, NULL, 0);
	sqlite3_finalize(s);
	if (r == 0)
		mu_log(MU_LOG_DEBUG, "state %s: restored %zu owners and modes", st->path, count);
	return r;
}
