/* SPDX-License-Identifier: MIT */
/* persist: keeps the store in an SQLite database across daemon restarts,
 * written as it changes.
 *
 * Settings: `path`, "" (the default: nothing persisted) or the absolute name
 * of the database (a relative one is refused with EINVAL at the merge).
 * `sync`, `batch` (the default) or `always` (anything else: EINVAL at the
 * merge). Changing either restarts the service: the old database gets what
 * is pending as the plugin stops, the new one is loaded as it starts.
 *
 * The database (persist_db.c has the schema) holds one row per key: its
 * value and mtime. Each change writes the rows it touched, never the store:
 *  - batch: store_after records the change in a map (persist_dirty.c: the
 *    key and, for a write, its new value copied from the table; a later
 *    change of the key replaces it), and the daemon's timer loop commits the
 *    map in one transaction 50 ms after the first change. A crash loses at
 *    most the changes of the last 50 ms (and of a commit under way).
 *  - always: store_before asks for the commit (op->commit) and store_commit
 *    writes the row(s) in their own transaction, in the writer's thread,
 *    before write() returns: a change whose write() returned is on disk
 *    (synchronous FULL); a commit that fails fails the write() with its
 *    errno (ENOSPC, EIO, EBUSY...) and the core undoes the change. A crash
 *    loses nothing whose write() returned.
 * A failed batch commit (a full disk, EIO) keeps the map, is logged once
 * per distinct reason, shows as persist_error in the service's status, and
 * is tried again by the timer, 1 s later, then backing off to every 5 s,
 * until it succeeds; the service keeps serving from memory meanwhile.
 * status also shows persist_last_commit, the time of the last commit.
 *
 * Rights: every open of the database, its -wal and -shm, the conversion of
 * an old file and the close (which checkpoints and removes -wal and -shm)
 * run in a thread of persist's own, "mallafs-persist", that acts as the
 * service's owner (its filesystem uid and gid and supplementary groups,
 * persist_owner.c) for as long as it lives: at start (open and load) and at
 * stop (last commit and close). In between the connection stays open and
 * SQLite opens no file (WAL mode, temp_store MEMORY): the commits run on
 * the timer loop's workers (batch) or the writers' threads (always) with
 * the daemon's identity, on files the owner opened. No symbolic link is
 * followed, in the folders of the path or at the file's name (msql.h,
 * persist_file.c).
 *
 * At start the database is checked (msql_open: an SQLite database, ours,
 * not of a newer schema, passing quick_check; a file of the owner's or
 * root's, a regular one, writable: a read-only file or filesystem is
 * refused with EROFS) and its rows are read and checked whole (key names),
 * then loaded into the store with mallafs_store_load_many, replacing the
 * values of the keys they name (keys they do not name stay). Any failure
 * fails the start with a reason naming the file; the core then marks the
 * service failed with it in last_error, nothing of the database is loaded
 * and the file is left as it is. When it does not exist it is created
 * (mode 0600, the owner's). A file of persist's old format (persist_format.c,
 * "mallafs-store 1") is checked whole, converted into a database beside it,
 * renamed to PATH.v1, the database renamed over PATH (logged).
 *
 * The store outlives the plugin's stop: changes made while it is stopped
 * reach no hook. So when the database is the one this instance closed last
 * (same path, device, inode, size, mtime and ctime), it is not loaded back
 * over the newer store; and whenever the store may hold what the database
 * lacks (that case, a new database, keys the database did not name), the
 * timer reconciles them once after the start: a copy of the store, taken
 * a slice of keys at a time (mallafs_store_foreach: writers wait for one
 * slice at most, never for the whole store), compared row by row, writing
 * only the rows that differ; what changes during the copy is in the map,
 * committed after it. Until it is done, always mode records its changes in the map too,
 * which is committed after the reconciliation.
 *
 * Clean stop (unmount, SIGTERM, removal of the plugin, a restart): the
 * timer is cancelled, what the map holds is committed, the database closed
 * as the owner.
 *
 * Locks: the order and what each guards are written above struct persist
 * in persist_i.h (the store's lock, then db_lock, then p->lock, then the
 * timer loop's). */
#include "builtin.h"
#include "persist_i.h"
#include "plugin_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const struct mallafs_setting persist_settings[] = {
        {.key = "path", .def = "", .restart = 1},
        {.key = "sync", .def = "batch", .restart = 1},
        {.key = NULL},
};

/* Acts as the owner, or says why not. */
static int become_owner(struct persist *p, struct mallafs_reason *why)
{
	struct mallafs_reason r_why = {{0}};
	int r = persist_as_owner(&p->as, p->svc, &r_why);
	if (r < 0)
		mallafs_reason_set(why, "cannot act as the service's owner: %s",
		                   r_why.text[0] ? r_why.text : strerror(-r));
	return r;
}

