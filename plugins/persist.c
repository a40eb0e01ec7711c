/* persist: keeps the store in a file across daemon restarts.
 *
 * Setting `path`: "" (the default) persists nothing; otherwise an absolute
 * file name (a relative one is refused with EINVAL at the merge phase).
 * Changing it restarts the service: the old file gets a last write as the
 * plugin stops, the new one is loaded as it starts.
 *
 * Rights: every access to the file and its folder (load, create, save,
 * rename, fsync, unlink of a failed temporary file) runs in a thread that
 * acts as the service's owner: its filesystem uid and gid and its
 * supplementary groups (persist_owner.c), read again before each access, so
 * a chown of the service applies from the next save. The load at start and
 * the last write at stop run in a thread of persist's own, "mallafs-persist",
 * that lives as long as they do; the saves in between run on a worker of the
 * daemon's timer loop (mallafs_timer_*), shared with every service, which
 * takes the owner's identity for the save and gives it back right after.
 * The kernel then allows what the owner may do and no more, and a file
 * persist creates belongs to the owner. No symbolic link is followed, in the
 * folders of the path or at the file's name (persist_file.c).
 *
 * At start, when the file exists it is read whole, checked whole (format,
 * lengths, key names, count, checksum), and only then loaded into the store
 * with mallafs_store_load, replacing the values of the keys it names (keys
 * it does not name stay). A file that cannot be read or does not check out
 * fails the start with a reason naming the file and the problem ("cannot
 * load /x/y.store: checksum mismatch ..."): the core then marks the service
 * failed with that reason in last_error. Nothing of a bad file is loaded and
 * the file is left as it is, for the user to inspect. A file over
 * PERSIST_FILE_MAX (4 GiB) is refused (EFBIG) before anything is allocated
 * for it; so are a symbolic link, a FIFO or any other file that is not a
 * regular one, and a file that belongs to neither the owner nor root (EPERM:
 * another user could otherwise fill the service's store). When the file does not exist it is
 * created from the current store (failing the start when it cannot be, rather than running with a
 * persistence that does not persist).
 *
 * One exception to loading: when the file is the one this plugin instance
 * itself last wrote (same device, inode, size, mtime and ctime), the store is
 * already newer than it, since the store outlives the plugin's stop; loading
 * would bring back keys deleted and values overwritten while the service was
 * inactive, when the plugin's hooks did not see them. The store is then
 * written out instead.
 *
 * After every successful change (WRITE, CREATE, TRUNCATE, DELETE, RENAME),
 * store_after marks the store dirty and arms the timer 50 ms after the first
 * change (and 50 ms after its previous write began) so a burst costs one
 * write; the callback snapshots the whole store under the store's read
 * lock into memory, and writes it atomically: a temporary file of a random
 * name in the same folder, fsync, rename over PATH, fsync of the folder.
 * Readers of PATH see the old file or the new one, never a mix. A failed
 * write (disk full, folder gone, no permission) is logged and tried again at
 * the next change and at stop; it never stops the service. At stop the
 * timer is cancelled (a write under way finishes first) and any unsaved
 * change is written.
 *
 * The file is created with mode 0600 (it holds the store's data, which may
 * be secrets), owned by the service's owner; a file that exists keeps its
 * permission bits (not set-id bits) when it belongs to the owner or root. The file format is
 * described in persist_format.c. */
#include "builtin.h"
#include "persist_i.h"
#include "plugin_util.h"

#include <errno.h>
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

#define NSEC_PER_SEC 1000000000LL
#define PERSIST_COALESCE_NS (50 * 1000000LL)
#define PERSIST_KEY_MAX 255

/* Lock order: the store's lock, then p->lock (store_after takes p->lock
 * while the store's lock is held), then the timer loop's (p->timer is armed
 * with p->lock held); nothing takes the store's lock while it holds p->lock.
 * p->lock guards the fields marked "lock:"; the rest belongs to whoever
 * accesses the file: the load thread until start joined it, then the timer's
 * callback (one at a time) until stop cancelled the timer, then the last
 * write's thread. */
struct persist {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;
	char *path; /* while started with a path; NULL persists nothing */

	struct mallafs_timer *timer; /* the coalesced saves */

