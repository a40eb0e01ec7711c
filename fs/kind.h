/* SPDX-License-Identifier: MIT */
/* What each kind of node does: one row per kind, chosen once when the node
 * is made (as kernfs gives each node its kernfs_ops), so no operation asks
 * which kind it is acting on.
 *
 * A row names the kind's flags, its cache timeouts and the operations it
 * supports. A folder's row has the entry operations (lookup .. rename),
 * called with the folder as the request's node; a file's row has the file
 * operations, called with the file. An operation a row leaves NULL gets the
 * errno of mfs_refuse() (req.c), the one place that policy is written.
 * Workers return 0 or a count, or -errno, and never reply: the entry points
 * of ops.c do (read_reply excepted, see below). */
#ifndef MALLAFS_FS_KIND_H
#define MALLAFS_FS_KIND_H

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include "fs_i.h"

struct mallafs_svc;

enum mfs_kflag {
	MK_DIR = 1u << 0,      /* a folder */
	MK_RDONLY = 1u << 1,   /* written by nobody: open for writing, write, truncate get EACCES */
	MK_RENDERED = 1u << 2, /* text rendered per open: direct I/O, size rendered at stat */
	MK_VALUE = 1u << 3,    /* a byte-exact value, served from the page cache */
	MK_IN_SVC = 1u << 4,   /* inside services/NAME/ (or it): gone with the service */
	MK_PENDING = 1u << 5,  /* may exist, empty, from create() until its first write */
	MK_CURSOR = 1u << 6,   /* its writes move the open file's own place, and change
	                        * nothing else: allowed on a read-only mount (events) */
	MK_FOREIGN = 1u << 7,  /* shows what another node owns (cluster/): chmod, chown EPERM */
};

/* One request, as its prologue (req.c) set it up: everything a worker
 * needs, copied or referenced, so no worker reads a node's mutable fields. */
struct mfs_req {
	fuse_req_t req;
	struct mfs *fs;
	struct mnode *node; /* the inode the request names (a folder for entry ops); referenced */
	const struct mfs_kind *kind;
	struct mallafs_svc *svc;     /* its service, referenced; NULL outside services */
	char name[MU_NAME_MAX + 1];  /* the node's name */
	char pname[MU_NAME_MAX + 1]; /* its parent's name (a leaf's section, app or pool) */
	/* getattr and setattr: the open file they came with, or NULL. */
	const struct fuse_file_info *fi;
	/* Set by the kind's stat: its answer must not be cached (attr timeout 0). */
	bool attr_uncached;
};

/* What an entry is, as a folder's lookup finds it. */
struct mfs_child {
	enum mnode_kind kind;
	uint64_t id;             /* the core object's id, 0 if it has none */
	struct mallafs_svc *svc; /* a service folder's service, referenced */
};

/* dirbuf.c: a folder listing under way, one readdir reply's buffer;
 * entries are added in offset order. A readdirplus listing (plus) only
 * notes the names while core lists (its locks held); mfs_dirbuf_finish
 * then looks each up as a lookup would and adds it with its attributes:
 * every entry added with an inode counts as a lookup the kernel will
 * forget, and so does each one for the node table. */
struct mfs_dirent {
	char *name;
	bool dir;
	off_t off;
};
struct mfs_dirbuf {
	struct mfs_req *c; /* the folder's request */
	fuse_req_t req;
	char *buf;
	size_t size, len;
	struct mfs *fs;
	struct mnode *dir;
	off_t next; /* counted listings: the offset of the next entry */
	off_t skip; /* entries up to this offset were returned already */
	bool plus;
	/* plus: the entries noted, what they will take of the buffer, and
	 * the inodes handed to the kernel (one lookup each). */
	struct mfs_dirent *ents;
	size_t nents, cap, need;
	uint64_t *inos;
	size_t ninos;
};
int mfs_dirbuf_init(struct mfs_dirbuf *db, struct mfs_req *c, size_t size, off_t off, bool plus);
/* Adds an entry whose offset (where the next readdir resumes) is off.
 * Returns 1 when the buffer is full (stop listing), else 0. */
int mfs_dir_add(struct mfs_dirbuf *db, const char *name, bool dir, off_t off);
/* With its d_ino known (0: the node's if the kernel knows it). */
int mfs_dir_add_ino(struct mfs_dirbuf *db, const char *name, bool dir, off_t off, uint64_t ino);
/* d_ino for a name the kernel may not know: a stable stand-in. */
uint64_t mfs_standin_ino(const char *name);
/* Folders whose entries are counted, not numbered by core ids. */
int mfs_dir_add_next(struct mfs_dirbuf *db, const char *name, bool dir);
/* Where a listing backed by core resumes: the cookie (kv.h, slots.h) of
 * the last entry returned, 0 from the start. */
