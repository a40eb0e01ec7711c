/* SPDX-License-Identifier: MIT */
/* The state database: opening it, the checks that nobody else can write
 * it, its schema, and starting and stopping what keeps it up to date
 * (state_save.c) after restore (state_load.c).
 *
 * Locks and threads:
 *  - st->lock (mutex) guards the dirty set and its marks (dirty, marked,
 *    first_mark_ms, all), the services restored not as saved (held), and
 *    the flush thread's orders (stopping, asked, answered, answer). A leaf:
 *    the listeners take it in the thread of the change, under whatever core
 *    holds then (a service's op_lock, store_lock or state_lock, the
 *    registry's lock, the config store's lock) or under fs/perm.c's table
 *    lock; nothing is called with it held but the dirty set's own table.
 *  - The connection (st->db and its statements) has no lock: it is used by
 *    one thread at a time, the opening thread (restore, the first save in
 *    mstate_start), then the flush thread ("mallafs-state", signals
 *    blocked, the daemon's identity) from mstate_start to mstate_stop,
 *    then the stopping thread again. The flush reads core (services, the
 *    config store, the registry, fs's owners and modes) through their
 *    public calls, with no lock of ours held.
 *
 * The schema, version 1 (PRAGMA user_version; application_id 'mlfs'):
 *  - meta: key -> value; "seeded" once a whole tree was saved (a database
 *    without it is fresh: the bootstrap file seeds it);
 *  - services: one row a service, in creation order (rowid): its admin
 *    status (active, pause, inactive) and owner uid, gid;
 *  - service_plugins: the declared chain, top to bottom (position 0 is
 *    the top; base is implied, the plugins a declared one needs too);
 *  - service_sections, service_config: the committed configuration as set
 *    (no defaults): every section, even an empty one, and every key;
 *  - node_apps, node_config: config/APP and config/APP/KEY (values are
 *    bytes);
 *  - overrides: what chmod and chown set, by path under the mount: uid and
 *    gid (NULL: the rules' owner), mode (NULL: the rules' mode);
 *  - registry: registry/NAME (kind n, member ''), pools (kind p, member '',
 *    pid 0) and their members (kind m, member the PID), with the process's
 *    PID, start time (clock ticks after boot, /proc/PID/stat field 22),
 *    value (NULL: none) and owner. */
#include "state_i.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"
#include "msql.h"
#include "util.h"

#define MST_APPLICATION_ID 0x6d6c6673u /* 'mlfs' */
#define MST_VERSION 1
#define MST_BUSY_MS 2000

static const char schema_sql[] =
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
        "CREATE TABLE services (name TEXT PRIMARY KEY,\n"
        "  admin TEXT NOT NULL CHECK (admin IN ('active', 'pause', 'inactive')),\n"
        "  uid INTEGER NOT NULL, gid INTEGER NOT NULL);\n"
        "CREATE TABLE service_plugins (service TEXT NOT NULL, position INTEGER NOT NULL,\n"
        "  plugin TEXT NOT NULL, PRIMARY KEY (service, position));\n"
        "CREATE TABLE service_sections (service TEXT NOT NULL, section TEXT NOT NULL,\n"
        "  PRIMARY KEY (service, section));\n"
        "CREATE TABLE service_config (service TEXT NOT NULL, section TEXT NOT NULL,\n"
        "  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (service, section, key));\n"
        "CREATE TABLE node_apps (app TEXT PRIMARY KEY);\n"
        "CREATE TABLE node_config (app TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,\n"
        "  PRIMARY KEY (app, key));\n"
        "CREATE TABLE overrides (path TEXT PRIMARY KEY, uid INTEGER, gid INTEGER,\n"
        "  mode INTEGER);\n"
        "CREATE TABLE registry (name TEXT NOT NULL, member TEXT NOT NULL,\n"
        "  kind TEXT NOT NULL CHECK (kind IN ('n', 'p', 'm')), pid INTEGER NOT NULL,\n"
        "  starttime INTEGER NOT NULL, value BLOB, uid INTEGER NOT NULL,\n"
        "  PRIMARY KEY (name, member));\n";