/* ---- start and stop, in a thread acting as the owner ---- */

#define V1_MAGIC "mallafs-store "

/* Converts an old-format file at p->path; fd is open on it. */
static int convert_v1(struct persist *p, int fd, const struct stat *st, struct mallafs_reason *why)
{
	char *data = NULL;
	size_t len = 0, n = 0;
	int r = persist_read_fd(fd, st, &data, &len, why);
	if (r == 0)
		r = persist_convert_v1(p->path, data, len, &n, why);
	free(data);
	if (r == 0)
		mallafs_svc_log(p->svc, LOG_NOTICE,
		                "persist: converted %s (old format, %zu keys) to an SQLite "
		                "database; the old file is kept as %s.v1",
		                p->path, n, p->path);
	return r;
}

static int count_one(const char *key, const void *value, size_t len, const struct timespec *mtime,
                     void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

/* Checks the file at p->path as persist sees files, converts an old one;
 * *ret_ours when it is the database this instance closed last. -ENOENT
 * when there is none. */
static int check_file(struct persist *p, bool *ret_ours, struct mallafs_reason *why)
{
	struct stat st;
	char head[sizeof(V1_MAGIC) - 1];
	int fd, r = persist_open_file(p->path, UINT64_MAX, &fd, &st, why);
	*ret_ours = false;
	if (r < 0)
		return r;
	if (pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
	    memcmp(head, V1_MAGIC, sizeof(head)) == 0) {
		if ((uint64_t)st.st_size > PERSIST_FILE_MAX) {
			mallafs_reason_set(why, "it is %llu bytes, over persist's limit of %llu",
			                   (unsigned long long)st.st_size, PERSIST_FILE_MAX);
			r = -EFBIG;
		} else {
			r = convert_v1(p, fd, &st, why);
		}
		close(fd);
		return r;
	}
	close(fd);
	if (!(st.st_mode & S_IWUSR)) {
		mallafs_reason_set(why, "it is read-only (mode %04o): persist writes to it",
		                   (unsigned)(st.st_mode & 07777));
		return -EROFS;
	}
	*ret_ours = p->saved && p->saved_path && strcmp(p->saved_path, p->path) == 0 &&
	            st.st_dev == p->saved_st.st_dev && st.st_ino == p->saved_st.st_ino &&
	            st.st_size == p->saved_st.st_size &&
	            st.st_mtim.tv_sec == p->saved_st.st_mtim.tv_sec &&
	            st.st_mtim.tv_nsec == p->saved_st.st_mtim.tv_nsec &&
	            st.st_ctim.tv_sec == p->saved_st.st_ctim.tv_sec &&
	            st.st_ctim.tv_nsec == p->saved_st.st_ctim.tv_nsec;
	return 0;
}

/* Opens (or creates) and loads the database, as the owner. */
static int open_and_load(struct persist *p, struct mallafs_reason *why)
{
	struct mallafs_reason pr = {{0}};
	struct precs recs = {0};
	bool ours = false, fresh = false;
	int r = check_file(p, &ours, &pr);
	if (r < 0 && r != -ENOENT) {
		mallafs_reason_set(why, "cannot load %s: %s", p->path, pr.text);
		return r;
	}
	r = pdb_open(p->path, true, &p->d, &fresh, why);
	if (r < 0)
		return r;
	p->loaded = 0;
	p->sync_at_start = ours;
	if (fresh) {
		/* A new database gets what the store holds already. */
		size_t nkeys = 0;
		p->sync_at_start = mallafs_store_foreach(p->svc, count_one, &nkeys) < 0 || nkeys;
	}
	if (!ours && !fresh) {
		r = pdb_load(&p->d, &recs, &pr);
		if (r == 0)
			r = mallafs_store_load_many(p->svc, recs.recs, recs.n);
		if (r < 0) {
			mallafs_reason_set(why, "cannot load %s: %s", p->path,
			                   pr.text[0] ? pr.text : strerror(-r));
			pdb_close(&p->d);
		} else {
			size_t nkeys = 0;
			p->loaded = recs.n;
			/* Keys the store held that the database does not. */
			if (mallafs_store_foreach(p->svc, count_one, &nkeys) < 0 || nkeys != recs.n)
				p->sync_at_start = true;
		}
		precs_free(&recs);
	}
	return r;
}

static void *start_thread(void *arg)
{
	struct persist *p = arg;
	p->thread_why = (struct mallafs_reason){{0}};
	int r = persist_as_init(&p->as);
	if (r < 0)
		mallafs_reason_set(&p->thread_why, "cannot read the daemon's groups: %s",
		                   strerror(-r));
	if (r == 0)
		r = become_owner(p, &p->thread_why);
	if (r == 0)
		r = open_and_load(p, &p->thread_why);
	if (r < 0)
		persist_as_free(&p->as);
	p->thread_result = r;
	return NULL;
}

/* The last commit and the close, as the owner; remembers the file. */
static void *stop_thread(void *arg)
{
	struct persist *p = arg;
	struct mallafs_reason why = {{0}};
	int r = persist_commit_pending(p, false, &why);
	if (r < 0)
		mallafs_svc_log(p->svc, LOG_ERR,
		                "persist: changes since the last commit are lost from %s", p->path);
	r = become_owner(p, &why);
	if (r < 0)
		mallafs_svc_log(p->svc, LOG_ERR, "persist: cannot close %s: %s", p->path, why.text);
	pthread_mutex_lock(&p->db_lock);
	if (r == 0)
		pdb_close(&p->d);
	pthread_mutex_unlock(&p->db_lock);
	int fd;
	p->saved = false;
	if (r == 0 && persist_open_file(p->path, UINT64_MAX, &fd, &p->saved_st, &why) == 0) {
		close(fd);
		free(p->saved_path);
		p->saved_path = strdup(p->path);
		p->saved = p->saved_path != NULL;
	}
	return NULL;
}

/* Runs fn in a thread of persist's own and waits for it. */
static int run_thread(struct persist *p, void *(*fn)(void *))
{
	pthread_t thread;
	int r = pu_thread_start(&thread, "mallafs-persist", fn, p);
	if (r == 0)
		pthread_join(thread, NULL);
	return r;
}

/* ---- callbacks ---- */

static void persist_fini(void *state)
{
	struct persist *p = state;
	if (!p)
		return;
	mallafs_timer_free(p->timer);
	pdirty_free(&p->dirty);
	free(p->path);
	free(p->saved_path);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->db_lock);
	free(p);
}

