/* SPDX-License-Identifier: MIT */
/* The persist plugin acts with its service owner's rights and follows no
 * symbolic link: run as root with the service owned by the unprivileged
 * user mallafs-t1 (created here when missing), the file belongs to that
 * user, a folder the user cannot write stays empty, a link planted at the
 * file's name, at a temporary name or on the way does not redirect a write,
 * another user's file is not loaded, and a huge file or a FIFO is
 * refused. Skipped when not run as root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>

#include "cfg.h"
#include "persist_fixture.h"
#include "persist_i.h"

#define TEST_USER "mallafs-t1"

static uid_t t1_uid;
static gid_t t1_gid;

/* Makes sure the test user exists, as tests/fs/lib.sh's mfs_user does
 * (another test may be creating it at the same time: useradd holds the
 * passwd lock, a loser retries). False when not root. */
static bool test_user(void)
{
	if (geteuid() != 0)
		return false;
	struct passwd *pw = NULL;
	for (int i = 0; i < 10 && !(pw = getpwnam(TEST_USER)); i++) {
		if (system("useradd --system --no-create-home --shell /usr/sbin/nologin " TEST_USER
		           " >/dev/null 2>&1") != 0)
			sleep_ms(200);
	}
	if (!pw)
		fail_msg("cannot create the user " TEST_USER);
	t1_uid = pw->pw_uid;
	t1_gid = pw->pw_gid;
	return true;
}

/* A folder of the user's, 0700, inside the fixture's (made searchable). */
static void user_dir(struct fixture *f, const char *name, char *ret, size_t len)
{
	snprintf(ret, len, "%s/%s", f->dir, name);
	assert_int_equal(chmod(f->dir, 0711), 0);
	assert_int_equal(mkdir(ret, 0700), 0);
	assert_int_equal(chown(ret, t1_uid, t1_gid), 0);
}

static struct mallafs_svc *owned_svc(struct fixture *f, const char *path)
{
	struct mallafs_svc *svc = svc_at(f, "api", path);
	msvc_set_owner(svc, t1_uid, t1_gid);
	return svc;
}

/* The thread's filesystem uid, from the kernel's own account. */
static long fsuid_of_thread(void)
{
	char line[256];
	long real, eff, saved, fs = -1;
	FILE *fp = fopen("/proc/thread-self/status", "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "Uid: %ld %ld %ld %ld", &real, &eff, &saved, &fs) == 4)
			break;
	fclose(fp);
	return fs;
}

static void entries_of(const char *dir, int want)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	assert_int_equal(n, want);
}

static void test_file_belongs_to_owner(void **state)
{
	struct fixture *f = *state;
	char dir[128], path[192];
	if (!test_user())
		skip();
	user_dir(f, "user", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/api.store", dir);
	struct mallafs_svc *svc = owned_svc(f, path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, t1_uid);
	assert_int_equal(st.st_gid, t1_gid);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* Committed after a change: still the user's, and so are the
	 * -wal and -shm SQLite opened for it. */
	puts_(svc, "k", "v");
	assert_true(db_has(path, "k", "v", 2000));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, t1_uid);
	const char *const sides[] = {"-wal", "-shm"};
	for (int i = 0; i < 2; i++) {
		char side[256];
		snprintf(side, sizeof(side), "%s%s", path, sides[i]);
		assert_int_equal(stat(side, &st), 0);
		assert_int_equal(st.st_uid, t1_uid);
		assert_int_equal(st.st_gid, t1_gid);
	}
	/* Only persist's thread changed identity. */
	assert_int_equal(fsuid_of_thread(), 0);
	svc_gone(svc);
	entries_of(dir, 1);
}

