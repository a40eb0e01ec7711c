/* SPDX-License-Identifier: MIT */
/* Unit tests for core/cfg.c: the configuration model, deep merge, INI. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"

/* Collects "key=value;" for every key foreach visits. */
static int collect_kv(const char *key, const char *value, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 512 - n, "%s=%s;", key, value);
	return 0;
}

static int collect_sec(const char *section, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 512 - n, "%s;", section);
	return 0;
}

static int stop_at_b(const char *key, const char *value, void *arg)
{
	int *count = arg;
	(*count)++;
	return strcmp(key, "b") == 0 ? 42 : 0;
}

static struct mallafs_cfg *parse_ok(const char *text)
{
	struct mallafs_cfg *cfg = NULL;
	char err[256];
	int line = -1;
	int r = mcfg_parse_ini(text, strlen(text), &cfg, &line, err, sizeof(err));
	if (r != 0)
		fail_msg("parse failed (%d): %s", r, err);
	assert_non_null(cfg);
	assert_int_equal(line, 0);
	return cfg;
}

/* Parses text expecting an error at want_line whose message contains want. */
static void parse_fails(const char *text, size_t len, int want_line, const char *want)
{
	struct mallafs_cfg *sentinel = (struct mallafs_cfg *)(uintptr_t)0x1;
	struct mallafs_cfg *cfg = sentinel;
	char err[256];
	int line = -1;
	memset(err, 'X', sizeof(err));
	int r = mcfg_parse_ini(text, len, &cfg, &line, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_ptr_equal(cfg, sentinel);
	assert_int_equal(line, want_line);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "line %d: ", want_line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want))
		fail_msg("unexpected error message '%s' (want '%s%s')", err, prefix, want);
}

static void test_set_get_unset(void **state)
{
	struct mallafs_cfg *cfg = mcfg_new();
	assert_non_null(cfg);
	assert_null(mallafs_cfg_get(cfg, "s", "k"));
	assert_false(mcfg_has_section(cfg, "s"));

	assert_int_equal(mallafs_cfg_set(cfg, "s", "k", "v1"), 0);
	assert_true(mcfg_has_section(cfg, "s"));
	assert_string_equal(mallafs_cfg_get(cfg, "s", "k"), "v1");
	assert_null(mallafs_cfg_get(cfg, "s", "other"));
	assert_null(mallafs_cfg_get(cfg, "t", "k"));

	/* The value is copied. */
	char buf[8] = "v2";
	assert_int_equal(mallafs_cfg_set(cfg, "s", "k", buf), 0);
	buf[0] = 'X';
	assert_string_equal(mallafs_cfg_get(cfg, "s", "k"), "v2");
	assert_int_equal(mcfg_section_len(cfg, "s"), 1);

	assert_int_equal(mallafs_cfg_set(cfg, "s", "multi", "a\nb"), 0);
	assert_string_equal(mallafs_cfg_get(cfg, "s", "multi"), "a\nb");
	assert_int_equal(mallafs_cfg_set(cfg, "s", "empty", ""), 0);
	assert_string_equal(mallafs_cfg_get(cfg, "s", "empty"), "");
	assert_int_equal(mcfg_section_len(cfg, "s"), 3);

	assert_int_equal(mallafs_cfg_set(cfg, "s", "k", NULL), -EINVAL);
	assert_string_equal(mallafs_cfg_get(cfg, "s", "k"), "v2");

	assert_int_equal(mallafs_cfg_unset(cfg, "s", "k"), 0);
	assert_null(mallafs_cfg_get(cfg, "s", "k"));
	assert_int_equal(mallafs_cfg_unset(cfg, "s", "k"), -ENOENT);
	assert_int_equal(mallafs_cfg_unset(cfg, "nope", "k"), -ENOENT);
	assert_int_equal(mcfg_section_len(cfg, "s"), 2);
	/* Unsetting keys never removes the section. */
	assert_int_equal(mallafs_cfg_unset(cfg, "s", "multi"), 0);
	assert_int_equal(mallafs_cfg_unset(cfg, "s", "empty"), 0);
	assert_true(mcfg_has_section(cfg, "s"));
	assert_int_equal(mcfg_section_len(cfg, "s"), 0);
	mcfg_free(cfg);
	mcfg_free(NULL);
}

