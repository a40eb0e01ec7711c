/* SPDX-License-Identifier: MIT */
/* The ttl plugin: keys not written for `seconds` are deleted through the
 * chain, as a delete would remove them. Timing tests use seconds = 1 and
 * allow the expiry 0.25 s of slack. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "events.h"
#include "plugin.h"
#include "service.h"

/* A plugin that refuses every delete (to test that ttl neither spins nor
 * loses track when another plugin keeps a key), and counts them. */
static int nodel_attempts;

static int nodel_before(void *state, struct mallafs_store_op *op)
{
	if (op->code == MALLAFS_OP_DELETE) {
		__atomic_add_fetch(&nodel_attempts, 1, __ATOMIC_SEQ_CST);
		mallafs_reason_set(op->why, "deletes are not allowed here");
		return -EPERM;
	}
	return 0;
}

static const struct mallafs_plugin plug_nodel = {
        MALLAFS_PLUGIN_INIT,
        .name = "nodel",
        .store_before = nodel_before,
};

static const struct mallafs_plugin *const test_plugins[] = {
        &mallafs_plugin_base,
        &mallafs_plugin_ttl,
        &plug_nodel,
        NULL,
};

struct fixture {
	struct mplugreg *reg;
	struct mev_ring *ring;
	struct mallafs_svc *svc;
	uint64_t cursor;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s,
	                      .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0)
		;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->reg = mplugreg_new(test_plugins, NULL);
	f->ring = mev_ring_new(4096);
	struct msvc_env env = {.plugins = f->reg, .events = f->ring};
	assert_int_equal(msvc_new(&env, "api", &f->svc), 0);
	f->cursor = mev_ring_next_seq(f->ring);
	nodel_attempts = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	msvc_destroy(f->svc);
	msvc_unref(f->svc);
	mev_ring_free(f->ring);
	mplugreg_free(f->reg);
	free(f);
	return 0;
}

/* A service with the chain `names` (ttl among them) and ttl.seconds set. */
static void start_with(struct fixture *f, const char *const *names, size_t n, const char *seconds)
{
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_setup(f->svc, names, n, NULL, &why), 0);
	if (seconds)
		assert_int_equal(
		        msvc_config_set(f->svc, "ttl", "seconds", seconds, strlen(seconds), &why),
		        0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_RUNNING);
}

static void start_ttl(struct fixture *f, const char *seconds)
{
	const char *names[] = {"ttl"};
	start_with(f, names, 1, seconds);
}

static void put(struct fixture *f, const char *key, const char *value)
{
	assert_int_equal(
	        msvc_store_write(f->svc, key, 0, value, strlen(value), MALLAFS_OPF_REPLACE),
	        (ssize_t)strlen(value));
}

static bool has(struct fixture *f, const char *key)
{
	struct mkv_stat st;
	int r = msvc_store_stat(f->svc, key, &st);
	assert_true(r == 0 || r == -ENOENT);
	return r == 0;
}

/* Waits (up to limit seconds) for key to disappear; returns when it did,
 * relative to since, or -1. */
static double gone_after(struct fixture *f, const char *key, double since, double limit)
{
	while (now_s() < since + limit) {
		if (!has(f, key))
			return now_s() - since;
		sleep_s(0.01);
	}
	return -1;
}

static char *events_of(struct fixture *f)
{
	static char buf[65536];
	size_t n = 0;
	ssize_t r;
	while ((r = mev_ring_read(f->ring, &f->cursor, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return buf;
}

static char *config_value(struct fixture *f)
{
	static char buf[4096];
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(f->svc, &text, &len), 0);
	snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

static void test_settings_listed_with_default(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, NULL);
	assert_non_null(strstr(config_value(f), "[ttl]\nseconds = 0\n"));
}

static void test_key_expires(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	events_of(f);
	double t0 = now_s();
	put(f, "k", "v");
	put(f, "other key", "w");
	double t = gone_after(f, "k", t0, 3);
	assert_true(t >= 0.99);
	assert_true(t <= 1.25);
	assert_true(gone_after(f, "other key", t0, 1.3) >= 0);

	/* Gone as a delete removes it: reads say ENOENT, watchers got a delete. */
	char buf[8];
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), -ENOENT);
	char *ev = events_of(f);
	assert_non_null(strstr(ev, " delete services/api/store/k\n"));
	assert_non_null(strstr(ev, " delete services/api/store/other key\n"));
	/* No error recorded for an expiry. */
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_string_equal(st.last_error, "-");
}

