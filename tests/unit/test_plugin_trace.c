/* SPDX-License-Identifier: MIT */
/* The trace plugin: the exact lines of services/NAME/trace for store
 * operations, reconfigurations and its own start and stop; the lines
 * setting (validation, live growth and shrinking); the events it raises;
 * and recording from concurrent readers while the ring is resized. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "events.h"
#include "plugin.h"
#include "service.h"
#include "util.h"

#define STAMP 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */

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
	f->ring = mev_ring_new(1 << 16);
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

static void start_trace(struct fixture *f, const char *ini)
{
	const char *names[] = {"trace"};
	start_chain(f, names, 1, ini);
}

static bool digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ " and returns the seconds it says. */
static time_t check_stamp(const char *line)
{
	assert_true(digits(line, 4) && line[4] == '-' && digits(line + 5, 2) && line[7] == '-' &&
	            digits(line + 8, 2) && line[10] == 'T' && digits(line + 11, 2) &&
	            line[13] == ':' && digits(line + 14, 2) && line[16] == ':' &&
	            digits(line + 17, 2) && line[19] == '.' && digits(line + 20, 3) &&
	            line[23] == 'Z' && line[24] == ' ');
	struct tm tm = {0};
	assert_non_null(strptime(line, "%Y-%m-%dT%H:%M:%S", &tm));
	return timegm(&tm);
}

/* The trace file with each line's timestamp checked and cut off. */
static char *trace_of(struct mallafs_svc *svc)
{
	static char out[1 << 20];
	char *text;
	size_t len, n = 0;
	assert_int_equal(msvc_file_render(svc, "trace", &text, &len), 0);
	assert_int_equal(strlen(text), len);
	out[0] = '\0';
	for (char *p = text; *p;) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl); /* every line ends with a newline */
		assert_true(nl - p > STAMP);
		check_stamp(p);
		size_t body = (size_t)(nl - p) - (STAMP + 1);
		assert_true(n + body + 2 < sizeof(out));
		memcpy(out + n, p + STAMP + 1, body + 1);
		n += body + 1;
		out[n] = '\0';
		p = nl + 1;
	}
	free(text);
	return out;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static ssize_t put(struct fixture *f, const char *key, const char *value)
{
	return msvc_store_write(f->svc, key, 0, value, strlen(value), MALLAFS_OPF_REPLACE);
}

static int set(struct fixture *f, const char *section, const char *key, const char *value,
               struct mallafs_reason *why)
{
	return msvc_config_set(f->svc, section, key, value, strlen(value), why);
}

static int ignore_key(const char *key, const struct mkv_stat *st, void *arg)
{
	return 0;
}

