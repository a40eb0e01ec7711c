/* SPDX-License-Identifier: MIT */
/* The persist plugin's parts, shared by its files and its unit test only:
 * persist.c (the plugin: lifecycle, hooks, start and stop), persist_commit.c
 * (batch's records and the timer's commits, retries, status), persist_db.c
 * (the SQLite database: open, load, rows, conversion of an old file),
 * persist_dirty.c (batch mode's map of changes), persist_format.c (the old
 * file format, read only), persist_file.c (files without following a
 * symlink), persist_owner.c (the identity persist's threads act with). */
#ifndef MALLAFS_PLUGINS_PERSIST_I_H
#define MALLAFS_PLUGINS_PERSIST_I_H

#include "mallafs-plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <pthread.h>
#include <sqlite3.h>

#include "msql.h"

/* The largest old-format (v1) file persist reads, in bytes (4 GiB): a
 * bigger one is refused with EFBIG before anything is allocated for it. */
#define PERSIST_FILE_MAX (4ULL << 30)
/* Bytes the temporary database's names add to the file's: ".tmp.", 16 hex
 * digits and "-wal". The name with them must fit in NAME_MAX. */
#define PERSIST_TMP_SUFFIX 25
#define PERSIST_KEY_MAX 255

/* ---- persist_format.c: the old format, read only ---- */

struct persist_record {
	const char *key; /* not NUL-terminated */
	size_t klen;
	const char *value;
	size_t vlen;
};

/* A valid store key of persist's: 1..255 bytes, no '/' or NUL, not "." or
 * "..". */
bool persist_key_ok(const char *k, size_t len);

/* Checks a whole file and lists its records (pointing into d). -EINVAL with
 * a reason when any of it does not check out. */
int persist_parse(const char *d, size_t size, struct persist_record **ret, size_t *ret_n,
                  struct mallafs_reason *why);

/* ---- persist_dirty.c: the changes batch mode has not committed yet ---- */

/* One key's latest change: its value, or its deletion. */
struct pdirty_ent {
	struct pdirty_ent *next;
	bool del;
	int64_t mtime; /* ns since the epoch */
	size_t len;
	char *value; /* malloc'd, NULL when del or empty */
	char key[];
};

/* A map from key to its latest change. */
struct pdirty {
	struct pdirty_ent **tab;
	size_t nbuckets; /* a power of two, or 0 */
	size_t n;
};

/* Records the key's new value (copied) or deletion (value NULL and del),
 * replacing what the map held for it. 0 or -ENOMEM (the map unchanged). */
int pdirty_put(struct pdirty *m, const char *key, bool del, const void *value, size_t len,
               int64_t mtime);
/* Moves the entries of from whose keys to lacks into to (they are older
 * than to's); frees what is left of from. */
void pdirty_merge_older(struct pdirty *to, struct pdirty *from);
/* Calls fn for each entry; stops at a non-zero return and returns it. */
int pdirty_foreach(const struct pdirty *m, int (*fn)(const struct pdirty_ent *e, void *arg),
                   void *arg);
void pdirty_free(struct pdirty *m);

/* ---- persist_db.c ---- */

extern const struct msql_schema persist_schema;

/* An open database and its statements. */
struct pdb {
	sqlite3 *db;
	sqlite3_stmt *put, *del, *get, *copy;
	long max_pages; /* what test_limit set */
};

/* A test hook: when not 0, the largest database in pages that a row may
 * be written into (PRAGMA max_page_count): a row that needs more fails
 * with SQLITE_FULL (-ENOSPC), as on a full disk. Read at each row. */
extern long persist_test_max_pages;

/* Memory freed at once: blocks that never move. */
struct parena_block {
	struct parena_block *next;
	char data[];
};
struct parena {
	struct parena_block *blocks;
	size_t used, cap;
};
void *parena_alloc(struct parena *a, size_t len);
void parena_free(struct parena *a);

/* Keys and values with their mtimes (a load, a snapshot of the store). */
struct precs {
	struct mallafs_store_rec *recs;
	size_t n, cap;
	struct parena mem;
};
/* Copies key (klen bytes, no NUL) and value in. 0 or -ENOMEM. */
int precs_add(struct precs *s, const char *key, size_t klen, const void *value, size_t len,
              int64_t mtime);
