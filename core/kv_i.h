/* SPDX-License-Identifier: MIT */
/* The inside of a key-value table (kv.h), shared by kv.c (the operations)
 * and kv_index.c (the hash index). Not for other files.
 *
 * An entry is one allocation: a 35-byte header, the name and its NUL, then
 * the value when it is at most KV_INLINE_MAX bytes (inline: exactly its
 * length, no capacity), else a struct kv_outline pointing at a block of its
 * own that grows by doubling. Entries live at positions of an mslots table;
 * the hash index is arrays of uint32 heads, a chain going through the
 * entries' hnext, all as position + 1 (0: none), so reallocating an entry
 * only changes what its position holds. */
#ifndef MALLAFS_CORE_KV_I_H
#define MALLAFS_CORE_KV_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kv.h"
#include "slots.h"
#include "util.h"

#define KV_INLINE_MAX 64
#define KV_MIN_BUCKETS 16
/* What one operation of the table moves of a resize in progress: at most
 * this many buckets with entries, and ten times as many empty ones. */
#define KV_REHASH_STEP 4

enum {
	KV_OUTLINE = 0x1,   /* the value is in a block of its own */
	KV_MTIME_SEC = 0x2, /* mtime holds seconds: outside the range of ns */
	KV_CTIME_SEC = 0x4,
};

struct kv_ent {
	int64_t mtime, ctime; /* ns since the epoch, or seconds (KV_*_SEC) */
	uint64_t ver;
	uint32_t hnext; /* the next position + 1 in the chain, 0: none */
	uint32_t len;   /* the value's */
	uint16_t klen;  /* the name's, without its NUL */
	uint8_t flags;
	char data[]; /* the name, its NUL, the value or a struct kv_outline */
};

#define KV_HDR offsetof(struct kv_ent, data)

struct kv_outline {
	char *p;
	uint64_t cap;
};

struct kv_index {
	uint32_t *ht[2];   /* heads (position + 1); ht[1] only during a resize */
	uint32_t mask[2];  /* buckets - 1, a power of two less one */
	uint32_t rehashed; /* ht[0]'s buckets below it moved to ht[1] already */
};

struct mkv {
	struct mslots *slots; /* struct kv_ent * */
	struct kv_index ix;
	uint64_t last_ver;
	uint64_t bytes;           /* keys' and values' lengths, all charged to acct */
	struct mkv_account *acct; /* may be NULL */
};

/* This thread's work counters (mkv_work). */
extern _Thread_local struct mkv_work kv_work;

static inline struct kv_ent *kv_ent(const struct mkv *kv, uint32_t pos)
{
	return mslots_get(kv->slots, pos);
}

static inline struct kv_outline kv_outline(const struct kv_ent *e)
{
	struct kv_outline o;
	memcpy(&o, e->data + e->klen + 1, sizeof(o));
	return o;
}

static inline char *kv_val(const struct kv_ent *e)
{
	return e->flags & KV_OUTLINE ? kv_outline(e).p : (char *)e->data + e->klen + 1;
}

static inline uint64_t kv_hash(const char *key, size_t klen)
{
	return mu_hash(key, klen);
}

/* kv_index.c */
int kv_index_init(struct mkv *kv);
void kv_index_free(struct mkv *kv);
/* The position of key (klen bytes, hash h), or UINT32_MAX. */
uint32_t kv_index_find(const struct mkv *kv, const char *key, size_t klen, uint64_t h);
void kv_index_link(struct mkv *kv, uint32_t pos, uint64_t h);
void kv_index_unlink(struct mkv *kv, uint32_t pos, uint64_t h);
/* After each change of the table: a bounded step of a resize in progress,
 * or the start of one the count calls for. */
void kv_index_step(struct mkv *kv);
size_t kv_index_longest(const struct mkv *kv);
size_t kv_index_bytes(const struct mkv *kv);

#endif
