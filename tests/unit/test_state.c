/* SPDX-License-Identifier: MIT */
/* state/: the state database on a runtime without a mount. What is saved
 * comes back (services with their chains, configuration, admin status and
 * owners; the node config; registrations of processes that still live and
 * are the same), changes after the first save are committed, removals too;
 * a service whose plugin is gone comes back with the reason and keeps its
 * rows; databases that are not ours, newer, corrupt or writable by others
 * are refused with the reason. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "nodecfg.h"
#include "registry.h"
#include "runtime.h"
#include "service.h"
#include "state.h"
#include "util.h"

static char dir[64];
static char db[128];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/state-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/state.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct mrt *new_rt(void)
{
	struct mrt_options o = {.builtins = mallafs_builtin_plugins, .event_capacity = 256};
	struct mrt *rt = mrt_new(&o);
	assert_non_null(rt);
	return rt;
}

/* Opens the state for rt: restored when it exists, then followed. */
static struct mstate *open_state(struct mrt *rt, bool want_fresh)
{
	struct mstate *st = NULL;
	bool fresh = false;
	char why[512] = "";
	int r = mstate_open(db, &st, &fresh, why, sizeof(why));
	if (r < 0)
		fail_msg("mstate_open: %s", why);
	assert_int_equal(fresh, want_fresh);
	if (!fresh)
		assert_int_equal(mstate_restore(st, rt, why, sizeof(why)), 0);
	assert_int_equal(mstate_start(st, rt, NULL, why, sizeof(why)), 0);
	return st;
}

/* The way a restart ends: the state first, then the services. */
static void shut(struct mstate *st, struct mrt *rt)
{
	mstate_stop(st);
	mstate_close(st);
	mrt_free(rt);
}

static void sql(const char *text)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(h, text, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", text, err);
	sqlite3_close(h);
}

static long long sql_count(const char *query)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	long long n = -1;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, query, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	return n;
}

static char *chain_of(struct mallafs_svc *svc)
{
	char *text = NULL;
	size_t len;
	assert_int_equal(msvc_chain_render(svc, &text, &len), 0);
	return text;
}

static void assert_service(struct mrt *rt, const char *name, const char *chain,
                           enum msvc_admin admin, enum msvc_state state, uid_t uid, gid_t gid)
{
	struct mallafs_svc *svc = mrt_service_get(rt, name);
	if (!svc)
		fail_msg("service %s did not come back", name);
	char *c = chain_of(svc);
	assert_string_equal(c, chain);
	free(c);
	struct msvc_status ss;
	msvc_status(svc, &ss);
	assert_int_equal(ss.admin, admin);
	assert_int_equal(ss.state, state);
	uid_t u;
	gid_t g;
	mallafs_svc_owner(svc, &u, &g);
	assert_int_equal(u, uid);
	assert_int_equal(g, gid);
	msvc_unref(svc);
}

static void assert_key(struct mrt *rt, const char *app, const char *key, const char *value,
                       size_t len)
{
	char buf[64];
	ssize_t n = mnodecfg_read(mrt_nodecfg(rt), app, key, 0, buf, sizeof(buf));
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(buf, value, len);
}