uint64_t mfs_dir_after(const struct mfs_dirbuf *db);
/* The offset of an entry of such a listing, from its cookie. */
off_t mfs_dir_id_off(uint64_t cookie);
/* After the listing: readdirplus's entries get their lookups and attributes. */
int mfs_dirbuf_finish(struct mfs_dirbuf *db);
/* The reply did not reach the kernel: the lookups it carried are undone. */
void mfs_dirbuf_unsent(struct mfs_dirbuf *db);
void mfs_dirbuf_free(struct mfs_dirbuf *db);

struct mfs_kind {
	const char *what; /* for the log */
	unsigned flags;   /* enum mfs_kflag */
	/* Its mode when it takes it from no folder (see perm.c); 0: 0755 for
	 * a folder, 0644 for a file, 0444 for a read-only one. */
	mode_t mode;
	double entry_timeout, attr_timeout;
	/* A folder's: the kind a removed entry's stand-in takes (echo.c). */
	enum mnode_kind standin;

	/* ---- a folder's entry operations ---- */
	int (*lookup)(struct mfs_req *c, const char *name, struct mfs_child *ret);
	int (*list)(struct mfs_req *c, struct mfs_dirbuf *db);
	int (*mkdir)(struct mfs_req *c, const char *name);
	int (*rmdir)(struct mfs_req *c, const char *name);
	/* Makes the entry: 0 and *ret_kind; *ret_pending when it is a
	 * control file that its first write makes real. -EEXIST as core
	 * says (create() opens the existing entry unless O_EXCL). */
	int (*create)(struct mfs_req *c, const char *name, enum mnode_kind *ret_kind,
	              bool *ret_pending);
	int (*unlink)(struct mfs_req *c, const char *name);
	/* Within this folder's family (to->kind is a folder of the same
	 * backend); *ret_id is the moved entry's new core id. */
	int (*rename)(struct mfs_req *c, const char *name, struct mfs_req *to, const char *newname,
	              unsigned flags, uint64_t *ret_id);

	/* ---- a file's (or a folder's) own ---- */
	/* What differs from the defaults (size, times, owner); -ENOENT when gone. */
	int (*stat)(struct mfs_req *c, struct stat *st);
	int (*open)(struct mfs_req *c, struct fuse_file_info *fi);
	/* MK_RENDERED: the file's text, one snapshot (malloc'd). */
	int (*render)(struct mfs_req *c, char **ret, size_t *ret_len);
	/* MK_RENDERED and writable: applies one write() (h may be NULL): 0,
	 * 1 when it held the text back (doc.c), or -errno. */
	int (*store)(struct mfs_req *c, struct handle *h, const char *buf, size_t size, off_t off);
	ssize_t (*read)(struct mfs_req *c, struct fuse_file_info *fi, char *buf, size_t size,
	                off_t off);
	/* For files whose reads may wait (the events feed): answers the
	 * request itself, now or later, instead of read. */
	void (*read_reply)(struct mfs_req *c, struct fuse_file_info *fi, size_t size, off_t off);
	ssize_t (*write)(struct mfs_req *c, struct fuse_file_info *fi, const char *buf, size_t size,
	                 off_t off);
	int (*truncate)(struct mfs_req *c, uint64_t size);
	int (*set_mtime)(struct mfs_req *c, const struct timespec *mtime); /* NULL: now */
	unsigned (*poll)(struct mfs_req *c, struct fuse_file_info *fi, struct fuse_pollhandle *ph);
	/* close() of an open file whose open left fi->noflush off: applies
	 * what the open file held back; its error is close()'s. */
	int (*flush)(struct mfs_req *c, struct fuse_file_info *fi);
	void (*release)(struct mfs_req *c, struct fuse_file_info *fi);
	/* The id of the core object the file stands for, 0 if none. */
	uint64_t (*id)(struct mfs_req *c);

	const void *data; /* the row's own (a value kind's backend) */
};