	pthread_mutex_t lock;
	/* lock: */
	bool dirty;   /* changes since the last snapshot began */
	bool unsaved; /* the last write failed */
	bool stopping;
	int64_t first_change;
	int64_t last_write;
	char last_error[MALLAFS_REASON_MAX]; /* the failure last logged */

	bool started; /* start and stop only */

	/* Whoever accesses the file (see above): */
	int load_result;
	struct mallafs_reason load_why;
	bool load_dirty;
	struct persist_as as;
	/* The file this instance last wrote, to recognise it at the next
	 * start. */
	bool saved;
	char *saved_path;
	dev_t saved_dev;
	ino_t saved_ino;
	off_t saved_size;
	struct timespec saved_mtime, saved_ctime;
};

static const struct mallafs_setting persist_settings[] = {
        {.key = "path", .def = "", .restart = 1},
        {.key = NULL},
};

static int64_t now_ns(void)
{
	return mallafs_timer_now();
}

/* ---- saving ---- */

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

/* Writes the whole store to p->path atomically, as the owner. The reason
 * says what failed. */
static int save(struct persist *p, struct mallafs_reason *why)
{
	struct pbuf b = {0};
	struct stat st;
	int r = become_owner(p, why);
	if (r < 0)
		return r;
	r = persist_snapshot(p->svc, &b);
	if (r < 0) {
		mallafs_reason_set(why, "cannot snapshot the store: %s", strerror(-r));
		return r;
	}
	if (b.len > PERSIST_FILE_MAX) {
		mallafs_reason_set(
		        why, "the store takes %zu bytes in the file, over persist's limit of %llu",
		        b.len, PERSIST_FILE_MAX);
		free(b.data);
		return -EFBIG;
	}
	r = persist_write_file(p->path, b.data, b.len, &st, why);
	free(b.data);
	if (r < 0)
		return r;
	char *sp = p->saved_path && strcmp(p->saved_path, p->path) == 0 ? p->saved_path
	                                                                : strdup(p->path);
	if (sp != p->saved_path) {
		free(p->saved_path);
		p->saved_path = sp;
	}
	p->saved = sp != NULL;
	p->saved_dev = st.st_dev;
	p->saved_ino = st.st_ino;
	p->saved_size = st.st_size;
	p->saved_mtime = st.st_mtim;
	p->saved_ctime = st.st_ctim;
	return 0;
}

/* Logs a failed write once, not once per retry, and says when it recovers. */
static void report_save(struct persist *p, int r, const struct mallafs_reason *why)
{
	char line[MALLAFS_REASON_MAX];
	bool log_it = false;
	pthread_mutex_lock(&p->lock);
	if (r < 0) {
		p->unsaved = true;
		if (strcmp(p->last_error, why->text) != 0) {
			snprintf(p->last_error, sizeof(p->last_error), "%s", why->text);
			log_it = true;
		}
	} else {
		p->unsaved = false;
		log_it = p->last_error[0] != '\0';
		p->last_error[0] = '\0';
	}
	snprintf(line, sizeof(line), "%s", why->text);
	pthread_mutex_unlock(&p->lock);
	if (!log_it)
		return;
	if (r < 0)
		mallafs_svc_log(p->svc, LOG_ERR,
		                "persist: cannot save %s: %s (trying again at the next change)",
		                p->path, line);
	else
		mallafs_svc_log(p->svc, LOG_INFO, "persist: saved %s again", p->path);
}

/* ---- loading ---- */

static bool is_our_file(struct persist *p, const struct stat *st)
{
	return p->saved && p->saved_path && strcmp(p->saved_path, p->path) == 0 &&
	       st->st_dev == p->saved_dev && st->st_ino == p->saved_ino &&
	       st->st_size == p->saved_size && st->st_mtim.tv_sec == p->saved_mtime.tv_sec &&
	       st->st_mtim.tv_nsec == p->saved_mtime.tv_nsec &&
	       st->st_ctim.tv_sec == p->saved_ctime.tv_sec &&
	       st->st_ctim.tv_nsec == p->saved_ctime.tv_nsec;
}

