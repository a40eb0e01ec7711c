/* SPDX-License-Identifier: MIT */
/* The process registry (Malla's Registry): unique names held by live
 * processes and pools of PID -> value; every entry of a process goes when
 * it exits (pidfd + epoll on a watcher thread, no polling of /proc).
 * Thread-safe. Paths in events are "registry/NAME" and "registry/POOL/PID".
 *
 * Locks: one mutex guards the tables and the process watches; the watcher
 * thread ("mallafs-reg", signals blocked) takes it to remove the entries of
 * a process that exited. Events are emitted with it held, so the event
 * ring's lock comes after it and event listeners must not call into the
 * registry. It is never held across /proc reads or pidfd_open. The
 * listing callbacks of mreg_list and mreg_pool_list run with it held and must
 * not call into the registry either.
 *
 * In cluster mode (mreg_set_remote) a second mutex, the change lock,
 * serialises the writers of this node's entries (register, store, rm,
 * mkdir, rmdir, revert): taken before the registry's lock and held across
 * the shared store's hooks, which run with the registry's lock dropped, so
 * readers, listings, the watcher thread and the mirror (none of which take
 * the change lock) never wait for the shared store. Order: change lock,
 * then the registry's lock, then the event ring's. */
#ifndef MALLAFS_CORE_REGISTRY_H
#define MALLAFS_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mev_ring;
struct mreg;

/* ring may be NULL. Starts the watcher thread. NULL on failure (errno set). */
struct mreg *mreg_new(struct mev_ring *ring);
/* Stops the watcher and frees everything; accepts NULL. */
void mreg_free(struct mreg *reg);

/* Parses "PID[ VALUE]" (one trailing newline dropped) as written to
 * registry/NAME, and registers. caller is the writer's uid (0: root).
 * -EINVAL: bad name or not a PID; -ESRCH: no such process; -EPERM: caller is
 * neither root nor the process's owner; -EEXIST: held by another live process,
 * or NAME is a pool. The same PID registering again replaces its value. */
int mreg_register_text(struct mreg *reg, const char *name, const char *text, size_t len,
                       uid_t caller);
/* The same with the parts given; value may be NULL (no value). */
int mreg_register(struct mreg *reg, const char *name, pid_t pid, const char *value, uid_t caller);
int mreg_unregister(struct mreg *reg, const char *name); /* -ENOENT */
/* What `cat registry/NAME` prints: "PID\n" or "PID VALUE\n" (malloc'd). */
int mreg_render(struct mreg *reg, const char *name, char **ret_text, size_t *ret_len);
int mreg_lookup(struct mreg *reg, const char *name, pid_t *ret_pid, char **ret_value);

/* Undoes one writer's registration (the earlier part of a document that
 * was then refused): when name (pool's member, pool not NULL) still holds
 * exactly what cat printed after the writer's change (wrote), it goes back
 * to what cat printed before (before; NULL: it goes, as with rm). 0,
 * -ESTALE when it changed meanwhile (it stays), -ENOENT. */
int mreg_revert(struct mreg *reg, const char *pool, const char *name, const char *wrote,
                const char *before);

/* Pools. mreg_pool_make says who made it (the hold hook's uid in cluster
 * mode); mreg_pool_create is mreg_pool_make by root. */
int mreg_pool_make(struct mreg *reg, const char *pool, uid_t creator);
int mreg_pool_create(struct mreg *reg, const char *pool); /* -EEXIST, -EINVAL */
/* -ENOENT, -ENOTEMPTY (members of this node or another's) */
int mreg_pool_destroy(struct mreg *reg, const char *pool);
/* member is the PID as text (the file name); value one trailing newline dropped.
 * -EINVAL member is not a PID; -ENOENT no pool; -ESRCH; -EPERM as above. */
int mreg_pool_store(struct mreg *reg, const char *pool, const char *member, const char *value,
                    size_t len, uid_t caller);
int mreg_pool_unstore(struct mreg *reg, const char *pool, const char *member); /* -ENOENT */
/* What `cat registry/POOL/PID` prints: "VALUE\n" (malloc'd). */
int mreg_pool_render(struct mreg *reg, const char *pool, const char *member, char **ret_text,
                     size_t *ret_len);

