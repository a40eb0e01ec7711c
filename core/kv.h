/* SPDX-License-Identifier: MIT */
/* A binary-safe key-value table with the byte ranges a regular file needs.
 * O(1) average get/put/delete, with no pause proportional to the table (its
 * hash index resizes a few buckets at a time); listing resumes at a cookie
 * in O(1), so listing a folder is linear in what it returns, and an entry
 * that is there throughout a listing is returned exactly once whatever
 * comes and goes meanwhile (for readdir offsets). Listing order is the
 * order of the entries' positions: a new entry takes the lowest free one,
 * so it is not creation order. About 80 bytes an entry of a short name and
 * value (core/kv_i.h). Not thread-safe: the owner locks. Used by services'
 * stores, by the node-wide config store and by the fs layer's tables. */
#ifndef MALLAFS_CORE_KV_H
#define MALLAFS_CORE_KV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The largest value the table holds: a write or truncate whose end is past
 * it gets -EFBIG before anything is allocated. A value lives in one block of
 * memory and a reader of the whole value (cat, config.ini, persist) copies
 * it, so the bound is what one write at a far offset may make the daemon
 * allocate: 64 MiB, far above any state a service keeps in a file. */
#define MKV_MAX_VALUE ((uint64_t)64 << 20)

/* The longest key: -ENAMETOOLONG past it. Store and config names are at
 * most MU_NAME_MAX (255) bytes; the fs layer's tables key by path. */
#define MKV_MAX_KEY 65535

#define MKV_APPEND 0x1 /* mkv_write: at the end, offset ignored */
/* mkv_write: the value becomes exactly off zero bytes, then data (off 0: a
 * put), in one step: nobody sees it emptied in between. */
#define MKV_REPLACE 0x2

struct mkv;

/* A memory account several tables charge: the bytes of their keys (the
 * name's length) and values (the value's length). A change that would take
 * used past limit (0: no limit) fails with -ENOSPC before allocating, and
 * changes nothing. Thread-safe: tables locked by different owners share one.
 * Zero-initialise it (or MKV_ACCOUNT_INIT) and set limit before use. */
struct mkv_account {
	_Atomic uint64_t used;
	_Atomic uint64_t limit;
};

/* Takes n bytes from a (NULL: no account): 0, or -ENOSPC with nothing taken. */
int mkv_account_charge(struct mkv_account *a, uint64_t n);
void mkv_account_release(struct mkv_account *a, uint64_t n);
uint64_t mkv_account_used(const struct mkv_account *a);
uint64_t mkv_account_limit(const struct mkv_account *a);

/* Every id is below 2^MKV_ID_BITS (the filesystem makes inode numbers of
 * them with room to spare). */
#define MKV_ID_BITS 45
/* A table holds at most 2^MKV_POS_BITS keys (64M): -ENOSPC beyond. */
#define MKV_POS_BITS 26

struct mkv_stat {
	/* Unique in this table for its lifetime, never reused, never 0; kept
	 * through mkv_rename (not mkv_move). */
	uint64_t id;
	/* Where a listing resumes to return the entries after this one (the
	 * "after" of mkv_list): the entry's position, stable while it is there. */
	uint64_t cookie;
	uint64_t size;
	struct timespec mtime; /* last change of the value */
	struct timespec ctime; /* last change of the value or the name */
	/* The value's version: taken from a counter of the table at every
	 * change of the value (write, truncate, create, rename; not a change of
	 * mtime alone), so no two states of the table's entries share one.
	 * What poll() compares, as touch can set any mtime. */
	uint64_t ver;
};

struct mkv *mkv_new(void);
void mkv_free(struct mkv *kv); /* accepts NULL */
size_t mkv_count(const struct mkv *kv);
/* Bytes of keys and values the table holds, as charged to its account. */
uint64_t mkv_bytes(const struct mkv *kv);
/* Charges the table to a (NULL: none) from now on, moving what it holds
 * from its former account (that charge is forced, whatever a's limit). */
void mkv_set_account(struct mkv *kv, struct mkv_account *a);
/* The longest hash chain: what one lookup may have to walk (tests). */
size_t mkv_longest_chain(const struct mkv *kv);

/* Keys are NUL-terminated strings; values are bytes. */
int mkv_stat(const struct mkv *kv, const char *key, struct mkv_stat *ret); /* -ENOENT */
ssize_t mkv_read(const struct mkv *kv, const char *key, uint64_t off, void *buf, size_t len);
/* A copy of the whole value (malloc'd, with a NUL after it for convenience). */
int mkv_get(const struct mkv *kv, const char *key, char **ret, size_t *ret_len);
/* Creates the key when absent. Returns bytes written or -errno (-EFBIG, -ENOSPC,
 * -ENOMEM). */
ssize_t mkv_write(struct mkv *kv, const char *key, uint64_t off, const void *data, size_t len,
                  unsigned flags);
int mkv_create(struct mkv *kv, const char *key); /* empty value; -EEXIST, -ENOSPC */
/* -ENOENT, -EFBIG, -ENOSPC */
int mkv_truncate(struct mkv *kv, const char *key, uint64_t size);
int mkv_delete(struct mkv *kv, const char *key); /* -ENOENT */
/* Sets the value's mtime (NULL: now), as touch does; ctime becomes now. */
int mkv_set_mtime(struct mkv *kv, const char *key, const struct timespec *mtime);
/* The name of the entry of id id, into buf: 0, -ENOENT when there is no
 * such entry any more, -ENAMETOOLONG when it does not fit len. */
int mkv_name_of(const struct mkv *kv, uint64_t id, char *buf, size_t len);
/* Atomically renames from to to, replacing to. The entry keeps its id and
 * its position (its place in a listing).
 * from == to is a no-op returning 0; -ENOENT when from is absent; -ENOSPC
 * when a longer name does not fit in the account. */
int mkv_rename(struct mkv *kv, const char *from, const char *to);
/* Moves an entry to another table (replacing a key of that name there),
 * where it gets a position and an id. */
int mkv_move(struct mkv *from_kv, const char *from, struct mkv *to_kv, const char *to);
/* Calls fn for the entries after the one whose cookie is after (0: from
 * the start) in position order; stops on a non-zero return and returns it.
 * Resuming costs O(1), whatever the table holds. fn may delete the entry it
 * is given. */
int mkv_list(const struct mkv *kv, uint64_t after,
             int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg);

/* Every entry with its value, in position order; fn must not change the
 * table. */
int mkv_foreach(const struct mkv *kv,
                int (*fn)(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                          void *arg),
                void *arg);
/* The same for at most max entries after the one whose cookie is *cookie
 * (0: from the start), setting *cookie to the last one's: 1 when there
 * may be more, 0 when the table is done, or fn's non-zero return. */
int mkv_foreach_from(const struct mkv *kv, uint64_t *cookie, size_t max,
                     int (*fn)(const char *key, const void *value, size_t len,
                               const struct mkv_stat *st, void *arg),
                     void *arg);

/* Work this thread's calls did so far, deterministic measures of cost for
 * tests: entries looked at in hash chains, buckets and entries a resize
 * moved, words the position table's searches looked at. */
struct mkv_work {
	uint64_t chain;
	uint64_t buckets;
	uint64_t moved;
	uint64_t slots;
};
void mkv_work(struct mkv_work *ret);

#endif
