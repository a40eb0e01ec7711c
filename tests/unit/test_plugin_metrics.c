/* SPDX-License-Identifier: MIT */
/* The metrics plugin: its counters and gauge through the service layer, the
 * exact Prometheus text of services/NAME/metrics, its empty settings, and
 * exact counts under concurrent reads. */
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
#include "metrics.h"
#include "plugin.h"
#include "prom.h"
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

static void start_chain(struct fixture *f, const char *const *names, size_t n, const char *ini)
{
	struct mallafs_reason why = {{0}};
	struct mallafs_cfg *cfg = NULL;
	char err[256];
	int line;
	if (ini)
		assert_int_equal(mcfg_parse_ini(ini, strlen(ini), &cfg, &line, err, sizeof(err)),
		                 0);
	assert_int_equal(msvc_setup(f->svc, names, n, cfg, &why), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	mcfg_free(cfg);
}

static void start_metrics(struct fixture *f)
{
	const char *names[] = {"metrics"};
	start_chain(f, names, 1, NULL);
}

static char *metrics_of(struct mallafs_svc *svc)
{
	static char buf[16384];
	char *text;
	size_t len;
	assert_int_equal(msvc_file_render(svc, "metrics", &text, &len), 0);
	assert_int_equal(strlen(text), len);
	snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

/* The sample of one metric for service "api". */
static unsigned long long metric(struct mallafs_svc *svc, const char *name)
{
	char want[128];
	snprintf(want, sizeof(want), "\n%s{service=\"api\"} ", name);
	const char *text = metrics_of(svc);
	const char *p = strstr(text, want);
	if (!p)
		fail_msg("no sample for %s in:\n%s", name, text);
	return strtoull(p + strlen(want), NULL, 10);
}

static int count_one(const char *key, const struct mkv_stat *st, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static ssize_t put(struct fixture *f, const char *key, const char *value)
{
	return msvc_store_write(f->svc, key, 0, value, strlen(value), MALLAFS_OPF_REPLACE);
}

static const char zero_text[] =
        "# HELP mallafs_store_gets_total Reads of a value from its start, whatever the result.\n"
        "# TYPE mallafs_store_gets_total counter\n"
        "mallafs_store_gets_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_hits_total Gets that found the key.\n"
        "# TYPE mallafs_store_hits_total counter\n"
        "mallafs_store_hits_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_misses_total Gets that found no such key.\n"
        "# TYPE mallafs_store_misses_total counter\n"
        "mallafs_store_misses_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_read_bytes_total Bytes returned by reads.\n"
        "# TYPE mallafs_store_read_bytes_total counter\n"
        "mallafs_store_read_bytes_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_puts_total Writes (puts, appends, writes at an offset).\n"
        "# TYPE mallafs_store_puts_total counter\n"
        "mallafs_store_puts_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_written_bytes_total Bytes stored by writes.\n"
        "# TYPE mallafs_store_written_bytes_total counter\n"
        "mallafs_store_written_bytes_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_creates_total Creations of an empty key.\n"
        "# TYPE mallafs_store_creates_total counter\n"
        "mallafs_store_creates_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_truncates_total Truncations of a value.\n"
        "# TYPE mallafs_store_truncates_total counter\n"
        "mallafs_store_truncates_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_deletes_total Deletions of a key.\n"
        "# TYPE mallafs_store_deletes_total counter\n"
        "mallafs_store_deletes_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_renames_total Renames of a key.\n"
        "# TYPE mallafs_store_renames_total counter\n"
        "mallafs_store_renames_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_refusals_total Operations refused by a plugin or failed in the "
        "store, misses excepted.\n"
        "# TYPE mallafs_store_refusals_total counter\n"
        "mallafs_store_refusals_total{service=\"api\"} 0\n"
        "# HELP mallafs_store_keys Keys in the store after the last operation.\n"
        "# TYPE mallafs_store_keys gauge\n"
        "mallafs_store_keys{service=\"api\"} 0\n";

static void test_exact_text(void **state)
{
	struct fixture *f = *state;
	start_metrics(f);
	assert_string_equal(metrics_of(f->svc), zero_text);

	/* The same text with the numbers of one put and one get. */
	char buf[16];
	assert_int_equal(put(f, "k", "hello"), 5);
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), 5);
	char want[sizeof(zero_text) + 64];
	snprintf(want, sizeof(want), "%s", zero_text);
	const char *subst[][2] = {
	        {"gets_total{service=\"api\"} 0", "gets_total{service=\"api\"} 1"},
	        {"hits_total{service=\"api\"} 0", "hits_total{service=\"api\"} 1"},
	        {"read_bytes_total{service=\"api\"} 0", "read_bytes_total{service=\"api\"} 5"},
	        {"puts_total{service=\"api\"} 0", "puts_total{service=\"api\"} 1"},
	        {"written_bytes_total{service=\"api\"} 0",
	         "written_bytes_total{service=\"api\"} 5"},
	        {"keys{service=\"api\"} 0", "keys{service=\"api\"} 1"},
	};
	for (size_t i = 0; i < MU_ARRAY_SIZE(subst); i++) {
		char *p = strstr(want, subst[i][0]);
		assert_non_null(p);
		p[strlen(subst[i][0]) - 1] = subst[i][1][strlen(subst[i][1]) - 1];
	}
	assert_string_equal(metrics_of(f->svc), want);
}

/* Every line is a comment (# HELP / # TYPE) or NAME{service="api"} VALUE,
 * each family's HELP then TYPE then its one sample, names as the format
 * wants them, and the text ends with a newline. */
static void test_format_rules(void **state)
{
	struct fixture *f = *state;
	start_metrics(f);
	put(f, "k", "v");
	const char *text = metrics_of(f->svc);
	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	char *copy = strdup(text), *save = NULL;
	char family[128] = "";
	int phase = 0, families = 0;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], rest[256];
		if (phase == 0) {
			assert_int_equal(sscanf(line, "# HELP %127s %255[^\n]", family, rest), 2);
			for (const char *p = family; *p; p++)
				assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz_:", *p));
			phase = 1;
		} else if (phase == 1) {
			char type[32];
			assert_int_equal(sscanf(line, "# TYPE %127s %31s", name, type), 2);
			assert_string_equal(name, family);
			bool counter = strcmp(type, "counter") == 0;
			assert_true(counter || strcmp(type, "gauge") == 0);
			/* Counters, and only they, end in _total. */
			size_t n = strlen(name);
			assert_int_equal(counter, n > 6 && strcmp(name + n - 6, "_total") == 0);
			phase = 2;
		} else {
			unsigned long long v;
			char tail;
			assert_int_equal(
			        sscanf(line, "%127[^{]{service=\"api\"} %llu%c", name, &v, &tail),
			        2);
			assert_string_equal(name, family);
			families++;
			phase = 0;
		}
	}
	assert_int_equal(phase, 0);
	assert_int_equal(families, 12);
	free(copy);
}

