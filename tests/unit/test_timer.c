/* SPDX-License-Identifier: MIT */
/* The timer loop (core/timer.c): deadlines fire in order, a re-armed timer
 * fires at its new deadline only, a cancel that races a firing callback
 * returns only once it is over (ASan sees a use after free otherwise, TSan a
 * race), many owners' timers all fire on a bounded pool, a slow callback
 * holds its owner's share of the workers and no more, and a stopped loop
 * runs nothing and joins every thread. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "timer.h"
#include "util.h"

#define MS 1000000LL

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000LL),
	                      .tv_nsec = (long)(ns % 1000000000LL)};
	while (nanosleep(&ts, &ts) < 0)
		;
}

/* Waits up to ms for *v to reach want. */
static bool wait_for(atomic_int *v, int want, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (atomic_load(v) >= want)
			return true;
		sleep_ns(MS);
	}
	return atomic_load(v) >= want;
}

/* ---- ordering ---- */

struct order {
	pthread_mutex_t lock;
	int seen[8];
	atomic_int n;
};

struct order_arg {
	struct order *o;
	int id;
};

static void record(void *arg)
{
	struct order_arg *a = arg;
	pthread_mutex_lock(&a->o->lock);
	a->o->seen[atomic_load(&a->o->n)] = a->id;
	atomic_fetch_add(&a->o->n, 1);
	pthread_mutex_unlock(&a->o->lock);
}

static void test_order(void **state)
{
	/* One worker: the callbacks run in the order they came due. */
	struct mtimer_loop *loop = mtimer_loop_new(1, 1);
	struct order o = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct order_arg args[8];
	struct mtimer *t[8];
	static const int delay_ms[5] = {250, 50, 150, 100, 200};
	int64_t now = mtimer_now();
	for (int i = 0; i < 5; i++) {
		args[i] = (struct order_arg){.o = &o, .id = i};
		assert_int_equal(mtimer_new(loop, record, &args[i], &t[i]), 0);
		assert_int_equal(mtimer_arm(t[i], now + delay_ms[i] * MS, 1), 0);
	}
	/* Equal deadlines (already past) fire in the order they were armed. */
	for (int i = 5; i < 8; i++) {
		args[i] = (struct order_arg){.o = &o, .id = i};
		assert_int_equal(mtimer_new(loop, record, &args[i], &t[i]), 0);
		assert_int_equal(mtimer_arm(t[i], now - 1000 * MS, 1), 0);
	}
	assert_true(wait_for(&o.n, 8, 5000));
	static const int want[8] = {5, 6, 7, 1, 3, 2, 4, 0};
	for (int i = 0; i < 8; i++)
		assert_int_equal(o.seen[i], want[i]);
	for (int i = 0; i < 8; i++)
		mtimer_free(t[i]);
	mtimer_loop_free(loop);
}

/* ---- re-arm ---- */

struct count {
	atomic_int n;
	atomic_llong at; /* mtimer_now() of the last call */
};

static void count_cb(void *arg)
{
	struct count *c = arg;
	atomic_store(&c->at, mtimer_now());
	atomic_fetch_add(&c->n, 1);
}

static void test_rearm(void **state)
{
	struct mtimer_loop *loop = mtimer_loop_new(0, 0);
	struct count c = {0};
	struct mtimer *t;
	assert_int_equal(mtimer_new(loop, count_cb, &c, &t), 0);

	/* Earlier: fires at the new deadline, once. */
	int64_t armed = mtimer_now();
	assert_int_equal(mtimer_arm(t, armed + 60000 * MS, 7), 0);
	assert_int_equal(mtimer_arm(t, armed + 50 * MS, 7), 0);
	assert_true(wait_for(&c.n, 1, 5000));
	assert_true(atomic_load(&c.at) >= armed + 50 * MS);
	sleep_ns(100 * MS);
	assert_int_equal(atomic_load(&c.n), 1);

	/* Later: not at the old deadline. */
	armed = mtimer_now();
	assert_int_equal(mtimer_arm(t, armed + 30 * MS, 7), 0);
	assert_int_equal(mtimer_arm(t, armed + 60000 * MS, 7), 0);
	sleep_ns(300 * MS);
	assert_int_equal(atomic_load(&c.n), 1);

	/* Cancelled: never. */
	assert_int_equal(mtimer_arm(t, mtimer_now() + 30 * MS, 7), 0);
	mtimer_cancel(t);
	sleep_ns(200 * MS);
	assert_int_equal(atomic_load(&c.n), 1);

	/* Armed again after a cancel: fires. */
	assert_int_equal(mtimer_arm(t, mtimer_now(), 7), 0);
	assert_true(wait_for(&c.n, 2, 5000));
	mtimer_free(t);
	mtimer_loop_free(loop);
}