/* What a directory listing needs. kind: 'n' a unique name, 'p' a pool, 'm' a pool member. */
struct mreg_entry {
	const char *name;
	char kind;
	uint64_t id;     /* unique for the registry's lifetime, grows with creation */
	uint64_t cookie; /* where a listing resumes to return what comes after it */
	struct timespec mtime;
	uid_t uid; /* the registered process's owner (0 for pools) */
};
/* Entries of registry/ (names and pools) after the one whose cookie is
 * given (0: from the start), in cookie order. A cookie is the entry's
 * position, which is reused once the entry goes: an entry made during a
 * listing may come or not, but one there throughout comes exactly once,
 * however many come and go between two calls. Resuming costs O(1), not the
 * entries before the cookie. */
int mreg_list(struct mreg *reg, uint64_t cookie, int (*fn)(const struct mreg_entry *e, void *arg),
              void *arg);
/* Members of a pool, the same way. -ENOENT when no pool. */
int mreg_pool_list(struct mreg *reg, const char *pool, uint64_t cookie,
                   int (*fn)(const struct mreg_entry *e, void *arg), void *arg);
/* How many entries the listings have looked at so far (tests: resuming
 * looks at none of those before the cookie). */
uint64_t mreg_list_steps(struct mreg *reg);
/* How many entries there are of each kind, now (O(1)). */
struct mreg_counts {
	uint64_t names, pools, members;
};
void mreg_counts(struct mreg *reg, struct mreg_counts *ret);
/* One entry (member NULL: registry/NAME or the pool itself). -ENOENT. */
int mreg_stat(struct mreg *reg, const char *name, const char *member, struct mreg_entry *ret);

/* ---- Saving and restoring (the state database, -o state=) ----
 * A registration is saved with the identity of its process, PID and start
 * time (field 22 of /proc/PID/stat, clock ticks since boot), taken when it
 * registered; it is restored only when a process of that PID with that
 * start time still lives, so a reused PID never inherits a name. */
struct mreg_saved {
	const char *name;   /* registry/NAME, or the pool of a member or a pool */
	const char *member; /* NULL for a name or a pool; the PID as text for a member */
	char kind;          /* 'n' a name, 'p' a pool, 'm' a pool member */
	pid_t pid;          /* 0 for a pool */
	uint64_t starttime; /* of pid; 0 for a pool */
	const char *value;  /* NULL: none (names only); members always have one */
	uid_t uid;          /* the process's owner (0 for pools) */
};
/* Calls fn for every pool, then every name and member, under the
 * registry's lock: fn must not call into the registry. A non-zero return
 * stops the walk and is returned. */
int mreg_save_foreach(struct mreg *reg, int (*fn)(const struct mreg_saved *s, void *arg),
                      void *arg);
/* The saved form of one entry now (member NULL: registry/NAME or the pool
 * NAME), to fn under the lock. -ENOENT when it is not there. */
int mreg_save_get(struct mreg *reg, const char *name, const char *member,
                  int (*fn)(const struct mreg_saved *s, void *arg), void *arg);
/* Restores one saved entry: a pool is created (-EEXIST when it is there);
 * a name or member is registered again only when s->pid is alive with
 * s->starttime (-ESRCH otherwise: gone, or another process now has the
 * PID), as if its process had written it, with no check of who asks. A
 * member's pool must exist (-ENOENT). -EINVAL for a bad name or value.
 * The owner is read from /proc again (s->uid is not consulted); a member
 * saved with a NULL value comes back with the empty one. A name or member
 * its process holds already takes the saved value. */
int mreg_restore(struct mreg *reg, const struct mreg_saved *s);

/* ---- Cluster mode (issue 15): entries shared with other nodes ----
 * A process of this node is named by its PID, one of another node by
 * PID@NODE: `cat registry/NAME` prints "PID@NODE[ VALUE]" for another
 * node's holder, and another node's pool member is the file PID@NODE.
 * Entries of other nodes are read-only here: mreg_unregister and
 * mreg_pool_unstore of one are -EPERM, registering a name another node
 * holds is -EEXIST; mreg_lookup of one is -EREMOTE; mreg_save_get and
 * mreg_save_foreach leave them out (they are not this node's to save).
 * Unique names stay [A-Za-z0-9._-] (no '@'), so a name never reads as a
 * holder. Without mreg_set_remote no hook is called, no change lock
 * taken, and PID@NODE written or created stays EINVAL, as before. */