void precs_sort(struct precs *s); /* by key, as SQLite's BINARY collation */
void precs_free(struct precs *s);

/* Opens (creating it when create) and checks the database at path through
 * msql_open, as the calling thread's identity, and prepares the statements.
 * The reason is msql_open's. */
int pdb_open(const char *path, bool create, struct pdb *d, bool *ret_new,
             struct mallafs_reason *why);
void pdb_close(struct pdb *d); /* accepts a closed one */
/* One row each; outside a transaction each is one (a commit). */
int pdb_put(struct pdb *d, const char *key, const void *value, size_t len, int64_t mtime,
            struct mallafs_reason *why);
int pdb_del(struct pdb *d, const char *key, struct mallafs_reason *why);
int pdb_rename(struct pdb *d, const char *from, const char *to, struct mallafs_reason *why);
int pdb_begin(struct pdb *d, struct mallafs_reason *why);
int pdb_commit(struct pdb *d, struct mallafs_reason *why); /* rolls back on failure */
void pdb_rollback(struct pdb *d);
/* Every row, keys checked (-EINVAL "row N: invalid key name"). */
int pdb_load(struct pdb *d, struct precs *ret, struct mallafs_reason *why);
/* Makes the table hold exactly s (sorted), in one transaction, writing the
 * rows that differ only; *ret_changed counts them. */
int pdb_sync(struct pdb *d, const struct precs *s, size_t *ret_changed, struct mallafs_reason *why);
/* Converts the old-format file at path, whose bytes are data: checks it
 * whole (persist_parse), writes a new database beside it under a temporary
 * name, renames path to PATH.v1 and the database to path, fsyncs the
 * folder. As the calling thread's identity. *ret_n: the records. */
int persist_convert_v1(const char *path, const char *data, size_t len, size_t *ret_n,
                       struct mallafs_reason *why);

/* ---- persist_file.c: every call acts with the calling thread's
 * filesystem identity (see persist_owner.c) ---- */

/* Opens the folder path names (path is absolute, checked by the merge)
 * following no symbolic link anywhere on the way: openat2 with
 * RESOLVE_NO_SYMLINKS, or, where the kernel lacks openat2 (before 5.6) or
 * walk is true, one component at a time with O_NOFOLLOW. A symbolic link on
 * the way is -ELOOP. Returns an fd open for reading, or -errno with a
 * reason; *ret_name points to the file's name in path. */
int persist_open_dir(const char *path, bool walk, int *ret_fd, const char **ret_name,
                     struct mallafs_reason *why);

/* Opens the file at path for reading (O_NOFOLLOW, O_NONBLOCK so that a FIFO
 * does not block) and checks it: a regular file of at most max bytes, belonging to the thread's
 * filesystem uid or to root. -ENOENT (no reason) when it or its folder does not exist; -ELOOP a
 * symbolic link; -EISDIR, -EINVAL another kind of file; -EFBIG too big; -EPERM another user's. *st
 * is its fstat. */
int persist_open_file(const char *path, uint64_t max, int *ret_fd, struct stat *st,
                      struct mallafs_reason *why);

/* Reads the whole open file (st from persist_open_file), never more than
 * PERSIST_FILE_MAX bytes (-EFBIG when it grew past them). */
int persist_read_fd(int fd, const struct stat *st, char **ret, size_t *ret_len,
                    struct mallafs_reason *why);

/* A name beside path for a temporary database: path, ".tmp.", 16 random
 * hex digits. 0 or -ENAMETOOLONG. */
int persist_tmp_name(const char *path, char *buf, size_t len);

/* Renames path to keep, then tmp to path (all three in one folder), then
 * fsyncs the folder. */
int persist_swap_in(const char *path, const char *tmp, const char *keep,
                    struct mallafs_reason *why);

/* Removes the file at path (no symbolic link followed). 0 or -errno. */
int persist_unlink(const char *path);

/* ---- persist_owner.c ---- */

/* The identity a thread took last (the owner it acts as). Only the thread
 * that acts touches it. */
struct persist_as {
	bool known; /* uid, gid and groups hold the last owner seen */
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* sorted */
	size_t ngroups;
	gid_t *own_groups; /* the daemon's, as the thread started */
	size_t nown;
};

