/* SPDX-License-Identifier: MIT */
/* The bootstrap loader: files written to a temporary folder, loaded into a
 * fresh runtime, and the runtime (or the error line) checked. */
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bootstrap.h"
#include "builtin.h"
#include "cfg.h"
#include "nodecfg.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

static char tmpdir[PATH_MAX / 2];
static char paths[64][PATH_MAX];
static size_t npaths;

static int setup_dir(void **state)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/mallafs-boot-XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	for (size_t i = 0; i < npaths; i++)
		unlink(paths[i]);
	return rmdir(tmpdir);
}

/* Writes text to tmpdir/name and returns the file's path. */
static const char *write_file(const char *name, const char *text)
{
	assert_true(npaths < sizeof(paths) / sizeof(paths[0]));
	char *p = paths[npaths++];
	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	return p;
}

static struct mrt *new_rt(void)
{
	struct mrt_options o = {
	        .builtins = mallafs_builtin_plugins,
	        .plugin_dir = getenv("MALLAFS_TEST_PLUGIN_DIR"),
	        .event_capacity = 256,
	};
	struct mrt *rt = mrt_new(&o);
	assert_non_null(rt);
	return rt;
}

/* Loads text as the file name into a new runtime; expects rc and, for an
 * error, the message "PATH:" + suffix exactly. */
static struct mrt *load(const char *name, const char *text, int rc, const char *suffix)
{
	const char *path = write_file(name, text);
	struct mrt *rt = new_rt();
	char err[1024] = "untouched";
	assert_int_equal(mboot_load(rt, path, err, sizeof(err)), rc);
	if (rc == 0) {
		assert_string_equal(err, "");
		return rt;
	}
	char want[2048];
	snprintf(want, sizeof(want), "%s:%s", path, suffix);
	assert_string_equal(err, want);
	assert_null(strchr(err, '\n'));
	return rt;
}

