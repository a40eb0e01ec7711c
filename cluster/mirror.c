/* SPDX-License-Identifier: MIT */
/* The mirror: what this node shows of PREFIX, kept by one thread, the
 * watcher. It lists the whole prefix at one revision, applies the
 * difference with what the mirror holds (the first time: everything), then
 * watches from the next revision and applies each event in revision
 * order; when the watch breaks (etcd gone, a compaction, the keeper's
 * stop after a failed keepalive) it lists again, and tells the feed with
 * one "resync" line once the difference is applied.
 *
 * The watcher applies what etcd says, but for this node's own changes of
 * config/, which their writers apply as soon as etcd took them (ccfg.c:
 * the writer reads its own write, and its watchers' events are the
 * request's); the registry's own entries are the registry's (creg.c).
 * cl->revs holds, per key, the mod revision of what the mirror applied; a
 * change at a revision not newer is skipped; a deletion applied ahead of
 * the watch leaves a tombstone, dropped when the watch brings that
 * deletion, or by the next listing.
 *
 * A writer whose transaction lost a race waits on cl->wake for the mirror
 * to reach the revision etcd answered (mcl_mirror_wait) and computes again. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_i.h"
#include "events.h"
#include "kv.h"
#include "util.h"

#define LIST_PAGE 2000

bool mcl_rev_take(struct mcl *cl, const char *key, size_t key_len, int64_t rev, bool gone,
                  bool ahead)
{
	struct mcl_rev cur;
	if (key_len != strlen(key))
		return false; /* a NUL inside: not one of ours */
	if (mkv_read(cl->revs, key, 0, &cur, sizeof(cur)) == (ssize_t)sizeof(cur) &&
	    cur.rev >= rev) {
		/* The watcher reaching a deletion applied ahead of it. */
		if (!ahead && cur.gone && cur.rev == rev)
			mkv_delete(cl->revs, key);
		return false;
	}
	if (gone && !ahead && !cl->listing) {
		mkv_delete(cl->revs, key);
	} else {
		cur.rev = rev;
		cur.gone = gone;
		mkv_write(cl->revs, key, 0, &cur, sizeof(cur), MKV_REPLACE);
	}
	return true;
}

int64_t mcl_rev_get(struct mcl *cl, const char *key, size_t key_len)
{
	struct mcl_rev cur;
	if (key_len == strlen(key) &&
	    mkv_read(cl->revs, key, 0, &cur, sizeof(cur)) == (ssize_t)sizeof(cur) && !cur.gone)
		return cur.rev;
	return 0;
}

/* Which part of the tree a key is: 'n' nodes, 's' services, 'r' registry,
 * 'c' config, 'p' owners and modes; *sub is what follows "PREFIX/PART/". 0: none of ours. */
static char part_of(struct mcl *cl, const char *key, size_t len, const char **sub, size_t *sub_len)
{
	static const struct {
		const char *name;
		char part;
	} parts[] = {{"nodes/", 'n'},
	             {"services/", 's'},
	             {"registry/", 'r'},
	             {"config/", 'c'},
	             {"perm/", 'p'}};
	if (len <= cl->prefix_len + 1 || memcmp(key, cl->prefix, cl->prefix_len) != 0 ||
	    key[cl->prefix_len] != '/')
		return 0;
	const char *p = key + cl->prefix_len + 1;
	size_t left = len - cl->prefix_len - 1;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		size_t n = strlen(parts[i].name);
		if (left > n && memcmp(p, parts[i].name, n) == 0) {
			*sub = p + n;
			*sub_len = left - n;
			return parts[i].part;
		}
	}
	return 0;
}

/* Containers first when they come, last when they go: nodes before their
 * services, pools before their members, apps before their keys. */
static int order_of(char part, const char *sub, bool gone)
{
	bool container =
	        part == 'n' || (part == 'r' && sub[0] == 'p') || (part == 'c' && sub[0] == 'a');
	return container != gone ? 0 : 1;
}

/* Applies one change (cl->lock held); origin: the node that made it, when
 * known (NULL: the appliers find it in what they apply). */
