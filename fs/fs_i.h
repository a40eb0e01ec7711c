/* SPDX-License-Identifier: MIT */
/* Private to fs/: the inode table, open handles, the notifier, the feed and
 * the requests that wait for a service's plugins.
 *
 * How fs/ is laid out (arrows are calls; none goes back):
 *
 *     fs.c (session) -> echo.c (the notifier's requests) -> defer.c (requests
 *                       that wait for a service's plugins) -> ops.c (entry points)
 *     ops.c, echo.c  -> req.c (prologue, stat, entry replies, errno policy)
 *     req.c          -> kind.c (one row per node kind) -> kind_*.c (the rows' work)
 *     kind_*.c       -> rendered.c, value_file.c (values), handle.c, node.c,
 *                       feed.c, notify.c, core
 *     metrics.c      -> perm.c, notify.c, core, plugins/metrics.h (the root's
 *                       metrics: a row like kind_*.c's)
 *     req.c, ops.c   -> perm.c (owners and modes) -> node.c, notify.c, core
 *     echo.c         -> echoes.c (which echo is under way)
 *     notify.c       -> resync.c -> echoes.c -> echoproc.c, handle.c, node.c
 *     feed.c         -> handle.c
 *
 * Locks, and the order they are taken in (a thread holding one may take
 * only those below it):
 *  1. Core's own locks (a service's op_lock, store_lock, state_lock; the
 *     registry's change lock and lock, the node config's, the event
 *     ring's) are taken inside core calls. In cluster mode a registry
 *     write holds the change lock across the shared store (up to
 *     cluster_timeout), stalling only this node's other registry writers,
 *     never its readers. fs/ calls core holding none of its own locks, so core may run
 *     plugin callbacks and exec hooks for as long as they take; core calls
 *     back only into the event listeners (notify.c, feed.c), outside its
 *     locks (events.c). A request that may take a service's op_lock (a
 *     reconfiguration, plugins mkdir/rmdir, status, rmdir of the service)
 *     is run by a thread of defer.c, never by a FUSE worker thread: a hook
 *     that waits holds that service's op_lock and one thread of defer.c,
 *     nothing another service needs.
 *  2. A document's lock (doc.c) serialises what one open file writes to
 *     config.ini, a config key or a registry entry, and is held across
 *     applying it (core calls, which may wait for a hook): taken holding no
 *     other lock of fs/, with only core's under it. struct handle's lock
 *     guards the handle's text, have, doc pointer, held, held_node,
 *     flushes, seen_id and seen_ver: held only to copy or swap them, never
 *     across core or a reply.
 *  3. mfeed's lock guards the parked reads, the feed's pollers and each
 *     open events file's cursor and kept text; held across fuse_reply_buf
 *     to a parked read (a reply never waits on the mount) and across
 *     mev_ring_read and mev_ring_resume (the ring's lock, a leaf).
 *  4. mnotifier's lock guards its queue, its held items and its pending
 *     set; mfs_echoes's lock the echo under way; mfs_defer's lock its
 *     queues and threads (defer.c). Leaves: the notifier asks defer.c
 *     whether a service is busy, and defer.c kicks the notifier, each
 *     holding neither.
 *  5. mfs.lock guards the table (by_ino, by_name, count, next_ino, the
 *     stores' numbers, the idle key nodes), every field of every node
 *     below (name, parent, nlookup, refs, obj_id, svc, hashed, pending,
 *     cache_ok, cache_mtime, polls, held_trunc, trunc_ms, key_lookups,
 *     idle and its links), and the
 *     handle table
 *     with each handle's id, refs, hnext, ph, node and poll_next. A leaf:
 *     never held across core, a reply or a notification to the kernel.
 *     Read a node's mutable fields through node.c's accessors or under it.
 *  6. mfs_perm's lock guards the table of owners and modes set by chmod
 *     and chown (perm.c). A leaf, never taken with mfs.lock held (a node's
 *     path is copied first); its event listener takes only it. Its
 *     listeners (the state database, cluster mode) are called under it
 *     and take only a leaf lock of their own; cluster mode imports
 *     entries (mfs_perm_import) with its engine's lock held, which is
 *     taken before this one.
 * kind, ino, a store's store_no and the root pointer never change after a
 * node is made, and are read without a lock.
 *
 * No thread of the daemon does I/O on its own mount: the notifier's echoes
 * are done by a child process that holds no /dev/fuse descriptor
 * (echoproc.c). The notifier thread does write to /dev/fuse (cache
 * invalidations), never holding a lock of fs/; the kernel may make such a
 * write wait for a folder's lock, so it is done only where the kernel can
 * hold the entry (echoes.c), and the child aborts the connection when the
 * daemon dies, so that a killed daemon always lets go of its mount. The
 * one invalidation a request thread makes itself is of attributes alone
 * (perm.c, after chown or chmod of a service): for that the kernel takes
 * no lock, so it cannot wait on a request. */
