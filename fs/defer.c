/* SPDX-License-Identifier: MIT */
/* Requests that wait for a service's plugins, off the worker threads.
 *
 * A reconfiguration, a plugin added or removed, a status change or the
 * removal of a service runs the service's plugin callbacks holding its
 * op_lock, and a callback may wait as long as an exec hook runs. Were the
 * FUSE worker thread to wait with it, a few slow hooks (or many requests
 * queued behind one) would take every worker, and every other service, the
 * registry and config/ would wait too. So these requests are handed to
 * their service's queue and the worker returns at once (as feed.c parks
 * reads of `events`): a thread of this file serves the queue in order and
 * replies from there (libfuse lets any thread reply). What waits:
 *  - write of config.ini, a config key or status, and the flush (close)
 *    of config.ini or a config key (it applies a last line without a
 *    newline), and the release of config.ini;
 *  - mkdir and rmdir in plugins/ and config/, unlink in config/SECTION/;
 *  - rmdir services/NAME (into NAME's queue, behind what waits for it).
 * Store operations are not deferred: their hooks must not block (the plugin
 * API says so) and hold no lock a hook holds. Reads never take op_lock.
 *
 * One queue per service with requests waiting, in arrival order, served by
 * one thread at a time (they would take op_lock one at a time anyway), so a
 * service's requests keep their order. Threads start when a queue gets work
 * and no thread is idle, up to DEFER_THREADS; past that, queues wait their
 * turn and threads take them round-robin, a request at a time. An idle
 * thread lingers DEFER_IDLE_MS, then ends.
 *
 * Bounds. Each queued request is a caller blocked in the kernel, so the
 * kernel bounds them by the callers' processes; on top of that a service
 * holds at most DEFER_SVC_MAX requests and DEFER_SVC_BYTES of written data
 * (an attacker's service fills its own queue, not others'), and the whole
 * mount DEFER_ALL_MAX and DEFER_ALL_BYTES. A request past a bound gets
 * EBUSY, with the reason in the log and in the service's last_error. A
 * release is always queued (it cannot fail, and costs no data).
 *
 * Unmounting (mfs_defer_stop, after the request loop has ended): requests
 * still queued get ENOTCONN (releases just let their handle go), a request
 * under way finishes (its hook has its timeout), and the threads are
 * joined, all before the session goes. A service removed while requests
 * wait for it answers them ENOENT, as any request on a removed service; its
 * queue holds a reference to it until the last one is answered.
 *
 * The notifier holds back its echoes for a service while requests wait for
 * it (mfs_defer_busy): one could wait in the kernel for a lock such a
 * request's caller holds; each queue that empties kicks it (notify.c).
 *
 * Lock: mfs_defer.lock guards the table of queues, every queue's items and
 * counts, the ready list, the threads' list and counts, and stop. A
 * leaf: never held across a request's handler, a reply, core or another
 * lock of fs/ (the service's reference is dropped outside it). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"
#include "runtime.h"
#include "service.h"

#define DEFER_BUCKETS 64
#define DEFER_THREADS 256
#define DEFER_IDLE_MS 1000
#define DEFER_SVC_MAX 1024
#define DEFER_SVC_BYTES (16u << 20)
#define DEFER_ALL_MAX 65536
#define DEFER_ALL_BYTES (256u << 20)

enum dop {
	D_WRITE,
	D_FLUSH,
	D_RELEASE,
	D_MKDIR,
	D_RMDIR,
	D_UNLINK,
};

struct ditem {
	struct ditem *next;
	enum dop op;
	fuse_req_t req;
	fuse_ino_t ino;
	struct mnode *node; /* referenced while queued */
	struct fuse_file_info fi;
	off_t off;
	size_t size; /* the write's */
	mode_t mode;
	size_t cost;
	char *data; /* the write's bytes, or the entry's name */
};

/* One service's requests. */
struct dq {
	struct dq *hnext, *rnext;
	struct mallafs_svc *svc; /* referenced */
	uint64_t id;
	struct ditem *head, *tail;
	size_t n, bytes;
};

struct dthread {
	struct dthread *next;
	struct mfs_defer *d;
	pthread_t thread;
	bool done; /* its function returned, or is about to: join it */
};

