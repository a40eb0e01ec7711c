/* SPDX-License-Identifier: MIT */
/* Listings of the registry (issue 12, item 1): resuming at a cookie looks at
 * nothing before it, so a whole listing read a few entries a call looks at
 * each entry once (a walk from the start to each offset looks at N^2 / 2k);
 * and entries that come and go between two calls leave every entry there
 * throughout returned exactly once, with the listing ending. Counted, not
 * timed: the registry's count of entries its listings looked at and
 * core/slots' count of bitmap words. Pools need no process, so they make
 * the large folders here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "registry_i.h"
#include "slots.h"
#include "util.h"

/* One call of a listing: up to max entries, the last one's cookie kept. */
struct chunk {
	size_t max, n;
	uint64_t last;
	unsigned *seen; /* by the number in the name "sN", when set */
	size_t nseen;
	size_t others; /* entries of other names */
};

static int take(const struct mreg_entry *e, void *arg)
{
	struct chunk *c = arg;
	unsigned long i;
	char *end;
	if (c->seen && e->name[0] == 's' && (i = strtoul(e->name + 1, &end, 10), *end == '\0') &&
	    i < c->nseen)
		c->seen[i]++;
	else
		c->others++;
	c->last = e->cookie;
	return ++c->n == c->max ? 1 : 0;
}

static void pools(struct mreg *reg, const char *prefix, size_t from, size_t to)
{
	char name[32];
	for (size_t i = from; i < to; i++) {
		snprintf(name, sizeof(name), "%s%zu", prefix, i);
		assert_int_equal(mreg_pool_create(reg, name), 0);
	}
}

/* The whole of registry/, k entries a call: the calls made. */
static size_t list_all(struct mreg *reg, size_t k, struct chunk *c)
{
	size_t calls = 0;
	uint64_t cookie = 0;
	for (;;) {
		c->max = k;
		c->n = 0;
		int r = mreg_list(reg, cookie, take, c);
		calls++;
		if (r == 0)
			return calls;
		assert_int_equal(r, 1);
		cookie = c->last;
	}
}

static void test_resume_looks_at_nothing_before(void **state)
{
	enum { N = 20000, K = 10 };
	struct mev_ring *ring = mev_ring_new(16);
	struct mreg *reg = mreg_new(ring);
	unsigned *seen = calloc(N, sizeof(*seen));
	assert_non_null(reg);
	assert_non_null(seen);
	pools(reg, "s", 0, N);

	/* Every entry once, and looked at once. */
	struct chunk c = {.seen = seen, .nseen = N};
	uint64_t steps = mreg_list_steps(reg), words = mslots_steps();
	size_t calls = list_all(reg, K, &c);
	steps = mreg_list_steps(reg) - steps;
	words = mslots_steps() - words;
	printf("%d entries, %zu calls: %llu entries and %llu bitmap words looked at\n", N, calls,
	       (unsigned long long)steps, (unsigned long long)words);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(c.others, 0);
	assert_int_equal(steps, N);
	/* About a word an entry and a few a call: nothing like the N / 64 a
	 * call that walked the bitmap from the start would add. */
	assert_true(words <= N + 8 * calls);

	/* One resume in the middle: only what it returns. */
	struct chunk mid = {.max = K};
	assert_int_equal(mreg_list(reg, 0, take, &mid), 1);
	for (size_t i = 0; i < N / 2 / K; i++) {
		mid.n = 0;
		assert_int_equal(mreg_list(reg, mid.last, take, &mid), 1);
	}
	steps = mreg_list_steps(reg);
	words = mslots_steps();
	struct chunk three = {.max = 3};
	assert_int_equal(mreg_list(reg, mid.last, take, &three), 1);
	assert_int_equal(mreg_list_steps(reg) - steps, 3);
	assert_true(mslots_steps() - words <= 8);

	/* Past the end, and a cookie no listing gave: nothing, at no cost. */
	struct chunk none = {.max = K};
	assert_int_equal(mreg_list(reg, (uint64_t)1 << 40, take, &none), 0);
	assert_int_equal(none.n, 0);
	mreg_free(reg);
	mev_ring_free(ring);
	free(seen);
}