static int persist_init(struct mallafs_svc *svc, const struct mallafs_plugin *self,
                        void **ret_state)
{
	struct persist *p = calloc(1, sizeof(*p));
	int r;
	if (!p)
		return -ENOMEM;
	p->svc = svc;
	p->self = self;
	r = -pthread_mutex_init(&p->lock, NULL);
	if (r < 0)
		goto fail_mutex;
	r = -pthread_mutex_init(&p->db_lock, NULL);
	if (r < 0)
		goto fail_db_mutex;
	r = mallafs_timer_new(svc, persist_commit_due, p, &p->timer);
	if (r < 0)
		goto fail_timer;
	strcpy(p->last_commit, "-");
	strcpy(p->error, "-");
	*ret_state = p;
	return 0;
fail_timer:
	pthread_mutex_destroy(&p->db_lock);
fail_db_mutex:
	pthread_mutex_destroy(&p->lock);
fail_mutex:
	free(p);
	return r;
}

static int check_path(struct persist *p, const char *v, struct mallafs_reason *why)
{
	char buf[96];
	if (!v || !*v)
		return 0;
	/* Inside the daemon's own mount, every access would be a request to
	 * the daemon itself (a FUSE filesystem elsewhere is refused when the
	 * database is opened: msql_open). */
	const char *mnt = mallafs_svc_mountpoint(p->svc);
	size_t ml = mnt ? strlen(mnt) : 0;
	if (ml && strncmp(v, mnt, ml) == 0 && (v[ml] == '/' || v[ml] == '\0' || ml == 1)) {
		mallafs_reason_set(why, "path must not be inside mallafs's own mount (%s): '%s'",
		                   mnt, pu_excerpt(v, buf, sizeof(buf)));
		return -EINVAL;
	}
	if (v[0] != '/') {
		mallafs_reason_set(why, "path must be absolute, not '%s'",
		                   pu_excerpt(v, buf, sizeof(buf)));
		return -EINVAL;
	}
	if (v[strlen(v) - 1] == '/') {
		mallafs_reason_set(why, "path must name a file, not a directory: '%s'",
		                   pu_excerpt(v, buf, sizeof(buf)));
		return -EINVAL;
	}
	if (strlen(v) + PERSIST_TMP_SUFFIX >= PATH_MAX) {
		mallafs_reason_set(why, "path is too long (%zu bytes)", strlen(v));
		return -EINVAL;
	}
	const char *name = strrchr(v, '/') + 1;
	if (strlen(name) + PERSIST_TMP_SUFFIX > NAME_MAX) {
		mallafs_reason_set(why, "the file name is too long (%zu bytes, at most %d)",
		                   strlen(name), NAME_MAX - PERSIST_TMP_SUFFIX);
		return -EINVAL;
	}
	return 0;
}

