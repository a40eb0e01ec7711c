/* SPDX-License-Identifier: MIT */
/* The etcd client against a real etcd 3.4, started by
 * tests/etcd/run_unit.sh MODE, which passes the endpoints in MALLAFS_ETCD
 * (comma-separated) and runs this binary with the same MODE:
 *   basic    keys, txn, leases, the watch, sizes, failover, timings
 *   quota    an etcd with a tiny --quota-backend-bytes: -ENOSPC
 *   auth     root with password MALLAFS_ETCD_PASSWORD, auth enabled,
 *            --auth-token-ttl 1: right and wrong passwords, re-auth
 *   tls      https with MALLAFS_ETCD_CACERT: with the CA and without
 *   cluster  three members; the script kills the leader once
 *            MALLAFS_ETCD_READY exists and then creates MALLAFS_ETCD_KILLED */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "etcd.h"
#include "etcd_fixture.h"

static void test_new_rejects(void **state)
{
	const char *bad[] = {"127.0.0.1:2379"};
	const char *bad2[] = {"http://h:1/path"};
	struct metcd_opts o = {.endpoints = bad, .n_endpoints = 1, .timeout_ms = 100};
	struct metcd *c = NULL;
	char why[200];
	assert_int_equal(metcd_new(&o, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "127.0.0.1:2379"));
	o.endpoints = bad2;
	assert_int_equal(metcd_new(&o, &c, why, sizeof(why)), -EINVAL);
	o.n_endpoints = 0;
	assert_int_equal(metcd_new(&o, &c, why, sizeof(why)), -EINVAL);
	assert_null(c);
	metcd_free(NULL);
}

static void test_b64_prefix(void **state)
{
	char *out;
	size_t n;
	char *e = metcd_b64_encode("a\0\xff", 3);
	assert_string_equal(e, "YQD/");
	assert_int_equal(metcd_b64_decode(e, strlen(e), &out, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "a\0\xff", 3);
	free(out);
	free(e);
	assert_int_equal(metcd_b64_decode("@@@", 3, &out, &n), -EINVAL);
	char buf[8];
	assert_int_equal(metcd_prefix_end("ab", 2, buf), 2);
	assert_memory_equal(buf, "ac", 2);
	assert_int_equal(metcd_prefix_end("a\xff", 2, buf), 1);
	assert_memory_equal(buf, "b", 1);
	assert_int_equal(metcd_prefix_end("\xff", 1, buf), 1);
	assert_memory_equal(buf, "\0", 1);
}

static void test_put_range(void **state)
{
	struct metcd *c = client();
	char *p = pfx("kv");
	size_t pl = strlen(p);
	char key[64], end[64];
	const char val[] = {'v', 0, (char)0xff, 'w'};
	memcpy(key, p, pl);
	memcpy(key + pl, "b\0\xff", 3);
	int64_t rev = 0, rev2 = 0;
	OK(metcd_put(c, key, pl + 3, val, sizeof(val), 0, &rev));
	assert_true(rev > 0);
	memcpy(key + pl, "a", 1);
	OK(metcd_put(c, key, pl + 1, "", 0, 0, &rev2));
	assert_true(rev2 > rev);
	memcpy(key + pl, "c", 1);
	OK(metcd_put(c, key, pl + 1, "3", 1, 0, NULL));

	struct metcd_range r;
	memcpy(key + pl, "b\0\xff", 3);
	OK(metcd_range(c, key, pl + 3, NULL, 0, 0, 0, false, &r));
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kvs[0].key_len, pl + 3);
	assert_memory_equal(r.kvs[0].key, key, pl + 3);
	assert_int_equal(r.kvs[0].value_len, sizeof(val));
	assert_memory_equal(r.kvs[0].value, val, sizeof(val));
	assert_int_equal(r.kvs[0].create_revision, rev);
	assert_int_equal(r.kvs[0].mod_revision, rev);
	assert_int_equal(r.kvs[0].version, 1);
	assert_true(r.revision >= rev2);
	metcd_range_free(&r);

	size_t el = metcd_prefix_end(p, pl, end);
	OK(metcd_range(c, p, pl, end, el, 0, 0, false, &r));
	assert_int_equal(r.n, 3);
	assert_false(r.more);
	assert_int_equal(r.kvs[0].value_len, 0); /* the empty value */
	assert_string_equal(r.kvs[0].value, "");
	assert_memory_equal(r.kvs[1].key + pl, "b\0\xff", 3);
	assert_memory_equal(r.kvs[2].value, "3", 1);
	metcd_range_free(&r);

	OK(metcd_range(c, p, pl, end, el, 2, 0, true, &r));
	assert_int_equal(r.n, 2);
	assert_true(r.more);
	assert_int_equal(r.kvs[1].value_len, 0); /* keys only */
	metcd_range_free(&r);

	/* As of an older revision: only the first key. */
	OK(metcd_range(c, p, pl, end, el, 0, rev, false, &r));
	assert_int_equal(r.n, 1);
	metcd_range_free(&r);

	/* Nothing: no kvs, no error. */
	OK(metcd_range(c, "/nothing/here", 13, NULL, 0, 0, 0, false, &r));
	assert_int_equal(r.n, 0);
	assert_null(r.kvs);
	metcd_range_free(&r);

	int64_t deleted = 0;
	OK(metcd_delete(c, p, pl, end, el, &deleted, NULL));
	assert_int_equal(deleted, 3);
	OK(metcd_delete(c, p, pl, end, el, &deleted, NULL));
	assert_int_equal(deleted, 0);
	free(p);
	metcd_free(c);
}

