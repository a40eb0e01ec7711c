/* SPDX-License-Identifier: MIT */
/* The persist plugin on SQLite: rows written as the store changes (batch:
 * coalesced, soon after; always: before the write returns, refused with
 * the commit's errno and undone), loaded at start, a bad database failing
 * the start with nothing loaded, an old-format file converted, status
 * lines, the bulk load. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>

#include "persist_fixture.h"
#include "persist_i.h"

static void set(struct mallafs_svc *svc, const char *key, const char *value)
{
	struct mallafs_reason why = {{0}};
	if (msvc_config_set(svc, "persist", key, value, strlen(value), &why) < 0)
		fail_msg("set %s = %s: %s", key, value, why.text);
}

/* Events about store keys since *cursor. */
static int store_events(struct fixture *f, uint64_t *cursor)
{
	char buf[8192];
	ssize_t n;
	int count = 0;
	while ((n = mev_ring_read(f->ring, cursor, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		for (char *at = buf; (at = strstr(at, "/store/")); at++)
			count++;
	}
	return count;
}

static void test_settings_listed_and_empty_path_does_nothing(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", NULL);
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(svc, &text, &len), 0);
	assert_non_null(strstr(text, "[persist]\npath = \nsync = batch\n"));
	free(text);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "k", "v");
	sleep_ms(120);
	assert_null(status_line(svc, "persist_last_commit"));
	svc_gone(svc);
	assert_int_equal(stray_files(f, NULL), 0);
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	/* Created at start, empty, 0600, ours. */
	assert_int_equal(db_rows(f->path), 0);
	assert_int_equal(db_int(f->path, "PRAGMA application_id"), 0x6d6c6670);
	assert_int_equal(db_int(f->path, "PRAGMA user_version"), 1);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	const char bin[] = {'a', '\0', 'b', '\n', '\0', (char)0xff, '\n'};
	put(svc, "bin", bin, sizeof(bin));
	puts_(svc, "empty", "");
	puts_(svc, "with space\nand newline", "v1");
	puts_(svc, "it's", "quoted");
	puts_(svc, "deleted", "x");
	puts_(svc, "from", "moved");
	char big[40000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	put(svc, "big", big, sizeof(big));
	assert_int_equal(msvc_store_delete(svc, "deleted"), 0);
	assert_int_equal(msvc_store_rename(svc, "from", "to"), 0);
	assert_int_equal(msvc_store_write(svc, "empty", 0, "+", 1, MALLAFS_OPF_APPEND), 1);
	assert_int_equal(msvc_store_truncate(svc, "empty", 0), 0);
	svc_gone(svc);
	/* A clean stop: no -wal or -shm left. */
	assert_int_equal(stray_files(f, "api.store"), 0);
	assert_int_equal(db_rows(f->path), 6);

	struct mallafs_svc *svc2 = svc_at(f, "api2", f->path);
	assert_int_equal(msvc_set_admin(svc2, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(status_of(svc2).state, MSVC_RUNNING);
	ssize_t n;
	const char *v = get(svc2, "bin", &n);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(v, bin, sizeof(bin));
	v = get(svc2, "empty", &n);
	assert_int_equal(n, 0);
	assert_string_equal(get(svc2, "with space\nand newline", NULL), "v1");
	assert_string_equal(get(svc2, "it's", NULL), "quoted");
	assert_string_equal(get(svc2, "to", NULL), "moved");
	assert_null(get(svc2, "from", NULL));
	assert_null(get(svc2, "deleted", NULL));
	v = get(svc2, "big", &n);
	assert_int_equal(n, sizeof(big));
	assert_memory_equal(v, big, sizeof(big));
	assert_int_equal(count_keys(svc2), 6);
	svc_gone(svc2);
}

static void test_batch_rows_and_status(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(status_line(svc, "persist_last_commit"), "-");
	assert_string_equal(status_line(svc, "persist_error"), "-");
	puts_(svc, "k", "hello");
	/* Not before write() returned: within 50 ms, in the background. */
	assert_true(db_has(f->path, "k", "hello", 2000));
	for (int i = 0; i < 100 && strcmp(status_line(svc, "persist_last_commit"), "-") == 0; i++)
		sleep_ms(10);
	const char *when = status_line(svc, "persist_last_commit");
	assert_int_equal(strlen(when), 20);
	assert_int_equal(when[10], 'T');
	assert_int_equal(when[19], 'Z');
	/* A burst of changes to one key: the last value, one row. */
	char val[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(val, sizeof(val), "v%d", i);
		puts_(svc, "burst", val);
	}
	assert_true(db_has(f->path, "burst", "v999", 2000));
	assert_int_equal(db_rows(f->path), 2);
	assert_int_equal(msvc_store_rename(svc, "burst", "k"), 0);
	assert_true(db_has(f->path, "k", "v999", 2000));
	assert_true(db_has(f->path, "burst", NULL, 0));
	assert_int_equal(msvc_store_delete(svc, "k"), 0);
	assert_true(db_has(f->path, "k", NULL, 2000));
	assert_int_equal(db_rows(f->path), 0);
	svc_gone(svc);
}

static void test_always_rows(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	set(svc, "sync", "always");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "k", "now");
	assert_true(db_has(f->path, "k", "now", 0));
	assert_int_equal(msvc_store_write(svc, "k", 0, "+", 1, MALLAFS_OPF_APPEND), 1);
	assert_true(db_has(f->path, "k", "now+", 0));
	assert_int_equal(msvc_store_truncate(svc, "k", 2), 0);
	assert_true(db_has(f->path, "k", "no", 0));
	assert_int_equal(msvc_store_create(svc, "e"), 0);
	assert_true(db_has(f->path, "e", "", 0));
	assert_int_equal(msvc_store_rename(svc, "k", "e"), 0);
	assert_true(db_has(f->path, "e", "no", 0));
	assert_true(db_has(f->path, "k", NULL, 0));
	assert_int_equal(msvc_store_delete(svc, "e"), 0);
	assert_int_equal(db_rows(f->path), 0);
	assert_string_equal(status_line(svc, "persist_error"), "-");
	assert_string_not_equal(status_line(svc, "persist_last_commit"), "-");
	svc_gone(svc);
}

static void test_always_refuses_when_full(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	set(svc, "sync", "always");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "k", "kept");
	long pages = (long)db_int(f->path, "PRAGMA page_count");
	__atomic_store_n(&persist_test_max_pages, pages, __ATOMIC_RELAXED);
	static char big[100000];
	memset(big, 'x', sizeof(big));
	struct timespec before = {0};
	struct mkv_stat kst;
	assert_int_equal(msvc_store_stat(svc, "k", &kst), 0);
	before = kst.mtime;
	uint64_t cursor = mev_ring_next_seq(f->ring);
	/* A write that needs more pages: ENOSPC, and nothing changed. */
	assert_int_equal(msvc_store_write(svc, "k", 0, big, sizeof(big), MALLAFS_OPF_REPLACE),
	                 -ENOSPC);
	assert_string_equal(get(svc, "k", NULL), "kept");
	assert_int_equal(msvc_store_stat(svc, "k", &kst), 0);
	assert_int_equal(kst.mtime.tv_sec, before.tv_sec);
	assert_int_equal(kst.mtime.tv_nsec, before.tv_nsec);
	/* A new key: absent again. */
	assert_int_equal(msvc_store_write(svc, "new", 0, big, sizeof(big), 0), -ENOSPC);
	assert_null(get(svc, "new", NULL));
	assert_int_equal(msvc_store_write(svc, "k", 0, big, sizeof(big), MALLAFS_OPF_APPEND),
	                 -ENOSPC);
	assert_string_equal(get(svc, "k", NULL), "kept");
	/* No event of the undone changes. */
	assert_int_equal(store_events(f, &cursor), 0);
	struct msvc_status st = status_of(svc);
	assert_non_null(strstr(st.last_error, "persist refused put k: cannot commit to "));
	assert_non_null(strstr(st.last_error, "full"));
	assert_non_null(strstr(status_line(svc, "persist_error"), "full"));
	assert_true(db_has(f->path, "k", "kept", 0));
	assert_true(db_has(f->path, "new", NULL, 0));
	assert_int_equal(st.state, MSVC_RUNNING);
	/* Space again: the same write goes through, with its events. */
	__atomic_store_n(&persist_test_max_pages, 0, __ATOMIC_RELAXED);
	assert_int_equal(msvc_store_write(svc, "new", 0, big, sizeof(big), 0), sizeof(big));
	assert_int_equal(store_events(f, &cursor), 2); /* create, write */
	size_t len;
	char *v = db_get(f->path, "new", &len);
	assert_int_equal(len, sizeof(big));
	free(v);
	assert_string_equal(status_line(svc, "persist_error"), "-");
	svc_gone(svc);
}

static void test_batch_failure_kept_and_retried(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "small", "1");
	assert_true(db_has(f->path, "small", "1", 2000));
	long pages = (long)db_int(f->path, "PRAGMA page_count");
	__atomic_store_n(&persist_test_max_pages, pages, __ATOMIC_RELAXED);
	static char big[100000];
	memset(big, 'y', sizeof(big) - 1);
	puts_(svc, "big", big);
	puts_(svc, "small", "2");
	/* The write succeeded in memory; the commit fails and says so. */
	for (int i = 0; i < 200 && strcmp(status_line(svc, "persist_error"), "-") == 0; i++)
		sleep_ms(10);
	const char *e = status_line(svc, "persist_error");
	assert_non_null(strstr(e, "full"));
	assert_non_null(strstr(e, "(will retry)"));
	assert_string_equal(get(svc, "small", NULL), "2");
	assert_true(db_has(f->path, "small", "1", 0));
	/* Space again: caught up by the retry, with no new change. */
	__atomic_store_n(&persist_test_max_pages, 0, __ATOMIC_RELAXED);
	assert_true(db_has(f->path, "small", "2", 5000));
	assert_true(db_has(f->path, "big", big, 0));
	for (int i = 0; i < 100 && strcmp(status_line(svc, "persist_error"), "-") != 0; i++)
		sleep_ms(10);
	assert_string_equal(status_line(svc, "persist_error"), "-");
	svc_gone(svc);
}

