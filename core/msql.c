/* SPDX-License-Identifier: MIT */
/* SQLite as mallafs uses it (msql.h): the open that follows no symbolic
 * link, the checks that a database is ours, and SQLite's results as errnos.
 *
 * SQLite's unix VFS makes every system call through a table a program may
 * change (xSetSystemCall). msql_init puts two entries of its own there:
 *  - "open": openat2 with RESOLVE_NO_SYMLINKS, so that no component of any
 *    path SQLite opens may be a symbolic link, checked by the kernel as it
 *    walks (no gap between a check and the open); where the kernel lacks
 *    openat2 (before 5.6), open with O_NOFOLLOW, which guards the last
 *    component only;
 *  - "readlink": fails with ELOOP. Before opening, SQLite makes a database's
 *    name absolute and resolves the symbolic links on its way itself (with
 *    lstat and readlink), which would hand the open a path with none left:
 *    with readlink failing, a link anywhere in the name fails the open.
 * The table is the process's, shared by every connection, and set once,
 * before the first database is opened. */
#include "msql.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_open(const char *path, int flags, int mode)
{
#ifdef SYS_openat2
	struct open_how how = {
	        .flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
	        .mode = (flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)(mode & 07777) : 0,
	        .resolve = RESOLVE_NO_SYMLINKS,
	};
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	if (fd >= 0 || errno != ENOSYS)
		return (int)fd;
#endif
	return open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

static ssize_t sys_readlink(const char *path, char *buf, size_t len)
{
	(void)path;
	(void)buf;
	(void)len;
	errno = ELOOP;
	return -1;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;

static void init_vfs(void)
{
	int rc = sqlite3_initialize();
	if (rc != SQLITE_OK) {
		init_result = -ENOMEM;
		return;
	}
	sqlite3_vfs *vfs = sqlite3_vfs_find("unix");
	if (!vfs || vfs->iVersion < 3 || !vfs->xSetSystemCall) {
		init_result = -ENOSYS;
		return;
	}
	if (vfs->xSetSystemCall(vfs, "open", (sqlite3_syscall_ptr)sys_open) != SQLITE_OK ||
	    vfs->xSetSystemCall(vfs, "readlink", (sqlite3_syscall_ptr)sys_readlink) != SQLITE_OK)
		init_result = -ENOSYS;
}

int msql_init(void)
{
	pthread_once(&init_once, init_vfs);
	return init_result;
}

int msql_errno(sqlite3 *db, int rc)
{
	int sys = db ? sqlite3_system_errno(db) : 0;
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_IOERR:
		return sys == ENOSPC || sys == EDQUOT ? -sys : -EIO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return sys > 0 ? -sys : -EACCES;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_MISMATCH:
	case SQLITE_CONSTRAINT:
		return -EINVAL;
	case SQLITE_TOOBIG:
		return -EFBIG;
	default:
		return -EIO;
	}
}

int msql_fail(sqlite3 *db, int rc, const char *what, struct mallafs_reason *why)
{
	int e = msql_errno(db, rc);
	if (e == 0)
		e = -EIO;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	if ((rc & 0xff) == SQLITE_CANTOPEN && e != -EACCES)
		msg = strerror(-e);
	if (why)
		mallafs_reason_set(why, "%s: %s", what, msg);
	return e;
}

int msql_exec(sqlite3 *db, const char *sql, const char *what, struct mallafs_reason *why)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : msql_fail(db, rc, what, why);
}

int msql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret, struct mallafs_reason *why)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL);
	return rc == SQLITE_OK ? 0 : msql_fail(db, rc, sql, why);
}

void msql_close(sqlite3 *db)
{
	if (db)
		sqlite3_close_v2(db);
}

/* One integer a statement's first row holds (PRAGMA application_id, ...). */
static int query_int(sqlite3 *db, const char *sql, int64_t *ret, struct mallafs_reason *why)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return msql_fail(db, rc, "reading it", why);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*ret = 0;
		rc = SQLITE_OK;
	}
	int r = rc == SQLITE_OK ? 0 : msql_fail(db, rc, "reading it", why);
	sqlite3_finalize(st);
	return r;
}

/* PRAGMA quick_check: "ok", or the first problem it names. */
static int quick_check(sqlite3 *db, struct mallafs_reason *why)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return msql_fail(db, rc, "quick_check", why);
	rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(st, 0);
		if (!text || strcmp(text, "ok") != 0) {
			mallafs_reason_set(why, "fails quick_check: %.200s", text ? text : "?");
			r = -EINVAL;
		}
	} else {
		r = msql_fail(db, rc, "quick_check", why);
	}
	sqlite3_finalize(st);
	return r;
}

