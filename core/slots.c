/* SPDX-License-Identifier: MIT */
/* A table of stable positions (slots.h): chunks of 4096 positions, found
 * through a small directory of chunk pointers that doubles.
 *
 * A chunk's memory follows what it holds: it is made with room for
 * CHUNK_MIN positions and doubles (one realloc) when they are all taken, up
 * to 4096, so a table of one item costs a few hundred bytes, not 50 KiB.
 * Positions never move: the items are pointers, a chunk's position i is
 * ci * 4096 + i whatever its room; positions past the room are free, and
 * the ones a doubling adds start at the chunk's base generation, as if the
 * chunk had been made whole (they were never handed out). Doubling copies
 * the room there was, so adding stays O(1) amortized.
 *
 * Each chunk holds its items, a generation per position and two bitmaps:
 * occ (an item is there) and taken (an item is there or the position is
 * retired: its generation is spent). The directory keeps, per chunk index,
 * a bit "nonfull" (the chunk is absent or has a position not taken), a bit
 * "nonempty" (the chunk has an item) and the generation its positions start
 * at when the chunk is made again (base). So the lowest free position is
 * found by one scan of the nonfull words (a word per 64 chunks) and one of
 * the chunk's taken words (at most 64), and a listing skips free positions 64 at a
 * time and empty chunks 64 at a time.
 *
 * Ids never repeat: a position's generation only moves on (on every del and
 * bump); a chunk that becomes empty may be freed, and then records in base
 * one past the highest generation it ever had, so its positions start above
 * everything they named before. A position whose generation is spent
 * (GEN_SPENT) stays taken for good. Of the empty chunks only the lowest is
 * kept (spare), so adding and deleting at a chunk's edge does not make and
 * free a chunk each time: a chunk is made again only after a whole chunk was
 * emptied. Making a chunk, doubling and freeing it cost O(room), and a room
 * is at most twice the items added to fill it: O(1) amortized. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slots.h"

#define CHUNK_SHIFT 12
#define CHUNK_SIZE ((uint32_t)1 << CHUNK_SHIFT)
/* The room a chunk is made with: a power of two, at least 2. */
#define CHUNK_MIN ((uint32_t)16)
/* A generation that can no longer move on: the position is retired. */
#define GEN_SPENT UINT32_MAX
#define NO_SPARE UINT32_MAX

/* One allocation: the header, then item[room], gen[room], occ[words(room)]
 * and taken[words(room)] (chunk_arrays finds them; 12 * room is a multiple
 * of 8, so the bitmaps are aligned). Bits at or past room are clear. */
struct chunk {
	uint32_t room;   /* positions it has memory for: CHUNK_MIN to CHUNK_SIZE */
	uint32_t count;  /* bits in occ */
	uint32_t ntaken; /* bits in taken */
	uint32_t maxgen; /* the highest generation any position ever had */
	void *item[];    /* valid where occ is set */
};

struct arrays {
	void **item;
	uint32_t *gen;
	uint64_t *occ;
	uint64_t *taken; /* occ, and the retired positions */
};

struct mslots {
	struct chunk **dir; /* [cap], NULL: absent (never made, or freed) */
	uint32_t *base;     /* [cap] */
	uint64_t *nonfull;  /* [words(cap)]: bits below len only */
	uint64_t *nonempty; /* [words(cap)] */
	uint32_t len;       /* chunk indices ever used */
	uint32_t cap;
	uint32_t spare; /* the one empty chunk kept, or NO_SPARE */
	size_t count;
	size_t chunk_bytes; /* what the chunks take, together */
	/* mslots_limit: positions are below 2^pos_bits, generations below
	 * gen_spent (which retires a position). */
	unsigned pos_bits;
	uint32_t gen_spent;
};

/* Words of bitmaps looked at, by this thread (mslots_steps). */
static _Thread_local uint64_t steps;

uint64_t mslots_steps(void)
{
	return steps;
}

static uint32_t words_of(uint32_t bits)
{
	return (bits + 63) / 64;
}

static void bit_set(uint64_t *w, uint32_t i)
{
	w[i / 64] |= (uint64_t)1 << (i % 64);
}

static void bit_clear(uint64_t *w, uint32_t i)
{
	w[i / 64] &= ~((uint64_t)1 << (i % 64));
}