#ifndef MALLAFS_FS_I_H
#define MALLAFS_FS_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "fs.h"
#include "util.h"

/* What an inode stands for. The core object is found again by name from
 * the node and its ancestors on every request, so a node never points into
 * core state that may go away (services excepted: a service node holds a
 * reference, and a destroyed service answers -ENOENT). What each kind does
 * is its row in kind.c. */
enum mnode_kind {
	N_ROOT = 0,
	N_SERVICES, /* services/ */
	N_REGISTRY, /* registry/ */
	N_NODECFG,  /* config/ */
	N_EVENTS,   /* events */
	N_SVC,      /* services/NAME/ */
	N_STORE,    /* services/NAME/store/ */
	N_KEY,      /* services/NAME/store/KEY */
	N_PLUGINS,  /* services/NAME/plugins/ */
	N_PLUGIN,   /* services/NAME/plugins/P/ */
	N_SCFG,     /* services/NAME/config/ */
	N_SECTION,  /* services/NAME/config/SECTION/ */
	N_SKEY,     /* services/NAME/config/SECTION/KEY */
	N_CONFIG_INI,
	N_CHAIN,
	N_STATUS,
	N_SVCFILE, /* services/NAME/FILE published by a plugin */
	N_REGNAME, /* registry/NAME */
	N_POOL,    /* registry/POOL/ */
	N_MEMBER,  /* registry/POOL/PID */
	N_APP,     /* config/APP/ */
	N_APPKEY,  /* config/APP/KEY */
	N_METRICS, /* metrics: the daemon's, in Prometheus text (metrics.c) */

	/* cluster/, in cluster mode only (kind_cluster.c) */
	N_CLUSTER,
	N_CLSTATUS, /* cluster/status */
	N_CLNODES,  /* cluster/nodes/ */
	N_CLNODE,   /* cluster/nodes/NODE/ */
	N_CLSVC,    /* cluster/nodes/NODE/SERVICE */
	N_KIND_COUNT_,
};

struct handle;

struct mnode {
	uint64_t ino;
	enum mnode_kind kind;
	struct mnode *parent; /* holds a reference; changes only on rename */
	char *name;
	uint64_t nlookup;        /* the kernel's references */
	uint64_t refs;           /* ours: children, requests in flight, polling handles */
	uint64_t obj_id;         /* the core object's id, 0 when known by name only */
	struct mallafs_svc *svc; /* N_SVC: a reference */
	bool hashed;             /* findable by (parent, name) */
	bool pending;            /* created, waiting for its first write (control files) */
	/* The kernel's page cache of a value (N_KEY, N_APPKEY) matches the
	 * value of this mtime; open keeps the cache only then. */
	bool cache_ok;
	struct timespec cache_mtime;
	struct handle *polls; /* open files polling it (handle.c) */
	/* A value's open files that hold an O_TRUNC truncation back, and when
	 * (mu_now_ms) the last such open came (value_file.c). */
	unsigned held_trunc;
	uint64_t trunc_ms;
	/* N_STORE: its number in the table of stores, which its keys' inode
	 * numbers carry (0: none), and the kernel's lookups of those keys,
	 * all together (a key has no nlookup of its own: see node.c). */
	uint32_t store_no;
	uint64_t key_lookups;
	/* N_KEY: on the list of idle key nodes (no reference, kept for what
	 * they know of the page cache), in the order they went idle. */
	bool idle;
	struct mnode *idle_prev, *idle_next;
	struct mnode *ino_next, *name_next;
};

struct mnotifier;
struct mfeed;
struct mfs_echoes;
struct mfs_perm;
struct mfs_defer;

#define MFS_HANDLE_BUCKETS 256

struct mfs {
	struct mrt *rt;
	struct fuse_session *se;
	char *mountpoint;
	uid_t uid;
	gid_t gid;
	struct timespec born;
	/* -o ro: every change a user asks for is EROFS (req.c's mfs_refuse);
	 * the kernel's mount stays read-write, so the notifier's echoes still
	 * pass. Set before the mount, never changed: read without a lock. */
	bool rdonly;

