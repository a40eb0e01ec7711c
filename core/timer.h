/* SPDX-License-Identifier: MIT */
/* The daemon's timer loop: one thread keeps every deadline of every timer
 * (plugins' ttl expiry and persist's coalescing, through the plugin API's
 * mallafs_timer_*) in a min-heap, and a bounded pool of worker threads runs
 * the callbacks that come due. So the threads the daemon runs for timers do
 * not grow with the services: one timer thread and at most `threads`
 * workers (started as work needs them, kept until the loop stops).
 *
 * Owners: a timer is armed on behalf of an owner (the plugins' timers: the
 * uid owning the service, read at each arm), and at most `per_owner`
 * callbacks of one owner run at once. So one owner's slow callbacks (a
 * persist writing to a slow disk, an expiry waiting for a hook) hold at most
 * that many workers, and another owner's timers still fire on time. A due
 * timer that finds no free worker waits in a ready list, first due first
 * run. The shares bound what one owner holds, not what several do: as many
 * owners as threads / per_owner (4 by default), each with callbacks that
 * block for good (persist saving into a filesystem that never answers), hold
 * every worker, as they would the retries' (retry.c has the same bounds).
 *
 * One timer's callback never runs twice at once: armed again while it runs
 * (by itself or anyone), it runs again after it returns, once due. Arming,
 * re-arming to an earlier or later deadline and cancelling are O(log n).
 * mtimer_cancel() returns only once the callback is not running (unless the
 * callback itself cancels), so an owner that cancels, then frees what the
 * callback uses, never races it. Two callbacks that cancel each other's
 * timers would wait for each other: don't.
 *
 * Lock: mtimer_loop.lock guards the heap, the ready list, every timer's
 * state and the workers. A leaf: taken with any plugin or core lock held
 * (a store hook arms with its plugin's lock and the store lock held), and
 * never held across a callback or a join (the loop's threads are started
 * with it held: starting one waits for nothing). Callbacks run
 * with no loop lock held, so they may arm, cancel (themselves or others) and
 * take any lock their owner's code takes. */
#ifndef MALLAFS_CORE_TIMER_H
#define MALLAFS_CORE_TIMER_H

#include <stdint.h>

struct mtimer_loop;
struct mtimer;

/* Workers at most, and callbacks of one owner at once, by default. */
#define MTIMER_THREADS 16
#define MTIMER_PER_OWNER 4
/* The most workers a loop may be given. */
#define MTIMER_THREADS_MAX 64

/* A loop (0: the defaults above; threads at most MTIMER_THREADS_MAX); its
 * threads start with the first due timer. NULL with errno set. */
struct mtimer_loop *mtimer_loop_new(unsigned threads, unsigned per_owner);
/* Stops: pending timers are dropped, callbacks under way finish, every
 * thread is joined; later arms do nothing (-ESHUTDOWN). Idempotent. */
void mtimer_loop_stop(struct mtimer_loop *loop);
/* Stops, then frees (accepts NULL). Timers not freed yet keep what they
 * need: the last mtimer_free() frees the rest. */
void mtimer_loop_free(struct mtimer_loop *loop);
/* Threads the loop runs now: the timer thread and the workers. */
unsigned mtimer_loop_threads(struct mtimer_loop *loop);

/* A new, unarmed timer calling fn(arg). 0 or -ENOMEM. */
int mtimer_new(struct mtimer_loop *loop, void (*fn)(void *arg), void *arg, struct mtimer **ret);
/* Fires fn at deadline (mtimer_now() time, ns; a past one is due now) on
 * behalf of owner, replacing the pending deadline, earlier or later. 0, or
 * -ESHUTDOWN once the loop stopped. */
int mtimer_arm(struct mtimer *t, int64_t deadline, uint64_t owner);
/* Drops the pending deadline and waits for a callback under way, unless
 * called from that callback. Afterwards the timer is idle until armed again. */
void mtimer_cancel(struct mtimer *t);
/* Cancels, then frees (accepts NULL). Never from the timer's own callback. */
void mtimer_free(struct mtimer *t);

/* CLOCK_MONOTONIC in nanoseconds: the clock of deadlines. */
int64_t mtimer_now(void);

#endif
