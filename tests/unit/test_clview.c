/* SPDX-License-Identifier: MIT */
/* Unit tests of core/clview.c: the cluster's view that cluster/ shows. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock_fixture.h"
#include "clview.h"
#include "events.h"
#include "util.h"

struct fixture {
	struct mev_ring *ring;
	struct mclview *v;
	uint64_t cursor;
	char raw[16384];
	char lines[16384];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->ring = mev_ring_new(1024);
	f->v = f->ring ? mclview_new(f->ring) : NULL;
	if (!f->v)
		return -1;
	f->cursor = mev_ring_next_seq(f->ring);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mclview_free(f->v);
	mev_ring_free(f->ring);
	free(f);
	return 0;
}

/* The event lines emitted since the last call, without their numbers. */
static const char *events(struct fixture *f)
{
	ssize_t n = mev_ring_read(f->ring, &f->cursor, f->raw, sizeof(f->raw) - 1);
	assert_true(n >= 0);
	f->raw[n] = '\0';
	size_t out = 0;
	for (char *s = f->raw; *s;) {
		char *sp = strchr(s, ' '), *nl = strchr(s, '\n');
		assert_non_null(sp);
		assert_non_null(nl);
		size_t len = (size_t)(nl - sp); /* " op path...", without the newline */
		memcpy(f->lines + out, sp + 1, len);
		out += len;
		s = nl + 1;
	}
	f->lines[out] = '\0';
	return f->lines;
}

static void assert_status(struct mclview *v, const char *want, struct mkv_stat *ret_st)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mclview_status(v, &text, &len, ret_st), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(text, want);
	free(text);
	if (ret_st)
		assert_int_equal(ret_st->size, strlen(want));
}

static void assert_svc(struct mclview *v, const char *node, const char *svc, const char *want,
                       struct mkv_stat *ret_st)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mclview_service_get(v, node, svc, &text, &len, ret_st), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(text, want);
	free(text);
}

/* cluster/status: empty at first; an event, a new version and a new mtime
 * only when its text changes; too long is EFBIG, and nothing changes. */
static void test_status(void **state)
{
	struct fixture *f = *state;
	struct mkv_stat a, b, c;
	assert_status(f->v, "", &a);
	assert_int_not_equal(a.id, 0);
	assert_string_equal(events(f), "");

	tick();
	const char *t = "connected\nendpoint http://127.0.0.1:2379\nrevision 7\n";
	assert_int_equal(mclview_set_status(f->v, t, strlen(t)), 0);
	assert_status(f->v, t, &b);
	assert_string_equal(events(f), "write cluster/status 52\n");
	assert_int_equal(b.id, a.id);
	assert_int_not_equal(b.ver, a.ver);
	assert_true(ts_cmp(b.mtime, a.mtime) > 0);

	/* The same text again: nothing changes. */
	tick();
	assert_int_equal(mclview_set_status(f->v, t, strlen(t)), 0);
	assert_status(f->v, t, &c);
	assert_string_equal(events(f), "");
	assert_int_equal(c.ver, b.ver);
	assert_int_equal(ts_cmp(c.mtime, b.mtime), 0);

	/* At most MCLVIEW_TEXT_MAX bytes. */
	char *big = malloc(MCLVIEW_TEXT_MAX + 1);
	assert_non_null(big);
	memset(big, 'x', MCLVIEW_TEXT_MAX + 1);
	assert_int_equal(mclview_set_status(f->v, big, MCLVIEW_TEXT_MAX + 1), -EFBIG);
	assert_status(f->v, t, &c);
	assert_int_equal(c.ver, b.ver);
	assert_string_equal(events(f), "");
	assert_int_equal(mclview_set_status(f->v, big, MCLVIEW_TEXT_MAX), 0);
	char *text;
	size_t len;
	assert_int_equal(mclview_status(f->v, &text, &len, NULL), 0);
	assert_int_equal(len, MCLVIEW_TEXT_MAX);
	assert_memory_equal(text, big, len);
	free(text);
	free(big);
	assert_string_equal(events(f), "write cluster/status 65536\n");

	/* Empty again (disconnected, say): a change too. */
	assert_int_equal(mclview_set_status(f->v, NULL, 0), 0);
	assert_status(f->v, "", NULL);
	assert_string_equal(events(f), "write cluster/status 0\n");
}

/* Nodes come (once), go with their services (an event per service, then
 * the node's), and bad names change nothing. */
