#include "kv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KV_MIN_BUCKETS 16
#define KV_MIN_VALUE_CAP 16

struct kv_entry {
	struct kv_entry *hnext;       /* hash chain */
	struct kv_entry *prev, *next; /* id order */
	uint64_t hash;
	uint64_t id;
	char *key;
	size_t klen; /* strlen(key) */
	char *val;
	size_t len, cap;
	struct timespec mtime, ctime;
	uint64_t ver;
};

struct mkv {
	struct kv_entry **buckets;
	size_t nbuckets; /* a power of two, so the hash is masked instead of divided */
	size_t count;
	struct kv_entry *head, *tail;
	uint64_t last_id;
	uint64_t last_ver;
	uint64_t bytes;           /* keys' and values' lengths, all charged to acct */
	struct mkv_account *acct; /* may be NULL */
};

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

static uint64_t entry_bytes(const struct kv_entry *e)
{
	return (uint64_t)e->klen + e->len;
}

static uint64_t key_hash(const char *key)
{
	return mu_hash(key, strlen(key));
}

static struct kv_entry **bucket_of(const struct mkv *kv, uint64_t hash)
{
	return &kv->buckets[hash & (kv->nbuckets - 1)];
}

static struct kv_entry *find(const struct mkv *kv, const char *key, uint64_t hash)
{
	for (struct kv_entry *e = *bucket_of(kv, hash); e; e = e->hnext)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static struct kv_entry *lookup(const struct mkv *kv, const char *key)
{
	if (!kv || !key)
		return NULL;
	return find(kv, key, key_hash(key));
}

/* Failure is harmless: chains only get longer, so callers ignore it. */
static void rehash(struct mkv *kv, size_t nbuckets)
{
	struct kv_entry **nb = calloc(nbuckets, sizeof(*nb));
	if (!nb)
		return;
	for (size_t i = 0; i < kv->nbuckets; i++) {
		struct kv_entry *e = kv->buckets[i];
		while (e) {
			struct kv_entry *next = e->hnext;
			struct kv_entry **b = &nb[e->hash & (nbuckets - 1)];
			e->hnext = *b;
			*b = e;
			e = next;
		}
	}
	free(kv->buckets);
	kv->buckets = nb;
	kv->nbuckets = nbuckets;
}

static void maybe_grow(struct mkv *kv)
{
	if (kv->count >= kv->nbuckets && kv->nbuckets <= SIZE_MAX / 2 / sizeof(*kv->buckets))
		rehash(kv, kv->nbuckets * 2);
}

static void maybe_shrink(struct mkv *kv)
{
	/* Shrinking only below 1/8 load leaves room before the next grow. */
	if (kv->nbuckets > KV_MIN_BUCKETS && kv->count < kv->nbuckets / 8)
		rehash(kv, kv->nbuckets / 2);
}

static void hash_unlink(struct mkv *kv, struct kv_entry *e)
{
	struct kv_entry **p = bucket_of(kv, e->hash);
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	e->hnext = NULL;
}

static void hash_link(struct mkv *kv, struct kv_entry *e)
{
	struct kv_entry **b = bucket_of(kv, e->hash);
	e->hnext = *b;
	*b = e;
}

static void list_unlink(struct mkv *kv, struct kv_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		kv->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		kv->tail = e->prev;
	e->prev = e->next = NULL;
}

/* Ids grow with every append, so the list stays sorted by id. */
static void list_append(struct mkv *kv, struct kv_entry *e)
{
	e->id = ++kv->last_id;
	e->prev = kv->tail;
	e->next = NULL;
	if (kv->tail)
		kv->tail->next = e;
	else
		kv->head = e;
	kv->tail = e;
}

static void insert(struct mkv *kv, struct kv_entry *e)
{
	maybe_grow(kv);
	hash_link(kv, e);
	list_append(kv, e);
	e->ver = ++kv->last_ver;
	kv->count++;
}

static void entry_free(struct kv_entry *e)
{
	if (!e)
		return;
	free(e->val);
	free(e->key);
	free(e);
}

static void remove_entry(struct mkv *kv, struct kv_entry *e)
{
	hash_unlink(kv, e);
	list_unlink(kv, e);
	kv->count--;
	release(kv, entry_bytes(e));
	entry_free(e);
}

static struct kv_entry *entry_new(const char *key, uint64_t hash)
{
	struct kv_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return NULL;
	}
	e->klen = strlen(key);
	e->hash = hash;
	mu_now_real(&e->mtime);
	e->ctime = e->mtime;
	return e;
}

