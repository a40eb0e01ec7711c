/* SPDX-License-Identifier: MIT */
/* A key-value table (kv.h): entries of one allocation each at the positions
 * of an mslots table, found through the hash index of kv_index.c. The
 * layout is in kv_i.h. Every change that adds or removes an entry moves a
 * resize of the index on by a bounded step. */
#include "kv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kv_i.h"
#include "util.h"

/* An out-of-line value's first block: its growth goes on by doubling. */
#define KV_MIN_OUTLINE_CAP (2 * KV_INLINE_MAX)
#define NS_PER_SEC 1000000000LL

_Static_assert(KV_HDR <= 35, "a 9-byte name and a 12-byte value fit one 64-byte malloc chunk");

int mkv_account_charge(struct mkv_account *a, uint64_t n)
{
	if (!a || n == 0)
		return 0;
	uint64_t limit = atomic_load_explicit(&a->limit, memory_order_relaxed);
	uint64_t used = atomic_load_explicit(&a->used, memory_order_relaxed);
	do {
		if (used > UINT64_MAX - n || (limit && used + n > limit))
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak_explicit(
	        &a->used, &used, used + n, memory_order_relaxed, memory_order_relaxed));
	return 0;
}

void mkv_account_release(struct mkv_account *a, uint64_t n)
{
	if (a && n)
		atomic_fetch_sub_explicit(&a->used, n, memory_order_relaxed);
}

uint64_t mkv_account_used(const struct mkv_account *a)
{
	return a ? atomic_load_explicit(&a->used, memory_order_relaxed) : 0;
}

uint64_t mkv_account_limit(const struct mkv_account *a)
{
	return a ? atomic_load_explicit(&a->limit, memory_order_relaxed) : 0;
}

/* The table's own count and its account move together. */
static int charge(struct mkv *kv, uint64_t n)
{
	int r = mkv_account_charge(kv->acct, n);
	if (r == 0)
		kv->bytes += n;
	return r;
}

static void release(struct mkv *kv, uint64_t n)
{
	mkv_account_release(kv->acct, n);
	kv->bytes -= n;
}

/* ---- entries ---- */

/* A time as ns since the epoch, or as seconds (setting flag) when it is
 * outside what 64 bits of ns hold (touch can set any time). */
static int64_t time_pack(const struct timespec *ts, uint8_t *flags, uint8_t flag)
{
	if (ts->tv_sec >= INT64_MAX / NS_PER_SEC || ts->tv_sec <= INT64_MIN / NS_PER_SEC ||
	    ts->tv_nsec < 0 || ts->tv_nsec >= NS_PER_SEC) {
		*flags |= flag;
		return ts->tv_sec;
	}
	*flags &= (uint8_t)~flag;
	return (int64_t)ts->tv_sec * NS_PER_SEC + ts->tv_nsec;
}

static struct timespec time_unpack(int64_t t, uint8_t flags, uint8_t flag)
{
	struct timespec ts = {.tv_sec = t, .tv_nsec = 0};
	if (flags & flag)
		return ts;
	ts.tv_sec = t / NS_PER_SEC;
	ts.tv_nsec = t % NS_PER_SEC;
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += NS_PER_SEC;
		ts.tv_sec--;
	}
	return ts;
}

static void set_ctime_now(struct kv_ent *e)
{
	struct timespec now;
	mu_now_real(&now);
	e->ctime = time_pack(&now, &e->flags, KV_CTIME_SEC);
}

static void set_times_now(struct kv_ent *e)
{
	struct timespec now;
	mu_now_real(&now);
	e->mtime = time_pack(&now, &e->flags, KV_MTIME_SEC);
	e->ctime = time_pack(&now, &e->flags, KV_CTIME_SEC);
}

static size_t ent_size(size_t klen, size_t vpart)
{
	return KV_HDR + klen + 1 + vpart;
}

/* What follows the name: the inline value, or the outline. */
static size_t ent_vpart(const struct kv_ent *e)
{
	return e->flags & KV_OUTLINE ? sizeof(struct kv_outline) : e->len;
}

