/* SPDX-License-Identifier: MIT */
/* The persistent tree of a configuration's sections (core/cfg_tree.c): a
 * copy shares everything and a change to one side never shows on the
 * other, even after the other is freed; the tree stays shallow whatever
 * the order of the names; walks see name order; equal sets compare equal
 * whatever the history. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg_i.h"
#include "util.h"

static char *render(const struct mallafs_cfg *cfg)
{
	char *text;
	size_t len;
	assert_int_equal(mallafs_cfg_render(cfg, &text, &len), 0);
	return text;
}

static struct mallafs_cfg *numbered(size_t n, size_t step)
{
	struct mallafs_cfg *cfg = mcfg_new();
	char name[32];
	assert_non_null(cfg);
	/* step coprime with n visits every number once, in a scrambled order. */
	for (size_t i = 0, j = 0; i < n; i++, j = (j + step) % n) {
		snprintf(name, sizeof(name), "s%05zu", j);
		assert_int_equal(mallafs_cfg_set(cfg, name, "k", name), 0);
	}
	return cfg;
}

static void test_copy_on_write(void **state)
{
	struct mallafs_cfg *a = numbered(1000, 1);
	char *before = render(a);
	struct mallafs_cfg *b = mcfg_dup(a);
	assert_true(mcfg_equal(a, b));

	assert_int_equal(mallafs_cfg_set(b, "s00500", "k", "changed"), 0);
	assert_int_equal(mallafs_cfg_set(b, "s00500", "new", "1"), 0);
	assert_int_equal(mcfg_del_section(b, "s00010"), 0);
	assert_int_equal(mcfg_add_section(b, "zz"), 0);
	assert_int_equal(mallafs_cfg_unset(b, "s00999", "k"), 0);
	assert_false(mcfg_equal(a, b));

	char *after = render(a);
	assert_string_equal(after, before);
	free(after);
	assert_string_equal(mallafs_cfg_get(a, "s00500", "k"), "s00500");
	assert_null(mallafs_cfg_get(a, "s00500", "new"));
	assert_true(mcfg_has_section(a, "s00010"));
	assert_false(mcfg_has_section(a, "zz"));
	assert_string_equal(mallafs_cfg_get(a, "s00999", "k"), "s00999");
	assert_int_equal(mcfg_nsections(a), 1000);

	/* The copy outlives the original (ASan sees any use after free). */
	mcfg_free(a);
	assert_string_equal(mallafs_cfg_get(b, "s00500", "k"), "changed");
	assert_string_equal(mallafs_cfg_get(b, "s00001", "k"), "s00001");
	assert_false(mcfg_has_section(b, "s00010"));
	assert_true(mcfg_has_section(b, "zz"));
	assert_int_equal(mcfg_section_len(b, "s00999"), 0);
	assert_int_equal(mcfg_nsections(b), 1000);

	/* A merge into a copy leaves the source as it was, too. */
	struct mallafs_cfg *c = mcfg_dup(b), *u = mcfg_new();
	assert_int_equal(mallafs_cfg_set(u, "s00002", "k", "merged"), 0);
	assert_int_equal(mcfg_set_removed_section(u, "zz"), 0);
	assert_int_equal(mcfg_merge(c, u), 0);
	assert_string_equal(mallafs_cfg_get(c, "s00002", "k"), "merged");
	assert_string_equal(mallafs_cfg_get(b, "s00002", "k"), "s00002");
	assert_true(mcfg_has_section(b, "zz"));
	assert_false(mcfg_has_section(c, "zz"));
	mcfg_free(u);
	mcfg_free(c);
	mcfg_free(b);
	free(before);
}

/* Sorted insertion, the worst case of a plain search tree (a list), and
 * removal of every other name: the depth stays logarithmic. */
static void test_shallow(void **state)
{
	struct mallafs_cfg *cfg = numbered(10000, 1);
	size_t h = mcfg_tree_height(cfg->root);
	printf("height with 10000 sections inserted in order: %zu\n", h);
	assert_true(h <= 48); /* about 2.5 log2(n) for a random treap */
	char name[32];
	for (size_t i = 0; i < 10000; i += 2) {
		snprintf(name, sizeof(name), "s%05zu", i);
		assert_int_equal(mcfg_del_section(cfg, name), 0);
	}
	assert_int_equal(mcfg_nsections(cfg), 5000);
	assert_true(mcfg_tree_height(cfg->root) <= 44);
	mcfg_free(cfg);
}

struct order {
	char last[32];
	size_t n;
};

static int check_order(const char *section, void *arg)
{
	struct order *o = arg;
	assert_true(o->n == 0 || strcmp(o->last, section) < 0);
	snprintf(o->last, sizeof(o->last), "%s", section);
	o->n++;
	return 0;
}

/* The same names added in different orders: equal, and walked in name
 * order; a copy changed and changed back is equal again. */
static void test_order_and_equal(void **state)
{
	struct mallafs_cfg *a = numbered(997, 1), *b = numbered(997, 331);
	assert_true(mcfg_equal(a, b));
	struct order o = {{0}};
	assert_int_equal(mcfg_foreach_section(b, check_order, &o), 0);
	assert_int_equal(o.n, 997);
	char *ra = render(a), *rb = render(b);
	assert_string_equal(ra, rb);
	free(ra);
	free(rb);

	struct mallafs_cfg *c = mcfg_dup(a);
	assert_int_equal(mcfg_del_section(c, "s00100"), 0);
	assert_false(mcfg_equal(a, c));
	assert_int_equal(mallafs_cfg_set(c, "s00100", "k", "s00100"), 0);
	assert_true(mcfg_equal(a, c));
	assert_true(mcfg_equal(b, c));
	assert_int_equal(mallafs_cfg_set(c, "s00100", "k", "other"), 0);
	assert_false(mcfg_equal(b, c));
	mcfg_free(a);
	mcfg_free(b);
	mcfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_copy_on_write),
	        cmocka_unit_test(test_shallow),
	        cmocka_unit_test(test_order_and_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