static void test_foreach_order(void **state)
{
	struct mallafs_cfg *cfg = mcfg_new();
	const char *keys[] = {"zeta", "alpha", "mid", "Beta", "alpha2", "a"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(mallafs_cfg_set(cfg, "s", keys[i], keys[i]), 0);
	char out[512] = "";
	assert_int_equal(mallafs_cfg_foreach(cfg, "s", collect_kv, out), 0);
	assert_string_equal(out, "Beta=Beta;a=a;alpha=alpha;alpha2=alpha2;mid=mid;zeta=zeta;");

	/* A non-zero return stops the walk and is passed back. */
	int count = 0;
	assert_int_equal(mallafs_cfg_set(cfg, "t", "a", "1"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "t", "c", "3"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "t", "b", "2"), 0);
	assert_int_equal(mallafs_cfg_foreach(cfg, "t", stop_at_b, &count), 42);
	assert_int_equal(count, 2);

	out[0] = '\0';
	assert_int_equal(mallafs_cfg_foreach(cfg, "absent", collect_kv, out), 0);
	assert_string_equal(out, "");
	mcfg_free(cfg);
}

static void test_sections(void **state)
{
	struct mallafs_cfg *cfg = mcfg_new();
	assert_int_equal(mcfg_nsections(cfg), 0);
	assert_int_equal(mcfg_add_section(cfg, "zz"), 0);
	assert_int_equal(mcfg_add_section(cfg, "aa"), 0);
	assert_int_equal(mcfg_add_section(cfg, "mm"), 0);
	assert_int_equal(mcfg_add_section(cfg, "aa"), -EEXIST);
	assert_int_equal(mcfg_nsections(cfg), 3);
	assert_true(mcfg_has_section(cfg, "mm"));
	assert_int_equal(mcfg_section_len(cfg, "mm"), 0);
	assert_int_equal(mcfg_section_len(cfg, "absent"), 0);

	char out[512] = "";
	assert_int_equal(mcfg_foreach_section(cfg, collect_sec, out), 0);
	assert_string_equal(out, "aa;mm;zz;");

	assert_int_equal(mallafs_cfg_set(cfg, "mm", "k", "v"), 0);
	assert_int_equal(mcfg_del_section(cfg, "mm"), 0);
	assert_false(mcfg_has_section(cfg, "mm"));
	assert_null(mallafs_cfg_get(cfg, "mm", "k"));
	assert_int_equal(mcfg_del_section(cfg, "mm"), -ENOENT);
	assert_int_equal(mcfg_nsections(cfg), 2);

	out[0] = '\0';
	assert_int_equal(mcfg_foreach_section(cfg, collect_sec, out), 0);
	assert_string_equal(out, "aa;zz;");
	mcfg_free(cfg);
}

static void test_tombstones(void **state)
{
	struct mallafs_cfg *u = mcfg_new();
	assert_int_equal(mallafs_cfg_set(u, "s", "keep", "1"), 0);
	assert_int_equal(mcfg_set_removed_key(u, "s", "gone"), 0);
	/* A tombstone is no value: get, foreach and len ignore it. */
	assert_null(mallafs_cfg_get(u, "s", "gone"));
	assert_int_equal(mcfg_section_len(u, "s"), 1);
	char out[512] = "";
	assert_int_equal(mallafs_cfg_foreach(u, "s", collect_kv, out), 0);
	assert_string_equal(out, "keep=1;");
	assert_int_equal(mallafs_cfg_unset(u, "s", "gone"), -ENOENT);
	/* A later set replaces the tombstone. */
	assert_int_equal(mallafs_cfg_set(u, "s", "gone", "back"), 0);
	assert_string_equal(mallafs_cfg_get(u, "s", "gone"), "back");

	/* A removed section is not there for readers. */
	assert_int_equal(mallafs_cfg_set(u, "dead", "k", "v"), 0);
	assert_int_equal(mcfg_set_removed_section(u, "dead"), 0);
	assert_int_equal(mcfg_set_removed_section(u, "never"), 0);
	assert_false(mcfg_has_section(u, "dead"));
	assert_false(mcfg_has_section(u, "never"));
	assert_null(mallafs_cfg_get(u, "dead", "k"));
	assert_int_equal(mcfg_section_len(u, "dead"), 0);
	assert_int_equal(mcfg_nsections(u), 1);
	out[0] = '\0';
	assert_int_equal(mcfg_foreach_section(u, collect_sec, out), 0);
	assert_string_equal(out, "s;");
	assert_int_equal(mcfg_del_section(u, "dead"), -ENOENT);
	/* ... until it is added again. */
	assert_int_equal(mcfg_add_section(u, "never"), 0);
	assert_true(mcfg_has_section(u, "never"));
	assert_int_equal(mallafs_cfg_set(u, "dead", "k2", "v2"), 0);
	assert_true(mcfg_has_section(u, "dead"));
	assert_string_equal(mallafs_cfg_get(u, "dead", "k2"), "v2");
	mcfg_free(u);
}

static void test_merge_tombstones(void **state)
{
	struct mallafs_cfg *dst = mcfg_new();
	assert_int_equal(mallafs_cfg_set(dst, "a", "x", "1"), 0);
	assert_int_equal(mallafs_cfg_set(dst, "a", "y", "2"), 0);
	assert_int_equal(mallafs_cfg_set(dst, "b", "z", "3"), 0);
	assert_int_equal(mallafs_cfg_set(dst, "c", "w", "4"), 0);

	struct mallafs_cfg *u = mcfg_new();
	assert_int_equal(mcfg_set_removed_key(u, "a", "x"), 0);
	assert_int_equal(mcfg_set_removed_section(u, "b"), 0);
	/* Removing what is absent is no error and creates nothing. */
	assert_int_equal(mcfg_set_removed_key(u, "a", "absent"), 0);
	assert_int_equal(mcfg_set_removed_key(u, "nosuch", "k"), 0);
	assert_int_equal(mcfg_set_removed_section(u, "nosuch2"), 0);
	assert_int_equal(mcfg_merge(dst, u), 0);

	assert_null(mallafs_cfg_get(dst, "a", "x"));
	assert_string_equal(mallafs_cfg_get(dst, "a", "y"), "2");
	assert_int_equal(mcfg_section_len(dst, "a"), 1);
	assert_false(mcfg_has_section(dst, "b"));
	assert_false(mcfg_has_section(dst, "nosuch"));
	assert_false(mcfg_has_section(dst, "nosuch2"));
	assert_string_equal(mallafs_cfg_get(dst, "c", "w"), "4");
	assert_int_equal(mcfg_nsections(dst), 2);

	/* The result holds no tombstones: it equals a plainly built config. */
	struct mallafs_cfg *want = mcfg_new();
	assert_int_equal(mallafs_cfg_set(want, "a", "y", "2"), 0);
	assert_int_equal(mallafs_cfg_set(want, "c", "w", "4"), 0);
	assert_true(mcfg_equal(dst, want));
	mcfg_free(want);

	/* Removing a whole section takes all its keys. */
	struct mallafs_cfg *u2 = mcfg_new();
	assert_int_equal(mcfg_set_removed_section(u2, "c"), 0);
	assert_int_equal(mcfg_merge(dst, u2), 0);
	assert_false(mcfg_has_section(dst, "c"));
	mcfg_free(u2);
	mcfg_free(u);
	mcfg_free(dst);
}

static void test_merge_deep(void **state)
{
	struct mallafs_cfg *dst = mcfg_new();
	assert_int_equal(mallafs_cfg_set(dst, "limits", "max_keys", "100"), 0);
	assert_int_equal(mallafs_cfg_set(dst, "limits", "max_value", "4096"), 0);
	assert_int_equal(mallafs_cfg_set(dst, "trace", "lines", "50"), 0);
	assert_int_equal(mcfg_add_section(dst, "emptydst"), 0);

	struct mallafs_cfg *u = mcfg_new();
	assert_int_equal(mallafs_cfg_set(u, "limits", "max_keys", "1000"), 0);
	assert_int_equal(mallafs_cfg_set(u, "limits", "new", "n"), 0);
	assert_int_equal(mallafs_cfg_set(u, "fresh", "k", "v"), 0);
	assert_int_equal(mcfg_add_section(u, "emptyu"), 0);
	assert_int_equal(mcfg_add_section(u, "trace"), 0);
	struct mallafs_cfg *u_copy = mcfg_dup(u);

	assert_int_equal(mcfg_merge(dst, u), 0);
	/* Replaced. */
	assert_string_equal(mallafs_cfg_get(dst, "limits", "max_keys"), "1000");
	/* Kept: not named by the update. */
	assert_string_equal(mallafs_cfg_get(dst, "limits", "max_value"), "4096");
	/* An empty section in the update does not empty dst's. */
	assert_string_equal(mallafs_cfg_get(dst, "trace", "lines"), "50");
	assert_true(mcfg_has_section(dst, "emptydst"));
	/* Added. */
	assert_string_equal(mallafs_cfg_get(dst, "limits", "new"), "n");
	assert_string_equal(mallafs_cfg_get(dst, "fresh", "k"), "v");
	assert_true(mcfg_has_section(dst, "emptyu"));
	assert_int_equal(mcfg_section_len(dst, "limits"), 3);
	assert_int_equal(mcfg_nsections(dst), 5);
	/* The update is left alone. */
	assert_true(mcfg_equal(u, u_copy));

	/* Merging an empty update, or the same update again, changes nothing. */
	struct mallafs_cfg *before = mcfg_dup(dst);
	struct mallafs_cfg *empty = mcfg_new();
	assert_int_equal(mcfg_merge(dst, empty), 0);
	assert_true(mcfg_equal(dst, before));
	assert_int_equal(mcfg_merge(dst, u), 0);
	assert_true(mcfg_equal(dst, before));

	mcfg_free(empty);
	mcfg_free(before);
	mcfg_free(u_copy);
	mcfg_free(u);
	mcfg_free(dst);
}

static void test_equal(void **state)
{
	struct mallafs_cfg *a = mcfg_new(), *b = mcfg_new();
	assert_true(mcfg_equal(a, b));
	assert_int_equal(mallafs_cfg_set(a, "s", "k", "v"), 0);
	assert_int_equal(mallafs_cfg_set(a, "s", "j", "w"), 0);
	assert_false(mcfg_equal(a, b));
	/* Insertion order does not matter. */
	assert_int_equal(mallafs_cfg_set(b, "s", "j", "w"), 0);
	assert_int_equal(mallafs_cfg_set(b, "s", "k", "v"), 0);
	assert_true(mcfg_equal(a, b));

	/* One value differs. */
	assert_int_equal(mallafs_cfg_set(b, "s", "k", "V"), 0);
	assert_false(mcfg_equal(a, b));
	assert_false(mcfg_equal(b, a));
	assert_int_equal(mallafs_cfg_set(b, "s", "k", "v"), 0);
	assert_true(mcfg_equal(a, b));

	/* An extra empty section differs. */
	assert_int_equal(mcfg_add_section(b, "e"), 0);
	assert_false(mcfg_equal(a, b));
	assert_int_equal(mcfg_del_section(b, "e"), 0);
	assert_true(mcfg_equal(a, b));

	/* Same key in another section differs. */
	struct mallafs_cfg *c = mcfg_new(), *d = mcfg_new();
	assert_int_equal(mallafs_cfg_set(c, "s1", "k", "v"), 0);
	assert_int_equal(mallafs_cfg_set(d, "s2", "k", "v"), 0);
	assert_false(mcfg_equal(c, d));

	/* Tombstones count. */
	assert_int_equal(mcfg_set_removed_key(a, "s", "t"), 0);
	assert_false(mcfg_equal(a, b));
	assert_int_equal(mcfg_set_removed_key(b, "s", "t"), 0);
	assert_true(mcfg_equal(a, b));
	assert_int_equal(mcfg_set_removed_section(a, "x"), 0);
	assert_false(mcfg_equal(a, b));
	assert_int_equal(mcfg_add_section(b, "x"), 0);
	assert_false(mcfg_equal(a, b));
	assert_int_equal(mcfg_set_removed_section(b, "x"), 0);
	assert_true(mcfg_equal(a, b));

	mcfg_free(a);
	mcfg_free(b);
	mcfg_free(c);
	mcfg_free(d);
}

static void test_dup(void **state)
{
	struct mallafs_cfg *a = mcfg_new();
	assert_int_equal(mallafs_cfg_set(a, "s", "k", "v"), 0);
	assert_int_equal(mcfg_add_section(a, "empty"), 0);
	assert_int_equal(mcfg_set_removed_key(a, "s", "t"), 0);
	assert_int_equal(mcfg_set_removed_section(a, "gone"), 0);

	struct mallafs_cfg *b = mcfg_dup(a);
	assert_non_null(b);
	assert_true(mcfg_equal(a, b));
	assert_true(mcfg_has_section(b, "empty"));

	/* Changing one leaves the other alone. */
	assert_int_equal(mallafs_cfg_set(b, "s", "k", "changed"), 0);
	assert_int_equal(mallafs_cfg_set(b, "new", "k", "v"), 0);
	assert_string_equal(mallafs_cfg_get(a, "s", "k"), "v");
	assert_false(mcfg_has_section(a, "new"));
	assert_int_equal(mallafs_cfg_unset(a, "s", "k"), 0);
	assert_string_equal(mallafs_cfg_get(b, "s", "k"), "changed");
	assert_false(mcfg_equal(a, b));

	struct mallafs_cfg *e = mcfg_new();
	struct mallafs_cfg *f = mcfg_dup(e);
	assert_non_null(f);
	assert_true(mcfg_equal(e, f));
	mcfg_free(e);
	mcfg_free(f);
	mcfg_free(a);
	mcfg_free(b);
}

static void test_render(void **state)
{
	struct mallafs_cfg *cfg = mcfg_new();
	char *text = NULL;
	size_t len = 99;

	assert_int_equal(mallafs_cfg_render(cfg, &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(text);

	assert_int_equal(mallafs_cfg_set(cfg, "trace", "lines", "50"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "limits", "max_keys", "1000"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "limits", "max_bytes", "4096"), 0);
	assert_int_equal(mcfg_add_section(cfg, "empty"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "exec", "validate", "test -s /dev/stdin\nexit 0"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "exec", "blank", ""), 0);
	/* Tombstones are not part of the text. */
	assert_int_equal(mcfg_set_removed_key(cfg, "limits", "old"), 0);
	assert_int_equal(mcfg_set_removed_section(cfg, "dead"), 0);

	const char *want = "[empty]\n"
	                   "\n"
	                   "[exec]\n"
	                   "blank = \n"
	                   "validate = test -s /dev/stdin\n"
	                   "  exit 0\n"
	                   "\n"
	                   "[limits]\n"
	                   "max_bytes = 4096\n"
	                   "max_keys = 1000\n"
	                   "\n"
	                   "[trace]\n"
	                   "lines = 50\n";
	assert_int_equal(mallafs_cfg_render(cfg, &text, &len), 0);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
	mcfg_free(cfg);
}

static void roundtrip(struct mallafs_cfg *cfg)
{
	char *text = NULL;
	size_t len = 0;
	struct mallafs_cfg *back = NULL;
	char err[256];
	int line = -1;

	assert_int_equal(mallafs_cfg_render(cfg, &text, &len), 0);
	int r = mcfg_parse_ini(text, len, &back, &line, err, sizeof(err));
	if (r != 0)
		fail_msg("round trip parse failed: %s\n%s", err, text);
	if (!mcfg_equal(cfg, back))
		fail_msg("round trip differs:\n%s", text);
	free(text);
	mcfg_free(back);
}

static void test_roundtrip(void **state)
{
	struct mallafs_cfg *cfg = mcfg_new();
	roundtrip(cfg);

	assert_int_equal(mcfg_add_section(cfg, "only-empty"), 0);
	roundtrip(cfg);

	assert_int_equal(mallafs_cfg_set(cfg, "a", "k", "v"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "a", "eq", "x = y: z"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "a", "empty", ""), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "a", "key with spaces", "value with spaces"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "b.c_d-e", "multi", "one\ntwo\nthree"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "b.c_d-e", "lead", "\nafter a newline"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "b.c_d-e", "brackets", "x\n[not a section]"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "b.c_d-e", "utf8", "h\xc3\xa9llo"), 0);
	assert_int_equal(mcfg_add_section(cfg, "z"), 0);
	/* Longer than inih's own 50-byte section and name buffers. */
	char longsec[121], longkey[101];
	memset(longsec, 's', sizeof(longsec) - 1);
	longsec[sizeof(longsec) - 1] = '\0';
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_int_equal(mallafs_cfg_set(cfg, longsec, longkey, "first\nsecond"), 0);
	roundtrip(cfg);
	mcfg_free(cfg);
}

/* A value with semicolons renders and parses back the same. */
static void test_semicolons_roundtrip(void **state)
{
	struct mallafs_cfg *cfg = mcfg_new();
	assert_int_equal(mallafs_cfg_set(cfg, "exec", "on_update", "echo a ; echo b;echo c"), 0);
	char *text;
	size_t len;
	assert_int_equal(mallafs_cfg_render(cfg, &text, &len), 0);
	struct mallafs_cfg *back = parse_ok(text);
	assert_string_equal(mallafs_cfg_get(back, "exec", "on_update"), "echo a ; echo b;echo c");
	assert_true(mcfg_equal(cfg, back));
	free(text);
	mcfg_free(back);
	mcfg_free(cfg);
	/* The stand-in byte itself is refused rather than read as ';'. */
	char *err_text = "[s]\nk = a\x01"
	                 "b\n";
	struct mallafs_cfg *out = NULL;
	int line = 0;
	char err[128];
	assert_int_equal(mcfg_parse_ini(err_text, strlen(err_text), &out, &line, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(line, 2);
}

static void test_parse_basic(void **state)
{
	struct mallafs_cfg *cfg = parse_ok("; a comment\n"
	                                   "# another comment\n"
	                                   "[limits]\n"
	                                   "max_keys = 100 ; not a comment: values keep ';'\n"
	                                   "  ; an indented comment is no continuation\n"
	                                   "colon: works\n"
	                                   "spaced   =   trimmed   \n"
	                                   "\n"
	                                   "[empty]\n"
	                                   "[multi]\n"
	                                   "v = a\n"
	                                   "  b\n"
	                                   "\tc = d\n"
	                                   "w = 1\n"
	                                   "[limits]\n"
	                                   "later = 2\n");
	/* No inline comments: what config.ini shows must read back the same,
	 * and shell commands (exec hooks) hold ';'. Whole-line comments stay. */
	assert_string_equal(mallafs_cfg_get(cfg, "limits", "max_keys"),
	                    "100 ; not a comment: values keep ';'");
	assert_string_equal(mallafs_cfg_get(cfg, "limits", "colon"), "works");
	assert_string_equal(mallafs_cfg_get(cfg, "limits", "spaced"), "trimmed");
	assert_string_equal(mallafs_cfg_get(cfg, "limits", "later"), "2");
	assert_int_equal(mcfg_section_len(cfg, "limits"), 4);
	assert_true(mcfg_has_section(cfg, "empty"));
	assert_int_equal(mcfg_section_len(cfg, "empty"), 0);
	assert_string_equal(mallafs_cfg_get(cfg, "multi", "v"), "a\nb\nc = d");
	assert_string_equal(mallafs_cfg_get(cfg, "multi", "w"), "1");
	assert_int_equal(mcfg_nsections(cfg), 3);
	mcfg_free(cfg);

	/* An indented key right after a header is a key, not a continuation. */
	cfg = parse_ok("[s]\n  k = v\n");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "k"), "v");
	mcfg_free(cfg);

	/* Empty text, and text with only comments. */
	cfg = parse_ok("");
	assert_int_equal(mcfg_nsections(cfg), 0);
	mcfg_free(cfg);
	cfg = parse_ok("; nothing\n\n# here\n");
	assert_int_equal(mcfg_nsections(cfg), 0);
	mcfg_free(cfg);

	/* A BOM, and a last line without a newline. */
	cfg = parse_ok("\xEF\xBB\xBF[s]\nk = v");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "k"), "v");
	assert_int_equal(mcfg_line(cfg, "s", NULL), 1);
	mcfg_free(cfg);

	/* The text need not be NUL-terminated: only len bytes count. */
	const char buf[] = "[s]\nk = v\n[t]\nj = w\n";
	struct mallafs_cfg *part = NULL;
	char err[64];
	int line = -1;
	assert_int_equal(mcfg_parse_ini(buf, 10, &part, &line, err, sizeof(err)), 0);
	assert_string_equal(mallafs_cfg_get(part, "s", "k"), "v");
	assert_false(mcfg_has_section(part, "t"));
	mcfg_free(part);
}