static void test_store_operations(void **state)
{
	struct fixture *f = *state;
	start_trace(f, NULL);
	char buf[64];

	assert_int_equal(put(f, "greeting", "hello\n"), 6);
	assert_int_equal(msvc_store_write(f->svc, "greeting", 0, "!", 1, MALLAFS_OPF_APPEND), 1);
	assert_int_equal(msvc_store_read(f->svc, "greeting", 0, buf, sizeof(buf)), 7);
	assert_int_equal(msvc_store_read(f->svc, "greeting", 7, buf, sizeof(buf)), 0);
	assert_int_equal(msvc_store_read(f->svc, "nope", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(msvc_store_create(f->svc, "e"), 0);
	assert_int_equal(msvc_store_create(f->svc, "e"), -EEXIST);
	assert_int_equal(msvc_store_truncate(f->svc, "greeting", 2), 0);
	assert_int_equal(msvc_store_rename(f->svc, "greeting", "hi"), 0);
	assert_int_equal(msvc_store_rename(f->svc, "greeting", "hi"), -ENOENT);
	assert_int_equal(msvc_store_delete(f->svc, "e"), 0);
	assert_int_equal(msvc_store_delete(f->svc, "e"), -ENOENT);
	assert_int_equal(msvc_store_list(f->svc, 0, ignore_key, NULL), 0);

	assert_string_equal(trace_of(f->svc), "start\n"
	                                      "put greeting 6\n"
	                                      "put greeting 1\n"
	                                      "get greeting 7\n"
	                                      "get greeting 0\n"
	                                      "get nope ENOENT\n"
	                                      "create e 0\n"
	                                      "create e EEXIST\n"
	                                      "truncate greeting 0\n"
	                                      "rename greeting hi 0\n"
	                                      "rename greeting hi ENOENT\n"
	                                      "delete e 0\n"
	                                      "delete e ENOENT\n"
	                                      "list 0\n");
}

/* Keys are words of the line: quoted, with C escapes, when they would
 * otherwise split it. */
static void test_key_quoting(void **state)
{
	struct fixture *f = *state;
	start_trace(f, NULL);
	assert_int_equal(put(f, "a b", "1"), 1);
	assert_int_equal(put(f, "say \"hi\"", "1"), 1);
	assert_int_equal(put(f, "back\\slash", "1"), 1);
	assert_int_equal(put(f, "two\nlines\tand\x01", "1"), 1);
	assert_int_equal(put(f, "café", "1"), 1);
	assert_int_equal(msvc_store_rename(f->svc, "a b", "c d"), 0);
	assert_string_equal(trace_of(f->svc), "start\n"
	                                      "put \"a b\" 1\n"
	                                      "put \"say \\\"hi\\\"\" 1\n"
	                                      "put \"back\\\\slash\" 1\n"
	                                      "put \"two\\nlines\\tand\\x01\" 1\n"
	                                      "put café 1\n"
	                                      "rename \"a b\" \"c d\" 0\n");
}

/* A refusal from a plugin below shows its errno and reason. */
static void test_refusals_with_reason(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"trace", "limits"};
	start_chain(f, names, 2, "[limits]\nmax_keys = 1\nmax_value_bytes = 4\n");
	assert_int_equal(put(f, "a", "1234"), 4);
	assert_int_equal(put(f, "a", "12345"), -EFBIG);
	assert_int_equal(msvc_store_create(f->svc, "b"), -ENOSPC);
	assert_string_equal(trace_of(f->svc),
	                    "start\n"
	                    "put a 4\n"
	                    "put a EFBIG (value of 5 bytes is over max_value_bytes 4)\n"
	                    "create b ENOSPC (store holds 1 keys, max_keys is 1)\n");
}

static void test_reconfigure_lines(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	const char *names[] = {"trace", "limits"};
	start_chain(f, names, 2, NULL);

	assert_int_equal(set(f, "limits", "max_keys", "10", &why), 0);
	/* Several keys in one document, in the order the configuration has. */
	const char *ini = "[limits]\nmax_value_bytes = 64\nmax_keys = 11\n[app]\nmode = fast\n";
	assert_int_equal(msvc_config_apply_ini(f->svc, ini, strlen(ini), &why), 0);
	/* A value holding spaces, quotes and a newline stays on one line. */
	ini = "[app]\ncmd = echo \"hi there\"\n  next\n";
	assert_int_equal(msvc_config_apply_ini(f->svc, ini, strlen(ini), &why), 0);
	assert_int_equal(set(f, "app", "empty", "", &why), 0);
	/* Removals. */
	assert_int_equal(msvc_config_unset(f->svc, "limits", "max_keys", &why), 0);
	assert_int_equal(msvc_config_unset(f->svc, "app", "mode", &why), 0);
	/* Empty sections coming and going. */
	assert_int_equal(msvc_config_add_section(f->svc, "cache", &why), 0);
	assert_int_equal(msvc_config_del_section(f->svc, "cache", &why), 0);
	/* No change, no line; a rejected change, no line. */
	assert_int_equal(set(f, "limits", "max_value_bytes", "64", &why), 0);
	assert_int_equal(set(f, "limits", "max_value_bytes", "x", &why), -EINVAL);

	assert_string_equal(
	        trace_of(f->svc),
	        "start\n"
	        "reconfigure limits.max_keys=10\n"
	        "reconfigure app.mode=fast limits.max_keys=11 limits.max_value_bytes=64\n"
	        "reconfigure app.cmd=\"echo \\\"hi there\\\"\\nnext\"\n"
	        "reconfigure app.empty=\"\"\n"
	        "reconfigure -limits.max_keys\n"
	        "reconfigure -app.mode\n"
	        "reconfigure +[cache]\n"
	        "reconfigure -[cache]\n");
}

/* A huge value is cut, and says so. */
static void test_long_reconfigure_cut(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_trace(f, NULL);
	char *big = malloc(10001);
	memset(big, 'v', 10000);
	big[10000] = '\0';
	assert_int_equal(set(f, "app", "big", big, &why), 0);
	free(big);
	const char *t = trace_of(f->svc);
	const char *line = strstr(t, "reconfigure app.big=vvv");
	assert_non_null(line);
	const char *nl = strchr(line, '\n');
	assert_int_equal(nl - line, 4096 - (STAMP + 1));
	assert_memory_equal(nl - 3, "...", 3);
}

static void test_start_stop_and_history(void **state)
{
	struct fixture *f = *state;
	start_trace(f, NULL);
	assert_int_equal(put(f, "a", "1"), 1);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	/* Not running: the store still works, trace records nothing. */
	assert_int_equal(put(f, "b", "1"), 1);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(put(f, "c", "1"), 1);
	/* Pausing leaves the plugins running. */
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_PAUSE), 0);
	assert_int_equal(put(f, "d", "1"), 1);
	assert_string_equal(trace_of(f->svc), "start\n"
	                                      "put a 1\n"
	                                      "stop\n"
	                                      "start\n"
	                                      "put c 1\n"
	                                      "put d 1\n");
}