struct mfs_defer {
	struct mfs *fs;
	pthread_mutex_t lock;
	pthread_cond_t work; /* a queue is ready, or stop */
	pthread_cond_t gone; /* a thread ended */
	struct dq *table[DEFER_BUCKETS];
	struct dq *ready, *ready_tail;
	struct dthread *threads;
	unsigned nthreads, nidle;
	size_t n, bytes;
	bool stop;
};

static const struct fuse_lowlevel_ops *next;

/* ---- which requests wait, and for which service ---- */

static bool waits(enum mnode_kind k, enum dop op)
{
	switch (op) {
	case D_WRITE:
		return k == N_CONFIG_INI || k == N_SKEY || k == N_STATUS;
	case D_FLUSH:
		return k == N_CONFIG_INI || k == N_SKEY;
	case D_RELEASE:
		return k == N_CONFIG_INI;
	case D_MKDIR:
		return k == N_PLUGINS || k == N_SCFG;
	case D_RMDIR:
		return k == N_PLUGINS || k == N_SCFG || k == N_SERVICES;
	case D_UNLINK:
		return k == N_SECTION;
	}
	return false;
}

/* The service a request on ino (and entry name) may wait for, referenced,
 * with a reference to the node; NULL when it waits for none. */
static struct mallafs_svc *waits_for(struct mfs *fs, fuse_req_t req, fuse_ino_t ino,
                                     const char *name, enum dop op, struct mnode **ret_node)
{
	if (!fs->defer || mfs_req_is_echo(fs, req))
		return NULL;
	struct mnode *n = mfs_node_get(fs, ino);
	struct mallafs_svc *svc = NULL;
	if (n && waits(n->kind, op)) {
		if (n->kind == N_SERVICES)
			svc = name ? mrt_service_get(fs->rt, name) : NULL;
		else
			mfs_node_names(fs, n, NULL, NULL, 0, &svc);
	}
	if (!svc) {
		mfs_node_put(fs, n);
		return NULL;
	}
	*ret_node = n;
	return svc;
}

/* ---- items ---- */

static void item_free(struct mfs *fs, struct ditem *it)
{
	mfs_node_put(fs, it->node);
	free(it->data);
	free(it);
}

static void run(struct ditem *it)
{
	switch (it->op) {
	case D_WRITE:
		next->write(it->req, it->ino, it->data, it->size, it->off, &it->fi);
		break;
	case D_FLUSH:
		next->flush(it->req, it->ino, &it->fi);
		break;
	case D_RELEASE:
		next->release(it->req, it->ino, &it->fi);
		break;
	case D_MKDIR:
		next->mkdir(it->req, it->ino, it->data, it->mode);
		break;
	case D_RMDIR:
		next->rmdir(it->req, it->ino, it->data);
		break;
	case D_UNLINK:
		next->unlink(it->req, it->ino, it->data);
		break;
	}
}

/* Unmounting: answered without being done. */
static void refuse(struct mfs *fs, struct ditem *it)
{
	if (it->op == D_RELEASE) {
		mfs_handle_release(fs, it->fi.fh);
		fuse_reply_err(it->req, 0);
	} else {
		fuse_reply_err(it->req, ENOTCONN);
	}
}

/* ---- the threads ---- */

static struct dq **slot(struct mfs_defer *d, uint64_t id)
{
	return &d->table[id % DEFER_BUCKETS];
}

static void ready_push(struct mfs_defer *d, struct dq *q)
{
	q->rnext = NULL;
	if (d->ready_tail)
		d->ready_tail->rnext = q;
	else
		d->ready = q;
	d->ready_tail = q;
}

static struct dq *ready_pop(struct mfs_defer *d)
{
	struct dq *q = d->ready;
	if (q) {
		d->ready = q->rnext;
		if (!d->ready)
			d->ready_tail = NULL;
		q->rnext = NULL;
	}
	return q;
}

static struct ditem *take(struct mfs_defer *d, struct dq *q)
{
	struct ditem *it = q->head;
	if (it) {
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
		q->bytes -= it->cost;
		d->n--;
		d->bytes -= it->cost;
	}
	return it;
}

