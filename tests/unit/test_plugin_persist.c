/* The persist plugin: the store saved to a file atomically after changes and
 * at stop, loaded at start; a bad file fails the start and loads nothing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>

#include "persist_fixture.h"

static void test_setting_listed_and_empty_path_does_nothing(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", NULL);
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(svc, &text, &len), 0);
	assert_non_null(strstr(text, "[persist]\npath = \n"));
	free(text);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "k", "v");
	sleep_ms(120);
	svc_gone(svc);
	assert_int_equal(stray_files(f, NULL), 0);
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	/* Created at start, empty. */
	size_t len;
	char *d = slurp(f->path, &len);
	assert_non_null(d);
	char want[64];
	snprintf(want, sizeof(want), "mallafs-store 1\nend 0 %016llx\n",
	         (unsigned long long)fnv("mallafs-store 1\n", 16));
	assert_int_equal(len, strlen(want));
	assert_memory_equal(d, want, len);
	free(d);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	const char bin[] = {'a', '\0', 'b', '\n', '\0', (char)0xff, '\n'};
	put(svc, "bin", bin, sizeof(bin));
	puts_(svc, "empty", "");
	puts_(svc, "with space\nand newline", "v1");
	puts_(svc, "end 1 0000000000000000", "tricky key");
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
	assert_int_equal(stray_files(f, "api.store"), 0);

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
	assert_string_equal(get(svc2, "end 1 0000000000000000", NULL), "tricky key");
	assert_string_equal(get(svc2, "to", NULL), "moved");
	assert_null(get(svc2, "from", NULL));
	assert_null(get(svc2, "deleted", NULL));
	v = get(svc2, "big", &n);
	assert_int_equal(n, sizeof(big));
	assert_memory_equal(v, big, sizeof(big));
	assert_int_equal(count_keys(svc2), 6);
	svc_gone(svc2);
}

static void test_saved_after_changes(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "k", "hello");
	/* Written by the thread soon after, while the service runs. */
	assert_true(file_has(f->path, "1 5\nkhello\n", 11, 2000));
	assert_int_equal(msvc_store_delete(svc, "k"), 0);
	assert_true(file_has(f->path, "end 0 ", 6, 2000));
	assert_int_equal(stray_files(f, "api.store"), 0);
	svc_gone(svc);
}

/* A file the plugin wrote, for corruption tests. */
static char *good_file(struct fixture *f, size_t *ret_len)
{
	const char *kv[] = {"alpha", "one", "beta", "two"};
	write_store_file(f->path, kv, 2);
	return slurp(f->path, ret_len);
}

/* Starts a service on the (bad) file: it must fail, say why, and leave the
 * store and the file as they were. */
static void expect_bad(struct fixture *f, const void *data, size_t len, const char *problem)
{
	spit(f->path, data, len);
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	/* Written before the start, in a stopped service: must survive. */
	puts_(svc, "mine", "precious");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	if (!strstr(st.last_error, problem) || !strstr(st.last_error, f->path))
		fail_msg("last_error '%s' does not name '%s'", st.last_error, problem);
	assert_non_null(strstr(st.last_error, "persist: cannot start: cannot load "));
	assert_string_equal(get(svc, "mine", NULL), "precious");
	assert_null(get(svc, "alpha", NULL));
	assert_int_equal(count_keys(svc), 1);
	/* The file is left for the user to look at. */
	size_t flen;
	char *now = slurp(f->path, &flen);
	assert_int_equal(flen, len);
	assert_memory_equal(now, data, len);
	free(now);
	/* The store is still usable. */
	puts_(svc, "after", "ok");
	svc_gone(svc);
	/* Still not overwritten after the service is gone. */
	now = slurp(f->path, &flen);
	assert_int_equal(flen, len);
	assert_memory_equal(now, data, len);
	free(now);
}

