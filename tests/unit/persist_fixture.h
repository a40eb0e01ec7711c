/* SPDX-License-Identifier: MIT */
/* What the persist plugin's unit tests share: a fixture with a fresh
 * temporary folder, services with persist at a path, and file helpers. */
#ifndef MALLAFS_TESTS_PERSIST_FIXTURE_H
#define MALLAFS_TESTS_PERSIST_FIXTURE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "builtin.h"
#include "events.h"
#include "plugin.h"
#include "service.h"

struct fixture {
	struct mplugreg *reg;
	struct mev_ring *ring;
	char dir[64];
	char path[128];
};

static inline void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0)
		;
}

static inline int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->reg = mplugreg_new(mallafs_builtin_plugins, NULL);
	f->ring = mev_ring_new(1 << 16);
	strcpy(f->dir, "/tmp/mallafs-persist-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/api.store", f->dir);
	*state = f;
	return 0;
}

static inline int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	chmod(path, 0700);
	return remove(path);
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	mev_ring_free(f->ring);
	mplugreg_free(f->reg);
	free(f);
	return 0;
}

static inline struct mallafs_svc *new_svc(struct fixture *f, const char *name)
{
	struct mallafs_svc *svc;
	struct msvc_env env = {.plugins = f->reg, .events = f->ring};
	assert_int_equal(msvc_new(&env, name, &svc), 0);
	return svc;
}

/* A service with persist at path, set up but not started. */
static inline struct mallafs_svc *svc_at(struct fixture *f, const char *name, const char *path)
{
	struct mallafs_svc *svc = new_svc(f, name);
	struct mallafs_reason why = {{0}};
	const char *names[] = {"persist"};
	assert_int_equal(msvc_setup(svc, names, 1, NULL, &why), 0);
	if (path)
		assert_int_equal(msvc_config_set(svc, "persist", "path", path, strlen(path), &why),
		                 0);
	return svc;
}

static inline void svc_gone(struct mallafs_svc *svc)
{
	msvc_destroy(svc);
	msvc_unref(svc);
}

static inline struct msvc_status status_of(struct mallafs_svc *svc)
{
	struct msvc_status st;
	msvc_status(svc, &st);
	return st;
}

static inline void put(struct mallafs_svc *svc, const char *key, const void *value, size_t len)
{
	assert_int_equal(msvc_store_write(svc, key, 0, value, len, MALLAFS_OPF_REPLACE),
	                 (ssize_t)len);
}

static inline void puts_(struct mallafs_svc *svc, const char *key, const char *value)
{
	put(svc, key, value, strlen(value));
}

/* The value of key, or NULL when absent (static buffer). */
static inline const char *get(struct mallafs_svc *svc, const char *key, ssize_t *ret_len)
{
	static char buf[1 << 16];
	ssize_t n = msvc_store_read(svc, key, 0, buf, sizeof(buf) - 1);
	if (ret_len)
		*ret_len = n;
	if (n == -ENOENT)
		return NULL;
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static inline int count_keys_one(const char *key, const struct mkv_stat *st, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static inline int count_keys(struct mallafs_svc *svc)
{
	int n = 0;
	assert_true(msvc_store_list(svc, 0, count_keys_one, &n) >= 0);
	return n;
}

static inline char *slurp(const char *path, size_t *ret_len)
{
	FILE *fp = fopen(path, "rb");
	*ret_len = 0;
	if (!fp)
		return NULL;
	char *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			data = realloc(data, cap);
		}
		size_t n = fread(data + len, 1, cap - len, fp);
		if (n == 0)
			break;
		len += n;
	}
	fclose(fp);
	*ret_len = len;
	return data;
}

static inline void spit(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Entries of the test directory other than those named. */
static inline int stray_files(struct fixture *f, const char *allowed)
{
	DIR *d = opendir(f->dir);
	struct dirent *de;
	int n = 0;
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (allowed && strstr(allowed, de->d_name))
			continue;
		fprintf(stderr, "stray: %s\n", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static inline uint64_t fnv(const char *d, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)d[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* A well-formed file from records given as key, value pairs. */
static inline void write_store_file(const char *path, const char *const *kv, size_t n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	fprintf(m, "mallafs-store 1\n");
	for (size_t i = 0; i < n; i++)
		fprintf(m, "%zu %zu\n%s%s\n", strlen(kv[2 * i]), strlen(kv[2 * i + 1]), kv[2 * i],
		        kv[2 * i + 1]);
	fflush(m);
	uint64_t sum = fnv(text, len);
	fprintf(m, "end %zu %016llx\n", n, (unsigned long long)sum);
	fclose(m);
	spit(path, text, len);
	free(text);
}

/* The value the database at path holds for key (malloc'd; *ret_len its
 * length), or NULL when it has no such row or cannot be read. */
static inline char *db_get(const char *path, const char *key, size_t *ret_len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *v = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 1000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT value FROM store WHERE key = ?1", -1, &st, NULL) ==
	            SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			size_t len = (size_t)sqlite3_column_bytes(st, 0);
			v = malloc(len + 1);
			if (len)
				memcpy(v, sqlite3_column_blob(st, 0), len);
			v[len] = '\0';
			if (ret_len)
				*ret_len = len;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* One integer the SQL gives on the database at path (-1 on error). */
static inline long long db_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 1000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static inline long long db_rows(const char *path)
{
	return db_int(path, "SELECT count(*) FROM store");
}

/* Waits up to ms for the database's row of key to hold value (NULL: no
 * row). */
static inline bool db_has(const char *path, const char *key, const char *value, int ms)
{
	for (int waited = 0;; waited += 10) {
		char *v = db_get(path, key, NULL);
		bool ok = value ? v && strcmp(v, value) == 0 : v == NULL;
		free(v);
		if (ok)
			return true;
		if (waited >= ms)
			return false;
		sleep_ms(10);
	}
}

/* Runs SQL on the database at path (created when missing). */
static inline void db_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

/* A database of persist's with the rows given as key, value pairs. */
static inline void db_make(const char *path, const char *const *kv, size_t n)
{
	db_exec(path, "CREATE TABLE store(key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, "
	              "mtime INTEGER NOT NULL) WITHOUT ROWID; PRAGMA application_id = 1835820656;"
	              " PRAGMA user_version = 1");
	for (size_t i = 0; i < n; i++) {
		char *sql = sqlite3_mprintf("INSERT INTO store VALUES(%Q, CAST(%Q AS BLOB), 1)",
		                            kv[2 * i], kv[2 * i + 1]);
		db_exec(path, sql);
		sqlite3_free(sql);
	}
}

/* The line "name: value" of the service's status file (static buffer). */
static inline const char *status_line(struct mallafs_svc *svc, const char *name)
{
	static char line[512];
	char *text;
	size_t len;
	assert_int_equal(msvc_status_render(svc, &text, &len), 0);
	char want[64];
	snprintf(want, sizeof(want), "\n%s: ", name);
	char *at = strstr(text, want);
	line[0] = '\0';
	if (at) {
		at += strlen(want);
		size_t n = strcspn(at, "\n");
		snprintf(line, sizeof(line), "%.*s", (int)n, at);
	}
	free(text);
	return at ? line : NULL;
}

#endif
