/* SPDX-License-Identifier: MIT */
/* A table of stable positions: each item added gets a position (a small
 * integer) it keeps until it is taken out, so a folder listing can resume at
 * a position in O(1), whatever came and went in between: an item that is
 * there throughout a listing is returned exactly once, in position order.
 *
 * Positions are reused, lowest first, so the table stays dense; each
 * position has a generation that moves on every time it is freed (or
 * bumped), so (generation, position) names one item for the table's whole
 * life: mslots_id. A position whose generation would wrap is never handed
 * out again.
 *
 * Items are the caller's pointers (never NULL): the table never moves,
 * copies or frees them. Memory: about 12 bytes a position (a pointer, a
 * generation) plus two bitmaps, in chunks of up to 4096 positions that
 * start with room for 16 and double as they fill, so a table costs what it
 * holds (one item: a few hundred bytes) and growing copies one chunk at
 * most, never the table. Not thread-safe: the owner locks. */
#ifndef MALLAFS_CORE_SLOTS_H
#define MALLAFS_CORE_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most positions one table hands out: positions are below it. */
#define MSLOTS_POS_BITS 30
#define MSLOTS_MAX ((uint32_t)1 << MSLOTS_POS_BITS)

struct mslots;

struct mslots *mslots_new(void);
void mslots_free(struct mslots *s); /* accepts NULL; the items stay the caller's */
size_t mslots_count(const struct mslots *s);
/* Bytes the table itself holds (not its items): tests and memory figures. */
size_t mslots_bytes(const struct mslots *s);

/* Narrows an empty table: positions below 2^pos_bits (at least 12, at
 * most MSLOTS_POS_BITS), generations below 2^gen_bits - 1 (2 to 32), so
 * that every id is below 2^(pos_bits + gen_bits). -EINVAL otherwise. */
int mslots_limit(struct mslots *s, unsigned pos_bits, unsigned gen_bits);
/* Puts item (not NULL) at the lowest free position: 0 and *ret_pos, or
 * -ENOMEM, or -ENOSPC when all MSLOTS_MAX positions are taken. */
int mslots_add(struct mslots *s, void *item, uint32_t *ret_pos);
/* The item at pos, or NULL when pos is free or out of range. */
void *mslots_get(const struct mslots *s, uint32_t pos);
/* Replaces the item at an occupied pos (the item was reallocated). */
void mslots_set(struct mslots *s, uint32_t pos, void *item);
/* Frees pos and returns its item (NULL if it was free); its generation
 * moves on. */
void *mslots_del(struct mslots *s, uint32_t pos);
/* The item's lifelong name: its generation and position, never 0, never
 * the same for two items of one table. 0 when pos is free. */
uint64_t mslots_id(const struct mslots *s, uint32_t pos);
/* The item at pos gets a new id (its generation moves on), keeping pos: 0,
 * -ENOENT when pos is free, or -EOVERFLOW when the position's generations
 * are spent (after about 4 billion bumps: the id stays; the caller may move
 * the item to a new position instead). */
int mslots_bump(struct mslots *s, uint32_t pos);
/* Whether mslots_bump(s, pos) would succeed: pos is occupied and its
 * generations are not spent. */
bool mslots_can_bump(const struct mslots *s, uint32_t pos);
/* The position an id names, if that item is still there: true and *ret_pos. */
bool mslots_find_id(const struct mslots *s, uint64_t id, uint32_t *ret_pos);

/* The first occupied position at or after from: true and *ret_pos, or
 * false when there is none. Costs O(1) per occupied position it passes
 * and O(1) per 64 free ones, at most O(count / 4096) to skip empty
 * chunks: a listing is linear in what it returns. */
bool mslots_next(const struct mslots *s, uint32_t from, uint32_t *ret_pos);

/* Words of bitmaps this thread's calls have looked at so far: a
 * deterministic measure of the cost of mslots_next and mslots_add, for
 * tests. */
uint64_t mslots_steps(void);

/* A listing's cookie (readdir offset) for the item at pos: where the next
 * call resumes to return the items after it. Cookies start at 1, so 0
 * means "from the start". */
static inline uint64_t mslots_cookie(uint32_t pos)
{
	return (uint64_t)pos + 1;
}

/* The position a listing given cookie resumes at. */
static inline uint32_t mslots_resume(uint64_t cookie)
{
	return cookie >= MSLOTS_MAX ? MSLOTS_MAX : (uint32_t)cookie;
}

#endif
