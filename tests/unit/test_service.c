/* SPDX-License-Identifier: MIT */
/* Services: the chain, reconfiguration, lifecycle and the store's path
 * through the plugins. Test plugins record every callback in one log so each
 * test can compare the exact sequence. */
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
#include "events.h"
#include "plugin.h"
#include "service.h"
#include "util.h"

static char calls[8192];

static void record(const char *fmt, ...)
{
	size_t n = strlen(calls);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(calls + n, sizeof(calls) - n, fmt, ap);
	va_end(ap);
}

/* What the test plugins do, set per test. */
static struct {
	const char *reject_merge;   /* plugin whose merge rejects a change of key "bad" */
	const char *fail_update;    /* plugin whose update fails when "fail" is set */
	const char *restart_update; /* plugin whose update asks for a restart */
	const char *fail_start;     /* plugin whose start fails */
	size_t max_value;           /* plugin "cap": refuse writes above this many bytes */
} behave;

struct tstate {
	const struct mallafs_plugin *self;
};

static int t_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret)
{
	struct tstate *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->self = self;
	*ret = s;
	return 0;
}

static void t_fini(void *state)
{
	free(state);
}

static int t_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct tstate *s = state;
	record("%s.start ", s->self->name);
	if (behave.fail_start && strcmp(behave.fail_start, s->self->name) == 0) {
		mallafs_reason_set(why, "cannot open the thing");
		return -EIO;
	}
	return 0;
}

static void t_stop(void *state)
{
	struct tstate *s = state;
	record("%s.stop ", s->self->name);
}

static int t_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                   struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	struct tstate *s = state;
	record("%s.merge ", s->self->name);
	if (behave.reject_merge && strcmp(behave.reject_merge, s->self->name) == 0 &&
	    mallafs_cfg_get(merged, "t", "bad")) {
		mallafs_reason_set(why, "bad is not allowed");
		return -EINVAL;
	}
	return 0;
}

static enum mallafs_update t_updated(void *state, const struct mallafs_cfg *old,
                                     const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct tstate *s = state;
	const char *v = mallafs_cfg_get(cfg, "t", "v");
	record("%s.updated(%s) ", s->self->name, v ? v : "-");
	if (behave.fail_update && strcmp(behave.fail_update, s->self->name) == 0 &&
	    mallafs_cfg_get(cfg, "t", "fail")) {
		mallafs_reason_set(why, "cannot apply");
		return MALLAFS_UPDATE_ERROR;
	}
	if (behave.restart_update && strcmp(behave.restart_update, s->self->name) == 0) {
		mallafs_reason_set(why, "v needs a restart");
		return MALLAFS_UPDATE_RESTART;
	}
	return MALLAFS_UPDATE_OK;
}

static int t_before(void *state, struct mallafs_store_op *op)
{
	struct tstate *s = state;
	record("%s.%s ", s->self->name, mallafs_store_opname(op->code));
	if (strcmp(s->self->name, "cap") == 0 && op->code == MALLAFS_OP_WRITE &&
	    op->size > behave.max_value) {
		mallafs_reason_set(op->why, "value over %zu bytes", behave.max_value);
		return -EFBIG;
	}
	if (strcmp(s->self->name, "upper") == 0 && op->code == MALLAFS_OP_WRITE) {
		static char buf[256];
		size_t n = op->size < sizeof(buf) ? op->size : sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			char c = ((const char *)op->data)[i];
			buf[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
		}
		op->data = buf;
		op->size = n;
	}
	return 0;
}

static void t_after(void *state, const struct mallafs_store_op *op)
{
	struct tstate *s = state;
	record("%s.after(%lld) ", s->self->name, (long long)op->result);
}

static const struct mallafs_setting a_settings[] = {
        {.key = "level", .def = "3"},
        {.key = "mode", .def = "fast", .restart = 1},
        {0},
};

static const char *const deps_c[] = {"c", NULL};
static const char *const deps_cyc2[] = {"cyc2", NULL};
static const char *const deps_cyc1[] = {"cyc1", NULL};

#define TPLUGIN(ident, pname, ...)                                                       \
	static const struct mallafs_plugin ident = {                                     \
	        MALLAFS_PLUGIN_INIT,     .name = pname,        .init = t_init,           \
	        .fini = t_fini,          .start = t_start,     .stop = t_stop,           \
	        .config_merge = t_merge, .updated = t_updated, .store_before = t_before, \
	        .store_after = t_after,  __VA_ARGS__}