static void test_counts(void **state)
{
	struct fixture *f = *state;
	start_metrics(f);
	char buf[64];

	assert_int_equal(put(f, "a", "hello"), 5);
	assert_int_equal(msvc_store_write(f->svc, "a", 0, "!!", 2, MALLAFS_OPF_APPEND), 2);
	assert_int_equal(msvc_store_write(f->svc, "b", 3, "xyz", 3, 0), 3);
	assert_int_equal(metric(f->svc, "mallafs_store_puts_total"), 3);
	assert_int_equal(metric(f->svc, "mallafs_store_written_bytes_total"), 10);

	/* A get is a read from offset 0; reading on adds only bytes. */
	assert_int_equal(msvc_store_read(f->svc, "a", 0, buf, 4), 4);
	assert_int_equal(msvc_store_read(f->svc, "a", 4, buf, 4), 3);
	assert_int_equal(msvc_store_read(f->svc, "a", 7, buf, 4), 0);
	assert_int_equal(metric(f->svc, "mallafs_store_gets_total"), 1);
	assert_int_equal(metric(f->svc, "mallafs_store_hits_total"), 1);
	assert_int_equal(metric(f->svc, "mallafs_store_read_bytes_total"), 7);

	/* Misses are no refusals; an empty value is a hit. */
	assert_int_equal(msvc_store_read(f->svc, "nope", 0, buf, 4), -ENOENT);
	assert_int_equal(msvc_store_read(f->svc, "nope", 0, buf, 4), -ENOENT);
	assert_int_equal(msvc_store_create(f->svc, "e"), 0);
	assert_int_equal(msvc_store_read(f->svc, "e", 0, buf, 4), 0);
	assert_int_equal(metric(f->svc, "mallafs_store_gets_total"), 4);
	assert_int_equal(metric(f->svc, "mallafs_store_hits_total"), 2);
	assert_int_equal(metric(f->svc, "mallafs_store_misses_total"), 2);
	assert_int_equal(metric(f->svc, "mallafs_store_refusals_total"), 0);

	/* Creates, truncates, deletes, renames, failed or not; the failures
	 * are refusals. */
	assert_int_equal(msvc_store_create(f->svc, "e"), -EEXIST);
	assert_int_equal(msvc_store_truncate(f->svc, "a", 1), 0);
	assert_int_equal(msvc_store_truncate(f->svc, "nope", 1), -ENOENT);
	assert_int_equal(msvc_store_delete(f->svc, "e"), 0);
	assert_int_equal(msvc_store_delete(f->svc, "e"), -ENOENT);
	assert_int_equal(msvc_store_rename(f->svc, "a", "c"), 0);
	assert_int_equal(msvc_store_rename(f->svc, "a", "c"), -ENOENT);
	assert_int_equal(metric(f->svc, "mallafs_store_creates_total"), 2);
	assert_int_equal(metric(f->svc, "mallafs_store_truncates_total"), 2);
	assert_int_equal(metric(f->svc, "mallafs_store_deletes_total"), 2);
	assert_int_equal(metric(f->svc, "mallafs_store_renames_total"), 2);
	assert_int_equal(metric(f->svc, "mallafs_store_refusals_total"), 4);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 2);
	/* Listing is not counted. */
	char *before = strdup(metrics_of(f->svc));
	size_t n = 0;
	assert_int_equal(msvc_store_list(f->svc, 0, count_one, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(metrics_of(f->svc), before);
	free(before);
}

static void test_keys_gauge(void **state)
{
	struct fixture *f = *state;
	start_metrics(f);
	assert_int_equal(msvc_store_create(f->svc, "a"), 0);
	assert_int_equal(put(f, "b", "v"), 1);
	assert_int_equal(put(f, "b", "w"), 1); /* not a new key */
	assert_int_equal(msvc_store_write(f->svc, "c", 0, "v", 1, MALLAFS_OPF_APPEND), 1);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 3);
	assert_int_equal(msvc_store_rename(f->svc, "a", "d"), 0); /* onto a new name */
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 3);
	assert_int_equal(msvc_store_rename(f->svc, "d", "b"), 0); /* replacing b */
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 2);
	assert_int_equal(msvc_store_rename(f->svc, "b", "b"), 0); /* onto itself */
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 2);
	assert_int_equal(msvc_store_delete(f->svc, "c"), 0);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 1);
	assert_int_equal(msvc_store_delete(f->svc, "c"), -ENOENT);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 1);
}