static void apply(struct mcl *cl, const struct metcd_kv *kv, const struct metcd_kv *prev, bool gone,
                  const char *origin)
{
	const char *sub;
	size_t sub_len;
	char part = part_of(cl, kv->key, kv->key_len, &sub, &sub_len);
	/* This node's own change of config/, its writer still at work: the
	 * writer makes it here (so its watchers hear of it once). */
	if (part == 'c' && origin && strcmp(origin, cl->node) == 0 &&
	    kv->key_len == strlen(kv->key) && mcl_cfg_pending(cl, kv->key))
		return;
	if (!part || !mcl_rev_take(cl, kv->key, kv->key_len, kv->mod_revision, gone, false))
		return;
	switch (part) {
	case 'n':
		mcl_node_apply(cl, sub, sub_len, gone, origin);
		break;
	case 's':
		mcl_svc_apply(cl, sub, sub_len, kv, gone, origin);
		break;
	case 'r':
		mcl_reg_apply(cl, sub, sub_len, kv, prev, gone, origin);
		break;
	case 'c':
		mcl_cfg_apply(cl, sub, sub_len, kv, gone, origin);
		break;
	case 'p':
		mcl_perm_apply(cl, sub, sub_len, kv, gone, origin);
		break;
	}
}

struct listing {
	struct metcd_kv *kvs;
	size_t n, cap;
	int64_t revision;
};

static void listing_free(struct listing *l)
{
	struct metcd_range r = {.kvs = l->kvs, .n = l->n};
	metcd_range_free(&r);
	memset(l, 0, sizeof(*l));
}

/* Every key under PREFIX/ at one revision, page by page. */
static int list_all(struct mcl *cl, struct listing *l)
{
	char start[MCL_KEY_MAX], end[MCL_KEY_MAX];
	size_t start_len = mcl_key(cl, start, sizeof(start), "", NULL, NULL);
	size_t end_len = metcd_prefix_end(start, start_len, end);
	int64_t rev = 0;
	memset(l, 0, sizeof(*l));
	for (;;) {
		struct metcd_range rr;
		int r = metcd_range(cl->etcd, start, start_len, end, end_len, LIST_PAGE, rev, false,
		                    &rr);
		if (r < 0) {
			listing_free(l);
			return r;
		}
		if (!rev)
			rev = l->revision = rr.revision;
		if (l->n + rr.n > l->cap) {
			size_t cap = (l->n + rr.n) * 2;
			struct metcd_kv *kvs = realloc(l->kvs, cap * sizeof(*kvs));
			if (!kvs) {
				metcd_range_free(&rr);
				listing_free(l);
				return -ENOMEM;
			}
			l->kvs = kvs;
			l->cap = cap;
		}
		memcpy(l->kvs + l->n, rr.kvs, rr.n * sizeof(*rr.kvs));
		l->n += rr.n;
		bool more = rr.more && rr.n > 0;
		if (more) {
			/* The next page starts after the last key: the key and a NUL. */
			const struct metcd_kv *last = &rr.kvs[rr.n - 1];
			if (last->key_len + 1 >= sizeof(start)) {
				free(rr.kvs);
				listing_free(l);
				return -ENAMETOOLONG;
			}
			memcpy(start, last->key, last->key_len);
			start[last->key_len] = '\0';
			start_len = last->key_len + 1;
		}
		free(rr.kvs); /* the entries moved into l */
		if (!more)
			return 0;
	}
}

struct gone_ctx {
	struct mcl *cl;
	struct mkv *listed;
	int pass;
};

static int gone_cb(const char *key, const struct mkv_stat *st, void *arg)
{
	struct gone_ctx *g = arg;
	struct mcl_rev cur;
	const char *sub;
	size_t sub_len;
	if (mkv_stat(g->listed, key, NULL) == 0 ||
	    mkv_read(g->cl->revs, key, 0, &cur, sizeof(cur)) != (ssize_t)sizeof(cur))
		return 0;
	char part = part_of(g->cl, key, strlen(key), &sub, &sub_len);
	if (cur.gone || !part) {
		if (g->pass == 1)
			mkv_delete(g->cl->revs, key);
		return 0;
	}
	if (order_of(part, sub, true) != g->pass)
		return 0;
	struct metcd_kv kv = {
	        .key = (char *)key, .key_len = strlen(key), .mod_revision = INT64_MAX};
	apply(g->cl, &kv, NULL, true, NULL);
	mkv_delete(g->cl->revs, key);
	return 0;
}