static void test_parse_crlf(void **state)
{
	struct mallafs_cfg *cfg = parse_ok("[s]\r\n"
	                                   "k = v\r\n"
	                                   "m = a\r\n"
	                                   "  b\r\n"
	                                   "\r\n"
	                                   "[e]\r\n");
	struct mallafs_cfg *want = parse_ok("[s]\nk = v\nm = a\n  b\n\n[e]\n");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "k"), "v");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "m"), "a\nb");
	assert_true(mcfg_has_section(cfg, "e"));
	assert_true(mcfg_equal(cfg, want));
	mcfg_free(want);
	mcfg_free(cfg);
}

/* Found by tests/fuzz/fuzz_cfg_ini: a comment indented by a carriage
 * return (or any isspace() byte inih skips) was read as a continuation
 * line, so "; ..." joined the value above it, and config.ini then showed a
 * value that did not read back. */
static void test_parse_comment_after_cr(void **state)
{
	const char *t = "[s]\n"
	                "k = v\n"
	                "\r; a comment\n"
	                "\v# another\n"
	                "  ; indented\n"
	                "j = w\n";
	struct mallafs_cfg *cfg = parse_ok(t);
	assert_string_equal(mallafs_cfg_get(cfg, "s", "k"), "v");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "j"), "w");
	char *text;
	size_t len;
	assert_int_equal(mallafs_cfg_render(cfg, &text, &len), 0);
	struct mallafs_cfg *back = parse_ok(text);
	assert_true(mcfg_equal(cfg, back));
	free(text);
	mcfg_free(back);
	mcfg_free(cfg);
}