static void set_outline(struct kv_ent *e, struct kv_outline o)
{
	memcpy(e->data + e->klen + 1, &o, sizeof(o));
}

/* A new entry named key with room for an inline value of room bytes (its
 * length stays 0) and times now. */
static struct kv_ent *ent_new(const char *key, size_t klen, size_t room)
{
	struct kv_ent *e = malloc(ent_size(klen, room));
	if (!e)
		return NULL;
	memset(e, 0, KV_HDR);
	e->klen = (uint16_t)klen;
	memcpy(e->data, key, klen);
	e->data[klen] = '\0';
	set_times_now(e);
	return e;
}

static void ent_free(struct kv_ent *e)
{
	if (!e)
		return;
	if (e->flags & KV_OUTLINE)
		free(kv_outline(e).p);
	free(e);
}

static uint64_t ent_bytes(const struct kv_ent *e)
{
	return (uint64_t)e->klen + e->len;
}

static int outline_alloc(struct kv_outline *o, size_t need)
{
	size_t cap = KV_MIN_OUTLINE_CAP;
	while (cap < need)
		cap *= 2;
	o->p = malloc(cap);
	if (!o->p) {
		/* Near the size limit doubling may overshoot what memory allows. */
		cap = need;
		o->p = malloc(cap);
	}
	o->cap = cap;
	return o->p ? 0 : -ENOMEM;
}

/* Room for need bytes of value. The entry may move: *ep is set to it on
 * success, and stays (unchanged) on failure. keep=false skips copying bytes
 * the caller is about to overwrite. Bytes past the length are the caller's
 * to fill. */
static int value_reserve(struct kv_ent **ep, size_t need, bool keep)
{
	struct kv_ent *e = *ep;
	if (!(e->flags & KV_OUTLINE) && need <= KV_INLINE_MAX) {
		if (need <= e->len)
			return 0;
		struct kv_ent *ne = realloc(e, ent_size(e->klen, need));
		if (!ne)
			return -ENOMEM;
		*ep = ne;
		return 0;
	}
	if (!(e->flags & KV_OUTLINE)) {
		struct kv_outline o;
		if (outline_alloc(&o, need) < 0)
			return -ENOMEM;
		if (keep)
			memcpy(o.p, kv_val(e), e->len);
		struct kv_ent *ne = realloc(e, ent_size(e->klen, sizeof(o)));
		if (!ne) {
			free(o.p);
			return -ENOMEM;
		}
		ne->flags |= KV_OUTLINE;
		set_outline(ne, o);
		*ep = ne;
		return 0;
	}
	struct kv_outline o = kv_outline(e);
	if (need <= o.cap)
		return 0;
	size_t cap = o.cap;
	while (cap < need)
		cap *= 2;
	char *p;
	if (keep) {
		p = realloc(o.p, cap);
		if (!p) {
			cap = need;
			p = realloc(o.p, cap);
		}
	} else {
		p = malloc(cap);
		if (!p) {
			cap = need;
			p = malloc(cap);
		}
		if (p)
			free(o.p);
	}
	if (!p)
		return -ENOMEM;
	o.p = p;
	o.cap = cap;
	set_outline(e, o);
	return 0;
}

/* Gives memory back after the value shrank (its length is set already): a
 * value that fits comes back inline. Returns the entry, which may have
 * moved; failing to allocate keeps it as it was. */
static struct kv_ent *value_trim(struct kv_ent *e)
{
	if (!(e->flags & KV_OUTLINE)) {
		struct kv_ent *ne = realloc(e, ent_size(e->klen, e->len));
		return ne ? ne : e;
	}
	struct kv_outline o = kv_outline(e);
	if (e->len <= KV_INLINE_MAX) {
		struct kv_ent *ne = malloc(ent_size(e->klen, e->len));
		if (!ne)
			return e;
		memcpy(ne, e, ent_size(e->klen, 0));
		ne->flags &= (uint8_t)~KV_OUTLINE;
		memcpy(ne->data + ne->klen + 1, o.p, e->len);
		free(o.p);
		free(e);
		return ne;
	}
	if (o.cap > 4 * KV_MIN_OUTLINE_CAP && e->len < o.cap / 4) {
		char *p = realloc(o.p, (size_t)e->len * 2);
		if (p) {
			o.p = p;
			o.cap = (size_t)e->len * 2;
			set_outline(e, o);
		}
	}
	return e;
}