	pthread_mutex_t lock; /* see the top of this file */
	struct mnode **by_ino;
	struct mnode **by_name;
	size_t nbuckets;
	size_t count;
	uint64_t next_ino;
	struct mnode *root;
	/* Store nodes by number (stores[0] unused), the numbers free again. */
	struct mnode **stores;
	uint32_t nstores, stores_cap;
	uint32_t *stores_free;
	uint32_t nstores_free;
	/* Idle key nodes, oldest first (node.c). */
	struct mnode *idle_head, *idle_tail;
	size_t nidle;

	struct mnotifier *notifier;
	struct mfs_echoes *echoes; /* the notifier's; NULL before start and after join */
	struct mfeed *feed;
	struct mfs_perm *perm; /* owners and modes set by chmod and chown (perm.c) */
	struct mfs_defer *defer;

	/* Open files that have a handle, by id (fi->fh). */
	struct handle *handles[MFS_HANDLE_BUCKETS];
	uint64_t next_fh;
	/* Handles on a node's poll list: while none, the notifier finds no
	 * value's pollers to wake (read without the lock). */
	_Atomic unsigned long polling;
};

/* ---- node.c: the table. Every function takes fs->lock itself. ----
 *
 * A store's keys have inode numbers made of the store's number and the
 * key's id in the store (core/kv.h: never reused), so the table needs no
 * node for a key the kernel merely holds: a key's node is made when a
 * request names it and goes some time after the last reference (see
 * node.c), and the kernel's lookups of keys are counted on their store. */
/* Whether ino is a store key's. */
bool mfs_ino_is_key(uint64_t ino);
/* The inode number of the key of id id in the store of node store; 0 when
 * it cannot have one (the store has no number). */
uint64_t mfs_key_ino(struct mfs *fs, struct mnode *store, uint64_t id);
int mfs_nodes_init(struct mfs *fs);
void mfs_nodes_fini(struct mfs *fs);
/* A reference to the node of ino, or NULL. */
struct mnode *mfs_node_get(struct mfs *fs, uint64_t ino);
void mfs_node_ref(struct mfs *fs, struct mnode *n); /* another reference */
void mfs_node_put(struct mfs *fs, struct mnode *n); /* accepts NULL */
/* The child (parent, name) of the given kind and id, made when absent or
 * when the hashed one is another object (then unhashed). Referenced. */
struct mnode *mfs_node_child(struct mfs *fs, struct mnode *parent, const char *name,
                             enum mnode_kind kind, uint64_t obj_id);
/* The hashed child, referenced, or NULL. */
struct mnode *mfs_node_find(struct mfs *fs, struct mnode *parent, const char *name);
/* The same, or the node of a key the kernel may hold that the table has
 * no node for (made now). Asks core: never with a lock of core held (an
 * event listener runs in the changing thread, under the store's lock). */
struct mnode *mfs_node_find_held(struct mfs *fs, struct mnode *parent, const char *name);
void mfs_node_unhash(struct mfs *fs, struct mnode *parent, const char *name);
/* Makes n unfindable by name (it lives on while referenced). */
void mfs_node_unhash_self(struct mfs *fs, struct mnode *n);
/* Moves a hashed node to (newparent, newname), replacing what was there. */
void mfs_node_move(struct mfs *fs, struct mnode *parent, const char *name, struct mnode *newparent,
                   const char *newname, uint64_t new_id);
void mfs_node_lookup_inc(struct mfs *fs, struct mnode *n);
void mfs_node_forget(struct mfs *fs, uint64_t ino, uint64_t nlookup);
/* Gives an N_SVC node its service (a new reference), once. */
void mfs_node_set_svc(struct mfs *fs, struct mnode *n, struct mallafs_svc *svc);
/* The service n belongs to (n or an ancestor is its N_SVC node),
 * referenced, or NULL. fs->lock held. */
struct mallafs_svc *mfs_node_svc_locked(struct mnode *n);
/* Copies the node's own name and its parent's (the section, app or pool of
 * a leaf): both change on rename. Either buffer may be NULL. With ret_svc,
 * also the service the node belongs to (a new reference, or NULL): all in
 * one hold of the lock, as every request's prologue needs them. */
void mfs_node_names(struct mfs *fs, struct mnode *n, char *name, char *pname, size_t len,
                    struct mallafs_svc **ret_svc);
/* The node's path relative to the mount ("services/api/store/k"; "" for
 * the root). -ENAMETOOLONG when it does not fit len. */
int mfs_node_path(struct mfs *fs, struct mnode *n, char *buf, size_t len);
/* The inode numbers of every node below top (not top itself), malloc'd:
 * for dropping the kernel's cached attributes of a whole subtree. */