/* Now, from the clock trace stamps with: time(2) reads a coarser one,
 * which can still be in the last second when trace's is in the next. */
static time_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static void test_timestamps_are_now_and_ordered(void **state)
{
	struct fixture *f = *state;
	time_t before = now_s();
	start_trace(f, NULL);
	for (int i = 0; i < 20; i++)
		assert_int_equal(put(f, "k", "v"), 1);
	time_t after = now_s();
	char *text;
	size_t len;
	assert_int_equal(msvc_file_render(f->svc, "trace", &text, &len), 0);
	char prev[STAMP + 1] = "";
	for (char *p = text; *p; p = strchr(p, '\n') + 1) {
		time_t t = check_stamp(p);
		assert_true(t >= before && t <= after);
		/* ISO 8601 in one zone sorts as text. */
		assert_true(strncmp(prev, p, STAMP) <= 0);
		memcpy(prev, p, STAMP);
	}
	free(text);
}

static void test_lines_default_and_ring(void **state)
{
	struct fixture *f = *state;
	start_trace(f, NULL);
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(f->svc, &text, &len), 0);
	assert_string_equal(text, "[trace]\nlines = 100\n");
	free(text);

	for (int i = 0; i < 150; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(put(f, key, "v"), 1);
	}
	const char *t = trace_of(f->svc);
	assert_int_equal(count_lines(t), 100);
	/* Newest last, the oldest dropped: k50 .. k149. */
	assert_memory_equal(t, "put k50 1\n", 10);
	assert_non_null(strstr(t, "put k149 1\n"));
	assert_string_equal(t + strlen(t) - strlen("put k149 1\n"), "put k149 1\n");
	assert_null(strstr(t, "put k49 1\n"));
	assert_null(strstr(t, "start\n"));
}

static void test_lines_live(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_trace(f, "[trace]\nlines = 8\n");
	for (int i = 0; i < 10; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(put(f, key, "v"), 1);
	}
	assert_int_equal(count_lines(trace_of(f->svc)), 8);

	/* Shrinking drops the oldest; the reconfiguration is the newest line. */
	assert_int_equal(set(f, "trace", "lines", "3", &why), 0);
	assert_string_equal(trace_of(f->svc), "put k8 1\n"
	                                      "put k9 1\n"
	                                      "reconfigure trace.lines=3\n");
	struct msvc_status st;
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 0);

	/* Growing keeps what there is and makes room. */
	assert_int_equal(set(f, "trace", "lines", "5", &why), 0);
	assert_int_equal(put(f, "x", "v"), 1);
	assert_string_equal(trace_of(f->svc), "put k8 1\n"
	                                      "put k9 1\n"
	                                      "reconfigure trace.lines=3\n"
	                                      "reconfigure trace.lines=5\n"
	                                      "put x 1\n");
	assert_int_equal(put(f, "y", "v"), 1);
	assert_int_equal(put(f, "z", "v"), 1);
	assert_string_equal(trace_of(f->svc), "reconfigure trace.lines=3\n"
	                                      "reconfigure trace.lines=5\n"
	                                      "put x 1\n"
	                                      "put y 1\n"
	                                      "put z 1\n");

	/* One line, and back to the default by removal. */
	assert_int_equal(set(f, "trace", "lines", "1", &why), 0);
	assert_string_equal(trace_of(f->svc), "reconfigure trace.lines=1\n");
	assert_int_equal(put(f, "w", "v"), 1);
	assert_string_equal(trace_of(f->svc), "put w 1\n");
	assert_int_equal(msvc_config_unset(f->svc, "trace", "lines", &why), 0);
	assert_int_equal(put(f, "v", "v"), 1);
	assert_string_equal(trace_of(f->svc), "put w 1\n"
	                                      "reconfigure -trace.lines\n"
	                                      "put v 1\n");
	assert_int_equal(set(f, "trace", "lines", "100000", &why), 0);
	assert_int_equal(count_lines(trace_of(f->svc)), 4);
}

/* lines set while the service is stopped applies at start. */
static void test_lines_applied_at_start(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_trace(f, NULL);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	assert_int_equal(set(f, "trace", "lines", "2", &why), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_ACTIVE), 0);
	assert_string_equal(trace_of(f->svc), "stop\nstart\n");
	assert_int_equal(put(f, "a", "v"), 1);
	assert_string_equal(trace_of(f->svc), "start\nput a 1\n");
}