static void test_added_later_counts_existing_keys(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	for (int i = 0; i < 7; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(put(f, key, "v"), 1);
	}
	/* No file before the plugin joins. */
	char *text;
	size_t len;
	assert_int_equal(msvc_file_render(f->svc, "metrics", &text, &len), -ENOENT);
	assert_int_equal(msvc_add_plugin(f->svc, "metrics", &why), 0);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 7);
	assert_int_equal(metric(f->svc, "mallafs_store_puts_total"), 0);
	assert_int_equal(msvc_del_plugin(f->svc, "metrics", &why), 0);
	assert_int_equal(msvc_file_render(f->svc, "metrics", &text, &len), -ENOENT);
}

/* Counters live as long as the plugin is in the chain, across a stop and a
 * start; the gauge is read afresh at start. */
static void test_restart_keeps_counters(void **state)
{
	struct fixture *f = *state;
	start_metrics(f);
	assert_int_equal(put(f, "a", "v"), 1);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	/* Stopped: the store works, metrics does not see it. */
	assert_int_equal(put(f, "b", "v"), 1);
	assert_int_equal(put(f, "c", "v"), 1);
	assert_int_equal(metric(f->svc, "mallafs_store_puts_total"), 1);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(metric(f->svc, "mallafs_store_puts_total"), 1);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 3);
}

