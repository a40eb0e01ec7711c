/* A table of stable positions (slots.h): chunks of 4096 positions that never
 * move, found through a small directory of chunk pointers that doubles.
 *
 * Each chunk holds its items, a generation per position and two bitmaps:
 * occ (an item is there) and taken (an item is there or the position is
 * retired: its generation is spent). The directory keeps, per chunk index,
 * a bit "nonfull" (the chunk is absent or has a position not taken), a bit
 * "nonempty" (the chunk has an item) and the generation its positions start
 * at when the chunk is made again (base). So the lowest free position is
 * found by one scan of the nonfull words (a word per 64 chunks) and one of
 * the chunk's 64 taken words, and a listing skips free positions 64 at a
 * time and empty chunks 64 at a time.
 *
 * Ids never repeat: a position's generation only moves on (on every del and
 * bump); a chunk that becomes empty may be freed, and then records in base
 * one past the highest generation it ever had, so its positions start above
 * everything they named before. A position whose generation is spent
 * (GEN_SPENT) stays taken for good. Of the empty chunks only the lowest is
 * kept (spare), so adding and deleting at a chunk's edge does not make and
 * free a chunk each time: a chunk is made again only after a whole chunk was
 * emptied, so making one (4096 generations to set) is O(1) amortized. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slots.h"

#define CHUNK_SHIFT 12
#define CHUNK_SIZE ((uint32_t)1 << CHUNK_SHIFT)
#define CHUNK_WORDS (CHUNK_SIZE / 64)
/* A generation that can no longer move on: the position is retired. */
#define GEN_SPENT UINT32_MAX
#define NO_SPARE UINT32_MAX

struct chunk {
	void *item[CHUNK_SIZE]; /* valid where occ is set */
	uint32_t gen[CHUNK_SIZE];
	uint64_t occ[CHUNK_WORDS];
	uint64_t taken[CHUNK_WORDS]; /* occ, and the retired positions */
	uint32_t count;              /* bits in occ */
	uint32_t ntaken;             /* bits in taken */
	uint32_t maxgen;             /* the highest generation any position ever had */
};

struct mslots {
	struct chunk **dir; /* [cap], NULL: absent (never made, or freed) */
	uint32_t *base;     /* [cap] */
	uint64_t *nonfull;  /* [words(cap)]: bits below len only */
	uint64_t *nonempty; /* [words(cap)] */
	uint32_t len;       /* chunk indices ever used */
	uint32_t cap;
	uint32_t spare; /* the one empty chunk kept, or NO_SPARE */
	uint32_t nchunks;
	size_t count;
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
	       2 * sizeof(uint64_t) * words_of(s->cap) + (size_t)s->nchunks * sizeof(struct chunk);
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

static struct chunk *chunk_make(uint32_t base)
{
	struct chunk *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	for (uint32_t i = 0; i < CHUNK_SIZE; i++)
		c->gen[i] = base;
	memset(c->occ, 0, sizeof(c->occ));
	memset(c->taken, 0, sizeof(c->taken));
	c->count = c->ntaken = 0;
	c->maxgen = base;
	return c;
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
	struct chunk *c = s->dir[ci];
	if (!c) {
		c = chunk_make(s->base[ci]);
		if (!c)
			return -ENOMEM;
		s->dir[ci] = c;
		s->nchunks++;
	}
	if (s->spare == ci)
		s->spare = NO_SPARE;
	uint32_t off = first_bit(c->taken, CHUNK_SIZE, 0, ~(uint64_t)0);
	bit_set(c->taken, off);
	bit_set(c->occ, off);
	c->item[off] = item;
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
	return c && bit_test(c->occ, off) ? c->item[off] : NULL;
}

void mslots_set(struct mslots *s, uint32_t pos, void *item)
{
	struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1);
	if (c && bit_test(c->occ, off))
		c->item[off] = item;
}

/* The generation at off moves on: false when it is spent. */
static bool gen_next(const struct mslots *s, struct chunk *c, uint32_t off)
{
	if (c->gen[off] == s->gen_spent)
		return false;
	if (++c->gen[off] > c->maxgen)
		c->maxgen = c->gen[off];
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
	free(c);
	s->dir[victim] = NULL;
	s->nchunks--;
}

void *mslots_del(struct mslots *s, uint32_t pos)
{
	struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1), ci = pos >> CHUNK_SHIFT;
	if (!c || !bit_test(c->occ, off))
		return NULL;
	void *item = c->item[off];
	bit_clear(c->occ, off);
	s->count--;
	if (--c->count == 0)
		bit_clear(s->nonempty, ci);
	gen_next(s, c, off);
	if (c->gen[off] == s->gen_spent)
		return item; /* retired: stays taken */
	bit_clear(c->taken, off);
	bit_set(s->nonfull, ci);
	if (--c->ntaken == 0)
		chunk_emptied(s, ci);
	return item;
}

uint64_t mslots_id(const struct mslots *s, uint32_t pos)
{
	const struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1);
	if (!c || !bit_test(c->occ, off))
		return 0;
	return ((uint64_t)c->gen[off] << s->pos_bits | pos) + 1;
}

bool mslots_can_bump(const struct mslots *s, uint32_t pos)
{
	const struct chunk *c = chunk_of(s, pos);
	uint32_t off = pos & (CHUNK_SIZE - 1);
	/* An occupied position's generation stays below GEN_SPENT: its del
	 * moves it on once more. */
	return c && bit_test(c->occ, off) && c->gen[off] < s->gen_spent - 1;
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
			uint32_t b = first_bit(c->occ, CHUNK_SIZE, off, 0);
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