TPLUGIN(plug_a, "a", .deps = deps_c, .settings = a_settings);
TPLUGIN(plug_b, "b");
TPLUGIN(plug_c, "c");
TPLUGIN(plug_cap, "cap");
TPLUGIN(plug_upper, "upper");
TPLUGIN(plug_cyc1, "cyc1", .deps = deps_cyc2);
TPLUGIN(plug_cyc2, "cyc2", .deps = deps_cyc1);
static const char *const deps_missing[] = {"nosuch", NULL};
TPLUGIN(plug_orphan, "orphan", .deps = deps_missing);

static const struct mallafs_plugin *const test_plugins[] = {
        &mallafs_plugin_base, &plug_a,    &plug_b,    &plug_c,      &plug_cap,
        &plug_upper,          &plug_cyc1, &plug_cyc2, &plug_orphan, NULL,
};

struct fixture {
	struct mplugreg *reg;
	struct mev_ring *ring;
	struct mallafs_svc *svc;
	uint64_t cursor;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	memset(&behave, 0, sizeof(behave));
	behave.max_value = 1 << 20;
	calls[0] = '\0';
	f->reg = mplugreg_new(test_plugins, NULL);
	f->ring = mev_ring_new(1024);
	struct msvc_env env = {.plugins = f->reg, .events = f->ring};
	assert_int_equal(msvc_new(&env, "api", &f->svc), 0);
	f->cursor = mev_ring_next_seq(f->ring);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	msvc_destroy(f->svc);
	msvc_unref(f->svc);
	mev_ring_free(f->ring);
	mplugreg_free(f->reg);
	free(f);
	return 0;
}

static char *chain_of(struct mallafs_svc *svc)
{
	static char buf[512];
	char *text;
	size_t len;
	assert_int_equal(msvc_chain_render(svc, &text, &len), 0);
	snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

static char *config_of(struct mallafs_svc *svc)
{
	static char buf[2048];
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(svc, &text, &len), 0);
	snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

static struct msvc_status status_of(struct mallafs_svc *svc)
{
	struct msvc_status st;
	msvc_status(svc, &st);
	return st;
}

/* Events since the last call, as text. */
static char *events_of(struct fixture *f)
{
	static char buf[8192];
	ssize_t n = mev_ring_read(f->ring, &f->cursor, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void setup_chain(struct fixture *f, const char *const *names, size_t n)
{
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_setup(f->svc, names, n, NULL, &why), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	calls[0] = '\0';
}

static void test_new_service_has_base_only(void **state)
{
	struct fixture *f = *state;
	assert_string_equal(chain_of(f->svc), "base\n");
	assert_int_equal(status_of(f->svc).state, MSVC_STOPPED);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(status_of(f->svc).state, MSVC_RUNNING);
	struct mallafs_svc *bad;
	struct msvc_env env = {.plugins = f->reg};
	assert_int_equal(msvc_new(&env, "bad/name", &bad), -EINVAL);
	assert_int_equal(msvc_new(&env, "..", &bad), -EINVAL);
	assert_int_equal(msvc_new(&env, "sp ace", &bad), -EINVAL);
}

static void test_chain_order_declared_and_deps(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_setup(f->svc, names, 2, NULL, &why), 0);
	/* a above its dependency c; a before b as declared; base last. */
	assert_string_equal(chain_of(f->svc), "a\nc\nb\nbase\n");
	assert_string_equal(calls, "a.merge c.merge b.merge ");
	calls[0] = '\0';
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(calls, "b.start c.start a.start ");

	/* The same declaration gives the same chain, every time. */
	const char *names2[] = {"b", "a"};
	struct mallafs_svc *other;
	struct msvc_env env = {.plugins = f->reg};
	assert_int_equal(msvc_new(&env, "other", &other), 0);
	assert_int_equal(msvc_setup(other, names2, 2, NULL, &why), 0);
	assert_string_equal(chain_of(other), "b\na\nc\nbase\n");
	msvc_destroy(other);
	msvc_unref(other);
}

static void test_setup_errors(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	const char *cyc[] = {"cyc1"};
	assert_int_equal(msvc_setup(f->svc, cyc, 1, NULL, &why), -ELOOP);
	assert_non_null(strstr(why.text, "cycle"));
	const char *unknown[] = {"nosuch"};
	assert_int_equal(msvc_setup(f->svc, unknown, 1, NULL, &why), -ENOENT);
	const char *twice[] = {"b", "b"};
	assert_int_equal(msvc_setup(f->svc, twice, 2, NULL, &why), -EEXIST);
	const char *orphan[] = {"orphan"};
	assert_int_equal(msvc_setup(f->svc, orphan, 1, NULL, &why), -ENOENT);
	assert_string_equal(chain_of(f->svc), "base\n");
}

static void test_add_plugin(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"b"};
	setup_chain(f, names, 1);
	events_of(f);

	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_add_plugin(f->svc, "a", &why), 0);
	/* On top, with its dependency below it; merge phase, then start bottom to top. */
	assert_string_equal(chain_of(f->svc), "a\nc\nb\nbase\n");
	assert_string_equal(calls, "a.merge c.merge b.merge c.start a.start ");
	char *ev = events_of(f);
	assert_non_null(strstr(ev, "plugin-add services/api/plugins/a\n"));
	assert_non_null(strstr(ev, "plugin-add services/api/plugins/c\n"));
	/* Its settings appear with their defaults. */
	assert_non_null(strstr(config_of(f->svc), "[a]\nlevel = 3\nmode = fast\n"));
}

