/* SPDX-License-Identifier: MIT */
/* The timer loop (timer.h): a min-heap of deadlines kept by one thread, and
 * a bounded pool of workers that run the callbacks.
 *
 * A timer is in at most one of: the heap (armed, not due yet), the ready
 * list (due, waiting for a worker; a doubly linked FIFO), neither (idle).
 * Independently, a worker may be running its callback (runner). A worker
 * takes the first ready timer that is not running and whose owner runs
 * fewer than per_owner callbacks; a timer skipped for either reason stays
 * where it is, and the worker that ends the blocking callback looks at the
 * ready list again before it sleeps, so nothing is left waiting while a
 * worker could run it.
 *
 * The timer thread sleeps until the heap's earliest deadline (a condition
 * variable on CLOCK_MONOTONIC), moves what is due to the ready list, wakes
 * idle workers and starts new ones while there are fewer than the ready
 * timers a worker could take, up to the bound. Workers then stay, idle,
 * until the loop stops.
 *
 * Lifetime: the loop is freed when both mtimer_loop_free() was called and
 * its last timer was freed, so a plugin instance that outlives the runtime
 * (a reference held somewhere) never touches freed memory. */
#include "timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define NSEC_PER_SEC 1000000000LL
/* A worker that could not be started is tried again this much later. */
#define MTIMER_SPAWN_AGAIN_NS (1 * NSEC_PER_SEC)

struct mworker {
	struct mworker *next;
	struct mtimer_loop *loop;
	pthread_t thread;
	uint64_t owner; /* of the callback it runs */
	bool busy;
};

struct mtimer {
	struct mtimer_loop *loop;
	void (*fn)(void *arg);
	void *arg;
	/* loop->lock: */
	int64_t deadline;
	uint64_t seq;   /* arm order: equal deadlines fire in it */
	uint64_t owner; /* of the last arm */
	size_t heap_at; /* index in the heap + 1; 0 when not in it */
	bool ready;     /* in the ready list */
	struct mtimer *rprev, *rnext;
	struct mworker *runner; /* running its callback, or NULL */
};

struct mtimer_loop {
	unsigned max_workers, per_owner;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the timer thread's: earlier deadline, stop */
	pthread_cond_t work; /* idle workers' */
	pthread_cond_t done; /* a callback returned */
	/* lock: */
	struct mtimer **heap;
	size_t n, cap;
	size_t ntimers; /* timers not freed; the heap has room for all */
	struct mtimer *ready, *ready_tail;
	struct mworker *workers;
	unsigned nworkers, idle;
	/* Workers started that have not yet looked for a timer: feed counts
	 * them as idle, or every arm before they run would start more. */
	unsigned starting;
	uint64_t seq;
	int64_t spawn_again; /* 0, or when to try starting a worker again */
	pthread_t timer;
	bool timer_started, stop, freed;
};

/* The worker the calling thread is, NULL for any other thread: a callback
 * cancelling its own timer must not wait for itself. */
static __thread struct mworker *current;

int64_t mtimer_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

struct mtimer_loop *mtimer_loop_new(unsigned threads, unsigned per_owner)
{
	struct mtimer_loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->max_workers = threads ? threads : MTIMER_THREADS;
	if (loop->max_workers > MTIMER_THREADS_MAX)
		loop->max_workers = MTIMER_THREADS_MAX;
	loop->per_owner = per_owner ? per_owner : MTIMER_PER_OWNER;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&loop->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&loop->work, NULL);
	pthread_cond_init(&loop->done, NULL);
	pthread_mutex_init(&loop->lock, NULL);
	return loop;
}

/* ---- the heap, by deadline then arm order; lock held ---- */