static void test_rewrite_postpones(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	double t0 = now_s();
	put(f, "k", "v1");
	sleep_s(0.6);
	double t1 = now_s();
	put(f, "k", "v2");
	/* Past the first deadline, still there. */
	sleep_s(0.6);
	assert_true(has(f, "k"));
	double t = gone_after(f, "k", t1, 3);
	assert_true(t >= 0.99 && t <= 1.25);
	assert_true(now_s() - t0 >= 1.5);

	/* An append, a truncate and a create count as writes as well. */
	put(f, "a", "x");
	put(f, "b", "x");
	t0 = now_s();
	sleep_s(0.6);
	assert_int_equal(msvc_store_write(f->svc, "a", 0, "y", 1, MALLAFS_OPF_APPEND), 1);
	assert_int_equal(msvc_store_truncate(f->svc, "b", 0), 0);
	assert_int_equal(msvc_store_create(f->svc, "c"), 0);
	sleep_s(0.6);
	assert_true(has(f, "a") && has(f, "b") && has(f, "c"));
	assert_true(gone_after(f, "a", t0, 2) >= 1.5);
	assert_false(has(f, "b"));
	assert_false(has(f, "c"));
}

static void test_zero_disables(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, NULL); /* default 0 */
	put(f, "k", "v");
	sleep_s(1.3);
	assert_true(has(f, "k"));

	/* 1 then 0 live: nothing expires any more. */
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "1", 1, &why), 0);
	put(f, "j", "v");
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "0", 1, &why), 0);
	sleep_s(1.3);
	assert_true(has(f, "j"));
}

static void test_live_change_uses_last_write(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "100");
	struct mallafs_reason why = {{0}};
	double t0 = now_s();
	put(f, "k", "v");
	sleep_s(0.4);
	/* From 100 to 1: the deadline is the last write + 1, not the change + 1. */
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "1\n", 2, &why), 0);
	double t = gone_after(f, "k", t0, 3);
	assert_true(t >= 0.99 && t <= 1.25);
	/* A live change: no restart. */
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 0);

	/* From 0 to 1 on a key written long enough ago: due at once. */
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "0", 1, &why), 0);
	put(f, "old", "v");
	sleep_s(1.2);
	assert_true(has(f, "old"));
	double t1 = now_s();
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "1", 1, &why), 0);
	t = gone_after(f, "old", t1, 1);
	assert_true(t >= 0 && t <= 0.2);

	/* From 1 to 2: keys get more time, counted from their last write. */
	t0 = now_s();
	put(f, "k2", "v");
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "2", 1, &why), 0);
	sleep_s(1.3);
	assert_true(has(f, "k2"));
	t = gone_after(f, "k2", t0, 3);
	assert_true(t >= 1.99 && t <= 2.25);
}