static void test_add_plugin_errors_leave_chain(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a"};
	setup_chain(f, names, 1);
	struct mallafs_reason why = {{0}};
	const char *before = "a\nc\nbase\n";

	assert_int_equal(msvc_add_plugin(f->svc, "a", &why), -EEXIST);
	assert_int_equal(msvc_add_plugin(f->svc, "c", &why), -EEXIST);
	assert_int_equal(msvc_add_plugin(f->svc, "base", &why), -EEXIST);
	assert_int_equal(msvc_add_plugin(f->svc, "nosuch", &why), -ENOENT);
	assert_int_equal(msvc_add_plugin(f->svc, "cyc1", &why), -ELOOP);
	assert_int_equal(msvc_add_plugin(f->svc, "orphan", &why), -ENOENT);
	assert_int_equal(msvc_add_plugin(f->svc, "bad name", &why), -EINVAL);
	assert_string_equal(chain_of(f->svc), before);
	assert_non_null(strstr(status_of(f->svc).last_error, "bad name") ||
	                strstr(status_of(f->svc).last_error, "invalid plugin name"));

	/* Staged configuration the new plugin's merge rejects: EINVAL, nothing added. */
	behave.reject_merge = "b";
	assert_int_equal(msvc_config_set(f->svc, "t", "bad", "1", 1, &why), 0);
	calls[0] = '\0';
	assert_int_equal(msvc_add_plugin(f->svc, "b", &why), -EINVAL);
	assert_string_equal(why.text, "b: bad is not allowed");
	assert_string_equal(chain_of(f->svc), before);
	assert_null(strstr(calls, "start"));
	assert_non_null(strstr(status_of(f->svc).last_error, "b: bad is not allowed"));

	/* A plugin that cannot start: rolled back whole. */
	behave.reject_merge = NULL;
	behave.fail_start = "b";
	calls[0] = '\0';
	assert_int_equal(msvc_add_plugin(f->svc, "b", &why), -EIO);
	assert_string_equal(chain_of(f->svc), before);
	assert_int_equal(status_of(f->svc).state, MSVC_RUNNING);
	assert_non_null(strstr(status_of(f->svc).last_error, "b: cannot start: cannot open"));
}

static void test_del_plugin(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	setup_chain(f, names, 2);
	struct mallafs_reason why = {{0}};

	assert_int_equal(msvc_del_plugin(f->svc, "base", &why), -EBUSY);
	assert_int_equal(msvc_del_plugin(f->svc, "c", &why), -EBUSY);
	assert_string_equal(why.text, "plugin a needs c");
	assert_int_equal(msvc_del_plugin(f->svc, "nosuch", &why), -ENOENT);
	assert_string_equal(chain_of(f->svc), "a\nc\nb\nbase\n");
	assert_string_equal(calls, "");

	/* a goes, and c with it (only a needed it), top to bottom. */
	events_of(f);
	assert_int_equal(msvc_del_plugin(f->svc, "a", &why), 0);
	assert_string_equal(chain_of(f->svc), "b\nbase\n");
	assert_string_equal(calls, "b.merge a.stop c.stop ");
	assert_non_null(strstr(events_of(f), "plugin-del services/api/plugins/a\n"));
	/* Its section (defaults only) is gone too. */
	assert_null(strstr(config_of(f->svc), "[a]"));
}

