/* SPDX-License-Identifier: MIT */
/* The node configuration (core/nodecfg.c, on core/kv.c): a script of what
 * users do under config/ (fuzz.h has the line format), replayed on a fresh
 * store with a change feed.
 *
 *     a APP              mkdir config/APP      A APP             rmdir it
 *     c APP KEY          create (touch)        d APP KEY         rm
 *     w APP KEY OFF TEXT pwrite at OFF         + APP KEY TEXT    >> (append)
 *     = APP KEY TEXT     > (replace)           t APP KEY SIZE    truncate
 *     m APP KEY APP2 KEY2  mv                  r APP KEY OFF LEN pread
 *     s APP KEY          stat                  S APP             stat an app
 *     l APP              ls config/APP         L                 ls config
 *
 * Each call's errno must be one its header promises, and each change must
 * read back: written bytes, sizes, renamed values, removed keys.
 *
 * Offsets and sizes from FUZZ_MAX_OFFSET to MKV_MAX_VALUE are folded
 * below FUZZ_MAX_OFFSET: such a value is legal and merely large (a gigabyte
 * in memory would stop the fuzzer, not find a bug), while those past
 * MKV_MAX_VALUE stay as they are and must be refused with EFBIG. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "fuzz.h"
#include "kv.h"
#include "nodecfg.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_OFFSET ((uint64_t)1 << 16)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

static uint64_t offset(const struct fuzz_arg *a)
{
	uint64_t v = fuzz_u64(a, 0);
	if (v >= FUZZ_MAX_OFFSET && v <= MKV_MAX_VALUE)
		v %= FUZZ_MAX_OFFSET;
	return v;
}

/* The whole value of APP/KEY (malloc'd), or NULL with *ret_len 0 when absent. */
static char *get(struct mnodecfg *nc, const char *app, const char *key, size_t *ret_len)
{
	struct mkv_stat st;
	*ret_len = 0;
	if (mnodecfg_stat(nc, app, key, &st) < 0)
		return NULL;
	char *v = malloc(st.size + 1);
	FUZZ_CHECK(v, "out of memory");
	ssize_t n = mnodecfg_read(nc, app, key, 0, v, st.size + 1);
	FUZZ_CHECK(n >= 0 && (uint64_t)n == st.size, "read %s/%s: %zd of %llu", app, key, n,
	           (unsigned long long)st.size);
	*ret_len = (size_t)n;
	return v;
}

static void check_size(struct mnodecfg *nc, const char *app, const char *key, uint64_t want)
{
	struct mkv_stat st;
	FUZZ_CHECK(mnodecfg_stat(nc, app, key, &st) == 0, "stat %s/%s", app, key);
	FUZZ_CHECK(st.size == want, "%s/%s: size %llu, want %llu", app, key,
	           (unsigned long long)st.size, (unsigned long long)want);
}

static void write_op(struct mnodecfg *nc, const struct fuzz_op *o, unsigned flags)
{
	const struct fuzz_arg *a = o->args;
	const struct fuzz_arg *t = flags ? &a[2] : &a[3];
	uint64_t off = flags ? 0 : offset(&a[2]);
	size_t before = 0;
	char *old = get(nc, a[0].s, a[1].s, &before);
	char *data = fuzz_exact(t);
	ssize_t n = mnodecfg_write(nc, a[0].s, a[1].s, off, data, t->len, flags);
	FUZZ_EXPECT("write", n, -EINVAL, -ENOENT, -EFBIG);
	FUZZ_CHECK(n < 0 || off <= MKV_MAX_VALUE, "a write at %llu: %zd", (unsigned long long)off,
	           n);
	if (n < 0) {
		/* A refused write changes nothing. */
		size_t after = 0;
		char *now = get(nc, a[0].s, a[1].s, &after);
		FUZZ_CHECK(after == before && (!after || memcmp(old, now, after) == 0),
		           "a refused write (%zd) changed %s/%s", n, a[0].s, a[1].s);
		free(now);
		goto out;
	}
	FUZZ_CHECK((size_t)n == t->len, "wrote %zd of %zu", n, t->len);
	if (flags & MKV_APPEND)
		off = before;
	/* As pwrite: an empty write extends nothing. */
	uint64_t want = flags & MKV_REPLACE               ? off + t->len
	                : t->len && off + t->len > before ? off + t->len
	                                                  : before;
	check_size(nc, a[0].s, a[1].s, want);
	char *back = malloc(t->len + 1);
	FUZZ_CHECK(back, "out of memory");
	n = mnodecfg_read(nc, a[0].s, a[1].s, off, back, t->len);
	FUZZ_CHECK(n == (ssize_t)t->len && (!n || memcmp(back, t->s, t->len) == 0),
	           "%s/%s does not read back what was written", a[0].s, a[1].s);
	free(back);
out:
	free(data);
	free(old);
}

