/* SPDX-License-Identifier: MIT */
/* The limits plugin: max_keys and max_bytes (ENOSPC) and max_value_bytes (EFBIG), their
 * validation, live updates, and that every refusal leaves the store as it
 * was. Driven through the service layer, as the filesystem drives it. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "events.h"
#include "plugin.h"
#include "service.h"
#include "util.h"

struct fixture {
	struct mplugreg *reg;
	struct mev_ring *ring;
	struct mallafs_svc *svc;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->reg = mplugreg_new(mallafs_builtin_plugins, NULL);
	f->ring = mev_ring_new(4096);
	struct msvc_env env = {.plugins = f->reg, .events = f->ring};
	assert_int_equal(msvc_new(&env, "api", &f->svc), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	msvc_destroy(f->svc);
	msvc_unref(f->svc);
	mev_ring_free(f->ring);
	mplugreg_free(f->reg);
	free(f);
	return 0;
}

/* A running service with limits, and the configuration given as INI. */
static void start_with(struct fixture *f, const char *ini)
{
	struct mallafs_reason why = {{0}};
	struct mallafs_cfg *cfg = NULL;
	char err[256];
	int line;
	const char *names[] = {"limits"};
	if (ini)
		assert_int_equal(mcfg_parse_ini(ini, strlen(ini), &cfg, &line, err, sizeof(err)),
		                 0);
	assert_int_equal(msvc_setup(f->svc, names, 1, cfg, &why), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	mcfg_free(cfg);
}

static char *config_of(struct mallafs_svc *svc)
{
	static char buf[4096];
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(svc, &text, &len), 0);
	snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

static const char *last_error(struct mallafs_svc *svc)
{
	static struct msvc_status st;
	msvc_status(svc, &st);
	return st.last_error;
}

static int count_one(const char *key, const struct mkv_stat *st, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static size_t nkeys(struct mallafs_svc *svc)
{
	size_t n = 0;
	assert_true(msvc_store_list(svc, 0, count_one, &n) >= 0);
	return n;
}

/* The value of key as a string ("" when empty), or NULL when absent. */
static char *value_of(struct mallafs_svc *svc, const char *key)
{
	static char buf[8192];
	ssize_t n = msvc_store_read(svc, key, 0, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static int set(struct fixture *f, const char *key, const char *value, struct mallafs_reason *why)
{
	return msvc_config_set(f->svc, "limits", key, value, strlen(value), why);
}

static ssize_t put(struct fixture *f, const char *key, const char *value)
{
	return msvc_store_write(f->svc, key, 0, value, strlen(value), MALLAFS_OPF_REPLACE);
}

static void test_settings_and_defaults(void **state)
{
	struct fixture *f = *state;
	start_with(f, NULL);
	assert_string_equal(config_of(f->svc),
	                    "[limits]\nmax_bytes = 0\nmax_keys = 0\nmax_value_bytes = 0\n");

	/* 0 is no limit: many keys, a large value. */
	char big[4096];
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 200; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(msvc_store_write(f->svc, key, 0, big, sizeof(big), 0),
		                 sizeof(big));
	}
	assert_int_equal(nkeys(f->svc), 200);
	assert_string_equal(last_error(f->svc), "-");
}

static void test_max_value_bytes(void **state)
{
	struct fixture *f = *state;
	start_with(f, "[limits]\nmax_value_bytes = 8\n");

	assert_int_equal(put(f, "k", "12345678"), 8);
	assert_int_equal(put(f, "k", "123456789"), -EFBIG);
	assert_string_equal(value_of(f->svc, "k"), "12345678");
	assert_non_null(strstr(last_error(f->svc),
	                       "limits refused put k: value of 9 bytes is over max_value_bytes 8"));

	/* Appending past the limit, writing past it at an offset. */
	assert_int_equal(put(f, "a", "1234"), 4);
	assert_int_equal(msvc_store_write(f->svc, "a", 0, "5678", 4, MALLAFS_OPF_APPEND), 4);
	assert_int_equal(msvc_store_write(f->svc, "a", 0, "9", 1, MALLAFS_OPF_APPEND), -EFBIG);
	assert_non_null(strstr(last_error(f->svc), "value of 9 bytes is over max_value_bytes 8"));
	assert_int_equal(msvc_store_write(f->svc, "a", 5, "xyzw", 4, 0), -EFBIG);
	assert_string_equal(value_of(f->svc, "a"), "12345678");
	/* Inside the value, the size does not change: allowed. */
	assert_int_equal(msvc_store_write(f->svc, "a", 4, "ABCD", 4, 0), 4);
	assert_string_equal(value_of(f->svc, "a"), "1234ABCD");
	/* An append to an absent key counts from 0; an offset from 0 too. */
	assert_int_equal(msvc_store_write(f->svc, "b", 0, "123456789", 9, MALLAFS_OPF_APPEND),
	                 -EFBIG);
	assert_int_equal(msvc_store_write(f->svc, "c", 5, "1234", 4, 0), -EFBIG);
	assert_int_equal(msvc_store_write(f->svc, "c", 4, "1234", 4, 0), 4);
	assert_null(value_of(f->svc, "b"));
	/* An offset so large the end does not fit in 64 bits, or past what
	 * any value may hold: the store refuses it before any plugin. */
	assert_int_equal(msvc_store_write(f->svc, "c", UINT64_MAX - 1, "1234", 4, 0), -EFBIG);
	assert_non_null(
	        strstr(last_error(f->svc), "store refused put c: a value may hold at most"));
	assert_int_equal(msvc_store_write(f->svc, "c", MKV_MAX_VALUE, "1", 1, 0), -EFBIG);
	assert_int_equal(msvc_store_truncate(f->svc, "c", MKV_MAX_VALUE + 1), -EFBIG);
	struct mkv_stat st;
	assert_int_equal(msvc_store_stat(f->svc, "c", &st), 0);
	assert_int_equal(st.size, 8);

	/* Truncating: growing past the limit is refused, anything else not. */
	assert_int_equal(msvc_store_truncate(f->svc, "k", 9), -EFBIG);
	assert_string_equal(value_of(f->svc, "k"), "12345678");
	assert_int_equal(msvc_store_truncate(f->svc, "k", 3), 0);
	assert_int_equal(msvc_store_truncate(f->svc, "k", 8), 0);
	assert_int_equal(msvc_store_stat(f->svc, "k", &st), 0);
	assert_int_equal(st.size, 8);
	/* A truncate of an absent key is the store's ENOENT, not EFBIG. */
	assert_int_equal(msvc_store_truncate(f->svc, "nope", 100), -ENOENT);

	/* An empty value and renames are never refused. */
	assert_int_equal(msvc_store_create(f->svc, "e"), 0);
	assert_int_equal(msvc_store_rename(f->svc, "k", "k2"), 0);
	assert_int_equal(nkeys(f->svc), 4);
}

static void test_max_keys(void **state)
{
	struct fixture *f = *state;
	start_with(f, "[limits]\nmax_keys = 2\n");

	assert_int_equal(msvc_store_create(f->svc, "a"), 0);
	assert_int_equal(put(f, "b", "bee"), 3);
	assert_int_equal(nkeys(f->svc), 2);

	assert_int_equal(put(f, "c", "sea"), -ENOSPC);
	assert_non_null(strstr(last_error(f->svc),
	                       "limits refused put c: store holds 2 keys, max_keys is 2"));
	assert_int_equal(msvc_store_create(f->svc, "c"), -ENOSPC);
	assert_non_null(strstr(last_error(f->svc),
	                       "limits refused create c: store holds 2 keys, max_keys is 2"));
	assert_int_equal(msvc_store_write(f->svc, "c", 0, "x", 1, MALLAFS_OPF_APPEND), -ENOSPC);
	assert_int_equal(nkeys(f->svc), 2);
	assert_null(value_of(f->svc, "c"));

	/* Existing keys stay writable; creating one that exists is EEXIST. */
	assert_int_equal(put(f, "b", "bumble"), 6);
	assert_int_equal(msvc_store_write(f->svc, "a", 0, "!", 1, MALLAFS_OPF_APPEND), 1);
	assert_int_equal(msvc_store_create(f->svc, "a"), -EEXIST);
	assert_string_equal(value_of(f->svc, "b"), "bumble");

	/* A rename adds no key, onto a new name or onto an existing one. */
	assert_int_equal(msvc_store_rename(f->svc, "a", "z"), 0);
	assert_int_equal(nkeys(f->svc), 2);
	assert_int_equal(msvc_store_rename(f->svc, "z", "b"), 0);
	assert_int_equal(nkeys(f->svc), 1);
	assert_string_equal(value_of(f->svc, "b"), "!");

	/* Room again after a delete. */
	assert_int_equal(put(f, "c", "sea"), 3);
	assert_int_equal(put(f, "d", "dee"), -ENOSPC);
	assert_int_equal(msvc_store_delete(f->svc, "c"), 0);
	assert_int_equal(put(f, "d", "dee"), 3);
	assert_int_equal(nkeys(f->svc), 2);
	/* Reads and listing are never refused. */
	assert_string_equal(value_of(f->svc, "d"), "dee");
}

static void test_both_limits_efbig_first(void **state)
{
	struct fixture *f = *state;
	start_with(f, "[limits]\nmax_keys = 1\nmax_value_bytes = 4\n");
	assert_int_equal(put(f, "a", "1234"), 4);
	/* A new key that is also too large: the size is reported. */
	assert_int_equal(put(f, "b", "12345"), -EFBIG);
	assert_int_equal(put(f, "b", "1234"), -ENOSPC);
	assert_int_equal(nkeys(f->svc), 1);
}

static void test_validation(void **state)
{
	struct fixture *f = *state;
	start_with(f, "[limits]\nmax_keys = 5\n");
	const char *before = "[limits]\nmax_bytes = 0\nmax_keys = 5\nmax_value_bytes = 0\n";
	assert_string_equal(config_of(f->svc), before);

	const char *bad[] = {"abc", "-1", "+1", " 1", "1 ", "", "1.5", "0x10", "1e3", "١"};
	const char *keys[] = {"max_keys", "max_value_bytes", "max_bytes"};
	for (size_t k = 0; k < MU_ARRAY_SIZE(keys); k++) {
		for (size_t i = 0; i < MU_ARRAY_SIZE(bad); i++) {
			struct mallafs_reason why = {{0}};
			char want[256];
			assert_int_equal(set(f, keys[k], bad[i], &why), -EINVAL);
			snprintf(want, sizeof(want),
			         "limits: %s must be a non-negative integer, not '%s'", keys[k],
			         bad[i]);
			assert_string_equal(why.text, want);
			assert_string_equal(config_of(f->svc), before);
			assert_non_null(strstr(last_error(f->svc), want));
		}
	}

	/* 63 bits at most. */
	struct mallafs_reason why = {{0}};
	assert_int_equal(set(f, "max_value_bytes", "9223372036854775808", &why), -EINVAL);
	assert_string_equal(why.text, "limits: max_value_bytes must be at most "
	                              "9223372036854775807, not '9223372036854775808'");
	assert_int_equal(set(f, "max_keys", "99999999999999999999999", &why), -EINVAL);
	assert_string_equal(config_of(f->svc), before);
	assert_int_equal(set(f, "max_value_bytes", "9223372036854775807", &why), 0);
	/* Leading zeros are still digits only. */
	assert_int_equal(set(f, "max_keys", "007", &why), 0);
	assert_string_equal(
	        config_of(f->svc),
	        "[limits]\nmax_bytes = 0\nmax_keys = 007\nmax_value_bytes = 9223372036854775807\n");

	/* A value that could break a line is shown tamed. */
	const char *ini = "[limits]\nmax_keys = 1\n  2\n";
	assert_int_equal(msvc_config_apply_ini(f->svc, ini, strlen(ini), &why), -EINVAL);
	assert_string_equal(why.text, "limits: max_keys must be a non-negative integer, not '1?2'");

	/* A misspelt key. */
	assert_int_equal(set(f, "max_key", "3", &why), -EINVAL);
	assert_string_equal(why.text, "limits: unknown setting 'max_key' (limits has max_bytes, "
	                              "max_keys and max_value_bytes)");

	/* A document with a good and a bad value changes nothing at all. */
	ini = "[limits]\nmax_keys = 9\nmax_value_bytes = lots\n";
	assert_int_equal(msvc_config_apply_ini(f->svc, ini, strlen(ini), &why), -EINVAL);
	assert_string_equal(
	        config_of(f->svc),
	        "[limits]\nmax_bytes = 0\nmax_keys = 007\nmax_value_bytes = 9223372036854775807\n");
	/* The limit in force is still 7. */
	for (int i = 0; i < 7; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(put(f, key, "v"), 1);
	}
	assert_int_equal(put(f, "k7", "v"), -ENOSPC);
}

/* max_bytes: names' and values' lengths together; every refusal is ENOSPC
 * with nothing changed, and deleting gives the room back exactly. */
static void test_max_bytes(void **state)
{
	struct fixture *f = *state;
	struct mkv_stat st;
	start_with(f, "[limits]\nmax_bytes = 20\nmax_value_bytes = 16\n");

	assert_int_equal(put(f, "a", "0123456789"), 10);     /* 11 bytes */
	assert_int_equal(msvc_store_create(f->svc, "b"), 0); /* 12 */
	assert_int_equal(put(f, "c", "1234567"), 7);         /* 20 */
	assert_int_equal(put(f, "d", ""), -ENOSPC);
	assert_non_null(strstr(last_error(f->svc),
	                       "limits refused put d: store holds 20 bytes, 1 more is over "
	                       "max_bytes 20"));
	assert_int_equal(msvc_store_create(f->svc, "d"), -ENOSPC);
	assert_int_equal(msvc_store_write(f->svc, "a", 0, "x", 1, MALLAFS_OPF_APPEND), -ENOSPC);
	assert_int_equal(msvc_store_write(f->svc, "b", 3, "x", 1, 0), -ENOSPC); /* the gap counts */
	assert_int_equal(msvc_store_truncate(f->svc, "b", 1), -ENOSPC);
	assert_int_equal(msvc_store_rename(f->svc, "b", "bb"), -ENOSPC);
	/* EFBIG comes first. */
	assert_int_equal(msvc_store_write(f->svc, "b", 16, "x", 1, 0), -EFBIG);
	assert_string_equal(value_of(f->svc, "a"), "0123456789");
	assert_string_equal(value_of(f->svc, "b"), "");
	assert_string_equal(value_of(f->svc, "c"), "1234567");
	assert_null(value_of(f->svc, "d"));
	assert_int_equal(msvc_store_stat(f->svc, "bb", &st), -ENOENT);
	assert_int_equal(nkeys(f->svc), 3);

	/* What does not grow passes: overwriting in place, a shorter put, a
	 * rename that replaces a key. */
	assert_int_equal(msvc_store_write(f->svc, "a", 0, "ABCDEFGHIJ", 10, 0), 10);
	assert_int_equal(put(f, "a", "abc"), 3);    /* 13 */
	assert_int_equal(put(f, "bbbbbbb", ""), 0); /* 20 */
	/* 20, less bbbbbbb (7) and the c it replaces (8), plus c (1): 6. */
	assert_int_equal(msvc_store_rename(f->svc, "bbbbbbb", "c"), 0);
	assert_int_equal(msvc_store_stat(f->svc, "c", &st), 0);
	assert_int_equal(st.size, 0);
	/* a: 1 + 3, b: 1, c: 1 = 6; 14 more fit exactly, 15 do not. */
	assert_int_equal(msvc_store_write(f->svc, "c", 0, "12345678901234", 14, 0), 14);
	assert_int_equal(msvc_store_write(f->svc, "b", 0, "x", 1, 0), -ENOSPC);

	/* Delete everything, fill again: the same room. */
	assert_int_equal(msvc_store_delete(f->svc, "a"), 0);
	assert_int_equal(msvc_store_delete(f->svc, "b"), 0);
	assert_int_equal(msvc_store_delete(f->svc, "c"), 0);
	assert_int_equal(put(f, "z", "0123456789012345"), 16);
	assert_int_equal(put(f, "y", "01"), 2); /* 17 + 3 = 20 */
	assert_int_equal(put(f, "x", ""), -ENOSPC);

	/* Lowered live below what is held: nothing goes, nothing grows;
	 * shrinking and deleting still work. Raised: room again. */
	assert_int_equal(msvc_config_set(f->svc, "limits", "max_bytes", "5", 1, NULL), 0);
	assert_int_equal(msvc_store_write(f->svc, "y", 0, "9", 1, 0), 1);
	assert_int_equal(msvc_store_write(f->svc, "y", 2, "9", 1, 0), -ENOSPC);
	assert_int_equal(msvc_store_truncate(f->svc, "z", 1), 0);
	assert_int_equal(msvc_config_set(f->svc, "limits", "max_bytes", "0", 1, NULL), 0);
	assert_int_equal(put(f, "x", "plenty"), 6);
}

static void test_live_update(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_with(f, NULL);
	for (int i = 0; i < 5; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(put(f, key, "0123456789"), 10);
	}

	/* Lowered below what the store holds: nothing is removed or cut. */
	assert_int_equal(set(f, "max_keys", "3", &why), 0);
	assert_int_equal(set(f, "max_value_bytes", "4", &why), 0);
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 0);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_int_equal(nkeys(f->svc), 5);
	assert_string_equal(value_of(f->svc, "k0"), "0123456789");

	/* Only new keys and growth past the limit are refused. */
	assert_int_equal(put(f, "new", "v"), -ENOSPC);
	assert_int_equal(put(f, "k0", "abcde"), -EFBIG);
	assert_string_equal(value_of(f->svc, "k0"), "0123456789");
	/* A value over the limit can still be cut down, then written. */
	assert_int_equal(msvc_store_truncate(f->svc, "k0", 9), 0);
	assert_int_equal(msvc_store_truncate(f->svc, "k0", 0), 0);
	assert_int_equal(put(f, "k0", "abcd"), 4);
	assert_int_equal(msvc_store_delete(f->svc, "k1"), 0);
	assert_int_equal(put(f, "new", "v"), -ENOSPC);

	/* Raised again, then back to its default (no limit) by removal. */
	assert_int_equal(set(f, "max_keys", "5", &why), 0);
	assert_int_equal(put(f, "new", "v"), 1);
	assert_int_equal(put(f, "new2", "v"), -ENOSPC);
	assert_int_equal(msvc_config_unset(f->svc, "limits", "max_keys", &why), 0);
	assert_int_equal(msvc_config_unset(f->svc, "limits", "max_value_bytes", &why), 0);
	assert_string_equal(config_of(f->svc),
	                    "[limits]\nmax_bytes = 0\nmax_keys = 0\nmax_value_bytes = 0\n");
	assert_int_equal(put(f, "new2", "0123456789"), 10);

	/* Another section changing leaves limits alone: no restart. */
	assert_int_equal(msvc_config_set(f->svc, "other", "x", "1", 1, &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 0);
}

static void test_inactive_then_active(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_with(f, "[limits]\nmax_keys = 1\n");
	assert_int_equal(put(f, "a", "v"), 1);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	/* Validation still runs while the plugins are stopped. */
	assert_int_equal(set(f, "max_keys", "x", &why), -EINVAL);
	assert_int_equal(set(f, "max_keys", "3", &why), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	/* Started with the configuration committed while it was stopped. */
	assert_int_equal(put(f, "b", "v"), 1);
	assert_int_equal(put(f, "c", "v"), 1);
	assert_int_equal(put(f, "d", "v"), -ENOSPC);
}

static void test_added_at_run_time(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(put(f, "a", "v"), 1);
	assert_int_equal(put(f, "b", "v"), 1);

	/* Configuration staged before the plugin exists, checked when it joins. */
	assert_int_equal(msvc_config_set(f->svc, "limits", "max_keys", "many", 4, &why), 0);
	assert_int_equal(msvc_add_plugin(f->svc, "limits", &why), -EINVAL);
	assert_string_equal(why.text,
	                    "limits: max_keys must be a non-negative integer, not 'many'");
	assert_false(msvc_has_plugin(f->svc, "limits"));
	assert_int_equal(msvc_config_set(f->svc, "limits", "max_keys", "2", 1, &why), 0);
	assert_int_equal(msvc_add_plugin(f->svc, "limits", &why), 0);
	assert_int_equal(put(f, "c", "v"), -ENOSPC);

	/* Removed: no more limits. */
	assert_int_equal(msvc_del_plugin(f->svc, "limits", &why), 0);
	assert_int_equal(put(f, "c", "v"), 1);
}

/* Writers run while the limits change under them: each write is either
 * done or refused with the limit's errno, never anything else, and a
 * refused one stores nothing. */
#define WRITES 3000

static void *writer(void *arg)
{
	struct mallafs_svc *svc = arg;
	intptr_t bad = 0;
	char key[16], val[16];
	for (int i = 0; i < WRITES; i++) {
		snprintf(key, sizeof(key), "w%d", i % 40);
		size_t len = (size_t)(i % 16);
		memset(val, 'x', len);
		ssize_t r = msvc_store_write(svc, key, 0, val, len, MALLAFS_OPF_REPLACE);
		bad += r != (ssize_t)len && r != -ENOSPC && r != -EFBIG;
		if (i % 7 == 0)
			bad += msvc_store_delete(svc, key) < -ENOENT;
	}
	return (void *)bad;
}

static void test_live_update_under_load(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_with(f, NULL);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer, f->svc), 0);
	const char *keys[] = {"5", "0", "20", "1"};
	const char *bytes[] = {"8", "3", "0", "15"};
	for (int round = 0; round < 40; round++) {
		assert_int_equal(set(f, "max_keys", keys[round % 4], &why), 0);
		assert_int_equal(set(f, "max_value_bytes", bytes[round % 4], &why), 0);
	}
	for (int i = 0; i < 2; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		assert_null(bad);
	}
	/* The limit in force is the last one set. */
	assert_int_equal(set(f, "max_keys", "1", &why), 0);
	size_t n = nkeys(f->svc);
	assert_int_equal(put(f, "fresh", "v"), n >= 1 ? -ENOSPC : 1);
}

/* A put at an offset (what the first write of an O_TRUNC open at an offset
 * becomes) is judged by its end, whatever the old value was; a refused one
 * changes nothing. A probe of a truncation changes nothing either. */
static void test_put_at_offset_and_probe(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_with(f, NULL);
	assert_int_equal(set(f, "max_value_bytes", "10", &why), 0);
	assert_int_equal(put(f, "k", "0123456789"), 10);
	assert_int_equal(msvc_store_write(f->svc, "k", 8, "abc", 3, MALLAFS_OPF_REPLACE), -EFBIG);
	assert_string_equal(value_of(f->svc, "k"), "0123456789");
	assert_int_equal(msvc_store_write(f->svc, "k", 3, "abc", 3, MALLAFS_OPF_REPLACE), 3);
	char got[16];
	assert_int_equal(msvc_store_read(f->svc, "k", 0, got, sizeof(got)), 6);
	assert_memory_equal(got, "\0\0\0abc", 6);

	struct mallafs_store_op probe = {
	        .code = MALLAFS_OP_TRUNCATE, .key = "k", .flags = MALLAFS_OPF_PROBE};
	assert_int_equal(msvc_store_op(f->svc, &probe), 0);
	struct mkv_stat st;
	assert_int_equal(msvc_store_stat(f->svc, "k", &st), 0);
	assert_int_equal(st.size, 6);
	struct mallafs_store_op gone = {
	        .code = MALLAFS_OP_TRUNCATE, .key = "nokey", .flags = MALLAFS_OPF_PROBE};
	assert_int_equal(msvc_store_op(f->svc, &gone), -ENOENT);
	assert_null(value_of(f->svc, "nokey"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_settings_and_defaults),
	        T(test_max_value_bytes),
	        T(test_max_keys),
	        T(test_both_limits_efbig_first),
	        T(test_max_bytes),
	        T(test_validation),
	        T(test_live_update),
	        T(test_inactive_then_active),
	        T(test_added_at_run_time),
	        T(test_live_update_under_load),
	        T(test_put_at_offset_and_probe),
	};
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	return cmocka_run_group_tests_name("plugin_limits", tests, NULL, NULL);
}