static bool before(const struct mtimer *a, const struct mtimer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(struct mtimer_loop *loop, size_t i, struct mtimer *t)
{
	loop->heap[i] = t;
	t->heap_at = i + 1;
}

static void sift_up(struct mtimer_loop *loop, size_t i)
{
	struct mtimer *t = loop->heap[i];
	while (i > 0 && before(t, loop->heap[(i - 1) / 2])) {
		heap_set(loop, i, loop->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(loop, i, t);
}

static void sift_down(struct mtimer_loop *loop, size_t i)
{
	struct mtimer *t = loop->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= loop->n)
			break;
		if (c + 1 < loop->n && before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!before(loop->heap[c], t))
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

/* Puts t where its (new) deadline belongs, in the heap or not yet. */
static void heap_place(struct mtimer_loop *loop, struct mtimer *t)
{
	if (!t->heap_at) {
		heap_set(loop, loop->n++, t);
		sift_up(loop, loop->n - 1);
		return;
	}
	sift_up(loop, t->heap_at - 1);
	sift_down(loop, t->heap_at - 1);
}

static void heap_remove(struct mtimer_loop *loop, struct mtimer *t)
{
	size_t i = t->heap_at - 1;
	struct mtimer *last = loop->heap[--loop->n];
	t->heap_at = 0;
	if (last == t)
		return;
	heap_set(loop, i, last);
	sift_up(loop, i);
	sift_down(loop, last->heap_at - 1);
}

/* ---- the ready list; lock held ---- */

static void ready_push(struct mtimer_loop *loop, struct mtimer *t)
{
	t->ready = true;
	t->rnext = NULL;
	t->rprev = loop->ready_tail;
	if (loop->ready_tail)
		loop->ready_tail->rnext = t;
	else
		loop->ready = t;
	loop->ready_tail = t;
}

static void ready_unlink(struct mtimer_loop *loop, struct mtimer *t)
{
	if (t->rprev)
		t->rprev->rnext = t->rnext;
	else
		loop->ready = t->rnext;
	if (t->rnext)
		t->rnext->rprev = t->rprev;
	else
		loop->ready_tail = t->rprev;
	t->rprev = t->rnext = NULL;
	t->ready = false;
}

static unsigned owner_busy(const struct mtimer_loop *loop, uint64_t owner)
{
	unsigned n = 0;
	for (const struct mworker *w = loop->workers; w; w = w->next)
		if (w->busy && w->owner == owner)
			n++;
	return n;
}

static bool runnable(const struct mtimer_loop *loop, const struct mtimer *t)
{
	return !t->runner && owner_busy(loop, t->owner) < loop->per_owner;
}

/* The first ready timer a worker may run now, unlinked, or NULL. */
static struct mtimer *take_ready(struct mtimer_loop *loop)
{
	for (struct mtimer *t = loop->ready; t; t = t->rnext) {
		if (runnable(loop, t)) {
			ready_unlink(loop, t);
			return t;
		}
	}
	return NULL;
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
	struct mworker *w = arg;
	struct mtimer_loop *loop = w->loop;
	current = w;
	pthread_mutex_lock(&loop->lock);
	loop->starting--;
	while (!loop->stop) {
		struct mtimer *t = take_ready(loop);
		if (!t) {
			loop->idle++;
			pthread_cond_wait(&loop->work, &loop->lock);
			loop->idle--;
			continue;
		}
		t->runner = w;
		w->owner = t->owner;
		w->busy = true;
		void (*fn)(void *) = t->fn;
		void *fn_arg = t->arg;
		pthread_mutex_unlock(&loop->lock);
		fn(fn_arg);
		pthread_mutex_lock(&loop->lock);
		/* t may be freed as soon as the lock is released: the last
		 * touch of it. */
		t->runner = NULL;
		w->busy = false;
		pthread_cond_broadcast(&loop->done);
	}
	pthread_mutex_unlock(&loop->lock);
	return NULL;
}

/* How many ready timers workers could start now: not running, and within
 * their owner's share, counting those before them in the list. At most
 * max_workers. */
static unsigned startable(const struct mtimer_loop *loop)
{
	uint64_t owners[MTIMER_THREADS_MAX];
	unsigned busy[MTIMER_THREADS_MAX], n = 0, want = 0;
	for (const struct mtimer *t = loop->ready; t && want < loop->max_workers; t = t->rnext) {
		if (t->runner)
			continue;
		unsigned i = 0;
		while (i < n && owners[i] != t->owner)
			i++;
		if (i == n) {
			owners[n] = t->owner;
			busy[n++] = owner_busy(loop, t->owner);
		}
		if (busy[i] < loop->per_owner) {
			busy[i]++;
			want++;
		}
	}
	return want;
}

/* Wakes idle workers for the ready timers, and starts workers while fewer
 * are idle than ready timers could start, up to the bound. */
static void feed(struct mtimer_loop *loop)
{
	unsigned want = startable(loop);
	if (!want)
		return;
	if (loop->idle)
		pthread_cond_broadcast(&loop->work);
	unsigned have = loop->idle + loop->starting;
	while (have < want && loop->nworkers < loop->max_workers) {
		struct mworker *w = calloc(1, sizeof(*w));
		int r = w ? 0 : -ENOMEM;
		if (w) {
			w->loop = loop;
			r = mu_thread_start(&w->thread, "mallafs-timerw", worker_main, w);
		}
		if (r < 0) {
			free(w);
			if (!loop->nworkers || !loop->spawn_again)
				mu_log(MU_LOG_WARNING, "timer loop: cannot start a worker: %s",
				       strerror(-r));
			loop->spawn_again = mtimer_now() + MTIMER_SPAWN_AGAIN_NS;
			return;
		}
		w->next = loop->workers;
		loop->workers = w;
		loop->nworkers++;
		loop->starting++;
		have++;
	}
	loop->spawn_again = 0;
}

/* ---- the timer thread ---- */

static void *timer_main(void *arg)
{
	struct mtimer_loop *loop = arg;
	pthread_mutex_lock(&loop->lock);
	while (!loop->stop) {
		int64_t now = mtimer_now();
		bool moved = false;
		while (loop->n && loop->heap[0]->deadline <= now) {
			struct mtimer *t = loop->heap[0];
			heap_remove(loop, t);
			ready_push(loop, t);
			moved = true;
		}
		if (moved || (loop->spawn_again && now >= loop->spawn_again))
			feed(loop);
		int64_t wake = loop->n ? loop->heap[0]->deadline : INT64_MAX;
		if (loop->spawn_again && loop->spawn_again < wake)
			wake = loop->spawn_again;
		if (wake == INT64_MAX) {
			pthread_cond_wait(&loop->wake, &loop->lock);
			continue;
		}
		struct timespec ts = {.tv_sec = (time_t)(wake / NSEC_PER_SEC),
		                      .tv_nsec = (long)(wake % NSEC_PER_SEC)};
		pthread_cond_timedwait(&loop->wake, &loop->lock, &ts);
	}
	pthread_mutex_unlock(&loop->lock);
	return NULL;
}

/* ---- timers ---- */

int mtimer_new(struct mtimer_loop *loop, void (*fn)(void *arg), void *arg, struct mtimer **ret)
{
	struct mtimer *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_lock(&loop->lock);
	/* Room in the heap for every timer, so that arming never fails for
	 * lack of memory. */
	if (loop->ntimers == loop->cap) {
		size_t cap = loop->cap ? 2 * loop->cap : 16;
		struct mtimer **h = realloc(loop->heap, cap * sizeof(*h));
		if (!h) {
			pthread_mutex_unlock(&loop->lock);
			free(t);
			return -ENOMEM;
		}
		loop->heap = h;
		loop->cap = cap;
	}
	loop->ntimers++;
	pthread_mutex_unlock(&loop->lock);
	*ret = t;
	return 0;
}

int mtimer_arm(struct mtimer *t, int64_t deadline, uint64_t owner)
{
	struct mtimer_loop *loop = t->loop;
	pthread_mutex_lock(&loop->lock);
	if (loop->stop) {
		pthread_mutex_unlock(&loop->lock);
		return -ESHUTDOWN;
	}
	if (!loop->timer_started) {
		int r = mu_thread_start(&loop->timer, "mallafs-timer", timer_main, loop);
		if (r < 0) {
			pthread_mutex_unlock(&loop->lock);
			return r;
		}
		loop->timer_started = true;
	}
	if (t->ready)
		ready_unlink(loop, t);
	t->owner = owner;
	t->deadline = deadline;
	t->seq = ++loop->seq;
	heap_place(loop, t);
	if (t->heap_at == 1)
		pthread_cond_signal(&loop->wake);
	pthread_mutex_unlock(&loop->lock);
	return 0;
}

void mtimer_cancel(struct mtimer *t)
{
	struct mtimer_loop *loop = t->loop;
	pthread_mutex_lock(&loop->lock);
	for (;;) {
		if (t->heap_at)
			heap_remove(loop, t);
		if (t->ready)
			ready_unlink(loop, t);
		/* The callback may arm again as it ends: look again after. */
		if (!t->runner || t->runner == current)
			break;
		pthread_cond_wait(&loop->done, &loop->lock);
	}
	pthread_mutex_unlock(&loop->lock);
}

static void loop_destroy(struct mtimer_loop *loop)
{
	free(loop->heap);
	pthread_cond_destroy(&loop->done);
	pthread_cond_destroy(&loop->work);
	pthread_cond_destroy(&loop->wake);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

void mtimer_free(struct mtimer *t)
{
	if (!t)
		return;
	struct mtimer_loop *loop = t->loop;
	mtimer_cancel(t);
	pthread_mutex_lock(&loop->lock);
	loop->ntimers--;
	bool last = loop->freed && loop->ntimers == 0;
	pthread_mutex_unlock(&loop->lock);
	free(t);
	if (last)
		loop_destroy(loop);
}

/* ---- the loop ---- */

unsigned mtimer_loop_threads(struct mtimer_loop *loop)
{
	pthread_mutex_lock(&loop->lock);
	unsigned n = loop->nworkers + (loop->timer_started ? 1 : 0);
	pthread_mutex_unlock(&loop->lock);
	return n;
}

void mtimer_loop_stop(struct mtimer_loop *loop)
{
	pthread_mutex_lock(&loop->lock);
	loop->stop = true;
	while (loop->n)
		heap_remove(loop, loop->heap[loop->n - 1]);
	while (loop->ready)
		ready_unlink(loop, loop->ready);
	bool join = loop->timer_started;
	loop->timer_started = false;
	struct mworker *workers = loop->workers;
	loop->workers = NULL;
	loop->nworkers = 0;
	pthread_cond_broadcast(&loop->wake);
	pthread_cond_broadcast(&loop->work);
	pthread_mutex_unlock(&loop->lock);
	if (join)
		pthread_join(loop->timer, NULL);
	/* Each ends once its callback under way returns. */
	while (workers) {
		struct mworker *next = workers->next;
		pthread_join(workers->thread, NULL);
		free(workers);
		workers = next;
	}
}

void mtimer_loop_free(struct mtimer_loop *loop)
{
	if (!loop)
		return;
	mtimer_loop_stop(loop);
	pthread_mutex_lock(&loop->lock);
	loop->freed = true;
	bool last = loop->ntimers == 0;
	pthread_mutex_unlock(&loop->lock);
	if (last)
		loop_destroy(loop);
}