static int count_service(const char *name, uint64_t id, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int nservices(struct mrt *rt)
{
	int n = 0;
	assert_int_equal(mrt_service_list(rt, 0, count_service, &n), 0);
	return n;
}

static int collect(const char *name, uint64_t id, void *arg)
{
	char *buf = arg;
	size_t n = strlen(buf);
	snprintf(buf + n, 512 - n, "%s:%llu ", name, (unsigned long long)id);
	return 0;
}

static void expect_state(struct mrt *rt, const char *name, enum msvc_state state,
                         enum msvc_admin admin)
{
	struct mallafs_svc *svc = mrt_service_get(rt, name);
	assert_non_null(svc);
	struct msvc_status st;
	msvc_status(svc, &st);
	assert_string_equal(msvc_state_name(st.state), msvc_state_name(state));
	assert_int_equal(st.admin, admin);
	msvc_unref(svc);
}

static void expect_text(struct mrt *rt, const char *name,
                        int (*render)(struct mallafs_svc *, char **, size_t *), const char *want)
{
	struct mallafs_svc *svc = mrt_service_get(rt, name);
	assert_non_null(svc);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(render(svc, &text, &len), 0);
	assert_string_equal(text, want);
	free(text);
	msvc_unref(svc);
}

static void expect_nodecfg(struct mrt *rt, const char *app, const char *key, const char *want)
{
	char buf[256];
	ssize_t n = mnodecfg_read(mrt_nodecfg(rt), app, key, 0, buf, sizeof(buf));
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
}

static void test_example(void **state)
{
	struct mrt *rt = load("example.ini",
	                      "; a service and its chain, top to bottom (base is implied last)\n"
	                      "[services.api]\n"
	                      "plugins =\n"
	                      "admin = active\n"
	                      "\n"
	                      "; a section of the service's configuration\n"
	                      "[services.api.limits]\n"
	                      "max_keys = 1000\n"
	                      "\n"
	                      "; node-wide configuration\n"
	                      "[config.my_app]\n"
	                      "api_key = secret_key\n"
	                      "empty =\n",
	                      0, NULL);
	assert_int_equal(nservices(rt), 1);
	expect_state(rt, "api", MSVC_RUNNING, MSVC_ADMIN_ACTIVE);
	expect_text(rt, "api", msvc_chain_render, "base\n");
	expect_text(rt, "api", msvc_config_render, "[limits]\nmax_keys = 1000\n");
	/* Byte-exact: no newline added, an empty value is an empty file. */
	expect_nodecfg(rt, "my_app", "api_key", "secret_key");
	expect_nodecfg(rt, "my_app", "empty", "");
	mrt_free(rt);
}

static bool have_builtin(const char *name)
{
	for (const struct mallafs_plugin *const *p = mallafs_builtin_plugins; *p; p++)
		if (strcmp((*p)->name, name) == 0)
			return true;
	return false;
}

/* SPEC.md's own example, word for word. */
static void test_spec_example(void **state)
{
	if (!have_builtin("trace") || !have_builtin("metrics"))
		skip();
	struct mrt *rt = load("spec.ini",
	                      "; a service and its chain, top to bottom (base is implied last)\n"
	                      "[services.api]\n"
	                      "plugins = trace, metrics\n"
	                      "admin = active\n"
	                      "\n"
	                      "; a section of the service's configuration\n"
	                      "[services.api.limits]\n"
	                      "max_keys = 1000\n"
	                      "\n"
	                      "; node-wide configuration\n"
	                      "[config.my_app]\n"
	                      "api_key = secret_key\n",
	                      0, NULL);
	expect_state(rt, "api", MSVC_RUNNING, MSVC_ADMIN_ACTIVE);
	expect_text(rt, "api", msvc_chain_render, "trace\nmetrics\nbase\n");
	/* limits is not in the chain: its section waits for it. */
	struct mallafs_svc *svc = mrt_service_get(rt, "api");
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(msvc_config_render(svc, &text, &len), 0);
	assert_non_null(strstr(text, "[limits]\nmax_keys = 1000\n"));
	free(text);
	msvc_unref(svc);
	expect_nodecfg(rt, "my_app", "api_key", "secret_key");
	mrt_free(rt);
}

static void test_empty_file(void **state)
{
	struct mrt *rt = load("empty.ini", "", 0, NULL);
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
	rt = load("comments.ini", "; nothing\n\n# at all\n", 0, NULL);
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
}

static void test_admin(void **state)
{
	struct mrt *rt = load("admin.ini",
	                      "[services.off]\nadmin = inactive\n"
	                      "[services.paused]\nadmin = pause\n"
	                      "[services.on]\n",
	                      0, NULL);
	expect_state(rt, "off", MSVC_STOPPED, MSVC_ADMIN_INACTIVE);
	expect_state(rt, "paused", MSVC_PAUSED, MSVC_ADMIN_PAUSE);
	expect_state(rt, "on", MSVC_RUNNING, MSVC_ADMIN_ACTIVE);
	mrt_free(rt);

	rt = load("badadmin.ini", "[services.api]\nadmin = sleepy\n", -EINVAL,
	          "2: service api: admin must be active, pause or inactive, not 'sleepy'");
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
}

static void expect_owner(struct mrt *rt, const char *name, uid_t uid, gid_t gid)
{
	struct mallafs_svc *svc = mrt_service_get(rt, name);
	assert_non_null(svc);
	uid_t u;
	gid_t g;
	mallafs_svc_owner(svc, &u, &g);
	assert_int_equal(u, uid);
	assert_int_equal(g, gid);
	msvc_unref(svc);
}

/* owner = USER[:GROUP]: the service is theirs before it starts. The users
 * root and daemon (1:1) and the group nogroup are in every Debian's base. */
static void test_owner(void **state)
{
	struct mrt *rt = load("owner.ini",
	                      "[services.a]\nowner = daemon\n"
	                      "[services.b]\nowner = daemon:nogroup\nadmin = pause\n"
	                      "[services.c]\nowner = 4242:4343\n"
	                      "[services.d]\n",
	                      0, NULL);
	expect_owner(rt, "a", 1, 1);
	expect_owner(rt, "b", 1, 65534);
	expect_owner(rt, "c", 4242, 4343);
	expect_owner(rt, "d", getuid(), getgid());
	expect_state(rt, "a", MSVC_RUNNING, MSVC_ADMIN_ACTIVE);
	expect_state(rt, "b", MSVC_PAUSED, MSVC_ADMIN_PAUSE);
	mrt_free(rt);

	rt = load("nouser.ini", "[services.a]\nowner = no-such-user-here\n", -EINVAL,
	          "2: service a: no user named 'no-such-user-here'");
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
	rt = load("nogroup.ini", "[services.a]\nowner = daemon:no-such-group\n", -EINVAL,
	          "2: service a: no group named 'no-such-group'");
	mrt_free(rt);
	rt = load("bare.ini", "[services.a]\n\nowner = 4242\n", -EINVAL,
	          "3: service a: uid 4242 has no user entry: give its group too (owner = "
	          "4242:GROUP)");
	mrt_free(rt);
	rt = load("empty.ini", "[services.a]\nowner = :root\n", -EINVAL,
	          "2: service a: owner must be USER or USER:GROUP, not ':root'");
	mrt_free(rt);
}

/* Found by tests/fuzz/fuzz_bootstrap: a value quoted in the error spans
 * lines when the file continues it, and the error must stay one line. */
static void test_error_one_line(void **state)
{
	struct mrt *rt = load("multiline.ini", "[services.api]\nadmin = active\n  twice\n", -EINVAL,
	                      "2: service api: admin must be active, pause or inactive, not "
	                      "'active\\ntwice'");
	mrt_free(rt);
	rt = load("plugins.ini", "[services.api]\nplugins = trace\n  metrics\n", -EINVAL,
	          "2: service api: invalid plugin name 'trace\\nmetrics'");
	mrt_free(rt);
}

static void test_file_order(void **state)
{
	/* mcfg keeps sections by name; creation follows the text, and a
	 * service first seen in one of its configuration sections counts
	 * from there. */
	struct mrt *rt = load("order.ini",
	                      "[services.zeta]\n"
	                      "[services.mid.limits]\n"
	                      "max_keys = 5\n"
	                      "[config.later]\n"
	                      "k = v\n"
	                      "[services.alpha]\n"
	                      "plugins =\n"
	                      "[services.zeta.app]\n"
	                      "k = v\n"
	                      "[services.zeta.app2]\n",
	                      0, NULL);
	char buf[512] = "";
	assert_int_equal(mrt_service_list(rt, 0, collect, buf), 0);
	assert_string_equal(buf, "zeta:1 mid:2 alpha:3 ");
	expect_text(rt, "mid", msvc_chain_render, "base\n");
	expect_text(rt, "mid", msvc_config_render, "[limits]\nmax_keys = 5\n");
	expect_text(rt, "zeta", msvc_config_render, "[app]\nk = v\n\n[app2]\n");
	expect_nodecfg(rt, "later", "k", "v");
	mrt_free(rt);
}

static void test_repeated_sections(void **state)
{
	/* A header seen twice continues the same section. */
	struct mrt *rt = load("repeat.ini",
	                      "[config.a]\nk = 1\n[config.b]\n[config.a]\nj = 2\n"
	                      "[services.s]\n[services.s]\nadmin = pause\n",
	                      0, NULL);
	expect_nodecfg(rt, "a", "k", "1");
	expect_nodecfg(rt, "a", "j", "2");
	struct mkv_stat st;
	assert_int_equal(mnodecfg_app_stat(mrt_nodecfg(rt), "b", &st), 0);
	assert_int_equal(st.size, 0);
	expect_state(rt, "s", MSVC_PAUSED, MSVC_ADMIN_PAUSE);
	mrt_free(rt);
}

static void test_unknown_plugin(void **state)
{
	struct mrt *rt = load("noplugin.ini",
	                      "[services.api]\n"
	                      "admin = active\n"
	                      "plugins = nosuch\n",
	                      -ENOENT, "3: service api: no plugin named nosuch");
	assert_null(mrt_service_get(rt, "api"));
	mrt_free(rt);

	/* Without a plugins key the service's first line is named. */
	rt = load("base.ini", "\n[services.ok]\n\n[services.api]\nplugins = base\n", -EEXIST,
	          "5: service api: base is always in the chain, last");
	/* Services before the failing one stay; main() exits without mounting. */
	expect_state(rt, "ok", MSVC_RUNNING, MSVC_ADMIN_ACTIVE);
	mrt_free(rt);
}

static void test_plugin_lists(void **state)
{
	struct mrt *rt = load("emptyitem.ini", "[services.api]\nplugins = a,,b\n", -EINVAL,
	                      "2: service api: empty plugin name in 'a,,b'");
	mrt_free(rt);
	rt = load("trailing.ini", "[services.api]\nplugins = a, \n", -EINVAL,
	          "2: service api: empty plugin name in 'a,'");
	mrt_free(rt);
	rt = load("spaced.ini", "[services.api]\nplugins = a b\n", -EINVAL,
	          "2: service api: invalid plugin name 'a b'");
	mrt_free(rt);
	rt = load("slash.ini", "[services.api]\nplugins = ok, a/b\n", -EINVAL,
	          "2: service api: invalid plugin name 'a/b'");
	mrt_free(rt);
	/* Spaces and tabs around a name are not part of it. */
	rt = load("spaces.ini", "[services.api]\nplugins =  \tnosuch1 \t\n", -ENOENT,
	          "2: service api: no plugin named nosuch1");
	mrt_free(rt);
}

static void test_external_plugins(void **state)
{
	if (!getenv("MALLAFS_TEST_PLUGIN_DIR"))
		skip();
	struct mrt *rt = load("ext.ini",
	                      "[services.api]\n"
	                      "plugins =  testext \n"
	                      "[services.api.testext]\n"
	                      "x = 1\n",
	                      0, NULL);
	expect_text(rt, "api", msvc_chain_render, "testext\nbase\n");
	expect_text(rt, "api", msvc_config_render, "[testext]\nx = 1\n");
	mrt_free(rt);

	const char *path = write_file("abi.ini", "[services.api]\n\nplugins = testabi\n");
	rt = new_rt();
	char err[1024];
	assert_int_equal(mboot_load(rt, path, err, sizeof(err)), -EINVAL);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "%s:3: service api: plugin testabi: ", path);
	assert_memory_equal(err, want, strlen(want));
	assert_null(mrt_service_get(rt, "api"));
	mrt_free(rt);
}