static void test_parse_errors(void **state)
{
	const char *t;

	t = "[s]\nk = v\nthis line has no equals sign\nj = w\n";
	parse_fails(t, strlen(t), 3, "syntax error");
	t = "[s]\nk = v\n[unclosed\n";
	parse_fails(t, strlen(t), 3, "syntax error");

	t = "[s]\nk = 1\nj = 2\nk = 3\n";
	parse_fails(t, strlen(t), 4, "duplicate key 'k' in [s]");
	/* The same key in a repeated section is still a duplicate. */
	t = "[s]\nk = 1\n[t]\n[s]\nk = 2\n";
	parse_fails(t, strlen(t), 5, "duplicate key 'k' in [s]");
	/* A key seen again after a blank line is a duplicate, not a continuation. */
	t = "[s]\nk = 1\n\nk = 2\n";
	parse_fails(t, strlen(t), 4, "duplicate key");

	t = "; header comment\nk = v\n[s]\n";
	parse_fails(t, strlen(t), 2, "key 'k' outside a section");

	t = "[s]\n[bad name]\n";
	parse_fails(t, strlen(t), 2, "invalid section name 'bad name'");
	t = "[s]\n[]\nk = v\n";
	parse_fails(t, strlen(t), 2, "invalid section name");
	t = "[s]\nk/x = v\n";
	parse_fails(t, strlen(t), 2, "invalid key name 'k/x'");
	t = "[s]\n.. = v\n";
	parse_fails(t, strlen(t), 2, "invalid key name");
	t = "[s]\n = v\n";
	parse_fails(t, strlen(t), 2, "invalid key name");

	const char nul[] = "[s]\nk = v\nj = a\0b\n";
	parse_fails(nul, sizeof(nul) - 1, 3, "NUL byte");

	/* The first error wins, whichever side found it. */
	t = "[s]\nno equals\nk = 1\nk = 2\n";
	parse_fails(t, strlen(t), 2, "syntax error");
	t = "[s]\nk = 1\nk = 2\nno equals\n";
	parse_fails(t, strlen(t), 3, "duplicate key");

	/* A NULL err with errlen 0 and a NULL ret_line are fine. */
	struct mallafs_cfg *cfg = NULL;
	t = "junk\n";
	assert_int_equal(mcfg_parse_ini(t, strlen(t), &cfg, NULL, NULL, 0), -EINVAL);
	assert_null(cfg);
	/* A tiny err buffer is still terminated. */
	char small[8];
	memset(small, 'X', sizeof(small));
	assert_int_equal(mcfg_parse_ini(t, strlen(t), &cfg, NULL, small, sizeof(small)), -EINVAL);
	assert_string_equal(small, "line 1:");
}

