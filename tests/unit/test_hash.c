/* SPDX-License-Identifier: MIT */
/* The keyed hash of the tables: SipHash checked against its published
 * vectors, and names chosen to collide under the unkeyed hash mallafs used
 * before (64-bit FNV-1a) spread over the buckets of a store's table and of
 * the registry's; and the registry's table grows step by step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "kv.h"
#include "registry_i.h"
#include "util.h"

/* SipHash-2-4, key 00 01 .. 0f, message 00 01 .. (len - 1): the vectors of
 * the paper's appendix and the reference implementation. */
static void test_siphash_vectors(void **state)
{
	static const struct {
		size_t len;
		uint64_t want;
	} vec[] = {
	        {0, 0x726fdb47dd0e0e31ULL},  {1, 0x74f839c593dc67fdULL}, {2, 0x0d6c8009d9a94f5aULL},
	        {3, 0x85676696d7fb7e2dULL},  {4, 0xcf2794e0277187b7ULL}, {8, 0x93f5f5799a932462ULL},
	        {15, 0xa129ca6149be45e5ULL},
	};
	uint8_t key[16], msg[16];
	for (int i = 0; i < 16; i++)
		key[i] = msg[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++)
		assert_true(mu_siphash24(key, msg, vec[i].len) == vec[i].want);
}

