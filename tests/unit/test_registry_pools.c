/* SPDX-License-Identifier: MIT */
/* Unit tests of core/registry.c, continued: pools and their rules,
 * listings in order with cursors, freeing a registry with live entries,
 * and concurrent use. The fixture is registry_fixture.c's. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "registry.h"
#include "registry_fixture.h"
#include "util.h"

static void test_pool_rules(void **state)
{
	struct fixture f = fx_new();
	char member[16];
	struct mreg_entry e;
	struct seen s = {0};

	snprintf(member, sizeof(member), "%d", getpid());
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	expect_event("mkdir registry/p");
	assert_int_equal(mreg_pool_create(f.reg, "p"), -EEXIST);
	assert_int_equal(mreg_pool_create(f.reg, "q"), 0);
	assert_int_equal(mreg_pool_destroy(f.reg, "nope"), -ENOENT);
	assert_int_equal(mreg_pool_destroy(f.reg, "bad/name"), -ENOENT);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_null(e.name);
	assert_int_equal(e.kind, 'p');
	assert_int_equal(e.uid, 0);
	assert_int_equal(mreg_stat(f.reg, "nope", NULL, &e), -ENOENT);

	/* Member names must be canonical PIDs. */
	const char *bad[] = {"abc", "0", "-1", "+1", "", "0123", "1 ", " 1", "1x", "2147483648"};
	for (size_t i = 0; i < MU_ARRAY_SIZE(bad); i++) {
		if (mreg_pool_store(f.reg, "p", bad[i], "v", 1, 0) != -EINVAL)
			fail_msg("member \"%s\" was not refused with EINVAL", bad[i]);
	}
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "a\nb", 3, 0), -EINVAL);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "a\n\n", 3, 0), -EINVAL);
	assert_int_equal(mreg_pool_store(f.reg, "bad/p", member, "v", 1, 0), -EINVAL);
	/* No pool beats anything about the process. */
	assert_int_equal(mreg_pool_store(f.reg, "nope", member, "v", 1, 0), -ENOENT);
	assert_int_equal(pool_store(f.reg, "nope", missing_pid(), "v", 0), -ENOENT);
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), -ENOENT);
	assert_int_equal(mreg_pool_list(f.reg, "p", 0, collect, &s), 0);
	assert_int_equal(s.n, 0);

	/* Listing in cookie order, resuming after a cookie. */
	assert_int_equal(mreg_pool_create(f.reg, "a"), 0);
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "p");
	assert_string_equal(s.names[1], "q");
	assert_string_equal(s.names[2], "a");
	assert_true(s.ids[0] < s.ids[1] && s.ids[1] < s.ids[2]);
	assert_true(s.cookies[0] < s.cookies[1] && s.cookies[1] < s.cookies[2]);
	uint64_t id_q = s.ids[1], cookie_q = s.cookies[1];
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, cookie_q, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "a");

	/* A pool made again has a new id; its freed position is taken again. */
	assert_int_equal(mreg_pool_destroy(f.reg, "q"), 0);
	expect_event("rmdir registry/q");
	assert_int_equal(mreg_pool_destroy(f.reg, "q"), -ENOENT);
	assert_int_equal(mreg_pool_create(f.reg, "q"), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[1], "q");
	assert_int_equal(s.cookies[1], cookie_q);
	assert_true(s.ids[1] > id_q + 1);
	/* Live pools are freed with the registry. */
	fx_free(&f);
}