int mfs_node_inos_under(struct mfs *fs, struct mnode *top, uint64_t **ret, size_t *ret_count);
/* A control file made by create() that no write has made real yet. */
bool mfs_node_pending(struct mfs *fs, struct mnode *n);
void mfs_node_set_pending(struct mfs *fs, struct mnode *n);
/* Its first write made it real: obj_id (0 if unknown) is its core object. */
void mfs_node_made_real(struct mfs *fs, struct mnode *n, uint64_t obj_id);
/* The value's page cache: whether an open may keep it (the value still has
 * the mtime the cache was filled at), and what it now holds. */
bool mfs_node_cache_valid(struct mfs *fs, struct mnode *n, const struct timespec *mtime);
void mfs_node_cache_set(struct mfs *fs, struct mnode *n, bool ok, const struct timespec *mtime);
/* A write through the kernel: its pages hold what it wrote, valid if that
 * is exactly what the value became (exact). */
void mfs_node_cache_wrote(struct mfs *fs, struct mnode *n, bool exact,
                          const struct timespec *mtime);

/* ---- handle.c: open files that need state of their own ---- */

/* Per-open state of a rendered file or of the events feed. */
struct handle {
	pthread_mutex_t lock; /* see the top of this file */
	/* The snapshot reads are served from, rendered at the first read and
	 * again at every read from offset 0 (as sysfs does). */
	char *text;
	size_t len;
	bool have;
	/* config.ini, config keys, registry entries: the document this open
	 * file writes (doc.c), made by its first write and kept to the end. */
	struct mfs_doc *doc;
	/* The events feed: the next event this open file reads, and text
	 * rendered for it that its reads have not taken yet, kept[kept_off..
	 * kept_len) (a read smaller than a line, a resume's overflow line):
	 * feed.c's lock. */
	uint64_t cursor;
	char *kept;
	size_t kept_len, kept_off;
	bool nonblock;
	/* A value (value_file.c): its O_TRUNC truncation is held back until
	 * its first write or its close; the value's id and version it last
	 * saw, that poll() compares with. */
	bool held;
	struct mnode *held_node; /* referenced while held (its held_trunc counts it) */
	unsigned flushes;        /* close()s of the open file (flush) so far */
	int acc;                 /* the open's access mode (O_ACCMODE) */
	bool append;             /* opened O_APPEND: writes go at the value's end */
	uint64_t seen_id, seen_ver;
	/* fs->lock guards these. Requests find a handle by its id and hold a
	 * reference, so a release racing a read never frees it under the read. */
	uint64_t id;
	unsigned refs;
	struct handle *hnext;
	struct fuse_pollhandle *ph;
	struct mnode *node; /* referenced while on its poll list */
	struct handle *poll_next;
};

struct mfs_doc;
void mfs_doc_free(struct mfs_doc *d); /* accepts NULL */
/* Whether close() of the open file has a document's end to apply (or
 * waits for one being applied); never blocks. */
bool mfs_doc_waiting(struct mfs *fs, const struct fuse_file_info *fi);

struct handle *mfs_handle_new(void);
/* Files the handle, giving fi->fh its id. */
void mfs_handle_register(struct mfs *fs, struct handle *h, struct fuse_file_info *fi);
/* The handle of an open file, referenced; NULL for files without one. */
struct handle *mfs_handle_get(struct mfs *fs, const struct fuse_file_info *fi);
void mfs_handle_put(struct mfs *fs, struct handle *h); /* accepts NULL */
/* The open file is closed: its id goes, the handle with its last reference. */
void mfs_handle_release(struct mfs *fs, uint64_t id);
/* The daemon stops with files still open (the kernel releases them no more). */
void mfs_handles_fini(struct mfs *fs);
/* poll(): keeps ph (replacing an older one) and puts h on n's poll list. */
void mfs_handle_poll(struct mfs *fs, struct handle *h, struct mnode *n, struct fuse_pollhandle *ph);
/* poll() on an open file: its handle (referenced), on n's poll list with
 * ph; NULL, and ph dropped, for a file without one (always ready). */
struct handle *mfs_handle_poll_open(struct mfs *fs, const struct fuse_file_info *fi,
                                    struct mnode *n, struct fuse_pollhandle *ph);
/* Wakes the poll() waiters on a node (notifier thread only). */
void mfs_poll_wake(struct mfs *fs, struct mnode *n);

/* procfd.c: whether process pid may still hold a duplicate of a
 * descriptor it closes, one on inode ino opened with access mode acc,
 * nothing written through it (/proc; true when it cannot tell). */