/* req.c: the prologue, the epilogue, and what every kind shares. */
enum mfs_op {
	MFS_OP_LOOKUP,
	MFS_OP_LIST,
	MFS_OP_MKDIR,
	MFS_OP_RMDIR,
	MFS_OP_CREATE,
	MFS_OP_UNLINK,
	MFS_OP_RENAME,
	MFS_OP_OPEN,
	MFS_OP_READ,
	MFS_OP_WRITE,
	MFS_OP_TRUNCATE,
	MFS_OP_SETATTR, /* chmod, chown, utimes (a truncation is MFS_OP_TRUNCATE too) */
	MFS_OP_MKNOD,   /* mknod, symlink, link */
};
/* Sets up c for the inode ino: -ENOENT when it is gone, or (live) when its
 * service is. c must be finished whatever this returns. */
int mfs_req_start(struct mfs_req *c, fuse_req_t req, uint64_t ino, bool live);
/* False when c's node is inside a service that is gone. */
bool mfs_req_live(const struct mfs_req *c);
/* A request on n, a child of c's node, for the same fuse request; svc is
 * the child's service when it is a service's folder. */
void mfs_req_child(const struct mfs_req *c, struct mnode *n, struct mallafs_svc *svc,
                   struct mfs_req *ret);
void mfs_req_finish(struct mfs_req *c);
/* 0 when c's kind does op (on entry name; an open with the flags acc: its
 * access mode and O_TRUNC), else the errno the policy gives. */
int mfs_refuse(struct mfs_req *c, enum mfs_op op, const char *name, int acc);
int mfs_refuse_rename(struct mfs_req *from, struct mfs_req *to);
int mfs_stat(struct mfs_req *c, struct stat *st);
/* How long the kernel may keep the attributes mfs_stat gave for c. */
double mfs_attr_timeout(const struct mfs_req *c);
/* The entry name of folder c, if it exists. */
int mfs_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret);
/* Makes (or finds) the node of an existing entry and replies with it. */
int mfs_reply_entry(struct mfs_req *c, const char *name, const struct mfs_child *child,
                    struct fuse_file_info *create_fi, bool pending);
/* Looks the entry up and replies with it (what mkdir answers): -errno,
 * and no reply, when it is not there. */
int mfs_reply_found(struct mfs_req *c, const char *name);
/* The notifier's lookup of an entry that is gone: a stand-in with no cache life. */
int mfs_reply_standin(struct mfs_req *c, const char *name, enum mnode_kind kind);
/* A stand-in's attributes (the mount's owner's, so the notifier may remove it). */
void mfs_standin_stat(struct mfs *fs, struct mnode *n, struct stat *st);
/* Makes (or finds) the node of an existing entry and fills what a lookup
 * answers with it: the kernel's lookup of *ret_ino is counted. */
int mfs_entry_make(struct mfs_req *c, const char *name, const struct mfs_child *child, bool pending,
                   struct fuse_entry_param *e, uint64_t *ret_ino);
/* Answers a readdir (plus: readdirplus) of folder c. */
void mfs_reply_dir(struct mfs_req *c, size_t size, off_t off, bool plus);

/* perm.c: owners and modes (the rules are at its top). */
int mfs_perm_init(struct mfs *fs);
void mfs_perm_fini(struct mfs *fs);
/* st's owner, group and mode as the rules give them (before the kind's stat). */
void mfs_perm_rules(struct mfs_req *c, struct stat *st);
/* Then what chmod and chown set on the node itself. */
void mfs_perm_own(struct mfs_req *c, struct stat *st);
/* chmod, chown or chgrp of c's node by the request's caller; cur is its stat. */
int mfs_perm_setattr(struct mfs_req *c, const struct stat *attr, int to_set,
                     const struct stat *cur);
/* The folder name in c's node was made by the request's caller, who owns it
 * (config/APP, registry/POOL). */
void mfs_perm_created(struct mfs_req *c, const char *name);
/* Who a request comes from, groups and all (fuse_req_getgroups reads
 * /proc once: taken once for many checks). */
#define MFS_CALLER_GROUPS 64
struct mfs_caller {
	uid_t uid;
	gid_t gid;
	gid_t groups[MFS_CALLER_GROUPS];
	size_t ngroups;
};
void mfs_perm_caller(struct mfs_req *c, struct mfs_caller *ret);
/* Whether who may read services/S/FILE (k: FILE's row) as the kernel
 * would decide with the modes stat shows: search on services/ and on S,
 * read on FILE. Root may. */
bool mfs_perm_may_read_svc(struct mfs *fs, const struct mfs_caller *who, struct mallafs_svc *svc,
                           const char *file, const struct mfs_kind *k);