static int count_one(const char *key, const void *value, size_t len, const struct timespec *mtime,
                     void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

/* Puts the records into the store. */
static int load_records(struct persist *p, const struct persist_record *recs, size_t nrecs,
                        struct mallafs_reason *why)
{
	char *key = malloc(PERSIST_KEY_MAX + 1);
	int r = key ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < nrecs; i++) {
		memcpy(key, recs[i].key, recs[i].klen);
		key[recs[i].klen] = '\0';
		r = mallafs_store_load(p->svc, key, recs[i].value, recs[i].vlen);
		if (r < 0)
			mallafs_reason_set(why, "cannot store key %zu of %zu: %s", i + 1, nrecs,
			                   strerror(-r));
	}
	free(key);
	return r;
}

/* Loads p->path, creates it, or (our own file) leaves the store as it is,
 * as the owner. *ret_dirty says whether the file must be written again
 * soon. */
static int load_or_create(struct persist *p, bool *ret_dirty, struct mallafs_reason *why)
{
	struct mallafs_reason pr = {{0}};
	struct persist_record *recs = NULL;
	size_t nrecs = 0, nkeys = 0, len = 0;
	char *data = NULL;
	struct stat st;
	int fd = -1;

	*ret_dirty = false;
	int r = become_owner(p, why);
	if (r < 0)
		return r;
	r = persist_open_file(p->path, &fd, &st, &pr);
	if (r == -ENOENT) {
		r = save(p, &pr);
		if (r < 0)
			mallafs_reason_set(why, "%s does not exist and cannot be created: %s",
			                   p->path, pr.text);
		return r;
	}
	if (r == 0 && is_our_file(p, &st)) {
		close(fd);
		*ret_dirty = true;
		return 0;
	}
	if (r == 0) {
		r = persist_read_fd(fd, &st, &data, &len, &pr);
		close(fd);
	}
	if (r == 0)
		r = persist_parse(data, len, &recs, &nrecs, &pr);
	if (r == 0)
		r = load_records(p, recs, nrecs, &pr);
	/* Keys the store held that the file does not: write the union. */
	if (r == 0 && mallafs_store_foreach(p->svc, count_one, &nkeys) == 0 && nkeys != nrecs)
		*ret_dirty = true;
	if (r < 0)
		mallafs_reason_set(why, "cannot load %s: %s", p->path,
		                   pr.text[0] ? pr.text : strerror(-r));
	free(recs);
	free(data);
	return r;
}

/* ---- the threads ---- */

/* The load at start, in a thread of its own: it takes the owner's
 * identity, and ends with it. */
static void *load_thread(void *arg)
{
	struct persist *p = arg;
	p->load_why = (struct mallafs_reason){{0}};
	p->load_dirty = false;
	int r = persist_as_init(&p->as);
	if (r < 0)
		mallafs_reason_set(&p->load_why, "cannot read the daemon's groups: %s",
		                   strerror(-r));
	else
		r = load_or_create(p, &p->load_dirty, &p->load_why);
	if (r < 0)
		persist_as_free(&p->as);
	p->load_result = r;
	return NULL;
}

/* The last write at stop, in a thread of its own for the same reason. */
static void *flush_thread(void *arg)
{
	struct persist *p = arg;
	struct mallafs_reason why = {{0}};
	int r = save(p, &why);
	if (r < 0)
		mallafs_svc_log(p->svc, LOG_ERR, "persist: cannot save %s at stop: %s", p->path,
		                why.text);
	else
		report_save(p, r, &why);
	return NULL;
}

/* Arms the timer for the next write: 50 ms after the first change, and
 * after the previous write began. p->lock held. */
static void arm_save(struct persist *p)
{
	int64_t due = p->first_change;
	if (p->last_write > due)
		due = p->last_write;
	int r = mallafs_timer_arm(p->timer, due + PERSIST_COALESCE_NS);
	/* Only a daemon going away (whose stop writes what is left) or one
	 * that cannot start its timer thread refuses. */
	if (r < 0 && r != -ESHUTDOWN)
		mallafs_svc_log(p->svc, LOG_ERR, "persist: cannot arm the writer's timer: %s",
		                strerror(-r));
}

/* The timer's callback, on a worker of the daemon's loop: one write of the
 * whole store, as the owner, then the worker's identity back. */
static void save_due(void *arg)
{
	struct persist *p = arg;
	pthread_mutex_lock(&p->lock);
	if (p->stopping || !p->dirty) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	p->dirty = false;
	p->last_write = now_ns();
	pthread_mutex_unlock(&p->lock);

	struct mallafs_reason why = {{0}};
	int r = save(p, &why);
	struct mallafs_reason back = {{0}};
	if (persist_as_daemon(&p->as, &back) < 0)
		mallafs_svc_log(p->svc, LOG_ERR, "persist: %s", back.text);
	report_save(p, r, &why);
}

