/* SPDX-License-Identifier: MIT */
/* SQLite as mallafs uses it: persist's databases and the state database
 * (-o state=). One place opens them, checks that a file is ours, of a
 * schema we read and sound, and turns SQLite's results into errnos and
 * reasons.
 *
 * Files: msql_init() makes every file SQLite opens in this process (a
 * database, its -wal and -shm, a journal, the folder it fsyncs) open with no
 * symbolic link followed anywhere in its path (openat2 with
 * RESOLVE_NO_SYMLINKS; O_NOFOLLOW on the last component where the kernel
 * lacks openat2), and with the calling thread's filesystem identity, as any
 * open does: a thread that acts as a service's owner opens as that owner.
 * In WAL mode SQLite opens its files when the connection first reads and
 * keeps them open until it closes, so what is done in between (commits,
 * checkpoints) needs no identity.
 *
 * No state of its own beyond the one-time setup; no locks. A connection is
 * used by one thread at a time (SQLite's multi-thread mode). */
#ifndef MALLAFS_CORE_MSQL_H
#define MALLAFS_CORE_MSQL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "mallafs-plugin.h"

/* What a database of one kind is: its PRAGMA application_id, the newest
 * schema version this build reads and writes (PRAGMA user_version), what
 * messages call it ("persist database"), and the SQL that creates version
 * `version` in an empty database. */
struct msql_schema {
	uint32_t application_id;
	int version;
	const char *what;
	const char *create_sql;
};

/* Once, before any database is opened (later calls do nothing). 0 or
 * -errno. */
int msql_init(void);

/* Opens (creating when create is true and the file does not exist, mode
 * 0600 with the thread's filesystem identity) the database at path, an
 * absolute name, and checks it, in this order:
 *  - a file that is not an SQLite database: -EINVAL "not an SQLite database";
 *  - an empty database (no table, application_id 0): gets the schema,
 *    application_id and user_version in one transaction; *ret_new = true;
 *  - application_id not ours: -EINVAL "not a WHAT (application_id 0x...)";
 *  - user_version newer than ours: -EINVAL "written by a newer mallafs
 *    (schema N; this one reads up to M)";
 *  - PRAGMA quick_check not "ok": -EINVAL "fails quick_check: FIRST LINE";
 *  - a file that is not a regular file: -EINVAL;
 *  - a read-only file: no write bit in its mode (root too is refused, as
 *    the mode says read-only), a read-only filesystem, or one SQLite can
 *    open for reading only: -EROFS "the file is read-only (mode 0444)";
 *    one the thread may not open: -EACCES;
 *  - a file on a FUSE filesystem (another daemon's, or mallafs's own
 *    mount): -EXDEV, since every commit would wait for that daemon.
 * Nothing is written to a database that fails a check. The connection is
 * in WAL mode, synchronous FULL (a commit is on disk when it returns),
 * with a busy timeout of busy_ms. why gets "cannot open PATH: REASON".
 * The connection is closed again on any error. */
int msql_open(const char *path, bool create, const struct msql_schema *schema, int busy_ms,
              sqlite3 **ret, bool *ret_new, struct mallafs_reason *why);

/* Closes (accepts NULL); the last connection to a WAL database checkpoints
 * it and removes its -wal and -shm. */
void msql_close(sqlite3 *db);

/* -errno for an SQLite result code: SQLITE_FULL -ENOSPC, SQLITE_IOERR
 * -EIO, SQLITE_BUSY and SQLITE_LOCKED -EBUSY, SQLITE_READONLY -EROFS,
 * SQLITE_NOMEM -ENOMEM, SQLITE_PERM and SQLITE_AUTH -EACCES,
 * SQLITE_CANTOPEN -EACCES or the open's errno, SQLITE_CORRUPT and
 * SQLITE_NOTADB -EINVAL, SQLITE_TOOBIG -EFBIG, anything else -EIO. */
int msql_errno(sqlite3 *db, int rc);

/* Sets why to "WHAT: SQLite's message" and returns msql_errno(db, rc). */
int msql_fail(sqlite3 *db, int rc, const char *what, struct mallafs_reason *why);

/* Runs sql (statements without results); 0 or msql_fail(..., what, why). */
int msql_exec(sqlite3 *db, const char *sql, const char *what, struct mallafs_reason *why);

/* Prepares sql, kept for the connection's life (SQLITE_PREPARE_PERSISTENT);
 * 0 or msql_fail. */
int msql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret, struct mallafs_reason *why);

#endif