static const struct msql_schema schema = {
        .application_id = MST_APPLICATION_ID,
        .version = MST_VERSION,
        .what = "mallafs state database",
        .create_sql = schema_sql,
};

static const char *const stmt_sql[Q_COUNT_] = {
        [Q_SVC_PUT] = "INSERT INTO services (name, admin, uid, gid) VALUES (?1, ?2, ?3, ?4) "
                      "ON CONFLICT (name) DO UPDATE SET admin = excluded.admin, "
                      "uid = excluded.uid, gid = excluded.gid",
        [Q_SVC_OWNER] = "UPDATE services SET uid = ?2, gid = ?3 WHERE name = ?1",
        [Q_SVC_DEL] = "DELETE FROM services WHERE name = ?1",
        [Q_PLUG_DEL] = "DELETE FROM service_plugins WHERE service = ?1",
        [Q_PLUG_PUT] = "INSERT INTO service_plugins (service, position, plugin) "
                       "VALUES (?1, ?2, ?3)",
        [Q_SEC_DEL] = "DELETE FROM service_sections WHERE service = ?1",
        [Q_SEC_PUT] = "INSERT INTO service_sections (service, section) VALUES (?1, ?2)",
        [Q_CFG_DEL] = "DELETE FROM service_config WHERE service = ?1",
        [Q_CFG_PUT] = "INSERT INTO service_config (service, section, key, value) "
                      "VALUES (?1, ?2, ?3, ?4)",
        [Q_APP_PUT] = "INSERT INTO node_apps (app) VALUES (?1) ON CONFLICT DO NOTHING",
        [Q_APP_DEL] = "DELETE FROM node_apps WHERE app = ?1",
        [Q_APPKEYS_DEL] = "DELETE FROM node_config WHERE app = ?1",
        [Q_KEY_PUT] = "INSERT INTO node_config (app, key, value) VALUES (?1, ?2, ?3) "
                      "ON CONFLICT (app, key) DO UPDATE SET value = excluded.value",
        [Q_KEY_DEL] = "DELETE FROM node_config WHERE app = ?1 AND key = ?2",
        [Q_REG_PUT] = "INSERT INTO registry (name, member, kind, pid, starttime, value, uid) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name, member) DO "
                      "UPDATE SET kind = excluded.kind, pid = excluded.pid, "
                      "starttime = excluded.starttime, value = excluded.value, "
                      "uid = excluded.uid",
        [Q_REG_DEL] = "DELETE FROM registry WHERE name = ?1 AND member = ?2",
        [Q_OV_PUT] = "INSERT INTO overrides (path, uid, gid, mode) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT (path) DO UPDATE SET uid = excluded.uid, "
                     "gid = excluded.gid, mode = excluded.mode",
        [Q_OV_DEL] = "DELETE FROM overrides WHERE path = ?1",
        [Q_SEEDED] = "INSERT INTO meta (key, value) "
                     "VALUES ('seeded', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) "
                     "ON CONFLICT DO NOTHING",
};

sqlite3_stmt *mst_q(struct mstate *st, enum mst_stmt q)
{
	return st->q[q];
}

int mst_bind_text(sqlite3_stmt *s, int n, const char *text)
{
	return sqlite3_bind_text(s, n, text, -1, SQLITE_TRANSIENT);
}

int mst_step(struct mstate *st, sqlite3_stmt *s, const char *what, char *why, size_t whylen)
{
	int rc = sqlite3_step(s);
	int r = 0;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		r = msql_errno(st->db, rc);
		if (why && whylen)
			snprintf(why, whylen, "%s: %s", what, sqlite3_errmsg(st->db));
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

static int fail(char *why, size_t whylen, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *why, size_t whylen, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && whylen)
		vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return r;
}

/* Nobody but the daemon (and root) may change the folder: it could replace
 * the file. Writable by others is fine when sticky (/tmp): they cannot
 * remove or rename what is not theirs. */