static void test_del_keeps_declared_dependency(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "c"};
	setup_chain(f, names, 2);
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_del_plugin(f->svc, "a", &why), 0);
	assert_string_equal(chain_of(f->svc), "c\nbase\n");
}

static void test_reconfigure_orders(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	setup_chain(f, names, 2);
	struct mallafs_reason why = {{0}};

	assert_int_equal(msvc_config_set(f->svc, "t", "v", "1\n", 2, &why), 0);
	/* Merge top to bottom, update bottom to top. */
	assert_string_equal(calls, "a.merge c.merge b.merge b.updated(1) c.updated(1) "
	                           "a.updated(1) ");
	assert_non_null(strstr(config_of(f->svc), "[t]\nv = 1\n"));

	/* Nothing changed: merge only, no update callbacks. */
	calls[0] = '\0';
	assert_int_equal(msvc_config_set(f->svc, "t", "v", "1", 1, &why), 0);
	assert_string_equal(calls, "a.merge c.merge b.merge ");
	/* A default written explicitly changes nothing either. */
	calls[0] = '\0';
	assert_int_equal(msvc_config_set(f->svc, "a", "level", "3", 1, &why), 0);
	assert_null(strstr(calls, "updated"));
}

static void test_reconfigure_rejected(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	setup_chain(f, names, 2);
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(f->svc, "t", "v", "1", 1, &why), 0);
	char before[2048];
	snprintf(before, sizeof(before), "%s", config_of(f->svc));
	events_of(f);

	behave.reject_merge = "c";
	calls[0] = '\0';
	struct mallafs_cfg *update = mcfg_new();
	mallafs_cfg_set(update, "t", "bad", "x");
	mallafs_cfg_set(update, "t", "v", "2");
	assert_int_equal(msvc_reconfigure(f->svc, update, &why), -EINVAL);
	mcfg_free(update);
	/* a saw it, c rejected it, b never saw it; nobody was told of an update. */
	assert_string_equal(calls, "a.merge c.merge ");
	assert_string_equal(why.text, "c: bad is not allowed");
	assert_string_equal(config_of(f->svc), before);
	assert_non_null(strstr(status_of(f->svc).last_error, "c: bad is not allowed"));
	assert_null(strstr(events_of(f), "reconfigure"));
}

static void test_reconfigure_update_error_rolls_back(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	setup_chain(f, names, 2);
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(f->svc, "t", "v", "1", 1, &why), 0);
	char before[2048];
	snprintf(before, sizeof(before), "%s", config_of(f->svc));

	behave.fail_update = "a";
	calls[0] = '\0';
	struct mallafs_cfg *update = mcfg_new();
	mallafs_cfg_set(update, "t", "v", "2");
	mallafs_cfg_set(update, "t", "fail", "yes");
	assert_int_equal(msvc_reconfigure(f->svc, update, &why), -EIO);
	mcfg_free(update);
	/* b and c were told of v=2, a failed; c and b are told of v=1 again. */
	assert_string_equal(calls, "a.merge c.merge b.merge b.updated(2) c.updated(2) "
	                           "a.updated(2) c.updated(1) b.updated(1) ");
	assert_string_equal(why.text, "a: cannot apply");
	assert_string_equal(config_of(f->svc), before);
	assert_non_null(strstr(status_of(f->svc).last_error, "a: cannot apply"));
	assert_int_equal(status_of(f->svc).restarts, 0);
}

static void test_reconfigure_restart_keeps_store(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	setup_chain(f, names, 2);
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "kept", 4, 0), 4);

	behave.restart_update = "c";
	calls[0] = '\0';
	events_of(f);
	assert_int_equal(msvc_config_set(f->svc, "a", "mode", "slow", 4, &why), 0);
	assert_string_equal(calls, "a.merge c.merge b.merge b.updated(-) c.updated(-) "
	                           "a.updated(-) a.stop c.stop b.stop b.start c.start a.start ");
	struct msvc_status st = status_of(f->svc);
	assert_int_equal(st.restarts, 1);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_non_null(strstr(st.last_restart, "c: v needs a restart"));
	assert_non_null(strstr(events_of(f), "restart services/api c: v needs a restart\n"));

	char buf[16] = {0};
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "kept");
}