static void test_syntax_errors(void **state)
{
	struct mrt *rt = load("syntax.ini", "[services.a]\n\nplugins\n", -EINVAL,
	                      "3: syntax error (expected [section] or key = value)");
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
	rt = load("header.ini", "[config.a]\nk = v\n[services.a\n", -EINVAL,
	          "3: syntax error (expected [section] or key = value)");
	mrt_free(rt);
	rt = load("dup.ini", "[config.a]\nk = v\n\nk = w\n", -EINVAL,
	          "4: duplicate key 'k' in [config.a]");
	mrt_free(rt);
	rt = load("outside.ini", "k = v\n", -EINVAL, "1: key 'k' outside a section");
	mrt_free(rt);
	/* Nothing of a file with an error late in it is created. */
	rt = load("late.ini", "[services.a]\n[config.x]\nk = v\n[services.b]\nplugins\n", -EINVAL,
	          "5: syntax error (expected [section] or key = value)");
	assert_int_equal(nservices(rt), 0);
	struct mkv_stat st;
	assert_int_equal(mnodecfg_app_stat(mrt_nodecfg(rt), "x", &st), -ENOENT);
	mrt_free(rt);
}

static void test_unknown_sections_and_keys(void **state)
{
	struct mrt *rt = load("section.ini", "[services.a]\nplugins =\n\n[foo]\nx = 1\n", -EINVAL,
	                      "4: unknown section [foo]");
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
	rt = load("bare.ini", "[services]\n", -EINVAL, "1: unknown section [services]");
	mrt_free(rt);
	rt = load("config.ini", "[config]\n", -EINVAL, "1: unknown section [config]");
	mrt_free(rt);
	rt = load("prefix.ini", "[servicesx.a]\n", -EINVAL, "1: unknown section [servicesx.a]");
	mrt_free(rt);
	/* The first bad key in the text, not in name order. */
	rt = load("key.ini", "[services.a]\nzz = 1\naa = 2\n", -EINVAL,
	          "2: unknown key 'zz' in [services.a]");
	mrt_free(rt);
	rt = load("key2.ini", "[services.a]\nplugins =\nplugin = base\n", -EINVAL,
	          "3: unknown key 'plugin' in [services.a]");
	mrt_free(rt);
}