static void test_txn(void **state)
{
	struct metcd *c = client();
	char *p = pfx("txn");
	size_t pl = strlen(p);
	char end[64], k1[64], k2[64];
	size_t el = metcd_prefix_end(p, pl, end);
	snprintf(k1, sizeof(k1), "%sone", p);
	snprintf(k2, sizeof(k2), "%stwo", p);
	/* "No key under the prefix": every create_revision < 1. */
	struct metcd_cmp none = {.key = p,
	                         .key_len = pl,
	                         .range_end = end,
	                         .range_end_len = el,
	                         .target = METCD_CREATE,
	                         .result = METCD_LESS,
	                         .number = 1};
	struct metcd_op puts[] = {
	        {.kind = METCD_PUT, .key = k1, .key_len = strlen(k1), .value = "1", .value_len = 1},
	        {.kind = METCD_PUT, .key = k2, .key_len = strlen(k2), .value = "2", .value_len = 1},
	};
	struct metcd_op get_all = {
	        .kind = METCD_GET, .key = p, .key_len = pl, .range_end = end, .range_end_len = el};
	struct metcd_txn_result t;
	OK(metcd_txn(c, &none, 1, puts, 2, &get_all, 1, &t));
	assert_true(t.succeeded);
	assert_int_equal(t.n_gets, 0);
	int64_t rev = t.revision;
	metcd_txn_result_free(&t);
	OK(metcd_txn(c, &none, 1, puts, 2, &get_all, 1, &t));
	assert_false(t.succeeded);
	assert_int_equal(t.n_gets, 1);
	assert_int_equal(t.gets[0].n, 2);
	assert_int_equal(t.gets[0].kvs[0].create_revision, rev);
	metcd_txn_result_free(&t);

	/* CREATE, MOD, VALUE, VERSION and LEASE compares on k1. */
	struct metcd_cmp cmps[] = {
	        {.key = k1, .key_len = strlen(k1), .target = METCD_CREATE, .number = rev},
	        {.key = k1, .key_len = strlen(k1), .target = METCD_MOD, .number = rev},
	        {.key = k1,
	         .key_len = strlen(k1),
	         .target = METCD_VALUE,
	         .value = "1",
	         .value_len = 1},
	        {.key = k1, .key_len = strlen(k1), .target = METCD_VERSION, .number = 1},
	        {.key = k1, .key_len = strlen(k1), .target = METCD_LEASE, .number = 0},
	};
	struct metcd_op ops[] = {
	        {.kind = METCD_DELETE, .key = k1, .key_len = strlen(k1)},
	        {.kind = METCD_GET, .key = k2, .key_len = strlen(k2)},
	        {.kind = METCD_DELETE,
	         .key = p,
	         .key_len = pl,
	         .range_end = end,
	         .range_end_len = el},
	};
	/* One compare off (VALUE "x"): the failure branch, nothing changes. */
	cmps[2].value = "x";
	OK(metcd_txn(c, cmps, 5, ops, 3, NULL, 0, &t));
	assert_false(t.succeeded);
	assert_int_equal(t.n_deleted, 0);
	metcd_txn_result_free(&t);
	cmps[2].value = "1";
	OK(metcd_txn(c, cmps, 5, ops, 3, NULL, 0, &t));
	assert_true(t.succeeded);
	assert_int_equal(t.n_deleted, 2);
	assert_int_equal(t.deleted[0], 1);
	assert_int_equal(t.deleted[1], 1); /* k2 */
	assert_int_equal(t.n_gets, 1);
	assert_int_equal(t.gets[0].n, 1);
	assert_memory_equal(t.gets[0].kvs[0].value, "2", 1);
	assert_true(t.revision > rev);
	metcd_txn_result_free(&t);
	/* GREATER / NOT_EQUAL on a key that is gone: create_revision 0. */
	cmps[0].result = METCD_NOT_EQUAL;
	cmps[0].number = 0;
	OK(metcd_txn(c, cmps, 1, NULL, 0, NULL, 0, &t));
	assert_false(t.succeeded);
	metcd_txn_result_free(&t);
	free(p);
	metcd_free(c);
}