/* Starts a service on the (bad) database: it must fail, say why, and leave
 * the store and the file as they were. */
static void expect_bad_as(struct fixture *f, const char *problem, bool untouched)
{
	size_t len, flen;
	char *data = slurp(f->path, &len);
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	puts_(svc, "mine", "precious");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	if (!strstr(st.last_error, problem) || !strstr(st.last_error, f->path))
		fail_msg("last_error '%s' does not name '%s'", st.last_error, problem);
	assert_non_null(strstr(st.last_error, "persist: cannot start: "));
	assert_string_equal(get(svc, "mine", NULL), "precious");
	assert_int_equal(count_keys(svc), 1);
	puts_(svc, "after", "ok");
	svc_gone(svc);
	char *now = slurp(f->path, &flen);
	if (untouched) {
		assert_int_equal(flen, len);
		assert_memory_equal(now, data, len);
	}
	free(now);
	free(data);
	unlink(f->path);
}

/* A database refused before anything is written to it. */
static void expect_bad(struct fixture *f, const char *problem)
{
	expect_bad_as(f, problem, true);
}

static void test_bad_databases(void **state)
{
	struct fixture *f = *state;
	spit(f->path, "this is not a database at all, not even close: some text\n", 58);
	expect_bad(f, "not an SQLite database");

	const char *kv[] = {"alpha", "one"};
	db_make(f->path, kv, 1);
	db_exec(f->path, "PRAGMA application_id = 42");
	expect_bad(f, "not a persist database");

	db_make(f->path, kv, 1);
	db_exec(f->path, "PRAGMA user_version = 2");
	expect_bad(f, "newer");

	const char *bad_key[] = {"a/b", "v"};
	db_make(f->path, bad_key, 1);
	/* Sound and ours: opened (in WAL mode), but nothing loaded. */
	expect_bad_as(f, "row 1: invalid key name", false);

	/* A corrupt page. */
	db_make(f->path, kv, 1);
	for (int i = 0; i < 300; i++) {
		char sql[96];
		snprintf(sql, sizeof(sql), "INSERT INTO store VALUES('k%d', zeroblob(100), 1)", i);
		db_exec(f->path, sql);
	}
	int fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	char junk[512];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 4096 + 16), sizeof(junk));
	close(fd);
	expect_bad(f, "quick_check");

	/* Read-only. */
	db_make(f->path, kv, 1);
	assert_int_equal(chmod(f->path, 0444), 0);
	expect_bad(f, "read-only");
}

