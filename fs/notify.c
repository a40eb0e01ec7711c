/* SPDX-License-Identifier: MIT */
/* The notifier: makes every change the kernel did not see come through a
 * request reach its caches, inotify watchers and poll() waiters.
 *
 * Core reports every change to a listener, in the thread that made it. A
 * request handler names what it acts on (mfs_req_begin), so a change to that
 * very entry is known to the kernel already; anything else is queued here.
 *
 * The kernel makes inotify events only for operations that pass through the
 * mount, and must not be called from a request handler (a notification can
 * wait on locks the request holds). So this thread acts on the mount as a
 * client, through its echo process (echoproc.c: no thread of the daemon
 * does I/O on its own mount): a changed file is opened, written and closed
 * (IN_MODIFY, IN_CLOSE_WRITE), a new entry is created (IN_CREATE), a
 * removed one unlinked (IN_DELETE). echo.c recognises those requests by the
 * echo process's pid and answers them as the echo of a change already
 * made: they change nothing, so nothing feeds back. Derived files (config.ini, config keys, chain,
 * status, plugin files) are compared with the last state this thread saw, so
 * only what really changed is echoed, and a burst of changes to one file
 * becomes one echo. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "echoes.h"
#include "events.h"
#include "fs_i.h"
#include "kv.h"
#include "resync.h"
#include "runtime.h"
#include "service.h"
#include "tree.h"
#include "util.h"

#define QUEUE_MAX 65536

enum item_kind {
	IT_EVENT,  /* a core event */
	IT_INVAL,  /* drop the kernel's cache of ino */
	IT_RESYNC, /* compare a service's derived files with what was seen */
	IT_WAKE,   /* wake the poll() waiters of ino */
};

struct item {
	struct item *next;
	enum item_kind kind;
	enum mev_op op;
	uint64_t ino;
	char *path;
	char *detail; /* a rename's new path */
	char *key;    /* in the pending set, or NULL */
	struct mfs_target target;
};

struct mnotifier {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *head, *tail;
	size_t len;
	/* Changes dropped since the queue last filled (logged once when it
	 * fills, and once, with the count, when it has room again). */
	uint64_t dropped;
	uint64_t dropped_total; /* and since the start (the root's metrics) */
	struct mkv *pending;    /* dedup keys of queued and held items */
	/* Items of services with requests waiting for their plugins (defer.c),
	 * in order; counted in len. */
	struct item *held, *held_tail;
	uint64_t kicks; /* counts mfs_notifier_kick calls */
	bool stop;
	bool done;               /* the thread has left its loop: it writes to /dev/fuse no more */
	bool joined;             /* and mfs_notifier_stop joined it */
	struct mfs_snaps *snaps; /* the thread's own */
};

static _Thread_local struct mfs_target tls_target;

void mfs_req_begin(uint64_t ino, uint64_t parent, const char *name, uint64_t parent2,
                   const char *name2)
{
	tls_target.set = true;
	tls_target.ino = ino;
	tls_target.parent = parent;
	snprintf(tls_target.name, sizeof(tls_target.name), "%s", name ? name : "");
	tls_target.parent2 = parent2;
	snprintf(tls_target.name2, sizeof(tls_target.name2), "%s", name2 ? name2 : "");
}

void mfs_req_end(void)
{
	tls_target.set = false;
}

/* ---- the queue ---- */

static void item_free(struct item *it)
{
	if (!it)
		return;
	free(it->path);
	free(it->detail);
	free(it->key);
	free(it);
}