/* Out of the table, once empty and served by nobody. Lock held; the caller
 * frees it and drops its service outside the lock. */
static void unlink_queue(struct mfs_defer *d, struct dq *q)
{
	struct dq **pp = slot(d, q->id);
	while (*pp && *pp != q)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = q->hnext;
}

static void queue_free(struct dq *q)
{
	if (!q)
		return;
	msvc_unref(q->svc);
	free(q);
}

static bool wake_or_start(struct mfs_defer *d);

static void *serve(void *arg)
{
	struct dthread *t = arg;
	struct mfs_defer *d = t->d;
	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct dq *q = ready_pop(d);
		if (!q) {
			if (d->stop)
				break;
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += DEFER_IDLE_MS % 1000 * 1000000L;
			until.tv_sec += DEFER_IDLE_MS / 1000 + until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			d->nidle++;
			int r = pthread_cond_timedwait(&d->work, &d->lock, &until);
			d->nidle--;
			if (r == ETIMEDOUT && !d->ready)
				break;
			continue;
		}
		if (d->ready)
			wake_or_start(d); /* more queues wait: another thread */
		struct ditem *it;
		while ((it = take(d, q))) {
			pthread_mutex_unlock(&d->lock);
			run(it);
			item_free(d->fs, it);
			pthread_mutex_lock(&d->lock);
			/* Queues waiting for a thread (all are busy): take
			 * turns, a request each. */
			if (d->ready && q->head) {
				ready_push(d, q);
				q = NULL;
				break;
			}
		}
		if (q) {
			unlink_queue(d, q);
			pthread_mutex_unlock(&d->lock);
			queue_free(q);
			/* The service is idle: echoes held for it may go. */
			mfs_notifier_kick(d->fs);
			pthread_mutex_lock(&d->lock);
		}
	}
	t->done = true;
	d->nthreads--;
	pthread_cond_broadcast(&d->gone);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Joins the threads that ended. Lock held: a thread marked done no longer
 * takes it, so joining under it cannot wait on it. */
static void reap(struct mfs_defer *d)
{
	for (struct dthread **pp = &d->threads; *pp;) {
		struct dthread *t = *pp;
		if (t->done) {
			*pp = t->next;
			pthread_join(t->thread, NULL);
			free(t);
		} else {
			pp = &t->next;
		}
	}
}

/* A thread for a queue just made ready, unless one is idle. Lock held.
 * False when there is none to serve it at all. */
static bool wake_or_start(struct mfs_defer *d)
{
	if (d->nidle > 0) {
		pthread_cond_signal(&d->work);
		return true;
	}
	reap(d);
	if (d->nthreads >= DEFER_THREADS)
		return true; /* served in turn */
	struct dthread *t = calloc(1, sizeof(*t));
	if (t) {
		t->d = d;
		if (mfs_thread_start(&t->thread, "mallafs-defer", serve, t) == 0) {
			t->next = d->threads;
			d->threads = t;
			d->nthreads++;
			return true;
		}
		free(t);
	}
	return d->nthreads > 0;
}

/* ---- queueing ---- */

/* Queues it on svc's queue: 0, -EBUSY past a bound (the reason in why),
 * or -EAGAIN when no thread can serve it (then the worker runs it). Takes
 * over it on success. A queue in the table always has a thread serving it
 * or is on the ready list, and leaves the table when found empty. */