/* ---- callbacks ---- */

static void persist_fini(void *state)
{
	struct persist *p = state;
	if (!p)
		return;
	mallafs_timer_free(p->timer);
	free(p->path);
	free(p->saved_path);
	pthread_mutex_destroy(&p->lock);
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
	r = mallafs_timer_new(svc, save_due, p, &p->timer);
	if (r < 0)
		goto fail_timer;
	*ret_state = p;
	return 0;
fail_timer:
	pthread_mutex_destroy(&p->lock);
fail_mutex:
	free(p);
	return r;
}

static int check_path(const char *v, struct mallafs_reason *why)
{
	char buf[96];
	if (!v || !*v)
		return 0;
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
	if (strlen(v) >= PATH_MAX) {
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

static int persist_merge(void *state, const struct mallafs_cfg *old,
                         const struct mallafs_cfg *update, struct mallafs_cfg *merged,
                         struct mallafs_reason *why)
{
	struct persist *p = state;
	int r = check_path(mallafs_setting(merged, p->self, "path"), why);
	if (r < 0)
		mallafs_reason_key(why, NULL, "path");
	return r;
}

static int persist_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct persist *p = state;
	const char *path = mallafs_setting(cfg, p->self, "path");
	int r = check_path(path, why);
	if (r < 0)
		return r;
	free(p->path);
	p->path = NULL;
	if (!path || !*path)
		return 0;
	p->path = strdup(path);
	if (!p->path)
		return -ENOMEM;

	pthread_mutex_lock(&p->lock);
	p->stopping = false;
	p->dirty = false;
	p->unsaved = false;
	p->first_change = now_ns();
	p->last_write = 0;
	p->last_error[0] = '\0';
	pthread_mutex_unlock(&p->lock);

	/* The load runs in a thread of its own, as the owner: this thread
	 * keeps the daemon's identity. */
	pthread_t thread;
	r = pu_thread_start(&thread, "mallafs-persist", load_thread, p);
	if (r < 0) {
		mallafs_reason_set(why, "cannot start the loading thread: %s", strerror(-r));
		goto fail;
	}
	pthread_join(thread, NULL);
	r = p->load_result;
	if (r < 0) {
		*why = p->load_why;
		goto fail;
	}
	pthread_mutex_lock(&p->lock);
	if (p->load_dirty) {
		p->dirty = true;
		p->first_change = now_ns();
		arm_save(p);
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
		/* Waits for a write under way; none starts after this. */
		mallafs_timer_cancel(p->timer);
		/* The hooks are off by now: nothing marks the store dirty any
		 * more. */
		pthread_mutex_lock(&p->lock);
		bool flush = p->dirty || p->unsaved;
		p->dirty = false;
		pthread_mutex_unlock(&p->lock);
		pthread_t thread;
		int r = flush ? pu_thread_start(&thread, "mallafs-persist", flush_thread, p) : 0;
		if (r < 0)
			mallafs_svc_log(
			        p->svc, LOG_ERR,
			        "persist: cannot save %s at stop: cannot start a thread: %s",
			        p->path, strerror(-r));
		else if (flush)
			pthread_join(thread, NULL);
		persist_as_free(&p->as);
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
	char b1[96], b2[96];
	if (!was)
		was = "";
	if (!now)
		now = "";
	if (strcmp(was, now) == 0)
		return MALLAFS_UPDATE_OK;
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

static void persist_store_after(void *state, const struct mallafs_store_op *op)
{
	struct persist *p = state;
	if (!p->path || op->code == MALLAFS_OP_GET || op->code == MALLAFS_OP_LIST ||
	    op->result < 0 || (op->flags & MALLAFS_OPF_PROBE))
		return;
	pthread_mutex_lock(&p->lock);
	/* One arm per write cycle: later changes find the flag set. */
	if (!p->dirty) {
		p->dirty = true;
		p->first_change = now_ns();
		arm_save(p);
	}
	pthread_mutex_unlock(&p->lock);
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
        .store_after = persist_store_after,
};