bool mfs_proc_may_dup(pid_t pid, uint64_t ino, int acc);

/* ---- notify.c: the notifier ---- */

/* What a request acts on: changes to that entry reach the kernel through
 * the request itself; the notifier echoes every other. */
struct mfs_target {
	bool set;
	uint64_t ino;
	uint64_t parent, parent2;
	char name[MU_NAME_MAX + 1], name2[MU_NAME_MAX + 1];
};

/* Tells the kernel, inotify and poll() of changes made behind their back. */
int mfs_notifier_start(struct mfs *fs);
void mfs_notifier_stop(struct mfs *fs); /* stops listening; see join */
void mfs_notifier_join(struct mfs *fs); /* after the unmount */
/* Called by each request's prologue and epilogue (req.c). */
void mfs_req_begin(uint64_t ino, uint64_t parent, const char *name, uint64_t parent2,
                   const char *name2);
void mfs_req_end(void);
/* Echoes the creation of path (relative to the mount) to watchers: an entry
 * the kernel saw go that is there again (a config key back to its default). */
void mfs_notify_created(struct mfs *fs, const char *path);
/* Asks for the kernel's cache of a node's data and attributes to be dropped. */
void mfs_notify_inval_inode(struct mfs *fs, uint64_t ino);
/* A service's requests that waited for its plugins are all answered: the
 * echoes held back for it go (defer.c calls it, holding no lock). */
void mfs_notifier_kick(struct mfs *fs);
/* Changes the notifier did not echo since the start because its queue was
 * full (watchers and caches missed them). */
uint64_t mfs_notifier_dropped(struct mfs *fs);

/* Echoes: the notifier's own requests, to be answered without changing
 * anything (echo.c answers them; echoes.c says which is under way). */
enum mfs_echo {
	MFS_ECHO_NONE = 0,
	MFS_ECHO_MODIFY,
	MFS_ECHO_CREATE, /* lookup answers ENOENT, create/mkdir answer the existing entry */
	MFS_ECHO_DELETE, /* lookup answers a stand-in, unlink/rmdir succeed */
};
bool mfs_req_is_echo(struct mfs *fs, fuse_req_t req);
enum mfs_echo mfs_echo_for(struct mfs *fs, uint64_t parent, const char *name);
/* The echo under way, whatever entry it is for. */
enum mfs_echo mfs_echo_current(struct mfs *fs);

/* ---- ops.c: the entry points; echo.c: the layer in front of them ---- */
const struct fuse_lowlevel_ops *mfs_ops(void);
/* A table that answers the notifier's requests and hands every other to real. */
const struct fuse_lowlevel_ops *mfs_echo_wrap(const struct fuse_lowlevel_ops *real);

/* ---- defer.c: requests that wait for a service's plugins ---- */

/* A table that hands such requests to their service's queue, served by
 * threads of defer.c, and every other to real. */
const struct fuse_lowlevel_ops *mfs_defer_wrap(const struct fuse_lowlevel_ops *real);
int mfs_defer_init(struct mfs *fs);
/* After the request loop: queued requests get ENOTCONN, the threads end. */
void mfs_defer_stop(struct mfs *fs);
void mfs_defer_free(struct mfs *fs); /* stops first */
/* True while requests for the service called svc wait or run (the
 * notifier asks it, holding no lock). */
bool mfs_defer_busy(struct mfs *fs, const char *svc);

/* ---- feed.c: the events feed ---- */

/* Blocked reads are parked and answered from the feed's thread when events
 * come, so no worker thread waits. */
int mfs_feed_start(struct mfs *fs);
void mfs_feed_stop(struct mfs *fs);
/* Answers a read of the feed now, or parks it; takes over the reference to h. */
void mfs_feed_read(struct mfs *fs, fuse_req_t req, struct handle *h, bool nonblock, size_t size);
/* poll() on the feed: POLLIN when there is something at h's cursor. */
unsigned mfs_feed_poll(struct mfs *fs, struct handle *h, struct fuse_pollhandle *ph);
/* The open file is closed: its poll handle goes. */
void mfs_feed_forget(struct mfs *fs, struct handle *h);
/* A write of "SEQ\n" to an open feed: its reads go on after event SEQ
 * (mev_ring_resume). Returns size, or -EINVAL for anything else. */
ssize_t mfs_feed_resume(struct mfs *fs, struct handle *h, const char *buf, size_t size);

/* Starts a thread of fs/ with every signal blocked (util.h). */
#define mfs_thread_start mu_thread_start

#endif