static void test_config_keys_and_sections(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a"};
	setup_chain(f, names, 1);
	struct mallafs_reason why = {{0}};

	/* Deep merge: a second key leaves the first. */
	assert_int_equal(msvc_config_set(f->svc, "x", "one", "1", 1, &why), 0);
	assert_int_equal(msvc_config_set(f->svc, "x", "two", "2", 1, &why), 0);
	assert_non_null(strstr(config_of(f->svc), "[x]\none = 1\ntwo = 2\n"));
	const char *ini = "[x]\ntwo = 22\n[y]\nk = v\n";
	assert_int_equal(msvc_config_apply_ini(f->svc, ini, strlen(ini), &why), 0);
	assert_non_null(strstr(config_of(f->svc), "[x]\none = 1\ntwo = 22\n\n[y]\nk = v\n"));

	/* Malformed INI names the line and changes nothing. */
	ini = "[x]\none = 9\nnonsense\n";
	assert_int_equal(msvc_config_apply_ini(f->svc, ini, strlen(ini), &why), -EINVAL);
	assert_non_null(strstr(why.text, "line 3"));
	assert_non_null(strstr(config_of(f->svc), "one = 1\n"));
	assert_non_null(strstr(status_of(f->svc).last_error, "line 3"));

	/* rm of a set plugin setting returns it to its default. */
	assert_int_equal(msvc_config_set(f->svc, "a", "level", "9", 1, &why), 0);
	assert_non_null(strstr(config_of(f->svc), "level = 9\n"));
	assert_int_equal(msvc_config_unset(f->svc, "a", "level", &why), 0);
	assert_non_null(strstr(config_of(f->svc), "level = 3\n"));
	assert_int_equal(msvc_config_unset(f->svc, "a", "level", &why), 0);
	assert_int_equal(msvc_config_unset(f->svc, "a", "nosuch", &why), -ENOENT);
	assert_int_equal(msvc_config_unset(f->svc, "x", "one", &why), 0);
	assert_null(strstr(config_of(f->svc), "one = 1"));

	/* Sections. */
	assert_int_equal(msvc_config_add_section(f->svc, "empty", &why), 0);
	assert_non_null(strstr(config_of(f->svc), "[empty]\n"));
	assert_int_equal(msvc_config_add_section(f->svc, "empty", &why), -EEXIST);
	assert_int_equal(msvc_config_add_section(f->svc, "a", &why), -EEXIST);
	assert_int_equal(msvc_config_add_section(f->svc, "bad name", &why), -EINVAL);
	assert_int_equal(msvc_config_del_section(f->svc, "x", &why), -ENOTEMPTY);
	assert_int_equal(msvc_config_del_section(f->svc, "a", &why), -ENOTEMPTY);
	assert_int_equal(msvc_config_del_section(f->svc, "nosuch", &why), -ENOENT);
	assert_int_equal(msvc_config_del_section(f->svc, "empty", &why), 0);
	assert_null(strstr(config_of(f->svc), "[empty]"));

	/* A value with a NUL byte is refused. */
	assert_int_equal(msvc_config_set(f->svc, "x", "k", "a\0b", 3, &why), -EINVAL);
}

static void test_config_staged_for_absent_plugin(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(msvc_config_set(f->svc, "a", "level", "7", 1, &why), 0);
	assert_int_equal(msvc_add_plugin(f->svc, "a", &why), 0);
	char *cfg = config_of(f->svc);
	assert_non_null(strstr(cfg, "[a]\nlevel = 7\nmode = fast\n"));
}