/* Called first by the thread that will act: records its groups. */
int persist_as_init(struct persist_as *as);
void persist_as_free(struct persist_as *as);

/* Makes the calling thread's filesystem uid and gid, and its supplementary
 * groups, those of svc's owner now (mallafs_svc_owner; groups from the
 * user database, or the owner's gid alone when the uid has no entry): with
 * setfsuid, setfsgid and the raw setgroups system call, which act on this
 * thread only. Each switch is checked; when one did not take, -EPERM with
 * the reason, and nothing may be done with the files. */
int persist_as_owner(struct persist_as *as, struct mallafs_svc *svc, struct mallafs_reason *why);

/* Gives the calling thread the daemon's identity back after
 * persist_as_owner: its groups as persist_as_init found them, its
 * filesystem uid and gid those of the process. A worker of the timer loop,
 * shared with every service, does this after each save. 0, or -EPERM with
 * the reason when a switch did not take. */
int persist_as_daemon(struct persist_as *as, struct mallafs_reason *why);

/* The calling thread's filesystem uid: whom persist acts as. */
uid_t persist_fsuid(void);

/* ---- persist.c and persist_commit.c ---- */

#define PERSIST_COALESCE_NS (50 * 1000000LL)
#define PERSIST_RETRY_MS 1000
#define PERSIST_RETRY_MAX_MS 5000

/* Lock order: the store's lock, then p->db_lock, then p->lock, then the
 * timer loop's (p->timer is armed with p->lock held). Nothing takes the
 * store's lock while it holds db_lock or p->lock.
 * db_lock guards the connection p->d once start opened it: the timer's
 * callback, always mode's commits (store write lock held) and stop use it
 * in turn. p->lock guards the fields marked "lock:". The store's write lock
 * guards `committed`. The rest belongs to start and stop (and their
 * thread). */
struct persist {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;
	char *path; /* while started with a path; NULL persists nothing */
	bool always;

	struct mallafs_timer *timer;

	pthread_mutex_t db_lock;
	struct pdb d;

	pthread_mutex_t lock;
	/* lock: */
	bool on; /* started with a path: hooks and status act */
	bool stopping;
	struct pdirty dirty;
	bool armed;   /* a commit of dirty is due */
	bool syncing; /* the store is to be reconciled (and always records too) */
	bool failing; /* the last commit failed: a retry is due */
	int retry_ms;
	char last_commit[32];                /* "-" or a time */
	char error[MALLAFS_REASON_MAX + 64]; /* "-" or a time and a reason */
	char logged[MALLAFS_REASON_MAX];     /* the failure last logged */

	/* store write lock: the operation always mode committed. */
	const struct mallafs_store_op *committed;

	bool started; /* start and stop only */

	/* start, stop and their thread: */
	int thread_result;
	struct mallafs_reason thread_why;
	bool sync_at_start;
	size_t loaded;
	struct persist_as as;
	/* The database this instance closed last, to recognise it. */
	bool saved;
	char *saved_path;
	struct stat saved_st;
};

/* ---- persist_commit.c ---- */

int64_t persist_real_ns(void); /* CLOCK_REALTIME in ns */
/* The value of key in the table (store lock held): a malloc'd copy, or
 * -ENOENT. guess is a bound on its size, when known. */
int persist_table_value(struct mallafs_svc *svc, const char *key, uint64_t guess, char **ret,
                        size_t *ret_len);
/* A bound on the size of op->key's value after op. */
uint64_t persist_size_guess(const struct mallafs_store_op *op);
/* Records key's state in the table now into the map (p->lock and the store
 * lock held). */
int persist_record_key(struct persist *p, const char *key, uint64_t guess);
/* Arms the timer for the map 50 ms from now, unless a commit or a retry is
 * due already (p->lock held). */
void persist_arm_commit(struct persist *p);
/* Notes a commit's outcome in status and the log (p->lock not held). */
void persist_note_commit(struct persist *p, int r, const struct mallafs_reason *why, bool retry);
/* Commits the map (and the reconciliation); on failure puts it back. */
int persist_commit_pending(struct persist *p, bool retry, struct mallafs_reason *why);
/* The timer's callback. */
void persist_commit_due(void *arg);

#endif
