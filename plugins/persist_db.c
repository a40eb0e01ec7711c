/* SPDX-License-Identifier: MIT */
/* persist's SQLite database: its schema, the load, the rows each change
 * writes, the reconciliation of a whole store, and the conversion of a file
 * of the old format (persist_format.c) into a database.
 *
 * Schema (application_id 0x6d6c6670 'mlfp', user_version 1):
 *
 *     CREATE TABLE store(key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL,
 *                        mtime INTEGER NOT NULL) WITHOUT ROWID
 *
 * one row per key: the key's bytes as text, its value, and its last change
 * in nanoseconds since the epoch. WITHOUT ROWID keeps a row in the key's
 * b-tree alone, so a change rewrites one leaf page (and the pages above it
 * when it splits), whatever the store's size.
 *
 * Every function runs on the connection of the caller's struct pdb, which
 * persist.c hands to one thread at a time (its db_lock); none opens a file
 * by name except pdb_open and persist_convert_v1, which run as the owner.
 * temp_store is MEMORY, so no statement opens a temporary file either. */
#include "persist_i.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msql.h"

/* Milliseconds a statement waits for another connection's write lock (the
 * owner's sqlite3 shell in a transaction; readers never hold one in WAL
 * mode) before it fails with EBUSY: short, since a commit under `always`
 * holds the service's store lock, and a FUSE worker thread, while it waits
 * (the owner could otherwise hold a transaction open and tie up a thread
 * per write of theirs for as long). */
#define PERSIST_BUSY_MS 10

const struct msql_schema persist_schema = {
        .application_id = 0x6d6c6670,
        .version = 1,
        .what = "persist database",
        .create_sql = "CREATE TABLE store(key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, "
                      "mtime INTEGER NOT NULL) WITHOUT ROWID",
};

static int prepare_all(struct pdb *d, struct mallafs_reason *why)
{
	/* A read opens -wal and -shm now, as the caller's identity; the
	 * connection keeps them open until pdb_close. */
	int r = msql_exec(d->db, "PRAGMA temp_store=MEMORY; SELECT count(*) FROM store",
	                  "cannot read the database", why);
	if (r == 0)
		r = msql_prepare(
		        d->db, "INSERT OR REPLACE INTO store(key, value, mtime) VALUES(?1, ?2, ?3)",
		        &d->put, why);
	if (r == 0)
		r = msql_prepare(d->db, "DELETE FROM store WHERE key = ?1", &d->del, why);
	if (r == 0)
		r = msql_prepare(d->db, "SELECT value FROM store WHERE key = ?1", &d->get, why);
	if (r == 0)
		r = msql_prepare(d->db,
		                 "INSERT OR REPLACE INTO store(key, value, mtime) "
		                 "SELECT ?2, value, mtime FROM store WHERE key = ?1",
		                 &d->copy, why);
	return r;
}

int pdb_open(const char *path, bool create, struct pdb *d, bool *ret_new,
             struct mallafs_reason *why)
{
	*d = (struct pdb){0};
	int r = msql_init();
	if (r < 0) {
		mallafs_reason_set(why, "cannot set SQLite up: %s", strerror(-r));
		return r;
	}
	r = msql_open(path, create, &persist_schema, PERSIST_BUSY_MS, &d->db, ret_new, why);
	if (r == 0)
		r = prepare_all(d, why);
	if (r < 0)
		pdb_close(d);
	return r;
}

void pdb_close(struct pdb *d)
{
	sqlite3_finalize(d->put);
	sqlite3_finalize(d->del);
	sqlite3_finalize(d->get);
	sqlite3_finalize(d->copy);
	msql_close(d->db);
	*d = (struct pdb){0};
}