/* The value changed: new times, a new version. */
static void touch(struct mkv *kv, struct kv_ent *e)
{
	set_times_now(e);
	e->ver = ++kv->last_ver;
}

static void fill_stat(const struct mkv *kv, uint32_t pos, const struct kv_ent *e,
                      struct mkv_stat *st)
{
	st->id = mslots_id(kv->slots, pos);
	st->cookie = mslots_cookie(pos);
	st->size = e->len;
	st->mtime = time_unpack(e->mtime, e->flags, KV_MTIME_SEC);
	st->ctime = time_unpack(e->ctime, e->flags, KV_CTIME_SEC);
	st->ver = e->ver;
}

/* ---- the table ---- */

/* Puts e (named, hash h) in the table: 0 and *ret_pos, or -ENOMEM, or
 * -ENOSPC when the table holds all the entries it can. */
static int insert(struct mkv *kv, struct kv_ent *e, uint64_t h, uint32_t *ret_pos)
{
	int r = mslots_add(kv->slots, e, ret_pos);
	if (r < 0)
		return r;
	kv_index_link(kv, *ret_pos, h);
	e->ver = ++kv->last_ver;
	kv_index_step(kv);
	return 0;
}

static void remove_entry(struct mkv *kv, uint32_t pos)
{
	struct kv_ent *e = kv_ent(kv, pos);
	kv_index_unlink(kv, pos, kv_hash(e->data, e->klen));
	mslots_del(kv->slots, pos);
	release(kv, ent_bytes(e));
	ent_free(e);
	kv_index_step(kv);
}

/* The position of key, or UINT32_MAX. */
static uint32_t lookup(const struct mkv *kv, const char *key)
{
	if (!kv || !key)
		return UINT32_MAX;
	size_t klen = strlen(key);
	if (klen > MKV_MAX_KEY)
		return UINT32_MAX;
	return kv_index_find(kv, key, klen, kv_hash(key, klen));
}

struct mkv *mkv_new(void)
{
	struct mkv *kv = calloc(1, sizeof(*kv));
	if (!kv)
		return NULL;
	kv->slots = mslots_new();
	/* Ids below 2^MKV_ID_BITS: 2^26 positions (64M keys), and a position
	 * retired after 2^19 uses. */
	if (!kv->slots || mslots_limit(kv->slots, MKV_POS_BITS, MKV_ID_BITS - MKV_POS_BITS) < 0 ||
	    kv_index_init(kv) < 0) {
		mslots_free(kv->slots);
		free(kv);
		return NULL;
	}
	return kv;
}

void mkv_free(struct mkv *kv)
{
	if (!kv)
		return;
	uint32_t pos = 0;
	while (mslots_next(kv->slots, pos, &pos))
		ent_free(mslots_del(kv->slots, pos++));
	mslots_free(kv->slots);
	kv_index_free(kv);
	mkv_account_release(kv->acct, kv->bytes);
	free(kv);
}

size_t mkv_count(const struct mkv *kv)
{
	return kv ? mslots_count(kv->slots) : 0;
}

uint64_t mkv_bytes(const struct mkv *kv)
{
	return kv ? kv->bytes : 0;
}

void mkv_set_account(struct mkv *kv, struct mkv_account *a)
{
	if (!kv || kv->acct == a)
		return;
	mkv_account_release(kv->acct, kv->bytes);
	if (a)
		atomic_fetch_add_explicit(&a->used, kv->bytes, memory_order_relaxed);
	kv->acct = a;
}

size_t mkv_longest_chain(const struct mkv *kv)
{
	return kv ? kv_index_longest(kv) : 0;
}

int mkv_stat(const struct mkv *kv, const char *key, struct mkv_stat *ret)
{
	uint32_t pos = lookup(kv, key);
	if (pos == UINT32_MAX)
		return -ENOENT;
	if (ret)
		fill_stat(kv, pos, kv_ent(kv, pos), ret);
	return 0;
}