static int check_sync(const char *v, struct mallafs_reason *why)
{
	char buf[96];
	if (!v || strcmp(v, "batch") == 0 || strcmp(v, "always") == 0)
		return 0;
	mallafs_reason_set(why, "sync must be batch or always, not '%s'",
	                   pu_excerpt(v, buf, sizeof(buf)));
	return -EINVAL;
}

static int persist_merge(void *state, const struct mallafs_cfg *old,
                         const struct mallafs_cfg *update, struct mallafs_cfg *merged,
                         struct mallafs_reason *why)
{
	struct persist *p = state;
	int r = check_path(p, mallafs_setting(merged, p->self, "path"), why);
	if (r < 0) {
		mallafs_reason_key(why, NULL, "path");
		return r;
	}
	r = check_sync(mallafs_setting(merged, p->self, "sync"), why);
	if (r < 0)
		mallafs_reason_key(why, NULL, "sync");
	return r;
}

static int persist_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct persist *p = state;
	const char *path = mallafs_setting(cfg, p->self, "path");
	const char *sync = mallafs_setting(cfg, p->self, "sync");
	int r = check_path(p, path, why);
	if (r == 0)
		r = check_sync(sync, why);
	if (r < 0)
		return r;
	free(p->path);
	p->path = NULL;
	if (!path || !*path)
		return 0;
	p->path = strdup(path);
	if (!p->path)
		return -ENOMEM;
	p->always = sync && strcmp(sync, "always") == 0;

	/* The open and the load run in a thread of their own, as the owner:
	 * this thread keeps the daemon's identity. */
	r = run_thread(p, start_thread);
	if (r < 0) {
		mallafs_reason_set(why, "cannot start the loading thread: %s", strerror(-r));
		goto fail;
	}
	r = p->thread_result;
	if (r < 0) {
		*why = p->thread_why;
		goto fail;
	}
	pthread_mutex_lock(&p->lock);
	p->on = true;
	p->stopping = false;
	p->failing = false;
	p->armed = false;
	p->syncing = p->sync_at_start;
	strcpy(p->error, "-");
	p->logged[0] = '\0';
	if (p->syncing) {
		p->armed = true;
		mallafs_timer_arm(p->timer, mallafs_timer_now() + PERSIST_COALESCE_NS);
	}
	pthread_mutex_unlock(&p->lock);
	p->started = true;
	return 0;
fail:
	free(p->path);
	p->path = NULL;
	return r;
}

static void persist_stop(void *state)
{
	struct persist *p = state;
	if (!p->path)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->lock);
		p->stopping = true;
		pthread_mutex_unlock(&p->lock);
		/* Waits for a commit under way; none starts after this. The
		 * hooks are off by now: nothing records changes any more. */
		mallafs_timer_cancel(p->timer);
		int r = run_thread(p, stop_thread);
		if (r < 0)
			mallafs_svc_log(p->svc, LOG_ERR,
			                "persist: cannot commit to %s at stop: cannot start a "
			                "thread: %s",
			                p->path, strerror(-r));
		persist_as_free(&p->as);
		pthread_mutex_lock(&p->lock);
		p->on = false;
		pdirty_free(&p->dirty);
		pthread_mutex_unlock(&p->lock);
		p->started = false;
	}
	free(p->path);
	p->path = NULL;
}

static enum mallafs_update persist_updated(void *state, const struct mallafs_cfg *old,
                                           const struct mallafs_cfg *cfg,
                                           struct mallafs_reason *why)
{
	struct persist *p = state;
	const char *was = mallafs_setting(old, p->self, "path");
	const char *now = mallafs_setting(cfg, p->self, "path");
	const char *sync_was = mallafs_setting(old, p->self, "sync");
	const char *sync_now = mallafs_setting(cfg, p->self, "sync");
	char b1[96], b2[96];
	if (!was)
		was = "";
	if (!now)
		now = "";
	if (strcmp(was, now) == 0) {
		if (!sync_was || !sync_now || strcmp(sync_was, sync_now) == 0)
			return MALLAFS_UPDATE_OK;
		mallafs_reason_set(why, "sync changed from %s to %s",
		                   pu_excerpt(sync_was, b1, sizeof(b1)),
		                   pu_excerpt(sync_now, b2, sizeof(b2)));
		return MALLAFS_UPDATE_RESTART;
	}
	if (!*now)
		mallafs_reason_set(why, "path unset: no longer persisting to '%s'",
		                   pu_excerpt(was, b1, sizeof(b1)));
	else if (!*was)
		mallafs_reason_set(why, "path set to '%s'", pu_excerpt(now, b2, sizeof(b2)));
	else
		mallafs_reason_set(why, "path changed from '%s' to '%s'",
		                   pu_excerpt(was, b1, sizeof(b1)),
		                   pu_excerpt(now, b2, sizeof(b2)));
	return MALLAFS_UPDATE_RESTART;
}