static void test_refusals_from_below(void **state)
{
	struct fixture *f = *state;
	/* metrics above limits sees what limits refuses. */
	const char *names[] = {"metrics", "limits"};
	start_chain(f, names, 2, "[limits]\nmax_keys = 1\nmax_value_bytes = 3\n");
	assert_int_equal(put(f, "a", "abc"), 3);
	assert_int_equal(put(f, "a", "abcd"), -EFBIG);
	assert_int_equal(put(f, "b", "x"), -ENOSPC);
	assert_int_equal(msvc_store_create(f->svc, "b"), -ENOSPC);
	assert_int_equal(metric(f->svc, "mallafs_store_puts_total"), 3);
	assert_int_equal(metric(f->svc, "mallafs_store_creates_total"), 1);
	assert_int_equal(metric(f->svc, "mallafs_store_refusals_total"), 3);
	assert_int_equal(metric(f->svc, "mallafs_store_written_bytes_total"), 3);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 1);
}

static void test_no_settings(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_metrics(f);
	/* The section exists (empty) while the plugin is in the chain. */
	assert_int_equal(msvc_config_set(f->svc, "metrics", "interval", "5", 1, &why), -EINVAL);
	assert_string_equal(why.text, "metrics: metrics has no settings, not 'interval'");
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(f->svc, &text, &len), 0);
	assert_null(strstr(text, "interval"));
	free(text);
	/* Other sections are none of its business. */
	assert_int_equal(msvc_config_set(f->svc, "other", "interval", "5", 1, &why), 0);
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 0);
	/* Staged keys in its section keep it out of the chain. */
	assert_int_equal(msvc_del_plugin(f->svc, "metrics", &why), 0);
	assert_int_equal(msvc_config_set(f->svc, "metrics", "x", "1", 1, &why), 0);
	assert_int_equal(msvc_add_plugin(f->svc, "metrics", &why), -EINVAL);
	assert_string_equal(why.text, "metrics: metrics has no settings, not 'x'");
}

/* Counters that move are a change of the file, for its watchers; reading
 * the file is none. */
static void test_file_events(void **state)
{
	struct fixture *f = *state;
	start_metrics(f);
	uint64_t cursor = mev_ring_next_seq(f->ring);
	char buf[4096];
	assert_int_equal(put(f, "a", "v"), 1);
	ssize_t n = mev_ring_read(f->ring, &cursor, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "write services/api/metrics\n"));
	metrics_of(f->svc);
	n = mev_ring_read(f->ring, &cursor, buf, sizeof(buf) - 1);
	assert_true(n <= 0);
}

#define THREADS 4
#define READS 2000

/* cmocka's asserts must stay on the main thread: readers count failures. */
static void *reader(void *arg)
{
	struct mallafs_svc *svc = arg;
	char buf[16];
	intptr_t bad = 0;
	for (int i = 0; i < READS; i++) {
		ssize_t n = msvc_store_read(svc, i % 2 ? "k" : "missing", 0, buf, sizeof(buf));
		bad += n != (i % 2 ? 5 : -ENOENT);
		if (i % 100 == 0) {
			char *text;
			size_t len;
			bad += msvc_file_render(svc, "metrics", &text, &len) != 0;
			free(text);
		}
	}
	return (void *)bad;
}

static void test_concurrent_gets_exact(void **state)
{
	struct fixture *f = *state;
	start_metrics(f);
	assert_int_equal(put(f, "k", "hello"), 5);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, f->svc), 0);
	for (int i = 0; i < THREADS; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		assert_null(bad);
	}
	assert_int_equal(metric(f->svc, "mallafs_store_gets_total"), THREADS * READS);
	assert_int_equal(metric(f->svc, "mallafs_store_hits_total"), THREADS * READS / 2);
	assert_int_equal(metric(f->svc, "mallafs_store_misses_total"), THREADS * READS / 2);
	assert_int_equal(metric(f->svc, "mallafs_store_read_bytes_total"), THREADS * READS / 2 * 5);
	assert_int_equal(metric(f->svc, "mallafs_store_keys"), 1);
}