static void test_round_trip(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};

	/* What a bootstrap makes, before the state starts. */
	struct mallafs_cfg *cfg = mcfg_new();
	assert_int_equal(mallafs_cfg_set(cfg, "limits", "max_keys", "50"), 0);
	assert_int_equal(mcfg_add_section(cfg, "empty"), 0);
	const char *plugins[] = {"trace", "limits"};
	assert_int_equal(mrt_service_create_full(rt, "api", plugins, 2, cfg, "pause", &why), 0);
	mcfg_free(cfg);
	assert_int_equal(mnodecfg_app_create(mrt_nodecfg(rt), "app"), 0);
	assert_int_equal(mnodecfg_write(mrt_nodecfg(rt), "app", "bin", 0, "a\0b", 3, MKV_REPLACE),
	                 3);
	struct mstate *st = open_state(rt, true);

	/* Changes after the first save. */
	assert_int_equal(mrt_service_create(rt, "web", &why), 0);
	struct mallafs_svc *web = mrt_service_get(rt, "web");
	assert_int_equal(msvc_add_plugin(web, "ttl", &why), 0);
	assert_int_equal(msvc_config_set(web, "ttl", "seconds", "7", 1, &why), 0);
	msvc_set_owner(web, 1001, 1002);
	assert_int_equal(msvc_set_admin(web, MSVC_ADMIN_INACTIVE), 0);
	msvc_unref(web);
	assert_int_equal(mrt_service_create(rt, "gone", &why), 0);
	assert_int_equal(mnodecfg_write(mrt_nodecfg(rt), "app", "k", 0, "v1", 2, MKV_REPLACE), 2);
	assert_int_equal(mnodecfg_app_create(mrt_nodecfg(rt), "other"), 0);
	assert_int_equal(mstate_flush(st), 0);
	assert_int_equal(sql_count("SELECT count(*) FROM services"), 3);
	/* Removed after a commit: the rows go with the next. */
	assert_int_equal(mrt_service_destroy(rt, "gone"), 0);
	assert_int_equal(mnodecfg_app_destroy(mrt_nodecfg(rt), "other"), 0);
	/* The owner of web changes with no event: it is read at the next commit. */
	shut(st, rt);
	assert_int_equal(sql_count("SELECT count(*) FROM services WHERE name = 'gone'"), 0);

	rt = new_rt();
	st = open_state(rt, false);
	assert_service(rt, "api", "trace\nlimits\nbase\n", MSVC_ADMIN_PAUSE, MSVC_PAUSED, getuid(),
	               getgid());
	assert_service(rt, "web", "ttl\nbase\n", MSVC_ADMIN_INACTIVE, MSVC_STOPPED, 1001, 1002);
	struct mallafs_svc *svc = mrt_service_get(rt, "gone");
	assert_null(svc);
	svc = mrt_service_get(rt, "api");
	struct mallafs_cfg *c = msvc_config_committed(svc);
	assert_string_equal(mallafs_cfg_get(c, "limits", "max_keys"), "50");
	assert_true(mcfg_has_section(c, "empty"));
	mcfg_free(c);
	msvc_unref(svc);
	svc = mrt_service_get(rt, "web");
	c = msvc_config_committed(svc);
	assert_string_equal(mallafs_cfg_get(c, "ttl", "seconds"), "7");
	mcfg_free(c);
	msvc_unref(svc);
	assert_key(rt, "app", "bin", "a\0b", 3);
	assert_key(rt, "app", "k", "v1", 2);
	struct mkv_stat sb;
	assert_int_equal(mnodecfg_app_stat(mrt_nodecfg(rt), "other", &sb), -ENOENT);

	/* Unset keys and removed plugins go too. */
	svc = mrt_service_get(rt, "web");
	assert_int_equal(msvc_config_unset(svc, "ttl", "seconds", &why), 0);
	assert_int_equal(msvc_del_plugin(svc, "ttl", &why), 0);
	msvc_unref(svc);
	assert_int_equal(mnodecfg_delete(mrt_nodecfg(rt), "app", "k"), 0);
	shut(st, rt);

	rt = new_rt();
	st = open_state(rt, false);
	assert_service(rt, "web", "base\n", MSVC_ADMIN_INACTIVE, MSVC_STOPPED, 1001, 1002);
	svc = mrt_service_get(rt, "web");
	c = msvc_config_committed(svc);
	assert_null(mallafs_cfg_get(c, "ttl", "seconds"));
	mcfg_free(c);
	msvc_unref(svc);
	assert_int_equal(mnodecfg_stat(mrt_nodecfg(rt), "app", "k", &sb), -ENOENT);
	shut(st, rt);
}

/* Commits come by themselves, within 50 ms of a change (a generous bound
 * here: a loaded machine). */
static void test_commits_by_itself(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};
	struct mstate *st = open_state(rt, true);
	assert_int_equal(mrt_service_create(rt, "soon", &why), 0);
	uint64_t t0 = mu_now_ms();
	while (sql_count("SELECT count(*) FROM services WHERE name = 'soon'") != 1) {
		if (mu_now_ms() - t0 > 5000)
			fail_msg("not committed after 5 s");
		usleep(5000);
	}
	shut(st, rt);
}

/* A commit that fails (here: another connection holds the write lock past
 * the busy timeout) keeps its marks, and is tried again by itself until it
 * goes through, with no further change. */
static void test_failed_commit_retried(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};
	struct mstate *st = open_state(rt, true);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(mrt_service_create(rt, "patient", &why), 0);
	assert_int_equal(mstate_flush(st), -EBUSY);
	assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	uint64_t t0 = mu_now_ms();
	while (sql_count("SELECT count(*) FROM services WHERE name = 'patient'") != 1) {
		if (mu_now_ms() - t0 > 5000)
			fail_msg("not committed 5 s after the lock went");
		usleep(20000);
	}
	shut(st, rt);
}