static void test_line_numbers(void **state)
{
	struct mallafs_cfg *cfg = parse_ok("; comment\n"
	                                   "[a]\n"
	                                   "x = 1\n"
	                                   "\n"
	                                   "y = 2\n"
	                                   "  more\n"
	                                   "[b]\n"
	                                   "z = 3\n"
	                                   "[a]\n"
	                                   "w = 4\n");
	assert_int_equal(mcfg_line(cfg, "a", NULL), 2);
	assert_int_equal(mcfg_line(cfg, "a", "x"), 3);
	assert_int_equal(mcfg_line(cfg, "a", "y"), 5);
	assert_int_equal(mcfg_line(cfg, "b", NULL), 7);
	assert_int_equal(mcfg_line(cfg, "b", "z"), 8);
	assert_int_equal(mcfg_line(cfg, "a", "w"), 10);
	assert_int_equal(mcfg_line(cfg, "a", "absent"), 0);
	assert_int_equal(mcfg_line(cfg, "absent", NULL), 0);

	/* Set by code: no line. */
	assert_int_equal(mallafs_cfg_set(cfg, "a", "x", "new"), 0);
	assert_int_equal(mcfg_line(cfg, "a", "x"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "c", "k", "v"), 0);
	assert_int_equal(mcfg_line(cfg, "c", NULL), 0);
	assert_int_equal(mcfg_line(cfg, "c", "k"), 0);

	/* Lines survive dup and travel with merged keys. */
	struct mallafs_cfg *d = mcfg_dup(cfg);
	assert_int_equal(mcfg_line(d, "b", "z"), 8);
	struct mallafs_cfg *dst = mcfg_new();
	assert_int_equal(mcfg_merge(dst, cfg), 0);
	assert_int_equal(mcfg_line(dst, "a", "y"), 5);
	mcfg_free(dst);
	mcfg_free(d);
	mcfg_free(cfg);
}

