/* SPDX-License-Identifier: MIT */
/* What core/registry*.c share: the registry's entries, the tables that
 * hold them, and the helpers they lend each other. Private to those files;
 * everything else goes through registry.h, which also describes the locks. The helpers that touch
 * the registry's tables or watches expect its lock held. */
#ifndef MALLAFS_CORE_REGISTRY_I_H
#define MALLAFS_CORE_REGISTRY_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "registry.h"

_Static_assert(sizeof(pid_t) == sizeof(int), "pid_t is assumed to be an int");

/* An intrusive chained hash table. It never fails to insert: growing is
 * best effort, so that once an operation has allocated its entry up front
 * nothing after the point of no return can fail. It grows without a pause:
 * the new bucket array takes over at once and each insert, remove and find
 * then moves a few of the old array's buckets into it (as Redis's dict
 * does), so no call costs more than O(1) buckets, whatever the size. */
struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htab {
	struct hnode **b;
	size_t nb; /* a power of two */
	size_t n;
	/* While growing: the old buckets, of which the first moved are
	 * empty (moved into b); NULL otherwise. */
	struct hnode **old;
	size_t onb, moved;
};

struct mslots;
struct pidw;

/* Another node, named once however many entries it holds here: an entry
 * of another node points at it, and the last one going frees it. */
struct mreg_node {
	struct mreg_node *next, **pprev; /* in mreg.nodes */
	size_t refs;
	char name[];
};

/* One entry: a unique name ('n'), a pool ('p') or a pool member ('m'). */
struct ent {
	struct hnode h; /* in mreg.names ('n', 'p') or the pool's members ('m') */
	char kind;
	uint32_t pos; /* in mreg.top ('n', 'p') or the pool's members ('m') */
	char *name;   /* a member's name is its PID in canonical decimal */
	/* 'n' and 'm': NULL for this node's, or the node holding it (then
	 * no watch: its node's daemon deletes it; a member's file is
	 * "PID@NODE" while name stays the PID) */
	struct mreg_node *node;
	uint64_t id;
	struct timespec mtime;

	/* 'n' and 'm': the holder, named for good by its PID and start time
	 * (mproc_starttime), read when it registered. */
	pid_t pid;
	uid_t uid;
	uint64_t starttime;
	char *value; /* 'n': NULL when none; 'm': never NULL */
	struct pidw *w;
	struct ent *wprev, *wnext;
	struct ent *pool; /* 'm' */

	/* 'p' */
	struct htab members;
	struct mslots *slots; /* its members, at stable positions (listing); NULL: none */
};

/* The watch of one process: its pidfd sits in the epoll set while at least
 * one entry is held by it, so the number of entries is the refcount. */
struct pidw {
	struct hnode h; /* in mreg.pids */
	pid_t pid;
	int fd;
	size_t refs;
	uint64_t starttime; /* the process's, for exited() */
	struct pidw *dead;  /* in mreg.dead once reaped (cluster mode) */
	struct ent *first, *last;
};

struct mreg {
	pthread_mutex_t lock;
	struct mev_ring *ring;
	struct htab names;  /* unique names and pools share one namespace */
	struct mslots *top; /* the same, at stable positions (listing) */
	struct htab pids;
	uint64_t last_id;
	uint64_t list_steps;       /* entries the listings looked at (mreg_list_steps) */
	struct mreg_counts counts; /* kept by mreg_ent_place, _unplace and pool removal */
	int epfd;
	int stopfd;
	pthread_t thread;
	bool thread_started;

	/* Cluster mode (mreg_set_remote): the hooks, this node's name and the
	 * change lock, taken before the lock by this node's writers only. */
	pthread_mutex_t change;
	bool cluster;
	struct mreg_remote remote;
	void *remote_arg;
	char *node;
	struct mreg_node *nodes; /* the other nodes that have entries here */
	/* Watches of processes reaped with the lock held, whose exited() is
	 * called by mreg_unlock once the lock is dropped (cluster mode). */
	struct pidw *dead;
};

/* registry.c's helpers, shared with registry_pools.c, registry_list.c
 * and registry_remote.c. */
/* A decimal PID, > 0; canonical: no leading zero (a file name). -EINVAL. */
int mreg_parse_pid(const char *s, size_t len, bool canonical, pid_t *ret);
/* "PID@NODE" (digits, '@', [A-Za-z0-9._-]+): another node's process. */
bool mreg_remote_form(const char *s, size_t len);
/* A value is one line of text: -EINVAL for '\n' or '\0' in it. */
int mreg_check_value(const char *value, size_t len);
/* The pool called name, a member ("PID" or "PID@NODE") of pool, or any
 * entry (member NULL: a name or a pool); the lock is held. -ENOENT, and
 * -ENOTDIR when a "pool" is a name. */
