/* SPDX-License-Identifier: MIT */
/* The inode table: O(1) lookup by inode number and by (parent, name).
 *
 * Inode numbers are never reused, so the generation is always 0. Most come
 * from a 64-bit counter. A store key's is made of its store's number and
 * the key's id in the store (key_ino below), which core never reuses
 * either: the table needs no node for the keys the kernel holds, so a
 * million keys the kernel has looked up cost the daemon nothing here. The
 * kernel's lookups of a store's keys are counted together on the store's
 * node (key_lookups), which lives while any is held, so the number stays
 * the store's until the kernel has forgotten every key inode carrying it.
 *
 * A node lives while the kernel holds a lookup reference to it (nlookup,
 * key_lookups) or we do (refs: its children, requests in flight, open
 * files that poll or hold a truncation); a removed object's node is
 * unhashed at once, so a new object of the same name gets a new inode. A
 * key's node is made when a request names the key (by name, or by inode
 * number: the key's name is then asked of core by id) and, once unused,
 * waits on the idle list for MAX_IDLE newer ones before it goes: what it
 * knows of the kernel's page cache of the value is kept for keys in use. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "service.h"
#include "util.h"

#define INITIAL_BUCKETS 1024
#define MAX_IDLE 4096

/* A key's inode number: KEY_TAG, the store's number, the key's id (under
 * 2^MKV_ID_BITS: kv.h). Counter inode numbers stay below 2^61, and the
 * stand-ins of readdir (dirbuf.c) have bit 61 set and bit 62 clear. */
#define KEY_TAG ((uint64_t)1 << 62)
#define STORE_BITS (62 - MKV_ID_BITS)
#define MAX_STORES ((uint32_t)1 << STORE_BITS)

_Static_assert(MKV_ID_BITS >= 40 && MKV_ID_BITS <= 48, "room for the stores' numbers");

/* The services whose last node went, to be dropped once fs->lock is
 * released (dropping the last reference frees the service's plugins). A
 * release frees at most one service node, and with the idle key it pushes
 * out at most one more; a rename releases two nodes. */
struct drops {
	struct mallafs_svc *svc[4];
	unsigned n;
};

static void drop_add(struct drops *d, struct mallafs_svc *svc)
{
	if (svc && d->n < sizeof(d->svc) / sizeof(d->svc[0]))
		d->svc[d->n++] = svc;
	else if (svc)
		mu_log(MU_LOG_ERR, "fs: a service's last reference is kept (too many at once)");
}

static void drops_run(struct drops *d)
{
	for (unsigned i = 0; i < d->n; i++)
		msvc_unref(d->svc[i]);
}

bool mfs_ino_is_key(uint64_t ino)
{
	return (ino & KEY_TAG) && !(ino & ((uint64_t)1 << 63));
}

/* A key's node, by its inode number (a stand-in of a gone key has a
 * counter's: echo.c). */
static bool is_key_node(const struct mnode *n)
{
	return mfs_ino_is_key(n->ino);
}

static uint32_t key_store_no(uint64_t ino)
{
	return (uint32_t)((ino & ~KEY_TAG) >> MKV_ID_BITS);
}

static uint64_t key_id(uint64_t ino)
{
	return ino & (((uint64_t)1 << MKV_ID_BITS) - 1);
}

/* A store node's number is set when it is made and never changes: read
 * without fs->lock, as its kind and ino are (a listing asks per key). */
static uint64_t key_ino(const struct mnode *store, uint64_t id)
{
	if (!store->store_no || id == 0 || id >> MKV_ID_BITS)
		return 0;
	return KEY_TAG | (uint64_t)store->store_no << MKV_ID_BITS | id;
}

uint64_t mfs_key_ino(struct mfs *fs, struct mnode *store, uint64_t id)
{
	return key_ino(store, id);
}

/* The store node of number no, or NULL (no store has it now). */
static struct mnode *store_by_no_locked(struct mfs *fs, uint32_t no)
{
	return fs->stores && no <= fs->nstores ? fs->stores[no] : NULL;
}

/* A number for a new store node, or 0 when all are taken (its keys then
 * get nodes of their own, as before a million keys mattered). */