static int enqueue(struct mfs_defer *d, struct mallafs_svc *svc, struct ditem *it, char *why,
                   size_t len)
{
	uint64_t id = msvc_id(svc);
	struct dq *drop = NULL;
	bool bounded = it->op != D_RELEASE;
	int r = 0;
	pthread_mutex_lock(&d->lock);
	struct dq *q = *slot(d, id);
	while (q && q->svc != svc)
		q = q->hnext;
	if (d->stop) {
		r = -EAGAIN;
	} else if (bounded && q &&
	           (q->n >= DEFER_SVC_MAX || q->bytes + it->cost > DEFER_SVC_BYTES)) {
		snprintf(why, len,
		         "%zu requests (%zu bytes) wait for the service's plugins already", q->n,
		         q->bytes);
		r = -EBUSY;
	} else if (bounded && (d->n >= DEFER_ALL_MAX || d->bytes + it->cost > DEFER_ALL_BYTES)) {
		snprintf(why, len, "%zu requests (%zu bytes) wait for services' plugins already",
		         d->n, d->bytes);
		r = -EBUSY;
	}
	if (r < 0) {
		pthread_mutex_unlock(&d->lock);
		return r;
	}
	bool fresh = !q;
	if (fresh) {
		q = calloc(1, sizeof(*q));
		if (!q) {
			pthread_mutex_unlock(&d->lock);
			return -EAGAIN;
		}
		q->svc = msvc_ref(svc);
		q->id = id;
		q->hnext = *slot(d, id);
		*slot(d, id) = q;
	}
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->n++;
	q->bytes += it->cost;
	d->n++;
	d->bytes += it->cost;
	if (fresh) {
		ready_push(d, q);
		if (!wake_or_start(d)) {
			/* No thread at all (so q alone was ready): undone. */
			d->ready = d->ready_tail = NULL;
			take(d, q);
			unlink_queue(d, q);
			drop = q;
			r = -EAGAIN;
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (drop) {
		queue_free(drop);
		mfs_notifier_kick(d->fs);
	}
	return r;
}

static struct ditem *item_new(enum dop op, fuse_req_t req, fuse_ino_t ino, struct mnode *n,
                              const char *data, size_t size, off_t off,
                              const struct fuse_file_info *fi, mode_t mode)
{
	struct ditem *it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	*it = (struct ditem){.op = op, .req = req, .ino = ino, .node = n, .off = off, .mode = mode};
	if (fi)
		it->fi = *fi;
	it->size = size;
	it->cost = sizeof(*it) + size;
	if (data) {
		it->data = malloc(size + 1);
		if (!it->data) {
			free(it);
			return NULL;
		}
		memcpy(it->data, data, size);
		it->data[size] = '\0';
	}
	return it;
}

/* Hands it (NULL when out of memory) to svc's queue: true when the
 * request is taken care of (queued, or refused with EBUSY), false when the
 * worker must run it. Drops svc, and n unless it is queued. */
static bool hand_over(struct mfs *fs, struct mallafs_svc *svc, struct mnode *n, struct ditem *it)
{
	char why[160];
	int r = it ? enqueue(fs->defer, svc, it, why, sizeof(why)) : -EAGAIN;
	if (r == -EBUSY) {
		msvc_set_error(svc, why);
		fuse_reply_err(it->req, EBUSY);
	}
	if (r < 0 && it)
		item_free(fs, it);
	else if (!it)
		mfs_node_put(fs, n);
	msvc_unref(svc);
	return r != -EAGAIN;
}

/* ---- the wrappers ---- */

static void defer_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
	struct mfs *fs = fuse_req_userdata(req);
	struct mnode *n = NULL;
	struct mallafs_svc *svc = waits_for(fs, req, ino, NULL, D_WRITE, &n);
	if (!svc || !hand_over(fs, svc, n, item_new(D_WRITE, req, ino, n, buf, size, off, fi, 0)))
		next->write(req, ino, buf, size, off, fi);
}

static void defer_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs *fs = fuse_req_userdata(req);
	struct mnode *n = NULL;
	/* Only an open file with a handle may have something left to apply. */
	struct mallafs_svc *svc = fi->fh ? waits_for(fs, req, ino, NULL, D_RELEASE, &n) : NULL;
	if (!svc || !hand_over(fs, svc, n, item_new(D_RELEASE, req, ino, n, NULL, 0, 0, fi, 0)))
		next->release(req, ino, fi);
}

/* close(): a document's last line, without a newline, is applied now.
 * Only such a close waits: shells close a file once right after opening
 * it (dup2 to stdout, then close), and that one must not queue behind the
 * service's waiting requests, ahead of its own write. */