/* Runs a prepared statement that returns no row, and resets it. */
static int step_done(struct pdb *d, sqlite3_stmt *st, const char *what, struct mallafs_reason *why)
{
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : msql_fail(d->db, rc, what, why);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

long persist_test_max_pages;

/* The test hook: the connection's max_page_count follows
 * persist_test_max_pages (0: SQLite's default). */
static void test_limit(struct pdb *d)
{
	long want = __atomic_load_n(&persist_test_max_pages, __ATOMIC_RELAXED);
	if (want == d->max_pages)
		return;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %ld", want ? want : 1073741823L);
	sqlite3_exec(d->db, sql, NULL, NULL, NULL);
	d->max_pages = want;
}

int pdb_put(struct pdb *d, const char *key, const void *value, size_t len, int64_t mtime,
            struct mallafs_reason *why)
{
	test_limit(d);
	sqlite3_bind_text(d->put, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(d->put, 2, value ? value : "", len, SQLITE_STATIC);
	sqlite3_bind_int64(d->put, 3, mtime);
	return step_done(d, d->put, "cannot write a row", why);
}

int pdb_del(struct pdb *d, const char *key, struct mallafs_reason *why)
{
	sqlite3_bind_text(d->del, 1, key, -1, SQLITE_STATIC);
	return step_done(d, d->del, "cannot delete a row", why);
}

int pdb_rename(struct pdb *d, const char *from, const char *to, struct mallafs_reason *why)
{
	sqlite3_bind_text(d->copy, 1, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->copy, 2, to, -1, SQLITE_STATIC);
	int r = step_done(d, d->copy, "cannot rename a row", why);
	return r < 0 ? r : pdb_del(d, from, why);
}

int pdb_begin(struct pdb *d, struct mallafs_reason *why)
{
	return msql_exec(d->db, "BEGIN IMMEDIATE", "cannot begin a transaction", why);
}

int pdb_commit(struct pdb *d, struct mallafs_reason *why)
{
	int r = msql_exec(d->db, "COMMIT", "commit failed", why);
	if (r < 0)
		pdb_rollback(d);
	return r;
}

void pdb_rollback(struct pdb *d)
{
	if (!sqlite3_get_autocommit(d->db))
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- the load ---- */

/* Memory for the records of a load or a snapshot: blocks that never move,
 * freed at once. */
#define ARENA_BLOCK (1u << 20)

void *parena_alloc(struct parena *a, size_t len)
{
	if (len > a->cap - a->used) {
		size_t cap = len > ARENA_BLOCK ? len : ARENA_BLOCK;
		struct parena_block *b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = a->blocks;
		a->blocks = b;
		a->cap = cap;
		a->used = 0;
	}
	void *p = a->blocks->data + a->used;
	a->used += (len + 7) & ~(size_t)7;
	if (a->used > a->cap)
		a->used = a->cap;
	return p;
}

void parena_free(struct parena *a)
{
	for (struct parena_block *b = a->blocks, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	*a = (struct parena){0};
}

int precs_add(struct precs *s, const char *key, size_t klen, const void *value, size_t len,
              int64_t mtime)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct mallafs_store_rec *v = realloc(s->recs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->recs = v;
		s->cap = cap;
	}
	char *k = parena_alloc(&s->mem, klen + 1 + len);
	if (!k)
		return -ENOMEM;
	memcpy(k, key, klen);
	k[klen] = '\0';
	if (len)
		memcpy(k + klen + 1, value, len);
	s->recs[s->n++] = (struct mallafs_store_rec){
	        .key = k,
	        .value = k + klen + 1,
	        .len = len,
	        .mtime = {.tv_sec = mtime / 1000000000, .tv_nsec = mtime % 1000000000},
	};
	return 0;
}

void precs_free(struct precs *s)
{
	free(s->recs);
	parena_free(&s->mem);
	*s = (struct precs){0};
}

int pdb_load(struct pdb *d, struct precs *ret, struct mallafs_reason *why)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(d->db, "SELECT key, value, mtime FROM store", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return msql_fail(d->db, rc, "cannot read the rows", why);
	int r = 0;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_blob(st, 0);
		size_t klen = (size_t)sqlite3_column_bytes(st, 0);
		const void *value = sqlite3_column_blob(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		int64_t mtime = sqlite3_column_int64(st, 2);
		if (sqlite3_column_type(st, 0) != SQLITE_TEXT || !persist_key_ok(key, klen)) {
			mallafs_reason_set(why, "row %zu: invalid key name", ret->n + 1);
			r = -EINVAL;
		} else if (mtime < 0) {
			mallafs_reason_set(why, "row %zu: negative mtime", ret->n + 1);
			r = -EINVAL;
		} else if (precs_add(ret, key, klen, value, len, mtime) < 0) {
			mallafs_reason_set(why, "out of memory at row %zu", ret->n + 1);
			r = -ENOMEM;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = msql_fail(d->db, rc, "cannot read the rows", why);
	sqlite3_finalize(st);
	return r;
}

/* ---- reconciliation ---- */

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mallafs_store_rec *)a)->key,
	              ((const struct mallafs_store_rec *)b)->key);
}

void precs_sort(struct precs *s)
{
	if (s->n)
		qsort(s->recs, s->n, sizeof(*s->recs), rec_cmp);
}

static int64_t rec_mtime(const struct mallafs_store_rec *r)
{
	return (int64_t)r->mtime.tv_sec * 1000000000 + r->mtime.tv_nsec;
}

/* Whether the row of rec's key holds rec's value. */
static bool row_holds(struct pdb *d, const struct mallafs_store_rec *rec)
{
	sqlite3_bind_text(d->get, 1, rec->key, -1, SQLITE_STATIC);
	bool same = false;
	if (sqlite3_step(d->get) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(d->get, 0);
		const void *v = sqlite3_column_blob(d->get, 0);
		same = len == rec->len && (len == 0 || memcmp(v, rec->value, len) == 0);
	}
	sqlite3_reset(d->get);
	sqlite3_clear_bindings(d->get);
	return same;
}

int pdb_sync(struct pdb *d, const struct precs *s, size_t *ret_changed, struct mallafs_reason *why)
{
	sqlite3_stmt *st;
	size_t changed = 0;
	int r = pdb_begin(d, why);
	if (r < 0)
		return r;
	/* Rows whose key the store lacks: gathered first, deleted after the
	 * walk (a table is not changed under a running SELECT of it). */
	struct precs gone = {0};
	int rc = sqlite3_prepare_v2(d->db, "SELECT key FROM store", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = msql_fail(d->db, rc, "cannot read the rows", why);
		goto out;
	}
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mallafs_store_rec want = {.key = (const char *)sqlite3_column_text(st, 0)};
		if (want.key && !bsearch(&want, s->recs, s->n, sizeof(*s->recs), rec_cmp) &&
		    precs_add(&gone, want.key, strlen(want.key), NULL, 0, 0) < 0) {
			mallafs_reason_set(why, "out of memory");
			r = -ENOMEM;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = msql_fail(d->db, rc, "cannot read the rows", why);
	sqlite3_finalize(st);
	for (size_t i = 0; r == 0 && i < gone.n; i++, changed++)
		r = pdb_del(d, gone.recs[i].key, why);
	for (size_t i = 0; r == 0 && i < s->n; i++) {
		if (row_holds(d, &s->recs[i]))
			continue;
		r = pdb_put(d, s->recs[i].key, s->recs[i].value, s->recs[i].len,
		            rec_mtime(&s->recs[i]), why);
		changed++;
	}
out:
	precs_free(&gone);
	if (r == 0)
		r = pdb_commit(d, why);
	else
		pdb_rollback(d);
	if (r == 0 && ret_changed)
		*ret_changed = changed;
	return r;
}

/* ---- the old format ---- */

int persist_convert_v1(const char *path, const char *data, size_t len, size_t *ret_n,
                       struct mallafs_reason *why)
{
	struct persist_record *recs = NULL;
	struct mallafs_reason pr = {{0}};
	size_t n = 0;
	char tmp[PATH_MAX], keep[PATH_MAX], key[PERSIST_KEY_MAX + 1];
	struct pdb d;
	bool fresh;
	int r = persist_parse(data, len, &recs, &n, &pr);
	if (r < 0) {
		mallafs_reason_set(why, "%s", pr.text);
		return r;
	}
	if (persist_tmp_name(path, tmp, sizeof(tmp)) < 0 ||
	    snprintf(keep, sizeof(keep), "%s.v1", path) >= (int)sizeof(keep)) {
		free(recs);
		mallafs_reason_set(why, "the name is too long to convert it");
		return -ENAMETOOLONG;
	}
	r = pdb_open(tmp, true, &d, &fresh, &pr);
	if (r == 0 && !fresh) {
		mallafs_reason_set(&pr, "%s exists already", tmp);
		r = -EEXIST;
		pdb_close(&d);
	} else if (r == 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t mtime = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
		r = pdb_begin(&d, &pr);
		for (size_t i = 0; r == 0 && i < n; i++) {
			memcpy(key, recs[i].key, recs[i].klen);
			key[recs[i].klen] = '\0';
			r = pdb_put(&d, key, recs[i].value, recs[i].vlen, mtime, &pr);
		}
		if (r == 0)
			r = pdb_commit(&d, &pr);
		else
			pdb_rollback(&d);
		pdb_close(&d);
		if (r == 0)
			r = persist_swap_in(path, tmp, keep, &pr);
		if (r < 0)
			persist_unlink(tmp);
	}
	free(recs);
	if (r < 0)
		mallafs_reason_set(why, "cannot convert it to a database: %s", pr.text);
	else
		*ret_n = n;
	return r;
}
