/* SPDX-License-Identifier: MIT */
/* The hash index of a key-value table (kv_i.h): a power-of-two array of
 * chain heads, resized incrementally as Redis's dict is. A resize allocates
 * the new array (zeroed: calloc, no pass over it) and from then on every
 * change of the table moves a few buckets of the old array into the new one
 * (kv_index_step); lookups look in both meanwhile. So no operation pays a
 * pause proportional to the table: the most one moves is KV_REHASH_STEP
 * buckets with entries and ten times as many empty ones.
 *
 * The table grows when it holds more entries than buckets, and shrinks by
 * half below one entry per eight buckets; during a resize the next one
 * waits. A grow is done after a quarter of the old size in changes, well
 * before the count doubles again. Entries keep no hash: a move hashes the
 * name again. */
#include <errno.h>
#include <stdlib.h>

#include "kv_i.h"

_Thread_local struct mkv_work kv_work;

void mkv_work(struct mkv_work *ret)
{
	*ret = kv_work;
	ret->slots = mslots_steps();
}

int kv_index_init(struct mkv *kv)
{
	struct kv_index *ix = &kv->ix;
	ix->ht[0] = calloc(KV_MIN_BUCKETS, sizeof(*ix->ht[0]));
	if (!ix->ht[0])
		return -ENOMEM;
	ix->mask[0] = KV_MIN_BUCKETS - 1;
	ix->ht[1] = NULL;
	ix->rehashed = 0;
	return 0;
}

void kv_index_free(struct mkv *kv)
{
	free(kv->ix.ht[0]);
	free(kv->ix.ht[1]);
}

uint32_t kv_index_find(const struct mkv *kv, const char *key, size_t klen, uint64_t h)
{
	/* A bucket already moved is empty: both arrays can be walked as they are. */
	for (int t = 0; t < 2 && kv->ix.ht[t]; t++) {
		uint32_t p = kv->ix.ht[t][h & kv->ix.mask[t]];
		while (p) {
			const struct kv_ent *e = kv_ent(kv, p - 1);
			kv_work.chain++;
			if (e->klen == klen && memcmp(e->data, key, klen) == 0)
				return p - 1;
			p = e->hnext;
		}
	}
	return UINT32_MAX;
}

void kv_index_link(struct mkv *kv, uint32_t pos, uint64_t h)
{
	int t = kv->ix.ht[1] ? 1 : 0;
	uint32_t *head = &kv->ix.ht[t][h & kv->ix.mask[t]];
	kv_ent(kv, pos)->hnext = *head;
	*head = pos + 1;
}

void kv_index_unlink(struct mkv *kv, uint32_t pos, uint64_t h)
{
	for (int t = 0; t < 2 && kv->ix.ht[t]; t++) {
		uint32_t *link = &kv->ix.ht[t][h & kv->ix.mask[t]];
		while (*link) {
			struct kv_ent *e = kv_ent(kv, *link - 1);
			kv_work.chain++;
			if (*link == pos + 1) {
				*link = e->hnext;
				e->hnext = 0;
				return;
			}
			link = &e->hnext;
		}
	}
}

/* Starts a resize when the count calls for one; failing to allocate the
 * new array only leaves chains longer until a later change retries. */
static void maybe_start(struct mkv *kv)
{
	struct kv_index *ix = &kv->ix;
	size_t count = mslots_count(kv->slots), size = (size_t)ix->mask[0] + 1, want;
	if (count > size && size < MSLOTS_MAX)
		want = size * 2;
	else if (size > KV_MIN_BUCKETS && count < size / 8)
		want = size / 2;
	else
		return;
	ix->ht[1] = calloc(want, sizeof(*ix->ht[1]));
	if (!ix->ht[1])
		return;
	ix->mask[1] = (uint32_t)(want - 1);
	ix->rehashed = 0;
}

void kv_index_step(struct mkv *kv)
{
	struct kv_index *ix = &kv->ix;
	if (!ix->ht[1]) {
		maybe_start(kv);
		return;
	}
	uint32_t size = ix->mask[0] + 1;
	int moved = 0, empty = 0;
	while (ix->rehashed < size && moved < KV_REHASH_STEP && empty < 10 * KV_REHASH_STEP) {
		uint32_t *old = &ix->ht[0][ix->rehashed++];
		kv_work.buckets++;
		if (!*old) {
			empty++;
			continue;
		}
		for (uint32_t p = *old; p;) {
			struct kv_ent *e = kv_ent(kv, p - 1);
			uint32_t next = e->hnext;
			uint32_t *head = &ix->ht[1][kv_hash(e->data, e->klen) & ix->mask[1]];
			e->hnext = *head;
			*head = p;
			p = next;
			kv_work.moved++;
		}
		*old = 0;
		moved++;
	}
	if (ix->rehashed == size) {
		free(ix->ht[0]);
		ix->ht[0] = ix->ht[1];
		ix->mask[0] = ix->mask[1];
		ix->ht[1] = NULL;
		ix->rehashed = 0;
	}
}

size_t kv_index_longest(const struct mkv *kv)
{
	size_t longest = 0;
	for (int t = 0; t < 2 && kv->ix.ht[t]; t++) {
		for (size_t i = 0; i <= kv->ix.mask[t]; i++) {
			size_t n = 0;
			for (uint32_t p = kv->ix.ht[t][i]; p; p = kv_ent(kv, p - 1)->hnext)
				n++;
			if (n > longest)
				longest = n;
		}
	}
	return longest;
}

size_t kv_index_bytes(const struct mkv *kv)
{
	size_t n = ((size_t)kv->ix.mask[0] + 1) * sizeof(uint32_t);
	if (kv->ix.ht[1])
		n += ((size_t)kv->ix.mask[1] + 1) * sizeof(uint32_t);
	return n;
}
