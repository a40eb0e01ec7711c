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
 * not call into the registry either. */
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

/* Pools. */
int mreg_pool_create(struct mreg *reg, const char *pool);  /* -EEXIST, -EINVAL */
int mreg_pool_destroy(struct mreg *reg, const char *pool); /* -ENOENT, -ENOTEMPTY */
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

#endif
