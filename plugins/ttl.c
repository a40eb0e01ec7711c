/* SPDX-License-Identifier: MIT */
/* ttl: deletes every key that was not written for `seconds` seconds, as a
 * delete would remove it: the deletion runs through the whole chain
 * (mallafs_svc_store_op), so trace and metrics count it, persist saves it
 * and watchers see a delete event. 0 (the default) means keys never expire.
 * The setting applies live.
 *
 * What counts as a write: a successful WRITE, CREATE or TRUNCATE of a key.
 * A RENAME keeps the age of the key it moves (mv does not change a file's
 * mtime either); the name it replaces is forgotten. A DELETE forgets the key.
 *
 * The plugin keeps, per key, the CLOCK_MONOTONIC time of its last write in
 * its own hash table, which is also a list in write order (oldest first):
 * writes happen one at a time under the store lock and the clock is read
 * under the plugin's lock, so appending a rewritten key at the end keeps the
 * list sorted, every update is O(1), and the next key to expire is always the
 * head whatever `seconds` is. A timer on the daemon's shared timer loop
 * (mallafs_timer_*: no thread of the plugin's own) is armed for the head's
 * deadline (no polling); its callback deletes what is due, at most
 * TTL_BATCH keys before it lets the owner's other timers run, and arms the
 * timer again. It is brought forward when a key arrives in an empty table
 * and when `seconds` changes, and cancelled on stop.
 *
 * Keys the plugin did not see written get "written now" when it first sees
 * them: the keys already in the store at start (their age is unknown; their
 * mtime is wall-clock time, which `touch` can set to anything and which
 * jumps with the clock, so trusting it could wipe a store the moment ttl is
 * added), and keys that reached the table past the chain (mallafs_store_load,
 * e.g. persist loading a file from above ttl in the chain). So ttl never
 * deletes a key less than `seconds` after it first knew of it. A restart or
 * reactivation therefore restarts every key's clock, and nothing expires
 * while the plugin is stopped (service inactive); it keeps expiring while the
 * service is paused, since pause leaves the plugins running.
 *
 * Keys added past the chain are found in three ways: at start (a scan of the
 * store); in store_after, which compares the table's size with the store's
 * (op->nkeys) in O(1) and asks the callback for a rescan when they differ; and
 * by a background rescan one second after start (persist above ttl loads its
 * file right after ttl started) and then every minute while seconds > 0.
 *
 * The callback checks a key's deadline under its own lock, then deletes it
 * through the chain. A write landing in between must win: ttl's own
 * store_before recognises its delete (a quiet one, whose refusal stays out
 * of last_error), looks again under the store lock, and refuses it with
 * -EAGAIN when the key was written since. */
#include "builtin.h"
#include "plugin_util.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define NSEC_PER_SEC 1000000000LL
/* 100 years: far more than anyone needs, small enough that deadlines in
 * nanoseconds never overflow. */
#define TTL_SECONDS_MAX 3153600000ULL
/* Rescans asked for by store_after run at most this often... */
#define TTL_RESCAN_GAP_NS (1 * NSEC_PER_SEC)
/* ...the first background one this long after start... */
#define TTL_FIRST_SCAN_NS (1 * NSEC_PER_SEC)
/* ...and then one this often while keys can expire. */
#define TTL_SCAN_PERIOD_NS (60 * NSEC_PER_SEC)
/* Keys one callback expires before it arms the timer again for now, so
 * that a store where many keys expire at once holds a worker of the loop
 * for a while, not for the whole sweep. */
#define TTL_BATCH 256

struct ttl_entry {
	struct ttl_entry *hnext;       /* hash chain */
	struct ttl_entry *prev, *next; /* write order, oldest first */
	uint64_t hash;
	int64_t written; /* CLOCK_MONOTONIC ns of the last write */
	uint64_t gen;    /* the last scan (or write) that saw the key */
	char key[];
};

struct ttl {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;

	struct mallafs_timer *timer; /* armed with lock held: the loop's lock comes after */