static void test_validation(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_trace(f, "[trace]\nlines = 7\n");
	const char *bad[][2] = {
	        {"0", "0"},
	        {"100001", "100001"},
	        {"-1", "-1"},
	        {"+5", "+5"},
	        {"5 ", "5 "},
	        {"", ""},
	        {"abc", "abc"},
	        {"1e3", "1e3"},
	        {"99999999999999999999999", "99999999999999999999999"},
	        {"1\n2", "1?2"},
	};
	for (size_t i = 0; i < MU_ARRAY_SIZE(bad); i++) {
		char want[256];
		int r;
		if (strchr(bad[i][0], '\n')) {
			const char *ini = "[trace]\nlines = 1\n  2\n";
			r = msvc_config_apply_ini(f->svc, ini, strlen(ini), &why);
		} else {
			r = set(f, "trace", "lines", bad[i][0], &why);
		}
		assert_int_equal(r, -EINVAL);
		snprintf(want, sizeof(want),
		         "trace: lines must be an integer from 1 to 100000, not '%s'", bad[i][1]);
		assert_string_equal(why.text, want);
	}
	assert_int_equal(set(f, "trace", "line", "5", &why), -EINVAL);
	assert_string_equal(why.text, "trace: unknown setting 'line' (trace has lines)");

	/* Nothing changed: still 7 lines, no reconfigure line. */
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(f->svc, &text, &len), 0);
	assert_string_equal(text, "[trace]\nlines = 7\n");
	free(text);
	for (int i = 0; i < 10; i++)
		assert_int_equal(put(f, "k", "v"), 1);
	assert_int_equal(count_lines(trace_of(f->svc)), 7);
	assert_null(strstr(trace_of(f->svc), "reconfigure"));

	/* A bad staged value keeps trace out of the chain. */
	assert_int_equal(msvc_del_plugin(f->svc, "trace", &why), 0);
	assert_int_equal(set(f, "trace", "lines", "none", &why), 0);
	assert_int_equal(msvc_add_plugin(f->svc, "trace", &why), -EINVAL);
	assert_string_equal(why.text,
	                    "trace: lines must be an integer from 1 to 100000, not 'none'");
	assert_false(msvc_has_plugin(f->svc, "trace"));
}

/* Each recorded line tells watchers the file changed. */
static void test_file_changed_events(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_trace(f, NULL);
	uint64_t cursor = mev_ring_next_seq(f->ring);
	char buf[8192];
	assert_int_equal(msvc_store_read(f->svc, "nope", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(set(f, "trace", "lines", "9", &why), 0);
	ssize_t n = mev_ring_read(f->ring, &cursor, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	size_t changes = 0;
	for (const char *p = buf; (p = strstr(p, " write services/api/trace\n")); p++)
		changes++;
	assert_int_equal(changes, 2);
	/* Rendering is no change. */
	trace_of(f->svc);
	assert_int_equal(mev_ring_read(f->ring, &cursor, buf, sizeof(buf) - 1), 0);
}

/* Readers record concurrently (under the store's read lock) while the
 * ring is resized and rendered: every line stays whole. */
#define THREADS 4
#define READS 3000

static void *reader(void *arg)
{
	struct mallafs_svc *svc = arg;
	char buf[16];
	intptr_t bad = 0;
	for (int i = 0; i < READS; i++)
		bad += msvc_store_read(svc, "k", 0, buf, sizeof(buf)) != 5;
	return (void *)bad;
}

static void test_concurrent_readers_and_resizes(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why = {{0}};
	start_trace(f, "[trace]\nlines = 50\n");
	assert_int_equal(put(f, "k", "hello"), 5);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, f->svc), 0);
	const char *sizes[] = {"3", "500", "1", "64", "2000", "10"};
	for (int round = 0; round < 30; round++) {
		const char *v = sizes[round % MU_ARRAY_SIZE(sizes)];
		assert_int_equal(set(f, "trace", "lines", v, &why), 0);
		const char *t = trace_of(f->svc);
		assert_true(count_lines(t) <= (size_t)atoi(v));
	}
	for (int i = 0; i < THREADS; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		assert_null(bad);
	}
	assert_int_equal(set(f, "trace", "lines", "100", &why), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(msvc_store_read(f->svc, "k", 0, (char[8]){0}, 8), 5);
	const char *t = trace_of(f->svc);
	assert_int_equal(count_lines(t), 100);
	for (const char *p = t; *p; p = strchr(p, '\n') + 1)
		assert_memory_equal(p, "get k 5\n", 8);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_store_operations),
	        T(test_key_quoting),
	        T(test_refusals_with_reason),
	        T(test_reconfigure_lines),
	        T(test_long_reconfigure_cut),
	        T(test_start_stop_and_history),
	        T(test_timestamps_are_now_and_ordered),
	        T(test_lines_default_and_ring),
	        T(test_lines_live),
	        T(test_lines_applied_at_start),
	        T(test_validation),
	        T(test_file_changed_events),
	        T(test_concurrent_readers_and_resizes),
	};
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	return cmocka_run_group_tests_name("plugin_trace", tests, NULL, NULL);
}