static void test_lease(void **state)
{
	struct metcd *c = client();
	char *p = pfx("lease");
	int64_t id = 0, ttl = 0;
	OK(metcd_lease_grant(c, 30, &id));
	assert_true(id != 0);
	OK(metcd_lease_keepalive(c, id, &ttl));
	assert_true(ttl > 0 && ttl <= 30);
	OK(metcd_put(c, p, strlen(p), "x", 1, id, NULL));
	struct metcd_range r;
	OK(metcd_range(c, p, strlen(p), NULL, 0, 0, 0, false, &r));
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kvs[0].lease, id);
	metcd_range_free(&r);
	/* LEASE compare. */
	struct metcd_cmp cmp = {
	        .key = p, .key_len = strlen(p), .target = METCD_LEASE, .number = id};
	struct metcd_txn_result t;
	OK(metcd_txn(c, &cmp, 1, NULL, 0, NULL, 0, &t));
	assert_true(t.succeeded);
	metcd_txn_result_free(&t);
	OK(metcd_lease_revoke(c, id));
	OK(metcd_range(c, p, strlen(p), NULL, 0, 0, 0, false, &r));
	assert_int_equal(r.n, 0);
	metcd_range_free(&r);
	assert_int_equal(metcd_lease_keepalive(c, id, &ttl), -ENOENT);
	assert_int_equal(metcd_lease_revoke(c, id), -ENOENT);
	assert_string_equal(metcd_error(), "etcdserver: requested lease not found");
	assert_int_equal(metcd_put(c, p, strlen(p), "x", 1, id, NULL), -ENOENT);
	free(p);
	metcd_free(c);
}

static void test_too_big(void **state)
{
	struct metcd *c = client();
	size_t n = 1600 * 1024;
	char *big = malloc(n);
	memset(big, 0xab, n);
	assert_int_equal(metcd_put(c, "/big", 4, big, n, 0, NULL), -EFBIG);
	printf("# 1.6 MiB put: %s\n", metcd_error());
	free(big);
	struct metcd_op ops[129];
	char keys[129][16];
	for (int i = 0; i < 129; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/many/%d", i);
		ops[i] = (struct metcd_op){.kind = METCD_PUT,
		                           .key = keys[i],
		                           .key_len = strlen(keys[i]),
		                           .value = "v",
		                           .value_len = 1};
	}
	struct metcd_txn_result t;
	assert_int_equal(metcd_txn(c, NULL, 0, ops, 129, NULL, 0, &t), -EFBIG);
	assert_string_equal(metcd_error(), "etcdserver: too many operations in txn request");
	OK(metcd_txn(c, NULL, 0, ops, 128, NULL, 0, &t));
	metcd_txn_result_free(&t);
	metcd_free(c);
}