static uint32_t store_no_take(struct mfs *fs, struct mnode *n)
{
	uint32_t no;
	if (fs->nstores_free) {
		no = fs->stores_free[--fs->nstores_free];
	} else {
		if (fs->nstores + 1 >= MAX_STORES)
			return 0;
		if (fs->nstores + 1 >= fs->stores_cap) {
			uint32_t cap = fs->stores_cap ? fs->stores_cap * 2 : 64;
			struct mnode **st = realloc(fs->stores, cap * sizeof(*st));
			if (!st)
				return 0;
			fs->stores = st;
			uint32_t *fr = realloc(fs->stores_free, cap * sizeof(*fr));
			if (!fr)
				return 0;
			fs->stores_free = fr;
			fs->stores_cap = cap;
		}
		no = ++fs->nstores;
	}
	fs->stores[no] = n;
	return no;
}

static void store_no_give(struct mfs *fs, uint32_t no)
{
	if (!no)
		return;
	fs->stores[no] = NULL;
	fs->stores_free[fs->nstores_free++] = no;
}

static void idle_remove(struct mfs *fs, struct mnode *n)
{
	if (!n->idle)
		return;
	if (n->idle_prev)
		n->idle_prev->idle_next = n->idle_next;
	else
		fs->idle_head = n->idle_next;
	if (n->idle_next)
		n->idle_next->idle_prev = n->idle_prev;
	else
		fs->idle_tail = n->idle_prev;
	n->idle_prev = n->idle_next = NULL;
	n->idle = false;
	fs->nidle--;
}

static void idle_push(struct mfs *fs, struct mnode *n)
{
	n->idle = true;
	n->idle_next = NULL;
	n->idle_prev = fs->idle_tail;
	if (fs->idle_tail)
		fs->idle_tail->idle_next = n;
	else
		fs->idle_head = n;
	fs->idle_tail = n;
	fs->nidle++;
}

static size_t ino_slot(const struct mfs *fs, uint64_t ino)
{
	return (size_t)(ino * 0x9e3779b97f4a7c15ULL >> 17) & (fs->nbuckets - 1);
}

static size_t name_slot(const struct mfs *fs, uint64_t parent, const char *name)
{
	uint64_t h = mu_hash(name, strlen(name)) ^ (parent * 0x9e3779b97f4a7c15ULL);
	return (size_t)(h ^ (h >> 29)) & (fs->nbuckets - 1);
}

static void name_link(struct mfs *fs, struct mnode *n)
{
	size_t s = name_slot(fs, n->parent->ino, n->name);
	n->name_next = fs->by_name[s];
	fs->by_name[s] = n;
	n->hashed = true;
}

static void name_unlink(struct mfs *fs, struct mnode *n)
{
	if (!n->hashed)
		return;
	struct mnode **pp = &fs->by_name[name_slot(fs, n->parent->ino, n->name)];
	while (*pp && *pp != n)
		pp = &(*pp)->name_next;
	if (*pp)
		*pp = n->name_next;
	n->name_next = NULL;
	n->hashed = false;
}

/* Doubles both tables when they fill up; on failure they just stay. */
static void maybe_grow(struct mfs *fs)
{
	if (fs->count < fs->nbuckets)
		return;
	size_t nb = fs->nbuckets * 2;
	struct mnode **bi = calloc(nb, sizeof(*bi));
	struct mnode **bn = calloc(nb, sizeof(*bn));
	if (!bi || !bn) {
		free(bi);
		free(bn);
		return;
	}
	struct mnode **oi = fs->by_ino;
	size_t ob = fs->nbuckets;
	fs->by_ino = bi;
	fs->nbuckets = nb;
	for (size_t i = 0; i < ob; i++) {
		struct mnode *n = oi[i];
		while (n) {
			struct mnode *next = n->ino_next;
			size_t s = ino_slot(fs, n->ino);
			n->ino_next = bi[s];
			bi[s] = n;
			n = next;
		}
	}
	free(oi);
	struct mnode **on = fs->by_name;
	fs->by_name = bn;
	for (size_t i = 0; i < ob; i++) {
		struct mnode *n = on[i];
		while (n) {
			struct mnode *next = n->name_next;
			n->hashed = false;
			name_link(fs, n);
			n = next;
		}
	}
	free(on);
}