/* A value a plugin refuses is reported at its own line, not its service's
 * (issue 11): the merge phase's reason names the key. */
static void test_bad_value_lines(void **state)
{
	struct mrt *rt = load("value.ini",
	                      "[services.api]\n"
	                      "plugins = limits\n"
	                      "[services.api.limits]\n"
	                      "max_keys = -3\n",
	                      -EINVAL,
	                      "4: service api: limits: max_keys must be a non-negative integer, "
	                      "not '-3'");
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
	/* With the chain declared, other sections between, a good key first. */
	rt = load("value2.ini",
	          "[services.api]\n"
	          "plugins = limits, ttl\n"
	          "admin = active\n"
	          "[services.api.ttl]\n"
	          "seconds = 5\n"
	          "[services.api.limits]\n"
	          "max_bytes = 100\n"
	          "\n"
	          "max_value_bytes = lots\n",
	          -EINVAL,
	          "9: service api: limits: max_value_bytes must be a non-negative integer, not "
	          "'lots'");
	mrt_free(rt);
	rt = load("unknown.ini",
	          "[services.api]\nplugins = limits\n[services.api.limits]\nmax_keys = 1\n"
	          "maxkeys = 3\n",
	          -EINVAL,
	          "5: service api: limits: unknown setting 'maxkeys' (limits has max_bytes, "
	          "max_keys and max_value_bytes)");
	mrt_free(rt);
	/* The second of two services (the first stays: a refusal found while
	 * creating keeps what was made before it). */
	rt = load("ttl.ini",
	          "[services.ok]\n[services.api]\nplugins = ttl\n\n[services.api.ttl]\n"
	          "seconds = -1\n",
	          -EINVAL, "6: service api: ttl: seconds must be a non-negative integer, not '-1'");
	assert_int_equal(nservices(rt), 1);
	mrt_free(rt);
	rt = load("persist.ini",
	          "[services.api]\nplugins = persist\n[services.api.persist]\n\npath = rel\n",
	          -EINVAL, "5: service api: persist: path must be absolute, not 'rel'");
	mrt_free(rt);
	if (have_builtin("trace")) {
		rt = load("trace.ini",
		          "[services.api]\n[services.api.trace]\nlines = 0\n[services.api.x]\n"
		          "[services.api]\nplugins = trace\n",
		          -EINVAL,
		          "3: service api: trace: lines must be an integer from 1 to 100000, not "
		          "'0'");
		mrt_free(rt);
	}
	if (have_builtin("metrics")) {
		rt = load("metrics.ini",
		          "[services.api]\nplugins = metrics\n[services.api.metrics]\n\n\nx = 1\n",
		          -EINVAL, "6: service api: metrics: metrics has no settings, not 'x'");
		mrt_free(rt);
	}
	if (have_builtin("exec")) {
		rt = load("exec.ini",
		          "[services.api]\nplugins = exec\n[services.api.exec]\ntimeout_ms = 0\n",
		          -EINVAL,
		          "4: service api: exec: timeout_ms must be an integer from 1 to 3600000, "
		          "not '0'");
		mrt_free(rt);
	}
	/* What a plugin names is carried by the reason itself. */
	rt = new_rt();
	struct mallafs_cfg *cfg = mcfg_new();
	assert_non_null(cfg);
	assert_int_equal(mallafs_cfg_set(cfg, "limits", "max_keys", "x"), 0);
	const char *chain[] = {"limits"};
	struct mallafs_reason why = {{0}};
	assert_int_equal(mrt_service_create_full(rt, "api", chain, 1, cfg, NULL, &why), -EINVAL);
	assert_string_equal(why.section, "limits");
	assert_string_equal(why.key, "max_keys");
	mallafs_reason_set(&why, "anew");
	assert_string_equal(why.section, "");
	assert_string_equal(why.key, "");
	mcfg_free(cfg);
	mrt_free(rt);
}