static void test_failover(void **state)
{
	/* Port 1 on loopback: nothing listens there (refused at once). */
	const char *e[] = {"http://127.0.0.1:1", eps[0]};
	struct metcd *c = client_with(e, 2, 3000, NULL, NULL, NULL);
	char buf[100];
	struct metcd_range r;
	OK(metcd_range(c, "/x", 2, NULL, 0, 0, 0, false, &r));
	metcd_range_free(&r);
	OK(metcd_put(c, "/x", 2, "y", 1, 0, NULL));
	metcd_endpoint(c, buf, sizeof(buf));
	assert_string_equal(buf, eps[0]);
	metcd_free(c);

	const char *dead[] = {"http://127.0.0.1:1", "http://127.0.0.1:9"};
	c = client_with(dead, 2, 700, NULL, NULL, NULL);
	int64_t t0 = now_ms();
	assert_int_equal(metcd_put(c, "/x", 2, "y", 1, 0, NULL), -ETIMEDOUT);
	int64_t took = now_ms() - t0;
	printf("# dead endpoints: %s after %lld ms\n", metcd_error(), (long long)took);
	assert_true(took >= 600 && took < 700 + 1000);
	metcd_free(c);
}

static void test_watch(void **state)
{
	struct metcd *c = client(), *c2 = client();
	char *p = pfx("watch");
	char end[64], k1[64], k2[64];
	size_t pl = strlen(p), el = metcd_prefix_end(p, pl, end);
	snprintf(k1, sizeof(k1), "%sa", p);
	snprintf(k2, sizeof(k2), "%sb", p);
	struct wrec w = {.c = c, .key = p, .key_len = pl, .end = end, .end_len = el};
	pthread_mutex_init(&w.lock, NULL);
	w.w = metcd_watch_new();
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, watch_thread, &w), 0);
	wait_for(&w.created, 1, 3000);
	int64_t r1, r2;
	OK(metcd_put(c2, k1, strlen(k1), "v1", 2, 0, &r1));
	OK(metcd_put(c2, k1, strlen(k1), "v2", 2, 0, &r2));
	OK(metcd_delete(c2, k1, strlen(k1), NULL, 0, NULL, NULL));
	/* A batch: two puts in one txn. */
	struct metcd_op ops[] = {
	        {.kind = METCD_PUT, .key = k1, .key_len = strlen(k1), .value = "x", .value_len = 1},
	        {.kind = METCD_PUT, .key = k2, .key_len = strlen(k2), .value = "", .value_len = 0},
	};
	struct metcd_txn_result t;
	OK(metcd_txn(c2, NULL, 0, ops, 2, NULL, 0, &t));
	metcd_txn_result_free(&t);
	wait_for(&w.n_seen, 5, 3000);

	/* Stopped from this thread: it returns within 200 ms. */
	int64_t t0 = now_ms();
	metcd_watch_stop(w.w);
	pthread_join(th, NULL);
	assert_int_equal(w.ret, -ECANCELED);
	assert_true(w.ended_ms - t0 < 200);
	printf("# watch stop took %lld ms\n", (long long)(w.ended_ms - t0));

	assert_true(w.created_rev > 0 && w.created_rev < r1);
	assert_int_equal(w.n_ev, 5);
	assert_int_equal(w.ev[0].type, METCD_EV_PUT);
	assert_string_equal(w.ev[0].kv.key, k1);
	assert_string_equal(w.ev[0].kv.value, "v1");
	assert_int_equal(w.ev[0].kv.mod_revision, r1);
	assert_null(w.ev[0].prev_kv.key);
	assert_int_equal(w.ev[1].type, METCD_EV_PUT);
	assert_string_equal(w.ev[1].prev_kv.value, "v1");
	assert_int_equal(w.ev[1].kv.version, 2);
	assert_int_equal(w.ev[2].type, METCD_EV_DELETE);
	assert_null(w.ev[2].kv.value);
	assert_string_equal(w.ev[2].kv.key, k1);
	assert_true(w.ev[2].kv.mod_revision > r2);
	assert_string_equal(w.ev[2].prev_kv.value, "v2");
	assert_int_equal(w.ev[3].kv.mod_revision, w.ev[4].kv.mod_revision);
	assert_int_equal(w.ev_rev[3], w.ev_rev[4]);
	assert_int_equal(w.ev[4].kv.value_len, 0);
	assert_int_equal(w.n_batches, 4); /* the txn's two came together */
	wrec_free(&w);

	/* From a revision: replays; a stop before the start also counts. */
	struct wrec w2 = {.c = c, .key = k1, .key_len = strlen(k1), .start = r1};
	pthread_mutex_init(&w2.lock, NULL);
	w2.w = metcd_watch_new();
	assert_int_equal(pthread_create(&th, NULL, watch_thread, &w2), 0);
	wait_for(&w2.n_seen, 4, 3000);
	metcd_watch_stop(w2.w);
	pthread_join(th, NULL);
	assert_int_equal(w2.ret, -ECANCELED);
	assert_int_equal(w2.ev[0].kv.mod_revision, r1);
	wrec_free(&w2);

	/* Compacted: -ESTALE with the compaction's revision. */
	OK(metcd_compact(c, r2));
	struct wrec w3 = {.c = c, .key = k1, .key_len = strlen(k1), .start = r1};
	pthread_mutex_init(&w3.lock, NULL);
	w3.w = metcd_watch_new();
	watch_thread(&w3);
	assert_int_equal(w3.ret, -ESTALE);
	assert_int_equal(w3.compact, r2);
	wrec_free(&w3);

	/* Idle: nothing for 300 ms ends it with -ETIMEDOUT. */
	struct wrec w4 = {.c = c, .key = "/idle", .key_len = 5, .idle_ms = 300};
	pthread_mutex_init(&w4.lock, NULL);
	w4.w = metcd_watch_new();
	t0 = now_ms();
	watch_thread(&w4);
	assert_int_equal(w4.ret, -ETIMEDOUT);
	assert_true(w4.ended_ms - t0 >= 300 && w4.ended_ms - t0 < 1500);
	wrec_free(&w4);
	free(p);
	metcd_free(c);
	metcd_free(c2);
}

