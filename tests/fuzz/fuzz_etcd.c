/* SPDX-License-Identifier: MIT */
/* What etcd sends (cluster/etcd_json.c, etcd.c, etcd_watch.c): JSON from
 * the network, parsed without a server.
 *
 * Input: one header byte H, then H & 7 chunk sizes (one byte each, 0
 * meaning 256), then the body. The body is
 *   - an answer to a unary call (HTTP 200, or 503 when H & 8): parsed
 *     as the calls parse it (metcd_j_answer), then read as a range, a
 *     txn, a lease grant and a keepalive; its text also goes through the
 *     error mapping;
 *   - the watch stream: fed whole, and again in chunks of the sizes given
 *     (cycled). Both feeds must hand the same messages to the callbacks
 *     and end the same way: a message split anywhere reads the same.
 * Every key and value handed on is NUL-terminated after its length; every
 * error is one of the errnos the client promises. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_i.h"
#include "fuzz.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

/* What the client's calls may return besides 0. */
static void check_errno(const char *what, int r)
{
	FUZZ_EXPECT(what, r, -EPROTO, -EIO, -ETIMEDOUT, -EFBIG, -ENOSPC, -ESTALE, -ENOENT, -EACCES);
}

static void check_kv(const struct metcd_kv *kv, bool value)
{
	FUZZ_CHECK(kv->key && kv->key[kv->key_len] == '\0', "a key not NUL-terminated");
	if (value)
		FUZZ_CHECK(kv->value && kv->value[kv->value_len] == '\0',
		           "a value not NUL-terminated");
}

static void check_range(const struct metcd_range *rg)
{
	for (size_t i = 0; i < rg->n; i++)
		check_kv(&rg->kvs[i], true);
}

static void answers(const char *text, long status)
{
	enum metcd_retry retry;
	struct json_object *o = NULL;
	int r = metcd_j_answer("fuzz", text, status, &retry, &o);
	check_errno("answer", r);
	FUZZ_CHECK((r == 0) == (o != NULL), "answer: %d with %p", r, (void *)o);
	FUZZ_CHECK(r == 0 || o == NULL, "an object with an error");
	if (o == NULL)
		return;

	struct metcd_range rg;
	r = metcd_j_range(o, &rg);
	check_errno("range", r);
	FUZZ_CHECK(r == 0 || (rg.kvs == NULL && rg.n == 0), "range: %d with entries", r);
	check_range(&rg);
	metcd_range_free(&rg);

	struct metcd_txn_result t;
	memset(&t, 0, sizeof(t));
	r = metcd_j_txn(o, &t);
	check_errno("txn", r);
	if (r == 0)
		for (size_t i = 0; i < t.n_gets; i++)
			check_range(&t.gets[i]);
	metcd_txn_result_free(&t);

	int64_t v = 0;
	r = metcd_j_lease_grant(o, &v);
	check_errno("lease grant", r);
	FUZZ_CHECK(r < 0 || v != 0, "a lease of ID 0");
	r = metcd_j_lease_keepalive(o, 1, &v);
	check_errno("keepalive", r);
	FUZZ_CHECK(r < 0 || v > 0, "a keepalive of TTL %lld", (long long)v);
	json_object_put(o);
}

/* ---- the watch stream ---- */

/* What the callbacks saw, as a hash of everything handed on. */
struct seen {
	uint64_t hash;
	size_t calls;
};

static void mix(struct seen *s, const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++)
		s->hash = (s->hash ^ b[i]) * 0x100000001b3ULL;
	s->hash = (s->hash ^ len) * 0x100000001b3ULL;
}

static void on_created(void *arg, int64_t revision)
{
	struct seen *s = arg;
	s->calls++;
	mix(s, "c", 1);
	mix(s, &revision, sizeof(revision));
}