int mcl_mirror_relist(struct mcl *cl, const struct metcd_kv *kvs, size_t n, int64_t revision)
{
	struct mkv *listed = mkv_new();
	if (!listed)
		return -ENOMEM;
	cl->listing = true;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			const char *sub;
			size_t sub_len;
			const struct metcd_kv *kv = &kvs[i];
			char part = part_of(cl, kv->key, kv->key_len, &sub, &sub_len);
			if (!part || kv->key_len != strlen(kv->key))
				continue;
			if (pass == 0)
				mkv_write(listed, kv->key, 0, "", 0, MKV_REPLACE);
			if (order_of(part, sub, false) == pass)
				apply(cl, kv, NULL, false, NULL);
		}
	/* What the mirror holds that etcd no longer has. */
	for (int pass = 0; pass < 2; pass++) {
		struct gone_ctx g = {cl, listed, pass};
		mkv_list(cl->revs, 0, gone_cb, &g);
	}
	cl->listing = false;
	mkv_free(listed);
	if (revision > cl->rev)
		cl->rev = revision;
	clock_gettime(CLOCK_MONOTONIC, &cl->last_event);
	return 0;
}

static int load(struct mcl *cl)
{
	struct listing l;
	int r = list_all(cl, &l);
	if (r < 0)
		return r;
	pthread_mutex_lock(&cl->lock);
	r = mcl_mirror_relist(cl, l.kvs, l.n, l.revision);
	pthread_mutex_unlock(&cl->lock);
	listing_free(&l);
	return r;
}

int mcl_mirror_load(struct mcl *cl, char *why, size_t whylen)
{
	int r = load(cl);
	if (r < 0)
		snprintf(why, whylen, "cluster: cannot list %s: %s: %s", cl->prefix, strerror(-r),
		         metcd_error());
	return r;
}

static void wake_all(struct mcl *cl)
{
	pthread_mutex_lock(&cl->wake_lock);
	pthread_cond_broadcast(&cl->wake);
	pthread_mutex_unlock(&cl->wake_lock);
}

int mcl_txn(struct mcl *cl, const struct metcd_cmp *cmp, size_t n_cmp,
            const struct metcd_op *success, size_t n_success, const struct metcd_op *failure,
            size_t n_failure, struct metcd_txn_result *ret)
{
	char key[MCL_KEY_MAX];
	struct metcd_op ops[130];
	if (n_success + 1 > sizeof(ops) / sizeof(ops[0]))
		return -EFBIG;
	memcpy(ops, success, n_success * sizeof(*ops));
	ops[n_success] =
	        (struct metcd_op){.kind = METCD_PUT,
	                          .key = key,
	                          .key_len = mcl_key(cl, key, sizeof(key), "writer", NULL, NULL),
	                          .value = cl->node,
	                          .value_len = strlen(cl->node)};
	return metcd_txn(cl->etcd, cmp, n_cmp, ops, n_success + 1, failure, n_failure, ret);
}

int mcl_mirror_wait(struct mcl *cl, int64_t rev, long ms)
{
	struct timespec until;
	mcl_deadline(&until, ms);
	int r = 0;
	pthread_mutex_lock(&cl->wake_lock);
	while (atomic_load(&cl->seen) < rev && r == 0 && !atomic_load(&cl->stopping))
		r = pthread_cond_timedwait(&cl->wake, &cl->wake_lock, &until);
	pthread_mutex_unlock(&cl->wake_lock);
	return atomic_load(&cl->seen) >= rev ? 0 : -ETIMEDOUT;
}

static void on_created(void *arg, int64_t revision)
{
	mcl_set_connected(arg, true, NULL);
}

/* The writer of revision rev, from the batch's puts of PREFIX/writer. */
static const char *writer_of(struct mcl *cl, const struct metcd_event *ev, size_t n, int64_t rev,
                             char *buf, size_t len)
{
	char key[MCL_KEY_MAX];
	size_t key_len = mcl_key(cl, key, sizeof(key), "writer", NULL, NULL);
	for (size_t i = 0; i < n; i++)
		if (ev[i].type == METCD_EV_PUT && ev[i].kv.mod_revision == rev &&
		    ev[i].kv.key_len == key_len && memcmp(ev[i].kv.key, key, key_len) == 0 &&
		    ev[i].kv.value_len < len) {
			memcpy(buf, ev[i].kv.value, ev[i].kv.value_len);
			buf[ev[i].kv.value_len] = '\0';
			return buf;
		}
	return NULL;
}