static pid_t child(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Gone with the test, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pause();
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_registry(void **state)
{
	struct mrt *rt = new_rt();
	struct mreg *reg = mrt_registry(rt);
	pid_t live = child(), dead = child(), other = child();
	char pidtext[32];

	assert_int_equal(mreg_register(reg, "live", live, "hello", 0), 0);
	assert_int_equal(mreg_register(reg, "dead", dead, NULL, 0), 0);
	assert_int_equal(mreg_register(reg, "other", other, NULL, 0), 0);
	assert_int_equal(mreg_pool_create(reg, "pool"), 0);
	snprintf(pidtext, sizeof(pidtext), "%d", (int)live);
	assert_int_equal(mreg_pool_store(reg, "pool", pidtext, "m", 1, 0), 0);
	struct mstate *st = open_state(rt, true);
	shut(st, rt);
	assert_int_equal(sql_count("SELECT count(*) FROM registry"), 5);

	/* Meanwhile dead goes, and other's row names another process. */
	reap(dead);
	sql("UPDATE registry SET starttime = starttime + 1 WHERE name = 'other'");

	rt = new_rt();
	reg = mrt_registry(rt);
	st = open_state(rt, false);
	pid_t pid = 0;
	char *value = NULL;
	assert_int_equal(mreg_lookup(reg, "live", &pid, &value), 0);
	assert_int_equal(pid, live);
	assert_string_equal(value, "hello");
	free(value);
	char *text = NULL;
	size_t len;
	assert_int_equal(mreg_pool_render(reg, "pool", pidtext, &text, &len), 0);
	assert_string_equal(text, "m\n");
	free(text);
	assert_int_equal(mreg_lookup(reg, "dead", &pid, NULL), -ENOENT);
	assert_int_equal(mreg_lookup(reg, "other", &pid, NULL), -ENOENT);
	/* The first save after restore drops what did not come back. */
	assert_int_equal(sql_count("SELECT count(*) FROM registry"), 3);

	/* A restored registration still goes with its process. */
	reap(live);
	uint64_t t0 = mu_now_ms();
	while (sql_count("SELECT count(*) FROM registry WHERE name = 'live'") != 0) {
		if (mu_now_ms() - t0 > 5000)
			fail_msg("the registration of a process gone is still saved after 5 s");
		usleep(5000);
	}
	shut(st, rt);
	reap(other);
}

/* A plugin of the chain no longer exists: the service comes back failed
 * and inactive, the reason in its status, and its rows stay until it is
 * changed. */
static void test_missing_plugin(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};
	const char *plugins[] = {"trace"};
	struct mallafs_cfg *cfg = mcfg_new();
	assert_int_equal(mallafs_cfg_set(cfg, "trace", "lines", "5"), 0);
	assert_int_equal(mrt_service_create_full(rt, "api", plugins, 1, cfg, NULL, &why), 0);
	assert_int_equal(mrt_service_create(rt, "bad", &why), 0);
	mcfg_free(cfg);
	struct mstate *st = open_state(rt, true);
	shut(st, rt);
	sql("INSERT INTO service_plugins VALUES ('api', 1, 'nosuch');"
	    "INSERT INTO service_plugins VALUES ('bad', 0, 'limits');"
	    "INSERT INTO service_config VALUES ('bad', 'limits', 'max_keys', 'many');"
	    "INSERT INTO service_sections VALUES ('bad', 'limits');");

	rt = new_rt();
	st = open_state(rt, false);
	assert_service(rt, "api", "trace\nbase\n", MSVC_ADMIN_INACTIVE, MSVC_FAILED, getuid(),
	               getgid());
	struct mallafs_svc *svc = mrt_service_get(rt, "api");
	struct msvc_status ss;
	msvc_status(svc, &ss);
	assert_non_null(strstr(ss.last_error, "(missing: nosuch)"));
	msvc_unref(svc);
	/* A value its plugin refuses: made without its configuration. */
	assert_service(rt, "bad", "limits\nbase\n", MSVC_ADMIN_INACTIVE, MSVC_FAILED, getuid(),
	               getgid());
	svc = mrt_service_get(rt, "bad");
	msvc_status(svc, &ss);
	assert_non_null(strstr(ss.last_error, "without its configuration"));
	msvc_unref(svc);
	assert_int_equal(mstate_flush(st), 0);
	assert_int_equal(sql_count("SELECT count(*) FROM service_plugins WHERE plugin = 'nosuch'"),
	                 1);
	assert_int_equal(sql_count("SELECT count(*) FROM service_config WHERE value = 'many'"), 1);
	assert_int_equal(sql_count("SELECT count(*) FROM services WHERE admin = 'active'"), 2);
	shut(st, rt);

	/* Still missing: the same again. Then changed: saved as it is. */
	rt = new_rt();
	st = open_state(rt, false);
	svc = mrt_service_get(rt, "api");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	msvc_unref(svc);
	assert_int_equal(mstate_flush(st), 0);
	assert_int_equal(sql_count("SELECT count(*) FROM service_plugins WHERE plugin = 'nosuch'"),
	                 0);
	assert_int_equal(sql_count("SELECT count(*) FROM service_config WHERE value = 'many'"), 1);
	shut(st, rt);
}

