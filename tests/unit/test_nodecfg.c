/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock_fixture.h"
#include "events.h"
#include "nodecfg.h"

struct fixture {
	struct mev_ring *ring;
	struct mnodecfg *nc;
	uint64_t cursor;
	char lines[8192];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->ring = mev_ring_new(256);
	f->nc = mnodecfg_new(f->ring);
	if (!f->ring || !f->nc)
		return -1;
	f->cursor = mev_ring_next_seq(f->ring);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mnodecfg_free(f->nc);
	mev_ring_free(f->ring);
	free(f);
	return 0;
}

/* The event lines emitted since the last call. */
static const char *events(struct fixture *f)
{
	ssize_t n = mev_ring_read(f->ring, &f->cursor, f->lines, sizeof(f->lines) - 1);
	assert_true(n >= 0);
	f->lines[n] = '\0';
	return f->lines;
}

static void assert_value(struct mnodecfg *nc, const char *app, const char *key, const void *want,
                         size_t want_len)
{
	char buf[256];
	assert_true(want_len < sizeof(buf));
	assert_int_equal(mnodecfg_read(nc, app, key, 0, buf, sizeof(buf)), want_len);
	assert_memory_equal(buf, want, want_len);
	struct mkv_stat st;
	assert_int_equal(mnodecfg_stat(nc, app, key, &st), 0);
	assert_int_equal(st.size, want_len);
}

struct collect {
	char names[2048];
	uint64_t ids[32];
	uint64_t cookies[32];
	uint64_t sizes[32];
	size_t n;
};

static int collect_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	struct collect *c = arg;
	strcat(c->names, name);
	strcat(c->names, ",");
	if (c->n < 32) {
		c->ids[c->n] = st->id;
		c->cookies[c->n] = st->cookie;
		c->sizes[c->n] = st->size;
	}
	c->n++;
	return 0;
}

static void test_app_create_destroy(void **state)
{
	struct fixture *f = *state;
	struct mnodecfg *nc = f->nc;
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name));
	long_name[256] = '\0';

	static const char *const bad[] = {"",    ".",           "..",   "a/b",
	                                  "a b", "caf\xc3\xa9", "x\ny", "a:b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mnodecfg_app_create(nc, bad[i]), -EINVAL);
	assert_int_equal(mnodecfg_app_create(nc, NULL), -EINVAL);
	assert_int_equal(mnodecfg_app_create(nc, long_name), -EINVAL);
	long_name[255] = '\0';
	assert_int_equal(mnodecfg_app_create(nc, long_name), 0);
	assert_int_equal(mnodecfg_app_destroy(nc, long_name), 0);
	assert_int_equal(strlen(events(f)), 2 * (2 + 6 + 7 + 255 + 1));

	assert_int_equal(mnodecfg_app_create(nc, "my_app-1.0"), 0);
	assert_int_equal(mnodecfg_app_create(nc, "my_app-1.0"), -EEXIST);
	assert_int_equal(mnodecfg_app_stat(nc, "my_app-1.0", NULL), 0);
	assert_int_equal(mnodecfg_app_stat(nc, "nope", NULL), -ENOENT);
	assert_int_equal(mnodecfg_app_destroy(nc, "nope"), -ENOENT);
	assert_int_equal(mnodecfg_app_destroy(nc, NULL), -ENOENT);

	assert_int_equal(mnodecfg_write(nc, "my_app-1.0", "k", 0, "v", 1, 0), 1);
	assert_int_equal(mnodecfg_app_destroy(nc, "my_app-1.0"), -ENOTEMPTY);
	assert_value(nc, "my_app-1.0", "k", "v", 1);
	assert_int_equal(mnodecfg_delete(nc, "my_app-1.0", "k"), 0);
	assert_int_equal(mnodecfg_app_destroy(nc, "my_app-1.0"), 0);
	assert_int_equal(mnodecfg_app_stat(nc, "my_app-1.0", NULL), -ENOENT);
	assert_int_equal(mnodecfg_app_destroy(nc, "my_app-1.0"), -ENOENT);

	/* Refused operations emit nothing. */
	assert_string_equal(events(f), "3 mkdir config/my_app-1.0\n"
	                               "4 create config/my_app-1.0/k\n"
	                               "5 write config/my_app-1.0/k 1\n"
	                               "6 delete config/my_app-1.0/k\n"
	                               "7 rmdir config/my_app-1.0\n");
}