static int check_folder(const char *path, char *why, size_t whylen)
{
	struct stat sb;
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	const char *dir = dirname(copy);
	int r = 0;
	if (lstat(dir, &sb) < 0)
		r = fail(why, whylen, -errno, "folder %s: %s", dir, strerror(errno));
	else if (S_ISLNK(sb.st_mode))
		r = fail(why, whylen, -ELOOP,
		         "folder %s is a symbolic link (refused: name the folder it leads to)",
		         dir);
	else if (!S_ISDIR(sb.st_mode))
		r = fail(why, whylen, -ENOTDIR, "%s is not a folder", dir);
	else if (sb.st_uid != geteuid() && sb.st_uid != 0)
		r = fail(why, whylen, -EPERM,
		         "folder %s is owned by uid %u, not by the daemon's uid %u nor root", dir,
		         (unsigned)sb.st_uid, (unsigned)geteuid());
	else if ((sb.st_mode & 022) && !(sb.st_mode & S_ISVTX))
		r = fail(why, whylen, -EPERM,
		         "folder %s is writable by others (mode %04o) and not sticky", dir,
		         (unsigned)(sb.st_mode & 07777));
	free(copy);
	return r;
}

/* The files SQLite keeps beside a database. */
static const char *const sidecars[] = {"-wal", "-shm", "-journal"};

/* An existing file must be the daemon's, and writable by it alone. */
static int check_file(const char *path, bool *ret_exists, char *why, size_t whylen)
{
	struct stat sb;
	*ret_exists = false;
	if (lstat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		return fail(why, whylen, -errno, "%s", strerror(errno));
	}
	*ret_exists = true;
	if (S_ISLNK(sb.st_mode))
		return fail(why, whylen, -ELOOP,
		            "is a symbolic link (refused: it could lead anywhere)");
	if (!S_ISREG(sb.st_mode))
		return fail(why, whylen, -EINVAL, "not a regular file");
	if (sb.st_uid != geteuid())
		return fail(why, whylen, -EPERM, "owned by uid %u, not by the daemon's uid %u",
		            (unsigned)sb.st_uid, (unsigned)geteuid());
	if (sb.st_mode & 022)
		return fail(why, whylen, -EPERM,
		            "writable by others (mode %04o): chmod go-w it, or give another file",
		            (unsigned)(sb.st_mode & 07777));
	return 0;
}

static int is_seeded(struct mstate *st, bool *ret, char *why, size_t whylen)
{
	sqlite3_stmt *s = NULL;
	int rc =
	        sqlite3_prepare_v2(st->db, "SELECT 1 FROM meta WHERE key = 'seeded'", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		*ret = rc == SQLITE_ROW;
		if (rc == SQLITE_ROW)
			rc = SQLITE_DONE;
	}
	int r = 0;
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		r = fail(why, whylen, msql_errno(st->db, rc), "cannot read it: %s",
		         sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return r;
}

static void free_state(struct mstate *st)
{
	for (int i = 0; i < Q_COUNT_; i++)
		sqlite3_finalize(st->q[i]);
	msql_close(st->db);
	mkv_free(st->dirty);
	mkv_free(st->held);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->done);
	free(st->path);
	free(st);
}

static struct mstate *new_state(void)
{
	struct mstate *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->wake, &ca);
	pthread_cond_init(&st->done, NULL);
	pthread_condattr_destroy(&ca);
	st->dirty = mkv_new();
	st->held = mkv_new();
	if (!st->dirty || !st->held) {
		free_state(st);
		return NULL;
	}
	return st;
}

/* The name SQLite gets: absolute (msql_open wants it), and with no
 * symbolic link resolved, so that msql can refuse one. */
