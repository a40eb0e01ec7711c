/* SPDX-License-Identifier: MIT */
/* The key-value table at scale: memory an entry costs (and the compact
 * entry's edges: long names, far times, values moving in and out of line),
 * listings that resume in O(1) and stay exact under churn, and
 * per-operation work that is the same at a thousand keys and at a million
 * (deterministic counters, not timings: mkv_work). */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv_i.h"
#include "malloc_held.h"

#define BIG 1000000
#define SMALL 1000
#define VALUE "twelve bytes" /* 12 bytes */

static struct mkv *big, *small;
static size_t big_malloc_bytes; /* what building big took from malloc (malloc_held) */

static uint64_t work_total(const struct mkv_work *w)
{
	return w->chain + w->buckets + w->moved + w->slots;
}

static struct mkv_work work_since(const struct mkv_work *before)
{
	struct mkv_work now;
	mkv_work(&now);
	now.chain -= before->chain;
	now.buckets -= before->buckets;
	now.moved -= before->moved;
	now.slots -= before->slots;
	return now;
}

static void name_of(char *buf, char prefix, unsigned i)
{
	snprintf(buf, 16, "%c%07u", prefix, i); /* 8 bytes */
}

/* Builds a table of n keys of 8 bytes with 12-byte values, checking that
 * no insert moves more of a resize than its bound. */
static struct mkv *build(unsigned n, uint64_t *ret_buckets)
{
	struct mkv *kv = mkv_new();
	assert_non_null(kv);
	uint64_t buckets = 0;
	char key[16];
	for (unsigned i = 0; i < n; i++) {
		name_of(key, 'k', i);
		struct mkv_work before;
		mkv_work(&before);
		assert_int_equal(mkv_write(kv, key, 0, VALUE, 12, MKV_REPLACE), 12);
		struct mkv_work w = work_since(&before);
		assert_true(w.buckets <= 11 * KV_REHASH_STEP);
		assert_true(w.moved <= 64);
		buckets += w.buckets;
	}
	*ret_buckets = buckets;
	return kv;
}

static int group_setup(void **state)
{
	static const uint8_t key[16] = "mallafs kv scale";
	mu_hash_set_key(key);
	uint64_t buckets;
	small = build(SMALL, &buckets);
	size_t held = malloc_held();
	big = build(BIG, &buckets);
	big_malloc_bytes = malloc_held() - held;
	/* The resizes happened, a few buckets at a time. */
	return buckets >= (1u << 19) ? 0 : -1;
}

static int group_teardown(void **state)
{
	mkv_free(big);
	mkv_free(small);
	return 0;
}

/* A glibc chunk for a request: what malloc_usable_size reports plus its
 * size word, at least 32 bytes, a multiple of 16 (a sanitizer reports the
 * request itself: the same rounding gives what glibc would take). */
static size_t chunk_of(size_t usable)
{
	size_t c = (usable + 8 + 15) & ~(size_t)15;
	return c < 32 ? 32 : c;
}

/* 1M keys of 8-byte names and 12-byte values: one 64-byte chunk an entry,
 * and about 16 bytes of position table and hash index. */
static void test_memory_per_entry(void **state)
{
	assert_int_equal(mkv_count(big), BIG);
	/* The request is 56 bytes: malloc gives 56 usable, but for the few
	 * it carves from a free chunk whose rest would be too small to keep. */
	assert_int_equal(KV_HDR + 9 + 12, 56);
	size_t entries = 0, larger = 0;
	uint32_t pos = 0;
	while (mslots_next(big->slots, pos, &pos)) {
		size_t u = malloc_usable_size(kv_ent(big, pos++));
		entries += chunk_of(u);
		larger += u > 56;
	}
	assert_true(larger <= BIG / 1000);
	size_t table = entries + mslots_bytes(big->slots) + kv_index_bytes(big) + sizeof(*big);
	double per_key = (double)table / BIG;
	printf("1M keys: %.1f bytes a key (entries %.1f, positions %.1f, index %.1f)\n", per_key,
	       (double)entries / BIG, (double)mslots_bytes(big->slots) / BIG,
	       (double)kv_index_bytes(big) / BIG);
	assert_true(per_key <= 85);
#ifndef SANITIZER_MALLOC
	/* What malloc itself says building it took. */
	printf("1M keys: malloc says %.1f bytes a key\n", (double)big_malloc_bytes / BIG);
	assert_true(big_malloc_bytes <= (size_t)85 * BIG);
	assert_true(big_malloc_bytes >= (size_t)70 * BIG);
#endif
}

/* ---- the compact entry ---- */