static void test_bad_values(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "5");
	const char *bad[] = {"abc",       "-1", "",   "1.5",  " 1",
	                     "1 ",        "+1", "1s", "0x10", "99999999999999999999",
	                     "3153600001"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mallafs_reason why = {{0}};
		assert_int_equal(
		        msvc_config_set(f->svc, "ttl", "seconds", bad[i], strlen(bad[i]), &why),
		        -EINVAL);
		assert_non_null(strstr(why.text, "ttl: seconds must be"));
		assert_non_null(strstr(config_value(f), "[ttl]\nseconds = 5\n"));
		struct msvc_status st;
		msvc_status(f->svc, &st);
		assert_non_null(strstr(st.last_error, "ttl: seconds must be"));
	}
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "abc", 3, &why), -EINVAL);
	assert_string_equal(why.text, "ttl: seconds must be a non-negative integer, not 'abc'");
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "a\nb", 3, &why), -EINVAL);
	assert_string_equal(why.text, "ttl: seconds must be a non-negative integer, not 'a?b'");
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "3153600001", 10, &why),
	                 -EINVAL);
	assert_string_equal(
	        why.text, "ttl: seconds must be at most 3153600000 (100 years), not '3153600001'");
	/* Rejected in the setup's merge phase too. */
	struct mallafs_svc *other;
	struct msvc_env env = {.plugins = f->reg};
	assert_int_equal(msvc_new(&env, "other", &other), 0);
	struct mallafs_cfg *cfg = NULL;
	int line = 0;
	char err[128];
	assert_int_equal(mcfg_parse_ini("[ttl]\nseconds = x\n", 18, &cfg, &line, err, sizeof(err)),
	                 0);
	const char *names[] = {"ttl"};
	assert_int_equal(msvc_setup(other, names, 1, cfg, &why), -EINVAL);
	mcfg_free(cfg);
	msvc_destroy(other);
	msvc_unref(other);

	/* The largest value and 0 are fine; leading zeros are digits too. */
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "3153600000", 10, &why), 0);
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "007", 3, &why), 0);
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "0", 1, &why), 0);
	/* rm returns the default. */
	assert_int_equal(msvc_config_unset(f->svc, "ttl", "seconds", &why), 0);
	assert_non_null(strstr(config_value(f), "[ttl]\nseconds = 0\n"));
}

static void test_no_expiry_while_inactive(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	put(f, "k", "v");
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	sleep_s(1.4);
	assert_true(has(f, "k"));
	/* Written while stopped: ttl did not see it, but finds it at start. */
	put(f, "while-stopped", "v");
	double t0 = now_s();
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	/* Back: every key gets a whole period from the start. */
	sleep_s(0.6);
	assert_true(has(f, "k"));
	assert_true(has(f, "while-stopped"));
	double t = gone_after(f, "k", t0, 3);
	assert_true(t >= 0.99 && t <= 1.3);
	assert_true(gone_after(f, "while-stopped", t0, 1.3) >= 0);

	/* Paused: plugins keep running, and so does expiry. */
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_PAUSE), 0);
	t0 = now_s();
	put(f, "p", "v");
	t = gone_after(f, "p", t0, 3);
	assert_true(t >= 0.99 && t <= 1.25);
}

static void test_keys_present_at_start(void **state)
{
	struct fixture *f = *state;
	/* Keys written before ttl joins the chain count as written when it
	 * starts, whatever their mtime says. */
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	put(f, "old", "v");
	struct timespec epoch = {.tv_sec = 1};
	assert_int_equal(msvc_store_set_mtime(f->svc, "old", &epoch), 0);
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "1", 1, &why), 0);
	double t0 = now_s();
	assert_int_equal(msvc_add_plugin(f->svc, "ttl", &why), 0);
	sleep_s(0.5);
	assert_true(has(f, "old"));
	double t = gone_after(f, "old", t0, 3);
	assert_true(t >= 0.99 && t <= 1.25);

	/* Removing ttl stops expiry. */
	put(f, "kept", "v");
	assert_int_equal(msvc_del_plugin(f->svc, "ttl", &why), 0);
	sleep_s(1.3);
	assert_true(has(f, "kept"));
}

static void test_rename_inherits_age(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	double t0 = now_s();
	put(f, "a", "v");
	put(f, "victim", "old");
	sleep_s(0.5);
	put(f, "b", "v");
	/* a's age goes with it to "victim", replacing that key's. */
	assert_int_equal(msvc_store_rename(f->svc, "a", "victim"), 0);
	double t = gone_after(f, "victim", t0, 3);
	assert_true(t >= 0.99 && t <= 1.25);
	assert_true(has(f, "b"));
	t = gone_after(f, "b", t0, 3);
	assert_true(t >= 1.49 && t <= 1.75);
	assert_false(has(f, "a"));
}