/* Doubling keeps repeated appends amortised O(1). keep=false skips copying
 * bytes the caller is about to overwrite anyway. */
static int value_reserve(struct kv_entry *e, size_t need, bool keep)
{
	if (need <= e->cap)
		return 0;
	size_t cap = e->cap ? e->cap : KV_MIN_VALUE_CAP;
	while (cap < need)
		cap *= 2;
	char *p;
	if (keep) {
		p = realloc(e->val, cap);
		if (!p) {
			/* Near the size limit doubling may overshoot what memory allows. */
			cap = need;
			p = realloc(e->val, cap);
		}
	} else {
		p = malloc(cap);
		if (!p) {
			cap = need;
			p = malloc(cap);
		}
		if (p)
			free(e->val);
	}
	if (!p)
		return -ENOMEM;
	e->val = p;
	e->cap = cap;
	return 0;
}

/* Gives memory back after a large shrink, keeping room to grow again. */
static void value_trim(struct kv_entry *e)
{
	if (e->len == 0) {
		free(e->val);
		e->val = NULL;
		e->cap = 0;
		return;
	}
	if (e->cap <= 4 * KV_MIN_VALUE_CAP || e->len >= e->cap / 4)
		return;
	size_t cap = e->len * 2;
	char *p = realloc(e->val, cap);
	if (p) {
		e->val = p;
		e->cap = cap;
	}
}

/* The value changed: new times, a new version. */
static void touch(struct mkv *kv, struct kv_entry *e)
{
	mu_now_real(&e->mtime);
	e->ctime = e->mtime;
	e->ver = ++kv->last_ver;
}

static void fill_stat(const struct kv_entry *e, struct mkv_stat *st)
{
	st->id = e->id;
	st->size = e->len;
	st->mtime = e->mtime;
	st->ctime = e->ctime;
	st->ver = e->ver;
}

struct mkv *mkv_new(void)
{
	struct mkv *kv = calloc(1, sizeof(*kv));
	if (!kv)
		return NULL;
	kv->buckets = calloc(KV_MIN_BUCKETS, sizeof(*kv->buckets));
	if (!kv->buckets) {
		free(kv);
		return NULL;
	}
	kv->nbuckets = KV_MIN_BUCKETS;
	return kv;
}

void mkv_free(struct mkv *kv)
{
	if (!kv)
		return;
	struct kv_entry *e = kv->head;
	while (e) {
		struct kv_entry *next = e->next;
		entry_free(e);
		e = next;
	}
	mkv_account_release(kv->acct, kv->bytes);
	free(kv->buckets);
	free(kv);
}

size_t mkv_count(const struct mkv *kv)
{
	return kv ? kv->count : 0;
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
	size_t longest = 0;
	for (size_t i = 0; kv && i < kv->nbuckets; i++) {
		size_t n = 0;
		for (const struct kv_entry *e = kv->buckets[i]; e; e = e->hnext)
			n++;
		if (n > longest)
			longest = n;
	}
	return longest;
}

int mkv_stat(const struct mkv *kv, const char *key, struct mkv_stat *ret)
{
	const struct kv_entry *e = lookup(kv, key);
	if (!e)
		return -ENOENT;
	if (ret)
		fill_stat(e, ret);
	return 0;
}

ssize_t mkv_read(const struct mkv *kv, const char *key, uint64_t off, void *buf, size_t len)
{
	const struct kv_entry *e = lookup(kv, key);
	if (!e)
		return -ENOENT;
	if (off >= e->len || len == 0)
		return 0;
	size_t n = e->len - (size_t)off;
	if (n > len)
		n = len;
	memcpy(buf, e->val + off, n);
	return (ssize_t)n;
}