/* ---- cancel racing a firing callback ---- */

struct victim {
	struct mtimer *t;
	atomic_int running;
	int writes; /* written by the callback, no lock: a race if cancel lies */
	bool again; /* the callback arms itself again */
};

static void victim_cb(void *arg)
{
	struct victim *v = arg;
	atomic_store(&v->running, 1);
	for (int i = 0; i < 2000; i++) {
		v->writes++;
		__asm__ volatile("" ::: "memory");
	}
	if (v->again)
		mtimer_arm(v->t, mtimer_now(), 1);
	atomic_store(&v->running, 0);
}

static void test_cancel_race(void **state)
{
	struct mtimer_loop *loop = mtimer_loop_new(4, 4);
	unsigned seed = 1;
	for (int i = 0; i < 3000; i++) {
		struct victim *v = calloc(1, sizeof(*v));
		v->again = i % 2;
		assert_int_equal(mtimer_new(loop, victim_cb, v, &v->t), 0);
		assert_int_equal(mtimer_arm(v->t, mtimer_now(), 1), 0);
		/* Cancel before, while or after it runs. */
		int spin = rand_r(&seed) % 20000;
		for (volatile int k = 0; k < spin; k++)
			;
		mtimer_cancel(v->t);
		assert_int_equal(atomic_load(&v->running), 0);
		int w = v->writes;
		mtimer_free(v->t);
		assert_int_equal(v->writes, w);
		free(v); /* a callback still running would write to freed memory */
	}
	mtimer_loop_free(loop);
}

/* A callback that cancels and frees what it can: its own timer's cancel
 * does not wait for itself. */
static void self_cancel_cb(void *arg)
{
	struct victim *v = arg;
	mtimer_cancel(v->t);
	atomic_fetch_add(&v->running, 1);
}

static void test_self_cancel(void **state)
{
	struct mtimer_loop *loop = mtimer_loop_new(0, 0);
	struct victim v = {0};
	assert_int_equal(mtimer_new(loop, self_cancel_cb, &v, &v.t), 0);
	assert_int_equal(mtimer_arm(v.t, mtimer_now(), 1), 0);
	assert_true(wait_for(&v.running, 1, 5000));
	mtimer_free(v.t);
	mtimer_loop_free(loop);
}

/* ---- many owners, bounded threads ---- */

static void test_many_owners(void **state)
{
	enum { N = 1000 };
	struct mtimer_loop *loop = mtimer_loop_new(8, 2);
	struct count c = {0};
	struct mtimer **t = calloc(N, sizeof(*t));
	int64_t now = mtimer_now();
	for (int i = 0; i < N; i++) {
		assert_int_equal(mtimer_new(loop, count_cb, &c, &t[i]), 0);
		assert_int_equal(mtimer_arm(t[i], now + (i % 50) * MS, (uint64_t)(i % 100)), 0);
	}
	assert_true(wait_for(&c.n, N, 10000));
	assert_true(mtimer_loop_threads(loop) <= 1 + 8);
	sleep_ns(50 * MS);
	assert_int_equal(atomic_load(&c.n), N);
	for (int i = 0; i < N; i++)
		mtimer_free(t[i]);
	free(t);
	mtimer_loop_free(loop);
}