static void test_corrupt_files(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *good = good_file(f, &len);
	char *bad = malloc(len + 64);

	/* A flipped byte in a value: only the checksum can tell. */
	memcpy(bad, good, len);
	char *one = memmem(bad, len, "one", 3);
	one[1] = 'N';
	expect_bad(f, bad, len, "checksum mismatch at byte");

	memcpy(bad, good, len);
	bad[0] = 'X';
	expect_bad(f, bad, len, "not a mallafs store file");

	memcpy(bad, good, len);
	bad[14] = '2';
	expect_bad(f, bad, len, "unsupported format version 2");

	/* Truncated anywhere. */
	for (size_t cut = 0; cut < len; cut += 3) {
		memcpy(bad, good, len);
		expect_bad(f, bad, cut, cut < 14 ? "not a mallafs store" : "");
	}
	memcpy(bad, good, len);
	expect_bad(f, bad, len - 10, "bad end line");
	expect_bad(f, bad, 25, "truncated at byte 20: record 1 needs 9 bytes, 5 left");

	/* A value length past the end. */
	const char past[] = "mallafs-store 1\n5 900\nalphaone\nend 1 0000000000000000\n";
	expect_bad(f, past, sizeof(past) - 1,
	           "truncated at byte 22: record 1 needs 906 bytes, 32 left");
	memcpy(bad, good, len);
	char *hdr = memmem(bad, len, "5 3\n", 4);
	hdr[2] = '9';
	expect_bad(f, bad, len, "no newline after record 1 at byte 34");

	/* A length off by one shifts everything: no newline where one must be. */
	memcpy(bad, good, len);
	hdr = memmem(bad, len, "5 3\n", 4);
	hdr[2] = '2';
	expect_bad(f, bad, len, "no newline after record 1");

	memcpy(bad, good, len);
	hdr = memmem(bad, len, "5 3\n", 4);
	hdr[0] = 'x';
	expect_bad(f, bad, len, "bad record header at byte 16 (record 1)");

	memcpy(bad, good, len);
	hdr = memmem(bad, len, "5 3\n", 4);
	hdr[0] = '0';
	expect_bad(f, bad, len, "bad key length 0 at byte 16 (record 1)");
	memcpy(bad, good, len);
	hdr = memmem(bad, len, "5 3\n", 4);
	hdr[2] = '0';
	hdr[3] = '3';
	expect_bad(f, bad, len, "bad record header at byte 16");

	/* Bad key names: '/', NUL, "..", a zero length. */
	const char *kv_slash[] = {"a/b", "v"};
	write_store_file(f->path, kv_slash, 1);
	char *d = slurp(f->path, &len);
	expect_bad(f, d, len, "invalid key name at byte 20 (record 1)");
	free(d);
	const char *kv_dots[] = {"..", "v"};
	write_store_file(f->path, kv_dots, 1);
	d = slurp(f->path, &len);
	expect_bad(f, d, len, "invalid key name");
	free(d);
	const char zero[] = "mallafs-store 1\n0 1\nv\nend 1 0000000000000000\n";
	expect_bad(f, zero, sizeof(zero) - 1, "bad key length 0 at byte 16");
	char nul[] = "mallafs-store 1\n3 1\na_bv\nend 1 0000000000000000\n";
	nul[21] = '\0';
	expect_bad(f, nul, sizeof(nul) - 1, "invalid key name");

	/* The end line: count, trailing data, checksum text. */
	free(good);
	good = good_file(f, &len);
	memcpy(bad, good, len);
	char *end = memmem(bad, len, "end 2 ", 6);
	end[4] = '3';
	expect_bad(f, bad, len, "the end line counts 3 records, the file holds 2");
	memcpy(bad, good, len);
	memcpy(bad + len, "junk", 4);
	expect_bad(f, bad, len + 4, "data after the end line");
	memcpy(bad, good, len);
	bad[len - 2] = 'g';
	expect_bad(f, bad, len, "bad checksum text");
	memcpy(bad, good, len);
	end = memmem(bad, len, "end 2 ", 6);
	end[0] = 'E';
	expect_bad(f, bad, len, "bad record header");
	expect_bad(f, "", 0, "not a mallafs store file (bad magic at byte 0)");

	free(bad);
	free(good);
}

static void test_unreadable_path(void **state)
{
	struct fixture *f = *state;
	/* chmod 000 means nothing to root: a directory is unreadable as a file
	 * for everyone. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	puts_(svc, "mine", "v");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	char want[256];
	snprintf(want, sizeof(want), "persist: cannot start: cannot load %s: it is a directory",
	         f->path);
	assert_non_null(strstr(st.last_error, want));
	assert_string_equal(get(svc, "mine", NULL), "v");

	/* Fixed by the user, then reactivated: runs. */
	assert_int_equal(rmdir(f->path), 0);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(status_of(svc).state, MSVC_RUNNING);
	svc_gone(svc);
	size_t len;
	char *d = slurp(f->path, &len);
	assert_non_null(memmem(d, len, "4 1\nminev\n", 10));
	free(d);

	/* A directory that does not exist: the file cannot be created. */
	char missing[256];
	snprintf(missing, sizeof(missing), "%s/nodir/x.store", f->dir);
	svc = svc_at(f, "api", missing);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_non_null(strstr(st.last_error, "does not exist and cannot be created"));
	assert_non_null(strstr(st.last_error, "No such file or directory"));
	svc_gone(svc);
}