static void test_broken_server(void **state)
{
	struct fake f;
	struct metcd_range r;
	/* Not JSON: -EPROTO. */
	fake_start(&f, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", 0);
	struct metcd *c = fake_client(&f, 3000);
	assert_int_equal(metcd_range(c, "k", 1, NULL, 0, 0, 0, false, &r), -EPROTO);
	metcd_free(c);
	fake_stop(&f);
	/* An endless answer: cut at the bound, -EPROTO, not all of it read. */
	fake_start(&f, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"x\":\"", 80);
	c = fake_client(&f, 5000);
	assert_int_equal(metcd_range(c, "k", 1, NULL, 0, 0, 0, false, &r), -EPROTO);
	assert_non_null(strstr(metcd_error(), "answer over"));
	metcd_free(c);
	fake_stop(&f);
	/* A watch message that never ends: -EPROTO at the bound. */
	fake_start(&f, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"result\":{\"x\":\"", 40);
	c = fake_client(&f, 5000);
	struct wrec w = {.c = c, .key = "k", .key_len = 1};
	pthread_mutex_init(&w.lock, NULL);
	w.w = metcd_watch_new();
	watch_thread(&w);
	assert_int_equal(w.ret, -EPROTO);
	assert_non_null(strstr(metcd_error(), "message over"));
	wrec_free(&w);
	metcd_free(c);
	fake_stop(&f);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Timings (printed, loosely bounded): a put, a txn, and the watch's
 * latency from a put on another client to the callback. */
static void test_timings(void **state)
{
	enum { N = 200 };
	struct metcd *c = client(), *c2 = client();
	char *p = pfx("time");
	static double put_us[N], txn_us[N], lat_us[N];
	struct wrec w = {.c = c, .key = p, .key_len = strlen(p)};
	pthread_mutex_init(&w.lock, NULL);
	w.w = metcd_watch_new();
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, watch_thread, &w), 0);
	wait_for(&w.created, 1, 3000);
	for (int i = 0; i < N; i++) {
		double t0 = now_us();
		OK(metcd_put(c2, p, strlen(p), "v", 1, 0, NULL));
		put_us[i] = now_us() - t0;
		while (atomic_load(&w.n_seen) < i + 1 && now_us() - t0 < 3e6) {
			struct timespec d = {0, 20000};
			nanosleep(&d, NULL);
		}
		lat_us[i] = now_us() - t0;
		assert_int_equal(atomic_load(&w.n_seen), i + 1);
	}
	struct metcd_cmp cmp = {.key = p,
	                        .key_len = strlen(p),
	                        .target = METCD_VERSION,
	                        .result = METCD_GREATER,
	                        .number = 0};
	struct metcd_op op = {
	        .kind = METCD_PUT, .key = "/t2", .key_len = 3, .value = "v", .value_len = 1};
	for (int i = 0; i < N; i++) {
		struct metcd_txn_result t;
		double t0 = now_us();
		OK(metcd_txn(c2, &cmp, 1, &op, 1, NULL, 0, &t));
		txn_us[i] = now_us() - t0;
		metcd_txn_result_free(&t);
	}
	metcd_watch_stop(w.w);
	pthread_join(th, NULL);
	/* The watch saw puts; with only stored events in w.ev up to 64. */
	wrec_free(&w);
	qsort(put_us, N, sizeof(double), cmp_double);
	qsort(txn_us, N, sizeof(double), cmp_double);
	qsort(lat_us, N, sizeof(double), cmp_double);
	printf("# median over %d: put %.0f us, txn %.0f us, put to watch callback %.0f us "
	       "(p90 %.0f / %.0f / %.0f us)\n",
	       N, put_us[N / 2], txn_us[N / 2], lat_us[N / 2], put_us[N * 9 / 10],
	       txn_us[N * 9 / 10], lat_us[N * 9 / 10]);
	free(p);
	metcd_free(c);
	metcd_free(c2);
}