static void test_no_file_where_owner_cannot_write(void **state)
{
	struct fixture *f = *state;
	char dir[128], path[192], user[128], upath[192];
	if (!test_user())
		skip();
	/* A root folder anyone may enter and no one else may write. */
	snprintf(dir, sizeof(dir), "%s/rootonly", f->dir);
	assert_int_equal(chmod(f->dir, 0711), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/x.store", dir);
	struct mallafs_svc *svc = owned_svc(f, path);
	puts_(svc, "mine", "kept");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	if (!strstr(st.last_error, "Permission denied") && !strstr(st.last_error, "unable to open"))
		fail_msg("last_error: %s", st.last_error);
	assert_string_equal(get(svc, "mine", NULL), "kept");
	entries_of(dir, 0);
	svc_gone(svc);

	/* /etc the same way; and a running service reconfigured to it. */
	user_dir(f, "user", user, sizeof(user));
	snprintf(upath, sizeof(upath), "%s/ok.store", user);
	svc = owned_svc(f, upath);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	char etc[128];
	snprintf(etc, sizeof(etc), "/etc/mallafs-persist-test-%ld.store", (long)getpid());
	struct mallafs_reason why = {{0}};
	/* The restart fails: rolled back to the old path, running. */
	assert_int_equal(msvc_config_set(svc, "persist", "path", etc, strlen(etc), &why), -EIO);
	assert_int_equal(status_of(svc).state, MSVC_RUNNING);
	assert_true(strstr(status_of(svc).last_error, "Permission denied") ||
	            strstr(status_of(svc).last_error, "unable to open"));
	struct mallafs_cfg *eff = msvc_config_effective(svc);
	assert_string_equal(mallafs_cfg_get(eff, "persist", "path"), upath);
	mcfg_free(eff);
	assert_int_equal(access(etc, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	svc_gone(svc);
	assert_int_equal(access(etc, F_OK), -1);
}

/* A chown of the service applies from the next start: the owner is read
 * when persist opens the database (commits go through the connection the
 * owner of the time opened). */
static void test_owner_read_when_acting(void **state)
{
	struct fixture *f = *state;
	if (!test_user())
		skip();
	/* Root's file in root's folder (0755, searchable by the user). */
	assert_int_equal(chmod(f->dir, 0755), 0);
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "a", "1");
	assert_true(db_has(f->path, "a", "1", 2000));
	msvc_set_owner(svc, t1_uid, t1_gid);
	puts_(svc, "b", "2");
	assert_true(db_has(f->path, "b", "2", 2000));
	/* Restarted as the user, who may not open root's 0600 file. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_INACTIVE), 0);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	assert_int_equal(status_of(svc).state, MSVC_FAILED);
	assert_int_equal(stray_files(f, "api.store api.store-wal api.store-shm"), 0);
	msvc_set_owner(svc, 0, 0);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "c", "3");
	assert_true(db_has(f->path, "c", "3", 2000));
	svc_gone(svc);
}

static void write_victim(const char *victim)
{
	spit(victim, "untouched", 9);
	assert_int_equal(chmod(victim, 0644), 0);
}

static void expect_victim(const char *victim)
{
	size_t len;
	char *d = slurp(victim, &len);
	assert_non_null(d);
	assert_int_equal(len, 9);
	assert_memory_equal(d, "untouched", 9);
	free(d);
}

static void test_symlinks_not_followed(void **state)
{
	struct fixture *f = *state;
	char victim[128], tmpname[192];
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	write_victim(victim);

	/* A link at the file's name: loading refuses it. */
	assert_int_equal(symlink(victim, f->path), 0);
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	assert_non_null(strstr(status_of(svc).last_error, "it is a symbolic link"));
	svc_gone(svc);
	expect_victim(victim);

	/* Planted while the service runs, at the name and at the -wal's:
	 * commits and the close go through the files SQLite opened. */
	assert_int_equal(unlink(f->path), 0);
	svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(symlink(victim, f->path), 0);
	snprintf(tmpname, sizeof(tmpname), "%s.tmp.%ld", f->path, (long)getpid());
	assert_int_equal(symlink(victim, tmpname), 0);
	puts_(svc, "k", "v");
	sleep_ms(200);
	struct stat st;
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	svc_gone(svc);
	expect_victim(victim);
	assert_int_equal(unlink(tmpname), 0);
	assert_int_equal(unlink(f->path), 0);

	/* A link among the folders. */
	char real[128], link[128], via[192];
	snprintf(real, sizeof(real), "%s/real", f->dir);
	snprintf(link, sizeof(link), "%s/link", f->dir);
	snprintf(via, sizeof(via), "%s/x.store", link);
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link), 0);
	svc = svc_at(f, "api", via);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	assert_non_null(
	        strstr(status_of(svc).last_error, "is a symbolic link (persist follows none)"));
	svc_gone(svc);
	entries_of(real, 0);
	/* Both ways of opening the folder agree. */
	for (int walk = 0; walk < 2; walk++) {
		int fd = -1;
		const char *name;
		struct mallafs_reason why = {{0}};
		assert_int_equal(persist_open_dir(via, walk, &fd, &name, &why), -ELOOP);
		snprintf(via, sizeof(via), "%s/x.store", real);
		assert_int_equal(persist_open_dir(via, walk, &fd, &name, &why), 0);
		assert_string_equal(name, "x.store");
		close(fd);
		snprintf(via, sizeof(via), "%s/./../real/x.store", real);
		assert_int_equal(persist_open_dir(via, walk, &fd, &name, &why), 0);
		close(fd);
		assert_int_equal(persist_open_dir("/x.store", walk, &fd, &name, &why), 0);
		close(fd);
		snprintf(via, sizeof(via), "%s/nodir/x.store", f->dir);
		assert_int_equal(persist_open_dir(via, walk, &fd, &name, &why), -ENOENT);
		snprintf(via, sizeof(via), "%s/victim/x.store", f->dir);
		assert_int_equal(persist_open_dir(via, walk, &fd, &name, &why), -ENOTDIR);
		snprintf(via, sizeof(via), "%s/x.store", link);
	}
}