	pthread_mutex_t lock;
	/* lock: */
	struct ttl_entry **buckets;
	size_t nbuckets; /* a power of two, or 0 */
	size_t count;
	struct ttl_entry *oldest, *newest;
	uint64_t seconds;
	uint64_t gen;
	bool rescan; /* the table may miss keys: scan the store */
	bool stopping;
	/* When the timer is armed for (INT64_MAX: not armed, it waits to be
	 * brought forward); 0 while the callback runs or is due now, since it
	 * looks at everything before it arms the timer again. */
	int64_t sleep_until;
	int64_t next_scan; /* background rescan due */
	int64_t last_scan;

	/* lock: the delete the callback has under way, and the write time it
	 * expires. */
	const struct mallafs_store_op *expiring;
	int64_t expiring_written;

	bool started; /* start and stop only */
};

static const struct mallafs_setting ttl_settings[] = {
        {.key = "seconds", .def = "0"},
        {.key = NULL},
};

static int64_t now_ns(void)
{
	return mallafs_timer_now();
}

/* ---- the table: a hash of keys threaded on a list in write order ---- */

static uint64_t hash_key(const char *key)
{
	/* Keys are the users' choice: the daemon's keyed hash, so that no
	 * choice of names crowds one bucket. */
	return mu_hash(key, strlen(key));
}