static bool bit_test(const uint64_t *w, uint32_t i)
{
	return (w[i / 64] >> (i % 64)) & 1;
}

/* The first bit at or after from (below nbits) that is set, or clear when
 * flip is all ones: its index, or UINT32_MAX. */
static uint32_t first_bit(const uint64_t *w, uint32_t nbits, uint32_t from, uint64_t flip)
{
	if (from >= nbits)
		return UINT32_MAX;
	uint32_t i = from / 64, n = words_of(nbits);
	uint64_t bits = (w[i] ^ flip) & (~(uint64_t)0 << (from % 64));
	for (;;) {
		steps++;
		if (bits) {
			uint32_t b = i * 64 + (uint32_t)__builtin_ctzll(bits);
			return b < nbits ? b : UINT32_MAX;
		}
		if (++i >= n)
			return UINT32_MAX;
		bits = w[i] ^ flip;
	}
}

struct mslots *mslots_new(void)
{
	struct mslots *s = calloc(1, sizeof(*s));
	if (s) {
		s->spare = NO_SPARE;
		s->pos_bits = MSLOTS_POS_BITS;
		s->gen_spent = GEN_SPENT;
	}
	return s;
}

int mslots_limit(struct mslots *s, unsigned pos_bits, unsigned gen_bits)
{
	if (s->len || pos_bits < CHUNK_SHIFT || pos_bits > MSLOTS_POS_BITS || gen_bits < 2 ||
	    gen_bits > 32)
		return -EINVAL;
	s->pos_bits = pos_bits;
	s->gen_spent = (uint32_t)(((uint64_t)1 << gen_bits) - 1);
	return 0;
}

static uint32_t max_chunks(const struct mslots *s)
{
	return (uint32_t)1 << (s->pos_bits - CHUNK_SHIFT);
}

void mslots_free(struct mslots *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->len; i++)
		free(s->dir[i]);
	free(s->dir);
	free(s->base);
	free(s->nonfull);
	free(s->nonempty);
	free(s);
}

size_t mslots_count(const struct mslots *s)
{
	return s->count;
}

size_t mslots_bytes(const struct mslots *s)
{
	return sizeof(*s) + (size_t)s->cap * (sizeof(*s->dir) + sizeof(*s->base)) +
	       2 * sizeof(uint64_t) * words_of(s->cap) + s->chunk_bytes;
}

/* One more chunk index in the directory: 0, or -ENOMEM. */
static int grow_dir(struct mslots *s)
{
	uint32_t cap = s->cap ? s->cap * 2 : 4;
	if (cap > max_chunks(s))
		cap = max_chunks(s);
	uint32_t ow = words_of(s->cap), nw = words_of(cap);
	struct chunk **dir = realloc(s->dir, cap * sizeof(*dir));
	if (!dir)
		return -ENOMEM;
	s->dir = dir;
	uint32_t *base = realloc(s->base, cap * sizeof(*base));
	if (!base)
		return -ENOMEM;
	s->base = base;
	uint64_t *nonfull = realloc(s->nonfull, nw * sizeof(uint64_t));
	if (!nonfull)
		return -ENOMEM;
	s->nonfull = nonfull;
	uint64_t *nonempty = realloc(s->nonempty, nw * sizeof(uint64_t));
	if (!nonempty)
		return -ENOMEM;
	s->nonempty = nonempty;
	memset(nonfull + ow, 0, (nw - ow) * sizeof(uint64_t));
	memset(nonempty + ow, 0, (nw - ow) * sizeof(uint64_t));
	/* Only now: a failure above leaves cap, and so every array's use, as it was. */
	s->cap = cap;
	return 0;
}

static size_t chunk_size(uint32_t room)
{
	return sizeof(struct chunk) + (size_t)room * (sizeof(void *) + sizeof(uint32_t)) +
	       2 * sizeof(uint64_t) * words_of(room);
}

/* Where c's arrays are, were its room room. */
static struct arrays chunk_arrays(const struct chunk *c, uint32_t room)
{
	struct arrays a;
	a.item = (void **)c->item;
	a.gen = (uint32_t *)(a.item + room);
	a.occ = (uint64_t *)(a.gen + room);
	a.taken = a.occ + words_of(room);
	return a;
}