static void test_bad_names(void **state)
{
	struct mrt *rt =
	        load("svcname.ini", "[services.]\n", -EINVAL, "1: invalid service name ''");
	mrt_free(rt);
	rt = load("svcdot.ini", "[config.ok]\n[services...x]\n", -EINVAL,
	          "2: invalid service name ''");
	mrt_free(rt);
	rt = load("secname.ini", "[services.a..]\n", -EINVAL, "1: invalid section name '.'");
	mrt_free(rt);
	rt = load("secempty.ini", "[services.a.]\n", -EINVAL, "1: invalid section name ''");
	mrt_free(rt);
	rt = load("appname.ini", "[config..]\n", -EINVAL, "1: invalid app name '.'");
	mrt_free(rt);
	rt = load("appdots.ini", "[config.a.b]\nk = v\n", 0, NULL);
	expect_nodecfg(rt, "a.b", "k", "v");
	mrt_free(rt);
	/* Characters outside [A-Za-z0-9._-] are refused by the parser itself. */
	rt = load("slash.ini", "\n[services.a/b]\n", -EINVAL,
	          "2: invalid section name 'services.a/b'");
	mrt_free(rt);

	/* A header longer than a name may be: the parser refuses the line. */
	char text[600] = "[services.";
	memset(text + strlen(text), 'n', 256);
	strcat(text, "]\n");
	const char *path = write_file("long.ini", text);
	rt = new_rt();
	char err[1024];
	assert_int_equal(mboot_load(rt, path, err, sizeof(err)), -EINVAL);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "%s:1: ", path);
	assert_memory_equal(err, want, strlen(want));
	mrt_free(rt);
}