int mkv_get(const struct mkv *kv, const char *key, char **ret, size_t *ret_len)
{
	const struct kv_entry *e = lookup(kv, key);
	if (!e)
		return -ENOENT;
	char *p = mu_memdup0(e->val, e->len);
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

	uint64_t hash = key_hash(key);
	struct kv_entry *e = find(kv, key, hash);
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
	uint64_t grow = (e ? 0 : strlen(key)) + (new_len > cur ? new_len - cur : 0);
	int r = charge(kv, grow);
	if (r < 0)
		return r;
	bool created = false;
	if (!e) {
		e = entry_new(key, hash);
		if (!e) {
			release(kv, grow);
			return -ENOMEM;
		}
		created = true;
	}
	if (value_reserve(e, (size_t)new_len, !replace) < 0) {
		if (created)
			entry_free(e);
		release(kv, grow);
		return -ENOMEM;
	}
	if (created)
		insert(kv, e);
	if (new_len < cur)
		release(kv, cur - new_len);

	if (replace) {
		if (start)
			memset(e->val, 0, (size_t)start);
		if (len)
			memcpy(e->val + start, data, len);
		e->len = (size_t)new_len;
		value_trim(e);
		touch(kv, e);
	} else if (len) {
		if (start > e->len)
			memset(e->val + e->len, 0, (size_t)(start - e->len));
		memcpy(e->val + start, data, len);
		e->len = (size_t)new_len;
		touch(kv, e);
	}
	return (ssize_t)len;
}

int mkv_create(struct mkv *kv, const char *key)
{
	if (!kv || !key)
		return -EINVAL;
	uint64_t hash = key_hash(key);
	if (find(kv, key, hash))
		return -EEXIST;
	int r = charge(kv, strlen(key));
	if (r < 0)
		return r;
	struct kv_entry *e = entry_new(key, hash);
	if (!e) {
		release(kv, strlen(key));
		return -ENOMEM;
	}
	insert(kv, e);
	return 0;
}

int mkv_truncate(struct mkv *kv, const char *key, uint64_t size)
{
	struct kv_entry *e = lookup(kv, key);
	if (!e)
		return -ENOENT;
	if (size > MKV_MAX_VALUE)
		return -EFBIG;
	if (size > e->len) {
		int r = charge(kv, size - e->len);
		if (r < 0)
			return r;
		r = value_reserve(e, (size_t)size, true);
		if (r < 0) {
			release(kv, size - e->len);
			return r;
		}
		memset(e->val + e->len, 0, (size_t)size - e->len);
		e->len = (size_t)size;
	} else {
		release(kv, e->len - size);
		e->len = (size_t)size;
		value_trim(e);
	}
	/* Like ftruncate(2) on Linux: the times move even when the size does not. */
	touch(kv, e);
	return 0;
}

int mkv_delete(struct mkv *kv, const char *key)
{
	struct kv_entry *e = lookup(kv, key);
	if (!e)
		return -ENOENT;
	remove_entry(kv, e);
	maybe_shrink(kv);
	return 0;
}

/* Gives e the name to (key owned by the caller, hash precomputed), moves it
 * into to_kv (which may be its own table) at the end of the id order, and
 * drops what to_kv held under that name. Only the charge can fail, and then
 * nothing changed (the key is still the caller's). */
static int relink(struct mkv *from_kv, struct kv_entry *e, struct mkv *to_kv, char *key,
                  uint64_t hash)
{
	struct kv_entry *old = find(to_kv, key, hash);
	size_t klen = strlen(key);
	uint64_t in = (uint64_t)klen + e->len;      /* what to_kv gains */
	uint64_t gone = old ? entry_bytes(old) : 0; /* what to_kv drops */
	uint64_t left = entry_bytes(e);             /* what from_kv gives up */
	/* One account: only the net growth is charged, so a rename that
	 * replaces or keeps the size always fits. Two: to_kv's takes it all
	 * before the other gives anything back. */
	if (from_kv->acct == to_kv->acct) {
		if (in > gone + left) {
			int r = mkv_account_charge(to_kv->acct, in - gone - left);
			if (r < 0)
				return r;
		} else {
			mkv_account_release(to_kv->acct, gone + left - in);
		}
	} else {
		int r = mkv_account_charge(to_kv->acct, in);
		if (r < 0)
			return r;
		mkv_account_release(to_kv->acct, gone);
		mkv_account_release(from_kv->acct, left);
	}
	if (old) {
		hash_unlink(to_kv, old);
		list_unlink(to_kv, old);
		to_kv->count--;
		to_kv->bytes -= gone;
		entry_free(old);
	}
	hash_unlink(from_kv, e);
	free(e->key);
	e->key = key;
	e->klen = klen;
	e->hash = hash;
	if (from_kv == to_kv) {
		/* A rename keeps the entry's id and place. */
		hash_link(to_kv, e);
		e->ver = ++to_kv->last_ver;
		to_kv->bytes += in - left;
	} else {
		list_unlink(from_kv, e);
		from_kv->count--;
		from_kv->bytes -= left;
		insert(to_kv, e);
		to_kv->bytes += in;
	}
	mu_now_real(&e->ctime);
	if (from_kv != to_kv)
		maybe_shrink(from_kv);
	return 0;
}

