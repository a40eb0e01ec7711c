/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock_fixture.h"
#include "kv.h"

static int setup(void **state)
{
	*state = mkv_new();
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	mkv_free(*state);
	return 0;
}

/* The whole value must be exactly want[0..want_len). */
static void assert_value(struct mkv *kv, const char *key, const void *want, size_t want_len)
{
	char *v = NULL;
	size_t len = 12345;
	assert_int_equal(mkv_get(kv, key, &v, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(v, want, want_len);
	assert_int_equal(v[len], '\0');
	free(v);
	struct mkv_stat st;
	assert_int_equal(mkv_stat(kv, key, &st), 0);
	assert_int_equal(st.size, want_len);
}

static uint64_t id_of(struct mkv *kv, const char *key)
{
	struct mkv_stat st;
	assert_int_equal(mkv_stat(kv, key, &st), 0);
	return st.id;
}

/* Collects listed keys into one string "a,b,c," and their ids. */
struct collect {
	char keys[4096];
	uint64_t ids[64];
	uint64_t cookies[64];
	size_t n;
	size_t stop_after; /* 0: never */
};

static int collect_cb(const char *key, const struct mkv_stat *st, void *arg)
{
	struct collect *c = arg;
	strcat(c->keys, key);
	strcat(c->keys, ",");
	if (c->n < 64) {
		c->ids[c->n] = st->id;
		c->cookies[c->n] = st->cookie;
	}
	c->n++;
	if (c->stop_after && c->n == c->stop_after)
		return 42;
	return 0;
}

static void list_from(struct mkv *kv, uint64_t after, struct collect *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(mkv_list(kv, after, collect_cb, c), 0);
}

static void test_empty(void **state)
{
	struct mkv *kv = *state;
	char buf[4];
	char *v;
	struct collect c;

	assert_int_equal(mkv_count(kv), 0);
	assert_int_equal(mkv_stat(kv, "k", NULL), -ENOENT);
	assert_int_equal(mkv_read(kv, "k", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mkv_get(kv, "k", &v, NULL), -ENOENT);
	assert_int_equal(mkv_truncate(kv, "k", 3), -ENOENT);
	assert_int_equal(mkv_delete(kv, "k"), -ENOENT);
	assert_int_equal(mkv_rename(kv, "k", "j"), -ENOENT);
	assert_int_equal(mkv_stat(kv, "j", NULL), -ENOENT);
	list_from(kv, 0, &c);
	assert_int_equal(c.n, 0);
	assert_int_equal(mkv_count(NULL), 0);
	mkv_free(NULL);
}

static void test_binary_values(void **state)
{
	struct mkv *kv = *state;
	static const char val[] = {'a', 0, 'b', 0, 0, 'c', (char)0xff};
	char buf[16];

	assert_int_equal(mkv_write(kv, "bin", 0, val, sizeof(val), 0), sizeof(val));
	assert_value(kv, "bin", val, sizeof(val));
	assert_int_equal(mkv_count(kv), 1);

	/* Reads at offsets, partial, past the end. */
	assert_int_equal(mkv_read(kv, "bin", 1, buf, 3), 3);
	assert_memory_equal(buf, val + 1, 3);
	assert_int_equal(mkv_read(kv, "bin", 4, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, val + 4, 3);
	assert_int_equal(mkv_read(kv, "bin", 7, buf, sizeof(buf)), 0);
	assert_int_equal(mkv_read(kv, "bin", 1000, buf, sizeof(buf)), 0);
	assert_int_equal(mkv_read(kv, "bin", UINT64_MAX, buf, sizeof(buf)), 0);

	/* An overwrite inside the value keeps its size. */
	assert_int_equal(mkv_write(kv, "bin", 2, "XY", 2, 0), 2);
	static const char want[] = {'a', 0, 'X', 'Y', 0, 'c', (char)0xff};
	assert_value(kv, "bin", want, sizeof(want));

	/* A key with odd bytes in it is just a string. */
	assert_int_equal(mkv_write(kv, "sp ace\n\t", 0, "v", 1, 0), 1);
	assert_value(kv, "sp ace\n\t", "v", 1);
	assert_int_equal(mkv_stat(kv, "sp ace", NULL), -ENOENT);
}

static void test_sparse_write(void **state)
{
	struct mkv *kv = *state;
	char want[64];

	/* A write past the end of a new key zero-fills, like a file. */
	assert_int_equal(mkv_write(kv, "s", 10, "abc", 3, 0), 3);
	memset(want, 0, sizeof(want));
	memcpy(want + 10, "abc", 3);
	assert_value(kv, "s", want, 13);

	assert_int_equal(mkv_write(kv, "s", 40, "Z", 1, 0), 1);
	want[40] = 'Z';
	assert_value(kv, "s", want, 41);

	/* Bytes cut by a shrink must not come back when the value grows again. */
	assert_int_equal(mkv_write(kv, "t", 0, "XXXXXXXXXXXXXXXXXXXX", 20, MKV_REPLACE), 20);
	assert_int_equal(mkv_truncate(kv, "t", 2), 0);
	assert_int_equal(mkv_write(kv, "t", 8, "y", 1, 0), 1);
	memset(want, 0, sizeof(want));
	memcpy(want, "XX", 2);
	want[8] = 'y';
	assert_value(kv, "t", want, 9);
	assert_int_equal(mkv_truncate(kv, "t", 1), 0);
	assert_int_equal(mkv_truncate(kv, "t", 15), 0);
	memset(want, 0, sizeof(want));
	want[0] = 'X';
	assert_value(kv, "t", want, 15);
}

static void test_empty_write(void **state)
{
	struct mkv *kv = *state;

	/* An empty write creates the key (like open O_CREAT) but, as pwrite with
	 * no bytes, does not extend it. */
	assert_int_equal(mkv_write(kv, "e", 100, "", 0, 0), 0);
	assert_value(kv, "e", "", 0);
	assert_int_equal(mkv_write(kv, "e", 0, "ab", 2, 0), 2);
	assert_int_equal(mkv_write(kv, "e", 50, NULL, 0, 0), 0);
	assert_value(kv, "e", "ab", 2);
	char *v;
	size_t len;
	assert_int_equal(mkv_truncate(kv, "e", 0), 0);
	assert_int_equal(mkv_get(kv, "e", &v, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(v, "");
	free(v);
}

static void test_append(void **state)
{
	struct mkv *kv = *state;
	enum { N = 100000 };
	char *want = malloc(N);
	assert_non_null(want);

	/* The offset is ignored with MKV_APPEND. */
	for (size_t i = 0; i < N; i++) {
		char c = (char)(i * 7 + 3);
		want[i] = c;
		assert_int_equal(mkv_write(kv, "log", i % 3 ? 0 : 999999, &c, 1, MKV_APPEND), 1);
	}
	assert_value(kv, "log", want, N);
	assert_int_equal(mkv_write(kv, "log", 0, "tail", 4, MKV_APPEND), 4);
	char buf[8];
	assert_int_equal(mkv_read(kv, "log", N, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "tail", 4);
	/* An append to an absent key creates it. */
	assert_int_equal(mkv_write(kv, "new", 77, "x", 1, MKV_APPEND), 1);
	assert_value(kv, "new", "x", 1);
	free(want);
}

static void test_replace(void **state)
{
	struct mkv *kv = *state;
	char big[1000];
	memset(big, 'b', sizeof(big));

	assert_int_equal(mkv_write(kv, "r", 0, big, sizeof(big), 0), sizeof(big));
	assert_int_equal(mkv_write(kv, "r", 0, "short", 5, MKV_REPLACE), 5);
	assert_value(kv, "r", "short", 5);
	assert_int_equal(mkv_write(kv, "r", 0, big, 300, MKV_REPLACE), 300);
	assert_value(kv, "r", big, 300);
	assert_int_equal(mkv_write(kv, "r", 0, "", 0, MKV_REPLACE), 0);
	assert_value(kv, "r", "", 0);
	assert_int_equal(mkv_write(kv, "r", 0, "a\0b", 3, MKV_REPLACE), 3);
	assert_value(kv, "r", "a\0b", 3);
	/* At an offset: zeros, then the data, and nothing of the old value. */
	assert_int_equal(mkv_write(kv, "r", 0, big, 300, MKV_REPLACE), 300);
	assert_int_equal(mkv_write(kv, "r", 3, "xy", 2, MKV_REPLACE), 2);
	assert_value(kv, "r", "\0\0\0xy", 5);
	assert_int_equal(mkv_write(kv, "r", 7, "", 0, MKV_REPLACE), 0);
	assert_value(kv, "r", "\0\0\0\0\0\0\0", 7);
	assert_int_equal(mkv_write(kv, "r", MKV_MAX_VALUE, "z", 1, MKV_REPLACE), -EFBIG);
	assert_value(kv, "r", "\0\0\0\0\0\0\0", 7);
	/* A replace creates an absent key too. */
	assert_int_equal(mkv_write(kv, "r2", 0, "v", 1, MKV_REPLACE), 1);
	assert_value(kv, "r2", "v", 1);
}

/* Every change of a value gives it a version no state of the table had;
 * a change of mtime alone (touch) does not. */
static void test_version(void **state)
{
	struct mkv *kv = *state;
	struct mkv_stat a, b;
	assert_int_equal(mkv_create(kv, "v"), 0);
	assert_int_equal(mkv_stat(kv, "v", &a), 0);
	assert_int_equal(mkv_write(kv, "v", 0, "x", 1, 0), 1);
	assert_int_equal(mkv_stat(kv, "v", &b), 0);
	assert_true(b.ver > a.ver);
	a = b;
	assert_int_equal(mkv_truncate(kv, "v", 0), 0);
	assert_int_equal(mkv_stat(kv, "v", &b), 0);
	assert_true(b.ver > a.ver);
	a = b;
	struct timespec t = {.tv_sec = 12345};
	assert_int_equal(mkv_set_mtime(kv, "v", &t), 0);
	assert_int_equal(mkv_stat(kv, "v", &b), 0);
	assert_true(b.ver == a.ver);
	/* An empty write that replaces nothing changes nothing. */
	assert_int_equal(mkv_write(kv, "v", 0, "", 0, 0), 0);
	assert_int_equal(mkv_stat(kv, "v", &b), 0);
	assert_true(b.ver == a.ver);
	assert_int_equal(mkv_write(kv, "w", 0, "y", 1, MKV_REPLACE), 1);
	assert_int_equal(mkv_rename(kv, "w", "v"), 0);
	assert_int_equal(mkv_stat(kv, "v", &b), 0);
	assert_true(b.ver > a.ver && b.id != a.id);
}

static void test_truncate(void **state)
{
	struct mkv *kv = *state;
	char want[300] = {0};

	assert_int_equal(mkv_write(kv, "t", 0, "hello", 5, 0), 5);
	assert_int_equal(mkv_truncate(kv, "t", 300), 0);
	memcpy(want, "hello", 5);
	assert_value(kv, "t", want, 300);
	assert_int_equal(mkv_truncate(kv, "t", 3), 0);
	assert_value(kv, "t", "hel", 3);
	assert_int_equal(mkv_truncate(kv, "t", 3), 0);
	assert_value(kv, "t", "hel", 3);
	assert_int_equal(mkv_truncate(kv, "t", 0), 0);
	assert_value(kv, "t", "", 0);
	assert_int_equal(mkv_truncate(kv, "none", 0), -ENOENT);
	assert_int_equal(mkv_stat(kv, "none", NULL), -ENOENT);
}

static void test_efbig(void **state)
{
	struct mkv *kv = *state;
	struct mkv_stat before, after;

	assert_int_equal(mkv_write(kv, "f", 0, "data", 4, 0), 4);
	assert_int_equal(mkv_stat(kv, "f", &before), 0);
	tick();

	assert_int_equal(mkv_write(kv, "f", MKV_MAX_VALUE - 1, "ab", 2, 0), -EFBIG);
	assert_int_equal(mkv_write(kv, "f", MKV_MAX_VALUE, "a", 1, 0), -EFBIG);
	assert_int_equal(mkv_write(kv, "f", UINT64_MAX, "a", 1, 0), -EFBIG);
	assert_int_equal(mkv_write(kv, "f", UINT64_MAX - 1, "abc", 3, 0), -EFBIG);
	assert_int_equal(mkv_truncate(kv, "f", MKV_MAX_VALUE + 1), -EFBIG);
	assert_int_equal(mkv_truncate(kv, "f", UINT64_MAX), -EFBIG);
	assert_value(kv, "f", "data", 4);
	assert_int_equal(mkv_stat(kv, "f", &after), 0);
	assert_int_equal(ts_cmp(after.mtime, before.mtime), 0);
	assert_int_equal(ts_cmp(after.ctime, before.ctime), 0);
	assert_int_equal(after.id, before.id);

	/* A refused write does not create the key either. */
	assert_int_equal(mkv_write(kv, "g", UINT64_MAX, "a", 1, 0), -EFBIG);
	assert_int_equal(mkv_stat(kv, "g", NULL), -ENOENT);
	assert_int_equal(mkv_count(kv), 1);
}

static void test_create_delete(void **state)
{
	struct mkv *kv = *state;

	assert_int_equal(mkv_create(kv, "c"), 0);
	assert_value(kv, "c", "", 0);
	assert_int_equal(mkv_create(kv, "c"), -EEXIST);
	assert_int_equal(mkv_write(kv, "c", 0, "v", 1, 0), 1);
	assert_int_equal(mkv_create(kv, "c"), -EEXIST);
	assert_value(kv, "c", "v", 1);
	assert_int_equal(mkv_count(kv), 1);

	uint64_t old_id = id_of(kv, "c");
	assert_int_equal(mkv_delete(kv, "c"), 0);
	assert_int_equal(mkv_delete(kv, "c"), -ENOENT);
	assert_int_equal(mkv_stat(kv, "c", NULL), -ENOENT);
	assert_int_equal(mkv_count(kv), 0);
	/* Ids are never reused. */
	assert_int_equal(mkv_create(kv, "c"), 0);
	assert_true(id_of(kv, "c") != old_id);
	assert_value(kv, "c", "", 0);
}

static void test_rename(void **state)
{
	struct mkv *kv = *state;
	struct collect c;

	assert_int_equal(mkv_write(kv, "a", 0, "A", 1, 0), 1);
	assert_int_equal(mkv_write(kv, "b", 0, "BB", 2, 0), 2);
	assert_int_equal(mkv_write(kv, "c", 0, "CCC", 3, 0), 3);
	struct mkv_stat before, after;
	assert_int_equal(mkv_stat(kv, "a", &before), 0);
	uint64_t b_id = id_of(kv, "b"), c_id = id_of(kv, "c");
	tick();

	/* A rename keeps the entry's id (as mv keeps a file's inode), its
	 * place in a listing, its value and its mtime; the name is found by
	 * the id. */
	assert_int_equal(mkv_rename(kv, "a", "z"), 0);
	assert_int_equal(mkv_stat(kv, "a", NULL), -ENOENT);
	assert_int_equal(mkv_stat(kv, "z", &after), 0);
	assert_true(after.id == before.id && after.id != b_id && after.id != c_id);
	assert_true(after.ver > before.ver);
	char name[8];
	assert_int_equal(mkv_name_of(kv, after.id, name, sizeof(name)), 0);
	assert_string_equal(name, "z");
	assert_int_equal(mkv_name_of(kv, after.id, name, 1), -ENAMETOOLONG);
	assert_int_equal(after.cookie, before.cookie);
	assert_int_equal(ts_cmp(after.mtime, before.mtime), 0);
	assert_true(ts_cmp(after.ctime, before.ctime) > 0);
	assert_value(kv, "z", "A", 1);
	list_from(kv, 0, &c);
	assert_string_equal(c.keys, "z,b,c,");

	/* Replacing a target drops its old value. */
	assert_int_equal(mkv_rename(kv, "b", "c"), 0);
	assert_int_equal(mkv_count(kv), 2);
	assert_value(kv, "c", "BB", 2);
	assert_int_equal(mkv_stat(kv, "b", NULL), -ENOENT);
	list_from(kv, 0, &c);
	assert_string_equal(c.keys, "z,c,");
	assert_int_equal(mkv_name_of(kv, c_id, name, sizeof(name)), -ENOENT); /* the old c */

	/* Onto itself: nothing changes, not even the id. */
	uint64_t z_id = id_of(kv, "z");
	assert_int_equal(mkv_rename(kv, "z", "z"), 0);
	assert_int_equal(id_of(kv, "z"), z_id);
	assert_value(kv, "z", "A", 1);

	/* An absent source leaves the target alone. */
	assert_int_equal(mkv_rename(kv, "nope", "z"), -ENOENT);
	assert_value(kv, "z", "A", 1);
	assert_int_equal(mkv_count(kv), 2);
}

static void test_move(void **state)
{
	struct mkv *a = *state;
	struct mkv *b = mkv_new();
	assert_non_null(b);

	assert_int_equal(mkv_write(a, "k", 0, "va\0l", 4, 0), 4);
	assert_int_equal(mkv_write(a, "other", 0, "o", 1, 0), 1);
	for (int i = 0; i < 5; i++) {
		char key[8];
		snprintf(key, sizeof(key), "b%d", i);
		assert_int_equal(mkv_create(b, key), 0);
	}
	assert_int_equal(mkv_write(b, "dst", 0, "old", 3, 0), 3);
	uint64_t dst_id = id_of(b, "dst");

	assert_int_equal(mkv_move(a, "k", b, "dst"), 0);
	assert_int_equal(mkv_stat(a, "k", NULL), -ENOENT);
	assert_int_equal(mkv_count(a), 1);
	assert_int_equal(mkv_count(b), 6);
	assert_value(b, "dst", "va\0l", 4);
	/* A new id in the target table. */
	assert_true(id_of(b, "dst") != dst_id);

	assert_int_equal(mkv_move(a, "nope", b, "x"), -ENOENT);
	assert_int_equal(mkv_stat(b, "x", NULL), -ENOENT);

	/* The same table: a rename. */
	assert_int_equal(mkv_move(a, "other", a, "renamed"), 0);
	assert_value(a, "renamed", "o", 1);
	assert_int_equal(mkv_stat(a, "other", NULL), -ENOENT);

	/* Into an empty table, then back. */
	struct mkv *e = mkv_new();
	assert_non_null(e);
	assert_int_equal(mkv_move(b, "b0", e, "b0"), 0);
	assert_int_equal(mkv_count(e), 1);
	assert_int_equal(mkv_move(e, "b0", b, "b0"), 0);
	assert_int_equal(mkv_count(e), 0);
	assert_int_equal(mkv_count(b), 6);
	mkv_free(e);
	mkv_free(b);
}

static void test_list_cursors(void **state)
{
	struct mkv *kv = *state;
	struct collect c;
	static const char *const keys[] = {"a", "b", "c", "d", "e"};

	for (size_t i = 0; i < 5; i++)
		assert_int_equal(mkv_create(kv, keys[i]), 0);
	list_from(kv, 0, &c);
	assert_string_equal(c.keys, "a,b,c,d,e,");
	for (size_t i = 1; i < c.n; i++) {
		assert_true(c.cookies[i] > c.cookies[i - 1]);
		assert_true(c.ids[i] != c.ids[i - 1]);
	}
	uint64_t cookie_b = c.cookies[1], cookie_c = c.cookies[2], cookie_e = c.cookies[4];

	list_from(kv, cookie_b, &c);
	assert_string_equal(c.keys, "c,d,e,");
	list_from(kv, cookie_e, &c);
	assert_int_equal(c.n, 0);
	list_from(kv, UINT64_MAX, &c);
	assert_int_equal(c.n, 0);

	/* A reader stopped after "b" goes on correctly although "c" (the next
	 * one) and "b" itself (its cursor) are gone; a new key takes the
	 * lowest free place, b's, before the cursor: that reader does not see
	 * it (it came after the listing began), a new one does. */
	assert_int_equal(mkv_delete(kv, "b"), 0);
	assert_int_equal(mkv_delete(kv, "c"), 0);
	assert_int_equal(mkv_create(kv, "f"), 0);
	list_from(kv, cookie_b, &c);
	assert_string_equal(c.keys, "d,e,");
	list_from(kv, cookie_c, &c);
	assert_string_equal(c.keys, "d,e,");
	list_from(kv, 0, &c);
	assert_string_equal(c.keys, "a,f,d,e,");

	/* A rename keeps the key's place. */
	assert_int_equal(mkv_rename(kv, "a", "a2"), 0);
	list_from(kv, 0, &c);
	assert_string_equal(c.keys, "a2,f,d,e,");
	list_from(kv, cookie_b, &c);
	assert_string_equal(c.keys, "d,e,");

	/* A non-zero return stops the walk and is returned. */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(mkv_list(kv, 0, collect_cb, &c), 42);
	assert_string_equal(c.keys, "a2,f,");
}

static int delete_cb(const char *key, const struct mkv_stat *st, void *arg)
{
	return mkv_delete(arg, key);
}

static void test_list_delete_current(void **state)
{
	struct mkv *kv = *state;
	for (int i = 0; i < 100; i++) {
		char key[8];
		snprintf(key, sizeof(key), "%d", i);
		assert_int_equal(mkv_create(kv, key), 0);
	}
	assert_int_equal(mkv_list(kv, 0, delete_cb, kv), 0);
	assert_int_equal(mkv_count(kv), 0);
}

struct order_check {
	uint64_t last; /* cookie */
	size_t n;
	int parity; /* -1: any */
};

static int order_cb(const char *key, const struct mkv_stat *st, void *arg)
{
	struct order_check *o = arg;
	if (st->cookie <= o->last)
		return -1;
	if (o->parity >= 0 && atoi(key + 1) % 2 != o->parity)
		return -2;
	o->last = st->cookie;
	o->n++;
	return 0;
}

static void test_many_keys(void **state)
{
	struct mkv *kv = *state;
	enum { N = 100000 };
	char key[16];

	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(mkv_write(kv, key, 0, &i, sizeof(i), 0), sizeof(i));
	}
	assert_int_equal(mkv_count(kv), N);
	for (int i = 0; i < N; i++) {
		int v = -1;
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(mkv_read(kv, key, 0, &v, sizeof(v)), sizeof(v));
		assert_int_equal(v, i);
	}
	struct order_check o = {0, 0, -1};
	assert_int_equal(mkv_list(kv, 0, order_cb, &o), 0);
	assert_int_equal(o.n, N);

	/* A cursor in the middle of a large table. */
	snprintf(key, sizeof(key), "k%d", N / 2);
	struct mkv_stat mid;
	assert_int_equal(mkv_stat(kv, key, &mid), 0);
	o = (struct order_check){mid.cookie, 0, -1};
	assert_int_equal(mkv_list(kv, o.last, order_cb, &o), 0);
	assert_int_equal(o.n, N - N / 2 - 1);

	for (int i = 0; i < N; i += 2) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(mkv_delete(kv, key), 0);
	}
	assert_int_equal(mkv_count(kv), N / 2);
	for (int i = 0; i < N; i++) {
		int v = -1;
		snprintf(key, sizeof(key), "k%d", i);
		if (i % 2) {
			assert_int_equal(mkv_read(kv, key, 0, &v, sizeof(v)), sizeof(v));
			assert_int_equal(v, i);
		} else {
			assert_int_equal(mkv_stat(kv, key, NULL), -ENOENT);
		}
	}
	o = (struct order_check){0, 0, 1};
	assert_int_equal(mkv_list(kv, 0, order_cb, &o), 0);
	assert_int_equal(o.n, N / 2);

	/* Down to a few keys (the table shrinks) and up again. */
	for (int i = 1; i < N - 10; i += 2) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(mkv_delete(kv, key), 0);
	}
	assert_int_equal(mkv_count(kv), 5);
	for (int i = N - 9; i < N; i += 2) {
		int v = -1;
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(mkv_read(kv, key, 0, &v, sizeof(v)), sizeof(v));
		assert_int_equal(v, i);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		assert_int_equal(mkv_create(kv, key), 0);
	}
	assert_int_equal(mkv_count(kv), 1005);
	assert_int_equal(mkv_stat(kv, "n999", NULL), 0);
}

static void test_times(void **state)
{
	struct mkv *kv = *state;
	struct mkv_stat s0, s1;
	char buf[8];

	assert_int_equal(mkv_create(kv, "t"), 0);
	assert_int_equal(mkv_stat(kv, "t", &s0), 0);
	assert_true(s0.mtime.tv_sec > 1000000000); /* wall clock, not monotonic */
	assert_int_equal(ts_cmp(s0.mtime, s0.ctime), 0);

#define EXPECT_CHANGE(op)                                    \
	do {                                                 \
		tick();                                      \
		op;                                          \
		assert_int_equal(mkv_stat(kv, "t", &s1), 0); \
		assert_true(ts_cmp(s1.mtime, s0.mtime) > 0); \
		assert_true(ts_cmp(s1.ctime, s0.ctime) > 0); \
		s0 = s1;                                     \
	} while (0)

	EXPECT_CHANGE(assert_int_equal(mkv_write(kv, "t", 0, "x", 1, 0), 1));
	EXPECT_CHANGE(assert_int_equal(mkv_write(kv, "t", 0, "y", 1, MKV_APPEND), 1));
	EXPECT_CHANGE(assert_int_equal(mkv_write(kv, "t", 0, "z", 1, MKV_REPLACE), 1));
	EXPECT_CHANGE(assert_int_equal(mkv_truncate(kv, "t", 10), 0));
	EXPECT_CHANGE(assert_int_equal(mkv_truncate(kv, "t", 2), 0));
#undef EXPECT_CHANGE

	/* Reads and refused changes leave the times alone. */
	tick();
	assert_int_equal(mkv_read(kv, "t", 0, buf, sizeof(buf)), 2);
	assert_int_equal(mkv_create(kv, "t"), -EEXIST);
	assert_int_equal(mkv_truncate(kv, "t", UINT64_MAX), -EFBIG);
	assert_int_equal(mkv_stat(kv, "t", &s1), 0);
	assert_int_equal(ts_cmp(s1.mtime, s0.mtime), 0);
	assert_int_equal(ts_cmp(s1.ctime, s0.ctime), 0);
}

/* The account holds exactly the table's keys and values, whatever happened
 * to them; a refused change leaves the table and the account as they were. */
static void assert_account(struct mkv *kv, struct mkv_account *a, uint64_t want)
{
	assert_int_equal(mkv_bytes(kv), want);
	assert_int_equal(mkv_account_used(a), want);
}

static void test_account(void **state)
{
	struct mkv *kv = *state;
	struct mkv_account a = {0};
	atomic_store(&a.limit, 20);
	mkv_set_account(kv, &a);

	assert_int_equal(mkv_write(kv, "k", 0, "0123456789", 10, 0), 10); /* 1 + 10 */
	assert_account(kv, &a, 11);
	assert_int_equal(mkv_create(kv, "e"), 0); /* 1 */
	assert_account(kv, &a, 12);
	/* 8 more would make 20: fits; then nothing more does. */
	assert_int_equal(mkv_write(kv, "k", 10, "abcdefgh", 8, 0), 8);
	assert_account(kv, &a, 20);
	assert_int_equal(mkv_write(kv, "k", 18, "x", 1, 0), -ENOSPC);
	assert_int_equal(mkv_write(kv, "k", 0, "x", 1, MKV_APPEND), -ENOSPC);
	assert_int_equal(mkv_write(kv, "new", 0, "", 0, 0), -ENOSPC);
	assert_int_equal(mkv_create(kv, "n"), -ENOSPC);
	assert_int_equal(mkv_truncate(kv, "e", 1), -ENOSPC);
	assert_int_equal(mkv_rename(kv, "e", "longer"), -ENOSPC);
	assert_int_equal(mkv_stat(kv, "new", NULL), -ENOENT);
	assert_int_equal(mkv_stat(kv, "n", NULL), -ENOENT);
	assert_int_equal(mkv_stat(kv, "e", NULL), 0);
	assert_value(kv, "k", "0123456789abcdefgh", 18);
	assert_value(kv, "e", "", 0);
	assert_account(kv, &a, 20);
	/* Overwriting in place grows nothing; a sparse write counts its gap. */
	assert_int_equal(mkv_write(kv, "k", 0, "ABCD", 4, 0), 4);
	assert_account(kv, &a, 20);
	assert_int_equal(mkv_truncate(kv, "k", 2), 0);
	assert_account(kv, &a, 4);
	assert_int_equal(mkv_write(kv, "e", 10, "z", 1, 0), 1);
	assert_account(kv, &a, 15);
	assert_int_equal(mkv_write(kv, "e", 16, "z", 1, 0), -ENOSPC);
	/* A put that shrinks gives back; a rename that replaces nets out. */
	assert_int_equal(mkv_write(kv, "e", 0, "yy", 2, MKV_REPLACE), 2);
	assert_account(kv, &a, 6);
	assert_int_equal(mkv_rename(kv, "e", "k"), 0);
	assert_account(kv, &a, 3);
	assert_int_equal(mkv_rename(kv, "k", "kkkkkkkkkkkkkkkkk"), 0); /* 17 + 2 */
	assert_account(kv, &a, 19);
	assert_int_equal(mkv_rename(kv, "kkkkkkkkkkkkkkkkk", "k"), 0);
	assert_account(kv, &a, 3);

	/* Fill, empty, fill again: the count comes back to 0 each time. */
	for (int round = 0; round < 3; round++) {
		char key[8];
		for (int i = 0; i < 5; i++) {
			snprintf(key, sizeof(key), "f%d", i);
			assert_int_equal(mkv_write(kv, key, 0, "x", 1, 0), 1);
		}
		assert_account(kv, &a, 3 + 15);
		assert_int_equal(mkv_write(kv, "f9", 0, "x", 1, 0), -ENOSPC);
		for (int i = 0; i < 5; i++) {
			snprintf(key, sizeof(key), "f%d", i);
			assert_int_equal(mkv_delete(kv, key), 0);
		}
		assert_account(kv, &a, 3);
	}
	assert_int_equal(mkv_delete(kv, "k"), 0);
	assert_account(kv, &a, 0);
	assert_int_equal(mkv_write(kv, "again", 0, "x", 1, 0), 1);
	mkv_free(kv);
	*state = NULL;
	assert_int_equal(mkv_account_used(&a), 0);
}

/* Two tables on one account (the node's), and a move between them. */
static void test_account_shared(void **state)
{
	struct mkv_account a = {0};
	struct mkv *x = mkv_new(), *y = mkv_new();
	atomic_store(&a.limit, 10);
	assert_non_null(x);
	assert_non_null(y);
	mkv_set_account(x, &a);
	mkv_set_account(y, &a);
	assert_int_equal(mkv_write(x, "a", 0, "1234", 4, 0), 4);
	assert_int_equal(mkv_write(y, "b", 0, "1234", 4, 0), 4);
	assert_int_equal(mkv_account_used(&a), 10);
	assert_int_equal(mkv_write(y, "c", 0, "", 0, 0), -ENOSPC);
	assert_int_equal(mkv_move(x, "a", y, "b"), 0);
	assert_int_equal(mkv_account_used(&a), 5);
	assert_int_equal(mkv_bytes(x), 0);
	assert_int_equal(mkv_bytes(y), 5);
	/* Without an account the table still counts, and moving it onto one
	 * charges what it holds. */
	struct mkv *z = mkv_new();
	assert_non_null(z);
	assert_int_equal(mkv_write(z, "zz", 0, "123", 3, 0), 3);
	assert_int_equal(mkv_bytes(z), 5);
	mkv_set_account(z, &a);
	assert_int_equal(mkv_account_used(&a), 10);
	mkv_set_account(z, NULL);
	assert_int_equal(mkv_account_used(&a), 5);
	mkv_free(z);
	mkv_free(x);
	mkv_free(y);
	assert_int_equal(mkv_account_used(&a), 0);
}

/* A write far out is refused before anything is allocated: the bound is
 * one sane value, not the 2 GiB an offset of 2^31 - 1 once cost. */
static void test_max_value(void **state)
{
	struct mkv *kv = *state;
	assert_true(MKV_MAX_VALUE <= (uint64_t)64 << 20);
	assert_int_equal(mkv_write(kv, "f", ((uint64_t)1 << 31) - 1, "a", 1, 0), -EFBIG);
	assert_int_equal(mkv_truncate(kv, "f", (uint64_t)1 << 31), -ENOENT);
	assert_int_equal(mkv_create(kv, "f"), 0);
	assert_int_equal(mkv_truncate(kv, "f", (uint64_t)1 << 31), -EFBIG);
	assert_int_equal(mkv_bytes(kv), 1);
}

static int count_one(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                     void *arg)
{
	size_t *seen = arg;
	char want[32];
	snprintf(want, sizeof(want), "v%s", key + 1);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(value, want, len);
	(*seen)++;
	return 0;
}

static int stop_at_ten(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                       void *arg)
{
	size_t *seen = arg;
	return ++*seen == 10 ? 42 : 0;
}

/* A walk in slices: every entry once, each slice where the last ended,
 * with entries deleted between slices skipped and fn's stop returned. */
static void test_foreach_from(void **state)
{
	struct mkv *kv = *state;
	char k[32], v[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		assert_int_equal(mkv_write(kv, k, 0, v, strlen(v), 0), (ssize_t)strlen(v));
	}
	uint64_t cookie = 0;
	size_t seen = 0, slices = 0;
	int r;
	while ((r = mkv_foreach_from(kv, &cookie, 4096, count_one, &seen)) == 1) {
		slices++;
		if (slices == 1) {
			/* Between slices: one entry of the next slice goes. */
			assert_int_equal(mkv_delete(kv, "k9999"), 0);
		}
	}
	assert_int_equal(r, 0);
	assert_int_equal(slices, 2);
	assert_int_equal(seen, 9999);

	cookie = 0;
	seen = 0;
	assert_int_equal(mkv_foreach_from(kv, &cookie, 4096, stop_at_ten, &seen), 42);
	assert_int_equal(seen, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_binary_values, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sparse_write, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_empty_write, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_append, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_version, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_efbig, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_create_delete, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_move, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_list_cursors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_list_delete_current, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_times, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_account, setup, teardown),
	        cmocka_unit_test(test_account_shared),
	        cmocka_unit_test_setup_teardown(test_max_value, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_foreach_from, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