static void test_pools(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid();
	char member[16];
	struct mreg_entry e, m1, m2, p1, p2;

	snprintf(member, sizeof(member), "%d", me);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	/* Names and pools share one namespace. */
	assert_int_equal(reg_textf(f.reg, "p", 0, "%d", me), -EEXIST);
	assert_int_equal(reg_textf(f.reg, "n", 0, "%d", me), 0);
	assert_int_equal(mreg_pool_create(f.reg, "n"), -EEXIST);
	assert_counts(f.reg, 1, 1, 0);
	assert_int_equal(mreg_unregister(f.reg, "p"), -EISDIR);
	assert_int_equal(mreg_pool_destroy(f.reg, "n"), -ENOTDIR);
	assert_int_equal(mreg_lookup(f.reg, "p", NULL, NULL), -EISDIR);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &p1), 0);
	assert_int_equal(mreg_pool_store(f.reg, "n", member, "v", 1, 0), -ENOTDIR);
	struct seen s = {0};

	usleep(2000);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "v\n", 2, 0), 0);
	expect_event("register registry/p/%d v", me);
	assert_pool_render(f.reg, "p", member, "v\n");
	assert_int_equal(mreg_stat(f.reg, "p", member, &m1), 0);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &p2), 0);
	assert_int_equal(m1.kind, 'm');
	assert_int_equal(p2.id, p1.id);
	/* The pool's mtime follows its member set. */
	assert_true(p2.mtime.tv_sec > p1.mtime.tv_sec ||
	            (p2.mtime.tv_sec == p1.mtime.tv_sec && p2.mtime.tv_nsec > p1.mtime.tv_nsec));

	/* Storing again replaces, keeping the id; a refused value changes nothing. */
	assert_int_equal(pool_store(f.reg, "p", me, "w", 0), 0);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "x\ny", 3, 0), -EINVAL);
	assert_counts(f.reg, 1, 1, 1);
	assert_pool_render(f.reg, "p", member, "w\n");
	assert_int_equal(mreg_stat(f.reg, "p", member, &m2), 0);
	assert_int_equal(m2.id, m1.id);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_true(e.mtime.tv_sec == p2.mtime.tv_sec && e.mtime.tv_nsec == p2.mtime.tv_nsec);
	/* An empty value. */
	assert_int_equal(pool_store(f.reg, "p", me, "\n", 0), 0);
	assert_pool_render(f.reg, "p", member, "\n");
	expect_event("register registry/p/%d", me);

	assert_int_equal(mreg_pool_destroy(f.reg, "p"), -ENOTEMPTY);
	assert_int_equal(mreg_stat(f.reg, "p", member, &e), 0);
	assert_int_equal(mreg_stat(f.reg, "n", member, &e), -ENOTDIR);
	assert_int_equal(mreg_stat(f.reg, "p", "0123", &e), -ENOENT);
	assert_int_equal(mreg_pool_unstore(f.reg, "p", "1"), -ENOENT);
	assert_int_equal(mreg_pool_unstore(f.reg, "nope", member), -ENOENT);
	usleep(2000);
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), 0);
	expect_event("unregister registry/p/%d", me);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_true(e.mtime.tv_sec > p2.mtime.tv_sec ||
	            (e.mtime.tv_sec == p2.mtime.tv_sec && e.mtime.tv_nsec > p2.mtime.tv_nsec));
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), -ENOENT);
	assert_counts(f.reg, 1, 1, 0);
	char *text = NULL;
	assert_int_equal(mreg_pool_render(f.reg, "p", member, &text, NULL), -ENOENT);
	assert_null(text);
	assert_int_equal(mreg_pool_destroy(f.reg, "p"), 0);
	expect_event("rmdir registry/p");
	assert_int_equal(mreg_pool_destroy(f.reg, "p"), -ENOENT);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "v", 1, 0), -ENOENT);
	assert_int_equal(mreg_pool_list(f.reg, "p", 0, collect, &s), -ENOENT);
	assert_counts(f.reg, 1, 0, 0);
	/* The name is free again for a unique registration. */
	assert_int_equal(reg_textf(f.reg, "p", 0, "%d", me), 0);
	assert_counts(f.reg, 2, 0, 0);
	fx_free(&f);
}

