/* SPDX-License-Identifier: MIT */
/* Unit tests of core/registry.c: registering, rendering and unregistering
 * names, the errors (EEXIST, ESRCH, EPERM, EINVAL), and entries going when
 * their process exits. Pools, listings and concurrency are in
 * test_registry_pools.c; the fixture in registry_fixture.c. They fork real
 * processes; the ownership test needs root and is skipped otherwise. */
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
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "registry.h"
#include "registry_fixture.h"
#include "util.h"

static void test_register_lookup_render_unregister(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid(), pid = 0;
	char *value = NULL;

	assert_int_equal(reg_textf(f.reg, "svc", 0, "%d hello  world\n", me), 0);
	assert_int_equal(mreg_lookup(f.reg, "svc", &pid, &value), 0);
	assert_int_equal(pid, me);
	assert_string_equal(value, "hello  world");
	free(value);
	char want[64];
	snprintf(want, sizeof(want), "%d hello  world\n", me);
	assert_render(f.reg, "svc", want);
	expect_event("register registry/svc %d hello  world", me);

	/* No value, written as "PID", "PID\n" or "PID ". */
	assert_int_equal(reg_textf(f.reg, "bare", 0, "%d", me), 0);
	assert_int_equal(reg_textf(f.reg, "bare2", 0, "%d\n", me), 0);
	assert_int_equal(reg_textf(f.reg, "bare3", 0, "%d \n", me), 0);
	assert_int_equal(mreg_register(f.reg, "bare4", me, "", 0), 0);
	snprintf(want, sizeof(want), "%d\n", me);
	const char *bare[] = {"bare", "bare2", "bare3", "bare4"};
	for (size_t i = 0; i < MU_ARRAY_SIZE(bare); i++) {
		value = (char *)"sentinel";
		assert_int_equal(mreg_lookup(f.reg, bare[i], &pid, &value), 0);
		assert_null(value);
		assert_render(f.reg, bare[i], want);
		expect_event("register registry/%s %d", bare[i], me);
	}

	struct mreg_entry e = {.name = "x"};
	assert_int_equal(mreg_stat(f.reg, "svc", NULL, &e), 0);
	assert_null(e.name);
	assert_int_equal(e.kind, 'n');
	assert_int_equal(e.uid, 0);
	assert_true(e.id > 0);
	assert_true(e.mtime.tv_sec > 0);

	assert_int_equal(mreg_unregister(f.reg, "svc"), 0);
	expect_event("unregister registry/svc");
	assert_int_equal(mreg_lookup(f.reg, "svc", &pid, NULL), -ENOENT);
	char *text = NULL;
	assert_int_equal(mreg_render(f.reg, "svc", &text, NULL), -ENOENT);
	assert_null(text);
	assert_int_equal(mreg_stat(f.reg, "svc", NULL, &e), -ENOENT);
	assert_int_equal(mreg_unregister(f.reg, "svc"), -ENOENT);
	assert_int_equal(mreg_unregister(f.reg, "bad/name"), -ENOENT);
	assert_int_equal(list_count(f.reg), 4);
	fx_free(&f);
}

static void test_reregister_same_pid_replaces(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid();
	struct mreg_entry a, b;
	char want[64];

	assert_int_equal(reg_textf(f.reg, "n", 0, "%d one", me), 0);
	assert_int_equal(mreg_stat(f.reg, "n", NULL, &a), 0);
	assert_int_equal(reg_textf(f.reg, "n", 0, "%d two", me), 0);
	assert_int_equal(mreg_stat(f.reg, "n", NULL, &b), 0);
	assert_int_equal(a.id, b.id);
	snprintf(want, sizeof(want), "%d two\n", me);
	assert_render(f.reg, "n", want);
	/* Back to no value. */
	assert_int_equal(mreg_register(f.reg, "n", me, NULL, 0), 0);
	snprintf(want, sizeof(want), "%d\n", me);
	assert_render(f.reg, "n", want);
	assert_int_equal(list_count(f.reg), 1);
	expect_event("register registry/n %d one", me);
	expect_event("register registry/n %d two", me);
	expect_event("register registry/n %d", me);
	fx_free(&f);
}