static void test_old_format_converted(void **state)
{
	struct fixture *f = *state;
	const char *kv[] = {"alpha", "one", "beta", "two"};
	write_store_file(f->path, kv, 2);
	size_t len;
	char *old = slurp(f->path, &len);
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(get(svc, "alpha", NULL), "one");
	assert_string_equal(get(svc, "beta", NULL), "two");
	char v1[256];
	snprintf(v1, sizeof(v1), "%s.v1", f->path);
	size_t vlen;
	char *kept = slurp(v1, &vlen);
	assert_int_equal(vlen, len);
	assert_memory_equal(kept, old, len);
	free(kept);
	free(old);
	assert_true(db_has(f->path, "alpha", "one", 0));
	puts_(svc, "gamma", "three");
	svc_gone(svc);
	assert_true(db_has(f->path, "gamma", "three", 0));
	/* (-wal and -shm: this process read the database while it ran.) */
	assert_int_equal(stray_files(f, "api.store api.store.v1 api.store-wal api.store-shm"), 0);

	/* A bad old file fails the start as it always did. */
	unlink(f->path);
	write_store_file(f->path, kv, 2);
	old = slurp(f->path, &len);
	old[len - 3] = old[len - 3] == '0' ? '1' : '0';
	spit(f->path, old, len);
	free(old);
	expect_bad(f, "checksum mismatch");
	assert_int_equal(stray_files(f, "api.store.v1 api.store-wal api.store-shm"), 0);
}