ssize_t mkv_read(const struct mkv *kv, const char *key, uint64_t off, void *buf, size_t len)
{
	uint32_t pos = lookup(kv, key);
	if (pos == UINT32_MAX)
		return -ENOENT;
	const struct kv_ent *e = kv_ent(kv, pos);
	if (off >= e->len || len == 0)
		return 0;
	size_t n = e->len - (size_t)off;
	if (n > len)
		n = len;
	memcpy(buf, kv_val(e) + off, n);
	return (ssize_t)n;
}

int mkv_get(const struct mkv *kv, const char *key, char **ret, size_t *ret_len)
{
	uint32_t pos = lookup(kv, key);
	if (pos == UINT32_MAX)
		return -ENOENT;
	const struct kv_ent *e = kv_ent(kv, pos);
	char *p = mu_memdup0(kv_val(e), e->len);
	if (!p)
		return -ENOMEM;
	*ret = p;
	if (ret_len)
		*ret_len = e->len;
	return 0;
}

ssize_t mkv_write(struct mkv *kv, const char *key, uint64_t off, const void *data, size_t len,
                  unsigned flags)
{
	if (!kv || !key || (len && !data))
		return -EINVAL;
	if (len > MKV_MAX_VALUE)
		return -EFBIG;
	size_t klen = strlen(key);
	if (klen > MKV_MAX_KEY)
		return -ENAMETOOLONG;

	uint64_t h = kv_hash(key, klen);
	uint32_t pos = kv_index_find(kv, key, klen, h);
	struct kv_ent *e = pos == UINT32_MAX ? NULL : kv_ent(kv, pos);
	bool replace = flags & MKV_REPLACE;
	uint64_t cur = e ? e->len : 0;
	uint64_t start = (flags & MKV_APPEND) && !replace ? cur : off;
	if (start > MKV_MAX_VALUE - len)
		return -EFBIG;
	uint64_t end = start + len;
	uint64_t new_len;
	if (replace)
		new_len = end;
	else if (len == 0)
		new_len = cur; /* as pwrite(fd, buf, 0, off): no extension, no change */
	else
		new_len = end > cur ? end : cur;

	/* What the write adds is charged before anything is allocated; what
	 * it gives back (a shorter put) is released once it is done. */
	uint64_t grow = (e ? 0 : klen) + (new_len > cur ? new_len - cur : 0);
	int r = charge(kv, grow);
	if (r < 0)
		return r;
	if (!e) {
		/* A small value is made in place: one allocation. */
		e = ent_new(key, klen, new_len <= KV_INLINE_MAX ? (size_t)new_len : 0);
		if (e && new_len > KV_INLINE_MAX && value_reserve(&e, (size_t)new_len, false) < 0) {
			ent_free(e);
			e = NULL;
		}
		r = e ? insert(kv, e, h, &pos) : -ENOMEM;
		if (r < 0) {
			ent_free(e);
			release(kv, grow);
			return r;
		}
	} else {
		if (value_reserve(&e, (size_t)new_len, !replace) < 0) {
			release(kv, grow);
			return -ENOMEM;
		}
		mslots_set(kv->slots, pos, e);
	}
	if (new_len < cur)
		release(kv, cur - new_len);

	char *val = kv_val(e);
	if (replace) {
		if (start)
			memset(val, 0, (size_t)start);
		if (len)
			memcpy(val + start, data, len);
		e->len = (uint32_t)new_len;
		if (new_len < cur) {
			e = value_trim(e);
			mslots_set(kv->slots, pos, e);
		}
		touch(kv, e);
	} else if (len) {
		if (start > e->len)
			memset(val + e->len, 0, (size_t)(start - e->len));
		memcpy(val + start, data, len);
		e->len = (uint32_t)new_len;
		touch(kv, e);
	}
	return (ssize_t)len;
}

