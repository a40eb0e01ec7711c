/* SPDX-License-Identifier: MIT */
/* Unit tests for core/cfg_ini.c: config.ini gives back whatever it shows.
 * Every key mallafs_cfg_set accepts and every value (any bytes but NUL, as
 * config/SECTION/KEY takes) renders to INI that parses back to the same
 * configuration; keys that INI could not carry are refused. */
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

static struct mallafs_cfg *parse_ok(const char *text)
{
	struct mallafs_cfg *cfg = NULL;
	char err[256];
	int line = -1;
	int r = mcfg_parse_ini(text, strlen(text), &cfg, &line, err, sizeof(err));
	if (r != 0)
		fail_msg("parse failed (%d): %s\n%s", r, err, text);
	assert_non_null(cfg);
	return cfg;
}

/* Parses text expecting an error at want_line whose message contains want. */
static void parse_fails(const char *text, int want_line, const char *want)
{
	struct mallafs_cfg *cfg = NULL;
	char err[256];
	int line = -1;
	int r = mcfg_parse_ini(text, strlen(text), &cfg, &line, err, sizeof(err));
	if (r != -EINVAL || line != want_line || !strstr(err, want))
		fail_msg("parse of %s: %d at line %d '%s' (want EINVAL at line %d, '%s')", text, r,
		         line, err, want_line, want);
	assert_null(cfg);
}

static char *render(const struct mallafs_cfg *cfg)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mallafs_cfg_render(cfg, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	return text;
}

/* cfg renders to text that parses back to cfg, and renders the same again. */
static void roundtrip(const struct mallafs_cfg *cfg)
{
	char *text = render(cfg);
	struct mallafs_cfg *back = parse_ok(text);
	if (!mcfg_equal(cfg, back))
		fail_msg("round trip differs:\n%s", text);
	char *again = render(back);
	assert_string_equal(text, again);
	free(again);
	free(text);
	mcfg_free(back);
}

/* One value through config.ini: what it renders to, and back. */
static void value_renders(const char *value, const char *want_text)
{
	struct mallafs_cfg *cfg = mcfg_new();
	assert_int_equal(mallafs_cfg_set(cfg, "s", "k", value), 0);
	char *text = render(cfg);
	if (want_text)
		assert_string_equal(text, want_text);
	struct mallafs_cfg *back = parse_ok(text);
	const char *got = mallafs_cfg_get(back, "s", "k");
	assert_non_null(got);
	assert_string_equal(got, value);
	free(text);
	mcfg_free(back);
	mcfg_free(cfg);
}

/* What inih alone drops or changes, each of the issue's cases. */
static void test_values_that_inih_changes(void **state)
{
	/* Plain where plain reads back the same. */
	value_renders("v", "[s]\nk = v\n");
	value_renders("", "[s]\nk = \n");
	value_renders("a ; b # c = d: e", "[s]\nk = a ; b # c = d: e\n");
	value_renders("#first line may start so", "[s]\nk = #first line may start so\n");
	value_renders("one\ntwo\n  [x]", NULL);
	value_renders("one\ntwo\tthree", "[s]\nk = one\n  two\tthree\n");
	/* Leading and trailing spaces, of the value and of a line in it. */
	value_renders("  lead", "[s]\nk = \"  lead\"\n");
	value_renders("trail ", "[s]\nk = \"trail \"\n");
	value_renders("\tx", "[s]\nk = \"\\tx\"\n");
	value_renders("if x; then\n    echo y\nfi",
	              "[s]\nk = \"if x; then\\n\"\n  \"    echo y\\n\"\n  \"fi\"\n");
	/* Continuation lines inih takes for comments, and empty ones. */
	value_renders("set -e\n# say hi\necho hi",
	              "[s]\nk = \"set -e\\n\"\n  \"# say hi\\n\"\n  \"echo hi\"\n");
	value_renders("a\n; b", "[s]\nk = \"a\\n\"\n  \"; b\"\n");
	value_renders("a\n\nb", "[s]\nk = \"a\\n\"\n  \"\\n\"\n  \"b\"\n");
	value_renders("a\n", "[s]\nk = \"a\\n\"\n");
	value_renders("\n", "[s]\nk = \"\\n\"\n");
	/* Quotes, backslashes, control characters, CR. */
	value_renders("\"quoted\"", "[s]\nk = \"\\\"quoted\\\"\"\n");
	value_renders("x \"in\" \\ side", "[s]\nk = x \"in\" \\ side\n");
	value_renders("a\rb", "[s]\nk = \"a\\rb\"\n");
	value_renders("crlf\r", "[s]\nk = \"crlf\\r\"\n");
	value_renders("\x01\x1f\x7f", "[s]\nk = \"\\x01\\x1f\\x7f\"\n");
	value_renders("h\xc3\xa9llo \xff", "[s]\nk = h\xc3\xa9llo \xff\n");
	value_renders("  \"\\\n; x\n", NULL);
}