static void test_bad_paths(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	struct mallafs_reason why = {{0}};
	const char *bad[] = {"relative.store", "./x", "~/x", "x/", " /x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		        msvc_config_set(svc, "persist", "path", bad[i], strlen(bad[i]), &why),
		        -EINVAL);
		assert_non_null(strstr(why.text, "persist: path must be absolute"));
		assert_non_null(strstr(status_of(svc).last_error, "path must be absolute"));
	}
	assert_int_equal(msvc_config_set(svc, "persist", "path", "relative", 8, &why), -EINVAL);
	assert_string_equal(why.text, "persist: path must be absolute, not 'relative'");
	assert_int_equal(msvc_config_set(svc, "persist", "path", "/tmp/", 5, &why), -EINVAL);
	assert_string_equal(why.text, "persist: path must name a file, not a directory: '/tmp/'");
	char *longp = malloc(5000);
	memset(longp, 'a', 4999);
	longp[0] = '/';
	longp[4999] = '\0';
	assert_int_equal(msvc_config_set(svc, "persist", "path", longp, 4999, &why), -EINVAL);
	assert_non_null(strstr(why.text, "path is too long"));
	/* A name that leaves no room for the temporary file's. */
	memset(longp + 1, 'n', 240);
	longp[241] = '\0';
	assert_int_equal(msvc_config_set(svc, "persist", "path", longp, 241, &why), -EINVAL);
	assert_string_equal(why.text,
	                    "persist: the file name is too long (240 bytes, at most 234)");
	free(longp);
	/* Nothing changed: same path, no restart. */
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(svc, &text, &len), 0);
	char want[256];
	snprintf(want, sizeof(want), "[persist]\npath = %s\n", f->path);
	assert_non_null(strstr(text, want));
	free(text);
	assert_int_equal(status_of(svc).restarts, 0);
	assert_int_equal(status_of(svc).state, MSVC_RUNNING);
	svc_gone(svc);
}

