/* SPDX-License-Identifier: MIT */
/* The exec plugin: whose rights a hook runs with, in what process state, and
 * how its timeout ends it. As root (as CI runs), hooks run as a test user
 * created here, mallafs-x1, member of the group mallafs-xg, the way
 * tests/fs/lib.sh's mfs_user creates users; the tests that need root skip
 * without it. A hook writes what it sees (`id`, `env`, /proc/self/fd) into
 * the test's folder, opened to everyone for it. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec_fixture.h"

#define TEST_USER "mallafs-x1"
#define TEST_GROUP "mallafs-xg"

struct test_user {
	uid_t uid;
	gid_t gid;
	gid_t group; /* TEST_GROUP's gid, one of its supplementary groups */
	char home[256];
};

/* The test user, created when missing; skips the test when not root. Tests
 * running at once may all try: useradd holds the passwd lock, so a loser
 * retries, then finds the user there. */
static void test_user(struct test_user *u)
{
	if (geteuid() != 0) {
		print_message("needs root to create the test user " TEST_USER "\n");
		skip();
	}
	const char *script =
	        "for i in 1 2 3 4 5 6 7 8 9 10; do getent group " TEST_GROUP " >/dev/null && "
	        "break; groupadd --system " TEST_GROUP " >/dev/null 2>&1 || sleep 0.2; done; "
	        "for i in 1 2 3 4 5 6 7 8 9 10; do id -u " TEST_USER " >/dev/null 2>&1 && break; "
	        "useradd --system --no-create-home --shell /usr/sbin/nologin -G " TEST_GROUP
	        " " TEST_USER " >/dev/null 2>&1 || sleep 0.2; done; "
	        "id -nG " TEST_USER " | grep -qw " TEST_GROUP " || usermod -a -G " TEST_GROUP
	        " " TEST_USER;
	assert_int_equal(system(script), 0);
	struct passwd *pw = getpwnam(TEST_USER);
	struct group *gr = getgrnam(TEST_GROUP);
	assert_non_null(pw);
	assert_non_null(gr);
	assert_true(pw->pw_uid != 0);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	u->group = gr->gr_gid;
	snprintf(u->home, sizeof(u->home), "%s", pw->pw_dir);
}

/* Lets hooks of any user write into the test's folder. */
static void open_dir(struct fixture *f)
{
	assert_int_equal(chmod(f->dir, 01777), 0);
}

static void own_by(struct fixture *f, uid_t uid, gid_t gid)
{
	f->owned = true;
	f->uid = uid;
	f->gid = gid;
}

/* What `env | sort` shows a hook: ours, and the PWD the shell adds. */
static const char *clean_env(const char *home, const char *hook, const char *mount, const char *svc)
{
	return fmt("HOME=%s\nMALLAFS_HOOK=%s\nMALLAFS_MOUNT=%s\nMALLAFS_SERVICE=%s\n"
	           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\n",
	           home, hook, mount, svc);
}

static const char *home_of(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);
	return pw && pw->pw_dir[0] ? pw->pw_dir : "/";
}

/* ---- the process a hook gets ---- */

/* Whoever runs it: none of the daemon's environment, descriptors, folder or
 * umask. */
static void test_clean_process(void **state)
{
	struct fixture *f = *state;
	const char *ini =
	        fmt("[exec]\non_start = env | sort > %s; ls /proc/self/fd > %s; "
	            "pwd > %s; umask > %s\n",
	            path_in(f, "env"), path_in(f, "fds"), path_in(f, "pwd"), path_in(f, "umask"));
	setenv("EXEC_TEST_SECRET", "leaked", 1);
	setenv("MALLAFS_HOOK", "bogus", 1);
	/* A descriptor opened without O_CLOEXEC stays the daemon's. */
	assert_int_equal(dup2(STDOUT_FILENO, 100), 100);
	mode_t old_umask = umask(0);

	assert_int_equal(make_svc(f, "/mnt/mallafs", "api", ini, &f->svc), 0);
	umask(old_umask);
	close(100);
	unsetenv("MALLAFS_HOOK");
	unsetenv("EXEC_TEST_SECRET");
	assert_file(path_in(f, "env"),
	            clean_env(home_of(geteuid()), "on_start", "/mnt/mallafs", "api"));
	/* 0, 1 (the file), 2, and the folder ls reads. */
	assert_file(path_in(f, "fds"), "0\n1\n2\n3\n");
	assert_file(path_in(f, "pwd"), "/\n");
	assert_file(path_in(f, "umask"), "0022\n");

	/* No mount point: an empty MALLAFS_MOUNT, still set. */
	struct mallafs_svc *other = NULL;
	const char *out = path_in(f, "env2");
	assert_int_equal(
	        make_svc(f, NULL, "other",
	                 fmt("[exec]\non_start = echo \"${MALLAFS_MOUNT-unset}|$MALLAFS_SERVICE\" "
	                     "> %s\n",
	                     out),
	                 &other),
	        0);
	assert_file(out, "|other\n");
	free_svc(other);
}