static void expect_refused(const char *what, const char *reason)
{
	struct mstate *st = NULL;
	bool fresh;
	char why[512] = "";
	int r = mstate_open(db, &st, &fresh, why, sizeof(why));
	if (r == 0) {
		mstate_close(st);
		fail_msg("%s: opened", what);
	}
	if (!strstr(why, reason))
		fail_msg("%s: the reason '%s' does not say '%s'", what, why, reason);
}

static void test_refused(void **state)
{
	/* Not ours. */
	sql("CREATE TABLE t (x); PRAGMA application_id = 42;");
	expect_refused("another program's database", "not a mallafs state database");
	unlink(db);

	/* Newer. */
	struct mrt *rt = new_rt();
	struct mstate *st = open_state(rt, true);
	shut(st, rt);
	sql("PRAGMA user_version = 99;");
	expect_refused("a newer schema", "newer");
	sql("PRAGMA user_version = 1;");

	/* Writable by others, or not the daemon's. */
	assert_int_equal(chmod(db, 0620), 0);
	expect_refused("a group-writable file", "writable by others (mode 0620)");
	assert_int_equal(chmod(db, 0602), 0);
	expect_refused("an other-writable file", "writable by others (mode 0602)");
	assert_int_equal(chmod(db, 0600), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(db, 1001, 1001), 0);
		expect_refused("a file of another uid", "owned by uid 1001");
		assert_int_equal(chown(db, 0, 0), 0);
	}
	assert_int_equal(chmod(dir, 0777), 0);
	expect_refused("a folder anyone writes", "writable by others");
	assert_int_equal(chmod(dir, 01777), 0);
	rt = new_rt();
	st = open_state(rt, false); /* sticky: fine */
	shut(st, rt);
	assert_int_equal(chmod(dir, 0700), 0);

	/* A -wal someone else put beside it (a sticky folder lets them). */
	char wal[160];
	snprintf(wal, sizeof(wal), "%s-wal", db);
	int wfd = open(wal, O_WRONLY | O_CREAT | O_EXCL, 0666);
	assert_true(wfd >= 0);
	close(wfd);
	if (geteuid() == 0) {
		assert_int_equal(chown(wal, 1001, 1001), 0);
		expect_refused("a -wal of another uid", "-wal: owned by uid 1001");
		assert_int_equal(chown(wal, 0, 0), 0);
	}
	assert_int_equal(chmod(wal, 0666), 0);
	expect_refused("a -wal anyone writes", "-wal: writable by others");
	unlink(wal);

	/* Corrupt. */
	int fd = open(db, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage, not SQLite at all\n", 27), 27);
	close(fd);
	unlink(wal);
	expect_refused("garbage", "not an SQLite database");
	/* Refused, and left as it was. */
	struct stat sb;
	assert_int_equal(stat(db, &sb), 0);
	assert_int_equal(sb.st_size, 27);

	/* A symbolic link. */
	unlink(db);
	assert_int_equal(symlink("/tmp/elsewhere.db", db), 0);
	expect_refused("a symbolic link", "symbolic link");
	unlink(db);

	/* A new file is the daemon's, 0600. */
	rt = new_rt();
	st = open_state(rt, true);
	shut(st, rt);
	assert_int_equal(stat(db, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(sb.st_uid, geteuid());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_commits_by_itself, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_failed_commit_retried, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_plugin, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