/* ---- the shared text helpers (plugins/prom.c) and the snapshot the
 * root's metrics file takes (fs/metrics.c) ---- */

static char *out_text(struct mallafs_out *out)
{
	static char buf[1024];
	char *text = mu_buf_steal(&out->b, NULL);
	assert_non_null(text);
	snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

/* Label values escape backslash, double quote and newline; help text
 * backslash and newline; nothing else changes. */
static void test_prom_escaping(void **state)
{
	struct mallafs_out out = {{0}};
	assert_int_equal(prom_sample(&out, "m_total", "service", "a\"b\\c\nd", 7), 0);
	assert_string_equal(out_text(&out), "m_total{service=\"a\\\"b\\\\c\\nd\"} 7\n");

	assert_int_equal(prom_sample(&out, "m", NULL, NULL, UINT64_MAX), 0);
	assert_string_equal(out_text(&out), "m 18446744073709551615\n");

	assert_int_equal(prom_sample_text(&out, "t_seconds", "x", "", "12.500"), 0);
	assert_string_equal(out_text(&out), "t_seconds{x=\"\"} 12.500\n");

	const struct prom_family f = {"g", "gauge", "A \"quoted\" \\ and\na line"};
	assert_int_equal(prom_header(&out, &f), 0);
	assert_string_equal(out_text(&out),
	                    "# HELP g A \"quoted\" \\\\ and\\na line\n# TYPE g gauge\n");
}

/* Every family follows the conventions: counters end in _total, the
 * gauge does not, and the names are the file's. */
static void test_families(void **state)
{
	for (size_t i = 0; i < MM_COUNT_; i++) {
		const struct prom_family *f = &mm_families[i];
		size_t n = strlen(f->name);
		bool total = n > 6 && strcmp(f->name + n - 6, "_total") == 0;
		assert_true(strncmp(f->name, "mallafs_store_", 14) == 0);
		assert_true(strcmp(f->type, i == MM_KEYS ? "gauge" : "counter") == 0);
		assert_true(total == (i != MM_KEYS));
		assert_non_null(strstr(zero_text, f->name));
	}
}

/* The snapshot gives what the file says; a service without the plugin
 * has none. */
static void test_snapshot(void **state)
{
	struct fixture *f = *state;
	uint64_t v[MM_COUNT_];
	assert_int_equal(msvc_plugin_peek(f->svc, &mallafs_plugin_metrics, mm_snapshot, v),
	                 -ENOENT);
	start_metrics(f);
	assert_int_equal(put(f, "a", "hello"), 5);
	assert_int_equal(put(f, "b", "x"), 1);
	assert_int_equal(msvc_store_delete(f->svc, "b"), 0);
	assert_int_equal(msvc_plugin_peek(f->svc, &mallafs_plugin_metrics, mm_snapshot, v), 0);
	for (size_t i = 0; i < MM_COUNT_; i++)
		assert_int_equal(v[i], metric(f->svc, mm_families[i].name));
	assert_int_equal(v[MM_PUTS], 2);
	assert_int_equal(v[MM_WRITTEN_BYTES], 6);
	assert_int_equal(v[MM_DELETES], 1);
	assert_int_equal(v[MM_KEYS], 1);
	/* Another plugin's descriptor finds nothing. */
	assert_int_equal(msvc_plugin_peek(f->svc, &mallafs_plugin_trace, mm_snapshot, v), -ENOENT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_exact_text),
	        T(test_format_rules),
	        T(test_counts),
	        T(test_keys_gauge),
	        T(test_added_later_counts_existing_keys),
	        T(test_restart_keeps_counters),
	        T(test_refusals_from_below),
	        T(test_no_settings),
	        T(test_file_events),
	        T(test_concurrent_gets_exact),
	        T(test_prom_escaping),
	        T(test_families),
	        T(test_snapshot),
	};
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	return cmocka_run_group_tests_name("plugin_metrics", tests, NULL, NULL);
}
