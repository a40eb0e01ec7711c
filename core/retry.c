/* SPDX-License-Identifier: MIT */
/* Retries of failed services (retry.h): one timer of the daemon's timer
 * loop (timer.h) that only keeps time, and workers that run the tries.
 *
 * A try takes the service's op_lock and runs its plugins' start callbacks,
 * which may wait as long as an exec hook runs (up to its timeout). So the
 * timer never runs one: it is armed for the earliest pending try, and its
 * callback hands what is due to a worker thread of this file, started for
 * it. The tries do not run on the loop's workers, which the plugins' timers
 * share: a try may hold its thread for an hour, and four of one owner would
 * hold that owner's whole share of the loop (its ttl expiries, its persist
 * saves) as long. A slow try holds
 * its worker, not the timer nor another service's try. Workers are bounded
 * (RETRY_THREADS), and so are those running the tries of one owner's
 * services (RETRY_PER_OWNER: hooks run as the owner, and may take up to an
 * hour), so that one user's slow hooks never hold every worker. A due try
 * past either bound waits in a ready list, in the order it came due; a
 * worker that finishes takes the first ready try it may run, or ends when
 * there is none, arming the timer so that its callback joins it. Each
 * service has at most one pending try, so pending tries are bounded by the
 * services.
 *
 * Stopping (unmount, mrt_free): the timer is cancelled (a callback under
 * way finishes), pending and ready tries are dropped, tries under way
 * finish, and every worker is joined.
 *
 * Lock: mretry.lock guards the pending and ready lists, the workers and
 * stop. After a service's op_lock, before the timer loop's (the timer is
 * armed with it held): never held across a try, a join or msvc_unref (a
 * service's last reference may go there). */
#include "retry.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service.h"
#include "timer.h"
#include "util.h"

#define RETRY_THREADS 16
#define RETRY_PER_OWNER 4
/* A worker that could not be started: the try is due again this much later. */
#define RETRY_SPAWN_AGAIN_MS 1000u
/* The retry timer's owner on the loop: no uid (uids are 32 bits). */
#define RETRY_TIMER_OWNER UINT64_MAX

struct rentry {
	struct rentry *next;
	struct mallafs_svc *svc; /* referenced */
	uint64_t due;            /* mu_now_ms() */
	uid_t owner;             /* the service's, when it came due */
};

struct rworker {
	struct rworker *next;
	struct mretry *q;
	struct rentry *first; /* its first try; then the ready list's */
	uid_t owner;          /* of the service whose try it runs */
	pthread_t thread;
	bool done; /* its function is returning: join it */
};

struct mretry {
	unsigned base_ms, max_ms;
	struct mtimer_loop *own_loop; /* made when none was given */
	struct mtimer *timer;
	pthread_mutex_t lock;
	pthread_cond_t wake;    /* a worker ended (stop waits for them) */
	struct rentry *pending; /* by due time */
	struct rentry *ready, *ready_tail;
	struct rworker *workers;
	unsigned nworkers; /* not done */
	bool stop;
};

static void timer_due(void *arg);

struct mretry *mretry_new(unsigned base_ms, unsigned max_ms, struct mtimer_loop *loop)
{
	struct mretry *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->base_ms = base_ms ? base_ms : MRETRY_BASE_MS;
	q->max_ms = max_ms ? max_ms : MRETRY_MAX_MS;
	if (q->max_ms < q->base_ms)
		q->max_ms = q->base_ms;
	if (!loop)
		loop = q->own_loop = mtimer_loop_new(0, 0);
	int r = loop ? mtimer_new(loop, timer_due, q, &q->timer) : -ENOMEM;
	if (r < 0) {
		mtimer_loop_free(q->own_loop);
		free(q);
		errno = -r;
		return NULL;
	}
	pthread_cond_init(&q->wake, NULL);
	pthread_mutex_init(&q->lock, NULL);
	return q;
}