/* Queues it unless an item with the same key is queued already. */
static void enqueue(struct mnotifier *nt, struct item *it)
{
	pthread_mutex_lock(&nt->lock);
	if (nt->stop || nt->len >= QUEUE_MAX ||
	    (it->key && mkv_create(nt->pending, it->key) == -EEXIST)) {
		if (nt->len >= QUEUE_MAX && !nt->stop)
			nt->dropped_total++;
		if (nt->len >= QUEUE_MAX && nt->dropped++ == 0)
			mu_log(MU_LOG_WARNING,
			       "notifier: queue full: changes are not echoed until it has room");
		pthread_mutex_unlock(&nt->lock);
		item_free(it);
		return;
	}
	if (nt->dropped) {
		mu_log(MU_LOG_WARNING,
		       "notifier: the queue has room again; %llu changes were not echoed",
		       (unsigned long long)nt->dropped);
		nt->dropped = 0;
	}
	if (nt->tail)
		nt->tail->next = it;
	else
		nt->head = it;
	nt->tail = it;
	nt->len++;
	pthread_cond_signal(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
}

static struct item *item_new(enum item_kind kind, enum mev_op op, const char *path,
                             const char *keyfmt)
{
	struct item *it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	it->kind = kind;
	it->op = op;
	if (path && !(it->path = strdup(path)))
		goto fail;
	if (keyfmt) {
		struct mu_buf b = {0};
		if (mu_buf_printf(&b, "%s%s", keyfmt, path ? path : "") < 0) {
			mu_buf_free(&b);
			goto fail;
		}
		it->key = mu_buf_steal(&b, NULL);
	}
	return it;
fail:
	item_free(it);
	return NULL;
}

static const char *last_component(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* "services/NAME/..." -> NAME into buf; false for other paths. */
static bool service_of(const char *path, char *buf, size_t len)
{
	const char *top = mtree_name(MTREE_SERVICES);
	size_t tl = strlen(top);
	if (strncmp(path, top, tl) != 0 || path[tl] != '/')
		return false;
	const char *s = path + tl + 1, *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);
	if (n == 0 || n >= len)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return true;
}

/* "config/APP/KEY" or "services/NAME/store/KEY". */
static bool is_value_path(const char *path)
{
	char svc[MU_NAME_MAX + 1];
	const char *top = mtree_name(MTREE_CONFIG), *rest;
	size_t tl = strlen(top);
	if (strncmp(path, top, tl) == 0 && path[tl] == '/') {
		rest = strchr(path + tl + 1, '/');
		return rest && !strchr(rest + 1, '/');
	}
	if (!service_of(path, svc, sizeof(svc)))
		return false;
	rest = path + strlen(mtree_name(MTREE_SERVICES)) + 1 + strlen(svc);
	const char *store = mtree_name(MTREE_STORE);
	size_t sl = strlen(store);
	return rest[0] == '/' && strncmp(rest + 1, store, sl) == 0 && rest[1 + sl] == '/' &&
	       !strchr(rest + 2 + sl, '/');
}

/* A value's poll() waiters hear of every change to it, whoever made it: a
 * request on the value itself too (the kernel saw that change, but poll()
 * waiters on other open files did not). The node is found now, in the
 * changing thread, before a request that removes or replaces the entry
 * unhashes it; the notifier thread wakes it. */
static void wake_value(struct mfs *fs, const char *path)
{
	if (!path || fs->polling == 0 || !is_value_path(path))
		return;
	struct resolved r;
	uint64_t ino = 0;
	/* A polled value's node is in the table: its poll holds it. */
	mfs_resolve_in_table(fs, path, &r);
	if (r.node) {
		pthread_mutex_lock(&fs->lock);
		if (r.node->polls)
			ino = r.node->ino;
		pthread_mutex_unlock(&fs->lock);
	}
	mfs_resolved_put(fs, &r);
	if (!ino)
		return;
	char key[32];
	snprintf(key, sizeof(key), "W:%llu", (unsigned long long)ino);
	struct item *it = item_new(IT_WAKE, MEV_WRITE, NULL, key);
	if (!it)
		return;
	it->ino = ino;
	enqueue(fs->notifier, it);
}

static void listener(const struct mev *ev, void *arg)
{
	struct mfs *fs = arg;
	struct mnotifier *nt = fs->notifier;
	char svc[MU_NAME_MAX + 1];

	switch (ev->op) {
	case MEV_RECONFIGURE:
	case MEV_RESTART:
	case MEV_STATUS:
	case MEV_PLUGIN_ADD:
	case MEV_PLUGIN_DEL:
		if (service_of(ev->path, svc, sizeof(svc))) {
			/* Coalesced per service and per request: a resync must
			 * not lose the entry its request made itself. */
			char key[64];
			snprintf(key, sizeof(key), "R:%llu:%llu:",
			         (unsigned long long)(tls_target.set ? tls_target.ino : 0),
			         (unsigned long long)(tls_target.set ? tls_target.parent : 0));
			struct item *it = item_new(IT_RESYNC, ev->op, svc, key);
			if (it) {
				it->target = tls_target;
				enqueue(nt, it);
			}
		}
		return;
	case MEV_WRITE:
	case MEV_CREATE:
	case MEV_DELETE:
		wake_value(fs, ev->path);
		break;
	case MEV_RENAME:
		wake_value(fs, ev->path);
		wake_value(fs, ev->detail);
		break;
	default:
		break;
	}
	/* The entry the current request acts on: the kernel saw it. */
	const char *last = last_component(ev->path);
	if (tls_target.set &&
	    (strcmp(last, tls_target.name) == 0 || strcmp(last, tls_target.name2) == 0))
		return;
	if (ev->op == MEV_RENAME && tls_target.set && ev->detail &&
	    strcmp(last_component(ev->detail), tls_target.name2) == 0)
		return;
	/* A plugin file that changed: one echo per burst. */
	const char *dedup = ev->op == MEV_WRITE ? "M:" : NULL;
	struct item *it = item_new(IT_EVENT, ev->op, ev->path, dedup);
	if (!it)
		return;
	if (ev->op == MEV_RENAME && ev->detail && !(it->detail = strdup(ev->detail))) {
		item_free(it);
		return;
	}
	it->target = tls_target;
	enqueue(nt, it);
}

void mfs_notify_created(struct mfs *fs, const char *path)
{
	if (!fs->notifier)
		return;
	struct item *it = item_new(IT_EVENT, MEV_CREATE, path, NULL);
	if (it)
		enqueue(fs->notifier, it);
}

void mfs_notify_inval_inode(struct mfs *fs, uint64_t ino)
{
	if (!fs->notifier)
		return;
	struct item *it = item_new(IT_INVAL, MEV_WRITE, NULL, NULL);
	if (!it)
		return;
	it->ino = ino;
	enqueue(fs->notifier, it);
}

/* ---- the thread ---- */

static bool is_dir_path(enum mev_op op, const char *path)
{
	if (op == MEV_MKDIR || op == MEV_RMDIR)
		return true;
	return false;
}

static void apply_event(struct mfs *fs, struct item *it)
{
	struct resolved r;
	char svc[MU_NAME_MAX + 1];
	mfs_resolve(fs, it->path, &r);
	bool mine = mfs_in_band(&it->target, &r);
	bool known = r.node != NULL;
	mfs_resolved_put(fs, &r);
	if (mine)
		return;
	bool dir = is_dir_path(it->op, it->path);
	switch (it->op) {
	case MEV_CREATE:
	case MEV_MKDIR:
	case MEV_REGISTER:
		if (it->op == MEV_MKDIR && service_of(it->path, svc, sizeof(svc)) &&
		    !strchr(it->path + 9, '/'))
			mfs_resync(fs, &fs->notifier->snaps, svc, &it->target);
		/* A registration or write replacing a value is a change, not a new entry. */
		if (it->op == MEV_REGISTER && known)
			mfs_echo_modify(fs, it->path);
		else
			mfs_echo_create(fs, it->path, dir);
		break;
	case MEV_WRITE:
		mfs_echo_modify(fs, it->path);
		break;
	case MEV_DELETE:
	case MEV_RMDIR:
	case MEV_UNREGISTER:
		if (it->op == MEV_RMDIR && service_of(it->path, svc, sizeof(svc)))
			mfs_resync(fs, &fs->notifier->snaps, svc, &it->target);
		mfs_echo_delete(fs, it->path, dir);
		break;
	case MEV_RENAME:
		mfs_echo_delete(fs, it->path, false);
		if (it->detail)
			mfs_echo_create(fs, it->detail, false);
		break;
	default:
		break;
	}
}

/* An echo in a service with requests waiting for its plugins could wait in
 * the kernel for a lock one of them holds (config.ini, a key, plugins/ or
 * config/ held by a write or mkdir in flight) as long as the service's
 * hooks run, and every other service's echoes would wait behind it. So
 * such an item waits, with what follows it for the same service, until
 * the service's queue is empty (mfs_notifier_kick); nothing is lost, a
 * resync compares states. The store is never held by such a request. */
static bool must_wait(struct mfs *fs, struct mnotifier *nt, const struct item *it)
{
	char svc[MU_NAME_MAX + 1];
	if (it->kind == IT_RESYNC) {
		snprintf(svc, sizeof(svc), "%s", it->path);
	} else if (it->kind != IT_EVENT || !service_of(it->path, svc, sizeof(svc))) {
		return false;
	} else {
		const char *rest = it->path + strlen(mtree_name(MTREE_SERVICES)) + 1 + strlen(svc);
		const char *store = mtree_name(MTREE_STORE);
		if (*rest == '/' && strncmp(rest + 1, store, strlen(store)) == 0 &&
		    (rest[1 + strlen(store)] == '/' || !rest[1 + strlen(store)]))
			return false;
	}
	bool behind = false;
	pthread_mutex_lock(&nt->lock);
	for (struct item *h = nt->held; h && !behind; h = h->next) {
		char other[MU_NAME_MAX + 1];
		behind = h->kind == IT_RESYNC ? strcmp(h->path, svc) == 0
		                              : service_of(h->path, other, sizeof(other)) &&
		                                        strcmp(other, svc) == 0;
	}
	pthread_mutex_unlock(&nt->lock);
	return behind || mfs_defer_busy(fs, svc);
}

uint64_t mfs_notifier_dropped(struct mfs *fs)
{
	struct mnotifier *nt = fs->notifier;
	if (!nt)
		return 0;
	pthread_mutex_lock(&nt->lock);
	uint64_t n = nt->dropped_total;
	pthread_mutex_unlock(&nt->lock);
	return n;
}

void mfs_notifier_kick(struct mfs *fs)
{
	struct mnotifier *nt = fs->notifier;
	if (!nt)
		return;
	pthread_mutex_lock(&nt->lock);
	nt->kicks++;
	if (nt->held) {
		/* First again, in their order. */
		nt->held_tail->next = nt->head;
		if (!nt->head)
			nt->tail = nt->held_tail;
		nt->head = nt->held;
		nt->held = nt->held_tail = NULL;
		pthread_cond_signal(&nt->cond);
	}
	pthread_mutex_unlock(&nt->lock);
}

static void *run(void *arg)
{
	struct mfs *fs = arg;
	struct mnotifier *nt = fs->notifier;

	mfs_resync_all(fs, &nt->snaps);

	pthread_mutex_lock(&nt->lock);
	for (;;) {
		while (!nt->head && !nt->stop)
			pthread_cond_wait(&nt->cond, &nt->lock);
		if (nt->stop)
			break;
		struct item *it = nt->head;
		nt->head = it->next;
		if (!nt->head)
			nt->tail = NULL;
		uint64_t kicks = nt->kicks;
		pthread_mutex_unlock(&nt->lock);
		bool wait = must_wait(fs, nt, it);
		pthread_mutex_lock(&nt->lock);
		if (wait && nt->kicks != kicks) {
			/* A queue emptied meanwhile, maybe this service's,
			 * whose kick found nothing held yet: ask again. */
			it->next = nt->head;
			nt->head = it;
			if (!nt->tail)
				nt->tail = it;
			continue;
		}
		if (wait) {
			it->next = NULL;
			if (nt->held_tail)
				nt->held_tail->next = it;
			else
				nt->held = it;
			nt->held_tail = it;
			continue;
		}
		nt->len--;
		/* Taken off the set first: a change from now on queues again. */
		if (it->key)
			mkv_delete(nt->pending, it->key);
		pthread_mutex_unlock(&nt->lock);

		switch (it->kind) {
		case IT_INVAL:
			fuse_lowlevel_notify_inval_inode(fs->se, it->ino, 0, 0);
			break;
		case IT_RESYNC:
			mfs_resync(fs, &nt->snaps, it->path, &it->target);
			break;
		case IT_WAKE: {
			struct mnode *n = mfs_node_get(fs, it->ino);
			if (n)
				mfs_poll_wake(fs, n);
			mfs_node_put(fs, n);
			break;
		}
		case IT_EVENT:
			apply_event(fs, it);
			break;
		}
		item_free(it);
		pthread_mutex_lock(&nt->lock);
	}
	nt->done = true;
	pthread_cond_broadcast(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
	return NULL;
}

int mfs_notifier_start(struct mfs *fs)
{
	struct mnotifier *nt = calloc(1, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	pthread_mutex_init(&nt->lock, NULL);
	pthread_cond_init(&nt->cond, NULL);
	nt->pending = mkv_new();
	int r = -ENOMEM;
	if (!nt->pending)
		goto fail;
	/* Forked before the thread starts and before the request loop does:
	 * echo.c compares request pids with it from the first request on. */
	r = mfs_echoes_start(fs);
	if (r < 0)
		goto fail;
	fs->notifier = nt;
	r = mfs_thread_start(&nt->thread, "mallafs-notify", run, fs);
	if (r < 0)
		goto fail;
	r = mev_ring_add_listener(mrt_events(fs->rt), listener, fs);
	if (r < 0) {
		mfs_notifier_stop(fs);
		mfs_notifier_join(fs);
		return r;
	}
	return 0;
fail:
	fs->notifier = NULL;
	mfs_echoes_stop(fs);
	mkv_free(nt->pending);
	pthread_cond_destroy(&nt->cond);
	pthread_mutex_destroy(&nt->lock);
	free(nt);
	return r;
}

/* Stops listening and asks the thread to end. It may be waiting for its
 * echo process, inside a request on the mount that only the unmount will
 * end, so it is joined later. */
void mfs_notifier_stop(struct mfs *fs)
{
	struct mnotifier *nt = fs->notifier;
	if (!nt)
		return;
	mev_ring_remove_listener(mrt_events(fs->rt), listener, fs);
	pthread_mutex_lock(&nt->lock);
	nt->stop = true;
	pthread_cond_broadcast(&nt->cond);
	pthread_mutex_unlock(&nt->lock);

	/* Nobody serves the mount any more: an echo under way would wait for
	 * the unmount. Ending it lets the thread leave now, so that it never
	 * writes to the session while the unmount closes it. A write to the
	 * kernel that waits for a folder's lock (held by a caller whose
	 * request nobody will read) still ends only with the unmount: after a
	 * bounded wait the thread is joined after it (mfs_notifier_join). */
	mfs_echoes_kill(fs);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&nt->lock);
	while (!nt->done && pthread_cond_timedwait(&nt->cond, &nt->lock, &until) == 0)
		;
	bool done = nt->done;
	pthread_mutex_unlock(&nt->lock);
	if (done) {
		pthread_join(nt->thread, NULL);
		nt->joined = true;
	}
}

void mfs_notifier_join(struct mfs *fs)
{
	struct mnotifier *nt = fs->notifier;
	if (!nt)
		return;
	if (!nt->joined)
		pthread_join(nt->thread, NULL);
	fs->notifier = NULL;
	mfs_echoes_stop(fs);
	while (nt->head || nt->held) {
		struct item *it = nt->head ? nt->head : nt->held;
		if (it == nt->head)
			nt->head = it->next;
		else
			nt->held = it->next;
		item_free(it);
	}
	mfs_snaps_free(nt->snaps);
	mkv_free(nt->pending);
	pthread_cond_destroy(&nt->cond);
	pthread_mutex_destroy(&nt->lock);
	free(nt);
}