static void mix_kv(struct seen *s, const struct metcd_kv *kv)
{
	mix(s, kv->key ? kv->key : "", kv->key ? kv->key_len : 0);
	mix(s, kv->value ? kv->value : "", kv->value ? kv->value_len : 0);
	int64_t nums[] = {kv->create_revision, kv->mod_revision, kv->version, kv->lease};
	mix(s, nums, sizeof(nums));
}

static int on_events(void *arg, const struct metcd_event *ev, size_t n, int64_t revision)
{
	struct seen *s = arg;
	s->calls++;
	mix(s, "e", 1);
	mix(s, &revision, sizeof(revision));
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(ev[i].type == METCD_EV_PUT || ev[i].type == METCD_EV_DELETE,
		           "event type %d", (int)ev[i].type);
		check_kv(&ev[i].kv, ev[i].type == METCD_EV_PUT);
		FUZZ_CHECK(ev[i].type == METCD_EV_PUT ||
		                   (ev[i].kv.value == NULL && ev[i].kv.value_len == 0),
		           "a deletion with a value");
		if (ev[i].prev_kv.key)
			check_kv(&ev[i].prev_kv, true);
		mix(s, &ev[i].type, sizeof(ev[i].type));
		mix_kv(s, &ev[i].kv);
		mix_kv(s, &ev[i].prev_kv);
	}
	return 0;
}

/* Feeds body in chunks of the sizes given (none: whole); the result, and
 * what the callbacks saw in *s. */
static int stream(const char *body, size_t len, const uint8_t *sizes, size_t n_sizes,
                  struct seen *s, bool *created)
{
	const struct metcd_watch_cb cb = {.created = on_created, .events = on_events};
	struct metcd_wstream x = {.cb = &cb, .arg = s, .ep = "fuzz"};
	memset(s, 0, sizeof(*s));
	s->hash = 0xcbf29ce484222325ULL;
	int r = 0;
	for (size_t off = 0, i = 0; off < len && r == 0; i++) {
		size_t chunk = n_sizes ? (sizes[i % n_sizes] ? sizes[i % n_sizes] : 256) : len;
		if (chunk > len - off)
			chunk = len - off;
		r = metcd_wstream_feed(&x, body + off, chunk);
		FUZZ_CHECK(r == x.result, "feed: %d, result %d", r, x.result);
		off += chunk;
	}
	if (r == 0)
		r = metcd_wstream_end(&x);
	FUZZ_CHECK(r == x.result, "end: %d, result %d", r, x.result);
	metcd_wstream_fini(&x);
	*created = x.created;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t h = data[0];
	size_t n_sizes = h & 7;
	if (size < 1 + n_sizes)
		return 0;
	const uint8_t *sizes = data + 1;
	size_t len = size - 1 - n_sizes;
	/* Exactly the body, then the NUL the answer's buffer has. */
	char *body = malloc(len + 1);
	FUZZ_CHECK(body, "out of memory");
	memcpy(body, data + 1 + n_sizes, len);
	body[len] = '\0';

	answers(body, h & 8 ? 503 : 200);
	enum metcd_retry retry;
	check_errno("map_error", metcd_map_error(body, h >> 4, &retry));

	/* Whole, in the chunks given, and byte by byte. */
	static const uint8_t one = 1;
	struct seen whole, split;
	bool cw, cs;
	int rw = stream(body, len, NULL, 0, &whole, &cw);
	check_errno("watch", rw);
	for (int pass = 0; pass < 2; pass++) {
		int rs = pass ? stream(body, len, &one, 1, &split, &cs)
		              : stream(body, len, sizes, n_sizes, &split, &cs);
		/* Each line is parsed whole, wherever the chunks end. */
		FUZZ_CHECK(rw == rs, "the stream whole: %d, in chunks (%s): %d", rw,
		           pass ? "bytes" : "given", rs);
		FUZZ_CHECK(whole.calls == split.calls && whole.hash == split.hash && cw == cs,
		           "the stream whole and in chunks (%s) differ: %zu and %zu calls",
		           pass ? "bytes" : "given", whole.calls, split.calls);
	}
	free(body);
	return 0;
}