/* Between two calls, churn pools go (oldest first) and new ones come: the
 * stable ones come exactly once each and the listing ends. */
static void test_listing_under_churn(void **state)
{
	enum { STABLE = 3000, CHURN = 400, K = 7, ROUNDS = 5 };
	struct mev_ring *ring = mev_ring_new(16);
	struct mreg *reg = mreg_new(ring);
	unsigned *seen = calloc(STABLE, sizeof(*seen));
	assert_non_null(reg);
	assert_non_null(seen);
	/* Interleaved, so that the positions churn frees lie all along. */
	size_t oldest = 0, next = 0, calls = 0;
	for (size_t i = 0; i < STABLE; i++) {
		pools(reg, "s", i, i + 1);
		if (i % (STABLE / CHURN) == 0) {
			pools(reg, "c", next, next + 1);
			next++;
		}
	}
	size_t made = next;
	struct chunk c = {.seen = seen, .nseen = STABLE};
	uint64_t cookie = 0;
	char name[32];
	for (;;) {
		c.max = K;
		c.n = 0;
		int r = mreg_list(reg, cookie, take, &c);
		calls++;
		assert_true(calls <= (STABLE + made) / K + 2);
		if (r == 0)
			break;
		cookie = c.last;
		for (size_t j = 0; j < ROUNDS; j++) {
			snprintf(name, sizeof(name), "c%zu", oldest++);
			assert_int_equal(mreg_pool_destroy(reg, name), 0);
			snprintf(name, sizeof(name), "c%zu", next++);
			assert_int_equal(mreg_pool_create(reg, name), 0);
		}
	}
	for (size_t i = 0; i < STABLE; i++)
		if (seen[i] != 1)
			fail_msg("s%zu came %u times", i, seen[i]);
	printf("%zu calls, %zu churn entries seen, %zu made meanwhile\n", calls, c.others,
	       next - made);
	mreg_free(reg);
	mev_ring_free(ring);
	free(seen);
}

/* A pool's table of positions (a chunk of them: tens of KiB) exists only
 * while it has members, so that empty pools cost what they did. */
static void test_empty_pool_holds_no_table(void **state)
{
	struct mev_ring *ring = mev_ring_new(16);
	struct mreg *reg = mreg_new(ring);
	char me[16];
	assert_non_null(reg);
	snprintf(me, sizeof(me), "%d", (int)getpid());
	assert_int_equal(mreg_pool_create(reg, "p"), 0);
	struct ent *p = mreg_ent_find(&reg->names, "p");
	assert_non_null(p);
	assert_null(p->slots);
	struct chunk c = {.max = 4};
	assert_int_equal(mreg_pool_list(reg, "p", 0, take, &c), 0);
	assert_int_equal(c.n, 0);

	assert_int_equal(mreg_pool_store(reg, "p", me, "v", 1, 0), 0);
	assert_non_null(p->slots);
	assert_int_equal(mreg_pool_list(reg, "p", 0, take, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(mreg_pool_unstore(reg, "p", me), 0);
	assert_null(p->slots);
	/* And again: a new table, the member listed. */
	assert_int_equal(mreg_pool_store(reg, "p", me, "w", 1, 0), 0);
	c.n = 0;
	assert_int_equal(mreg_pool_list(reg, "p", 0, take, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(mreg_pool_destroy(reg, "p"), -ENOTEMPTY);
	assert_int_equal(mreg_pool_unstore(reg, "p", me), 0);
	assert_int_equal(mreg_pool_destroy(reg, "p"), 0);
	mreg_free(reg);
	mev_ring_free(ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_resume_looks_at_nothing_before),
	        cmocka_unit_test(test_listing_under_churn),
	        cmocka_unit_test(test_empty_pool_holds_no_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