static void test_bad_settings(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(svc, "persist", "path", "relative", 8, &why), -EINVAL);
	assert_string_equal(why.text, "persist: path must be absolute, not 'relative'");
	assert_int_equal(msvc_config_set(svc, "persist", "path", "/tmp/", 5, &why), -EINVAL);
	assert_string_equal(why.text, "persist: path must name a file, not a directory: '/tmp/'");
	char longp[300];
	memset(longp, 'n', sizeof(longp));
	longp[0] = '/';
	longp[241] = '\0';
	assert_int_equal(msvc_config_set(svc, "persist", "path", longp, 241, &why), -EINVAL);
	assert_string_equal(why.text,
	                    "persist: the file name is too long (240 bytes, at most 230)");
	assert_int_equal(msvc_config_set(svc, "persist", "sync", "often", 5, &why), -EINVAL);
	assert_string_equal(why.text, "persist: sync must be batch or always, not 'often'");
	assert_non_null(strstr(status_of(svc).last_error, "sync must be batch or always"));
	assert_int_equal(status_of(svc).restarts, 0);
	/* A change of mode restarts the service. */
	set(svc, "sync", "always");
	assert_int_equal(status_of(svc).restarts, 1);
	assert_non_null(strstr(status_of(svc).last_restart, "sync changed from batch to always"));
	puts_(svc, "k", "v");
	assert_true(db_has(f->path, "k", "v", 0));
	svc_gone(svc);
}

static void test_path_change_restarts(void **state)
{
	struct fixture *f = *state;
	char other[256];
	snprintf(other, sizeof(other), "%s/other.store", f->dir);
	const char *kv[] = {"from-other", "yes", "shared", "other's"};
	db_make(other, kv, 2);

	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "shared", "mine");
	puts_(svc, "only-mine", "1");
	set(svc, "path", other);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.restarts, 1);
	assert_non_null(strstr(st.last_restart, "persist: path changed from '"));
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_string_equal(get(svc, "from-other", NULL), "yes");
	assert_string_equal(get(svc, "shared", NULL), "other's");
	assert_string_equal(get(svc, "only-mine", NULL), "1");
	/* The old database got the last state before the switch. */
	assert_true(db_has(f->path, "shared", "mine", 0));
	assert_true(db_has(f->path, "only-mine", "1", 0));
	/* The new one gets the keys it lacked soon. */
	assert_true(db_has(other, "only-mine", "1", 2000));

	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_unset(svc, "persist", "path", &why), 0);
	assert_int_equal(status_of(svc).restarts, 2);
	puts_(svc, "after-unset", "x");
	sleep_ms(150);
	svc_gone(svc);
	assert_true(db_has(other, "after-unset", NULL, 0));
	assert_int_equal(stray_files(f, "api.store other.store api.store-wal api.store-shm "
	                                "other.store-wal other.store-shm"),
	                 0);
}

static void test_inactive_changes_kept(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "k", "before");
	puts_(svc, "gone", "x");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_INACTIVE), 0);
	/* While persist is stopped the store still changes... */
	puts_(svc, "k", "while-stopped");
	assert_int_equal(msvc_store_delete(svc, "gone"), 0);
	/* ...and reactivating does not roll that back from its own database. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(get(svc, "k", NULL), "while-stopped");
	assert_null(get(svc, "gone", NULL));
	/* The database catches up. */
	assert_true(db_has(f->path, "k", "while-stopped", 2000));
	assert_true(db_has(f->path, "gone", NULL, 2000));

	/* But a database changed behind its back is loaded. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_INACTIVE), 0);
	db_exec(f->path, "UPDATE store SET value = CAST('edited' AS BLOB) WHERE key = 'k'");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(get(svc, "k", NULL), "edited");
	svc_gone(svc);
}

struct burst {
	struct mallafs_svc *svc;
	volatile int done;
};

static void *burst_writer(void *arg)
{
	struct burst *b = arg;
	char key[32], val[64];
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "k%d", i % 1000);
		int n = snprintf(val, sizeof(val), "value %d", i);
		put(b->svc, key, val, (size_t)n);
		if (i % 7 == 0) {
			snprintf(key, sizeof(key), "k%d", (i + 500) % 1000);
			msvc_store_delete(b->svc, key);
		}
	}
	__atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Readers beside the writer: gets run side by side under the store's read
 * lock, and persist's callbacks for them must touch nothing shared
 * (ThreadSanitizer watches). */