/* A new node, hashed; ino 0: the next number of the counter. */
static struct mnode *node_new_locked(struct mfs *fs, struct mnode *parent, const char *name,
                                     enum mnode_kind kind, uint64_t obj_id, uint64_t ino)
{
	struct mnode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	if (kind == N_STORE)
		n->store_no = store_no_take(fs, n);
	n->ino = ino ? ino : fs->next_ino++;
	n->kind = kind;
	n->obj_id = obj_id;
	n->parent = parent;
	if (parent)
		parent->refs++;
	size_t s = ino_slot(fs, n->ino);
	n->ino_next = fs->by_ino[s];
	fs->by_ino[s] = n;
	fs->count++;
	if (parent)
		name_link(fs, n);
	maybe_grow(fs);
	return n;
}

static void node_free_locked(struct mfs *fs, struct mnode *n, struct drops *d);

/* The oldest idle key node goes, if there are too many. */
static void idle_trim(struct mfs *fs, struct drops *d)
{
	if (fs->nidle <= MAX_IDLE)
		return;
	struct mnode *n = fs->idle_head;
	idle_remove(fs, n);
	name_unlink(fs, n);
	node_free_locked(fs, n, d);
}

/* Whether top is n or above it. */
static bool under(const struct mnode *n, const struct mnode *top)
{
	for (; n; n = n->parent)
		if (n == top)
			return true;
	return false;
}

/* Makes n unfindable by name. A service or store that goes takes the idle
 * key nodes below it along: they would keep it, its service and the
 * service's memory, for nothing. */
static void unhash_locked(struct mfs *fs, struct mnode *n, struct drops *d)
{
	name_unlink(fs, n);
	if (n->kind != N_SVC && n->kind != N_STORE)
		return;
	n->refs++; /* what is freed below stops at n */
	struct mnode *k = fs->idle_head;
	while (k) {
		struct mnode *next = k->idle_next;
		if (under(k, n)) {
			idle_remove(fs, k);
			name_unlink(fs, k);
			node_free_locked(fs, k, d);
		}
		k = next;
	}
	n->refs--;
}

/* Frees n if nothing holds it, then its parent likewise. A key node still
 * findable by name goes idle instead (see the top). */
static void node_free_locked(struct mfs *fs, struct mnode *n, struct drops *d)
{
	while (n && n != fs->root && n->nlookup == 0 && n->refs == 0 && n->key_lookups == 0) {
		if (is_key_node(n) && n->hashed) {
			if (!n->idle) {
				idle_push(fs, n);
				idle_trim(fs, d);
			}
			return;
		}
		idle_remove(fs, n);
		struct mnode *parent = n->parent;
		name_unlink(fs, n);
		struct mnode **pp = &fs->by_ino[ino_slot(fs, n->ino)];
		while (*pp && *pp != n)
			pp = &(*pp)->ino_next;
		if (*pp)
			*pp = n->ino_next;
		fs->count--;
		if (n->svc)
			drop_add(d, n->svc); /* one service node on the way up, at most */
		store_no_give(fs, n->store_no);
		free(n->name);
		free(n);
		if (!parent)
			break;
		parent->refs--;
		n = parent;
	}
}

int mfs_nodes_init(struct mfs *fs)
{
	fs->nbuckets = INITIAL_BUCKETS;
	fs->by_ino = calloc(fs->nbuckets, sizeof(*fs->by_ino));
	fs->by_name = calloc(fs->nbuckets, sizeof(*fs->by_name));
	if (!fs->by_ino || !fs->by_name)
		return -ENOMEM;
	fs->next_ino = 1;
	fs->root = node_new_locked(fs, NULL, "", N_ROOT, 0, 0);
	if (!fs->root)
		return -ENOMEM;
	fs->root->nlookup = 1;
	return 0;
}

void mfs_nodes_fini(struct mfs *fs)
{
	for (size_t i = 0; fs->by_ino && i < fs->nbuckets; i++) {
		struct mnode *n = fs->by_ino[i];
		while (n) {
			struct mnode *next = n->ino_next;
			if (n->svc)
				msvc_unref(n->svc);
			free(n->name);
			free(n);
			n = next;
		}
	}
	free(fs->by_ino);
	free(fs->by_name);
	free(fs->stores);
	free(fs->stores_free);
	fs->by_ino = fs->by_name = NULL;
	fs->stores = NULL;
	fs->stores_free = NULL;
}

