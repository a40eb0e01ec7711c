/* SPDX-License-Identifier: MIT */
/* Undo records (core/service_undo.c): a document applied in parts is
 * undone whole, keys another writer changed meanwhile stay, and each part
 * applies only what it adds to the parts before. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "plugin.h"
#include "service.h"

struct fixture {
	struct mplugreg *reg;
	struct mallafs_svc *svc;
	struct msvc_undo *u;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->reg = mplugreg_new(mallafs_builtin_plugins, NULL);
	struct msvc_env env = {.plugins = f->reg};
	assert_int_equal(msvc_new(&env, "api", &f->svc), 0);
	assert_int_equal(msvc_add_plugin(f->svc, "limits", NULL), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	f->u = msvc_undo_new();
	assert_non_null(f->u);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	msvc_undo_free(f->u);
	msvc_destroy(f->svc);
	msvc_unref(f->svc);
	mplugreg_free(f->reg);
	free(f);
	return 0;
}

/* The effective value of section/key, or "" when there is none. */
static char *value(struct fixture *f, const char *section, const char *key)
{
	static char buf[256];
	struct mallafs_cfg *e = msvc_config_effective(f->svc);
	const char *v = mallafs_cfg_get(e, section, key);
	snprintf(buf, sizeof(buf), "%s", v ? v : "");
	mcfg_free(e);
	return buf;
}

static int ini(struct fixture *f, const char *text)
{
	return msvc_config_apply_ini_undo(f->svc, text, strlen(text), f->u, NULL);
}

static void test_parts_undone_whole(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(msvc_config_set(f->svc, "limits", "max_keys", "100", 3, NULL), 0);
	const char *p1 = "[limits]\nmax_keys = 5\n";
	const char *p2 = "[limits]\nmax_keys = 5\n[fresh]\nk = v\n";
	const char *p3 = "[limits]\nmax_keys = 5\n[fresh]\nk = v\n[limits]\nmax_value_bytes = x\n";
	assert_int_equal(ini(f, p1), 0);
	assert_string_equal(value(f, "limits", "max_keys"), "5");
	assert_int_equal(ini(f, p2), 0);
	assert_string_equal(value(f, "fresh", "k"), "v");
	assert_false(msvc_undo_empty(f->u));
	assert_int_equal(ini(f, p3), -EINVAL);
	assert_int_equal(msvc_undo_apply(f->svc, f->u), 0);
	assert_string_equal(value(f, "limits", "max_keys"), "100");
	assert_string_equal(value(f, "fresh", "k"), "");
	struct mallafs_cfg *e = msvc_config_effective(f->svc);
	assert_false(mcfg_has_section(e, "fresh")); /* the section it made goes too */
	mcfg_free(e);
	assert_true(msvc_undo_empty(f->u));
}

static void test_other_writers_stay(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(ini(f, "[app]\nx = 1\ny = 1\n"), 0);
	/* Another writer changes x; the next part, which repeats x = 1 as
	 * the document so far, applies only what it adds. */
	assert_int_equal(msvc_config_set(f->svc, "app", "x", "2", 1, NULL), 0);
	assert_int_equal(ini(f, "[app]\nx = 1\ny = 1\nz = 1\n"), 0);
	assert_string_equal(value(f, "app", "x"), "2");
	assert_string_equal(value(f, "app", "z"), "1");
	assert_int_equal(msvc_undo_apply(f->svc, f->u), 0);
	assert_string_equal(value(f, "app", "x"), "2"); /* theirs stays */
	assert_string_equal(value(f, "app", "y"), "");
	assert_string_equal(value(f, "app", "z"), "");
}

static void test_key_value_undone(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(msvc_config_set_undo(f->svc, "limits", "max_keys", "9\n", 2, f->u, NULL),
	                 0);
	assert_string_equal(value(f, "limits", "max_keys"), "9");
	assert_int_equal(
	        msvc_config_set_undo(f->svc, "limits", "max_keys", "9\nnine\n", 7, f->u, NULL),
	        -EINVAL);
	assert_int_equal(msvc_undo_apply(f->svc, f->u), 0);
	/* Back to no value: the plugin's default shows. */
	struct mallafs_cfg *e = msvc_config_effective(f->svc);
	const struct mallafs_plugin *lim = NULL;
	for (size_t i = 0; mallafs_builtin_plugins[i]; i++)
		if (strcmp(mallafs_builtin_plugins[i]->name, "limits") == 0)
			lim = mallafs_builtin_plugins[i];
	assert_non_null(lim);
	assert_string_equal(value(f, "limits", "max_keys"), mallafs_setting(NULL, lim, "max_keys"));
	mcfg_free(e);
}

static void test_nothing_to_undo(void **state)
{
	struct fixture *f = *state;
	assert_true(msvc_undo_empty(f->u));
	assert_int_equal(msvc_undo_apply(f->svc, f->u), 0);
	/* A part that changes nothing records nothing. */
	assert_int_equal(msvc_config_set(f->svc, "app", "x", "1", 1, NULL), 0);
	assert_int_equal(ini(f, "[app]\nx = 1\n"), 0);
	assert_true(msvc_undo_empty(f->u));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_parts_undone_whole, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_other_writers_stay, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_key_value_undone, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_nothing_to_undo, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