/* Lines past inih's 200 bytes: values, keys and section names. */
static void test_long_lines(void **state)
{
	static const size_t lens[] = {150, 194, 195, 196, 197, 198, 199,  200,   201,
	                              396, 397, 398, 399, 400, 401, 4096, 300000};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *v = malloc(lens[i] + 1);
		for (size_t j = 0; j < lens[i]; j++)
			v[j] = (char)('a' + j % 26);
		v[lens[i]] = '\0';
		value_renders(v, NULL);
		/* The same as a continuation line, and quoted. */
		v[lens[i] / 2] = '\n';
		value_renders(v, NULL);
		v[0] = ' ';
		value_renders(v, NULL);
		free(v);
	}

	/* The longest names there are. */
	char sec[256], key[256];
	memset(sec, 's', 255);
	sec[255] = '\0';
	memset(key, 'k', 255);
	key[255] = '\0';
	struct mallafs_cfg *cfg = mcfg_new();
	assert_int_equal(mallafs_cfg_set(cfg, sec, key, "v"), 0);
	assert_int_equal(mallafs_cfg_set(cfg, sec, "other", " quoted"), 0);
	roundtrip(cfg);
	mcfg_free(cfg);

	/* A long line written by hand, CRLF or not. */
	size_t n = 10000;
	char *text = malloc(n + 64);
	strcpy(text, "[s]\nk = ");
	memset(text + 8, 'x', n);
	strcpy(text + 8 + n, "\r\nj = 1\n");
	cfg = parse_ok(text);
	assert_int_equal(strlen(mallafs_cfg_get(cfg, "s", "k")), n);
	assert_string_equal(mallafs_cfg_get(cfg, "s", "j"), "1");
	assert_int_equal(mcfg_line(cfg, "s", "j"), 3);
	mcfg_free(cfg);
	free(text);
}

/* Keys that config.ini could not write back are refused wherever a key is
 * made: mallafs_cfg_set and the parser. */
static void test_keys(void **state)
{
	static const char *const bad[] = {
	        "a=b",  "a:b", "[a", "a]", "a;b",  "#a",    "a#",    "a\nb", "a\rb",
	        "a\tb", " a",  "a ", " ",  "\x01", "a\x7f", "",      ".",    "..",
	        "a/b",  ";",   "=",  ":",  "[s]",  "\t",    "a\x1b",
	};
	const char *why;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (mcfg_key_check(bad[i], &why) != -EINVAL)
			fail_msg("key '%s' accepted", bad[i]);
		assert_non_null(why);
		struct mallafs_cfg *cfg = mcfg_new();
		assert_int_equal(mallafs_cfg_set(cfg, "s", bad[i], "v"), -EINVAL);
		assert_int_equal(mcfg_nsections(cfg), 0);
		mcfg_free(cfg);
	}
	assert_int_equal(mcfg_key_check(NULL, &why), -EINVAL);
	static const char *const good[] = {"k",   "a b",      "a.b-c_d",   "\"q\"", "a\\b", "{x}",
	                                   "a,b", "\xc3\xa9", "!@$%^&*()", "a'b",   "~"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(mcfg_key_check(good[i], &why), 0);
		assert_null(why);
		struct mallafs_cfg *cfg = mcfg_new();
		assert_int_equal(mallafs_cfg_set(cfg, "s", good[i], "v"), 0);
		roundtrip(cfg);
		mcfg_free(cfg);
	}

	parse_fails("[s]\na#b = v\n", 2, "invalid key name 'a#b'");
	parse_fails("[s]\nk = 1\nx]y = v\n", 3, "INI syntax");
	/* A key with '=' or ':' cannot even be written: the first one ends it. */
	struct mallafs_cfg *cfg = parse_ok("[s]\na = b = c\nd: e = f\n");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "a"), "b = c");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "d"), "e = f");
	mcfg_free(cfg);
}