int mreg_find_pool(struct mreg *reg, const char *name, struct ent **ret);
int mreg_find_member(struct mreg *reg, const char *pool, const char *member, struct ent **ret);
int mreg_find_any(struct mreg *reg, const char *name, const char *member, struct ent **ret);
/* Cluster mode, the change lock and the lock held: asks the shared
 * store's hold() with the lock dropped (exits reaped so far are told
 * first). 0 with the lock held again; its refusal with the lock dropped. */
int mreg_ask_hold(struct mreg *reg, const struct mreg_saved *s);
/* Another node's holder of name still shown after the shared store has
 * just given name to this node is stale: it goes (unregister event). */
void mreg_drop_stale(struct mreg *reg, const char *name);
/* Undoes a hold() whose change could not be made here (release(), value
 * NULL); a failure is logged: the engine's resync settles it. */
void mreg_undo_hold(struct mreg *reg, const struct mreg_saved *s);
/* mkdir of a pool without the shared store's hook (mreg_restore). */
int mreg_pool_make_here(struct mreg *reg, const char *pool);

int mreg_htab_init(struct htab *t, size_t nb);
/* Never fails: see struct htab. */
void mreg_htab_insert(struct htab *t, struct hnode *n, uint64_t hash);
void mreg_htab_remove(struct htab *t, struct hnode *n);
void mreg_htab_fini(struct htab *t);
/* The node of hash that match accepts, or NULL. */
struct hnode *mreg_htab_find(struct htab *t, uint64_t hash,
                             bool (*match)(const struct hnode *n, const void *key),
                             const void *key);

uint64_t mreg_name_hash(const char *name);
/* The name or pool called name in mreg.names, or NULL. */
struct ent *mreg_ent_find(struct htab *t, const char *name);
/* The member of a pool called pid (its PID as text) of node (NULL: this
 * node's), or NULL. */
struct ent *mreg_member_find(struct ent *pool, const char *pid, const struct mreg_node *node);
/* The other node called name that has entries here, or NULL. */
struct mreg_node *mreg_node_find(struct mreg *reg, const char *name);
/* The node called name, found or made of *spare (then taken: set to NULL),
 * with one more reference; mreg_ent_free drops an entry's. */
struct mreg_node *mreg_node_get(struct mreg *reg, const char *name, struct mreg_node **spare);
void mreg_node_unref(struct mreg_node *n);
/* The file name of e: its name, or "PID@NODE" for another node's member. */
const char *mreg_ent_fname(const struct ent *e, char *buf, size_t len);
/* Unlocks the registry, then tells the shared store of the processes
 * reaped meanwhile (exited()). Used wherever a reap may have happened. */
void mreg_unlock(struct mreg *reg);
/* Puts a new entry in its table's slots (mreg.top or its pool's, made for
 * the pool's first member) and gives it an id; -ENOMEM, -ENOSPC, before
 * anything changed. */
int mreg_ent_place(struct mreg *reg, struct ent *e);
/* Takes it out of its table's slots; a pool's last member frees them. */
void mreg_ent_unplace(struct mreg *reg, struct ent *e);
void mreg_ent_free(struct ent *e);
void mreg_ent_path(char *buf, size_t len, const struct ent *e);
void mreg_emit_register(struct mreg *reg, const struct ent *e);

/* Remove a unique name or a pool member, its watch and all, with an
 * unregister event carrying detail (may be NULL). */
void mreg_remove_name(struct mreg *reg, struct ent *e, const char *detail);
void mreg_remove_member(struct mreg *reg, struct ent *m, const char *detail);
/* Removes a pool with the members it still has (an unregister event for
 * each, then its rmdir event). */
void mreg_remove_pool(struct mreg *reg, struct ent *p);
/* Removes the entries of pid if it has exited. */
void mreg_reap_if_exited(struct mreg *reg, pid_t pid);
/* The live watch of pid, or a new one made of *fd and *spare (both taken,
 * then set to -1 and NULL). */
int mreg_pidw_get(struct mreg *reg, pid_t pid, uint64_t starttime, int *fd, struct pidw **spare,
                  struct pidw **ret);
/* e's holder is w's process: one more reference to the watch. */
void mreg_pidw_attach(struct pidw *w, struct ent *e);

#endif
