/* Private to fs/: the inode table and the notifier. */
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
 * reference, and a destroyed service answers -ENOENT). */
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
	N_SVCFILE,  /* services/NAME/FILE published by a plugin */
	N_REGNAME,  /* registry/NAME */
	N_POOL,     /* registry/POOL/ */
	N_MEMBER,   /* registry/POOL/PID */
	N_APP,      /* config/APP/ */
	N_APPKEY,   /* config/APP/KEY */
	N_KIND_COUNT_,
};

struct mnode {
	uint64_t ino;
	enum mnode_kind kind;
	struct mnode *parent; /* holds a reference; changes only on rename */
	char *name;
	uint64_t nlookup; /* the kernel's references */
	uint64_t refs;    /* ours: children and requests in flight */
	uint64_t obj_id;  /* the core object's id, 0 when known by name only */
	struct mallafs_svc *svc; /* N_SVC: a reference */
	bool hashed;      /* findable by (parent, name) */
	bool pending;     /* created, waiting for its first write (control files) */
	/* The kernel's page cache of a value (N_KEY, N_APPKEY) matches the
	 * value of this mtime; open keeps the cache only then. */
	bool cache_ok;
	struct timespec cache_mtime;
	void *polls; /* open files polling it (fs/ops.c's handles) */
	struct mnode *ino_next, *name_next;
};

struct mnotifier;
struct mfeed;
struct handle;

#define MFS_HANDLE_BUCKETS 256

struct mfs {
	struct mrt *rt;
	struct fuse_session *se;
	char *mountpoint;
	uid_t uid;
	gid_t gid;
	struct timespec born;

	pthread_mutex_t lock; /* the table and every node's mutable fields */
	struct mnode **by_ino;
	struct mnode **by_name;
	size_t nbuckets;
	size_t count;
	uint64_t next_ino;
	struct mnode *root;

	struct mnotifier *notifier;
	struct mfeed *feed;

	/* Open control files by id (fi->fh), under lock. */
	struct handle *handles[MFS_HANDLE_BUCKETS];
	uint64_t next_fh;
};

/* The table. Every function takes fs->lock itself unless named _locked. */
int mfs_nodes_init(struct mfs *fs);
void mfs_nodes_fini(struct mfs *fs);
/* A reference to the node of ino, or NULL. */
struct mnode *mfs_node_get(struct mfs *fs, uint64_t ino);
void mfs_node_put(struct mfs *fs, struct mnode *n);
/* The child (parent, name) of the given kind and id, made when absent or
 * when the hashed one is another object (then unhashed). Referenced. */
struct mnode *mfs_node_child(struct mfs *fs, struct mnode *parent, const char *name,
			     enum mnode_kind kind, uint64_t obj_id);
/* The hashed child, referenced, or NULL. */
struct mnode *mfs_node_find(struct mfs *fs, struct mnode *parent, const char *name);
void mfs_node_unhash(struct mfs *fs, struct mnode *parent, const char *name);
/* Makes n unfindable by name (it lives on while referenced). */
void mfs_node_unhash_self(struct mfs *fs, struct mnode *n);
/* Moves a hashed node to (newparent, newname), replacing what was there. */
void mfs_node_move(struct mfs *fs, struct mnode *parent, const char *name,
		   struct mnode *newparent, const char *newname, uint64_t new_id);
void mfs_node_lookup_inc(struct mfs *fs, struct mnode *n);
void mfs_node_forget(struct mfs *fs, uint64_t ino, uint64_t nlookup);
/* Gives an N_SVC node its service (a new reference), once. */
void mfs_node_set_svc(struct mfs *fs, struct mnode *n, struct mallafs_svc *svc);
/* The service a node belongs to (a new reference), or NULL. */
struct mallafs_svc *mfs_node_svc(struct mfs *fs, struct mnode *n);
/* Copies the node's own name (a leaf's name changes on rename). */
void mfs_node_name(struct mfs *fs, struct mnode *n, char *buf, size_t len);
/* Copies the parent's name (the section, app or pool of a leaf). */
void mfs_node_parent_name(struct mfs *fs, struct mnode *n, char *buf, size_t len);

/* What a request acts on: changes to that entry reach the kernel through
 * the request itself; the notifier echoes every other. */
struct mfs_target {
	bool set;
	uint64_t ino;
	uint64_t parent, parent2;
	char name[MU_NAME_MAX + 1], name2[MU_NAME_MAX + 1];
};

/* The notifier: tells the kernel, inotify and poll() of changes made behind
 * their back. */
int mfs_notifier_start(struct mfs *fs);
void mfs_notifier_stop(struct mfs *fs); /* stops listening; see join */
void mfs_notifier_join(struct mfs *fs); /* after the unmount */
/* Called by each handler first and last. */
void mfs_req_begin(uint64_t ino, uint64_t parent, const char *name, uint64_t parent2,
		   const char *name2);
void mfs_req_end(void);
/* Echoes the creation of path (relative to the mount) to watchers: an entry
 * the kernel saw go that is there again (a config key back to its default). */
void mfs_notify_created(struct mfs *fs, const char *path);
/* Asks for the kernel's cache of a node's data and attributes to be dropped. */
void mfs_notify_inval_inode(struct mfs *fs, uint64_t ino);

/* Echoes: the notifier's own requests, to be answered without changing anything. */
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

/* The events feed: blocked reads are parked and answered from the feed's
 * thread when events come, so no worker thread waits. */
int mfs_feed_start(struct mfs *fs);
void mfs_feed_stop(struct mfs *fs);
/* Answers a read of the feed now, or parks it. */
void mfs_feed_read(struct mfs *fs, fuse_req_t req, struct handle *h, uint64_t *cursor,
		   bool nonblock, size_t size);
/* poll() on the feed: POLLIN when there is something at *cursor. */
void mfs_feed_poll(struct mfs *fs, struct handle *h, struct fuse_pollhandle *ph,
		   uint64_t *cursor, unsigned *revents);
/* Drops a reference to an open file's handle. */
void mfs_handle_put(struct mfs *fs, struct handle *h);
/* The handle is going away: drop its parked read and poll handle. */
void mfs_feed_forget(struct mfs *fs, struct handle *h);

/* poll(): wakes the waiters on a node (notifier thread only). */
void mfs_poll_wake(struct mfs *fs, struct mnode *n);

#endif