/* Gives an empty database the schema, in one transaction. */
static int create_schema(sqlite3 *db, const struct msql_schema *schema, struct mallafs_reason *why)
{
	char pragmas[128];
	snprintf(pragmas, sizeof(pragmas), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
	         (int)(int32_t)schema->application_id, schema->version);
	int r = msql_exec(db, "BEGIN IMMEDIATE", "creating its tables", why);
	if (r < 0)
		return r;
	r = msql_exec(db, schema->create_sql, "creating its tables", why);
	if (r == 0)
		r = msql_exec(db, pragmas, "creating its tables", why);
	if (r == 0)
		r = msql_exec(db, "COMMIT", "creating its tables", why);
	if (r < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* Everything msql_open checks once the file is open; why gets the bare
 * reason. */
static int check_and_set_up(sqlite3 *db, const struct msql_schema *schema, bool *ret_new,
                            struct mallafs_reason *why)
{
	int64_t app = 0, version = 0, tables = 0;
	int r = query_int(db, "PRAGMA application_id", &app, why);
	if (r == -EINVAL || r == -EIO) {
		/* SQLITE_NOTADB comes at the first read. */
		if (sqlite3_errcode(db) == SQLITE_NOTADB) {
			mallafs_reason_set(why, "not an SQLite database");
			return -EINVAL;
		}
	}
	if (r == 0)
		r = query_int(db, "PRAGMA user_version", &version, why);
	if (r == 0)
		r = query_int(db, "SELECT count(*) FROM sqlite_schema", &tables, why);
	if (r < 0)
		return r;
	bool empty = app == 0 && version == 0 && tables == 0;
	if (!empty && (uint32_t)app != schema->application_id) {
		mallafs_reason_set(why, "not a %s (application_id 0x%08x)", schema->what,
		                   (unsigned)(uint32_t)app);
		return -EINVAL;
	}
	if (!empty && version > schema->version) {
		mallafs_reason_set(
		        why, "written by a newer mallafs (schema %lld; this one reads up to %d)",
		        (long long)version, schema->version);
		return -EINVAL;
	}
	if (!empty && version < 1) {
		mallafs_reason_set(why, "a %s of no known schema (user_version %lld)", schema->what,
		                   (long long)version);
		return -EINVAL;
	}
	if (!empty) {
		r = quick_check(db, why);
		if (r < 0)
			return r;
	}
	if (sqlite3_db_readonly(db, "main") == 1) {
		mallafs_reason_set(why, "it cannot be written (a read-only file or filesystem)");
		return -EROFS;
	}
	/* The first writes: only to a database that passed every check. */
	int64_t ignored;
	r = query_int(db, "PRAGMA journal_mode = WAL", &ignored, why);
	if (r == 0)
		r = msql_exec(db, "PRAGMA synchronous = FULL", "setting it up", why);
	if (r == 0 && empty)
		r = create_schema(db, schema, why);
	if (r == 0)
		*ret_new = empty;
	return r;
}

/* A file whose mode lets nobody write it, or on a read-only filesystem, is
 * read-only, also for root (whom the kernel would let write it): SQLite
 * would otherwise open it for writing, or quietly for reading only. */
static int check_writable(const char *path, struct mallafs_reason *why)
{
	int fd = sys_open(path, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		mallafs_reason_set(why, "%s", strerror(e));
		return -e;
	}
	struct stat st;
	struct statvfs vfs;
	struct statfs fsb;
	int r = 0;
	if (fstat(fd, &st) < 0 || fstatvfs(fd, &vfs) < 0 || fstatfs(fd, &fsb) < 0) {
		r = -errno;
		mallafs_reason_set(why, "%s", strerror(-r));
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		mallafs_reason_set(why, "not a regular file");
	} else if (!(st.st_mode & 0222)) {
		r = -EROFS;
		mallafs_reason_set(why, "the file is read-only (mode %04o)",
		                   (unsigned)(st.st_mode & 07777));
	} else if (fsb.f_type == FUSE_SUPER_MAGIC) {
		/* Another daemon, or mallafs's own mount, would answer every
		 * commit: a daemon that does not answer (or mallafs itself,
		 * waiting for its own reply) would hold the writer, and all who
		 * wait for the store, for good. */
		r = -EXDEV;
		mallafs_reason_set(why, "it is on a FUSE filesystem, where a commit would wait for "
		                        "another daemon (or for mallafs itself)");
	} else if (vfs.f_flag & ST_RDONLY) {
		r = -EROFS;
		mallafs_reason_set(why, "it is on a read-only filesystem");
	}
	close(fd);
	return r;
}

int msql_open(const char *path, bool create, const struct msql_schema *schema, int busy_ms,
              sqlite3 **ret, bool *ret_new, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	sqlite3 *db = NULL;
	int r = msql_init();
	*ret = NULL;
	*ret_new = false;
	if (r < 0) {
		mallafs_reason_set(why, "cannot open %s: SQLite's unix VFS cannot be set up", path);
		return r;
	}
	if (create) {
		/* SQLite would create it 0644; a database may hold secrets. */
		int fd = sys_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd >= 0)
			close(fd);
		else if (errno != EEXIST) {
			r = -errno;
			mallafs_reason_set(why, "cannot open %s: %s", path, strerror(-r));
			return r;
		}
	}
	r = check_writable(path, &local);
	if (r < 0)
		goto fail;
	int rc = sqlite3_open_v2(path, &db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
	                                 SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE,
	                         NULL);
	if (rc != SQLITE_OK) {
		/* Which open failed and why: the system's errno when there is one
		 * (ELOOP for a symbolic link, EACCES, ENOENT), else SQLite's. */
		int e = db ? sqlite3_system_errno(db) : 0;
		r = e > 0 ? -e : msql_errno(db, rc);
		mallafs_reason_set(&local, "%s", e > 0 ? strerror(e) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(db, busy_ms);
	r = check_and_set_up(db, schema, ret_new, &local);
	if (r < 0)
		goto fail;
	*ret = db;
	return 0;
fail:
	mallafs_reason_set(why, "cannot open %s: %s", path, local.text);
	msql_close(db);
	return r < 0 ? r : -EIO;
}