static void test_nodes(void **state)
{
	struct fixture *f = *state;
	struct mkv_stat st;
	assert_int_equal(mclview_node_put(f->v, "alpha"), 0);
	assert_string_equal(events(f), "mkdir cluster/nodes/alpha\n");
	assert_int_equal(mclview_node_put(f->v, "alpha"), 0);
	assert_string_equal(events(f), "");
	assert_int_equal(mclview_node_stat(f->v, "alpha", &st), 0);
	assert_int_equal(st.size, 0);
	assert_int_not_equal(st.id, 0);

	assert_int_equal(mclview_node_put(f->v, "bad/name"), -EINVAL);
	assert_int_equal(mclview_node_put(f->v, ""), -EINVAL);
	assert_int_equal(mclview_node_put(f->v, ".."), -EINVAL);
	assert_int_equal(mclview_node_put(f->v, NULL), -EINVAL);
	char longname[MU_NAME_MAX + 2];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(mclview_node_put(f->v, longname), -EINVAL);
	longname[MU_NAME_MAX] = '\0';
	assert_int_equal(mclview_node_put(f->v, longname), 0);
	assert_int_equal(mclview_node_remove(f->v, longname), 0);
	const char *ev = events(f);
	assert_int_equal(strlen(ev),
	                 2 * strlen("cluster/nodes/\n") + strlen("mkdir rmdir ") + 2 * MU_NAME_MAX);
	assert_int_equal(mclview_node_stat(f->v, "bad/name", &st), -ENOENT);

	assert_int_equal(
	        mclview_service_put(f->v, "alpha", "api", "state: running\n", 15, 1000, 1000, 0755),
	        0);
	assert_int_equal(
	        mclview_service_put(f->v, "alpha", "batch", "state: paused\n", 14, 0, 0, 0700), 0);
	assert_int_equal(mclview_node_stat(f->v, "alpha", &st), 0);
	assert_int_equal(st.size, 2);
	assert_string_equal(events(f), "create cluster/nodes/alpha/api 15\n"
	                               "create cluster/nodes/alpha/batch 14\n");

	assert_int_equal(mclview_node_remove(f->v, "alpha"), 0);
	ev = events(f);
	/* Each service (in listing order), then the node. */
	assert_true(strcmp(ev, "delete cluster/nodes/alpha/api\n"
	                       "delete cluster/nodes/alpha/batch\n"
	                       "rmdir cluster/nodes/alpha\n") == 0 ||
	            strcmp(ev, "delete cluster/nodes/alpha/batch\n"
	                       "delete cluster/nodes/alpha/api\n"
	                       "rmdir cluster/nodes/alpha\n") == 0);
	assert_int_equal(mclview_node_stat(f->v, "alpha", &st), -ENOENT);
	assert_int_equal(mclview_service_stat(f->v, "alpha", "api", NULL, NULL), -ENOENT);
	assert_int_equal(mclview_node_remove(f->v, "alpha"), -ENOENT);
	assert_string_equal(events(f), "");
}

/* A service: made with its node, changed (an event and a new version
 * only when its text changes; an owner's change moves ctime alone),
 * removed; bad input changes nothing. */