static void test_delete_then_recreate(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	put(f, "k", "v");
	sleep_s(0.6);
	assert_int_equal(msvc_store_delete(f->svc, "k"), 0);
	double t0 = now_s();
	put(f, "k", "again");
	sleep_s(0.6);
	assert_true(has(f, "k"));
	double t = gone_after(f, "k", t0, 3);
	assert_true(t >= 0.99 && t <= 1.25);
}

static void test_keys_loaded_past_the_chain(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	/* What persist does from above ttl at start: straight into the table. */
	assert_int_equal(mallafs_store_load(f->svc, "loaded", "v", 1), 0);
	double t0 = now_s();
	/* Found by the background scan a second after start, or at the next
	 * operation, then given a whole period. */
	double t = gone_after(f, "loaded", t0, 3.5);
	assert_true(t >= 0.99 && t <= 2.3);

	/* Found at the next store operation, without waiting for a scan. */
	sleep_s(0.2);
	assert_int_equal(mallafs_store_load(f->svc, "loaded2", "v", 1), 0);
	put(f, "trigger", "v");
	t0 = now_s();
	t = gone_after(f, "loaded2", t0, 3.5);
	assert_true(t >= 0.99 && t <= 2.3);
}

static void test_many_keys(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	char key[32];
	double t0 = now_s();
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		put(f, key, "v");
	}
	/* Rewrite every other one half-way through. */
	sleep_s(0.5);
	double t1 = now_s();
	for (int i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "key-%d", i);
		put(f, key, "w");
	}
	assert_true(gone_after(f, "key-4999", t0, 3) >= 0.99);
	sleep_s(0.2);
	for (int i = 1; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_false(has(f, key));
	}
	for (int i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_true(has(f, key));
	}
	assert_true(gone_after(f, "key-4998", t1, 3) >= 0.99);
	sleep_s(0.2);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_false(has(f, key));
	}
}

static void test_refused_delete_does_not_spin(void **state)
{
	struct fixture *f = *state;
	/* nodel above ttl refuses every delete. */
	const char *names[] = {"nodel", "ttl"};
	start_with(f, names, 2, "1");
	put(f, "k", "v");
	sleep_s(2.6);
	/* Tried at 1 s and 2 s, not in a loop. */
	assert_true(has(f, "k"));
	int n = __atomic_load_n(&nodel_attempts, __ATOMIC_SEQ_CST);
	assert_true(n >= 2 && n <= 3);
	/* An expiry is ttl's own, quiet operation: a refusal of it is logged
	 * by ttl and retried, not reported as the user's error. */
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_string_equal(st.last_error, "-");
}

static void test_stop_while_expiring(void **state)
{
	struct fixture *f = *state;
	start_ttl(f, "1");
	char key[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		put(f, key, "v");
	}
	/* Stop, restart, destroy in the middle of the expiry burst: no hang,
	 * no crash, and whatever is left gets a fresh period. */
	sleep_s(1.0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "2", 1, &why), 0);
	assert_int_equal(msvc_config_set(f->svc, "ttl", "seconds", "1", 1, &why), 0);
	sleep_s(0.05);
	msvc_destroy(f->svc);
}

static void test_restart_keeps_working(void **state)
{
	struct fixture *f = *state;
	/* ttl's own setting never restarts; another plugin's restart must leave
	 * ttl running afterwards. */
	start_ttl(f, "1");
	put(f, "k", "v");
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	double t0 = now_s();
	put(f, "j", "v");
	double t = gone_after(f, "j", t0, 3);
	assert_true(t >= 0.99 && t <= 1.25);
	assert_false(has(f, "k"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_settings_listed_with_default, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_key_expires, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rewrite_postpones, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_zero_disables, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_live_change_uses_last_write, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_expiry_while_inactive, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_keys_present_at_start, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rename_inherits_age, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_delete_then_recreate, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_keys_loaded_past_the_chain, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refused_delete_does_not_spin, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stop_while_expiring, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_restart_keeps_working, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