static void defer_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs *fs = fuse_req_userdata(req);
	struct mnode *n = NULL;
	struct mallafs_svc *svc = fi->fh ? waits_for(fs, req, ino, NULL, D_FLUSH, &n) : NULL;
	/* Asked only of config.ini and config keys: a value's close (every
	 * `echo >`) looks up no document. */
	if (svc && !mfs_doc_waiting(fs, fi)) {
		msvc_unref(svc);
		mfs_node_put(fs, n);
		svc = NULL;
	}
	if (!svc || !hand_over(fs, svc, n, item_new(D_FLUSH, req, ino, n, NULL, 0, 0, fi, 0)))
		next->flush(req, ino, fi);
}

/* mkdir, rmdir and unlink: an entry of a folder. */
static bool defer_entry(enum dop op, fuse_req_t req, fuse_ino_t parent, const char *name,
                        mode_t mode)
{
	struct mfs *fs = fuse_req_userdata(req);
	struct mnode *n = NULL;
	struct mallafs_svc *svc = waits_for(fs, req, parent, name, op, &n);
	return svc && hand_over(fs, svc, n,
	                        item_new(op, req, parent, n, name, strlen(name), 0, NULL, mode));
}

static void defer_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (!defer_entry(D_MKDIR, req, parent, name, mode))
		next->mkdir(req, parent, name, mode);
}

static void defer_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!defer_entry(D_RMDIR, req, parent, name, 0))
		next->rmdir(req, parent, name);
}

static void defer_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!defer_entry(D_UNLINK, req, parent, name, 0))
		next->unlink(req, parent, name);
}

static struct fuse_lowlevel_ops wrapped;

const struct fuse_lowlevel_ops *mfs_defer_wrap(const struct fuse_lowlevel_ops *real)
{
	next = real;
	wrapped = *real;
	wrapped.write = defer_write;
	wrapped.flush = defer_flush;
	wrapped.release = defer_release;
	wrapped.mkdir = defer_mkdir;
	wrapped.rmdir = defer_rmdir;
	wrapped.unlink = defer_unlink;
	return &wrapped;
}

/* ---- life ---- */

int mfs_defer_init(struct mfs *fs)
{
	struct mfs_defer *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fs = fs;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&d->gone, NULL);
	fs->defer = d;
	return 0;
}

void mfs_defer_stop(struct mfs *fs)
{
	struct mfs_defer *d = fs->defer;
	if (!d)
		return;
	struct ditem *left = NULL, **tail = &left;
	size_t count = 0;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	for (size_t i = 0; i < DEFER_BUCKETS; i++) {
		for (struct dq *q = d->table[i]; q; q = q->hnext) {
			struct ditem *it;
			while ((it = take(d, q))) {
				it->next = NULL;
				*tail = it;
				tail = &it->next;
				count++;
			}
		}
	}
	/* The threads take the emptied queues off the ready list, finish
	 * what they run, and end. */
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->lock);

	if (count)
		mu_log(MU_LOG_WARNING,
		       "unmounting: %zu requests waiting for services' plugins "
		       "are refused",
		       count);
	while (left) {
		struct ditem *it = left;
		left = it->next;
		refuse(fs, it);
		item_free(fs, it);
	}

	pthread_mutex_lock(&d->lock);
	while (d->nthreads > 0)
		pthread_cond_wait(&d->gone, &d->lock);
	reap(d);
	pthread_mutex_unlock(&d->lock);
}

void mfs_defer_free(struct mfs *fs)
{
	struct mfs_defer *d = fs->defer;
	if (!d)
		return;
	mfs_defer_stop(fs);
	fs->defer = NULL;
	for (size_t i = 0; i < DEFER_BUCKETS; i++) {
		while (d->table[i]) {
			struct dq *q = d->table[i];
			d->table[i] = q->hnext;
			queue_free(q);
		}
	}
	pthread_cond_destroy(&d->gone);
	pthread_cond_destroy(&d->work);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

bool mfs_defer_busy(struct mfs *fs, const char *svc)
{
	struct mfs_defer *d = fs->defer;
	bool busy = false;
	if (!d)
		return false;
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < DEFER_BUCKETS && !busy; i++)
		for (struct dq *q = d->table[i]; q && !busy; q = q->hnext)
			busy = strcmp(msvc_name(q->svc), svc) == 0;
	pthread_mutex_unlock(&d->lock);
	return busy;
}