static void test_services(void **state)
{
	struct fixture *f = *state;
	struct mkv_stat a, b, c;
	struct mclview_owner own;

	assert_int_equal(
	        mclview_service_put(f->v, "beta", "api", "state: running\n", 15, 1000, 100, 0750),
	        0);
	assert_string_equal(events(f), "mkdir cluster/nodes/beta\n"
	                               "create cluster/nodes/beta/api 15\n");
	assert_int_equal(mclview_service_stat(f->v, "beta", "api", &a, &own), 0);
	assert_int_equal(a.size, 15);
	assert_int_equal(own.uid, 1000);
	assert_int_equal(own.gid, 100);
	assert_int_equal(own.mode, 0750);
	assert_svc(f->v, "beta", "api", "state: running\n", NULL);

	/* The same again: nothing. */
	tick();
	assert_int_equal(
	        mclview_service_put(f->v, "beta", "api", "state: running\n", 15, 1000, 100, 0750),
	        0);
	assert_string_equal(events(f), "");
	assert_int_equal(mclview_service_stat(f->v, "beta", "api", &b, NULL), 0);
	assert_int_equal(b.ver, a.ver);
	assert_int_equal(ts_cmp(b.mtime, a.mtime), 0);
	assert_int_equal(ts_cmp(b.ctime, a.ctime), 0);

	/* The owner alone: no event, the same version and mtime, a new ctime. */
	tick();
	assert_int_equal(
	        mclview_service_put(f->v, "beta", "api", "state: running\n", 15, 1001, 101, 0700),
	        0);
	assert_string_equal(events(f), "");
	assert_int_equal(mclview_service_stat(f->v, "beta", "api", &b, &own), 0);
	assert_int_equal(own.uid, 1001);
	assert_int_equal(own.gid, 101);
	assert_int_equal(own.mode, 0700);
	assert_int_equal(b.ver, a.ver);
	assert_int_equal(b.id, a.id);
	assert_int_equal(ts_cmp(b.mtime, a.mtime), 0);
	assert_true(ts_cmp(b.ctime, a.ctime) > 0);

	/* The text: an event, a new version, the same id. */
	tick();
	assert_int_equal(
	        mclview_service_put(f->v, "beta", "api", "state: failed\n", 14, 1001, 101, 0700),
	        0);
	assert_string_equal(events(f), "write cluster/nodes/beta/api 14\n");
	assert_svc(f->v, "beta", "api", "state: failed\n", &c);
	assert_int_equal(c.id, a.id);
	assert_int_equal(c.size, 14);
	assert_int_not_equal(c.ver, a.ver);
	assert_true(ts_cmp(c.mtime, b.mtime) > 0);

	/* Bad input: refused, nothing changed. */
	assert_int_equal(mclview_service_put(f->v, "beta", "a/b", "x", 1, 0, 0, 0644), -EINVAL);
	assert_int_equal(mclview_service_put(f->v, "be ta", "api", "x", 1, 0, 0, 0644), -EINVAL);
	assert_int_equal(mclview_service_put(f->v, "beta", "api", "x", 1, 0, 0, 0100644), -EINVAL);
	assert_int_equal(
	        mclview_service_put(f->v, "gamma", "api", "x", MCLVIEW_TEXT_MAX + 1, 0, 0, 0644),
	        -EFBIG);
	assert_string_equal(events(f), "");
	assert_int_equal(mclview_node_stat(f->v, "gamma", &b), -ENOENT);
	assert_svc(f->v, "beta", "api", "state: failed\n", &b);
	assert_int_equal(b.ver, c.ver);

	/* Gone. */
	assert_int_equal(mclview_service_remove(f->v, "beta", "api"), 0);
	assert_string_equal(events(f), "delete cluster/nodes/beta/api\n");
	assert_int_equal(mclview_service_remove(f->v, "beta", "api"), -ENOENT);
	assert_int_equal(mclview_service_remove(f->v, "nobody", "api"), -ENOENT);
	assert_int_equal(mclview_service_stat(f->v, "beta", "api", NULL, NULL), -ENOENT);
	char *text = NULL;
	size_t len;
	assert_int_equal(mclview_service_get(f->v, "beta", "api", &text, &len, NULL), -ENOENT);
	assert_null(text);
	/* The node stays, empty, until the engine says it went. */
	assert_int_equal(mclview_node_stat(f->v, "beta", &b), 0);
	assert_int_equal(b.size, 0);
	assert_string_equal(events(f), "");
}

/* Ids are never 0, never shared, never reused: a node or service that
 * goes and comes back is another. */
static void test_ids(void **state)
{
	struct fixture *f = *state;
	uint64_t seen[64];
	size_t n = 0;
	struct mkv_stat st;
	for (int round = 0; round < 4; round++) {
		assert_int_equal(mclview_service_put(f->v, "n1", "s", "a", 1, 0, 0, 0644), 0);
		assert_int_equal(mclview_service_put(f->v, "n2", "s", "a", 1, 0, 0, 0644), 0);
		const char *names[] = {"n1", "n2"};
		for (int i = 0; i < 2; i++) {
			assert_int_equal(mclview_node_stat(f->v, names[i], &st), 0);
			seen[n++] = st.id;
			assert_int_equal(mclview_service_stat(f->v, names[i], "s", &st, NULL), 0);
			seen[n++] = st.id;
		}
		char *text;
		size_t len;
		assert_int_equal(mclview_status(f->v, &text, &len, &st), 0);
		free(text);
		assert_int_equal(mclview_node_remove(f->v, "n1"), 0);
		assert_int_equal(mclview_service_remove(f->v, "n2", "s"), 0);
		assert_int_equal(mclview_node_remove(f->v, "n2"), 0);
	}
	for (size_t i = 0; i < n; i++) {
		assert_int_not_equal(seen[i], 0);
		assert_int_not_equal(seen[i], st.id); /* nor the status's */
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(seen[i], seen[j]);
	}
}

struct collect {
	int counts[200];
	uint64_t last;
	size_t n, stop_after;
	const char *prefix;
};

static int collect_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	struct collect *c = arg;
	int i;
	if (strcmp(name, "host") == 0) /* the services' node, among the others */
		return ++c->n == c->stop_after;
	assert_int_equal(sscanf(name + strlen(c->prefix), "%d", &i), 1);
	assert_true(i >= 0 && i < 200);
	c->counts[i]++;
	assert_int_not_equal(st->cookie, 0);
	c->last = st->cookie;
	return ++c->n == c->stop_after;
}