/* The key is drawn at start (not a constant), and a new key moves every hash. */
static void test_keyed(void **state)
{
	uint8_t zero[16] = {0}, one[16] = {1};
	uint64_t drawn = mu_hash("name", 4);
	mu_hash_set_key(zero);
	uint64_t z = mu_hash("name", 4);
	mu_hash_set_key(one);
	uint64_t o = mu_hash("name", 4);
	assert_true(drawn != z);
	assert_true(z != o);
	assert_true(mu_hash("name", 4) == o);
	assert_true(mu_hash("name", 4) != mu_hash("namf", 4));
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FLOOD_NAMES 1000
#define FLOOD_BITS 11 /* more than the 1024 buckets that 1000 keys get */

/* Names an attacker would pick against FNV-1a: all equal in their low
 * FLOOD_BITS bits, so under it every one lands in the same bucket and each
 * insertion walks all the others. */
static char **flood_names(void)
{
	char **names = calloc(FLOOD_NAMES, sizeof(*names));
	assert_non_null(names);
	size_t n = 0;
	char buf[32];
	for (uint64_t i = 0; n < FLOOD_NAMES; i++) {
		snprintf(buf, sizeof(buf), "k%llx", (unsigned long long)i);
		if ((fnv1a(buf) & ((1u << FLOOD_BITS) - 1)) != 0)
			continue;
		names[n] = strdup(buf);
		assert_non_null(names[n]);
		n++;
	}
	return names;
}

static void test_flood(void **state)
{
	char **names = flood_names();
	struct mkv *kv = mkv_new();
	assert_non_null(kv);
	for (size_t i = 0; i < FLOOD_NAMES; i++)
		assert_int_equal(mkv_create(kv, names[i]), 0);
	/* 1000 keys in 1024 buckets: with a random function the longest
	 * chain is 6 or 7; under FNV-1a it is all 1000. */
	size_t longest = mkv_longest_chain(kv);
	printf("longest chain over %d names chosen against FNV-1a: %zu\n", FLOOD_NAMES, longest);
	assert_true(longest <= 16);
	mkv_free(kv);
	for (size_t i = 0; i < FLOOD_NAMES; i++)
		free(names[i]);
	free(names);
}

static size_t longest_chain(struct hnode *const *b, size_t nb)
{
	size_t longest = 0;
	for (size_t i = 0; i < nb; i++) {
		size_t n = 0;
		for (const struct hnode *h = b[i]; h; h = h->next)
			n++;
		if (n > longest)
			longest = n;
	}
	return longest;
}

/* Both arrays while the table grows: a lookup walks one chain of either. */
static size_t longest_htab_chain(const struct htab *t)
{
	size_t a = longest_chain(t->b, t->nb), b = t->old ? longest_chain(t->old, t->onb) : 0;
	return a > b ? a : b;
}

/* The registry's names: the same flood, registered by this process. */
static void test_flood_registry(void **state)
{
	char **names = flood_names();
	struct mev_ring *ring = mev_ring_new(16);
	struct mreg *reg = mreg_new(ring);
	assert_non_null(reg);
	for (size_t i = 0; i < FLOOD_NAMES; i++)
		assert_int_equal(mreg_register(reg, names[i], getpid(), NULL, getuid()), 0);
	size_t longest = longest_htab_chain(&reg->names);
	printf("registry: longest chain over %d names chosen against FNV-1a: %zu\n", FLOOD_NAMES,
	       longest);
	assert_true(longest <= 16);
	mreg_free(reg);
	mev_ring_free(ring);
	for (size_t i = 0; i < FLOOD_NAMES; i++)
		free(names[i]);
	free(names);
}

/* The registry's table grows without a pause: each call moves a bounded
 * number of the old array's buckets, never the whole table, and every node
 * is found, and removed, while the buckets move. */
struct tnode {
	struct hnode h;
	uint64_t key;
};

static bool tnode_match(const struct hnode *n, const void *key)
{
	return ((const struct tnode *)(const void *)n)->key == *(const uint64_t *)key;
}

/* Buckets of the old array a call may have moved: a few full ones and a
 * bounded run of empty ones (registry_entries.c's HTAB_STEP and
 * HTAB_EMPTY_VISITS), and at most the whole old array when it is that
 * small. */
#define MOVED_MAX (4 + 64)

static size_t moved_by(const struct htab *before, const struct htab *after)
{
	if (!before->old)
		return after->old ? after->moved : 0;
	if (!after->old || after->old != before->old)
		return before->onb - before->moved + (after->old ? after->moved : 0);
	return after->moved - before->moved;
}

static void test_htab_grows_step_by_step(void **state)
{
	enum { N = 200000 };
	struct tnode *v = calloc(N, sizeof(*v));
	struct htab t;
	size_t grows = 0, worst = 0, mid_checks = 0;
	assert_non_null(v);
	assert_int_equal(mreg_htab_init(&t, 16), 0);
	for (uint64_t i = 0; i < N; i++) {
		struct htab before = t;
		v[i].key = i;
		mreg_htab_insert(&t, &v[i].h, mu_hash(&v[i].key, sizeof(v[i].key)));
		if (t.old && !before.old)
			grows++;
		size_t moved = moved_by(&before, &t);
		worst = moved > worst ? moved : worst;
		/* While buckets move, the nodes of either array are found. */
		if (t.old && t.moved > 0 && i % 1009 == 0) {
			mid_checks++;
			for (uint64_t k = 0; k <= i; k += 97)
				assert_ptr_equal(
				        mreg_htab_find(&t, mu_hash(&k, sizeof(k)), tnode_match, &k),
				        &v[k].h);
		}
	}
	printf("htab: %d inserts, %zu grows, at most %zu buckets moved by one call\n", N, grows,
	       worst);
	assert_true(grows >= 10);
	assert_true(mid_checks >= 10);
	assert_true(worst <= MOVED_MAX);
	assert_int_equal(t.n, N);
	for (uint64_t k = 0; k < N; k++) {
		struct htab before = t;
		assert_ptr_equal(mreg_htab_find(&t, mu_hash(&k, sizeof(k)), tnode_match, &k),
		                 &v[k].h);
		assert_true(moved_by(&before, &t) <= MOVED_MAX);
	}
	uint64_t missing = N;
	assert_null(mreg_htab_find(&t, mu_hash(&missing, sizeof(missing)), tnode_match, &missing));
	for (uint64_t k = 0; k < N; k += 2)
		mreg_htab_remove(&t, &v[k].h);
	assert_int_equal(t.n, N / 2);
	for (uint64_t k = 0; k < N; k++) {
		struct hnode *n = mreg_htab_find(&t, mu_hash(&k, sizeof(k)), tnode_match, &k);
		if (k % 2)
			assert_ptr_equal(n, &v[k].h);
		else
			assert_null(n);
	}
	mreg_htab_fini(&t);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_siphash_vectors),
	        cmocka_unit_test(test_keyed),
	        cmocka_unit_test(test_flood),
	        cmocka_unit_test(test_flood_registry),
	        cmocka_unit_test(test_htab_grows_step_by_step),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
