/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "events.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

/* Reads everything there is (buf large enough) as one NUL-terminated string. */
static char *read_all(struct mev_ring *ring, uint64_t *cursor)
{
	static char buf[1 << 16];
	ssize_t n = mev_ring_read(ring, cursor, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static void test_op_names(void **state)
{
	static const char *const want[] = {
	        "create",     "write",       "delete",     "mkdir",  "rmdir",
	        "rename",     "reconfigure", "restart",    "status", "register",
	        "unregister", "plugin-add",  "plugin-del", "resync",
	};
	assert_int_equal(MEV_OP_COUNT_, sizeof(want) / sizeof(want[0]));
	for (int op = 0; op < MEV_OP_COUNT_; op++)
		assert_string_equal(mev_op_name((enum mev_op)op), want[op]);
}

static void test_null_ring(void **state)
{
	assert_int_equal(mev_emit(NULL, MEV_CREATE, "a", NULL), 0);
	assert_int_equal(mev_emitf(NULL, MEV_WRITE, "a", "%d", 1), 0);
	mev_ring_free(NULL);
}

static void test_line_format(void **state)
{
	struct mev_ring *ring = mev_ring_new(16);
	assert_non_null(ring);
	uint64_t cursor = mev_ring_next_seq(ring);
	assert_int_equal(cursor, 1);

	assert_int_equal(mev_emit(ring, MEV_CREATE, "services/api/store/k", NULL), 1);
	assert_int_equal(mev_emit(ring, MEV_RENAME, "config/a/x", "config/b/y"), 2);
	assert_int_equal(mev_emitf(ring, MEV_WRITE, "config/a/y", "%d", 42), 3);
	assert_int_equal(mev_emit(ring, MEV_PLUGIN_ADD, "services/api/plugins/ttl", ""), 4);
	/* A newline in a name must not make a second line. */
	assert_int_equal(mev_emit(ring, MEV_DELETE, "store/a\nb\n", "x\ny"), 5);
	assert_int_equal(mev_ring_next_seq(ring), 6);

	assert_string_equal(read_all(ring, &cursor), "1 create services/api/store/k\n"
	                                             "2 rename config/a/x config/b/y\n"
	                                             "3 write config/a/y 42\n"
	                                             "4 plugin-add services/api/plugins/ttl \n"
	                                             "5 delete store/a b  x y\n");
	assert_int_equal(cursor, 6);
	/* Nothing new: 0, cursor unchanged. */
	char buf[64];
	assert_int_equal(mev_ring_read(ring, &cursor, buf, sizeof(buf)), 0);
	assert_int_equal(cursor, 6);

	/* A reader opened now sees only what comes next. */
	uint64_t late = mev_ring_next_seq(ring);
	mev_emit(ring, MEV_MKDIR, "config/app", NULL);
	assert_string_equal(read_all(ring, &late), "6 mkdir config/app\n");
	assert_string_equal(read_all(ring, &cursor), "6 mkdir config/app\n");
	mev_ring_free(ring);
}

/* Another node's change (mev_set_origin): " node=NODE" ends its line, and
 * a listener is told the node; the thread's later events are its own. */
static int origin_calls;
static char origin_seen[32];

static void origin_listener(const struct mev *ev, void *arg)
{
	origin_calls++;
	snprintf(origin_seen, sizeof(origin_seen), "%s", ev->origin ? ev->origin : "(null)");
}

static void test_origin(void **state)
{
	struct mev_ring *ring = mev_ring_new(8);
	assert_non_null(ring);
	assert_int_equal(mev_ring_add_listener(ring, origin_listener, NULL), 0);
	uint64_t cursor = mev_ring_next_seq(ring);
	mev_set_origin("nodeB");
	mev_emit(ring, MEV_WRITE, "config/a/k", "3");
	assert_string_equal(origin_seen, "nodeB");
	mev_emit(ring, MEV_RENAME, "config/a/k", "config/a/j");
	mev_emit(ring, MEV_DELETE, "config/a/j", NULL);
	mev_set_origin("odd\nname");
	mev_emit(ring, MEV_MKDIR, "config/b", NULL);
	mev_set_origin(NULL);
	mev_emit(ring, MEV_RMDIR, "config/b", NULL);
	assert_string_equal(origin_seen, "(null)");
	assert_int_equal(origin_calls, 5);
	assert_string_equal(read_all(ring, &cursor), "1 write config/a/k 3 node=nodeB\n"
	                                             "2 rename config/a/k config/a/j node=nodeB\n"
	                                             "3 delete config/a/j node=nodeB\n"
	                                             "4 mkdir config/b node=odd name\n"
	                                             "5 rmdir config/b\n");
	/* A line that does not fit whole is not cut. */
	char buf[16];
	cursor = 1;
	assert_int_equal(mev_ring_read(ring, &cursor, buf, sizeof(buf)), -ENOSPC);
	mev_ring_remove_listener(ring, origin_listener, NULL);
	mev_ring_free(ring);
}

static void test_partial_and_enospc(void **state)
{
	struct mev_ring *ring = mev_ring_new(8);
	assert_non_null(ring);
	uint64_t cursor = 1;
	char buf[64];

	mev_emit(ring, MEV_CREATE, "aaaa", NULL);   /* "1 create aaaa\n": 14 bytes */
	mev_emit(ring, MEV_WRITE, "bb", "12");      /* "2 write bb 12\n": 14 bytes */
	mev_emit(ring, MEV_DELETE, "cccccc", NULL); /* "3 delete cccccc\n": 16 bytes */

	/* Not even the first line fits: -ENOSPC, nothing consumed. */
	assert_int_equal(mev_ring_read(ring, &cursor, buf, 13), -ENOSPC);
	assert_int_equal(mev_ring_read(ring, &cursor, buf, 0), -ENOSPC);
	assert_int_equal(cursor, 1);

	/* Exactly one line fits. */
	memset(buf, '#', sizeof(buf));
	assert_int_equal(mev_ring_read(ring, &cursor, buf, 14), 14);
	assert_memory_equal(buf, "1 create aaaa\n", 14);
	assert_int_equal(cursor, 2);

	/* One and a half lines: only the whole one, the buffer past it untouched. */
	memset(buf, '#', sizeof(buf));
	assert_int_equal(mev_ring_read(ring, &cursor, buf, 14 + 8), 14);
	assert_memory_equal(buf, "2 write bb 12\n########", 22);
	assert_int_equal(cursor, 3);

	assert_int_equal(mev_ring_read(ring, &cursor, buf, 16), 16);
	assert_memory_equal(buf, "3 delete cccccc\n", 16);
	assert_int_equal(cursor, 4);
	assert_int_equal(mev_ring_read(ring, &cursor, buf, 0), 0);
	mev_ring_free(ring);
}

static void test_wraparound_overflow(void **state)
{
	struct mev_ring *ring = mev_ring_new(4);
	assert_non_null(ring);
	uint64_t slow = mev_ring_next_seq(ring);
	uint64_t behind = slow;
	char path[32];

	for (int i = 1; i <= 10; i++) {
		snprintf(path, sizeof(path), "p%d", i);
		assert_int_equal(mev_emit(ring, MEV_WRITE, path, NULL), i);
	}
	/* A reader still in the ring gets the kept events after wrapping. */
	uint64_t cursor = 7;
	assert_string_equal(read_all(ring, &cursor), "7 write p7\n8 write p8\n9 write p9\n"
	                                             "10 write p10\n");

	/* One whose events were dropped: the overflow line, once, alone. */
	char buf[64];
	assert_int_equal(mev_ring_read(ring, &slow, buf, 10), -ENOSPC);
	assert_int_equal(slow, 1);
	memset(buf, '#', sizeof(buf));
	assert_int_equal(mev_ring_read(ring, &slow, buf, 11), 11);
	assert_memory_equal(buf, "1 overflow\n", 11);
	assert_int_equal(slow, 11);
	assert_int_equal(mev_ring_read(ring, &slow, buf, sizeof(buf)), 0);
	assert_int_equal(slow, 11);

	/* Then it goes on with the newest events. */
	mev_emit(ring, MEV_DELETE, "p11", NULL);
	mev_emit(ring, MEV_CREATE, "p12", NULL);
	assert_string_equal(read_all(ring, &slow), "11 delete p11\n12 create p12\n");

	/* The overflow SEQ is the reader's own cursor. */
	behind = 5;
	assert_string_equal(read_all(ring, &behind), "5 overflow\n");
	assert_int_equal(behind, 13);
	/* Exactly the oldest kept seq (9) is not an overflow. */
	cursor = 9;
	assert_string_equal(read_all(ring, &cursor), "9 write p9\n10 write p10\n11 delete p11\n"
	                                             "12 create p12\n");

	/* Many wraps over the same slots keep each event's own strings. */
	for (int i = 13; i <= 1000; i++) {
		snprintf(path, sizeof(path), "q%d", i);
		if (i % 2)
			mev_emit(ring, MEV_RENAME, path, path);
		else
			mev_emit(ring, MEV_WRITE, path, NULL);
	}
	cursor = 998;
	assert_string_equal(read_all(ring, &cursor), "998 write q998\n999 rename q999 q999\n"
	                                             "1000 write q1000\n");
	mev_ring_free(ring);
}

/* A reader that saved the last seq it handled resumes after it. */
static void test_resume(void **state)
{
	struct mev_ring *ring = mev_ring_new(4);
	assert_non_null(ring);
	char buf[64], path[32];
	uint64_t cursor = 0;

	/* Nothing emitted yet: after 0 is seq 1, after 5 waits for 6. */
	assert_int_equal(mev_ring_resume(ring, 0, &cursor, buf, sizeof(buf)), 0);
	assert_int_equal(cursor, 1);
	assert_int_equal(mev_ring_resume(ring, 5, &cursor, buf, sizeof(buf)), 0);
	assert_int_equal(cursor, 6);
	for (int i = 1; i <= 6; i++) {
		snprintf(path, sizeof(path), "p%d", i);
		mev_emit(ring, MEV_WRITE, path, NULL);
	}
	assert_string_equal(read_all(ring, &cursor), "6 write p6\n");

	/* Kept (3..6): the events after the one handled, exactly. */
	assert_int_equal(mev_ring_resume(ring, 4, &cursor, buf, sizeof(buf)), 0);
	assert_string_equal(read_all(ring, &cursor), "5 write p5\n6 write p6\n");
	/* The oldest kept is 3: resuming after 2 loses nothing. */
	assert_int_equal(mev_ring_resume(ring, 2, &cursor, buf, sizeof(buf)), 0);
	assert_string_equal(read_all(ring, &cursor), "3 write p3\n4 write p4\n5 write p5\n"
	                                             "6 write p6\n");
	/* The newest handled: nothing to read until the next event. */
	assert_int_equal(mev_ring_resume(ring, 6, &cursor, buf, sizeof(buf)), 0);
	assert_string_equal(read_all(ring, &cursor), "");

	/* After 1: event 2 is gone. The overflow line names it, then the
	 * reader goes on from the oldest kept (3), not the newest. */
	assert_int_equal(mev_ring_resume(ring, 1, &cursor, buf, 7), -ENOSPC);
	assert_int_equal(cursor, 7);
	memset(buf, '#', sizeof(buf));
	assert_int_equal(mev_ring_resume(ring, 1, &cursor, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "2 overflow\n", 11);
	assert_int_equal(cursor, 3);
	assert_string_equal(read_all(ring, &cursor), "3 write p3\n4 write p4\n5 write p5\n"
	                                             "6 write p6\n");
	/* After 0, with 1 and 2 gone. */
	assert_int_equal(mev_ring_resume(ring, 0, &cursor, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "1 overflow\n", 11);
	assert_int_equal(cursor, 3);

	assert_int_equal(mev_ring_resume(ring, UINT64_MAX, &cursor, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mev_ring_resume(NULL, 1, &cursor, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(cursor, 3);
	mev_ring_free(ring);
}

/* What the root's metrics counts: events recorded, and those the readers
 * skip for each overflow (mev_ring_read: to the newest; resume: to the
 * oldest kept). A read that did not fit counts nothing. */
static void test_counts(void **state)
{
	struct mev_ring *ring = mev_ring_new(4);
	assert_non_null(ring);
	uint64_t recorded = 9, lost = 9, cursor = 1;
	char buf[64];
	mev_ring_counts(ring, &recorded, &lost);
	assert_int_equal(recorded, 0);
	assert_int_equal(lost, 0);
	for (int i = 1; i <= 10; i++)
		mev_emit(ring, MEV_WRITE, "p", NULL);
	assert_int_equal(mev_ring_read(ring, &cursor, buf, 5), -ENOSPC);
	mev_ring_counts(ring, &recorded, &lost);
	assert_int_equal(recorded, 10);
	assert_int_equal(lost, 0);
	/* From 1: 1..10 skipped (7..10 were kept, but it goes on from 11). */
	assert_string_equal(read_all(ring, &cursor), "1 overflow\n");
	mev_ring_counts(ring, &recorded, &lost);
	assert_int_equal(lost, 10);
	/* After 2: 3..6 skipped, it goes on from 7. */
	assert_int_equal(mev_ring_resume(ring, 2, &cursor, buf, sizeof(buf)), 11);
	mev_ring_counts(ring, &recorded, &lost);
	assert_int_equal(lost, 14);
	/* A reader in the ring loses nothing. */
	assert_string_equal(read_all(ring, &cursor),
	                    "7 write p\n8 write p\n9 write p\n10 write p\n");
	mev_ring_counts(ring, &recorded, &lost);
	assert_int_equal(recorded, 10);
	assert_int_equal(lost, 14);
	mev_ring_counts(NULL, &recorded, &lost);
	assert_int_equal(recorded + lost, 0);
	mev_ring_free(ring);
}

static void test_capacity_one(void **state)
{
	struct mev_ring *ring = mev_ring_new(1);
	assert_non_null(ring);
	uint64_t cursor = 1;
	mev_emit(ring, MEV_MKDIR, "a", NULL);
	assert_string_equal(read_all(ring, &cursor), "1 mkdir a\n");
	mev_emit(ring, MEV_MKDIR, "b", NULL);
	mev_emit(ring, MEV_MKDIR, "c", NULL);
	assert_string_equal(read_all(ring, &cursor), "2 overflow\n");
	assert_int_equal(cursor, 4);
	mev_ring_free(ring);
}

struct emitter_arg {
	struct mev_ring *ring;
	long delay_ms;
};

static void *delayed_emit(void *p)
{
	struct emitter_arg *a = p;
	sleep_ms(a->delay_ms);
	mev_emit(a->ring, MEV_STATUS, "services/x/status", NULL);
	return NULL;
}

static void test_wait(void **state)
{
	struct mev_ring *ring = mev_ring_new(4);
	assert_non_null(ring);
	uint64_t cursor = mev_ring_next_seq(ring);

	/* Timeout. */
	uint64_t t0 = now_ms();
	assert_int_equal(mev_ring_wait(ring, cursor, 100), 0);
	uint64_t el = now_ms() - t0;
	assert_true(el >= 95);
	assert_true(el < 2000);
	assert_int_equal(mev_ring_wait(ring, cursor, 0), 0);

	/* Something there already: at once. */
	mev_emit(ring, MEV_CREATE, "a", NULL);
	assert_int_equal(mev_ring_wait(ring, cursor, 0), 1);
	assert_int_equal(mev_ring_wait(ring, cursor, -1), 1);
	assert_string_equal(read_all(ring, &cursor), "1 create a\n");
	assert_int_equal(mev_ring_wait(ring, cursor, 0), 0);

	/* No limit: woken by another thread's emit. */
	pthread_t th;
	struct emitter_arg a = {ring, 100};
	t0 = now_ms();
	assert_int_equal(pthread_create(&th, NULL, delayed_emit, &a), 0);
	assert_int_equal(mev_ring_wait(ring, cursor, -1), 1);
	el = now_ms() - t0;
	assert_true(el >= 95);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_string_equal(read_all(ring, &cursor), "2 status services/x/status\n");

	/* A long limit, woken early. */
	a.delay_ms = 50;
	t0 = now_ms();
	assert_int_equal(pthread_create(&th, NULL, delayed_emit, &a), 0);
	assert_int_equal(mev_ring_wait(ring, cursor, 10000), 1);
	el = now_ms() - t0;
	assert_true(el >= 45);
	assert_true(el < 5000);
	assert_int_equal(pthread_join(th, NULL), 0);

	/* A reader whose events were dropped has something to read: the overflow. */
	uint64_t old = 1;
	for (int i = 0; i < 10; i++)
		mev_emit(ring, MEV_WRITE, "w", NULL);
	assert_int_equal(mev_ring_wait(ring, old, 0), 1);
	assert_string_equal(read_all(ring, &old), "1 overflow\n");
	assert_int_equal(mev_ring_wait(ring, old, 0), 0);
	mev_ring_free(ring);
}

struct seen {
	struct mev_ring *ring;
	int calls;
	uint64_t seq;
	enum mev_op op;
	char path[64];
	char detail[64];
	int detail_null;
	uint64_t next_seq_during_call;
	int order; /* position among listeners at the last call */
};

static int listener_clock;

static void record_listener(const struct mev *ev, void *arg)
{
	struct seen *s = arg;
	s->calls++;
	s->seq = ev->seq;
	s->op = ev->op;
	snprintf(s->path, sizeof(s->path), "%s", ev->path);
	s->detail_null = ev->detail == NULL;
	snprintf(s->detail, sizeof(s->detail), "%s", ev->detail ? ev->detail : "");
	/* The ring's lock must not be held here, and the event already in it. */
	s->next_seq_during_call = mev_ring_next_seq(s->ring);
	s->order = listener_clock++;
}

static void test_listeners(void **state)
{
	struct mev_ring *ring = mev_ring_new(2);
	assert_non_null(ring);
	struct seen s[9];
	memset(s, 0, sizeof(s));
	for (int i = 0; i < 9; i++)
		s[i].ring = ring;

	assert_int_equal(mev_ring_add_listener(ring, NULL, NULL), -EINVAL);
	for (int i = 0; i < 8; i++)
		assert_int_equal(mev_ring_add_listener(ring, record_listener, &s[i]), 0);
	assert_int_equal(mev_ring_add_listener(ring, record_listener, &s[8]), -ENOSPC);
	/* Four are enough below. */
	for (int i = 4; i < 8; i++)
		assert_int_equal(mev_ring_remove_listener(ring, record_listener, &s[i]), 0);

	listener_clock = 0;
	assert_int_equal(mev_emit(ring, MEV_RENAME, "config/a/x\n", "config/b/y"), 1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_int_equal(s[i].seq, 1);
		assert_int_equal(s[i].op, MEV_RENAME);
		assert_string_equal(s[i].path, "config/a/x ");
		assert_false(s[i].detail_null);
		assert_string_equal(s[i].detail, "config/b/y");
		assert_int_equal(s[i].next_seq_during_call, 2);
		assert_int_equal(s[i].order, i);
	}
	assert_int_equal(s[4].calls, 0);

	assert_int_equal(mev_emitf(ring, MEV_WRITE, "config/a/y", "%zu", (size_t)7), 2);
	assert_int_equal(mev_emit(ring, MEV_RMDIR, "config/a", NULL), 3);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(s[i].calls, 3);
		assert_int_equal(s[i].seq, 3);
		assert_int_equal(s[i].op, MEV_RMDIR);
		assert_string_equal(s[i].path, "config/a");
		assert_true(s[i].detail_null);
	}
	mev_ring_free(ring);
}

enum { THREADS = 8, PER_THREAD = 5000, TOTAL = THREADS * PER_THREAD };

struct stress {
	struct mev_ring *ring;
	int id;
	atomic_uint_fast64_t *listener_calls;
	atomic_uint_fast64_t *listener_seq_sum;
};

static void count_listener(const struct mev *ev, void *arg)
{
	struct stress *st = arg;
	atomic_fetch_add(st->listener_calls, 1);
	atomic_fetch_add(st->listener_seq_sum, ev->seq);
}

static void *stress_emitter(void *p)
{
	struct stress *st = p;
	char path[32];
	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(path, sizeof(path), "t%d/%d", st->id, i);
		if (mev_emitf(st->ring, MEV_WRITE, path, "%d", i) == 0)
			return (void *)1;
	}
	return NULL;
}

/* One line of buf (up to its '\n') as a C string, for sscanf. */
static const char *line_at(const char *p, const char *end, char *out, size_t out_len,
                           const char **ret_next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl || (size_t)(nl - p) >= out_len)
		return NULL;
	memcpy(out, p, (size_t)(nl - p));
	out[nl - p] = '\0';
	*ret_next = nl + 1;
	return out;
}

/* Checks "SEQ write tT/I I" lines: seqs consecutive from *next, and each
 * thread's events in its own order. No cmocka asserts: it also runs on a
 * reader thread. 0 or the number of the failed check. */
static int check_lines(const char *buf, size_t len, uint64_t *next, int *per_thread)
{
	const char *p = buf, *end = buf + len;
	char line[128];
	while (p < end) {
		if (!line_at(p, end, line, sizeof(line), &p))
			return 1;
		uint64_t seq;
		int t, i, d;
		if (sscanf(line, "%" SCNu64 " write t%d/%d %d", &seq, &t, &i, &d) != 4)
			return 2;
		if (seq != *next)
			return 3;
		(*next)++;
		if (t < 0 || t >= THREADS || i != per_thread[t] || d != i)
			return 4;
		per_thread[t]++;
	}
	return 0;
}

struct reader_arg {
	struct mev_ring *ring;
	uint64_t cursor;
	int per_thread[THREADS];
};

/* A concurrent reader with small reads: it must see every seq, in order. */
static void *stress_reader(void *p)
{
	struct reader_arg *r = p;
	char buf[512];
	uint64_t next = r->cursor;
	while (next <= TOTAL) {
		if (mev_ring_wait(r->ring, r->cursor, 5000) != 1)
			return (void *)1;
		ssize_t n = mev_ring_read(r->ring, &r->cursor, buf, sizeof(buf));
		if (n < 0)
			return (void *)2;
		if (check_lines(buf, (size_t)n, &next, r->per_thread) != 0)
			return (void *)3;
	}
	return NULL;
}

struct slow_arg {
	atomic_int calls;
	atomic_bool inside;
};

static void slow_listener(const struct mev *ev, void *arg)
{
	struct slow_arg *a = arg;
	atomic_store(&a->inside, true);
	usleep(200 * 1000);
	atomic_fetch_add(&a->calls, 1);
	atomic_store(&a->inside, false);
}

static void *emit_once(void *ring)
{
	mev_emit(ring, MEV_WRITE, "x", NULL);
	return NULL;
}

/* Removal takes the listener out and waits for calls under way, so its
 * argument can be freed right after. */
static void test_remove_listener(void **state)
{
	struct mev_ring *ring = mev_ring_new(8);
	struct slow_arg a = {0};
	assert_int_equal(mev_ring_add_listener(ring, slow_listener, &a), 0);
	pthread_t t;
	pthread_create(&t, NULL, emit_once, ring);
	while (!atomic_load(&a.inside))
		usleep(1000);
	assert_int_equal(mev_ring_remove_listener(ring, slow_listener, &a), 0);
	/* The call that was running has finished. */
	assert_false(atomic_load(&a.inside));
	assert_int_equal(atomic_load(&a.calls), 1);
	pthread_join(t, NULL);
	mev_emit(ring, MEV_WRITE, "y", NULL);
	assert_int_equal(atomic_load(&a.calls), 1);
	assert_int_equal(mev_ring_remove_listener(ring, slow_listener, &a), -ENOENT);
	mev_ring_free(ring);
}

static void test_concurrent_emitters(void **state)
{
	struct mev_ring *ring = mev_ring_new(TOTAL);
	assert_non_null(ring);
	atomic_uint_fast64_t calls = 0, sum = 0;
	struct stress st[THREADS];
	pthread_t th[THREADS], rd;
	struct reader_arg ra = {.ring = ring, .cursor = mev_ring_next_seq(ring)};

	for (int i = 0; i < THREADS; i++) {
		st[i] = (struct stress){ring, i, &calls, &sum};
		if (i < 2)
			assert_int_equal(mev_ring_add_listener(ring, count_listener, &st[i]), 0);
	}
	assert_int_equal(pthread_create(&rd, NULL, stress_reader, &ra), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, stress_emitter, &st[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	void *ret;
	assert_int_equal(pthread_join(rd, &ret), 0);
	assert_null(ret);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(ra.per_thread[i], PER_THREAD);

	assert_int_equal(mev_ring_next_seq(ring), TOTAL + 1);
	/* Two listeners, each called once for every seq. */
	assert_int_equal(atomic_load(&calls), 2 * (uint64_t)TOTAL);
	assert_int_equal(atomic_load(&sum), (uint64_t)TOTAL * (TOTAL + 1));

	/* A reader reading after the fact sees all of them too. */
	size_t cap = (size_t)TOTAL * 32;
	char *buf = malloc(cap);
	assert_non_null(buf);
	uint64_t cursor = 1, next = 1;
	int per_thread[THREADS] = {0};
	ssize_t n = mev_ring_read(ring, &cursor, buf, cap);
	assert_true(n > 0);
	assert_int_equal(check_lines(buf, (size_t)n, &next, per_thread), 0);
	assert_int_equal(next, TOTAL + 1);
	assert_int_equal(cursor, TOTAL + 1);
	free(buf);
	mev_ring_free(ring);
}

/* A small ring under concurrent emitters: a slow reader gets overflow lines,
 * never a torn or repeated one, and seqs only go up. */
static void test_concurrent_small_ring(void **state)
{
	struct mev_ring *ring = mev_ring_new(16);
	assert_non_null(ring);
	atomic_uint_fast64_t calls = 0, sum = 0;
	struct stress st[THREADS];
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		st[i] = (struct stress){ring, i, &calls, &sum};
		assert_int_equal(pthread_create(&th[i], NULL, stress_emitter, &st[i]), 0);
	}
	uint64_t cursor = 1, last = 0;
	char buf[256];
	int overflows = 0;
	/* Start late so that seq 1 is surely gone: at least one overflow. */
	assert_int_equal(mev_ring_wait(ring, 1000, 30000), 1);
	for (;;) {
		ssize_t n = mev_ring_read(ring, &cursor, buf, sizeof(buf));
		assert_true(n >= 0);
		if (n == 0) {
			if (cursor > TOTAL)
				break;
			mev_ring_wait(ring, cursor, 1000);
			continue;
		}
		for (const char *p = buf; p < buf + n;) {
			char line[128], word[16];
			uint64_t seq;
			assert_non_null(line_at(p, buf + n, line, sizeof(line), &p));
			assert_int_equal(sscanf(line, "%" SCNu64 " %15s", &seq, word), 2);
			assert_true(seq > last);
			if (strcmp(word, "overflow") == 0) {
				overflows++;
				assert_true(p == buf + n); /* alone in its read */
			} else {
				assert_string_equal(word, "write");
			}
			last = seq;
		}
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(mev_ring_next_seq(ring), TOTAL + 1);
	assert_true(overflows >= 1);
	mev_ring_free(ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_op_names),
	        cmocka_unit_test(test_null_ring),
	        cmocka_unit_test(test_line_format),
	        cmocka_unit_test(test_origin),
	        cmocka_unit_test(test_partial_and_enospc),
	        cmocka_unit_test(test_wraparound_overflow),
	        cmocka_unit_test(test_resume),
	        cmocka_unit_test(test_counts),
	        cmocka_unit_test(test_capacity_one),
	        cmocka_unit_test(test_wait),
	        cmocka_unit_test(test_listeners),
	        cmocka_unit_test(test_remove_listener),
	        cmocka_unit_test(test_concurrent_emitters),
	        cmocka_unit_test(test_concurrent_small_ring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