int mcl_mirror_apply(struct mcl *cl, const struct metcd_event *ev, size_t n, int64_t revision)
{
	char node[MCL_NODE_MAX + 1];
	const char *origin = NULL;
	int64_t origin_rev = 0;
	pthread_mutex_lock(&cl->lock);
	for (size_t i = 0; i < n; i++) {
		if (ev[i].kv.mod_revision != origin_rev) {
			origin_rev = ev[i].kv.mod_revision;
			origin = writer_of(cl, ev, n, origin_rev, node, sizeof(node));
		}
		apply(cl, &ev[i].kv, ev[i].prev_kv.key ? &ev[i].prev_kv : NULL,
		      ev[i].type == METCD_EV_DELETE, origin);
	}
	if (revision > cl->rev)
		cl->rev = revision;
	clock_gettime(CLOCK_MONOTONIC, &cl->last_event);
	pthread_mutex_unlock(&cl->lock);
	atomic_store(&cl->seen, revision);
	wake_all(cl);
	return 0;
}

static int on_events(void *arg, const struct metcd_event *ev, size_t n, int64_t revision)
{
	return mcl_mirror_apply(arg, ev, n, revision);
}

static void *watcher_main(void *arg)
{
	struct mcl *cl = arg;
	const struct metcd_watch_cb cb = {.created = on_created, .events = on_events};
	char key[MCL_KEY_MAX], end[MCL_KEY_MAX];
	size_t key_len = mcl_key(cl, key, sizeof(key), "", NULL, NULL);
	size_t end_len = metcd_prefix_end(key, key_len, end);
	bool relist = false;

	while (!atomic_load(&cl->stopping)) {
		if (relist) {
			int r = load(cl);
			if (r < 0) {
				char e[300];
				snprintf(e, sizeof(e), "listing: %s: %s", strerror(-r),
				         metcd_error());
				mcl_set_connected(cl, false, e);
				if (mcl_sleep(cl, 500))
					break;
				continue;
			}
			pthread_mutex_lock(&cl->lock);
			cl->resyncs++;
			int64_t rev = cl->rev;
			pthread_mutex_unlock(&cl->lock);
			atomic_store(&cl->seen, rev);
			wake_all(cl);
			mev_emitf(cl->ring, MEV_RESYNC, "cluster", "revision=%" PRId64, rev);
			mu_log(MU_LOG_INFO, "cluster: listed %s again at revision %" PRId64,
			       cl->prefix, rev);
			relist = false;
		}
		pthread_mutex_lock(&cl->lock);
		int64_t from = cl->rev + 1;
		pthread_mutex_unlock(&cl->lock);
		int64_t compact = 0;
		/* A stop ends one watch for good: each watch has its own. */
		struct metcd_watch *w = metcd_watch_new();
		if (!w) {
			if (mcl_sleep(cl, 500))
				break;
			continue;
		}
		pthread_mutex_lock(&cl->wake_lock);
		cl->watch = w;
		if (atomic_load(&cl->stopping))
			metcd_watch_stop(w);
		pthread_mutex_unlock(&cl->wake_lock);
		int r = metcd_watch(cl->etcd, w, key, key_len, end, end_len, from, 0, &cb, cl,
		                    &compact);
		pthread_mutex_lock(&cl->wake_lock);
		cl->watch = NULL;
		pthread_mutex_unlock(&cl->wake_lock);
		metcd_watch_free(w);
		if (atomic_load(&cl->stopping))
			break;
		relist = true;
		if (r == -ESTALE) {
			mu_log(MU_LOG_WARNING,
			       "cluster: revision %" PRId64
			       " was compacted (etcd keeps from %" PRId64 "): listing again",
			       from, compact);
			continue;
		}
		if (r != -ECANCELED) {
			char e[300];
			snprintf(e, sizeof(e), "watch: %s: %s", strerror(-r), metcd_error());
			mcl_set_connected(cl, false, e);
		}
		if (mcl_sleep(cl, 200))
			break;
	}
	return NULL;
}

void mcl_watch_restart(struct mcl *cl)
{
	pthread_mutex_lock(&cl->wake_lock);
	if (cl->watch)
		metcd_watch_stop(cl->watch);
	pthread_mutex_unlock(&cl->wake_lock);
}

int mcl_watcher_start(struct mcl *cl)
{
	atomic_store(&cl->seen, cl->rev);
	int r = mu_thread_start(&cl->watcher, "mallafs-clwatch", watcher_main, cl);
	if (r == 0)
		cl->watcher_started = true;
	return r;
}