static void test_path_change_restarts(void **state)
{
	struct fixture *f = *state;
	char other[256];
	snprintf(other, sizeof(other), "%s/other.store", f->dir);
	const char *kv[] = {"from-other", "yes", "shared", "other's"};
	write_store_file(other, kv, 2);

	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "shared", "mine");
	puts_(svc, "only-mine", "1");
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(svc, "persist", "path", other, strlen(other), &why), 0);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.restarts, 1);
	assert_non_null(strstr(st.last_restart, "persist: path changed from '"));
	assert_int_equal(st.state, MSVC_RUNNING);
	/* The new file was loaded, replacing the keys it names. */
	assert_string_equal(get(svc, "from-other", NULL), "yes");
	assert_string_equal(get(svc, "shared", NULL), "other's");
	assert_string_equal(get(svc, "only-mine", NULL), "1");
	/* The old file got the last state before the switch. */
	size_t len;
	char *d = slurp(f->path, &len);
	assert_non_null(memmem(d, len, "6 4\nsharedmine\n", 15));
	assert_non_null(memmem(d, len, "9 1\nonly-mine1\n", 15));
	free(d);
	/* The new one gets the union soon (the store had keys it lacked). */
	assert_true(file_has(other, "9 1\nonly-mine1\n", 15, 2000));

	/* Unset: no longer persisting, a restart too. */
	assert_int_equal(msvc_config_unset(svc, "persist", "path", &why), 0);
	st = status_of(svc);
	assert_int_equal(st.restarts, 2);
	assert_non_null(strstr(st.last_restart, "persist: path unset"));
	puts_(svc, "after-unset", "x");
	sleep_ms(150);
	svc_gone(svc);
	d = slurp(other, &len);
	assert_null(memmem(d, len, "after-unset", 11));
	free(d);

	/* Another plugin's setting never restarts persist. */
	svc = svc_at(f, "api3", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(msvc_config_set(svc, "other", "k", "v", 1, &why), 0);
	assert_int_equal(status_of(svc).restarts, 0);
	svc_gone(svc);
	assert_int_equal(stray_files(f, "api.store other.store"), 0);
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
	/* ...and reactivating does not roll that back from its own file. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(get(svc, "k", NULL), "while-stopped");
	assert_null(get(svc, "gone", NULL));
	/* The file catches up. */
	assert_true(file_has(f->path, "1 13\nkwhile-stopped\n", 20, 2000));

	/* But a file changed behind its back is loaded. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_INACTIVE), 0);
	const char *kv[] = {"k", "edited"};
	write_store_file(f->path, kv, 1);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(get(svc, "k", NULL), "edited");
	svc_gone(svc);
}

/* Starts a throwaway service on a copy of path: 0 when it loads. */
static int loads_ok(struct fixture *f, const char *data, size_t len, int *ret_keys)
{
	char copy[256];
	snprintf(copy, sizeof(copy), "%s/copy.store", f->dir);
	spit(copy, data, len);
	struct mallafs_svc *svc = svc_at(f, "check", copy);
	int r = msvc_set_admin(svc, MSVC_ADMIN_ACTIVE);
	if (r < 0)
		fprintf(stderr, "copy does not load: %s\n", status_of(svc).last_error);
	if (ret_keys)
		*ret_keys = count_keys(svc);
	svc_gone(svc);
	unlink(copy);
	return r;
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

static void test_burst_consistent(void **state)
{
	struct fixture *f = *state;
	struct burst b = {.svc = svc_at(f, "api", f->path)};
	assert_int_equal(msvc_set_admin(b.svc, MSVC_ADMIN_ACTIVE), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, burst_writer, &b), 0);
	/* Whenever we look, the file is a whole, valid store: old or new. */
	int checks = 0;
	while (!__atomic_load_n(&b.done, __ATOMIC_SEQ_CST) || checks < 3) {
		size_t len;
		char *d = slurp(f->path, &len);
		assert_non_null(d);
		assert_int_equal(loads_ok(f, d, len, NULL), 0);
		free(d);
		checks++;
	}
	pthread_join(th, NULL);

	/* The final file holds exactly the final store. */
	int nkeys = count_keys(b.svc);
	char *want[1000] = {0};
	for (int i = 0; i < 1000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i);
		const char *v = get(b.svc, key, NULL);
		want[i] = v ? strdup(v) : NULL;
	}
	svc_gone(b.svc);
	assert_int_equal(stray_files(f, "api.store"), 0);

	struct mallafs_svc *svc2 = svc_at(f, "api2", f->path);
	assert_int_equal(msvc_set_admin(svc2, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(count_keys(svc2), nkeys);
	for (int i = 0; i < 1000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i);
		const char *v = get(svc2, key, NULL);
		if (want[i])
			assert_string_equal(v, want[i]);
		else
			assert_null(v);
		free(want[i]);
	}
	svc_gone(svc2);
}

static void test_write_errors_retried(void **state)
{
	struct fixture *f = *state;
	char sub[256], path[300];
	snprintf(sub, sizeof(sub), "%s/sub", f->dir);
	snprintf(path, sizeof(path), "%s/x.store", sub);
	assert_int_equal(mkdir(sub, 0700), 0);
	struct mallafs_svc *svc = svc_at(f, "api", path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	/* The directory vanishes under it: writes fail, logged, no crash. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(sub), 0);
	puts_(svc, "a", "1");
	sleep_ms(150);
	puts_(svc, "b", "2");
	sleep_ms(150);
	assert_int_equal(status_of(svc).state, MSVC_RUNNING);
	/* Back: the next change saves everything. */
	assert_int_equal(mkdir(sub, 0700), 0);
	puts_(svc, "c", "3");
	assert_true(file_has(path, "1 1\nc3\n", 7, 2000));
	size_t len;
	char *d = slurp(path, &len);
	assert_non_null(memmem(d, len, "1 1\na1\n", 7));
	assert_non_null(memmem(d, len, "1 1\nb2\n", 7));
	free(d);

	/* A failure at the last change is retried at stop. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(sub), 0);
	puts_(svc, "d", "4");
	sleep_ms(150);
	assert_int_equal(mkdir(sub, 0700), 0);
	svc_gone(svc);
	d = slurp(path, &len);
	assert_non_null(d);
	assert_non_null(memmem(d, len, "1 1\nd4\n", 7));
	free(d);
}

static void test_mode_kept(void **state)
{
	struct fixture *f = *state;
	const char *kv[] = {"k", "v"};
	write_store_file(f->path, kv, 1);
	assert_int_equal(chmod(f->path, 0640), 0);
	struct mallafs_svc *svc = svc_at(f, "api", f->path);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "k2", "v2");
	svc_gone(svc);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_true(file_has(f->path, "2 2\nk2v2\n", 9, 0));
}

static void test_created_with_current_store(void **state)
{
	struct fixture *f = *state;
	/* Keys already in the store when persist starts go into the new file. */
	struct mallafs_svc *svc = new_svc(f, "api");
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	puts_(svc, "early", "bird");
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_config_set(svc, "persist", "path", f->path, strlen(f->path), &why),
	                 0);
	assert_int_equal(msvc_add_plugin(svc, "persist", &why), 0);
	assert_true(file_has(f->path, "5 4\nearlybird\n", 14, 0));
	/* Removing the plugin flushes and leaves the file. */
	puts_(svc, "late", "x");
	assert_int_equal(msvc_del_plugin(svc, "persist", &why), 0);
	assert_true(file_has(f->path, "4 1\nlatex\n", 10, 0));
	svc_gone(svc);
	assert_int_equal(stray_files(f, "api.store"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_setting_listed_and_empty_path_does_nothing,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_saved_after_changes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unreadable_path, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_path_change_restarts, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_inactive_changes_kept, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_burst_consistent, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_write_errors_retried, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_mode_kept, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_created_with_current_store, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