static void test_quota(void **state)
{
	struct metcd *c = client();
	size_t n = 256 * 1024;
	char *v = malloc(n);
	memset(v, 'q', n);
	int r = 0, i;
	OK(metcd_put(c, "/keep", 5, "kept", 4, 0, NULL));
	for (i = 0; i < 100 && r == 0; i++) {
		char k[32];
		snprintf(k, sizeof(k), "/fill/%d", i);
		r = metcd_put(c, k, strlen(k), v, n, 0, NULL);
	}
	printf("# quota: %d after %d puts: %s\n", r, i, metcd_error());
	assert_int_equal(r, -ENOSPC);
	assert_string_equal(metcd_error(), "etcdserver: mvcc: database space exceeded");
	struct metcd_range rg;
	OK(metcd_range(c, "/keep", 5, NULL, 0, 0, 0, false, &rg));
	assert_int_equal(rg.n, 1);
	assert_memory_equal(rg.kvs[0].value, "kept", 4);
	metcd_range_free(&rg);
	free(v);
	metcd_free(c);
}

static void test_auth(void **state)
{
	const char *pw = getenv("MALLAFS_ETCD_PASSWORD");
	assert_non_null(pw);
	struct metcd *c = client_with(eps, n_eps, 3000, "root", pw, NULL);
	OK(metcd_put(c, "/auth", 5, "a", 1, 0, NULL));
	/* --auth-token-ttl 1: the token expires; the client authenticates
	 * again by itself. */
	sleep_ms(2500);
	OK(metcd_put(c, "/auth", 5, "b", 1, 0, NULL));
	metcd_free(c);
	c = client_with(eps, n_eps, 3000, "root", "wrong", NULL);
	assert_int_equal(metcd_put(c, "/auth", 5, "c", 1, 0, NULL), -EACCES);
	printf("# wrong password: %s\n", metcd_error());
	metcd_free(c);
	c = client();
	assert_int_equal(metcd_put(c, "/auth", 5, "c", 1, 0, NULL), -EACCES);
	printf("# no user: %s\n", metcd_error());
	struct wrec w = {.c = c, .key = "/auth", .key_len = 5};
	pthread_mutex_init(&w.lock, NULL);
	w.w = metcd_watch_new();
	watch_thread(&w);
	assert_int_equal(w.ret, -EACCES);
	wrec_free(&w);
	metcd_free(c);
}