/* A short name and value are one allocation of at most 56 usable bytes. */
static void test_entry_one_chunk(void **state)
{
	struct mkv *kv = mkv_new();
	assert_int_equal(mkv_write(kv, "k0000001", 0, VALUE, 12, 0), 12);
	struct mkv_stat st;
	assert_int_equal(mkv_stat(kv, "k0000001", &st), 0);
	struct kv_ent *e = kv_ent(kv, mslots_resume(st.cookie) - 1);
	assert_non_null(e);
	assert_true(malloc_usable_size(e) <= 56);
	assert_false(e->flags & KV_OUTLINE);
	mkv_free(kv);
}

static void assert_val(struct mkv *kv, const char *key, const char *want, size_t len)
{
	char *v = NULL;
	size_t n = 0;
	assert_int_equal(mkv_get(kv, key, &v, &n), 0);
	assert_int_equal(n, len);
	assert_memory_equal(v, want, len);
	free(v);
}

/* Values grow out of line and shrink back in, through every operation,
 * keeping their bytes and the account. */
static void test_inline_outline(void **state)
{
	struct mkv *kv = mkv_new(), *other = mkv_new();
	char want[300];
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (char)('a' + i % 26);
	for (size_t len = 0; len < 200; len += 7) {
		assert_int_equal(mkv_write(kv, "v", 0, want + len, 7, MKV_APPEND), 7);
		assert_val(kv, "v", want, len + 7);
	}
	assert_int_equal(mkv_bytes(kv), 1 + 203);
	assert_int_equal(mkv_truncate(kv, "v", 30), 0);
	assert_val(kv, "v", want, 30);
	assert_int_equal(mkv_write(kv, "v", 0, want, 100, MKV_REPLACE), 100);
	assert_val(kv, "v", want, 100);
	assert_int_equal(mkv_write(kv, "v", 0, want, 64, MKV_REPLACE), 64);
	assert_val(kv, "v", want, 64);
	assert_int_equal(mkv_write(kv, "v", 60, want, 10, 0), 10);
	memcpy(want + 300 - 70, want, 60);
	memcpy(want + 300 - 10, want, 10);
	assert_val(kv, "v", want + 230, 70);
	/* A rename and a move carry an out-of-line value along. */
	assert_int_equal(mkv_rename(kv, "v", "a much longer name than before"), 0);
	assert_val(kv, "a much longer name than before", want + 230, 70);
	assert_int_equal(mkv_move(kv, "a much longer name than before", other, "w"), 0);
	assert_val(other, "w", want + 230, 70);
	assert_int_equal(mkv_bytes(kv), 0);
	assert_int_equal(mkv_bytes(other), 1 + 70);
	assert_int_equal(mkv_truncate(other, "w", 0), 0);
	assert_val(other, "w", "", 0);
	assert_int_equal(mkv_truncate(other, "w", 65), 0);
	assert_val(other, "w", (char[65]){0}, 65);
	assert_int_equal(mkv_bytes(other), 1 + 65);
	mkv_free(kv);
	mkv_free(other);
}

/* Names up to MKV_MAX_KEY bytes; past it -ENAMETOOLONG and nothing changes. */
static void test_long_names(void **state)
{
	struct mkv *kv = mkv_new();
	char *name = malloc(MKV_MAX_KEY + 2);
	memset(name, 'n', MKV_MAX_KEY + 1);
	name[MKV_MAX_KEY + 1] = '\0';
	assert_int_equal(mkv_write(kv, name, 0, "x", 1, 0), -ENAMETOOLONG);
	assert_int_equal(mkv_create(kv, name), -ENAMETOOLONG);
	assert_int_equal(mkv_stat(kv, name, NULL), -ENOENT);
	assert_int_equal(mkv_write(kv, "short", 0, "x", 1, 0), 1);
	assert_int_equal(mkv_rename(kv, "short", name), -ENAMETOOLONG);
	assert_int_equal(mkv_move(kv, "short", kv, name), -ENAMETOOLONG);
	assert_val(kv, "short", "x", 1);
	assert_int_equal(mkv_count(kv), 1);
	assert_int_equal(mkv_bytes(kv), 6);
	name[MKV_MAX_KEY] = '\0';
	assert_int_equal(mkv_rename(kv, "short", name), 0);
	assert_val(kv, name, "x", 1);
	assert_int_equal(mkv_bytes(kv), MKV_MAX_KEY + 1);
	free(name);
	mkv_free(kv);
}

