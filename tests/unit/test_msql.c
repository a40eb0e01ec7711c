/* SPDX-License-Identifier: MIT */
/* core/msql.c: what msql_open accepts and refuses, in a scratch folder. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "msql.h"

static const struct msql_schema schema = {
        .application_id = 0x6d6c7431, /* 'mlt1' */
        .version = 2,
        .what = "test database",
        .create_sql = "CREATE TABLE t(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;",
};

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/msql-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Opens, expecting r; returns the connection (NULL on an error). */
static sqlite3 *open_expect(const char *path, bool create, int r, const char *reason_part)
{
	struct mallafs_reason why = {{0}};
	sqlite3 *db = NULL;
	bool fresh = false;
	int got = msql_open(path, create, &schema, 100, &db, &fresh, &why);
	if (got != r)
		fprintf(stderr, "msql_open(%s): %d (%s), wanted %d\n", path, got, why.text, r);
	assert_int_equal(got, r);
	if (reason_part) {
		if (!strstr(why.text, reason_part))
			fprintf(stderr, "reason '%s' lacks '%s'\n", why.text, reason_part);
		assert_non_null(strstr(why.text, reason_part));
	}
	return db;
}

static void test_create_and_reopen(void **state)
{
	(void)state;
	char path[128];
	path_of(path, sizeof(path), "a.db");
	struct mallafs_reason why = {{0}};
	sqlite3 *db;
	bool fresh = false;
	assert_int_equal(msql_open(path, true, &schema, 100, &db, &fresh, &why), 0);
	assert_true(fresh);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(msql_exec(db, "INSERT INTO t VALUES('x', 'y')", "insert", &why), 0);
	msql_close(db);

	assert_int_equal(msql_open(path, true, &schema, 100, &db, &fresh, &why), 0);
	assert_false(fresh);
	sqlite3_stmt *s;
	assert_int_equal(msql_prepare(db, "SELECT v FROM t WHERE k = 'x'", &s, &why), 0);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "y");
	sqlite3_finalize(s);
	/* WAL, synchronous FULL (2). */
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 2);
	sqlite3_finalize(s);
	msql_close(db);
}

static void test_missing_without_create(void **state)
{
	(void)state;
	char path[128];
	path_of(path, sizeof(path), "none.db");
	assert_null(open_expect(path, false, -ENOENT, "No such file"));
	assert_int_equal(access(path, F_OK), -1);
}

/* Writes a database of someone else's with the sqlite3 API directly. */
static void make_db(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void file_bytes(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, len);
	assert_true(n >= 0);
	close(fd);
}

static void test_refusals_leave_the_file(void **state)
{
	(void)state;
	char path[128], before[8192], after[8192];

	path_of(path, sizeof(path), "foreign.db");
	make_db(path, "CREATE TABLE x(a); INSERT INTO x VALUES(1);");
	file_bytes(path, before, sizeof(before));
	assert_null(open_expect(path, true, -EINVAL,
	                        "not a test database (application_id 0x00000000)"));
	file_bytes(path, after, sizeof(after));
	assert_memory_equal(before, after, sizeof(before));

	path_of(path, sizeof(path), "newer.db");
	make_db(path,
	        "PRAGMA application_id = 1835824177; PRAGMA user_version = 3; CREATE TABLE t(k);");
	assert_null(open_expect(path, true, -EINVAL,
	                        "newer mallafs (schema 3; this one reads up to 2)"));

	path_of(path, sizeof(path), "text.db");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 100; i++)
		fputs("this is not a database at all, only text\n", f);
	fclose(f);
	assert_null(open_expect(path, true, -EINVAL, "not an SQLite database"));
}

static void test_corrupt(void **state)
{
	(void)state;
	char path[128];
	path_of(path, sizeof(path), "corrupt.db");
	struct mallafs_reason why = {{0}};
	sqlite3 *db;
	bool fresh;
	assert_int_equal(msql_open(path, true, &schema, 100, &db, &fresh, &why), 0);
	assert_int_equal(msql_exec(db,
	                           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
	                           "WHERE i < 2000) INSERT INTO t SELECT 'key' || i, "
	                           "randomblob(100) FROM n",
	                           "fill", &why),
	                 0);
	msql_close(db);
	/* Scribble over the middle of the file: interior pages of the table. */
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	char junk[4096];
	memset(junk, 0x5a, sizeof(junk));
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size > 3 * 4096);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 2 * 4096), (ssize_t)sizeof(junk));
	close(fd);
	assert_null(open_expect(path, true, -EINVAL, NULL));
}

static void test_no_symlinks(void **state)
{
	(void)state;
	char path[128], link[128], sub[128], via[160];
	path_of(path, sizeof(path), "real.db");
	sqlite3 *db = open_expect(path, true, 0, NULL);
	msql_close(db);

	/* At the file's name. */
	path_of(link, sizeof(link), "link.db");
	assert_int_equal(symlink(path, link), 0);
	assert_null(open_expect(link, true, -ELOOP, NULL));

	/* In a folder on the way, even to a new file. */
	path_of(sub, sizeof(sub), "sub");
	assert_int_equal(symlink(dir, sub), 0);
	snprintf(via, sizeof(via), "%s/new.db", sub);
	assert_null(open_expect(via, true, -ELOOP, NULL));
	char made[160];
	path_of(made, sizeof(made), "new.db");
	assert_int_equal(access(made, F_OK), -1);
}

static void test_read_only(void **state)
{
	(void)state;
	char path[128];
	path_of(path, sizeof(path), "ro.db");
	msql_close(open_expect(path, true, 0, NULL));
	assert_int_equal(chmod(path, 0444), 0);
	/* Refused by its mode, for root as well. */
	assert_null(open_expect(path, true, -EROFS, "the file is read-only (mode 0444)"));
	assert_int_equal(chmod(path, 0644), 0);
	msql_close(open_expect(path, true, 0, NULL));

	/* Another user's, who may not read it: EACCES (in a child, as that
	 * user). */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	if (geteuid() != 0)
		return;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		struct mallafs_reason why = {{0}};
		sqlite3 *db;
		bool fresh;
		int r = msql_open(path, true, &schema, 100, &db, &fresh, &why);
		_exit(r == -EACCES && strstr(why.text, "Permission denied") ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_not_a_file(void **state)
{
	(void)state;
	char path[128];
	path_of(path, sizeof(path), "fifo.db");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(open_expect(path, true, -EINVAL, "not a regular file"));
}

static void test_errno_mapping(void **state)
{
	(void)state;
	assert_int_equal(msql_errno(NULL, SQLITE_FULL), -ENOSPC);
	assert_int_equal(msql_errno(NULL, SQLITE_IOERR_WRITE), -EIO);
	assert_int_equal(msql_errno(NULL, SQLITE_BUSY), -EBUSY);
	assert_int_equal(msql_errno(NULL, SQLITE_READONLY), -EROFS);
	assert_int_equal(msql_errno(NULL, SQLITE_TOOBIG), -EFBIG);
	assert_int_equal(msql_errno(NULL, SQLITE_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_create_and_reopen, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_without_create, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refusals_leave_the_file, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_symlinks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_not_a_file, setup, teardown),
	        cmocka_unit_test(test_errno_mapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