/* Another user's file at the name, in a folder every user may write: not
 * loaded into root's store, and its mode not given to root's file. */
static void test_other_users_file(void **state)
{
	struct fixture *f = *state;
	char dir[128], path[192];
	if (!test_user())
		skip();
	snprintf(dir, sizeof(dir), "%s/shared", f->dir);
	assert_int_equal(chmod(f->dir, 0711), 0);
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(chmod(dir, 01777), 0);
	snprintf(path, sizeof(path), "%s/root.store", dir);
	const char *kv[] = {"injected", "yes"};
	write_store_file(path, kv, 1);
	assert_int_equal(chown(path, t1_uid, t1_gid), 0);
	assert_int_equal(chmod(path, 0666), 0);
	struct mallafs_svc *svc = svc_at(f, "api", path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	char want[128];
	snprintf(want, sizeof(want), "it belongs to uid %u, not to the service's owner (uid 0)",
	         (unsigned)t1_uid);
	if (!strstr(status_of(svc).last_error, want))
		fail_msg("last_error: %s", status_of(svc).last_error);
	assert_null(get(svc, "injected", NULL));
	svc_gone(svc);

	/* A database of the user's: the same. */
	assert_int_equal(unlink(path), 0);
	db_make(path, kv, 1);
	assert_int_equal(chown(path, t1_uid, t1_gid), 0);
	svc = svc_at(f, "api", path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	assert_non_null(strstr(status_of(svc).last_error, want));
	assert_null(get(svc, "injected", NULL));
	svc_gone(svc);
}

static void test_huge_and_odd_files_refused(void **state)
{
	struct fixture *f = *state;
	/* Sparse: costs no disk, and must cost no memory either. */
	int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	/* An old-format file (those are read whole) over the limit. */
	assert_int_equal(write(fd, "mallafs-store 1\n", 16), 16);
	assert_int_equal(ftruncate(fd, (off_t)PERSIST_FILE_MAX + 1), 0);
	close(fd);
	struct stat st;
	struct mallafs_reason why = {{0}};
	assert_int_equal(persist_open_file(f->path, PERSIST_FILE_MAX, &fd, &st, &why), -EFBIG);
	assert_non_null(strstr(why.text, "over persist's limit"));
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	assert_non_null(strstr(status_of(svc).last_error, "bytes, over persist's limit of"));
	svc_gone(svc);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, (off_t)PERSIST_FILE_MAX + 1);
	assert_int_equal(unlink(f->path), 0);

	/* A FIFO does not block the start. */
	assert_int_equal(mkfifo(f->path, 0600), 0);
	svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	assert_non_null(strstr(status_of(svc).last_error, "not a regular file"));
	svc_gone(svc);
}

struct as_arg {
	struct mallafs_svc *svc;
	unsigned drop; /* capabilities this thread gives up */
	int r;
	struct mallafs_reason why;
	/* What the thread then has */
	int ngroups;
	gid_t groups[8];
	uid_t fsuid;
	gid_t fsgid;
};

/* Without CAP_SETGID or CAP_SETUID (dropped in this thread only), the
 * switch cannot take: refused, with the reason. */
static void *as_without_caps(void *arg)
{
	struct as_arg *a = arg;
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	struct persist_as as;
	assert_int_equal(syscall(SYS_capget, &h, d), 0);
	d[0].effective &= ~a->drop;
	assert_int_equal(syscall(SYS_capset, &h, d), 0);
	assert_int_equal(persist_as_init(&as), 0);
	a->r = persist_as_owner(&as, a->svc, &a->why);
	persist_as_free(&as);
	a->ngroups = getgroups(8, a->groups);
	a->fsuid = (uid_t)setfsuid((uid_t)-1); /* an invalid id: tells the current one */
	a->fsgid = (gid_t)setfsgid((gid_t)-1);
	return NULL;
}

static void test_switch_checked(void **state)
{
	struct fixture *f = *state;
	if (!test_user())
		skip();
	struct as_arg a = {.svc = svc_at(f, "api", NULL), .drop = 1U << CAP_SETGID};
	msvc_set_owner(a.svc, t1_uid, t1_gid);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, as_without_caps, &a), 0);
	pthread_join(th, NULL);
	assert_int_equal(a.r, -EPERM);
	assert_non_null(strstr(a.why.text, "cannot take the supplementary groups of uid"));
	/* Groups and gid take, the uid does not: the second call tells. */
	a.drop = 1U << CAP_SETUID;
	assert_int_equal(pthread_create(&th, NULL, as_without_caps, &a), 0);
	pthread_join(th, NULL);
	assert_int_equal(a.r, -EPERM);
	assert_non_null(strstr(a.why.text, "setfsuid did not take"));
	/* With both, it takes. */
	a.drop = 0;
	assert_int_equal(pthread_create(&th, NULL, as_without_caps, &a), 0);
	pthread_join(th, NULL);
	assert_int_equal(a.r, 0);
	assert_int_equal(a.fsuid, t1_uid);
	assert_int_equal(a.fsgid, t1_gid);
	/* The user's groups (the test user has no others), not root's. */
	assert_int_equal(a.ngroups, 1);
	assert_int_equal(a.groups[0], t1_gid);
	svc_gone(a.svc);
}