static struct arrays arrays(const struct chunk *c)
{
	return chunk_arrays(c, c->room);
}

/* Whether an item is at off of c (which may be NULL). */
static bool chunk_occ(const struct chunk *c, uint32_t off)
{
	return c && off < c->room && bit_test(arrays(c).occ, off);
}

/* The room's positions [from, to) start at generation base, free. */
static void chunk_fresh(struct chunk *c, uint32_t from, uint32_t to, uint32_t base)
{
	struct arrays a = arrays(c);
	for (uint32_t i = from; i < to; i++)
		a.gen[i] = base;
	uint32_t w = words_of(from);
	memset(a.occ + w, 0, (words_of(to) - w) * sizeof(uint64_t));
	memset(a.taken + w, 0, (words_of(to) - w) * sizeof(uint64_t));
}

static struct chunk *chunk_make(struct mslots *s, uint32_t base)
{
	struct chunk *c = malloc(chunk_size(CHUNK_MIN));
	if (!c)
		return NULL;
	c->room = CHUNK_MIN;
	chunk_fresh(c, 0, CHUNK_MIN, base);
	c->count = c->ntaken = 0;
	c->maxgen = base;
	s->chunk_bytes += chunk_size(CHUNK_MIN);
	return c;
}

/* Chunk ci's room doubles, its positions and items staying: 0, or -ENOMEM
 * (and nothing changed). Copies the room there was: O(1) amortized over
 * the adds that filled it. */
static int chunk_grow(struct mslots *s, uint32_t ci)
{
	uint32_t old = s->dir[ci]->room, room = old * 2;
	struct chunk *c = realloc(s->dir[ci], chunk_size(room));
	if (!c)
		return -ENOMEM;
	s->dir[ci] = c;
	struct arrays from = chunk_arrays(c, old), to = chunk_arrays(c, room);
	/* Each array moves up; the ones above it have moved already. */
	memmove(to.taken, from.taken, words_of(old) * sizeof(uint64_t));
	memmove(to.occ, from.occ, words_of(old) * sizeof(uint64_t));
	memmove(to.gen, from.gen, old * sizeof(uint32_t));
	c->room = room;
	/* Never handed out: they start where the chunk's positions started. */
	chunk_fresh(c, old, room, s->base[ci]);
	s->chunk_bytes += chunk_size(room) - chunk_size(old);
	return 0;
}

/* The chunk holding pos, or NULL. */
static struct chunk *chunk_of(const struct mslots *s, uint32_t pos)
{
	uint32_t ci = pos >> CHUNK_SHIFT;
	return ci < s->len ? s->dir[ci] : NULL;
}

int mslots_add(struct mslots *s, void *item, uint32_t *ret_pos)
{
	uint32_t ci = first_bit(s->nonfull, s->len, 0, 0);
	if (ci == UINT32_MAX) {
		if (s->len == max_chunks(s))
			return -ENOSPC;
		if (s->len == s->cap && grow_dir(s) < 0)
			return -ENOMEM;
		ci = s->len;
		s->dir[ci] = NULL;
		s->base[ci] = 0;
		bit_set(s->nonfull, ci);
		s->len++;
	}
	if (!s->dir[ci]) {
		s->dir[ci] = chunk_make(s, s->base[ci]);
		if (!s->dir[ci])
			return -ENOMEM;
	}
	/* The chunk has a free position: in its room, or just past it. */
	uint32_t from = 0;
	if (s->dir[ci]->ntaken == s->dir[ci]->room) {
		from = s->dir[ci]->room;
		if (chunk_grow(s, ci) < 0)
			return -ENOMEM;
	}
	struct chunk *c = s->dir[ci];
	if (s->spare == ci)
		s->spare = NO_SPARE;
	struct arrays a = arrays(c);
	uint32_t off = first_bit(a.taken, c->room, from, ~(uint64_t)0);
	bit_set(a.taken, off);
	bit_set(a.occ, off);
	a.item[off] = item;
	c->count++;
	if (++c->ntaken == CHUNK_SIZE)
		bit_clear(s->nonfull, ci);
	bit_set(s->nonempty, ci);
	s->count++;
	*ret_pos = ci << CHUNK_SHIFT | off;
	return 0;
}