static bool changes(const struct mallafs_store_op *op)
{
	return op->code != MALLAFS_OP_GET && op->code != MALLAFS_OP_LIST &&
	       !(op->flags & MALLAFS_OPF_PROBE);
}

static int persist_store_before(void *state, struct mallafs_store_op *op)
{
	struct persist *p = state;
	if (p->path && p->always && changes(op))
		op->commit = 1;
	return 0;
}

/* always: the change in its own transaction, before the write returns. */
static int persist_store_commit(void *state, const struct mallafs_store_op *op)
{
	struct persist *p = state;
	struct mallafs_reason why = {{0}};
	char *v = NULL;
	size_t len = 0;
	int r = 0;
	if (!p->path || !p->always || !changes(op))
		return 0;
	pthread_mutex_lock(&p->db_lock);
	switch (op->code) {
	case MALLAFS_OP_DELETE:
		r = pdb_del(&p->d, op->key, &why);
		break;
	case MALLAFS_OP_RENAME:
		r = pdb_begin(&p->d, &why);
		if (r == 0)
			r = pdb_rename(&p->d, op->key, op->new_key, &why);
		if (r == 0)
			r = pdb_commit(&p->d, &why);
		else
			pdb_rollback(&p->d);
		break;
	default:
		r = persist_table_value(p->svc, op->key, persist_size_guess(op), &v, &len);
		if (r < 0)
			mallafs_reason_set(&why, "cannot read the new value: %s", strerror(-r));
		else
			r = pdb_put(&p->d, op->key, v, len, persist_real_ns(), &why);
		free(v);
	}
	pthread_mutex_unlock(&p->db_lock);
	if (r < 0)
		mallafs_reason_set(op->why, "cannot commit to %s: %s", p->path, why.text);
	else
		p->committed = op;
	persist_note_commit(p, r, &why, false);
	return r;
}

static void persist_store_after(void *state, const struct mallafs_store_op *op)
{
	struct persist *p = state;
	/* Reads and probes run under the store's read lock, side by side:
	 * only a change (under the write lock) may touch `committed`. */
	if (!changes(op))
		return;
	const struct mallafs_store_op *committed = p->committed;
	p->committed = NULL;
	if (!p->path)
		return;
	pthread_mutex_lock(&p->lock);
	int r = 0;
	bool record = op->result >= 0 && (!p->always || p->syncing);
	/* always: this commit counted, but the change did not (a plugin
	 * below refused it, base failed): the rows follow the table again. */
	bool resync = op->result < 0 && committed == op;
	if (record || resync) {
		if (op->code == MALLAFS_OP_DELETE && !resync)
			r = pdirty_put(&p->dirty, op->key, true, NULL, 0, 0);
		else
			r = persist_record_key(p, op->key, persist_size_guess(op));
		if (r == 0 && op->code == MALLAFS_OP_RENAME)
			r = persist_record_key(p, op->new_key,
			                       op->old_size > 0 ? (uint64_t)op->old_size : 0);
		if (r < 0)
			mallafs_svc_log(p->svc, LOG_ERR,
			                "persist: cannot record a change of %s: %s", op->key,
			                strerror(-r));
		persist_arm_commit(p);
	}
	pthread_mutex_unlock(&p->lock);
}

static int persist_status(void *state, struct mallafs_out *out)
{
	struct persist *p = state;
	int r = 0;
	pthread_mutex_lock(&p->lock);
	if (p->on)
		r = mallafs_out_printf(out, "persist_last_commit: %s\npersist_error: %s\n",
		                       p->last_commit, p->error);
	pthread_mutex_unlock(&p->lock);
	return r;
}

const struct mallafs_plugin mallafs_plugin_persist = {
        MALLAFS_PLUGIN_INIT,
        .name = "persist",
        .settings = persist_settings,
        /* lifecycle and configuration */
        .init = persist_init,
        .fini = persist_fini,
        .start = persist_start,
        .stop = persist_stop,
        .config_merge = persist_merge,
        .updated = persist_updated,
        /* store hooks */
        .store_before = persist_store_before,
        .store_after = persist_store_after,
        .store_commit = persist_store_commit,
        .status = persist_status,
};
