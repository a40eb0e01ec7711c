/* SPDX-License-Identifier: MIT */
/* One reconfiguration that also declares the chain anew (msvc_redeclare_undo,
 * what a SIGHUP reload does to each service): the merge phase over the new
 * chain, the update phase for the plugins that stay, joiners started and
 * leavers stopped; a refusal anywhere leaves chain and configuration as they
 * were; the undo record and the old declared list put it all back. */
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

/* probe: stays in the chain and says what its update phase saw. */
static struct {
	int updates, starts, stops;
	char seen[64]; /* probe/mode as the update phase saw it */
	enum mallafs_update answer;
	int fail_start; /* its start fails with it */
} probe;

static int probe_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	probe.starts++;
	if (probe.fail_start)
		mallafs_reason_set(why, "probe cannot start");
	return probe.fail_start;
}

static void probe_stop(void *state)
{
	probe.stops++;
}

static enum mallafs_update probe_updated(void *state, const struct mallafs_cfg *old,
                                         const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	const char *v = mallafs_cfg_get(cfg, "probe", "mode");
	probe.updates++;
	snprintf(probe.seen, sizeof(probe.seen), "%s", v ? v : "");
	if (probe.answer == MALLAFS_UPDATE_ERROR)
		mallafs_reason_set(why, "probe says no");
	return probe.answer;
}

static const struct mallafs_setting probe_settings[] = {
        {.key = "mode", .def = "a"},
        {0},
};

static const struct mallafs_plugin probe_plugin = {
        .abi = MALLAFS_PLUGIN_ABI,
        .size = sizeof(struct mallafs_plugin),
        .name = "probe",
        .settings = probe_settings,
        .start = probe_start,
        .stop = probe_stop,
        .updated = probe_updated,
};

struct fixture {
	const struct mallafs_plugin **builtins;
	struct mplugreg *reg;
	struct mallafs_svc *svc;
	struct msvc_undo *u;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	size_t n = 0;
	while (mallafs_builtin_plugins[n])
		n++;
	f->builtins = calloc(n + 2, sizeof(*f->builtins));
	memcpy(f->builtins, mallafs_builtin_plugins, n * sizeof(*f->builtins));
	f->builtins[n] = &probe_plugin;
	f->reg = mplugreg_new(f->builtins, NULL);
	struct msvc_env env = {.plugins = f->reg};
	assert_int_equal(msvc_new(&env, "api", &f->svc), 0);
	const char *chain[] = {"probe", "limits"};
	assert_int_equal(msvc_setup(f->svc, chain, 2, NULL, NULL), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	f->u = msvc_undo_new();
	memset(&probe, 0, sizeof(probe));
	probe.answer = MALLAFS_UPDATE_OK;
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
	free(f->builtins);
	free(f);
	return 0;
}

static char *chain_of(struct fixture *f)
{
	static char buf[256];
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(msvc_chain_render(f->svc, &text, &len), 0);
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			text[i] = ' ';
	snprintf(buf, sizeof(buf), "%.*s", (int)len, text);
	free(text);
	return buf;
}

static char *value(struct fixture *f, const char *section, const char *key)
{
	static char buf[256];
	struct mallafs_cfg *e = msvc_config_effective(f->svc);
	const char *v = mallafs_cfg_get(e, section, key);
	snprintf(buf, sizeof(buf), "%s", v ? v : "");
	mcfg_free(e);
	return buf;
}

static struct mallafs_cfg *update_of(const char *ini)
{
	struct mallafs_cfg *c = NULL;
	int line = 0;
	char err[128];
	assert_int_equal(mcfg_parse_ini(ini, strlen(ini), &c, &line, err, sizeof(err)), 0);
	return c;
}

static void test_chain_and_keys_in_one(void **state)
{
	struct fixture *f = *state;
	struct mallafs_cfg *up = update_of("[probe]\nmode = b\n[trace]\nlines = 7\n");
	const char *chain[] = {"trace", "probe"};
	int starts = probe.starts;
	assert_int_equal(msvc_redeclare_undo(f->svc, chain, 2, up, f->u, NULL, NULL), 0);
	assert_string_equal(chain_of(f), "trace probe base ");
	/* The plugin that stays hears of its new key once, not restarted. */
	assert_int_equal(probe.updates, 1);
	assert_string_equal(probe.seen, "b");
	assert_int_equal(probe.starts, starts);
	assert_string_equal(value(f, "trace", "lines"), "7");
	assert_string_equal(value(f, "limits", "max_keys"), ""); /* limits left */
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_RUNNING);