int mkv_create(struct mkv *kv, const char *key)
{
	if (!kv || !key)
		return -EINVAL;
	size_t klen = strlen(key);
	if (klen > MKV_MAX_KEY)
		return -ENAMETOOLONG;
	uint64_t h = kv_hash(key, klen);
	if (kv_index_find(kv, key, klen, h) != UINT32_MAX)
		return -EEXIST;
	int r = charge(kv, klen);
	if (r < 0)
		return r;
	struct kv_ent *e = ent_new(key, klen, 0);
	uint32_t pos;
	r = e ? insert(kv, e, h, &pos) : -ENOMEM;
	if (r < 0) {
		ent_free(e);
		release(kv, klen);
	}
	return r;
}

int mkv_truncate(struct mkv *kv, const char *key, uint64_t size)
{
	uint32_t pos = lookup(kv, key);
	if (pos == UINT32_MAX)
		return -ENOENT;
	if (size > MKV_MAX_VALUE)
		return -EFBIG;
	struct kv_ent *e = kv_ent(kv, pos);
	if (size > e->len) {
		int r = charge(kv, size - e->len);
		if (r < 0)
			return r;
		r = value_reserve(&e, (size_t)size, true);
		if (r < 0) {
			release(kv, size - e->len);
			return r;
		}
		memset(kv_val(e) + e->len, 0, (size_t)size - e->len);
		e->len = (uint32_t)size;
	} else if (size < e->len) {
		release(kv, e->len - size);
		e->len = (uint32_t)size;
		e = value_trim(e);
	}
	mslots_set(kv->slots, pos, e);
	/* Like ftruncate(2) on Linux: the times move even when the size does not. */
	touch(kv, e);
	return 0;
}

int mkv_delete(struct mkv *kv, const char *key)
{
	uint32_t pos = lookup(kv, key);
	if (pos == UINT32_MAX)
		return -ENOENT;
	remove_entry(kv, pos);
	return 0;
}

/* Gives the entry at from_pos the name key (klen bytes, hash h) and puts it
 * in to_kv (which may be its own table: there it keeps its position and its
 * id, as a file keeps its inode through mv), dropping what to_kv held under
 * that name. What can fail
 * (memory, a position, the charge) happens first: then nothing changed. */
static int relink(struct mkv *from_kv, uint32_t from_pos, struct mkv *to_kv, const char *key,
                  size_t klen, uint64_t h)
{
	struct kv_ent *e = kv_ent(from_kv, from_pos);
	uint32_t old_pos = kv_index_find(to_kv, key, klen, h);
	struct kv_ent *old = old_pos == UINT32_MAX ? NULL : kv_ent(to_kv, old_pos);
	uint64_t in = (uint64_t)klen + e->len;    /* what to_kv gains */
	uint64_t gone = old ? ent_bytes(old) : 0; /* what to_kv drops */
	uint64_t left = ent_bytes(e);             /* what from_kv gives up */

	/* The entry under its new name: the header, the name, the value (or
	 * the outline, whose block it takes over). */
	struct kv_ent *ne = malloc(ent_size(klen, ent_vpart(e)));
	if (!ne)
		return -ENOMEM;
	memcpy(ne, e, KV_HDR);
	ne->klen = (uint16_t)klen;
	ne->hnext = 0;
	memcpy(ne->data, key, klen);
	ne->data[klen] = '\0';
	memcpy(ne->data + klen + 1, e->data + e->klen + 1, ent_vpart(e));
	bool keep_pos = from_kv == to_kv;
	uint32_t pos = from_pos;
	int r = keep_pos ? 0 : mslots_add(to_kv->slots, ne, &pos);
	if (r < 0) {
		free(ne);
		return r;
	}
	/* One account: only the net growth is charged, so a rename that
	 * replaces or keeps the size always fits. Two: to_kv's takes it all
	 * before the other gives anything back. */
	if (from_kv->acct == to_kv->acct) {
		if (in > gone + left)
			r = mkv_account_charge(to_kv->acct, in - gone - left);
		else
			mkv_account_release(to_kv->acct, gone + left - in);
	} else {
		r = mkv_account_charge(to_kv->acct, in);
		if (r == 0) {
			mkv_account_release(to_kv->acct, gone);
			mkv_account_release(from_kv->acct, left);
		}
	}
	if (r < 0) {
		if (!keep_pos)
			mslots_del(to_kv->slots, pos);
		free(ne);
		return r;
	}

	if (old) {
		kv_index_unlink(to_kv, old_pos, h);
		mslots_del(to_kv->slots, old_pos);
		to_kv->bytes -= gone;
		ent_free(old);
	}
	kv_index_unlink(from_kv, from_pos, kv_hash(e->data, e->klen));
	if (keep_pos) {
		mslots_set(from_kv->slots, from_pos, ne);
	} else {
		mslots_del(from_kv->slots, from_pos);
	}
	from_kv->bytes -= left;
	free(e); /* not its value: ne has it */
	kv_index_link(to_kv, pos, h);
	ne->ver = ++to_kv->last_ver;
	to_kv->bytes += in;
	set_ctime_now(ne);
	kv_index_step(to_kv);
	if (from_kv != to_kv)
		kv_index_step(from_kv);
	return 0;
}