static void test_unreadable(void **state)
{
	struct mrt *rt = new_rt();
	char path[PATH_MAX + 16], err[PATH_MAX + 64], want[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/missing.ini", tmpdir);
	assert_int_equal(mboot_load(rt, path, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	assert_string_equal(err, want);

	assert_int_equal(mboot_load(rt, tmpdir, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: %s", tmpdir, strerror(EISDIR));
	assert_string_equal(err, want);

	if (geteuid() != 0) {
		const char *p = write_file("secret.ini", "[services.a]\n");
		assert_int_equal(chmod(p, 0), 0);
		assert_int_equal(mboot_load(rt, p, err, sizeof(err)), -EACCES);
		snprintf(want, sizeof(want), "%s: %s", p, strerror(EACCES));
		assert_string_equal(err, want);
	}
	/* No room for a message, or none wanted: still the error code. */
	assert_int_equal(mboot_load(rt, path, NULL, 0), -ENOENT);
	assert_int_equal(mboot_load(rt, path, err, 4), -ENOENT);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(nservices(rt), 0);
	mrt_free(rt);
}

int main(void)
{
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_example),
	        cmocka_unit_test(test_spec_example),
	        cmocka_unit_test(test_empty_file),
	        cmocka_unit_test(test_admin),
	        cmocka_unit_test(test_owner),
	        cmocka_unit_test(test_error_one_line),
	        cmocka_unit_test(test_file_order),
	        cmocka_unit_test(test_repeated_sections),
	        cmocka_unit_test(test_unknown_plugin),
	        cmocka_unit_test(test_plugin_lists),
	        cmocka_unit_test(test_external_plugins),
	        cmocka_unit_test(test_syntax_errors),
	        cmocka_unit_test(test_unknown_sections_and_keys),
	        cmocka_unit_test(test_bad_value_lines),
	        cmocka_unit_test(test_bad_names),
	        cmocka_unit_test(test_unreadable),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