static void test_app_list_stat(void **state)
{
	struct fixture *f = *state;
	struct mnodecfg *nc = f->nc;
	struct collect c;
	struct mkv_stat st, st2;

	assert_int_equal(mnodecfg_app_create(nc, "a"), 0);
	assert_int_equal(mnodecfg_app_create(nc, "b"), 0);
	assert_int_equal(mnodecfg_app_create(nc, "c"), 0);
	assert_int_equal(mnodecfg_create(nc, "b", "k1"), 0);
	assert_int_equal(mnodecfg_create(nc, "b", "k2"), 0);

	memset(&c, 0, sizeof(c));
	assert_int_equal(mnodecfg_app_list(nc, 0, collect_cb, &c), 0);
	assert_string_equal(c.names, "a,b,c,");
	assert_true(c.ids[0] != c.ids[1] && c.ids[1] != c.ids[2] && c.ids[0] != c.ids[2]);
	assert_int_equal(c.sizes[0], 0);
	assert_int_equal(c.sizes[1], 2);
	assert_int_equal(c.sizes[2], 0);
	uint64_t id_a = c.ids[0], cookie_a = c.cookies[0], cookie_b = c.cookies[1];

	/* A listing resumes after the app whose cookie it is given. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(mnodecfg_app_list(nc, cookie_a, collect_cb, &c), 0);
	assert_string_equal(c.names, "b,c,");

	/* Ids are never reused: a re-created app gets a new one, at the
	 * lowest free place of the listing (a's own). */
	assert_int_equal(mnodecfg_app_destroy(nc, "a"), 0);
	assert_int_equal(mnodecfg_app_create(nc, "a"), 0);
	assert_int_equal(mnodecfg_app_stat(nc, "a", &st), 0);
	assert_true(st.id != id_a && st.id != c.ids[0] && st.id != c.ids[1]);
	assert_int_equal(st.cookie, cookie_a);
	assert_int_equal(st.size, 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(mnodecfg_app_list(nc, cookie_b, collect_cb, &c), 0);
	assert_string_equal(c.names, "c,");

	/* The app's times move when its key set changes, not when a value does. */
	assert_int_equal(mnodecfg_app_stat(nc, "b", &st), 0);
	assert_int_equal(st.size, 2);
	tick();
	assert_int_equal(mnodecfg_write(nc, "b", "k1", 0, "x", 1, 0), 1);
	assert_int_equal(mnodecfg_app_stat(nc, "b", &st2), 0);
	assert_int_equal(ts_cmp(st2.mtime, st.mtime), 0);
	assert_int_equal(mnodecfg_create(nc, "b", "k3"), 0);
	assert_int_equal(mnodecfg_app_stat(nc, "b", &st2), 0);
	assert_true(ts_cmp(st2.mtime, st.mtime) > 0);
	assert_int_equal(st2.size, 3);
	assert_int_equal(st2.id, st.id);
	st = st2;
	tick();
	assert_int_equal(mnodecfg_delete(nc, "b", "k3"), 0);
	assert_int_equal(mnodecfg_app_stat(nc, "b", &st2), 0);
	assert_true(ts_cmp(st2.mtime, st.mtime) > 0);
	assert_int_equal(st2.size, 2);
	st = st2;
	tick();
	assert_int_equal(mnodecfg_rename(nc, "b", "k1", "c", "k1"), 0);
	assert_int_equal(mnodecfg_app_stat(nc, "b", &st2), 0);
	assert_true(ts_cmp(st2.mtime, st.mtime) > 0);
	assert_int_equal(st2.size, 1);
	assert_int_equal(mnodecfg_app_stat(nc, "c", &st2), 0);
	assert_true(ts_cmp(st2.mtime, st.mtime) > 0);
	assert_int_equal(st2.size, 1);
}

static void test_key_errors(void **state)
{
	struct fixture *f = *state;
	struct mnodecfg *nc = f->nc;
	char buf[8];
	char long_key[300];
	memset(long_key, 'k', sizeof(long_key));
	long_key[256] = '\0';

	assert_int_equal(mnodecfg_app_create(nc, "app"), 0);
	events(f);

	static const char *const bad[] = {"", ".", "..", "a/b", "/"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *k = bad[i];
		assert_int_equal(mnodecfg_write(nc, "app", k, 0, "v", 1, 0), -EINVAL);
		assert_int_equal(mnodecfg_create(nc, "app", k), -EINVAL);
		assert_int_equal(mnodecfg_stat(nc, "app", k, NULL), -EINVAL);
		assert_int_equal(mnodecfg_read(nc, "app", k, 0, buf, sizeof(buf)), -EINVAL);
		assert_int_equal(mnodecfg_truncate(nc, "app", k, 0), -EINVAL);
		assert_int_equal(mnodecfg_delete(nc, "app", k), -EINVAL);
		assert_int_equal(mnodecfg_rename(nc, "app", k, "app", "ok"), -EINVAL);
		assert_int_equal(mnodecfg_rename(nc, "app", "ok", "app", k), -EINVAL);
	}
	assert_int_equal(mnodecfg_write(nc, "app", long_key, 0, "v", 1, 0), -EINVAL);
	assert_int_equal(mnodecfg_write(nc, "app", NULL, 0, "v", 1, 0), -EINVAL);

	/* Missing app. */
	assert_int_equal(mnodecfg_write(nc, "none", "k", 0, "v", 1, 0), -ENOENT);
	assert_int_equal(mnodecfg_create(nc, "none", "k"), -ENOENT);
	assert_int_equal(mnodecfg_stat(nc, "none", "k", NULL), -ENOENT);
	assert_int_equal(mnodecfg_read(nc, "none", "k", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mnodecfg_truncate(nc, "none", "k", 0), -ENOENT);
	assert_int_equal(mnodecfg_delete(nc, "none", "k"), -ENOENT);
	assert_int_equal(mnodecfg_list(nc, "none", 0, collect_cb, NULL), -ENOENT);

	/* Missing key. */
	assert_int_equal(mnodecfg_stat(nc, "app", "k", NULL), -ENOENT);
	assert_int_equal(mnodecfg_read(nc, "app", "k", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mnodecfg_truncate(nc, "app", "k", 0), -ENOENT);
	assert_int_equal(mnodecfg_delete(nc, "app", "k"), -ENOENT);
	assert_int_equal(mnodecfg_rename(nc, "app", "k", "app", "j"), -ENOENT);
	assert_int_equal(mnodecfg_rename(nc, "app", "k", "app", "k"), -ENOENT);

	/* EEXIST, EFBIG. */
	assert_int_equal(mnodecfg_create(nc, "app", "k"), 0);
	assert_int_equal(mnodecfg_create(nc, "app", "k"), -EEXIST);
	assert_int_equal(mnodecfg_write(nc, "app", "k", 0, "val", 3, 0), 3);
	assert_int_equal(mnodecfg_write(nc, "app", "k", MKV_MAX_VALUE, "x", 1, 0), -EFBIG);
	assert_int_equal(mnodecfg_truncate(nc, "app", "k", MKV_MAX_VALUE + 1), -EFBIG);
	assert_value(nc, "app", "k", "val", 3);

	/* Any valid file name is a key. */
	assert_int_equal(mnodecfg_write(nc, "app", "a b:c\xc3\xa9", 0, "x", 1, 0), 1);
	long_key[255] = '\0';
	assert_int_equal(mnodecfg_create(nc, "app", long_key), 0);

	char want[1024];
	snprintf(want, sizeof(want),
	         "2 create config/app/k\n"
	         "3 write config/app/k 3\n"
	         "4 create config/app/a b:c\xc3\xa9\n"
	         "5 write config/app/a b:c\xc3\xa9 1\n"
	         "6 create config/app/%s\n",
	         long_key);
	assert_string_equal(events(f), want);
}

static void test_values_and_events(void **state)
{
	struct fixture *f = *state;
	struct mnodecfg *nc = f->nc;
	char buf[64];

	assert_int_equal(mnodecfg_app_create(nc, "my_app"), 0);
	assert_int_equal(mnodecfg_write(nc, "my_app", "api_key", 0, "secret\0key\n", 11, 0), 11);
	assert_value(nc, "my_app", "api_key", "secret\0key\n", 11);
	assert_int_equal(mnodecfg_read(nc, "my_app", "api_key", 7, buf, 2), 2);
	assert_memory_equal(buf, "ke", 2);
	assert_int_equal(mnodecfg_read(nc, "my_app", "api_key", 11, buf, sizeof(buf)), 0);

	assert_int_equal(mnodecfg_write(nc, "my_app", "api_key", 0, "!", 1, MKV_APPEND), 1);
	assert_int_equal(mnodecfg_write(nc, "my_app", "api_key", 0, "new", 3, MKV_REPLACE), 3);
	assert_int_equal(mnodecfg_write(nc, "my_app", "api_key", 5, "Z", 1, 0), 1);
	assert_value(nc, "my_app", "api_key", "new\0\0Z", 6);
	assert_int_equal(mnodecfg_truncate(nc, "my_app", "api_key", 2), 0);
	assert_value(nc, "my_app", "api_key", "ne", 2);
	assert_int_equal(mnodecfg_truncate(nc, "my_app", "api_key", 4), 0);
	assert_value(nc, "my_app", "api_key", "ne\0\0", 4);
	/* An empty write to an existing key changes nothing and says nothing. */
	assert_int_equal(mnodecfg_write(nc, "my_app", "api_key", 0, "", 0, 0), 0);
	/* An empty write to a new key creates it. */
	assert_int_equal(mnodecfg_write(nc, "my_app", "empty", 0, "", 0, 0), 0);
	assert_value(nc, "my_app", "empty", "", 0);
	assert_int_equal(mnodecfg_create(nc, "my_app", "c"), 0);
	assert_int_equal(mnodecfg_write(nc, "my_app", "c", 0, "", 0, MKV_REPLACE), 0);
	assert_int_equal(mnodecfg_delete(nc, "my_app", "c"), 0);
	/* A newline in a key keeps the feed's lines whole. */
	assert_int_equal(mnodecfg_write(nc, "my_app", "a\nb", 0, "1", 1, 0), 1);

	assert_string_equal(events(f), "1 mkdir config/my_app\n"
	                               "2 create config/my_app/api_key\n"
	                               "3 write config/my_app/api_key 11\n"
	                               "4 write config/my_app/api_key 12\n"
	                               "5 write config/my_app/api_key 3\n"
	                               "6 write config/my_app/api_key 6\n"
	                               "7 write config/my_app/api_key 2\n"
	                               "8 write config/my_app/api_key 4\n"
	                               "9 create config/my_app/empty\n"
	                               "10 create config/my_app/c\n"
	                               "11 write config/my_app/c 0\n"
	                               "12 delete config/my_app/c\n"
	                               "13 create config/my_app/a b\n"
	                               "14 write config/my_app/a b 1\n");

	struct collect c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(mnodecfg_list(nc, "my_app", 0, collect_cb, &c), 0);
	assert_string_equal(c.names, "api_key,empty,a\nb,");
	assert_int_equal(c.sizes[0], 4);
	assert_int_equal(c.sizes[1], 0);
	uint64_t first = c.cookies[0];
	memset(&c, 0, sizeof(c));
	assert_int_equal(mnodecfg_list(nc, "my_app", first, collect_cb, &c), 0);
	assert_string_equal(c.names, "empty,a\nb,");
}

static void test_rename(void **state)
{
	struct fixture *f = *state;
	struct mnodecfg *nc = f->nc;

	assert_int_equal(mnodecfg_app_create(nc, "a"), 0);
	assert_int_equal(mnodecfg_app_create(nc, "b"), 0);
	assert_int_equal(mnodecfg_write(nc, "a", "x", 0, "X\0x", 3, 0), 3);
	assert_int_equal(mnodecfg_write(nc, "a", "y", 0, "Y", 1, 0), 1);
	assert_int_equal(mnodecfg_write(nc, "b", "t", 0, "old", 3, 0), 3);
	events(f);

	/* Within an app. */
	struct mkv_stat before, after;
	assert_int_equal(mnodecfg_stat(nc, "a", "x", &before), 0);
	assert_int_equal(mnodecfg_rename(nc, "a", "x", "a", "x2"), 0);
	assert_int_equal(mnodecfg_stat(nc, "a", "x", NULL), -ENOENT);
	assert_value(nc, "a", "x2", "X\0x", 3);
	assert_int_equal(mnodecfg_stat(nc, "a", "x2", &after), 0);
	assert_true(after.id == before.id); /* as mv keeps a file's inode */

	/* Across apps, replacing the target. */
	assert_int_equal(mnodecfg_rename(nc, "a", "x2", "b", "t"), 0);
	assert_int_equal(mnodecfg_stat(nc, "a", "x2", NULL), -ENOENT);
	assert_value(nc, "b", "t", "X\0x", 3);
	struct mkv_stat sa, sb;
	assert_int_equal(mnodecfg_app_stat(nc, "a", &sa), 0);
	assert_int_equal(mnodecfg_app_stat(nc, "b", &sb), 0);
	assert_int_equal(sa.size, 1);
	assert_int_equal(sb.size, 1);

	/* Onto itself: success, nothing emitted. */
	assert_int_equal(mnodecfg_rename(nc, "b", "t", "b", "t"), 0);
	assert_value(nc, "b", "t", "X\0x", 3);

	/* Missing target app: refused, nothing moved. */
	assert_int_equal(mnodecfg_rename(nc, "a", "y", "zz", "y"), -ENOENT);
	assert_int_equal(mnodecfg_rename(nc, "zz", "y", "a", "y"), -ENOENT);
	assert_value(nc, "a", "y", "Y", 1);
	/* An invalid target app name is just absent. */
	assert_int_equal(mnodecfg_rename(nc, "a", "y", "../b", "y"), -ENOENT);

	/* Into an app, then rmdir of the emptied one. */
	assert_int_equal(mnodecfg_rename(nc, "a", "y", "b", "y"), 0);
	assert_int_equal(mnodecfg_app_destroy(nc, "a"), 0);
	assert_int_equal(mnodecfg_app_destroy(nc, "b"), -ENOTEMPTY);

	assert_string_equal(events(f), "9 rename config/a/x config/a/x2\n"
	                               "10 rename config/a/x2 config/b/t\n"
	                               "11 rename config/a/y config/b/y\n"
	                               "12 rmdir config/a\n");
}

static void test_no_ring(void **state)
{
	struct mnodecfg *nc = mnodecfg_new(NULL);
	assert_non_null(nc);
	assert_int_equal(mnodecfg_app_create(nc, "a"), 0);
	assert_int_equal(mnodecfg_app_create(nc, "b"), 0);
	assert_int_equal(mnodecfg_write(nc, "a", "k", 0, "v", 1, 0), 1);
	assert_int_equal(mnodecfg_truncate(nc, "a", "k", 3), 0);
	assert_int_equal(mnodecfg_rename(nc, "a", "k", "b", "k"), 0);
	assert_value(nc, "b", "k", "v\0\0", 3);
	assert_int_equal(mnodecfg_create(nc, "a", "left"), 0);
	/* Freed with apps and keys still in it. */
	mnodecfg_free(nc);
	mnodecfg_free(NULL);
}

enum { THREADS = 4, ROUNDS = 2000 };

struct worker {
	struct mnodecfg *nc;
	int id;
};

static void *worker(void *p)
{
	struct worker *w = p;
	char app[16], buf[16];
	snprintf(app, sizeof(app), "app%d", w->id);
	for (int i = 0; i < ROUNDS; i++) {
		if (mnodecfg_write(w->nc, app, "log", 0, "ab", 2, MKV_APPEND) != 2)
			return (void *)1;
		/* Another thread's app, read concurrently. */
		char other[16];
		snprintf(other, sizeof(other), "app%d", (w->id + 1) % THREADS);
		ssize_t n = mnodecfg_read(w->nc, other, "log", 0, buf, sizeof(buf));
		if (n < 0 && n != -ENOENT)
			return (void *)2;
		if (n > 0 && memcmp(buf, "abababababababab", (size_t)n) != 0)
			return (void *)3;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	pthread_t th[THREADS];
	struct worker w[THREADS];
	char app[16];

	for (int i = 0; i < THREADS; i++) {
		snprintf(app, sizeof(app), "app%d", i);
		assert_int_equal(mnodecfg_app_create(f->nc, app), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){f->nc, i};
		assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	for (int i = 0; i < THREADS; i++) {
		struct mkv_stat st;
		snprintf(app, sizeof(app), "app%d", i);
		assert_int_equal(mnodecfg_stat(f->nc, app, "log", &st), 0);
		assert_int_equal(st.size, 2 * ROUNDS);
	}
	/* THREADS mkdirs, then per thread one create and ROUNDS writes. */
	assert_int_equal(mev_ring_next_seq(f->ring), 1 + THREADS + THREADS * (1 + ROUNDS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_app_create_destroy, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_app_list_stat, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_key_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_values_and_events, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
	        cmocka_unit_test(test_no_ring),
	        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