static int relink_or_free(struct mkv *from_kv, struct kv_entry *e, struct mkv *to_kv, char *key)
{
	int r = relink(from_kv, e, to_kv, key, key_hash(key));
	if (r < 0)
		free(key);
	return r;
}

int mkv_rename(struct mkv *kv, const char *from, const char *to)
{
	if (!kv || !from || !to)
		return -EINVAL;
	struct kv_entry *e = lookup(kv, from);
	if (!e)
		return -ENOENT;
	if (strcmp(from, to) == 0)
		return 0;
	char *key = strdup(to);
	if (!key)
		return -ENOMEM;
	return relink_or_free(kv, e, kv, key);
}

int mkv_move(struct mkv *from_kv, const char *from, struct mkv *to_kv, const char *to)
{
	if (!from_kv || !to_kv || !from || !to)
		return -EINVAL;
	if (from_kv == to_kv)
		return mkv_rename(from_kv, from, to);
	struct kv_entry *e = lookup(from_kv, from);
	if (!e)
		return -ENOENT;
	char *key = strdup(to);
	if (!key)
		return -ENOMEM;
	return relink_or_free(from_kv, e, to_kv, key);
}

/* The first entry with id > after_id. The list is sorted by id, so walking
 * in from both ends at once costs the distance to the nearer end: readdir
 * cursors near the start or the end of a large table stay cheap. */
static const struct kv_entry *first_after(const struct mkv *kv, uint64_t after_id)
{
	const struct kv_entry *f = kv->head, *b = kv->tail;
	if (!b || b->id <= after_id)
		return NULL;
	for (;;) {
		if (f->id > after_id)
			return f;
		if (!b->prev || b->prev->id <= after_id)
			return b;
		f = f->next;
		b = b->prev;
	}
}

int mkv_list(const struct mkv *kv, uint64_t after_id,
             int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg)
{
	if (!kv || !fn)
		return -EINVAL;
	/* next is taken before the call so that fn may delete the entry it is
	 * given (a cleanup pass); any other change to kv during the walk is not
	 * allowed. */
	const struct kv_entry *e = first_after(kv, after_id);
	while (e) {
		const struct kv_entry *next = e->next;
		struct mkv_stat st;
		fill_stat(e, &st);
		int r = fn(e->key, &st, arg);
		if (r)
			return r;
		e = next;
	}
	return 0;
}

int mkv_set_mtime(struct mkv *kv, const char *key, const struct timespec *mtime)
{
	struct kv_entry *e = lookup(kv, key);
	if (!e)
		return -ENOENT;
	if (mtime)
		e->mtime = *mtime;
	else
		mu_now_real(&e->mtime);
	mu_now_real(&e->ctime);
	return 0;
}

int mkv_foreach(const struct mkv *kv,
                int (*fn)(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                          void *arg),
                void *arg)
{
	for (const struct kv_entry *e = first_after(kv, 0); e; e = e->next) {
		struct mkv_stat st;
		fill_stat(e, &st);
		int r = fn(e->key, e->val ? e->val : "", e->len, &st, arg);
		if (r)
			return r;
	}
	return 0;
}

int mkv_name_of(const struct mkv *kv, uint64_t id, char *buf, size_t len)
{
	for (const struct kv_entry *e = kv ? kv->head : NULL; e; e = e->next) {
		if (e->id == id) {
			if (e->klen >= len)
				return -ENAMETOOLONG;
			memcpy(buf, e->key, e->klen + 1);
			return 0;
		}
	}
	return -ENOENT;
}
