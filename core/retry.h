/* SPDX-License-Identifier: MIT */
/* Retries of failed services: when a service whose admin status is active
 * fails to start, its next try is scheduled here, after a delay that doubles
 * with each failed try (base, 2 base, 4 base, ... up to max), and runs on a
 * thread of this file (msvc_retry). The service decides, under its op_lock,
 * whether a try is still wanted when it comes; this file only keeps time,
 * with one timer of the daemon's timer loop (timer.h).
 *
 * Lock: one mutex, after a service's op_lock (services schedule and cancel
 * with op_lock held) and before the timer loop's; never held across a try,
 * a join or an unref. */
#ifndef MALLAFS_CORE_RETRY_H
#define MALLAFS_CORE_RETRY_H

#include <stdint.h>

struct mallafs_svc;
struct mretry;
struct mtimer_loop;

#define MRETRY_BASE_MS 5000u
#define MRETRY_MAX_MS 300000u

/* Delays in ms (0: the defaults above), timed on loop (NULL: a loop of its
 * own), which must outlive it. NULL on failure with errno set. */
struct mretry *mretry_new(unsigned base_ms, unsigned max_ms, struct mtimer_loop *loop);
/* Stops: pending tries are dropped, tries under way finish, every thread
 * is joined; later schedules do nothing. Idempotent. */
void mretry_stop(struct mretry *q);
/* Stops, then frees (accepts NULL). */
void mretry_free(struct mretry *q);
/* The delay before try n + 1, n tries having failed: base doubled n times,
 * at most max. */
unsigned mretry_delay_ms(const struct mretry *q, uint64_t n);
/* Schedules svc's next try delay_ms from now, replacing one pending; holds a
 * reference to svc until it runs or is cancelled. 0, -ENOMEM, or -ESHUTDOWN
 * once stopped. */
int mretry_schedule(struct mretry *q, struct mallafs_svc *svc, unsigned delay_ms);
/* Drops svc's pending try, if any (one under way finishes). */
void mretry_cancel(struct mretry *q, struct mallafs_svc *svc);

#endif