static void test_store_through_chain(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"cap", "b"};
	setup_chain(f, names, 2);
	behave.max_value = 8;

	assert_int_equal(msvc_store_write(f->svc, "k", 0, "hello", 5, 0), 5);
	/* Top to bottom before, bottom to top after. */
	assert_string_equal(calls, "cap.put b.put b.after(5) cap.after(5) ");
	char buf[32] = {0};
	calls[0] = '\0';
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "hello");
	assert_string_equal(calls, "cap.get b.get b.after(5) cap.after(5) ");

	/* Refused at the top: nothing below sees it, nothing stored changes. */
	calls[0] = '\0';
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "0123456789", 10, MALLAFS_OPF_REPLACE),
	                 -EFBIG);
	assert_string_equal(calls, "cap.put cap.after(-27) ");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "hello");
	assert_non_null(strstr(status_of(f->svc).last_error, "cap refused put k: value over 8"));

	/* Misses, renames, deletes, listing. */
	assert_int_equal(msvc_store_read(f->svc, "nope", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(msvc_store_rename(f->svc, "k", "k2"), 0);
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(msvc_store_create(f->svc, "e"), 0);
	assert_int_equal(msvc_store_create(f->svc, "e"), -EEXIST);
	assert_int_equal(msvc_store_truncate(f->svc, "k2", 2), 0);
	struct mkv_stat st;
	assert_int_equal(msvc_store_stat(f->svc, "k2", &st), 0);
	assert_int_equal(st.size, 2);
	assert_int_equal(msvc_store_delete(f->svc, "e"), 0);
	assert_int_equal(msvc_store_delete(f->svc, "e"), -ENOENT);
	assert_int_equal(msvc_store_write(f->svc, "bad/key", 0, "x", 1, 0), -EINVAL);
	assert_int_equal(msvc_store_write(f->svc, "..", 0, "x", 1, 0), -EINVAL);
}

static void test_store_hook_changes_value(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"upper"};
	setup_chain(f, names, 1);
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "shout", 5, 0), 5);
	char buf[8] = {0};
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "SHOUT");
}

static void test_store_events(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	events_of(f);
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "abc", 3, 0), 3);
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "Z", 1, MALLAFS_OPF_APPEND), 1);
	assert_int_equal(msvc_store_rename(f->svc, "k", "j"), 0);
	assert_int_equal(msvc_store_delete(f->svc, "j"), 0);
	char *ev = events_of(f);
	const char *want[] = {"create services/api/store/k\n", "write services/api/store/k 3\n",
	                      "write services/api/store/k 4\n",
	                      "rename services/api/store/k services/api/store/j\n",
	                      "delete services/api/store/j\n"};
	const char *p = ev;
	for (size_t i = 0; i < MU_ARRAY_SIZE(want); i++) {
		const char *hit = strstr(p, want[i]);
		assert_non_null(hit);
		p = hit + strlen(want[i]);
	}
}

static void test_admin_status(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"b"};
	setup_chain(f, names, 1);
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "v", 1, 0), 1);

	calls[0] = '\0';
	assert_int_equal(msvc_set_admin_text(f->svc, "pause\n", 6), 0);
	assert_int_equal(status_of(f->svc).state, MSVC_PAUSED);
	assert_int_equal(status_of(f->svc).admin, MSVC_ADMIN_PAUSE);
	assert_string_equal(calls, ""); /* paused plugins keep running */

	assert_int_equal(msvc_set_admin_text(f->svc, "inactive", 8), 0);
	assert_int_equal(status_of(f->svc).state, MSVC_STOPPED);
	assert_string_equal(calls, "b.stop ");
	/* The store works in every state; stopped plugins see nothing. */
	calls[0] = '\0';
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "w", 1, 0), 1);
	assert_string_equal(calls, "");

	assert_int_equal(msvc_set_admin_text(f->svc, "active\n", 7), 0);
	assert_int_equal(status_of(f->svc).state, MSVC_RUNNING);
	assert_string_equal(calls, "b.start ");

	assert_int_equal(msvc_set_admin_text(f->svc, "running", 7), -EINVAL);
	assert_int_equal(msvc_set_admin_text(f->svc, "active\n\n", 8), -EINVAL);
	assert_int_equal(status_of(f->svc).admin, MSVC_ADMIN_ACTIVE);
	assert_non_null(strstr(status_of(f->svc).last_error, "status:"));

	char *text;
	size_t len;
	assert_int_equal(msvc_status_render(f->svc, &text, &len), 0);
	assert_non_null(strstr(text, "state: running\nadmin: active\nrestarts: 0\n"
	                             "last_restart: -\nlast_error: "));
	assert_int_equal(len, strlen(text));
	free(text);
}

static void test_start_failure(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_setup(f->svc, names, 2, NULL, &why), 0);
	calls[0] = '\0';
	behave.fail_start = "c";
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), -EIO);
	/* b started, c failed, b stopped again; a never started. */
	assert_string_equal(calls, "b.start c.start b.stop ");
	assert_int_equal(status_of(f->svc).state, MSVC_FAILED);
	assert_non_null(strstr(status_of(f->svc).last_error, "c: cannot start: cannot open"));
	/* The store still works. */
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "v", 1, 0), 1);

	behave.fail_start = NULL;
	calls[0] = '\0';
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(status_of(f->svc).state, MSVC_RUNNING);
	assert_string_equal(calls, "b.start c.start a.start ");
}