static struct mnode *get_locked(struct mfs *fs, uint64_t ino)
{
	for (struct mnode *n = fs->by_ino[ino_slot(fs, ino)]; n; n = n->ino_next)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* Another reference to n, which may be idle. */
static void use_locked(struct mfs *fs, struct mnode *n)
{
	idle_remove(fs, n);
	n->refs++;
}

static struct mnode *find_locked(struct mfs *fs, struct mnode *parent, const char *name)
{
	for (struct mnode *n = fs->by_name[name_slot(fs, parent->ino, name)]; n; n = n->name_next)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

/* The key node of ino (which store's node holds) for the key called name,
 * referenced: the one in the table, or a new one, hashed (a node of an
 * older key of that name is unhashed). NULL when out of memory. */
static struct mnode *key_node_locked(struct mfs *fs, struct mnode *store, const char *name,
                                     uint64_t ino, struct drops *d)
{
	struct mnode *n = get_locked(fs, ino);
	if (n && strcmp(n->name, name) != 0 && n->hashed) {
		/* Renamed behind the table's back: it moves to its new name. */
		char *nn = strdup(name);
		if (nn) {
			name_unlink(fs, n);
			free(n->name);
			n->name = nn;
			name_link(fs, n);
		}
	}
	if (!n) {
		struct mnode *old = find_locked(fs, store, name);
		if (old) {
			name_unlink(fs, old);
			node_free_locked(fs, old, d);
		}
		n = node_new_locked(fs, store, name, N_KEY, key_id(ino), ino);
	}
	if (n)
		use_locked(fs, n);
	return n;
}

/* A key the kernel names by inode number and the table has no node for:
 * its name is core's, asked by id (the store lock, not fs->lock). */
static struct mnode *key_node_by_ino(struct mfs *fs, uint64_t ino)
{
	char name[MU_NAME_MAX + 1];
	struct drops d = {{0}, 0};
	pthread_mutex_lock(&fs->lock);
	uint32_t no = key_store_no(ino);
	struct mnode *store = store_by_no_locked(fs, no);
	struct mallafs_svc *svc = NULL;
	if (store) {
		store->refs++;
		svc = mfs_node_svc_locked(store);
	}
	pthread_mutex_unlock(&fs->lock);
	if (!store)
		return NULL;

	int r = svc ? msvc_store_key_name(svc, key_id(ino), name, sizeof(name)) : -ENOENT;
	msvc_unref(svc);