static void test_tls(void **state)
{
	const char *ca = getenv("MALLAFS_ETCD_CACERT");
	assert_non_null(ca);
	assert_non_null(strstr(eps[0], "https://"));
	struct metcd *c = client_with(eps, n_eps, 3000, NULL, NULL, ca);
	OK(metcd_put(c, "/tls", 4, "t", 1, 0, NULL));
	struct wrec w = {.c = c, .key = "/tls", .key_len = 4, .idle_ms = 200};
	pthread_mutex_init(&w.lock, NULL);
	w.w = metcd_watch_new();
	watch_thread(&w);
	assert_int_equal(w.created, 1);
	assert_int_equal(w.ret, -ETIMEDOUT);
	wrec_free(&w);
	metcd_free(c);
	c = client_with(eps, n_eps, 800, NULL, NULL, NULL);
	assert_int_equal(metcd_put(c, "/tls", 4, "t", 1, 0, NULL), -ETIMEDOUT);
	printf("# without the CA: %s\n", metcd_error());
	metcd_free(c);
}

static bool exists(const char *env)
{
	const char *p = getenv(env);
	return p && access(p, F_OK) == 0;
}

static void test_cluster(void **state)
{
	assert_int_equal(n_eps, 3);
	const char *ready = getenv("MALLAFS_ETCD_READY");
	assert_non_null(ready);
	struct metcd *c = client_with(eps, n_eps, 2000, NULL, NULL, NULL);
	int64_t last_ok = now_ms(), worst = 0, killed_at = 0, end = now_ms() + 20000;
	int after = 0, i = 0;
	FILE *f = fopen(ready, "w");
	assert_non_null(f);
	fclose(f);
	while (now_ms() < end && after < 20) {
		char k[32];
		snprintf(k, sizeof(k), "/cl/%d", i++ % 10);
		int r = metcd_put(c, k, strlen(k), "v", 1, 0, NULL);
		int64_t t = now_ms();
		if (killed_at == 0 && exists("MALLAFS_ETCD_KILLED"))
			killed_at = t;
		if (r == 0) {
			if (t - last_ok > worst)
				worst = t - last_ok;
			last_ok = t;
			if (killed_at)
				after++;
		} else {
			printf("# put: %d %s\n", r, metcd_error());
		}
		sleep_ms(20);
	}
	char buf[100];
	metcd_endpoint(c, buf, sizeof(buf));
	printf("# cluster: longest gap between puts %lld ms; now on %s\n", (long long)worst, buf);
	assert_true(killed_at > 0);
	assert_int_equal(after, 20);
	assert_true(worst < 5000);
	metcd_free(c);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "basic";
	const char *env = getenv("MALLAFS_ETCD");
	if (env == NULL || *env == '\0') {
		fprintf(stderr, "MALLAFS_ETCD (endpoints) is not set: run through run_unit.sh\n");
		return 1;
	}
	eps_buf = strdup(env);
	for (char *s = eps_buf, *tok; n_eps < 8 && (tok = strsep(&s, ",")) != NULL;)
		eps[n_eps++] = tok;
	setvbuf(stdout, NULL, _IOLBF, 0);
	const struct CMUnitTest basic[] = {
	        cmocka_unit_test(test_new_rejects), cmocka_unit_test(test_b64_prefix),
	        cmocka_unit_test(test_put_range),   cmocka_unit_test(test_txn),
	        cmocka_unit_test(test_lease),       cmocka_unit_test(test_too_big),
	        cmocka_unit_test(test_failover),    cmocka_unit_test(test_watch),
	        cmocka_unit_test(test_timings),     cmocka_unit_test(test_broken_server),
	};
	const struct CMUnitTest quota[] = {cmocka_unit_test(test_quota)};
	const struct CMUnitTest auth[] = {cmocka_unit_test(test_auth)};
	const struct CMUnitTest tls[] = {cmocka_unit_test(test_tls)};
	const struct CMUnitTest cluster[] = {cmocka_unit_test(test_cluster)};
	int r;
	if (strcmp(mode, "basic") == 0)
		r = cmocka_run_group_tests(basic, NULL, NULL);
	else if (strcmp(mode, "quota") == 0)
		r = cmocka_run_group_tests(quota, NULL, NULL);
	else if (strcmp(mode, "auth") == 0)
		r = cmocka_run_group_tests(auth, NULL, NULL);
	else if (strcmp(mode, "tls") == 0)
		r = cmocka_run_group_tests(tls, NULL, NULL);
	else if (strcmp(mode, "cluster") == 0)
		r = cmocka_run_group_tests(cluster, NULL, NULL);
	else {
		fprintf(stderr, "unknown mode %s\n", mode);
		r = 1;
	}
	free(eps_buf);
	return r;
}