/* Quoted values as a user may write them, and what is wrong with some. */
static void test_quoted_parse(void **state)
{
	struct mallafs_cfg *cfg = parse_ok("[s]\n"
	                                   "a = \"x\"\n"
	                                   "b = \"one \"   \n"
	                                   "    \"two\"\n"
	                                   "; a comment between pieces\n"
	                                   "\t\"\\x41\\x7a\\\\\\\"\\t\"\n"
	                                   "c = \"\"\n"
	                                   "d = \"semi ; colon\"\n"
	                                   "e = plain\n"
	                                   "  \"not a piece: plain continues\"\n");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "a"), "x");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "b"), "one twoAz\\\"\t");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "c"), "");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "d"), "semi ; colon");
	assert_string_equal(mallafs_cfg_get(cfg, "s", "e"),
	                    "plain\n\"not a piece: plain continues\"");
	assert_int_equal(mcfg_line(cfg, "s", "c"), 7);
	mcfg_free(cfg);

	parse_fails("[s]\nk = \"open\n", 2, "piece per line");
	parse_fails("[s]\nk = \"a\" b\n", 2, "piece per line");
	parse_fails("[s]\nk = \"a\"b\"\n", 2, "must be written");
	parse_fails("[s]\nk = \"a\\q\"\n", 2, "unknown escape \\q");
	parse_fails("[s]\nk = \"a\\x0\"\n", 2, "two hex digits");
	parse_fails("[s]\nk = \"a\\x00\"\n", 2, "not 00");
	parse_fails("[s]\nk = \"a\\xg1\"\n", 2, "two hex digits");
	parse_fails("[s]\nk = \"a\\\"\n", 2, "ends inside an escape");
	parse_fails("[s]\nk = \"a\"\n  plain\n", 3, "piece per line");
	parse_fails("[s]\nk = \"a\"\n  \"b\n", 3, "piece per line");
	/* A failed document leaves nothing behind: the error is all there is. */
	parse_fails("[s]\nk = 1\nj = \"\\z\"\n", 3, "unknown escape");
}

/* A small deterministic generator (xorshift64*). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t rnd_below(size_t n)
{
	return (size_t)(rnd() % n);
}

/* A byte other than NUL, mostly the ones INI cares about. */
static char tricky_byte(void)
{
	static const char tricky[] = " \t\n\r#;\"\\[]=:\x01\x7f\x80\xff";
	if (rnd_below(2))
		return tricky[rnd_below(sizeof(tricky) - 1)];
	if (rnd_below(4) == 0)
		return (char)(1 + rnd_below(255));
	return (char)('a' + rnd_below(26));
}

static char *random_value(void)
{
	size_t len = rnd_below(8) == 0 ? rnd_below(3000) : rnd_below(40);
	char *v = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		v[i] = tricky_byte();
	v[len] = '\0';
	return v;
}

/* A random key mallafs_cfg_set accepts (those it refuses are counted). */
static void random_key(char *buf, size_t *refused)
{
	for (;;) {
		size_t len = 1 + (rnd_below(16) == 0 ? rnd_below(255) : rnd_below(12));
		for (size_t i = 0; i < len; i++)
			buf[i] = tricky_byte();
		buf[len] = '\0';
		if (mcfg_key_check(buf, NULL) == 0)
			return;
		(*refused)++;
	}
}

static void random_section(char *buf)
{
	static const char chars[] =
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
	size_t len = 1 + (rnd_below(16) == 0 ? rnd_below(255) : rnd_below(8));
	for (size_t i = 0; i < len; i++)
		buf[i] = chars[rnd_below(sizeof(chars) - 1)];
	buf[len] = '\0';
	if (strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0)
		buf[0] = 'x';
}

/* The property: every configuration of accepted keys and any values goes
 * through config.ini unchanged. */
static void test_roundtrip_property(void **state)
{
	size_t refused = 0, values = 0;
	for (int round = 0; round < 600; round++) {
		struct mallafs_cfg *cfg = mcfg_new();
		size_t nsec = 1 + rnd_below(4);
		for (size_t s = 0; s < nsec; s++) {
			char sec[256], key[256];
			random_section(sec);
			if (rnd_below(8) == 0) {
				int r = mcfg_add_section(cfg, sec);
				assert_true(r == 0 || r == -EEXIST);
				continue;
			}
			size_t nkeys = 1 + rnd_below(6);
			for (size_t k = 0; k < nkeys; k++) {
				random_key(key, &refused);
				char *v = random_value();
				assert_int_equal(mallafs_cfg_set(cfg, sec, key, v), 0);
				values++;
				free(v);
			}
		}
		roundtrip(cfg);
		mcfg_free(cfg);
	}
	/* The generator does try keys that must be refused. */
	assert_true(refused > 100);
	assert_true(values > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_values_that_inih_changes),
	        cmocka_unit_test(test_long_lines),
	        cmocka_unit_test(test_keys),
	        cmocka_unit_test(test_quoted_parse),
	        cmocka_unit_test(test_roundtrip_property),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