	pthread_mutex_lock(&fs->lock);
	struct mnode *n = get_locked(fs, ino); /* another request may have made it */
	if (n)
		use_locked(fs, n);
	else if (r == 0)
		n = key_node_locked(fs, store, name, ino, &d);
	store->refs--;
	node_free_locked(fs, store, &d);
	pthread_mutex_unlock(&fs->lock);
	drops_run(&d);
	return n;
}

struct mnode *mfs_node_get(struct mfs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = get_locked(fs, ino);
	if (n)
		use_locked(fs, n);
	pthread_mutex_unlock(&fs->lock);
	if (!n && mfs_ino_is_key(ino))
		n = key_node_by_ino(fs, ino);
	return n;
}

void mfs_node_ref(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	use_locked(fs, n);
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_put(struct mfs *fs, struct mnode *n)
{
	if (!n)
		return;
	struct drops d = {{0}, 0};
	pthread_mutex_lock(&fs->lock);
	n->refs--;
	node_free_locked(fs, n, &d);
	pthread_mutex_unlock(&fs->lock);
	drops_run(&d);
}

static struct mnode *find(struct mfs *fs, struct mnode *parent, const char *name, bool may_ask)
{
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = find_locked(fs, parent, name);
	if (n)
		use_locked(fs, n);
	/* A key has no node just for being held by the kernel: if the kernel
	 * may hold any of the store's, the key's node is made. */
	bool ask = may_ask && !n && parent->kind == N_STORE && parent->key_lookups > 0;
	struct mallafs_svc *svc = ask ? mfs_node_svc_locked(parent) : NULL;
	pthread_mutex_unlock(&fs->lock);
	if (!svc)
		return n;
	struct mkv_stat st;
	int r = msvc_store_stat(svc, name, &st);
	msvc_unref(svc);
	return r == 0 ? mfs_node_child(fs, parent, name, N_KEY, st.id) : NULL;
}

struct mnode *mfs_node_find(struct mfs *fs, struct mnode *parent, const char *name)
{
	return find(fs, parent, name, false);
}

struct mnode *mfs_node_find_held(struct mfs *fs, struct mnode *parent, const char *name)
{
	return find(fs, parent, name, true);
}

struct mnode *mfs_node_child(struct mfs *fs, struct mnode *parent, const char *name,
                             enum mnode_kind kind, uint64_t obj_id)
{
	struct drops d = {{0}, 0};
	struct mnode *n = NULL;
	pthread_mutex_lock(&fs->lock);
	/* A key gets its inode number from its id; without one (a stand-in,
	 * or all stores' numbers taken) a node of its own, as anything else. */
	uint64_t ino = kind == N_KEY ? key_ino(parent, obj_id) : 0;
	if (ino) {
		n = key_node_locked(fs, parent, name, ino, &d);
		pthread_mutex_unlock(&fs->lock);
		drops_run(&d);
		return n;
	}
	n = find_locked(fs, parent, name);
	if (n && (n->kind != kind || (obj_id && n->obj_id && n->obj_id != obj_id))) {
		/* Another object under the same name: it gets its own inode. */
		unhash_locked(fs, n, &d);
		node_free_locked(fs, n, &d);
		n = NULL;
	}
	if (n && obj_id && !n->obj_id)
		n->obj_id = obj_id; /* a pending node became the real thing */
	if (!n)
		n = node_new_locked(fs, parent, name, kind, obj_id, 0);
	if (n)
		use_locked(fs, n);
	pthread_mutex_unlock(&fs->lock);
	drops_run(&d);
	return n;
}

void mfs_node_unhash(struct mfs *fs, struct mnode *parent, const char *name)
{
	struct drops d = {{0}, 0};
	pthread_mutex_lock(&fs->lock);
	struct mnode *n = find_locked(fs, parent, name);
	if (n) {
		unhash_locked(fs, n, &d);
		node_free_locked(fs, n, &d);
	}
	pthread_mutex_unlock(&fs->lock);
	drops_run(&d);
}

void mfs_node_move(struct mfs *fs, struct mnode *parent, const char *name, struct mnode *newparent,
                   const char *newname, uint64_t new_id)
{
	struct drops d = {{0}, 0};
	pthread_mutex_lock(&fs->lock);
	struct mnode *target = find_locked(fs, newparent, newname);
	struct mnode *n = find_locked(fs, parent, name);
	if (target && target != n) {
		unhash_locked(fs, target, &d);
		node_free_locked(fs, target, &d);
	}
	if (n) {
		char *nn = strdup(newname);
		name_unlink(fs, n);
		/* A key keeps its id, and its inode number, through a rename in
		 * its store (kv.h): nothing else may move a key's node. */
		bool keep = !is_key_node(n) || (newparent == n->parent && new_id == n->obj_id);
		if (nn && keep) {
			free(n->name);
			n->name = nn;
			if (newparent != n->parent) {
				newparent->refs++;
				n->parent->refs--;
				/* The old parent is still referenced by the caller. */
				n->parent = newparent;
			}
			n->obj_id = new_id;
			name_link(fs, n);
		} else {
			free(nn);
			node_free_locked(fs, n, &d);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	drops_run(&d);
}

void mfs_node_lookup_inc(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	if (is_key_node(n))
		n->parent->key_lookups++;
	else
		n->nlookup++;
	pthread_mutex_unlock(&fs->lock);
}

static uint64_t minus(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

void mfs_node_forget(struct mfs *fs, uint64_t ino, uint64_t nlookup)
{
	struct drops d = {{0}, 0};
	pthread_mutex_lock(&fs->lock);
	if (mfs_ino_is_key(ino)) {
		uint32_t no = key_store_no(ino);
		struct mnode *store = store_by_no_locked(fs, no);
		if (store) {
			store->key_lookups = minus(store->key_lookups, nlookup);
			node_free_locked(fs, store, &d);
		}
	} else {
		struct mnode *n = get_locked(fs, ino);
		if (n && n != fs->root) {
			n->nlookup = minus(n->nlookup, nlookup);
			node_free_locked(fs, n, &d);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	drops_run(&d);
}

void mfs_node_set_svc(struct mfs *fs, struct mnode *n, struct mallafs_svc *svc)
{
	pthread_mutex_lock(&fs->lock);
	if (!n->svc)
		n->svc = msvc_ref(svc);
	pthread_mutex_unlock(&fs->lock);
}

void mfs_node_unhash_self(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	name_unlink(fs, n);
	pthread_mutex_unlock(&fs->lock);
}