/* ---- the owner's rights ---- */

static void test_runs_as_owner(void **state)
{
	struct fixture *f = *state;
	struct test_user u;
	struct mallafs_reason why;
	struct stat st;
	test_user(&u);
	open_dir(f);
	own_by(f, u.uid, u.gid);
	const char *ids = path_in(f, "ids");
	/* inih cuts lines at 200 bytes: short ones, from the folder. */
	const char *ini = fmt("[exec]\non_start = env | sort > %s/env; cd %s; "
	                      "{ id -u; id -g; id -G; } > ids; ls /proc/self/fd > fds; "
	                      "grep -E '^Cap(Prm|Eff|Amb)' /proc/self/status > caps\n"
	                      "on_update = id -u > %s/update\n",
	                      f->dir, f->dir, f->dir);
	assert_int_equal(dup2(STDOUT_FILENO, 100), 100);
	assert_int_equal(make_svc(f, "/mnt/mallafs", "api", ini, &f->svc), 0);
	close(100);

	assert_file(ids, fmt("%u\n%u\n%u %u\n", (unsigned)u.uid, (unsigned)u.gid, (unsigned)u.gid,
	                     (unsigned)u.group));
	assert_file(path_in(f, "env"), clean_env(u.home, "on_start", "/mnt/mallafs", "api"));
	assert_file(path_in(f, "fds"), "0\n1\n2\n3\n");
	assert_file(path_in(f, "caps"), "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
	                                "CapAmb:\t0000000000000000\n");
	/* What it creates is the owner's, with umask 022. */
	assert_int_equal(stat(ids, &st), 0);
	assert_int_equal(st.st_uid, u.uid);
	assert_int_equal(st.st_gid, u.gid);
	assert_int_equal(st.st_mode & 07777, 0644);

	/* The owner is read as each hook starts: a chown applies to the next. */
	assert_int_equal(set(f->svc, "app", "x", "1", &why), 0);
	assert_file(path_in(f, "update"), fmt("%u\n", (unsigned)u.uid));
	msvc_set_owner(f->svc, 0, 0);
	assert_int_equal(set(f->svc, "app", "x", "2", &why), 0);
	assert_file(path_in(f, "update"), "0\n");
}

/* A uid the passwd database does not know: its gid alone, HOME "/". */
static void test_owner_without_passwd(void **state)
{
	struct fixture *f = *state;
	struct test_user u;
	test_user(&u);
	const uid_t uid = 54321;
	const gid_t gid = 54322;
	assert_null(getpwuid(uid));
	open_dir(f);
	own_by(f, uid, gid);
	const char *ids = path_in(f, "ids");
	assert_int_equal(make_svc(f, NULL, "api",
	                          fmt("[exec]\non_start = { id -u; id -g; id -G; echo \"$HOME\"; } "
	                              "> %s\n",
	                              ids),
	                          &f->svc),
	                 0);
	assert_file(ids, "54321\n54322\n54322\n/\n");
}

/* To the id calls -1 means "unchanged", which would be the daemon's ids. */
static void test_owner_not_a_user(void **state)
{
	struct fixture *f = *state;
	struct msvc_status st;
	const char *ran = path_in(f, "ran");
	own_by(f, (uid_t)-1, (gid_t)-1);
	assert_int_equal(
	        make_svc(f, NULL, "api", fmt("[exec]\non_start = touch %s\n", ran), &f->svc), -EIO);
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_string_equal(reason_of(st.last_error),
	                    "exec: cannot start: on_start could not run: the service's owner "
	                    "(uid -1 gid -1) is not a user");
	assert_null(slurp(ran));
}

/* A child that fails between fork and exec reports why, and the hook does
 * not run at all. The failure here is the kernel's: execve as a user over
 * its RLIMIT_NPROC is EAGAIN (another process of that user is running). */