/* A worker of the timer loop acts as the owner for a save, then is the
 * daemon again: uid, gid and groups as before. */
static void *as_and_back(void *arg)
{
	struct as_arg *a = arg;
	struct persist_as as;
	gid_t before[8];
	int nbefore = getgroups(8, before);
	assert_int_equal(persist_as_init(&as), 0);
	assert_int_equal(persist_as_owner(&as, a->svc, &a->why), 0);
	assert_int_equal(fsuid_of_thread(), t1_uid);
	a->r = persist_as_daemon(&as, &a->why);
	persist_as_free(&as);
	a->ngroups = getgroups(8, a->groups);
	assert_int_equal(a->ngroups, nbefore);
	assert_memory_equal(a->groups, before, (size_t)nbefore * sizeof(gid_t));
	a->fsuid = (uid_t)setfsuid((uid_t)-1);
	a->fsgid = (gid_t)setfsgid((gid_t)-1);
	return NULL;
}

static void test_daemon_again(void **state)
{
	struct fixture *f = *state;
	if (!test_user())
		skip();
	struct as_arg a = {.svc = svc_at(f, "api", NULL)};
	msvc_set_owner(a.svc, t1_uid, t1_gid);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, as_and_back, &a), 0);
	pthread_join(th, NULL);
	assert_int_equal(a.r, 0);
	assert_int_equal(a.fsuid, geteuid());
	assert_int_equal(a.fsgid, getegid());
	svc_gone(a.svc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_file_belongs_to_owner, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_file_where_owner_cannot_write, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_owner_read_when_acting, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_other_users_file, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_huge_and_odd_files_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_switch_checked, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_daemon_again, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