struct mreg_remote {
	/* Before a change of this node's entries is made here: a name or member
	 * registered or its value changed (s->kind 'n' or 'm', with pid,
	 * starttime, uid and value as they will be), or a pool made ('p', uid the
	 * creator's). Called without the registry's lock, holding the change
	 * lock, on the writer's thread, once every local check passed (process
	 * alive, caller may name it, name not held by another live process here
	 * or in the mirror, pool exists...). 0 lets the change happen here;
	 * -errno refuses it and nothing changes (-EEXIST: a process of another
	 * node holds the name; -ENOTEMPTY, -ETIMEDOUT, -EFBIG...). May block (up
	 * to the cluster's timeout). When the change cannot be applied after a
	 * 0 (the process exited meanwhile: -ESRCH; the pool went: -ENOENT;
	 * -ENOMEM), release() is called with the same s (value NULL) to undo
	 * it, and the writer gets that error. */
	int (*hold)(void *arg, const struct mreg_saved *s);
	/* The same before this node's entry goes by rm (kind 'n', 'm': name,
	 * member, pid, starttime and uid are the entry's; value is NULL) or a
	 * pool by rmdir ('p'; the shared store says -ENOTEMPTY when another node
	 * has members in it). Also undoes a hold() whose change failed here. */
	int (*release)(void *arg, const struct mreg_saved *s);
	/* After this node's entries went because their process exited (seen by
	 * the watcher thread or by a writer that found it so): called with the
	 * registry's lock NOT held, must not block (the engine queues a
	 * deletion). Once per process that had entries. */
	void (*exited)(void *arg, pid_t pid, uint64_t starttime);
};
/* Cluster mode: node is this node's name (copied; [A-Za-z0-9._-]). ops
 * NULL: back to node-local. Set before the tree is served. -EINVAL,
 * -ENOMEM. */
int mreg_set_remote(struct mreg *reg, const char *node, const struct mreg_remote *ops, void *arg);
/* What a new file registry/POOL/NAME may be called: 0 a canonical PID;
 * -EPERM the PID@NODE form in cluster mode (only local processes can be
 * registered); -EINVAL anything else. */
int mreg_member_name_check(struct mreg *reg, const char *name);

/* An entry of another node, as the shared store has it, put here by the
 * engine from etcd's watch: s->kind 'n' a name held by s->pid@node, 'm' a
 * member of pool s->name held by s->pid@node (s->member is not read), 'p'
 * a pool (node not read: pools are shared, not any node's). New or
 * changed: MEV_REGISTER for names and members (detail "PID@NODE[ VALUE]"
 * for a name, the value for a member, as a local change gives with its
 * PID), MEV_MKDIR for a new pool (one already there: 0, no event). A local
 * name of the same name (a race the shared store settled otherwise) is
 * removed first, with its unregister event, and its process's exited() NOT
 * called; so is another node's. mtime: the change's time (NULL: now). No
 * hook is called. -EINVAL (bad name, node, PID or value; node this node's
 * own), -ENOENT (a member's pool is not here), -EEXIST (a name where a
 * pool is: a pool replaces a name, not the other way), -ENOMEM, -ENOSPC. */
int mreg_mirror_put(struct mreg *reg, const struct mreg_saved *s, const char *node,
                    const struct timespec *mtime);
/* Removes an entry of another node (member: "PID@NODE"; NULL for a name
 * or a pool); a pool goes with every member it still has here, this node's
 * too, with an unregister event for each before its rmdir event. -ENOENT
 * (also for a name this node holds, or a member "PID"). No hook is called. */
int mreg_mirror_remove(struct mreg *reg, const char *name, const char *member);
/* Removes every entry of node (a node that left: the engine calls it when
 * the node's lease is gone, and on a resync). */
void mreg_mirror_remove_node(struct mreg *reg, const char *node);
/* For a resync: calls fn for every pool (node NULL), then every name and
 * member of another node (s->member is the PID as text), under the lock
 * (fn must not call in). A non-zero return stops it and is returned. */
int mreg_mirror_foreach(struct mreg *reg,
                        int (*fn)(const struct mreg_saved *s, const char *node, void *arg),
                        void *arg);

#endif