unsigned mretry_delay_ms(const struct mretry *q, uint64_t n)
{
	uint64_t d = q->base_ms;
	while (n-- > 0 && d < q->max_ms)
		d *= 2;
	return d < q->max_ms ? (unsigned)d : q->max_ms;
}

/* Unlinks svc's entry from *list (tail kept when given); lock held. */
static struct rentry *unlink_svc(struct rentry **list, struct rentry **tail,
                                 struct mallafs_svc *svc)
{
	struct rentry *prev = NULL;
	for (struct rentry **p = list; *p; prev = *p, p = &(*p)->next) {
		struct rentry *e = *p;
		if (e->svc != svc)
			continue;
		*p = e->next;
		if (tail && *tail == e)
			*tail = prev;
		return e;
	}
	return NULL;
}

static void entries_free(struct rentry *e)
{
	while (e) {
		struct rentry *next = e->next;
		msvc_unref(e->svc);
		free(e);
		e = next;
	}
}

/* Workers running tries of owner's services, but for self; lock held. */
static unsigned owner_busy(const struct mretry *q, uid_t owner, const struct rworker *self)
{
	unsigned n = 0;
	for (const struct rworker *w = q->workers; w; w = w->next)
		if (w != self && !w->done && w->owner == owner)
			n++;
	return n;
}

/* The first ready try self may run (its owner under RETRY_PER_OWNER),
 * unlinked; lock held. */
static struct rentry *take_ready(struct mretry *q, const struct rworker *self)
{
	struct rentry *prev = NULL;
	for (struct rentry **p = &q->ready; *p; prev = *p, p = &(*p)->next) {
		struct rentry *e = *p;
		if (owner_busy(q, e->owner, self) >= RETRY_PER_OWNER)
			continue;
		*p = e->next;
		if (q->ready_tail == e)
			q->ready_tail = prev;
		e->next = NULL;
		return e;
	}
	return NULL;
}

/* Arms the timer for the first pending try; lock held. */
static void arm(struct mretry *q, uint64_t due_ms)
{
	int r = mtimer_arm(q->timer, (int64_t)due_ms * 1000000, RETRY_TIMER_OWNER);
	if (r < 0 && r != -ESHUTDOWN)
		mu_log(MU_LOG_WARNING, "retries: cannot arm the timer: %s", strerror(-r));
}

static void *worker_main(void *arg)
{
	struct rworker *w = arg;
	struct mretry *q = w->q;
	struct rentry *e = w->first;
	while (e) {
		msvc_retry(e->svc);
		entries_free(e);
		pthread_mutex_lock(&q->lock);
		e = take_ready(q, w);
		if (e) {
			w->owner = e->owner;
		} else {
			w->done = true;
			q->nworkers--;
			pthread_cond_broadcast(&q->wake);
			/* The timer's callback joins it. */
			if (!q->stop)
				arm(q, 0);
		}
		pthread_mutex_unlock(&q->lock);
	}
	return NULL;
}

/* Inserts e by due time; lock held. */
static void pending_insert(struct mretry *q, struct rentry *e)
{
	struct rentry **p = &q->pending;
	while (*p && (*p)->due <= e->due)
		p = &(*p)->next;
	e->next = *p;
	*p = e;
}

/* A due try: to a new worker, or to the ready list when there are enough;
 * lock held. */
static void dispatch(struct mretry *q, struct rentry *e)
{
	e->next = NULL;
	mallafs_svc_owner(e->svc, &e->owner, NULL);
	if (q->nworkers >= RETRY_THREADS || owner_busy(q, e->owner, NULL) >= RETRY_PER_OWNER) {
		if (q->ready_tail)
			q->ready_tail->next = e;
		else
			q->ready = e;
		q->ready_tail = e;
		return;
	}
	struct rworker *w = calloc(1, sizeof(*w));
	int r = w ? 0 : -ENOMEM;
	if (w) {
		w->q = q;
		w->first = e;
		w->owner = e->owner;
		r = mu_thread_start(&w->thread, "mallafs-retry", worker_main, w);
	}
	if (r < 0) {
		mu_log(MU_LOG_WARNING, "service %s: cannot start a retry thread: %s",
		       msvc_name(e->svc), strerror(-r));
		free(w);
		e->due = mu_now_ms() + RETRY_SPAWN_AGAIN_MS;
		pending_insert(q, e);
		return;
	}
	w->next = q->workers;
	q->workers = w;
	q->nworkers++;
}