static char *absolute(const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	char *cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	char *abs = NULL;
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

int mstate_open(const char *path, struct mstate **ret, bool *ret_fresh, char *why, size_t whylen)
{
	struct mallafs_reason mwhy = {{0}};
	bool exists = false, seeded = false, created = false;
	struct mstate *st = new_state();
	int r;

	if (why && whylen)
		why[0] = '\0';
	if (!st || !(st->path = absolute(path))) {
		r = fail(why, whylen, -ENOMEM, "out of memory");
		goto fail;
	}
	r = check_folder(st->path, why, whylen);
	if (r == 0)
		r = check_file(st->path, &exists, why, whylen);
	/* SQLite reads its -wal (and -journal) at open, trusting them as
	 * much: in a sticky folder (/tmp) anyone could have put one there. */
	for (size_t i = 0; r == 0 && i < sizeof(sidecars) / sizeof(sidecars[0]); i++) {
		char side[PATH_MAX + 16], sub[PATH_MAX + 64];
		bool there = false;
		snprintf(side, sizeof(side), "%s%s", st->path, sidecars[i]);
		r = check_file(side, &there, sub, sizeof(sub));
		if (r < 0)
			fail(why, whylen, r, "%s: %s", side, sub);
	}
	if (r < 0)
		goto fail;
	r = msql_init();
	if (r < 0) {
		fail(why, whylen, r, "cannot set SQLite up: %s", strerror(-r));
		goto fail;
	}
	r = msql_open(st->path, true, &schema, MST_BUSY_MS, &st->db, &created, &mwhy);
	if (r < 0) {
		/* msql says "cannot open PATH: REASON"; ours names the path already. */
		const char *reason = mwhy.text;
		size_t plen = strlen("cannot open ") + strlen(st->path) + 2;
		if (strncmp(reason, "cannot open ", 12) == 0 && strlen(reason) > plen &&
		    strncmp(reason + 12, st->path, strlen(st->path)) == 0)
			reason += plen;
		fail(why, whylen, r, "%s", reason[0] ? reason : strerror(-r));
		goto fail;
	}
	r = is_seeded(st, &seeded, why, whylen);
	if (r < 0)
		goto fail;
	mu_log(MU_LOG_INFO, "state %s: %s", st->path,
	       !exists || created ? "a new state database"
	       : seeded           ? "opened"
	                          : "opened, nothing saved in it yet");
	*ret_fresh = !seeded;
	*ret = st;
	return 0;
fail:
	if (st)
		free_state(st);
	return r;
}

static void block_signals(sigset_t *old)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

int mstate_start(struct mstate *st, struct mrt *rt, struct mfs *fs, char *why, size_t whylen)
{
	struct mallafs_reason mwhy = {{0}};
	int r;
	st->rt = rt;
	st->fs = fs;
	for (int i = 0; i < Q_COUNT_; i++) {
		if (st->q[i])
			continue;
		r = msql_prepare(st->db, stmt_sql[i], &st->q[i], &mwhy);
		if (r < 0)
			return fail(why, whylen, r, "%s", mwhy.text);
	}
	/* Listening first: a change made while the tree is read is marked again. */
	r = mst_listen(st);
	if (r < 0)
		return fail(why, whylen, r, "cannot follow the changes: %s", strerror(-r));
	r = mst_save_all(st);
	if (r < 0) {
		mst_unlisten(st);
		return fail(why, whylen, r, "cannot save the tree: %s",
		            st->last_fail[0] ? st->last_fail : strerror(-r));
	}
	sigset_t old;
	block_signals(&old);
	r = -pthread_create(&st->thread, NULL, mst_thread, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		mst_unlisten(st);
		return fail(why, whylen, r, "cannot start its thread: %s", strerror(-r));
	}
	st->thread_started = true;
	return 0;
}

void mstate_stop(struct mstate *st)
{
	if (!st || !st->thread_started)
		return;
	/* No mark comes after this: what the flush commits is all. */
	mst_unlisten(st);
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->thread, NULL);
	st->thread_started = false;
}

void mstate_close(struct mstate *st)
{
	if (!st)
		return;
	mstate_stop(st);
	free_state(st);
}

int mstate_flush(struct mstate *st)
{
	if (!st->thread_started)
		return mst_flush_now(st);
	pthread_mutex_lock(&st->lock);
	uint64_t want = ++st->asked;
	pthread_cond_signal(&st->wake);
	while (st->answered < want && !st->stopping)
		pthread_cond_wait(&st->done, &st->lock);
	int r = st->answer;
	pthread_mutex_unlock(&st->lock);
	return r;
}

void mstate_set_local_only(struct mstate *st)
{
	st->local_only = true;
}