static void test_eexist_for_another_live_pid(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t kid = spawn_sleeper(), me = getpid(), pid = 0;
	char *value = NULL;

	assert_int_equal(reg_textf(f.reg, "x", 0, "%d kid", kid), 0);
	size_t before = rec_total();
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d me", me), -EEXIST);
	assert_int_equal(mreg_register(f.reg, "x", me, NULL, 0), -EEXIST);
	assert_int_equal(rec_total(), before);
	assert_int_equal(mreg_lookup(f.reg, "x", &pid, &value), 0);
	assert_int_equal(pid, kid);
	assert_string_equal(value, "kid");
	free(value);

	/* Error order: EINVAL, ESRCH, EPERM, then EEXIST. */
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", me), -EPERM);
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", missing_pid()), -ESRCH);
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%dz", missing_pid()), -EINVAL);
	assert_int_equal(reg_textf(f.reg, "bad name", 12345, "%d", missing_pid()), -EINVAL);
	assert_int_equal(list_count(f.reg), 1);
	kill_and_reap(kid);
	fx_free(&f);
}

static void test_name_freed_when_holder_exits(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t kid = spawn_sleeper(), me = getpid(), pid = 0;
	struct mreg_entry a, b;

	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", kid), 0);
	assert_int_equal(mreg_stat(f.reg, "x", NULL, &a), 0);
	kill_and_reap(kid);
	/* No waiting: whether or not the watcher has run, the name is free. */
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d mine", me), 0);
	assert_int_equal(mreg_lookup(f.reg, "x", &pid, NULL), 0);
	assert_int_equal(pid, me);
	assert_int_equal(mreg_stat(f.reg, "x", NULL, &b), 0);
	assert_true(b.id > a.id);
	expect_event("unregister registry/x exit");
	expect_event("register registry/x %d mine", me);

	/* A pool may take a name whose holder has exited, too. */
	kid = spawn_sleeper();
	assert_int_equal(reg_textf(f.reg, "y", 0, "%d", kid), 0);
	assert_int_equal(mreg_pool_create(f.reg, "y"), -EEXIST);
	kill_and_reap(kid);
	assert_int_equal(mreg_pool_create(f.reg, "y"), 0);
	expect_event("unregister registry/y exit");
	fx_free(&f);
}

static void *park(void *arg)
{
	pthread_barrier_t *b = arg;
	pthread_barrier_wait(b); /* tid is known */
	pthread_barrier_wait(b); /* test done */
	return NULL;
}

static pid_t park_tid;

static void *park_tid_main(void *arg)
{
	park_tid = (pid_t)syscall(SYS_gettid);
	return park(arg);
}