static void test_switch_failure_never_runs(void **state)
{
	struct fixture *f = *state;
	struct test_user u;
	struct msvc_status st;
	struct rlimit old, none;
	test_user(&u);
	open_dir(f);
	own_by(f, u.uid, u.gid);

	pid_t other = fork();
	assert_true(other >= 0);
	if (other == 0) {
		/* Gone on its own should the test fail before its kill. */
		alarm(20);
		if (setgid(u.gid) == 0 && setuid(u.uid) == 0)
			pause();
		_exit(1);
	}
	/* Until the user's process is there. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)other);
	for (int i = 0; i < 200; i++) {
		char *text = slurp(path);
		bool there = text && strstr(text, fmt("Uid:\t%u\t", (unsigned)u.uid));
		free(text);
		if (there)
			break;
		usleep(5000);
	}

	const char *ran = path_in(f, "ran");
	/* The soft limit only: raising a hard one back may take more than
	 * a container's root has (CAP_SYS_RESOURCE). */
	assert_int_equal(getrlimit(RLIMIT_NPROC, &old), 0);
	none = (struct rlimit){0, old.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_NPROC, &none), 0);
	int r = make_svc(f, NULL, "api", fmt("[exec]\non_start = touch %s\n", ran), &f->svc);
	assert_int_equal(setrlimit(RLIMIT_NPROC, &old), 0);
	kill(other, SIGKILL);
	waitpid(other, NULL, 0);

	assert_int_equal(r, -EIO);
	msvc_status(f->svc, &st);
	/* Where root is the initial user namespace's, its fork is exempt
	 * from the limit and the child reports the exec; elsewhere (a user
	 * namespace without CAP_SYS_RESOURCE) the fork itself fails. */
	const char *why = reason_of(st.last_error);
	if (strcmp(why, "exec: cannot start: on_start could not run: Resource temporarily "
	                "unavailable") != 0)
		assert_string_equal(why, "exec: cannot start: on_start could not run: cannot "
		                         "execute /bin/sh: Resource temporarily unavailable");
	assert_null(slurp(ran));
}

/* ---- a daemon that is not root ---- */

/* In a child (no cmocka there): a failed check exits with its line. */
#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			_exit(1);                                                                \
		}                                                                                \
	} while (0)

static int child_svc(struct fixture *f, const char *name, const char *ini, bool other_owner,
                     struct mallafs_svc **ret)
{
	struct msvc_env env = {.plugins = f->reg};
	struct mallafs_cfg *cfg = NULL;
	struct mallafs_reason why = {{0}};
	char err[256];
	int line = 0;
	const char *plugins[] = {"exec"};
	CHECK(msvc_new(&env, name, ret) == 0);
	CHECK(mcfg_parse_ini(ini, strlen(ini), &cfg, &line, err, sizeof(err)) == 0);
	CHECK(msvc_setup(*ret, plugins, 1, cfg, &why) == 0);
	mcfg_free(cfg);
	if (other_owner)
		msvc_set_owner(*ret, geteuid() + 1, getegid());
	return msvc_set_admin(*ret, MSVC_ADMIN_ACTIVE);
}

static void unprivileged_daemon(struct fixture *f)
{
	struct mallafs_svc *mine, *theirs;
	struct mallafs_reason why;
	struct msvc_status st;
	char *text;
	if (geteuid() == 0) {
		CHECK(setgroups(0, NULL) == 0);
		CHECK(setresgid(65534, 65534, 65534) == 0);
		CHECK(setresuid(65534, 65534, 65534) == 0);
	}
	unsigned euid = (unsigned)geteuid(), egid = (unsigned)getegid();

	/* Its own service's hooks run, as it is. */
	const char *out = path_in(f, "mine");
	CHECK(child_svc(f, "mine", fmt("[exec]\non_start = id -u > %s\non_update = true\n", out),
	                false, &mine) == 0);
	CHECK((text = slurp(out)) && strcmp(text, fmt("%u\n", euid)) == 0);
	free(text);

	/* Another user's: refused (the plugin's EPERM is the core's EIO),
	 * said in the status, and nothing ran. */
	const char *ran = path_in(f, "theirs");
	CHECK(child_svc(f, "theirs", fmt("[exec]\non_start = touch %s\n", ran), true, &theirs) ==
	      -EIO);
	msvc_status(theirs, &st);
	CHECK(st.state == MSVC_FAILED);
	CHECK(strcmp(reason_of(st.last_error),
	             fmt("exec: cannot start: on_start could not run: the daemon runs as uid %u "
	                 "gid %u, not root, and cannot switch to the service's owner, uid %u "
	                 "gid %u",
	                 euid, egid, euid + 1, egid)) == 0);
	CHECK(access(ran, F_OK) < 0);

	/* Its own uid with another group is another owner too. */
	msvc_set_owner(mine, euid, egid + 1);
	CHECK(set(mine, "app", "x", "1", &why) == -EIO);
	CHECK(strstr(why.text, "on_update could not run: the daemon runs as uid") != NULL);
	_exit(0);
}