static void rename_op(struct mnodecfg *nc, const struct fuzz_op *o)
{
	const struct fuzz_arg *a = o->args;
	size_t len = 0, got = 0;
	char *v = get(nc, a[0].s, a[1].s, &len);
	int r = mnodecfg_rename(nc, a[0].s, a[1].s, a[2].s, a[3].s);
	FUZZ_EXPECT("rename", r, -EINVAL, -ENOENT);
	if (r == 0) {
		char *moved = get(nc, a[2].s, a[3].s, &got);
		FUZZ_CHECK(moved && got == len && (!len || memcmp(v, moved, len) == 0),
		           "%s/%s -> %s/%s changed the value", a[0].s, a[1].s, a[2].s, a[3].s);
		bool same = strcmp(a[0].s, a[2].s) == 0 && strcmp(a[1].s, a[3].s) == 0;
		FUZZ_CHECK(same || mnodecfg_stat(nc, a[0].s, a[1].s, NULL) == -ENOENT,
		           "%s/%s still there after mv", a[0].s, a[1].s);
		free(moved);
	}
	free(v);
}

static int count_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	FUZZ_CHECK(mu_name_check_str(name, MU_NAME_FILE) == 0, "listed '%s'", name);
	(*(size_t *)arg)++;
	return 0;
}

static void run_op(void *ctx, const struct fuzz_op *o)
{
	struct mnodecfg *nc = ctx;
	const struct fuzz_arg *a = o->args;
	struct mkv_stat st;
	size_t n = 0;
	char buf[256];
	int r;

	switch (o->op) {
	case 'a':
		FUZZ_EXPECT("app create", mnodecfg_app_create(nc, a[0].s), -EINVAL, -EEXIST);
		break;
	case 'A':
		FUZZ_EXPECT("app destroy", mnodecfg_app_destroy(nc, a[0].s), -ENOENT, -ENOTEMPTY);
		break;
	case 'c':
		FUZZ_EXPECT("create", mnodecfg_create(nc, a[0].s, a[1].s), -EINVAL, -ENOENT,
		            -EEXIST);
		break;
	case 'd':
		r = mnodecfg_delete(nc, a[0].s, a[1].s);
		FUZZ_EXPECT("delete", r, -EINVAL, -ENOENT);
		FUZZ_CHECK(mnodecfg_stat(nc, a[0].s, a[1].s, NULL) < 0, "%s/%s still there", a[0].s,
		           a[1].s);
		break;
	case 'w':
		write_op(nc, o, 0);
		break;
	case '+':
		write_op(nc, o, MKV_APPEND);
		break;
	case '=':
		write_op(nc, o, MKV_REPLACE);
		break;
	case 't': {
		uint64_t size = offset(&a[2]);
		r = mnodecfg_truncate(nc, a[0].s, a[1].s, size);
		FUZZ_EXPECT("truncate", r, -EINVAL, -ENOENT, -EFBIG);
		FUZZ_CHECK(r < 0 || size <= MKV_MAX_VALUE, "truncate to %llu",
		           (unsigned long long)size);
		if (r == 0)
			check_size(nc, a[0].s, a[1].s, size);
		break;
	}
	case 'm':
		rename_op(nc, o);
		break;
	case 'r': {
		uint64_t len = fuzz_u64(&a[3], 0);
		ssize_t got = mnodecfg_read(nc, a[0].s, a[1].s, offset(&a[2]), buf,
		                            len < sizeof(buf) ? len : sizeof(buf));
		FUZZ_EXPECT("read", got, -EINVAL, -ENOENT);
		break;
	}
	case 's':
		FUZZ_EXPECT("stat", mnodecfg_stat(nc, a[0].s, a[1].s, &st), -EINVAL, -ENOENT);
		break;
	case 'S':
		FUZZ_EXPECT("app stat", mnodecfg_app_stat(nc, a[0].s, &st), -ENOENT);
		break;
	case 'l':
		r = mnodecfg_list(nc, a[0].s, 0, count_cb, &n);
		FUZZ_EXPECT("list", r, -ENOENT);
		if (r == 0) {
			FUZZ_CHECK(mnodecfg_app_stat(nc, a[0].s, &st) == 0 && st.size == n,
			           "config/%s lists %zu keys", a[0].s, n);
		}
		break;
	case 'L':
		FUZZ_EXPECT("app list", mnodecfg_app_list(nc, 0, count_cb, &n));
		break;
	default:
		break;
	}
}

/* What each op takes. */
static const struct fuzz_op_spec ops[] = {
        {'a', 1, false}, {'A', 1, false}, {'c', 2, false}, {'d', 2, false}, {'w', 4, true},
        {'+', 3, true},  {'=', 3, true},  {'t', 3, false}, {'m', 4, false}, {'r', 4, false},
        {'s', 2, false}, {'S', 1, false}, {'l', 1, false}, {'L', 0, false}, {'\0', 0, false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mev_ring *ring = mev_ring_new(16);
	FUZZ_CHECK(ring, "mev_ring_new");
	struct mnodecfg *nc = mnodecfg_new(ring);
	FUZZ_CHECK(nc, "mnodecfg_new");

	fuzz_replay(data, size, ops, run_op, nc);
	fuzz_read_feed(ring);
	mnodecfg_free(nc);
	mev_ring_free(ring);
	return 0;
}