static struct ttl_entry *table_find(struct ttl *t, const char *key, uint64_t h)
{
	if (!t->nbuckets)
		return NULL;
	for (struct ttl_entry *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void list_unlink(struct ttl *t, struct ttl_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->newest = e->prev;
	e->prev = e->next = NULL;
}

static void list_append(struct ttl *t, struct ttl_entry *e)
{
	e->prev = t->newest;
	e->next = NULL;
	if (t->newest)
		t->newest->next = e;
	else
		t->oldest = e;
	t->newest = e;
}

static void hash_unlink(struct ttl *t, struct ttl_entry *e)
{
	struct ttl_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
}

static void hash_link(struct ttl *t, struct ttl_entry *e)
{
	struct ttl_entry **b = &t->buckets[e->hash & (t->nbuckets - 1)];
	e->hnext = *b;
	*b = e;
}

/* Keeps the load factor at most 1. A failed growth only makes chains longer. */
static void table_grow(struct ttl *t)
{
	if (t->count < t->nbuckets)
		return;
	size_t n = t->nbuckets ? 2 * t->nbuckets : 64;
	struct ttl_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	struct ttl_entry **old = t->buckets;
	size_t oldn = t->nbuckets;
	t->buckets = b;
	t->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		struct ttl_entry *e = old[i];
		while (e) {
			struct ttl_entry *next = e->hnext;
			hash_link(t, e);
			e = next;
		}
	}
	free(old);
}

static struct ttl_entry *entry_new(const char *key, uint64_t h)
{
	size_t len = strlen(key);
	struct ttl_entry *e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	memcpy(e->key, key, len + 1);
	e->hash = h;
	return e;
}

static void entry_remove(struct ttl *t, struct ttl_entry *e)
{
	hash_unlink(t, e);
	list_unlink(t, e);
	t->count--;
	free(e);
}

/* Brings the timer forward to when if it is armed for later (lock held).
 * Hooks call it only on the rare changes that can bring its next run
 * forward (a key in an empty table, a rescan request), so a busy store costs
 * no timer calls. The callback looks at everything when it runs. */
static void wake_before(struct ttl *t, int64_t when)
{
	if (t->sleep_until && when < t->sleep_until) {
		t->sleep_until = when;
		mallafs_timer_arm(t->timer, when);
	}
}

static void request_rescan(struct ttl *t)
{
	if (!t->rescan) {
		t->rescan = true;
		wake_before(t, t->last_scan + TTL_RESCAN_GAP_NS);
	}
}

/* Marks key written now (lock held). A key the table cannot hold for lack of
 * memory is left to a later rescan. */
static void table_touch(struct ttl *t, const char *key)
{
	uint64_t h = hash_key(key);
	struct ttl_entry *e = table_find(t, key, h);
	if (e) {
		list_unlink(t, e);
	} else {
		if (t->nbuckets == 0 || t->count >= t->nbuckets)
			table_grow(t);
		if (t->nbuckets == 0 || !(e = entry_new(key, h))) {
			request_rescan(t);
			return;
		}
		hash_link(t, e);
		t->count++;
	}
	e->written = now_ns();
	e->gen = t->gen;
	list_append(t, e);
	/* Any other key's deadline comes after the head's, which the timer
	 * already waits for. */
	if (t->count == 1 && t->seconds)
		wake_before(t, e->written + (int64_t)t->seconds * NSEC_PER_SEC);
}

static void table_forget(struct ttl *t, const char *key)
{
	struct ttl_entry *e = table_find(t, key, hash_key(key));
	if (e)
		entry_remove(t, e);
}

/* The renamed key keeps its age and its place in the write order. */
static void table_rename(struct ttl *t, const char *from, const char *to)
{
	table_forget(t, to);
	struct ttl_entry *e = table_find(t, from, hash_key(from));
	if (!e) {
		table_touch(t, to);
		return;
	}
	uint64_t h = hash_key(to);
	struct ttl_entry *n = entry_new(to, h);
	if (!n) {
		entry_remove(t, e);
		request_rescan(t);
		return;
	}
	n->written = e->written;
	n->gen = t->gen;
	n->prev = e->prev;
	n->next = e->next;
	if (n->prev)
		n->prev->next = n;
	else
		t->oldest = n;
	if (n->next)
		n->next->prev = n;
	else
		t->newest = n;
	hash_unlink(t, e);
	free(e);
	hash_link(t, n);
}

static void table_clear(struct ttl *t)
{
	struct ttl_entry *e = t->oldest;
	while (e) {
		struct ttl_entry *next = e->next;
		free(e);
		e = next;
	}
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = 0;
	t->count = 0;
	t->oldest = t->newest = NULL;
}

/* ---- scans: find the keys that reached the store past the chain ---- */

struct scan_ctx {
	struct ttl *t;
	uint64_t gen;
};

static int scan_one(const char *key, const void *value, size_t len, const struct timespec *mtime,
                    void *arg)
{
	struct scan_ctx *c = arg;
	struct ttl *t = c->t;
	pthread_mutex_lock(&t->lock);
	struct ttl_entry *e = table_find(t, key, hash_key(key));
	if (e)
		e->gen = c->gen;
	else
		table_touch(t, key); /* marks it with t->gen == c->gen */
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* Adds the store's keys the table misses (written now) and drops entries
 * whose keys the store no longer holds. Never called with t->lock held (the
 * store lock comes first). Hooks that run between the walk and the sweep mark
 * what they touch with the same generation, so the sweep only drops entries
 * nothing has seen since the scan began. */
static void rescan(struct ttl *t)
{
	struct scan_ctx c = {.t = t};
	pthread_mutex_lock(&t->lock);
	c.gen = ++t->gen;
	t->rescan = false;
	pthread_mutex_unlock(&t->lock);

	int r = mallafs_store_foreach(t->svc, scan_one, &c);

	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		struct ttl_entry *e = t->oldest;
		while (e) {
			struct ttl_entry *next = e->next;
			if (e->gen != c.gen)
				entry_remove(t, e);
			e = next;
		}
	}
	t->last_scan = now_ns();
	pthread_mutex_unlock(&t->lock);
}

/* ---- the timer's callback ---- */

/* Deletes key through the chain, then settles its entry: gone, or (a plugin
 * refused the delete) postponed by a full period so that a refusing plugin
 * does not make the callback spin. Called and returns with t->lock held. */
static void expire(struct ttl *t, struct ttl_entry *e)
{
	int64_t written = e->written;
	uint64_t seconds = t->seconds;
	char *key = strdup(e->key);
	if (!key) {
		/* Try again a period later rather than spin on the same head. */
		list_unlink(t, e);
		e->written = now_ns();
		list_append(t, e);
		return;
	}
	pthread_mutex_unlock(&t->lock);

	struct mallafs_reason why = {{0}};
	struct mallafs_store_op op = {
	        .code = MALLAFS_OP_DELETE, .key = key, .why = &why, .flags = MALLAFS_OPF_QUIET};
	pthread_mutex_lock(&t->lock);
	t->expiring = &op;
	t->expiring_written = written;
	pthread_mutex_unlock(&t->lock);
	int64_t r = mallafs_svc_store_op(t->svc, &op);

	pthread_mutex_lock(&t->lock);
	t->expiring = NULL;
	if (r == -EAGAIN)
		r = 0; /* written again just in time: it lives on */
	/* Our own store_after forgot the key when the delete succeeded; it is
	 * still here when ttl's hooks were off (stopping) or the delete failed.
	 * A key written again meanwhile has a newer time: leave it be. */
	struct ttl_entry *cur = table_find(t, key, hash_key(key));
	bool postponed = false;
	if (cur && cur->written == written) {
		if (r == 0 || r == -ENOENT) {
			entry_remove(t, cur);
		} else {
			list_unlink(t, cur);
			cur->written = now_ns();
			list_append(t, cur);
			postponed = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (postponed)
		mallafs_svc_log(t->svc, LOG_WARNING,
		                "ttl: cannot expire %s: %s; trying again in %llu s", key,
		                why.text[0] ? why.text : strerror((int)-r),
		                (unsigned long long)seconds);
	free(key);
	pthread_mutex_lock(&t->lock);
}

/* The timer's callback: rescans and expires what is due, then arms the
 * timer for the next thing due. */
static void ttl_fire(void *arg)
{
	struct ttl *t = arg;
	unsigned expired = 0;
	pthread_mutex_lock(&t->lock);
	t->sleep_until = 0;
	while (!t->stopping) {
		int64_t now = now_ns();
		bool scan_due = (t->rescan && now >= t->last_scan + TTL_RESCAN_GAP_NS) ||
		                (t->seconds && now >= t->next_scan);
		if (scan_due) {
			t->next_scan = now + TTL_SCAN_PERIOD_NS;
			pthread_mutex_unlock(&t->lock);
			rescan(t);
			pthread_mutex_lock(&t->lock);
			continue;
		}

		int64_t wake = INT64_MAX;
		if (t->seconds && t->oldest) {
			int64_t deadline = t->oldest->written + (int64_t)t->seconds * NSEC_PER_SEC;
			if (now >= deadline && expired == TTL_BATCH) {
				wake = now; /* the rest on the next run */
			} else if (now >= deadline) {
				expire(t, t->oldest);
				expired++;
				continue;
			} else {
				wake = deadline;
			}
		}
		if (t->seconds && t->next_scan < wake)
			wake = t->next_scan;
		if (t->rescan && t->last_scan + TTL_RESCAN_GAP_NS < wake)
			wake = t->last_scan + TTL_RESCAN_GAP_NS;

		t->sleep_until = wake;
		if (wake != INT64_MAX)
			mallafs_timer_arm(t->timer, wake);
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- callbacks ---- */

static void ttl_fini(void *state)
{
	struct ttl *t = state;
	if (!t)
		return;
	mallafs_timer_free(t->timer);
	table_clear(t);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static int ttl_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret_state)
{
	struct ttl *t = calloc(1, sizeof(*t));
	int r;
	if (!t)
		return -ENOMEM;
	t->svc = svc;
	t->self = self;
	r = -pthread_mutex_init(&t->lock, NULL);
	if (r < 0)
		goto fail_mutex;
	r = mallafs_timer_new(svc, ttl_fire, t, &t->timer);
	if (r < 0)
		goto fail_timer;
	*ret_state = t;
	return 0;
fail_timer:
	pthread_mutex_destroy(&t->lock);
fail_mutex:
	free(t);
	return r;
}

static int check_seconds(const char *v, uint64_t *ret, struct mallafs_reason *why)
{
	char buf[64];
	int r = pu_parse_uint(v, TTL_SECONDS_MAX, ret);
	if (r == -ERANGE) {
		mallafs_reason_set(why, "seconds must be at most %llu (100 years), not '%s'",
		                   (unsigned long long)TTL_SECONDS_MAX,
		                   pu_excerpt(v, buf, sizeof(buf)));
		return -EINVAL;
	}
	if (r < 0) {
		mallafs_reason_set(why, "seconds must be a non-negative integer, not '%s'",
		                   pu_excerpt(v ? v : "", buf, sizeof(buf)));
		return -EINVAL;
	}
	return 0;
}

static int ttl_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                     struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	struct ttl *t = state;
	uint64_t s;
	int r = check_seconds(mallafs_setting(merged, t->self, "seconds"), &s, why);
	if (r < 0)
		mallafs_reason_key(why, NULL, "seconds");
	return r;
}

static int ttl_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct ttl *t = state;
	uint64_t seconds;
	int r = check_seconds(mallafs_setting(cfg, t->self, "seconds"), &seconds, why);
	if (r < 0)
		return r;

	pthread_mutex_lock(&t->lock);
	table_clear(t);
	t->seconds = seconds;
	t->stopping = false;
	t->rescan = false;
	t->sleep_until = 0;
	t->last_scan = 0;
	pthread_mutex_unlock(&t->lock);

	/* Every key already there is "written now": see the top of the file. */
	rescan(t);

	/* The callback runs now, as the thread did when it started. */
	pthread_mutex_lock(&t->lock);
	t->next_scan = now_ns() + TTL_FIRST_SCAN_NS;
	r = mallafs_timer_arm(t->timer, now_ns());
	if (r < 0) {
		t->stopping = true;
		table_clear(t);
	}
	pthread_mutex_unlock(&t->lock);
	if (r < 0) {
		mallafs_reason_set(why, "cannot arm the expiry timer: %s", strerror(-r));
		return r;
	}
	t->started = true;
	return 0;
}

static void ttl_stop(void *state)
{
	struct ttl *t = state;
	if (!t->started)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	t->sleep_until = 0; /* nothing brings the timer forward */
	pthread_mutex_unlock(&t->lock);
	/* Waits for a callback under way: none runs after this. */
	mallafs_timer_cancel(t->timer);
	t->started = false;
	/* What the store holds at the next start is all "written" then. */
	pthread_mutex_lock(&t->lock);
	table_clear(t);
	pthread_mutex_unlock(&t->lock);
}

static enum mallafs_update ttl_updated(void *state, const struct mallafs_cfg *old,
                                       const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct ttl *t = state;
	uint64_t seconds;
	if (check_seconds(mallafs_setting(cfg, t->self, "seconds"), &seconds, why) < 0)
		return MALLAFS_UPDATE_ERROR;
	pthread_mutex_lock(&t->lock);
	if (t->seconds != seconds) {
		/* Deadlines are last write + seconds: the callback recomputes
		 * them from the table as it runs (a running one, sleep_until 0,
		 * reads seconds before it arms the timer again). */
		t->seconds = seconds;
		if (t->sleep_until && !t->stopping) {
			t->sleep_until = 0;
			mallafs_timer_arm(t->timer, now_ns());
		}
	}
	pthread_mutex_unlock(&t->lock);
	return MALLAFS_UPDATE_OK;
}

/* The callback's own delete, checked again now that the store is locked. */
static int ttl_store_before(void *state, struct mallafs_store_op *op)
{
	struct ttl *t = state;
	if (op->code != MALLAFS_OP_DELETE || !(op->flags & MALLAFS_OPF_QUIET))
		return 0;
	int r = 0;
	pthread_mutex_lock(&t->lock);
	if (op == t->expiring) {
		struct ttl_entry *e = table_find(t, op->key, hash_key(op->key));
		if (e && e->written != t->expiring_written)
			r = -EAGAIN;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static void ttl_store_after(void *state, const struct mallafs_store_op *op)
{
	struct ttl *t = state;
	if (op->code == MALLAFS_OP_GET || op->code == MALLAFS_OP_LIST || op->result < 0 ||
	    (op->flags & MALLAFS_OPF_PROBE))
		return;
	pthread_mutex_lock(&t->lock);
	/* Mutating operations run one at a time under the store lock, each
	 * passing here, so the table holds exactly the store's keys unless
	 * some arrived past the chain. */
	if (t->count != op->nkeys)
		request_rescan(t);
	switch (op->code) {
	case MALLAFS_OP_CREATE:
	case MALLAFS_OP_WRITE:
	case MALLAFS_OP_TRUNCATE:
		table_touch(t, op->key);
		break;
	case MALLAFS_OP_DELETE:
		table_forget(t, op->key);
		break;
	case MALLAFS_OP_RENAME:
		if (strcmp(op->key, op->new_key) != 0)
			table_rename(t, op->key, op->new_key);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

const struct mallafs_plugin mallafs_plugin_ttl = {
        MALLAFS_PLUGIN_INIT,
        .name = "ttl",
        .settings = ttl_settings,
        /* lifecycle and configuration */
        .init = ttl_init,
        .fini = ttl_fini,
        .start = ttl_start,
        .stop = ttl_stop,
        .config_merge = ttl_merge,
        .updated = ttl_updated,
        /* store hooks */
        .store_before = ttl_store_before,
        .store_after = ttl_store_after,
};