void *mslots_get(const struct mslots *s, uint32_t pos)
{
	const struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1);
	return chunk_occ(c, off) ? c->item[off] : NULL;
}

void mslots_set(struct mslots *s, uint32_t pos, void *item)
{
	struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1);
	if (chunk_occ(c, off))
		c->item[off] = item;
}

/* The generation at off moves on: false when it is spent. */
static bool gen_next(const struct mslots *s, struct chunk *c, uint32_t off)
{
	uint32_t *gen = arrays(c).gen;
	if (gen[off] == s->gen_spent)
		return false;
	if (++gen[off] > c->maxgen)
		c->maxgen = gen[off];
	return true;
}

/* Chunk ci has no position taken: keep it if it is the lowest empty chunk,
 * and free the other one. */
static void chunk_emptied(struct mslots *s, uint32_t ci)
{
	if (s->spare == NO_SPARE) {
		s->spare = ci;
		return;
	}
	uint32_t victim = ci;
	if (ci < s->spare) {
		victim = s->spare;
		s->spare = ci;
	}
	struct chunk *c = s->dir[victim];
	/* A chunk whose next base would be spent is kept: it costs memory only
	 * after 4 billion uses of one position. */
	if (c->maxgen >= s->gen_spent - 1)
		return;
	s->base[victim] = c->maxgen + 1;
	s->chunk_bytes -= chunk_size(c->room);
	free(c);
	s->dir[victim] = NULL;
}

void *mslots_del(struct mslots *s, uint32_t pos)
{
	struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1), ci = pos >> CHUNK_SHIFT;
	if (!chunk_occ(c, off))
		return NULL;
	struct arrays a = arrays(c);
	void *item = a.item[off];
	bit_clear(a.occ, off);
	s->count--;
	if (--c->count == 0)
		bit_clear(s->nonempty, ci);
	gen_next(s, c, off);
	if (a.gen[off] == s->gen_spent)
		return item; /* retired: stays taken */
	bit_clear(a.taken, off);
	bit_set(s->nonfull, ci);
	if (--c->ntaken == 0)
		chunk_emptied(s, ci);
	return item;
}

uint64_t mslots_id(const struct mslots *s, uint32_t pos)
{
	const struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1);
	if (!chunk_occ(c, off))
		return 0;
	return ((uint64_t)arrays(c).gen[off] << s->pos_bits | pos) + 1;
}

bool mslots_can_bump(const struct mslots *s, uint32_t pos)
{
	const struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1);
	/* An occupied position's generation stays below GEN_SPENT: its del
	 * moves it on once more. */
	return chunk_occ(c, off) && arrays(c).gen[off] < s->gen_spent - 1;
}

int mslots_bump(struct mslots *s, uint32_t pos)
{
	if (!mslots_get(s, pos))
		return -ENOENT;
	if (!mslots_can_bump(s, pos))
		return -EOVERFLOW;
	gen_next(s, chunk_of(s, pos), pos & (CHUNK_SIZE - 1));
	return 0;
}

bool mslots_find_id(const struct mslots *s, uint64_t id, uint32_t *ret_pos)
{
	if (id == 0 || (id - 1) >> s->pos_bits > s->gen_spent)
		return false;
	uint32_t pos = (uint32_t)((id - 1) & (((uint64_t)1 << s->pos_bits) - 1));
	if (mslots_id(s, pos) != id)
		return false;
	*ret_pos = pos;
	return true;
}

bool mslots_next(const struct mslots *s, uint32_t from, uint32_t *ret_pos)
{
	if (from >> s->pos_bits)
		return false;
	uint32_t ci = from >> CHUNK_SHIFT, off = from & (CHUNK_SIZE - 1);
	for (;;) {
		const struct chunk *c = ci < s->len ? s->dir[ci] : NULL;
		if (c && c->count) {
			uint32_t b = first_bit(arrays(c).occ, c->room, off, 0);
			if (b != UINT32_MAX) {
				*ret_pos = ci << CHUNK_SHIFT | b;
				return true;
			}
		}
		ci = first_bit(s->nonempty, s->len, ci + 1, 0);
		if (ci == UINT32_MAX)
			return false;
		off = 0;
	}
}