/* ---- a slow callback holds its owner's share, not the loop ---- */

struct slow {
	atomic_int running, most, done;
	atomic_bool release;
};

static void slow_cb(void *arg)
{
	struct slow *s = arg;
	int now = atomic_fetch_add(&s->running, 1) + 1;
	int most = atomic_load(&s->most);
	while (now > most && !atomic_compare_exchange_weak(&s->most, &most, now))
		;
	for (int i = 0; i < 10000 && !atomic_load(&s->release); i++)
		sleep_ns(MS);
	atomic_fetch_sub(&s->running, 1);
	atomic_fetch_add(&s->done, 1);
}

static void test_slow_owner(void **state)
{
	struct mtimer_loop *loop = mtimer_loop_new(4, 2);
	struct slow s = {0};
	struct count c = {0};
	struct mtimer *slow[5], *fast;
	/* Owner 1: five callbacks that block until released. */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(mtimer_new(loop, slow_cb, &s, &slow[i]), 0);
		assert_int_equal(mtimer_arm(slow[i], mtimer_now(), 1), 0);
	}
	assert_true(wait_for(&s.running, 2, 5000));
	/* No worker is started for the three that must wait: the timer
	 * thread and two workers. */
	sleep_ns(100 * MS);
	assert_int_equal(mtimer_loop_threads(loop), 1 + 2);
	/* Owner 2's timer fires on time meanwhile. */
	assert_int_equal(mtimer_new(loop, count_cb, &c, &fast), 0);
	int64_t due = mtimer_now() + 20 * MS;
	assert_int_equal(mtimer_arm(fast, due, 2), 0);
	assert_true(wait_for(&c.n, 1, 2000));
	assert_true(atomic_load(&c.at) - due < 1000 * MS);
	/* Owner 1 never held more than its share. */
	assert_int_equal(atomic_load(&s.most), 2);
	assert_int_equal(atomic_load(&s.done), 0);
	atomic_store(&s.release, true);
	assert_true(wait_for(&s.done, 5, 5000));
	assert_int_equal(atomic_load(&s.most), 2);
	for (int i = 0; i < 5; i++)
		mtimer_free(slow[i]);
	mtimer_free(fast);
	mtimer_loop_free(loop);
}

/* ---- stop ---- */

static void test_stop(void **state)
{
	struct mtimer_loop *loop = mtimer_loop_new(0, 0);
	struct slow s = {0};
	struct count c = {0};
	struct mtimer *running, *pending;
	assert_int_equal(mtimer_new(loop, slow_cb, &s, &running), 0);
	assert_int_equal(mtimer_new(loop, count_cb, &c, &pending), 0);
	assert_int_equal(mtimer_arm(running, mtimer_now(), 1), 0);
	assert_int_equal(mtimer_arm(pending, mtimer_now() + 200 * MS, 2), 0);
	assert_true(wait_for(&s.running, 1, 5000));
	assert_true(mtimer_loop_threads(loop) >= 2);
	atomic_store(&s.release, true);
	/* Stop waits for the callback under way and drops the pending one. */
	mtimer_loop_stop(loop);
	assert_int_equal(atomic_load(&s.done), 1);
	assert_int_equal(mtimer_loop_threads(loop), 0);
	assert_int_equal(mtimer_arm(pending, mtimer_now(), 2), -ESHUTDOWN);
	sleep_ns(300 * MS);
	assert_int_equal(atomic_load(&c.n), 0);
	/* The loop goes with its last timer. */
	mtimer_loop_free(loop);
	mtimer_cancel(pending);
	mtimer_free(running);
	mtimer_free(pending);
}

int main(void)
{
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_order),       cmocka_unit_test(test_rearm),
	        cmocka_unit_test(test_cancel_race), cmocka_unit_test(test_self_cancel),
	        cmocka_unit_test(test_many_owners), cmocka_unit_test(test_slow_owner),
	        cmocka_unit_test(test_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