	/* Put back: the configuration, then the old chain. */
	assert_int_equal(msvc_undo_apply(f->svc, f->u), 0);
	const char *old[] = {"probe", "limits"};
	assert_int_equal(msvc_redeclare_undo(f->svc, old, 2, NULL, NULL, NULL, NULL), 0);
	assert_string_equal(chain_of(f), "probe limits base ");
	assert_string_equal(value(f, "probe", "mode"), "a");
	assert_string_equal(value(f, "trace", "lines"), "");
	mcfg_free(up);
}

static void test_refused_update_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct mallafs_cfg *up = update_of("[probe]\nmode = c\n");
	const char *chain[] = {"probe", "trace"};
	probe.answer = MALLAFS_UPDATE_ERROR;
	struct mallafs_reason why = {{0}};
	bool rechained = true;
	assert_int_equal(msvc_redeclare_undo(f->svc, chain, 2, up, f->u, &rechained, &why), -EIO);
	assert_false(rechained);
	assert_non_null(strstr(why.text, "probe says no"));
	assert_string_equal(chain_of(f), "probe limits base ");
	assert_string_equal(value(f, "probe", "mode"), "a");
	assert_true(msvc_undo_empty(f->u));
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_RUNNING);
	mcfg_free(up);
}

static void test_refused_merge_and_names(void **state)
{
	struct fixture *f = *state;
	struct mallafs_cfg *bad = update_of("[limits]\nmax_keys = many\n");
	const char *same[] = {"probe", "limits"};
	const char *twice[] = {"trace", "trace"};
	const char *base[] = {"base"};
	const char *unknown[] = {"nosuch"};
	assert_int_equal(msvc_redeclare_undo(f->svc, same, 2, bad, f->u, NULL, NULL), -EINVAL);
	assert_int_equal(msvc_redeclare_undo(f->svc, twice, 2, NULL, f->u, NULL, NULL), -EEXIST);
	assert_int_equal(msvc_redeclare_undo(f->svc, base, 1, NULL, f->u, NULL, NULL), -EEXIST);
	assert_int_equal(msvc_redeclare_undo(f->svc, unknown, 1, NULL, f->u, NULL, NULL), -ENOENT);
	assert_string_equal(chain_of(f), "probe limits base ");
	assert_string_equal(value(f, "limits", "max_keys"), "0");
	assert_true(msvc_undo_empty(f->u));
	assert_int_equal(probe.updates, 0);
	mcfg_free(bad);
}

static void test_restart_asked(void **state)
{
	struct fixture *f = *state;
	struct mallafs_cfg *up = update_of("[probe]\nmode = d\n");
	const char *chain[] = {"probe"};
	probe.answer = MALLAFS_UPDATE_RESTART;
	int stops = probe.stops;
	assert_int_equal(msvc_redeclare_undo(f->svc, chain, 1, up, NULL, NULL, NULL), 0);
	assert_string_equal(chain_of(f), "probe base ");
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 1);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_int_equal(probe.stops, stops + 1);
	mcfg_free(up);
}

/* A restart the update asked for fails: the new chain and configuration
 * stay (the service failed), and the caller is told, so that it can put
 * both back. */
static void test_failed_restart_reported(void **state)
{
	struct fixture *f = *state;
	struct mallafs_cfg *up = update_of("[probe]\nmode = e\n");
	const char *chain[] = {"probe"};
	struct mallafs_reason why = {{0}};
	bool rechained = false;
	probe.answer = MALLAFS_UPDATE_RESTART;
	probe.fail_start = -EIO;
	assert_int_equal(msvc_redeclare_undo(f->svc, chain, 1, up, f->u, &rechained, &why), -EIO);
	assert_true(rechained);
	assert_non_null(strstr(why.text, "probe cannot start"));
	assert_string_equal(chain_of(f), "probe base ");
	assert_false(msvc_undo_empty(f->u));
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_FAILED);

	/* Put back as a reload's undo does. */
	probe.answer = MALLAFS_UPDATE_OK;
	probe.fail_start = 0;
	assert_int_equal(msvc_undo_apply(f->svc, f->u), 0);
	const char *old[] = {"probe", "limits"};
	assert_int_equal(msvc_redeclare_undo(f->svc, old, 2, NULL, NULL, &rechained, NULL), 0);
	assert_true(rechained);
	assert_string_equal(chain_of(f), "probe limits base ");
	assert_string_equal(value(f, "probe", "mode"), "a");
	mcfg_free(up);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_chain_and_keys_in_one, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refused_update_changes_nothing, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_refused_merge_and_names, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_restart_asked, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_failed_restart_reported, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