static void test_setting(void **state)
{
	static const struct mallafs_setting settings[] = {
	        {.key = "max_keys", .def = "0", .restart = 0},
	        {.key = "max_value", .def = "65536", .restart = 0},
	        {.key = NULL},
	};
	static const struct mallafs_plugin limits = {
	        MALLAFS_PLUGIN_INIT,
	        .name = "limits",
	        .settings = settings,
	};
	static const struct mallafs_plugin bare = {
	        MALLAFS_PLUGIN_INIT,
	        .name = "bare",
	};
	struct mallafs_cfg *cfg = mcfg_new();

	assert_string_equal(mallafs_setting(cfg, &limits, "max_keys"), "0");
	assert_string_equal(mallafs_setting(cfg, &limits, "max_value"), "65536");
	assert_null(mallafs_setting(cfg, &limits, "undeclared"));

	assert_int_equal(mallafs_cfg_set(cfg, "limits", "max_keys", "100"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, "limits", "undeclared", "u"), 0);
	/* Another section's value is not this plugin's. */
	assert_int_equal(mallafs_cfg_set(cfg, "other", "max_value", "1"), 0);
	assert_string_equal(mallafs_setting(cfg, &limits, "max_keys"), "100");
	assert_string_equal(mallafs_setting(cfg, &limits, "max_value"), "65536");
	assert_string_equal(mallafs_setting(cfg, &limits, "undeclared"), "u");

	assert_int_equal(mallafs_cfg_unset(cfg, "limits", "max_keys"), 0);
	assert_string_equal(mallafs_setting(cfg, &limits, "max_keys"), "0");

	assert_null(mallafs_setting(cfg, &bare, "max_keys"));
	assert_int_equal(mallafs_cfg_set(cfg, "bare", "k", "v"), 0);
	assert_string_equal(mallafs_setting(cfg, &bare, "k"), "v");
	mcfg_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_set_get_unset),
	        cmocka_unit_test(test_foreach_order),
	        cmocka_unit_test(test_sections),
	        cmocka_unit_test(test_tombstones),
	        cmocka_unit_test(test_merge_tombstones),
	        cmocka_unit_test(test_merge_deep),
	        cmocka_unit_test(test_equal),
	        cmocka_unit_test(test_dup),
	        cmocka_unit_test(test_render),
	        cmocka_unit_test(test_roundtrip),
	        cmocka_unit_test(test_parse_basic),
	        cmocka_unit_test(test_semicolons_roundtrip),
	        cmocka_unit_test(test_parse_crlf),
	        cmocka_unit_test(test_parse_comment_after_cr),
	        cmocka_unit_test(test_parse_errors),
	        cmocka_unit_test(test_line_numbers),
	        cmocka_unit_test(test_setting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
