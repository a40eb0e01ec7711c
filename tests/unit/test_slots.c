/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "malloc_held.h"
#include "slots.h"

#define CHUNK 4096u

/* Items are never dereferenced: a number as a pointer will do. */
static void *item(uintptr_t n)
{
	return (void *)(n + 1);
}

static uint32_t add(struct mslots *s, uintptr_t n)
{
	uint32_t pos = UINT32_MAX;
	assert_int_equal(mslots_add(s, item(n), &pos), 0);
	return pos;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Every value of ids[0..n) differs from the others and from 0. */
static void assert_distinct(uint64_t *ids, size_t n)
{
	qsort(ids, n, sizeof(*ids), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		assert_true(ids[i] != 0);
		if (i)
			assert_true(ids[i] != ids[i - 1]);
	}
}

static void test_add_get_del(void **state)
{
	struct mslots *s = mslots_new();
	assert_non_null(s);
	assert_int_equal(mslots_count(s), 0);
	assert_null(mslots_get(s, 0));
	assert_null(mslots_del(s, 0));
	assert_int_equal(mslots_id(s, 0), 0);
	for (uintptr_t i = 0; i < 10; i++)
		assert_int_equal(add(s, i), i);
	assert_int_equal(mslots_count(s), 10);
	assert_ptr_equal(mslots_get(s, 4), item(4));
	mslots_set(s, 4, item(40));
	assert_ptr_equal(mslots_get(s, 4), item(40));
	assert_ptr_equal(mslots_del(s, 4), item(40));
	assert_null(mslots_get(s, 4));
	assert_null(mslots_del(s, 4));
	mslots_set(s, 4, item(41)); /* free: ignored */
	assert_null(mslots_get(s, 4));
	assert_int_equal(mslots_count(s), 9);
	assert_null(mslots_get(s, 10));
	assert_null(mslots_get(s, MSLOTS_MAX));
	assert_null(mslots_get(s, UINT32_MAX));
	assert_null(mslots_del(s, UINT32_MAX));
	assert_int_equal(mslots_id(s, UINT32_MAX), 0);
	assert_true(mslots_bytes(s) > 0);
	mslots_free(s);
	mslots_free(NULL);
}

static void test_reuse_lowest(void **state)
{
	struct mslots *s = mslots_new();
	for (uintptr_t i = 0; i < 2 * CHUNK + 5; i++)
		add(s, i);
	mslots_del(s, CHUNK + 7);
	mslots_del(s, 3);
	mslots_del(s, 2 * CHUNK + 1);
	assert_int_equal(add(s, 100), 3);
	assert_int_equal(add(s, 101), CHUNK + 7);
	assert_int_equal(add(s, 102), 2 * CHUNK + 1);
	assert_int_equal(add(s, 103), 2 * CHUNK + 5);
	mslots_free(s);
}

static void test_ids_unique_across_reuse(void **state)
{
	struct mslots *s = mslots_new();
	enum { N = 3000 };
	uint64_t *ids = malloc(2 * N * sizeof(*ids));
	size_t n = 0;
	add(s, 0);
	for (int i = 0; i < N; i++) {
		uint32_t pos = add(s, 1);
		assert_int_equal(pos, 1);
		ids[n++] = mslots_id(s, pos);
		/* A bump is a new id too. */
		assert_int_equal(mslots_bump(s, pos), 0);
		assert_int_equal(mslots_get(s, pos), item(1));
		ids[n++] = mslots_id(s, pos);
		mslots_del(s, pos);
		assert_int_equal(mslots_id(s, pos), 0);
	}
	assert_int_equal(mslots_bump(s, 1), -ENOENT);
	assert_distinct(ids, n);
	/* No old id names a live item; the live one is found. */
	uint32_t pos = add(s, 1), got = 99;
	for (size_t i = 0; i < n; i++)
		assert_false(mslots_find_id(s, ids[i], &got));
	assert_true(mslots_find_id(s, mslots_id(s, pos), &got));
	assert_int_equal(got, pos);
	assert_true(mslots_find_id(s, mslots_id(s, 0), &got));
	assert_int_equal(got, 0);
	assert_false(mslots_find_id(s, 0, &got));
	assert_false(mslots_find_id(s, UINT64_MAX, &got));
	assert_false(mslots_find_id(s, mslots_id(s, pos) + 5, &got));
	free(ids);
	mslots_free(s);
}

/* A narrowed table: ids stay below 2^(pos_bits + gen_bits), a position
 * whose generations are spent is retired, and no id repeats. */
static void test_limits(void **state)
{
	struct mslots *s = mslots_new();
	assert_int_equal(mslots_limit(s, 11, 4), -EINVAL); /* below a chunk */
	assert_int_equal(mslots_limit(s, 12, 33), -EINVAL);
	assert_int_equal(mslots_limit(s, 12, 3), 0); /* 4096 positions, generations 0..6 */
	enum { N = 40 };
	uint64_t ids[N];
	size_t n = 0;
	add(s, 0);
	uint32_t first = UINT32_MAX;
	for (int i = 0; i < N; i++) {
		uint32_t pos = add(s, 1);
		if (first == UINT32_MAX)
			first = pos;
		ids[n] = mslots_id(s, pos);
		assert_true(ids[n] < (uint64_t)1 << 15);
		n++;
		mslots_del(s, pos);
	}
	assert_distinct(ids, n);
	/* Positions 1 to 5 served 7 items each, then retired: the 40 items
	 * moved on to 6, which has served 5 and takes the next. */
	assert_int_equal(first, 1);
	uint32_t pos = add(s, 2);
	assert_int_equal(pos, 6);
	assert_int_equal(mslots_get(s, 1), NULL);
	/* Full: the 4096 positions are taken or retired. */
	for (uint32_t i = 0; i < 4096; i++) {
		uint32_t p;
		if (mslots_add(s, item(3), &p) < 0)
			break;
	}
	uint32_t p;
	assert_int_equal(mslots_add(s, item(4), &p), -ENOSPC);
	assert_int_equal(mslots_limit(s, 20, 4), -EINVAL); /* not empty */
	mslots_free(s);
}

/* A chunk emptied and freed comes back with generations above all it had:
 * no id repeats, and the memory goes. */
static void test_ids_unique_across_freed_chunks(void **state)
{
	struct mslots *s = mslots_new();
	enum { N = 3 * CHUNK };
	uint64_t *ids = malloc(3 * N * sizeof(*ids));
	size_t n = 0;
	for (int round = 0; round < 3; round++) {
		for (uintptr_t i = 0; i < N; i++) {
			uint32_t pos = add(s, i);
			assert_int_equal(pos, i);
			ids[n++] = mslots_id(s, pos);
		}
		size_t full = mslots_bytes(s);
		/* The highest chunks go first, then the lowest. */
		for (uint32_t i = N; i-- > 0;)
			assert_ptr_equal(mslots_del(s, i), item(i));
		assert_int_equal(mslots_count(s), 0);
		/* One empty chunk is kept, the others are freed. */
		assert_true(mslots_bytes(s) < full - CHUNK * 2 * 12);
		uint32_t pos;
		assert_false(mslots_next(s, 0, &pos));
	}
	assert_distinct(ids, n);
	mslots_free(s);
	free(ids);
}

/* Adding and deleting at a chunk's edge keeps the chunk: the same position
 * comes back, the id moves on. */
static void test_chunk_edge_churn(void **state)
{
	struct mslots *s = mslots_new();
	for (uintptr_t i = 0; i < CHUNK; i++)
		add(s, i);
	size_t bytes = 0;
	uint64_t last = 0;
	for (int i = 0; i < 100; i++) {
		uint32_t pos = add(s, 0);
		assert_int_equal(pos, CHUNK);
		assert_true(mslots_id(s, pos) != last);
		last = mslots_id(s, pos);
		mslots_del(s, pos);
		if (i == 0)
			bytes = mslots_bytes(s);
		assert_int_equal(mslots_bytes(s), bytes);
	}
	mslots_free(s);
}

/* Lists everything from cookie 0, resuming at each item's cookie. */
static size_t list_all(struct mslots *s, uint32_t *out, size_t max)
{
	size_t n = 0;
	uint64_t cookie = 0;
	uint32_t pos;
	while (mslots_next(s, mslots_resume(cookie), &pos)) {
		assert_true(n < max);
		out[n++] = pos;
		cookie = mslots_cookie(pos);
	}
	return n;
}

static void test_next_holes_and_empty_chunks(void **state)
{
	struct mslots *s = mslots_new();
	enum { N = 6 * CHUNK };
	char *there = calloc(N, 1);
	for (uintptr_t i = 0; i < N; i++)
		add(s, i);
	for (uint32_t i = 0; i < N; i++) {
		uint32_t c = i / CHUNK;
		/* Chunks 1 and 3 empty, chunk 4 one item, holes elsewhere. */
		bool keep = c == 4 ? i == 4 * CHUNK + 4000
		                   : c != 1 && c != 3 && (i % 7 == 0 || i % 64 == 63);
		if (keep)
			there[i] = 1;
		else
			mslots_del(s, i);
	}
	uint32_t *out = malloc(N * sizeof(*out));
	size_t n = list_all(s, out, N), k = 0;
	assert_int_equal(n, mslots_count(s));
	for (uint32_t i = 0; i < N; i++)
		if (there[i])
			assert_int_equal(out[k++], i);
	assert_int_equal(k, n);
	uint32_t pos;
	/* From any position, the first kept one at or after it. */
	uint32_t want = UINT32_MAX;
	for (uint32_t i = N; i-- > 0;) {
		if (there[i])
			want = i;
		if (i % 331 == 0 || i / CHUNK == 1 || i / CHUNK == 3) {
			if (want == UINT32_MAX) {
				assert_false(mslots_next(s, i, &pos));
				continue;
			}
			assert_true(mslots_next(s, i, &pos));
			assert_int_equal(pos, want);
		}
	}
	assert_false(mslots_next(s, N, &pos));
	assert_false(mslots_next(s, MSLOTS_MAX, &pos));
	assert_false(mslots_next(s, UINT32_MAX, &pos));
	free(out);
	free(there);
	mslots_free(s);
}

static void test_cookies(void **state)
{
	assert_int_equal(mslots_cookie(0), 1);
	assert_int_equal(mslots_resume(0), 0);
	assert_int_equal(mslots_resume(mslots_cookie(41)), 42);
	assert_int_equal(mslots_resume(UINT64_MAX), MSLOTS_MAX);
	struct mslots *s = mslots_new();
	for (uintptr_t i = 0; i < 10; i++)
		add(s, i);
	/* Resuming after an item that went returns the ones after it. */
	mslots_del(s, 5);
	uint32_t pos;
	assert_true(mslots_next(s, mslots_resume(mslots_cookie(5)), &pos));
	assert_int_equal(pos, 6);
	mslots_free(s);
}

/* The steps of resuming a listing in the middle of a table of n items,
 * and of adding one. */
static void resume_steps(uint32_t n, uint64_t *ret_next, uint64_t *ret_add)
{
	struct mslots *s = mslots_new();
	for (uintptr_t i = 0; i < n; i++)
		add(s, i);
	uint32_t mid = n / 2 + 1, pos;
	mslots_del(s, mid);
	uint64_t before = mslots_steps();
	assert_true(mslots_next(s, mslots_resume(mslots_cookie(mid - 1)), &pos));
	*ret_next = mslots_steps() - before;
	assert_int_equal(pos, mid + 1);
	before = mslots_steps();
	assert_int_equal(add(s, 0), mid);
	*ret_add = mslots_steps() - before;
	mslots_free(s);
}

static void test_resume_is_constant(void **state)
{
	uint64_t small_next, small_add, big_next, big_add;
	resume_steps(1000, &small_next, &small_add);
	resume_steps(1000000, &big_next, &big_add);
	assert_true(small_next <= 2);
	assert_int_equal(big_next, small_next);
	/* Adding scans one word of chunks per 64 chunks: 1M items are 245
	 * chunks, 4 words, and then at most 64 words of one chunk. */
	assert_true(small_add <= 1 + 64);
	assert_true(big_add <= 4 + 64);
}

/* A whole listing costs its items plus a word per 64 free positions and per
 * 64 chunks, however the free ones lie. */
static void test_listing_is_linear(void **state)
{
	struct mslots *s = mslots_new();
	enum { N = 1 << 20 };
	for (uintptr_t i = 0; i < N; i++)
		add(s, i);
	/* Keep every 1000th item, and the last one alone past a long gap. */
	for (uint32_t i = 0; i < N - 1; i++)
		if (i % 1000 || i > N / 2)
			mslots_del(s, i);
	size_t count = mslots_count(s);
	uint32_t *out = malloc(count * sizeof(*out));
	uint64_t before = mslots_steps();
	size_t n = list_all(s, out, count);
	uint64_t steps = mslots_steps() - before;
	assert_int_equal(n, count);
	assert_int_equal(out[n - 1], N - 1);
	/* Per call: one word, and the words of its gap; plus the chunk words. */
	assert_true(steps <= 2 * (n + 1) + N / 64 + (N / CHUNK / 64 + 1) * (n + 1));
	/* The gap of empty chunks is skipped 64 chunks a word: N/2 positions
	 * after the last kept one cost at most 64 + 2 words plus a word each
	 * of the last chunk. */
	before = mslots_steps();
	uint32_t pos;
	assert_true(mslots_next(s, N / 2 + 1, &pos));
	assert_int_equal(pos, N - 1);
	assert_true(mslots_steps() - before <= 64 + 2 + 64);
	free(out);
	mslots_free(s);
}

/* A table's memory follows what it holds: one item is a few hundred bytes,
 * not a whole chunk of 4096 positions; 100 items about 17 bytes each. */
static void test_small_tables_are_small(void **state)
{
	size_t held = malloc_held();
	struct mslots *s = mslots_new();
	assert_true(mslots_bytes(s) <= 128);
	add(s, 0);
	size_t one = mslots_bytes(s);
	assert_true(one < 512);
#ifndef SANITIZER_MALLOC
	/* malloc agrees: its rounding, headers and 32-byte least chunk add
	 * at most 24 bytes to each of the table's 6 allocations. */
	size_t took = malloc_held() - held;
	assert_true(took <= one + 6 * 24);
	assert_true(took < 1024);
#else
	(void)held;
#endif
	for (uintptr_t i = 1; i < 100; i++)
		add(s, i);
	assert_true(mslots_bytes(s) < 100 * 20);
	/* Emptied, it keeps its one chunk but no more than it needed. */
	for (uint32_t i = 0; i < 100; i++)
		mslots_del(s, i);
	assert_true(mslots_bytes(s) < 100 * 20);
	mslots_free(s);
	/* 100,000 one-item tables (a pool each, say): under 512 bytes a table. */
	enum { TABLES = 100000 };
	struct mslots **t = malloc(TABLES * sizeof(*t));
	size_t bytes = 0;
	for (int i = 0; i < TABLES; i++) {
		t[i] = mslots_new();
		add(t[i], 0);
		bytes += mslots_bytes(t[i]);
	}
	assert_true(bytes < (size_t)TABLES * 512);
	for (int i = 0; i < TABLES; i++)
		mslots_free(t[i]);
	free(t);
}

/* A chunk's room doubles from its first few positions up to 4096 as items
 * come: every item keeps its position and id through each doubling, and a
 * full table costs what it did (about 12 bytes a position). */
static void test_growth_keeps_items(void **state)
{
	enum { N = 2 * CHUNK + 100 };
	uint64_t *ids = malloc(N * sizeof(*ids));
	struct mslots *s = mslots_new();
	size_t bytes = mslots_bytes(s);
	for (uintptr_t i = 0; i < N; i++) {
		assert_int_equal(add(s, i), i);
		ids[i] = mslots_id(s, (uint32_t)i);
		assert_true(mslots_bytes(s) >= bytes);
		bytes = mslots_bytes(s);
		if (i & (i + 1))
			continue;
		/* i + 1 is a power of two: a doubling has just happened or is
		 * next; everything so far is where it was. */
		for (uint32_t j = 0; j <= i; j++) {
			assert_ptr_equal(mslots_get(s, j), item(j));
			assert_int_equal(mslots_id(s, j), ids[j]);
		}
		uint32_t pos;
		assert_false(mslots_next(s, (uint32_t)i + 1, &pos));
		assert_null(mslots_get(s, (uint32_t)i + 1));
		assert_int_equal(mslots_id(s, (uint32_t)i + 1), 0);
	}
	/* Two full chunks and one of 100 items: 12 bytes a position and a
	 * little, the third chunk's room at most twice what it holds. */
	assert_true(mslots_bytes(s) < 2 * CHUNK * 13 + 2 * 100 * 13 + 1024);
	/* Past the room of the third chunk: free, out of reach. */
	for (uint32_t p = N; p < 3 * CHUNK; p += 37) {
		assert_null(mslots_get(s, p));
		assert_null(mslots_del(s, p));
		assert_int_equal(mslots_id(s, p), 0);
		assert_false(mslots_can_bump(s, p));
		mslots_set(s, p, item(1));
		assert_null(mslots_get(s, p));
	}
	uint32_t pos = 0, k = 0;
	while (mslots_next(s, pos, &pos)) {
		assert_int_equal(pos, k++);
		assert_int_equal(mslots_id(s, pos), ids[pos]);
		assert_true(mslots_find_id(s, ids[pos], &pos));
		pos++;
	}
	assert_int_equal(k, N);
	assert_distinct(ids, N);
	free(ids);
	mslots_free(s);
}

/* Ids never repeat while chunks grow, lose items, are freed and made again
 * small: a remade chunk's positions, within its first room and past it,
 * start above everything they named before. */
static void test_ids_unique_across_growth(void **state)
{
	enum { ROUNDS = 4, N = 3 * CHUNK };
	uint64_t *ids = malloc((size_t)ROUNDS * 2 * N * sizeof(*ids));
	size_t n = 0;
	struct mslots *s = mslots_new();
	for (int round = 0; round < ROUNDS; round++) {
		/* Grow chunks 0 to 2 to 4096 each, with bumps along the way. */
		for (uintptr_t i = 0; i < N; i++) {
			uint32_t pos = add(s, i);
			ids[n++] = mslots_id(s, pos);
			if (i % 5 == (uintptr_t)round) {
				assert_int_equal(mslots_bump(s, pos), 0);
				ids[n++] = mslots_id(s, pos);
			}
		}
		/* Empty chunk 1 (kept: the lowest empty one) and then chunk 2
		 * (freed); thin chunk 0 out, one round more than the last. */
		for (uint32_t i = CHUNK; i < N; i++)
			mslots_del(s, i);
		for (uint32_t i = 0; i < CHUNK; i++)
			if (i % (round + 2))
				mslots_del(s, i);
		/* And delete the rest, so the next round refills from 0. */
		for (uint32_t i = 0; i < CHUNK; i++)
			mslots_del(s, i);
		assert_int_equal(mslots_count(s), 0);
		/* One chunk kept, whole; the others freed. */
		assert_true(mslots_bytes(s) < CHUNK * 13 + 1024);
	}
	assert_distinct(ids, n);
	mslots_free(s);
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_add_get_del),
	        cmocka_unit_test(test_reuse_lowest),
	        cmocka_unit_test(test_ids_unique_across_reuse),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_ids_unique_across_freed_chunks),
	        cmocka_unit_test(test_chunk_edge_churn),
	        cmocka_unit_test(test_next_holes_and_empty_chunks),
	        cmocka_unit_test(test_cookies),
	        cmocka_unit_test(test_resume_is_constant),
	        cmocka_unit_test(test_listing_is_linear),
	        cmocka_unit_test(test_small_tables_are_small),
	        cmocka_unit_test(test_growth_keeps_items),
	        cmocka_unit_test(test_ids_unique_across_growth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