static void test_unprivileged_daemon(void **state)
{
	struct fixture *f = *state;
	int status;
	open_dir(f);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		unprivileged_daemon(f);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- the timeout ---- */

static void test_timeout_term(void **state)
{
	struct fixture *f = *state;
	struct msvc_status st;
	double t0 = now_s();
	assert_int_equal(make_svc(f, NULL, "api", "[exec]\ntimeout_ms = 200\non_start = sleep 30\n",
	                          &f->svc),
	                 -EIO);
	double took = now_s() - t0;
	assert_true(took >= 0.19);
	assert_true(took < 0.8);
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_string_equal(reason_of(st.last_error),
	                    "exec: cannot start: on_start timed out after 200 ms");
	assert_true(log_has("exec: on_start: timed out after 200 ms; its process group ended on "
	                    "SIGTERM"));
}

/* The pid a hook wrote into the test's folder. */
static pid_t pid_in(struct fixture *f, const char *name)
{
	char *text = slurp(path_in(f, name));
	assert_non_null(text);
	pid_t pid = (pid_t)atol(text);
	free(text);
	assert_true(pid > 1);
	return pid;
}

/* Whether pid is a live process: not gone, not a zombie (an orphan's
 * zombie stays when the namespace's init does not reap). */
static bool alive(pid_t pid)
{
	char *text = slurp(fmt("/proc/%ld/stat", (long)pid));
	const char *p = text ? strrchr(text, ')') : NULL;
	bool live = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	free(text);
	return live;
}

/* A killed process is torn down by the kernel a moment later. */
static void assert_gone(pid_t pid)
{
	for (int i = 0; i < 100 && (group_alive(pid) || alive(pid)); i++)
		usleep(10 * 1000);
	assert_false(group_alive(pid));
	assert_false(alive(pid));
}

/* A hook deaf to SIGTERM (the sleep inherits the ignored signal) gets
 * SIGKILL 2 s later. */
static void test_timeout_kill(void **state)
{
	struct fixture *f = *state;
	struct msvc_status st;
	double t0 = now_s();
	assert_int_equal(make_svc(f, NULL, "api",
	                          fmt("[exec]\ntimeout_ms = 200\non_start = trap '' TERM; "
	                              "echo $$ > %s; sleep 30\n",
	                              path_in(f, "pid")),
	                          &f->svc),
	                 -EIO);
	double took = now_s() - t0;
	assert_true(took >= 2.19);
	assert_true(took < 3.5);
	msvc_status(f->svc, &st);
	assert_string_equal(reason_of(st.last_error),
	                    "exec: cannot start: on_start timed out after 200 ms");
	assert_true(log_has("exec: on_start: timed out after 200 ms; its process group outlived "
	                    "SIGTERM by 2000 ms: SIGKILL"));
	assert_gone(pid_in(f, "pid"));
}

/* What a hook started goes with it: at SIGTERM, or, when it outlives its
 * shell by ignoring SIGTERM, at SIGKILL 2 s later. */
static void test_timeout_background_children(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	const char *ini = fmt("[exec]\ntimeout_ms = 200\n"
	                      "on_update = sleep 30 & echo $! > %s; echo $$ > %s; sleep 30\n",
	                      path_in(f, "bg"), path_in(f, "pid"));
	assert_int_equal(make_svc(f, NULL, "api", ini, &f->svc), 0);
	double t0 = now_s();
	assert_int_equal(set(f->svc, "app", "x", "1", &why), -EIO);
	assert_true(now_s() - t0 < 0.8);
	assert_string_equal(why.text, "exec: on_update timed out after 200 ms");
	assert_gone(pid_in(f, "bg"));
	assert_gone(pid_in(f, "pid"));

	assert_int_equal(set(f->svc, "exec", "on_update",
	                     fmt("sh -c 'trap \"\" TERM; sleep 30' & echo $! > %s; sleep 30",
	                         path_in(f, "bg")),
	                     &why),
	                 0);
	t0 = now_s();
	assert_int_equal(set(f->svc, "app", "x", "2", &why), -EIO);
	double took = now_s() - t0;
	assert_true(took >= 2.19);
	assert_true(took < 3.5);
	assert_string_equal(why.text, "exec: on_update timed out after 200 ms");
	assert_gone(pid_in(f, "bg"));

	/* And nothing is left for us to reap. */
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

int main(void)
{
	mu_log_set_sink(log_sink, NULL, MU_LOG_DEBUG);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_clean_process, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_runs_as_owner, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_owner_without_passwd, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_owner_not_a_user, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_switch_failure_never_runs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unprivileged_daemon, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout_term, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout_kill, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout_background_children, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