static void test_list_order_and_cursor(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid();
	struct seen s;

	assert_int_equal(reg_textf(f.reg, "c", 0, "%d", me), 0);
	assert_int_equal(mreg_pool_create(f.reg, "b"), 0);
	assert_int_equal(reg_textf(f.reg, "a", 0, "%d", me), 0);

	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "c");
	assert_string_equal(s.names[1], "b");
	assert_string_equal(s.names[2], "a");
	assert_int_equal(s.kinds[0], 'n');
	assert_int_equal(s.kinds[1], 'p');
	assert_int_equal(s.kinds[2], 'n');
	assert_true(s.ids[0] < s.ids[1] && s.ids[1] < s.ids[2]);
	uint64_t id_c = s.ids[0], id_b = s.ids[1], id_a = s.ids[2];
	uint64_t cookie_c = s.cookies[0], cookie_a = s.cookies[2];

	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, cookie_c, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "b");
	assert_string_equal(s.names[1], "a");
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, cookie_a, collect, &s), 0);
	assert_int_equal(s.n, 0);

	/* fn stops the walk and its value comes back. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 7);
	assert_int_equal(s.n, 1);

	/* Replacing keeps the id; removing and registering again makes a new
	 * one, at the position freed (so a listing past it does not see it). */
	assert_int_equal(reg_textf(f.reg, "c", 0, "%d again", me), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.ids[0], id_c);
	assert_int_equal(mreg_unregister(f.reg, "c"), 0);
	assert_int_equal(reg_textf(f.reg, "c", 0, "%d", me), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "c");
	assert_string_equal(s.names[1], "b");
	assert_string_equal(s.names[2], "a");
	assert_int_equal(s.cookies[0], cookie_c);
	assert_true(s.ids[0] > id_a);
	assert_int_equal(s.ids[1], id_b);

	/* Members, in cookie order, resuming after a cookie. */
	pid_t k1 = spawn_sleeper(), k2 = spawn_sleeper();
	assert_int_equal(pool_store(f.reg, "b", k2, "2", 0), 0);
	assert_int_equal(pool_store(f.reg, "b", me, "me", 0), 0);
	assert_int_equal(pool_store(f.reg, "b", k1, "1", 0), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_pool_list(f.reg, "b", 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	char want[16];
	snprintf(want, sizeof(want), "%d", k2);
	assert_string_equal(s.names[0], want);
	snprintf(want, sizeof(want), "%d", me);
	assert_string_equal(s.names[1], want);
	snprintf(want, sizeof(want), "%d", k1);
	assert_string_equal(s.names[2], want);
	assert_int_equal(s.kinds[0], 'm');
	assert_true(s.ids[0] < s.ids[1] && s.ids[1] < s.ids[2]);
	uint64_t first = s.ids[0], first_cookie = s.cookies[0];
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_pool_list(f.reg, "b", first_cookie, collect, &s), 0);
	assert_int_equal(s.n, 2);
	snprintf(want, sizeof(want), "%d", me);
	assert_string_equal(s.names[0], want);
	/* Pool members take ids from the same sequence. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_true(first > s.ids[2]);
	kill_and_reap(k1);
	kill_and_reap(k2);
	fx_free(&f);
}

static void test_free_with_live_entries(void **state)
{
	NEED_PIDFD();
	size_t fds = count_fds();
	struct fixture f = fx_new();
	pid_t me = getpid(), k1 = spawn_sleeper(), k2 = spawn_sleeper();

	assert_int_equal(reg_textf(f.reg, "a", 0, "%d value", k1), 0);
	assert_int_equal(reg_textf(f.reg, "b", 0, "%d", me), 0);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	assert_int_equal(mreg_pool_create(f.reg, "q"), 0);
	assert_int_equal(pool_store(f.reg, "p", k1, "x", 0), 0);
	assert_int_equal(pool_store(f.reg, "p", k2, "y", 0), 0);
	assert_int_equal(pool_store(f.reg, "q", k2, "z", 0), 0);
	assert_int_equal(pool_store(f.reg, "q", me, "z", 0), 0);
	size_t events = rec_total();
	mreg_free(f.reg);
	/* Freeing the registry is not its processes exiting. */
	assert_int_equal(rec_total(), events);
	mev_ring_free(f.ring);
	/* Every pidfd, the epoll fd and the eventfd are closed. */
	assert_int_equal(count_fds(), fds);
	mreg_free(NULL);
	/* A registry without a ring works, too. */
	struct mreg *reg = mreg_new(NULL);
	assert_non_null(reg);
	assert_int_equal(reg_textf(reg, "a", 0, "%d", k1), 0);
	kill_and_reap(k1);
	uint64_t t0 = mu_now_ms();
	while (mreg_lookup(reg, "a", NULL, NULL) == 0 && mu_now_ms() - t0 < 1000)
		usleep(5000);
	assert_int_equal(mreg_lookup(reg, "a", NULL, NULL), -ENOENT);
	mreg_free(reg);
	kill_and_reap(k2);
	assert_int_equal(count_fds(), fds);
}

/* Threads register, list and unregister while processes come and go, so
 * that the thread sanitizer sees the watcher race with callers. */
struct stress {
	struct mreg *reg;
	int idx;
};

static void *stress_main(void *arg)
{
	struct stress *st = arg;
	char name[16], text[32];
	snprintf(name, sizeof(name), "t%d", st->idx);
	snprintf(text, sizeof(text), "%d v", (int)getpid());
	for (int i = 0; i < 200; i++) {
		struct seen s = {0};
		struct mreg_entry e;
		if (reg_text(st->reg, name, text, 0) != 0)
			return (void *)1;
		if (mreg_stat(st->reg, name, NULL, &e) != 0)
			return (void *)2;
		mreg_list(st->reg, 0, collect, &s);
		if (mreg_unregister(st->reg, name) != 0)
			return (void *)3;
	}
	return NULL;
}

static void test_concurrent_use(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	struct stress st[4];
	pthread_t t[4];

	assert_int_equal(mreg_pool_create(f.reg, "pool"), 0);
	for (int i = 0; i < 4; i++) {
		st[i] = (struct stress){f.reg, i};
		assert_int_equal(pthread_create(&t[i], NULL, stress_main, &st[i]), 0);
	}
	for (int i = 0; i < 10; i++) {
		pid_t kid = spawn_sleeper();
		char name[16];
		snprintf(name, sizeof(name), "k%d", i);
		assert_int_equal(reg_textf(f.reg, name, 0, "%d", kid), 0);
		assert_int_equal(pool_store(f.reg, "pool", kid, "v", 0), 0);
		kill_and_reap(kid);
	}
	for (int i = 0; i < 4; i++) {
		void *ret = NULL;
		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	uint64_t t0 = mu_now_ms();
	while (list_count(f.reg) > 1 && mu_now_ms() - t0 < 1000)
		usleep(5000);
	assert_int_equal(list_count(f.reg), 1);
	assert_int_equal(mreg_pool_destroy(f.reg, "pool"), 0);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_pool_rules, teardown_kids),
	        cmocka_unit_test_teardown(test_pools, teardown_kids),
	        cmocka_unit_test_teardown(test_list_order_and_cursor, teardown_kids),
	        cmocka_unit_test_teardown(test_free_with_live_entries, teardown_kids),
	        cmocka_unit_test_teardown(test_concurrent_use, teardown_kids),
	};
	probe_pidfd();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