static void test_esrch(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	size_t before = rec_total();

	/* Above pid_max: no process can have it. */
	pid_t none = missing_pid();
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", none), -ESRCH);
	assert_int_equal(mreg_register(f.reg, "x", none, "v", 0), -ESRCH);
	assert_int_equal(pool_store(f.reg, "p", none, "v", 0), -ESRCH);

	/* A reaped child. */
	pid_t gone = spawn_sleeper();
	kill_and_reap(gone);
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", gone), -ESRCH);
	assert_int_equal(pool_store(f.reg, "p", gone, "v", 0), -ESRCH);

	/* A zombie is not a live process. */
	pid_t zombie = spawn_zombie();
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", zombie), -ESRCH);
	assert_int_equal(pool_store(f.reg, "p", zombie, "v", 0), -ESRCH);
	assert_int_equal(waitpid(zombie, NULL, 0), zombie);
	reaped(zombie);

	/* A thread that does not lead its process is no process. */
	pthread_barrier_t b;
	pthread_t t;
	pthread_barrier_init(&b, NULL, 2);
	assert_int_equal(pthread_create(&t, NULL, park_tid_main, &b), 0);
	pthread_barrier_wait(&b);
	assert_int_not_equal(park_tid, getpid());
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", park_tid), -ESRCH);
	pthread_barrier_wait(&b);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&b);

	/* Nothing was left behind. */
	assert_int_equal(mreg_lookup(f.reg, "x", NULL, NULL), -ENOENT);
	struct seen s = {0};
	assert_int_equal(mreg_pool_list(f.reg, "p", 0, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(list_count(f.reg), 1);
	assert_int_equal(rec_total(), before);
	fx_free(&f);
}

static void test_eperm(void **state)
{
	NEED_PIDFD();
	if (geteuid() != 0)
		skip();
	struct fixture f = fx_new();
	pid_t me = getpid();
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	size_t before = rec_total();
	/* Root's process, written by uid 12345. */
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", me), -EPERM);
	assert_int_equal(pool_store(f.reg, "p", me, "v", 12345), -EPERM);
	assert_int_equal(mreg_lookup(f.reg, "x", NULL, NULL), -ENOENT);
	assert_int_equal(rec_total(), before);

	/* The owner is the effective uid: a process with real uid 23456 and
	 * effective uid 12345 belongs to 12345. */
	pid_t kid = spawn_as(23456, 12345);
	assert_int_equal(reg_textf(f.reg, "x", 23456, "%d", kid), -EPERM);
	assert_int_equal(reg_textf(f.reg, "x", 54321, "%d", kid), -EPERM);
	assert_int_equal(pool_store(f.reg, "p", kid, "v", 23456), -EPERM);
	assert_int_equal(mreg_lookup(f.reg, "x", NULL, NULL), -ENOENT);
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", kid), 0);
	assert_int_equal(pool_store(f.reg, "p", kid, "v", 12345), 0);
	/* Root may register anyone's process. */
	assert_int_equal(reg_textf(f.reg, "y", 0, "%d", kid), 0);

	struct mreg_entry e;
	assert_int_equal(mreg_stat(f.reg, "x", NULL, &e), 0);
	assert_int_equal(e.uid, 12345);
	char member[16];
	snprintf(member, sizeof(member), "%d", kid);
	assert_int_equal(mreg_stat(f.reg, "p", member, &e), 0);
	assert_int_equal(e.kind, 'm');
	assert_int_equal(e.uid, 12345);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_int_equal(e.kind, 'p');
	assert_int_equal(e.uid, 0);
	kill_and_reap(kid);
	fx_free(&f);
}

static void test_einval(void **state)
{
	struct fixture f = fx_new();
	pid_t me = getpid();
	char text[64];

	const char *texts[] = {
	        "abc", "-1",   "0",   "00",          "12x",        "+5",
	        " 5",  "",     "\n",  "5\n\n",       "5\t",        "5 a\nb",
	        "5\r", "0x10", "1e3", "99999999999", "2147483648", "4294967297",
	};
	for (size_t i = 0; i < MU_ARRAY_SIZE(texts); i++) {
		if (reg_text(f.reg, "x", texts[i], 0) != -EINVAL)
			fail_msg("text \"%s\" was not refused with EINVAL", texts[i]);
	}
	/* A NUL in the value. */
	int n = snprintf(text, sizeof(text), "%d a", me);
	text[n++] = '\0';
	text[n++] = 'b';
	assert_int_equal(mreg_register_text(f.reg, "x", text, (size_t)n, 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", 0, NULL, 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", -1, NULL, 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", me, "a\nb", 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", me, "a\n", 0), -EINVAL);

	char longname[MU_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	const char *names[] = {"", ".", "..", "a/b", "a b", "caf\xc3\xa9", "a\nb", "a:b", longname};
	snprintf(text, sizeof(text), "%d", me);
	for (size_t i = 0; i < MU_ARRAY_SIZE(names); i++) {
		if (reg_text(f.reg, names[i], text, 0) != -EINVAL)
			fail_msg("name \"%s\" was not refused with EINVAL", names[i]);
		if (mreg_pool_create(f.reg, names[i]) != -EINVAL)
			fail_msg("pool \"%s\" was not refused with EINVAL", names[i]);
	}
	assert_int_equal(mreg_register(f.reg, NULL, me, NULL, 0), -EINVAL);
	assert_int_equal(list_count(f.reg), 0);
	assert_int_equal(rec_total(), 0);
	if (!have_pidfd)
		goto out;

	/* The longest valid name is fine. */
	longname[MU_NAME_MAX] = '\0';
	assert_int_equal(reg_text(f.reg, longname, text, 0), 0);
	assert_int_equal(mreg_unregister(f.reg, longname), 0);

	/* Leading zeros are still a decimal PID in the written text. */
	assert_int_equal(reg_textf(f.reg, "z", 0, "00%d", me), 0);
	pid_t pid = 0;
	assert_int_equal(mreg_lookup(f.reg, "z", &pid, NULL), 0);
	assert_int_equal(pid, me);
	assert_int_equal(mreg_unregister(f.reg, "z"), 0);
	assert_int_equal(list_count(f.reg), 0);
	assert_int_equal(rec_total(), 4);
out:
	fx_free(&f);
}

/* mreg_counts: names, pools and members, as the root's metrics shows them. */
static void test_exit_removes_every_entry(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	uint64_t cursor = mev_ring_next_seq(f.ring);
	size_t fds = count_fds();

	pid_t kid = spawn_sleeper();
	assert_int_equal(mreg_pool_create(f.reg, "p1"), 0);
	assert_int_equal(mreg_pool_create(f.reg, "p2"), 0);
	assert_int_equal(reg_textf(f.reg, "worker", 0, "%d w", kid), 0);
	assert_int_equal(pool_store(f.reg, "p1", kid, "one\n", 0), 0);
	assert_int_equal(pool_store(f.reg, "p2", kid, "two", 0), 0);
	/* One pidfd for the three entries. */
	assert_int_equal(count_fds(), fds + FDS_PER_PIDFD);
	assert_counts(f.reg, 1, 2, 2);
	char member[16];
	snprintf(member, sizeof(member), "%d", kid);
	assert_pool_render(f.reg, "p1", member, "one\n");
	assert_pool_render(f.reg, "p2", member, "two\n");

	uint64_t t0 = mu_now_ms();
	assert_int_equal(kill(kid, SIGKILL), 0);
	assert_int_equal(waitpid(kid, NULL, 0), kid);
	reaped(kid);
	bool gone = false;
	while (mu_now_ms() - t0 <= 100) {
		char *text = NULL;
		if (mreg_lookup(f.reg, "worker", NULL, NULL) == -ENOENT &&
		    mreg_pool_render(f.reg, "p1", member, &text, NULL) == -ENOENT &&
		    mreg_pool_render(f.reg, "p2", member, &text, NULL) == -ENOENT) {
			gone = true;
			break;
		}
		free(text);
		usleep(5000);
	}
	if (!gone)
		fail_msg("entries of an exited process still there after 100 ms");
	expect_event("unregister registry/worker exit");
	expect_event("unregister registry/p1/%d exit", kid);
	expect_event("unregister registry/p2/%d exit", kid);

	/* The feed says the same. */
	char buf[4096], line[128];
	ssize_t n = mev_ring_read(f.ring, &cursor, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	snprintf(line, sizeof(line), " unregister registry/p2/%d exit\n", kid);
	assert_non_null(strstr(buf, line));
	assert_non_null(strstr(buf, " unregister registry/worker exit\n"));
	snprintf(line, sizeof(line), " register registry/p1/%d one\n", kid);
	assert_non_null(strstr(buf, line));

	/* The pidfd is closed, the pools stay, empty. */
	assert_int_equal(count_fds(), fds);
	assert_counts(f.reg, 0, 2, 0);
	assert_int_equal(mreg_pool_destroy(f.reg, "p1"), 0);
	assert_int_equal(mreg_pool_destroy(f.reg, "p2"), 0);
	assert_counts(f.reg, 0, 0, 0);
	assert_int_equal(list_count(f.reg), 0);
	fx_free(&f);
}

/* What pools do without any process. */

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_register_lookup_render_unregister, teardown_kids),
	        cmocka_unit_test_teardown(test_reregister_same_pid_replaces, teardown_kids),
	        cmocka_unit_test_teardown(test_eexist_for_another_live_pid, teardown_kids),
	        cmocka_unit_test_teardown(test_name_freed_when_holder_exits, teardown_kids),
	        cmocka_unit_test_teardown(test_esrch, teardown_kids),
	        cmocka_unit_test_teardown(test_eperm, teardown_kids),
	        cmocka_unit_test_teardown(test_einval, teardown_kids),
	        cmocka_unit_test_teardown(test_exit_removes_every_entry, teardown_kids),
	};
	probe_pidfd();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
