/* SPDX-License-Identifier: MIT */
/* Unit tests of core/tree.c: the table of the tree's fixed names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tree.h"

/* Every entry named, and no name twice in one folder (lookup would find
 * only the first). */
static void test_table(void **state)
{
	for (int i = 0; i < MTREE_COUNT_; i++) {
		assert_non_null(mtree[i].name);
		assert_int_equal(mtree_lookup(mtree[i].name, mtree[i].in_service), i);
	}
	/* Root entries first, then those of a service. */
	for (int i = 1; i < MTREE_COUNT_; i++)
		assert_true(mtree[i].in_service >= mtree[i - 1].in_service);
}

/* What the contract (SPEC.md "The tree") spells. */
static void test_names(void **state)
{
	assert_string_equal(mtree_name(MTREE_SERVICES), "services");
	assert_string_equal(mtree_name(MTREE_REGISTRY), "registry");
	assert_string_equal(mtree_name(MTREE_CONFIG), "config");
	assert_string_equal(mtree_name(MTREE_EVENTS), "events");
	assert_string_equal(mtree_name(MTREE_METRICS), "metrics");
	assert_string_equal(mtree_name(MTREE_CLUSTER), "cluster");
	assert_true(mtree[MTREE_CLUSTER].dir);
	assert_false(mtree[MTREE_CLUSTER].in_service);
	assert_string_equal(mtree_name(MTREE_STORE), "store");
	assert_string_equal(mtree_name(MTREE_PLUGINS), "plugins");
	assert_string_equal(mtree_name(MTREE_SVC_CONFIG), "config");
	assert_string_equal(mtree_name(MTREE_CONFIG_INI), "config.ini");
	assert_string_equal(mtree_name(MTREE_CHAIN), "chain");
	assert_string_equal(mtree_name(MTREE_STATUS), "status");
	assert_false(mtree[MTREE_EVENTS].dir);
	assert_false(mtree[MTREE_METRICS].dir);
	assert_false(mtree[MTREE_METRICS].in_service);
	assert_true(mtree[MTREE_SVC_CONFIG].dir);
	assert_false(mtree[MTREE_CONFIG_INI].dir);
}

static void test_lookup(void **state)
{
	assert_int_equal(mtree_lookup("config", false), MTREE_CONFIG);
	assert_int_equal(mtree_lookup("config", true), MTREE_SVC_CONFIG);
	assert_int_equal(mtree_lookup("store", false), -ENOENT);
	assert_int_equal(mtree_lookup("events", true), -ENOENT);
	assert_int_equal(mtree_lookup("", true), -ENOENT);

	assert_true(mtree_service_reserved("status"));
	assert_true(mtree_service_reserved("config.ini"));
	assert_true(mtree_service_reserved("config"));
	assert_false(mtree_service_reserved("trace"));
	assert_false(mtree_service_reserved("events"));
	/* The metrics plugin publishes services/NAME/metrics. */
	assert_false(mtree_service_reserved("metrics"));
	assert_false(mtree_service_reserved("Status"));
}

static void test_join(void **state)
{
	char buf[MTREE_PATH_MAX];
	char name[MU_NAME_MAX + 1];

	assert_int_equal(mtree_join(buf, sizeof(buf), "services", "api", "store", "k", NULL), 0);
	assert_string_equal(buf, "services/api/store/k");
	/* The first NULL ends the list. */
	assert_int_equal(mtree_join(buf, sizeof(buf), "services", "api", NULL, "k", NULL), 0);
	assert_string_equal(buf, "services/api");

	/* The deepest path, every name at its longest, fits exactly. */
	memset(name, 'n', MU_NAME_MAX);
	name[MU_NAME_MAX] = '\0';
	assert_int_equal(mtree_join(buf, sizeof(buf), "services", name, "config", name, name, NULL),
	                 0);
	assert_int_equal(strlen(buf), sizeof(buf) - 1);

	/* Too long: whole components only, still a string. */
	char small[12];
	assert_int_equal(mtree_join(small, sizeof(small), "registry", "pool", NULL), -ENAMETOOLONG);
	assert_string_equal(small, "registry");
	assert_int_equal(mtree_join(small, sizeof(small), "registry", "p", NULL), 0);
	assert_string_equal(small, "registry/p");
	assert_int_equal(mtree_join(small, sizeof(small), "registry", "po", NULL), 0);
	assert_int_equal(mtree_join(small, sizeof(small), "registry", "poo", NULL), -ENAMETOOLONG);
	assert_int_equal(mtree_join(small, 0, "x", NULL), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_lookup),
	        cmocka_unit_test(test_join),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