/* Joins the workers that ended (all of them when all is set, waiting for
 * those under way); lock held, released around the joins. */
static void reap(struct mretry *q, bool all)
{
	while (all && q->nworkers > 0)
		pthread_cond_wait(&q->wake, &q->lock);
	struct rworker *done = NULL;
	for (struct rworker **p = &q->workers; *p;) {
		struct rworker *w = *p;
		if (!w->done) {
			p = &w->next;
			continue;
		}
		*p = w->next;
		w->next = done;
		done = w;
	}
	if (!done)
		return;
	pthread_mutex_unlock(&q->lock);
	while (done) {
		struct rworker *next = done->next;
		pthread_join(done->thread, NULL);
		free(done);
		done = next;
	}
	pthread_mutex_lock(&q->lock);
}

/* The timer's callback: joins the workers that ended, hands the due tries
 * to workers, and arms the timer for the next one. */
static void timer_due(void *arg)
{
	struct mretry *q = arg;
	pthread_mutex_lock(&q->lock);
	if (!q->stop) {
		reap(q, false);
		uint64_t now = mu_now_ms();
		while (!q->stop && q->pending && q->pending->due <= now) {
			struct rentry *e = q->pending;
			q->pending = e->next;
			dispatch(q, e);
		}
		if (!q->stop && q->pending)
			arm(q, q->pending->due);
	}
	pthread_mutex_unlock(&q->lock);
}

int mretry_schedule(struct mretry *q, struct mallafs_svc *svc, unsigned delay_ms)
{
	struct rentry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&q->lock);
	if (q->stop) {
		pthread_mutex_unlock(&q->lock);
		free(e);
		return -ESHUTDOWN;
	}
	e->due = mu_now_ms() + delay_ms;
	if (!q->pending || e->due < q->pending->due) {
		int r = mtimer_arm(q->timer, (int64_t)e->due * 1000000, RETRY_TIMER_OWNER);
		if (r < 0) {
			pthread_mutex_unlock(&q->lock);
			free(e);
			return r;
		}
	}
	struct rentry *old = unlink_svc(&q->pending, NULL, svc);
	if (!old)
		old = unlink_svc(&q->ready, &q->ready_tail, svc);
	e->svc = msvc_ref(svc);
	pending_insert(q, e);
	pthread_mutex_unlock(&q->lock);
	if (old) {
		old->next = NULL;
		entries_free(old);
	}
	return 0;
}

void mretry_cancel(struct mretry *q, struct mallafs_svc *svc)
{
	pthread_mutex_lock(&q->lock);
	struct rentry *e = unlink_svc(&q->pending, NULL, svc);
	if (!e)
		e = unlink_svc(&q->ready, &q->ready_tail, svc);
	pthread_mutex_unlock(&q->lock);
	if (e) {
		e->next = NULL;
		entries_free(e);
	}
}

void mretry_stop(struct mretry *q)
{
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_mutex_unlock(&q->lock);
	/* Nothing arms it once stop is set; a callback under way ends. */
	mtimer_cancel(q->timer);
	pthread_mutex_lock(&q->lock);
	struct rentry *drop = q->pending, *ready = q->ready;
	q->pending = q->ready = q->ready_tail = NULL;
	pthread_mutex_unlock(&q->lock);
	entries_free(drop);
	entries_free(ready);
	pthread_mutex_lock(&q->lock);
	reap(q, true);
	pthread_mutex_unlock(&q->lock);
}

void mretry_free(struct mretry *q)
{
	if (!q)
		return;
	mretry_stop(q);
	mtimer_free(q->timer);
	mtimer_loop_free(q->own_loop);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