static void *burst_reader(void *arg)
{
	struct burst *b = arg;
	char key[32], buf[64];
	for (int i = 0; !__atomic_load_n(&b->done, __ATOMIC_SEQ_CST); i++) {
		snprintf(key, sizeof(key), "k%d", i % 1000);
		msvc_store_read(b->svc, key, 0, buf, sizeof(buf));
	}
	return NULL;
}

static void burst(struct fixture *f, const char *mode)
{
	struct burst b = {.svc = svc_at(f, "api", f->path)};
	set(b.svc, "sync", mode);
	assert_int_equal(msvc_set_admin(b.svc, MSVC_ADMIN_ACTIVE), 0);
	pthread_t th, readers[2];
	assert_int_equal(pthread_create(&th, NULL, burst_writer, &b), 0);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, burst_reader, &b), 0);
	/* Whenever we look, the database is sound. */
	while (!__atomic_load_n(&b.done, __ATOMIC_SEQ_CST))
		assert_true(db_rows(f->path) >= 0);
	pthread_join(th, NULL);
	for (size_t i = 0; i < 2; i++)
		pthread_join(readers[i], NULL);
	int nkeys = count_keys(b.svc);
	char *want[1000] = {0};
	for (int i = 0; i < 1000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i);
		const char *v = get(b.svc, key, NULL);
		want[i] = v ? strdup(v) : NULL;
	}
	svc_gone(b.svc);
	assert_int_equal(db_rows(f->path), nkeys);
	for (int i = 0; i < 1000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i);
		assert_true(db_has(f->path, key, want[i], 0));
		free(want[i]);
	}
	unlink(f->path);
}

static void test_burst_consistent(void **state)
{
	burst(*state, "batch");
	burst(*state, "always");
}

static void test_created_with_current_store(void **state)
{
	struct fixture *f = *state;
	/* Keys already in the store when persist starts go into the new
	 * database. */
	struct mallafs_svc *svc = new_svc(f, "api");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "early", "bird");
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(svc, "persist", "path", f->path, strlen(f->path), &why),
	                 0);
	assert_int_equal(msvc_add_plugin(svc, "persist", &why), 0);
	assert_true(db_has(f->path, "early", "bird", 2000));
	/* Removing the plugin commits what batch holds and leaves the file. */
	puts_(svc, "late", "x");
	assert_int_equal(msvc_del_plugin(svc, "persist", &why), 0);
	assert_true(db_has(f->path, "late", "x", 0));
	svc_gone(svc);
	assert_int_equal(stray_files(f, "api.store api.store-wal api.store-shm"), 0);
}

static void test_bulk_load(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = new_svc(f, "api");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	enum { N = 20000 };
	struct mallafs_store_rec *recs = calloc(N, sizeof(*recs));
	char(*keys)[16] = calloc(N, 16);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], 16, "key%d", i);
		recs[i] = (struct mallafs_store_rec){.key = keys[i],
		                                     .value = keys[i],
		                                     .len = strlen(keys[i]),
		                                     .mtime = {.tv_sec = 1000 + i}};
	}
	uint64_t seq = mev_ring_next_seq(f->ring);
	assert_int_equal(mallafs_store_load_many(svc, recs, N), 0);
	assert_int_equal(count_keys(svc), N);
	assert_int_equal(mev_ring_next_seq(f->ring) - seq, 2 * N); /* create, write */
	assert_string_equal(get(svc, "key777", NULL), "key777");
	struct mkv_stat st;
	assert_int_equal(msvc_store_stat(svc, "key777", &st), 0);
	assert_int_equal(st.mtime.tv_sec, 1777);
	/* One bad key: nothing loaded. */
	recs[5].key = "bad/key";
	recs[0].value = "changed";
	recs[0].len = 7;
	assert_int_equal(mallafs_store_load_many(svc, recs, N), -EINVAL);
	assert_string_equal(get(svc, "key0", NULL), "key0");
	free(keys);
	free(recs);
	svc_gone(svc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_settings_listed_and_empty_path_does_nothing,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_batch_rows_and_status, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_always_rows, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_always_refuses_when_full, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_batch_failure_kept_and_retried, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_bad_databases, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_old_format_converted, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_settings, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_path_change_restarts, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_inactive_changes_kept, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_burst_consistent, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_created_with_current_store, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bulk_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