/* Listings resume at a cookie: an entry there throughout comes exactly
 * once, whatever comes and goes between two calls. */
static void test_cookies(void **state)
{
	struct fixture *f = *state;
	char name[32];
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		assert_int_equal(mclview_service_put(f->v, "host", name, "t", 1, 0, 0, 0644), 0);
		snprintf(name, sizeof(name), "n%d", i);
		assert_int_equal(mclview_node_put(f->v, name), 0);
	}
	for (int nodes = 0; nodes < 2; nodes++) {
		const char *prefix = nodes ? "n" : "s";
		struct collect c = {.prefix = prefix, .stop_after = 10};
		int r = nodes ? mclview_node_list(f->v, 0, collect_cb, &c)
		              : mclview_service_list(f->v, "host", 0, collect_cb, &c);
		assert_int_equal(r, 1);
		/* Remove every third entry, and add 100 new ones. */
		for (int i = 0; i < 100; i += 3) {
			snprintf(name, sizeof(name), "%s%d", prefix, i);
			if (nodes)
				assert_int_equal(mclview_node_remove(f->v, name), 0);
			else
				assert_int_equal(mclview_service_remove(f->v, "host", name), 0);
		}
		for (int i = 100; i < 200; i++) {
			snprintf(name, sizeof(name), "%s%d", prefix, i);
			if (nodes)
				assert_int_equal(mclview_node_put(f->v, name), 0);
			else
				assert_int_equal(
				        mclview_service_put(f->v, "host", name, "t", 1, 0, 0, 0644),
				        0);
		}
		/* Resume in steps of 7. */
		for (;;) {
			size_t before = c.n;
			c.stop_after = c.n + 7;
			r = nodes ? mclview_node_list(f->v, c.last, collect_cb, &c)
			          : mclview_service_list(f->v, "host", c.last, collect_cb, &c);
			assert_true(r == 0 || r == 1);
			if (r == 0 || c.n == before)
				break;
		}
		for (int i = 0; i < 100; i++)
			if (i % 3 != 0)
				assert_int_equal(c.counts[i], 1);
			else
				assert_true(c.counts[i] <= 1);
		for (int i = 100; i < 200; i++)
			assert_true(c.counts[i] <= 1);
	}
	assert_int_equal(mclview_service_list(f->v, "nobody", 0, collect_cb, &(struct collect){0}),
	                 -ENOENT);
}

/* Without a ring, everything works and nothing is emitted. */
static void test_no_ring(void **state)
{
	struct mclview *v = mclview_new(NULL);
	assert_non_null(v);
	assert_int_equal(mclview_set_status(v, "x\n", 2), 0);
	assert_int_equal(mclview_service_put(v, "a", "b", "c", 1, 0, 0, 0644), 0);
	assert_int_equal(mclview_node_remove(v, "a"), 0);
	assert_int_equal(mclview_service_put(v, "a", "b", "c", 1, 0, 0, 0644), 0);
	mclview_free(v); /* with a node and a service in it */
	mclview_free(NULL);
}

struct reader {
	struct mclview *v;
	_Atomic bool *stop;
	unsigned long reads;
};

static int count_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	return 0;
}

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	while (!*r->stop) {
		char *text;
		size_t len;
		if (mclview_status(r->v, &text, &len, NULL) == 0)
			free(text);
		if (mclview_service_get(r->v, "n", "s", &text, &len, NULL) == 0) {
			assert_true(len == 1 || len == 2);
			free(text);
		}
		mclview_node_list(r->v, 0, count_cb, NULL);
		mclview_service_list(r->v, "n", 0, count_cb, NULL);
		r->reads++;
	}
	return NULL;
}

/* Readers in threads while the engine writes (TSan's pass checks it). */
static void test_threads(void **state)
{
	struct fixture *f = *state;
	_Atomic bool stop = false;
	struct reader rd[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		rd[i] = (struct reader){f->v, &stop, 0};
		assert_int_equal(pthread_create(&th[i], NULL, read_loop, &rd[i]), 0);
	}
	for (int i = 0; i < 500; i++) {
		assert_int_equal(mclview_set_status(f->v, i % 2 ? "a" : "bb", i % 2 ? 1 : 2), 0);
		assert_int_equal(mclview_service_put(f->v, "n", "s", i % 2 ? "a" : "bb",
		                                     i % 2 ? 1 : 2, 0, 0, 0644),
		                 0);
		if (i % 10 == 0)
			assert_int_equal(mclview_node_remove(f->v, "n"), 0);
		events(f); /* keeps the ring from overflowing: not needed, but read */
	}
	stop = true;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_nodes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_services, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cookies, setup, teardown),
	        cmocka_unit_test(test_no_ring),
	        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