static void test_destroy_stops_top_to_bottom(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"a", "b"};
	setup_chain(f, names, 2);
	msvc_destroy(f->svc);
	assert_string_equal(calls, "a.stop c.stop b.stop ");
	char buf[4];
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, 4), -ENOENT);
	struct mallafs_reason why;
	assert_int_equal(msvc_add_plugin(f->svc, "b", &why), -ENOENT);
}

static void test_plugin_abi_check(void **state)
{
	struct mallafs_plugin d = {.abi = MALLAFS_PLUGIN_ABI + 1, .size = sizeof(d), .name = "x"};
	struct mallafs_reason why = {{0}};
	assert_int_equal(mplugreg_check(&d, "x", &why), -EINVAL);
	assert_non_null(strstr(why.text, "ABI version"));
	d.abi = MALLAFS_PLUGIN_ABI;
	assert_int_equal(mplugreg_check(&d, "x", &why), 0);
	assert_int_equal(mplugreg_check(&d, "y", &why), -EINVAL);
	d.size = 4;
	assert_int_equal(mplugreg_check(&d, "x", &why), -EINVAL);
	static const struct mallafs_file files[] = {{.name = "status", .render = NULL}, {0}};
	d.size = sizeof(d);
	d.files = files;
	assert_int_equal(mplugreg_check(&d, "x", &why), -EINVAL);
}

static void test_external_plugins(void **state)
{
	const char *dir = getenv("MALLAFS_TEST_PLUGIN_DIR");
	if (!dir) {
		fail_msg("MALLAFS_TEST_PLUGIN_DIR is not set (meson sets it)");
		return;
	}
	struct mplugreg *reg = mplugreg_new(mallafs_builtin_plugins, dir);
	const struct mallafs_plugin *p;
	struct mallafs_reason why = {{0}};
	int r = mplugreg_find(reg, "testext", &p, &why);
	if (r != 0)
		fail_msg("loading testext: %s", why.text);
	assert_string_equal(p->name, "testext");
	assert_int_equal(p->size, sizeof(struct mallafs_plugin));
	const struct mallafs_plugin *again;
	assert_int_equal(mplugreg_find(reg, "testext", &again, &why), 0);
	assert_ptr_equal(p, again);
	assert_int_equal(mplugreg_find(reg, "testabi", &p, &why), -EINVAL);
	assert_non_null(strstr(why.text, "ABI version 999"));
	assert_int_equal(mplugreg_find(reg, "nosuch", &p, &why), -ENOENT);
	assert_int_equal(mplugreg_find(reg, "../etc", &p, &why), -EINVAL);

	/* A service can use it. */
	struct msvc_env env = {.plugins = reg};
	struct mallafs_svc *svc;
	assert_int_equal(msvc_new(&env, "ext", &svc), 0);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(msvc_add_plugin(svc, "testext", &why), 0);
	char *text;
	size_t len;
	assert_int_equal(msvc_file_render(svc, "hello", &text, &len), 0);
	assert_string_equal(text, "hello from testext\n");
	free(text);
	msvc_destroy(svc);
	msvc_unref(svc);
	mplugreg_free(reg);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	const struct CMUnitTest tests[] = {
	        T(test_new_service_has_base_only),
	        T(test_chain_order_declared_and_deps),
	        T(test_setup_errors),
	        T(test_add_plugin),
	        T(test_add_plugin_errors_leave_chain),
	        T(test_del_plugin),
	        T(test_del_keeps_declared_dependency),
	        T(test_reconfigure_orders),
	        T(test_reconfigure_rejected),
	        T(test_reconfigure_update_error_rolls_back),
	        T(test_reconfigure_restart_keeps_store),
	        T(test_config_keys_and_sections),
	        T(test_config_staged_for_absent_plugin),
	        T(test_store_through_chain),
	        T(test_store_hook_changes_value),
	        T(test_store_events),
	        T(test_admin_status),
	        T(test_start_failure),
	        T(test_destroy_stops_top_to_bottom),
	        cmocka_unit_test(test_plugin_abi_check),
	        cmocka_unit_test(test_external_plugins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