/* mtime as touch sets it: ns within 292 years of 1970, seconds beyond. */
static void test_far_times(void **state)
{
	struct mkv *kv = mkv_new();
	assert_int_equal(mkv_create(kv, "t"), 0);
	static const struct {
		struct timespec set, got;
	} cases[] = {
	        {{1700000000, 123456789}, {1700000000, 123456789}},
	        {{0, 0}, {0, 0}},
	        {{-5, 300}, {-5, 300}},
	        {{-9223372035, 999999999}, {-9223372035, 999999999}},
	        {{9223372035, 999999999}, {9223372035, 999999999}},
	        {{9223372036, 854775807}, {9223372036, 0}},
	        {{1000000000000, 5}, {1000000000000, 0}},
	        {{-100000000000, 7}, {-100000000000, 0}},
	        {{INT64_MAX, 999999999}, {INT64_MAX, 0}},
	        {{INT64_MIN, 0}, {INT64_MIN, 0}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(mkv_set_mtime(kv, "t", &cases[i].set), 0);
		struct mkv_stat st;
		assert_int_equal(mkv_stat(kv, "t", &st), 0);
		assert_int_equal(st.mtime.tv_sec, cases[i].got.tv_sec);
		assert_int_equal(st.mtime.tv_nsec, cases[i].got.tv_nsec);
		/* ctime is now. */
		assert_true(st.ctime.tv_sec > 1000000000);
		/* A rename keeps it. */
		assert_int_equal(mkv_rename(kv, "t", "u"), 0);
		assert_int_equal(mkv_stat(kv, "u", &st), 0);
		assert_int_equal(st.mtime.tv_sec, cases[i].got.tv_sec);
		assert_int_equal(mkv_rename(kv, "u", "t"), 0);
	}
	mkv_free(kv);
}

/* ---- listings ---- */

struct page {
	uint64_t cookie;
	size_t n, max;
};

static int page_cb(const char *key, const struct mkv_stat *st, void *arg)
{
	struct page *p = arg;
	p->cookie = st->cookie;
	return ++p->n == p->max;
}

/* Resuming in the middle costs what one entry costs, at any size. */
static struct mkv_work resume_work(struct mkv *kv, unsigned n)
{
	char key[16];
	name_of(key, 'k', n / 2);
	struct mkv_stat st;
	assert_int_equal(mkv_stat(kv, key, &st), 0);
	struct page p = {0, 0, 1};
	struct mkv_work before;
	mkv_work(&before);
	assert_int_equal(mkv_list(kv, st.cookie, page_cb, &p), 1);
	struct mkv_work w = work_since(&before);
	assert_int_equal(p.n, 1);
	return w;
}

static void test_resume_cost(void **state)
{
	struct mkv_work s = resume_work(small, SMALL), b = resume_work(big, BIG);
	assert_int_equal(s.chain + b.chain, 0);
	assert_true(b.slots <= 2);
	assert_int_equal(b.slots, s.slots);

	/* A whole listing in pages of 100: one word an entry, and a word per
	 * 64 positions. */
	struct page p = {0, 0, 100};
	size_t listed = 0;
	struct mkv_work before;
	mkv_work(&before);
	while (mkv_list(big, p.cookie, page_cb, &p) == 1) {
		listed += p.n;
		p.n = 0;
	}
	listed += p.n;
	struct mkv_work w = work_since(&before);
	assert_int_equal(listed, BIG);
	assert_true(w.slots <= 2 * (uint64_t)BIG);
}

/* The work of 1000 operations of each kind on kv, and the most one took. */
struct op_work {
	uint64_t total[5], most[5];
};

static void ops(struct mkv *kv, unsigned n, struct op_work *ret)
{
	memset(ret, 0, sizeof(*ret));
	char key[16], to[16], buf[16];
	for (int kind = 0; kind < 5; kind++) {
		for (unsigned i = 0; i < 1000; i++) {
			struct mkv_work before;
			mkv_work(&before);
			name_of(key, 'n', i);
			name_of(to, 'm', i);
			switch (kind) {
			case 0:
				assert_int_equal(mkv_create(kv, key), 0);
				break;
			case 1:
				assert_int_equal(mkv_write(kv, key, 0, VALUE, 12, 0), 12);
				break;
			case 2:
				name_of(buf, 'k', (unsigned)(((uint64_t)i * 7919) % n));
				assert_int_equal(mkv_read(kv, buf, 0, buf, 12), 12);
				break;
			case 3:
				assert_int_equal(mkv_rename(kv, key, to), 0);
				break;
			case 4:
				assert_int_equal(mkv_delete(kv, to), 0);
				break;
			}
			struct mkv_work w = work_since(&before);
			uint64_t t = work_total(&w);
			ret->total[kind] += t;
			if (t > ret->most[kind])
				ret->most[kind] = t;
		}
	}
}

static void test_op_work_flat(void **state)
{
	static const char *const names[] = {"create", "write", "read", "rename", "delete"};
	struct op_work s, b;
	ops(small, SMALL, &s);
	ops(big, BIG, &b);
	for (int k = 0; k < 5; k++) {
		printf("%s: 1000 ops at 1K keys %llu steps (most %llu), at 1M %llu (most %llu)\n",
		       names[k], (unsigned long long)s.total[k], (unsigned long long)s.most[k],
		       (unsigned long long)b.total[k], (unsigned long long)b.most[k]);
		assert_true(b.total[k] <= 4 * s.total[k] + 4000);
		assert_true(b.most[k] <= 256);
		assert_true(s.most[k] <= 256);
	}
	assert_int_equal(mkv_count(big), BIG);
	assert_true(mkv_longest_chain(big) <= 16);
}

/* Emptying the table shrinks its index a few buckets at a time. */
static void test_shrink_bound(void **state)
{
	char key[16];
	uint64_t buckets = 0;
	for (unsigned i = 0; i < BIG; i++) {
		name_of(key, 'k', i);
		struct mkv_work before;
		mkv_work(&before);
		assert_int_equal(mkv_delete(big, key), 0);
		struct mkv_work w = work_since(&before);
		assert_true(w.buckets <= 11 * KV_REHASH_STEP);
		assert_true(w.moved <= 64);
		buckets += w.buckets;
	}
	assert_int_equal(mkv_count(big), 0);
	assert_true(buckets >= (1u << 19));
	assert_true(kv_index_bytes(big) <= 1024 * sizeof(uint32_t));
	/* The emptied position table keeps one chunk. */
	assert_true(mslots_bytes(big->slots) < 64 * 1024);
}

/* xorshift64: the same churn every run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define CHURN_NAMES 40000

struct churn_seen {
	unsigned char seen[CHURN_NAMES];
	uint64_t cookie;
	size_t n, max;
};

static int churn_cb(const char *key, const struct mkv_stat *st, void *arg)
{
	struct churn_seen *c = arg;
	unsigned i = (unsigned)atoi(key + 1);
	assert_true(i < CHURN_NAMES);
	c->seen[i]++;
	c->cookie = st->cookie;
	return ++c->n == c->max;
}

/* A listing in pages while keys are added, deleted and renamed between
 * pages: every key there throughout is returned exactly once, and no key
 * twice. Names are never used twice, so "twice" means a listing error. */
static void test_listing_under_churn(void **state)
{
	static unsigned char present[CHURN_NAMES], start[CHURN_NAMES], touched[CHURN_NAMES];
	static struct churn_seen c;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (int round = 0; round < 10; round++) {
		struct mkv *kv = mkv_new();
		memset(present, 0, sizeof(present));
		memset(touched, 0, sizeof(touched));
		memset(&c, 0, sizeof(c));
		char key[16];
		unsigned next = 0;
		for (; next < 3000; next++) {
			name_of(key, 'c', next);
			assert_int_equal(mkv_create(kv, key), 0);
			present[next] = 1;
		}
		for (unsigned i = 0; i < next; i += 1 + rnd(&seed) % 9) {
			name_of(key, 'c', i);
			assert_int_equal(mkv_delete(kv, key), 0);
			present[i] = 0;
		}
		memcpy(start, present, sizeof(start));
		c.max = 1 + rnd(&seed) % 60;
		while (mkv_list(kv, c.cookie, churn_cb, &c) == 1) {
			c.n = 0;
			for (int k = 0; k < 40 && next < CHURN_NAMES - 1; k++) {
				unsigned op = rnd(&seed) % 3, i = (unsigned)(rnd(&seed) % next);
				char to[16];
				if (op == 0) {
					name_of(key, 'c', next);
					assert_int_equal(mkv_create(kv, key), 0);
					present[next++] = 1;
					continue;
				}
				if (!present[i])
					continue;
				name_of(key, 'c', i);
				present[i] = 0;
				touched[i] = 1;
				if (op == 1) {
					assert_int_equal(mkv_delete(kv, key), 0);
				} else {
					name_of(to, 'c', next);
					assert_int_equal(mkv_rename(kv, key, to), 0);
					present[next++] = 1;
				}
			}
		}
		for (unsigned i = 0; i < next; i++) {
			assert_true(c.seen[i] <= 1);
			if (start[i] && !touched[i])
				assert_int_equal(c.seen[i], 1);
		}
		mkv_free(kv);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_entry_one_chunk),
	        cmocka_unit_test(test_inline_outline),
	        cmocka_unit_test(test_long_names),
	        cmocka_unit_test(test_far_times),
	        cmocka_unit_test(test_memory_per_entry),
	        cmocka_unit_test(test_resume_cost),
	        cmocka_unit_test(test_op_work_flat),
	        cmocka_unit_test(test_listing_under_churn),
	        /* Last: it empties the big table. */
	        cmocka_unit_test(test_shrink_bound),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