/* kind.c: the table. */
const struct mfs_kind *mfs_kind(enum mnode_kind k);
/* The fixed entries of the root (in_service false) or of services/NAME/. */
int mfs_fixed_lookup(const char *name, bool in_service, struct mfs_child *ret);
int mfs_fixed_list(struct mfs_dirbuf *db, bool in_service);
/* 0 when every kind has its row (checked once, when the filesystem is made). */
int mfs_kinds_check(void);

/* The rows, defined by the families that implement them. */
extern const struct mfs_kind mfs_kind_root, mfs_kind_services, mfs_kind_events;
extern const struct mfs_kind mfs_kind_svc, mfs_kind_status, mfs_kind_chain, mfs_kind_config_ini,
        mfs_kind_svcfile, mfs_kind_plugins, mfs_kind_plugin;
extern const struct mfs_kind mfs_kind_scfg, mfs_kind_section, mfs_kind_skey;
extern const struct mfs_kind mfs_kind_store, mfs_kind_key, mfs_kind_nodecfg, mfs_kind_app,
        mfs_kind_appkey;
extern const struct mfs_kind mfs_kind_registry, mfs_kind_regname, mfs_kind_pool, mfs_kind_member;
extern const struct mfs_kind mfs_kind_metrics;
extern const struct mfs_kind mfs_kind_cluster, mfs_kind_clstatus, mfs_kind_clnodes, mfs_kind_clnode,
        mfs_kind_clsvc;

/* rendered.c: the operations every MK_RENDERED row shares. */
int mfs_rendered_open(struct mfs_req *c, struct fuse_file_info *fi);
ssize_t mfs_rendered_read(struct mfs_req *c, struct fuse_file_info *fi, char *buf, size_t size,
                          off_t off);
ssize_t mfs_rendered_write(struct mfs_req *c, struct fuse_file_info *fi, const char *buf,
                           size_t size, off_t off);
int mfs_rendered_truncate(struct mfs_req *c, uint64_t size);
unsigned mfs_rendered_poll(struct mfs_req *c, struct fuse_file_info *fi,
                           struct fuse_pollhandle *ph);
void mfs_rendered_release(struct mfs_req *c, struct fuse_file_info *fi);
/* doc.c: documents, what one open file writes to config.ini, a config key
 * or a registry entry over several writes, applied whole or not at all. */
struct mfs_doc_ops {
	/* The longest document: past it, the write gets EFBIG (refused). */
	size_t max;
	/* Whether the whole text written so far (len bytes) may be the start
	 * of a document (NULL: any text). */
	int (*check)(struct mfs_req *c, const char *text, size_t len);
	/* Applies the document's first len bytes (up to a line's end, or all
	 * of it at close); *state is the kind's record of what to undo. */
	int (*apply)(struct mfs_req *c, void **state, const char *text, size_t len);
	/* Undoes what the earlier applies did, where nobody changed it since. */
	void (*undo)(struct mfs_req *c, void *state);
	void (*free)(void *state);
};
/* A write() to the open file h: 0 when it applied something, 1 when all of
 * the document waits for the end of its line, or -errno (the document is
 * refused, its earlier parts undone). */
int mfs_doc_write(struct mfs_req *c, struct handle *h, const struct mfs_doc_ops *ops,
                  const char *buf, size_t size, off_t off);
/* close(): applies what waits (the last line had no newline); a created
 * entry (MK_PENDING) becomes real, or goes when refused. */
int mfs_doc_flush(struct mfs_req *c, struct fuse_file_info *fi, const struct mfs_doc_ops *ops);

/* The longest config.ini or config key document one open file may write. */
#define MFS_CONFIG_DOC_MAX (16u << 20)

/* kind_service.c: a config document's undo (config.ini and config keys). */
void mfs_config_undo(struct mfs_req *c, void *state);
void mfs_config_undo_free(void *state);

/* r and the text a service's render gave: -ENOENT, and no text, when the
 * service went while rendering. */
int mfs_rendered_svc(struct mfs_req *c, int r, char **ret, size_t *ret_len);

#define MFS_RENDERED_OPS                                                                 \
	.open = mfs_rendered_open, .read = mfs_rendered_read, .poll = mfs_rendered_poll, \
	.release = mfs_rendered_release, .truncate = mfs_rendered_truncate

/* How long the kernel may keep entries and attributes that change only
 * through the mount or with the notifier's word. */
#define MFS_LONG_TIMEOUT 3600.0

#endif