int mkv_move(struct mkv *from_kv, const char *from, struct mkv *to_kv, const char *to)
{
	if (!from_kv || !to_kv || !from || !to)
		return -EINVAL;
	size_t klen = strlen(to);
	if (klen > MKV_MAX_KEY)
		return -ENAMETOOLONG;
	uint32_t pos = lookup(from_kv, from);
	if (pos == UINT32_MAX)
		return -ENOENT;
	if (from_kv == to_kv && strcmp(from, to) == 0)
		return 0;
	return relink(from_kv, pos, to_kv, to, klen, kv_hash(to, klen));
}

int mkv_rename(struct mkv *kv, const char *from, const char *to)
{
	return mkv_move(kv, from, kv, to);
}

int mkv_list(const struct mkv *kv, uint64_t after,
             int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg)
{
	if (!kv || !fn)
		return -EINVAL;
	/* The next position is looked for after the call, from the one past
	 * the entry given: fn may delete it (a cleanup pass). */
	uint32_t pos;
	for (uint32_t from = mslots_resume(after); mslots_next(kv->slots, from, &pos);
	     from = pos + 1) {
		const struct kv_ent *e = kv_ent(kv, pos);
		struct mkv_stat st;
		fill_stat(kv, pos, e, &st);
		int r = fn(e->data, &st, arg);
		if (r)
			return r;
	}
	return 0;
}

int mkv_set_mtime(struct mkv *kv, const char *key, const struct timespec *mtime)
{
	uint32_t pos = lookup(kv, key);
	if (pos == UINT32_MAX)
		return -ENOENT;
	struct kv_ent *e = kv_ent(kv, pos);
	struct timespec now;
	mu_now_real(&now);
	e->mtime = time_pack(mtime ? mtime : &now, &e->flags, KV_MTIME_SEC);
	e->ctime = time_pack(&now, &e->flags, KV_CTIME_SEC);
	return 0;
}

int mkv_foreach(const struct mkv *kv,
                int (*fn)(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                          void *arg),
                void *arg)
{
	uint64_t cookie = 0;
	return mkv_foreach_from(kv, &cookie, SIZE_MAX, fn, arg);
}

int mkv_foreach_from(const struct mkv *kv, uint64_t *cookie, size_t max,
                     int (*fn)(const char *key, const void *value, size_t len,
                               const struct mkv_stat *st, void *arg),
                     void *arg)
{
	uint32_t pos;
	size_t n = 0;
	for (uint32_t from = mslots_resume(*cookie); kv && mslots_next(kv->slots, from, &pos);
	     from = pos + 1) {
		if (n++ == max)
			return 1;
		const struct kv_ent *e = kv_ent(kv, pos);
		struct mkv_stat st;
		fill_stat(kv, pos, e, &st);
		*cookie = st.cookie;
		int r = fn(e->data, kv_val(e), e->len, &st, arg);
		if (r)
			return r;
	}
	return 0;
}

int mkv_name_of(const struct mkv *kv, uint64_t id, char *buf, size_t len)
{
	uint32_t pos;
	if (!kv || !mslots_find_id(kv->slots, id, &pos))
		return -ENOENT;
	const struct kv_ent *e = kv_ent(kv, pos);
	if (e->klen >= len)
		return -ENAMETOOLONG;
	memcpy(buf, e->data, (size_t)e->klen + 1);
	return 0;
}
