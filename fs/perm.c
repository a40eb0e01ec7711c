/* SPDX-License-Identifier: MIT */
/* Owners and modes: who may do what, as stat shows it.
 *
 * The kernel checks the modes (the mount always has default_permissions):
 * opening, creating and removing entries, the sticky bit of registry/.
 * This file decides what stat shows, and keeps what chmod and chown set.
 * What the kernel cannot know is checked in the kinds: whose PID a
 * registration may name (kind_registry.c) and who owns a service (core).
 *
 * Every node's owner, group and mode follow from rules:
 *  - the root, services/ and config/: the mount's owner, 0755; registry/:
 *    1777 (anyone registers; the sticky bit keeps others' names); events:
 *    0600, the mount's owner only (it shows every change); metrics: 0444,
 *    each reader shown only the services whose files they may read
 *    (mfs_perm_may_read_svc, the same rules); cluster/ (cluster mode):
 *    the mount's owner, folders 0555 and status 0444, and each
 *    cluster/nodes/NODE/SERVICE its service's owner and group on NODE and
 *    the service's mode without write and execute bits, as the view says
 *    (chmod and chown: EPERM there, MK_FOREIGN);
 *  - services/S: the service's owner (core keeps it: hooks run as it),
 *    0755; everything inside S takes S's owner and group, folders S's
 *    mode, files S's mode without execute bits (read-only files without
 *    write bits either);
 *  - config/APP: its creator, 0755; its keys take APP's as S's do;
 *  - registry/NAME and registry/POOL/PID: the owner of the PID, 0644;
 *    registry/POOL: its creator, 1777.
 * Only what chmod and chown change on a node, and the creator of a folder
 * made by someone other than the mount's owner, are kept: a table of
 * overrides keyed by the node's path, so that a key nobody changed costs
 * nothing. An override goes with its node, whatever removes it (rm, a
 * registered process that exits, an expiring key, a removed service): the
 * table listens to core's events. In cluster mode the overrides of config/
 * and registry/ are the same on every node (cluster/cperm.c listens to
 * the table and imports what other nodes set). chown of services/S changes the
 * service's owner itself and drops the owners set below it (delegation,
 * as a cgroup directory is handed over); the kernel's cached attributes of
 * everything below are dropped.
 *
 * The table's lock is a leaf (see the order in fs_i.h): held to look up,
 * set or drop an entry, never across core, a reply or the kernel. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "kind.h"
#include "kv.h"
#include "runtime.h"
#include "service.h"
#include "tree.h"
#include "util.h"

#define PATH_MAX_LEN 1100 /* services/NAME/config/SECTION/KEY: 4 names and a bit */

/* What chmod and chown set on one node: the value of its path in the table
 * (struct mfs_perm_entry, fs.h). */
#define ov mfs_perm_entry

/* Listeners at most: the state database and cluster mode. */
#define LISTENERS_MAX 4

struct mfs_perm {
	/* A leaf but for the listeners' own locks (each a leaf: they only
	 * enqueue): guards the table and the listeners. */
	pthread_mutex_t lock;
	struct mkv *table;    /* path (relative to the mount) -> struct ov */
	_Atomic size_t count; /* read without the lock: 0 skips every lookup */
	/* Told of every change of the table, and of a service's owner
	 * (mfs_perm_add_listener), under the lock, in the order added. */
	struct {
		mfs_perm_listener_fn fn;
		void *arg;
	} listen[LISTENERS_MAX];
};

/* Under the lock: tells every listener of path. */
static void tell_locked(struct mfs_perm *p, const char *path)
{
	for (size_t i = 0; i < LISTENERS_MAX; i++)
		if (p->listen[i].fn)
			p->listen[i].fn(path, p->listen[i].arg);
}

/* ---- the table ---- */

/* A copy of path's override; false when it has none. */
static bool ov_get(struct mfs *fs, const char *path, struct ov *ret)
{
	struct mfs_perm *p = fs->perm;
	if (atomic_load(&p->count) == 0)
		return false;
	pthread_mutex_lock(&p->lock);
	bool found = mkv_read(p->table, path, 0, ret, sizeof(*ret)) == (ssize_t)sizeof(*ret);
	pthread_mutex_unlock(&p->lock);
	return found;
}

/* Under the lock: sets path's override (one with neither field goes). */
static int ov_put_locked(struct mfs_perm *p, const char *path, const struct ov *o)
{
	int r = 0;
	if (!o->has_owner && !o->has_mode) {
		r = mkv_delete(p->table, path) == 0 ? 0 : 1;
	} else {
		ssize_t n = mkv_write(p->table, path, 0, o, sizeof(*o), MKV_REPLACE);
		r = n < 0 ? (int)n : 0;
	}
	atomic_store(&p->count, mkv_count(p->table));
	if (r == 0)
		tell_locked(p, path);
	return r > 0 ? 0 : r;
}

static int ov_put(struct mfs *fs, const char *path, const struct ov *o)
{
	struct mfs_perm *p = fs->perm;
	pthread_mutex_lock(&p->lock);
	int r = ov_put_locked(p, path, o);
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* The paths to change, gathered by a walk (which must not change the table). */
struct drop_walk {
	const char *top;
	size_t toplen;
	bool below_only, owners_only;
	char **paths;
	size_t n, cap;
	bool failed;
};

static int gather(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                  void *arg)
{
	struct drop_walk *w = arg;
	bool self = strcmp(key, w->top) == 0;
	bool below = strncmp(key, w->top, w->toplen) == 0 && key[w->toplen] == '/';
	if (!below && (!self || w->below_only))
		return 0;
	if (w->n == w->cap) {
		size_t nc = w->cap ? 2 * w->cap : 16;
		char **g = realloc(w->paths, nc * sizeof(*g));
		if (!g) {
			w->failed = true;
			return 1;
		}
		w->paths = g;
		w->cap = nc;
	}
	if (!(w->paths[w->n] = strdup(key))) {
		w->failed = true;
		return 1;
	}
	w->n++;
	return 0;
}

/* Drops top's override (unless below_only) and those of everything below
 * it; with owners_only, only the owners below are dropped (modes stay). */
static void ov_drop_tree(struct mfs *fs, const char *top, bool below_only, bool owners_only)
{
	struct mfs_perm *p = fs->perm;
	if (atomic_load(&p->count) == 0)
		return;
	struct drop_walk w = {.top = top,
	                      .toplen = strlen(top),
	                      .below_only = below_only,
	                      .owners_only = owners_only};
	pthread_mutex_lock(&p->lock);
	mkv_foreach(p->table, gather, &w);
	if (w.failed)
		mu_log(MU_LOG_WARNING, "%s: out of memory: owners and modes set below it stay",
		       top);
	for (size_t i = 0; i < w.n; i++) {
		struct ov o = {0};
		if (owners_only && mkv_read(p->table, w.paths[i], 0, &o, sizeof(o)) == sizeof(o))
			o.has_owner = false;
		ov_put_locked(p, w.paths[i], &o);
		free(w.paths[i]);
	}
	pthread_mutex_unlock(&p->lock);
	free(w.paths);
}

/* A renamed entry keeps its attributes (as a file's inode does). */
static void ov_move(struct mfs *fs, const char *from, const char *to)
{
	struct ov o;
	if (!ov_get(fs, from, &o))
		return;
	ov_drop_tree(fs, to, false, false);
	ov_drop_tree(fs, from, false, false);
	ov_put(fs, to, &o);
}

/* Whatever removes a node, its override goes: core says so in its events
 * (called in the emitting thread, outside core's locks; takes only the
 * table's lock). */
static void listener(const struct mev *ev, void *arg)
{
	struct mfs *fs = arg;
	if (atomic_load(&fs->perm->count) == 0)
		return;
	switch (ev->op) {
	case MEV_DELETE:
	case MEV_RMDIR:
	case MEV_UNREGISTER:
	case MEV_PLUGIN_DEL:
		ov_drop_tree(fs, ev->path, false, false);
		break;
	case MEV_RENAME:
		if (ev->detail)
			ov_move(fs, ev->path, ev->detail);
		break;
	default:
		break;
	}
}

int mfs_perm_init(struct mfs *fs)
{
	struct mfs_perm *p = calloc(1, sizeof(*p));
	if (!p || !(p->table = mkv_new())) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->count, 0);
	fs->perm = p;
	int r = mev_ring_add_listener(mrt_events(fs->rt), listener, fs);
	if (r < 0)
		mfs_perm_fini(fs);
	return r;
}

void mfs_perm_fini(struct mfs *fs)
{
	struct mfs_perm *p = fs->perm;
	if (!p)
		return;
	mev_ring_remove_listener(mrt_events(fs->rt), listener, fs);
	mkv_free(p->table);
	pthread_mutex_destroy(&p->lock);
	free(p);
	fs->perm = NULL;
}

/* ---- the rules ---- */

/* st with path's own owner and mode, where chmod or chown set them. */
static void own_of(struct mfs *fs, const char *path, struct stat *st)
{
	struct ov o;
	if (!ov_get(fs, path, &o))
		return;
	if (o.has_owner) {
		st->st_uid = o.uid;
		st->st_gid = o.gid;
	}
	if (o.has_mode)
		st->st_mode = o.mode;
}

/* The attributes of the folder that c's node takes its own from: its
 * service, or its config/APP. False for nodes outside both. */
static bool scope(struct mfs_req *c, struct stat *st)
{
	char path[PATH_MAX_LEN];
	enum mnode_kind k = c->node->kind;

	if (c->kind->flags & MK_IN_SVC) {
		if (!c->svc)
			return false;
		mallafs_svc_owner(c->svc, &st->st_uid, &st->st_gid);
		snprintf(path, sizeof(path), "services/%s", msvc_name(c->svc));
		st->st_mode = 0755;
	} else if (k == N_APP || k == N_APPKEY) {
		snprintf(path, sizeof(path), "config/%s", k == N_APP ? c->name : c->pname);
		st->st_mode = 0755;
	} else {
		return false;
	}
	own_of(c->fs, path, st);
	return true;
}

/* The mode a node of kind k has by the rules, from its scope's mode m. */
static mode_t derive(const struct mfs_kind *k, mode_t m, bool is_scope)
{
	if (is_scope)
		return m & 07777;
	if (k->flags & MK_DIR)
		return m & 0777;
	if (k->flags & MK_RDONLY)
		return m & 0444;
	return m & 0666;
}

void mfs_perm_rules(struct mfs_req *c, struct stat *st)
{
	const struct mfs_kind *k = c->kind;
	enum mnode_kind kind = c->node->kind;
	struct stat sc = {0};
	mode_t type = st->st_mode & S_IFMT;

	st->st_uid = c->fs->uid;
	st->st_gid = c->fs->gid;
	if (scope(c, &sc)) {
		st->st_uid = sc.st_uid;
		st->st_gid = sc.st_gid;
		st->st_mode = type | derive(k, sc.st_mode, kind == N_SVC || kind == N_APP);
	} else if (k->mode) {
		st->st_mode = type | k->mode;
	} else {
		st->st_mode =
		        type | (k->flags & MK_DIR ? 0755 : (k->flags & MK_RDONLY ? 0444 : 0644));
	}
}

/* The node's own chmod and chown, over what the rules and its kind said. */
void mfs_perm_own(struct mfs_req *c, struct stat *st)
{
	char path[PATH_MAX_LEN];
	struct ov o;
	enum mnode_kind kind = c->node->kind;
	if (kind == N_SVC || kind == N_APP || atomic_load(&c->fs->perm->count) == 0)
		return; /* a scope's own are its rules */
	if (mfs_node_path(c->fs, c->node, path, sizeof(path)) < 0 || !ov_get(c->fs, path, &o))
		return;
	if (o.has_owner) {
		st->st_uid = o.uid;
		st->st_gid = o.gid;
	}
	if (o.has_mode)
		st->st_mode = (st->st_mode & S_IFMT) | o.mode;
}

/* ---- chmod and chown ---- */

static bool in_groups(fuse_req_t req, gid_t gid)
{
	gid_t groups[64];
	if (fuse_req_ctx(req)->gid == gid)
		return true;
	int n = fuse_req_getgroups(req, 64, groups);
	for (int i = 0; i < n && i < 64; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* As chmod(2) and chown(2) decide (the kernel has checked already; this is
 * the same rule, so that it holds whatever the mount's options). */
static int may_change(fuse_req_t req, const struct stat *attr, int to_set, const struct stat *cur)
{
	uid_t caller = fuse_req_ctx(req)->uid;
	if (caller == 0)
		return 0;
	bool owner = caller == cur->st_uid;
	if ((to_set & FUSE_SET_ATTR_MODE) && !owner)
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != cur->st_uid)
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != cur->st_gid &&
	    (!owner || !in_groups(req, attr->st_gid)))
		return -EPERM;
	return 0;
}

/* The kernel's cached attributes of everything below n: a scope's change
 * reaches them all before chown or chmod returns. Attributes only (a
 * negative offset): the kernel takes no lock for that which a request in
 * flight could hold, so a request thread may do it. */
static void inval_below(struct mfs *fs, struct mnode *n)
{
	uint64_t *inos = NULL;
	size_t count = 0;
	if (!fs->se || mfs_node_inos_under(fs, n, &inos, &count) < 0)
		return;
	for (size_t i = 0; i < count; i++)
		fuse_lowlevel_notify_inval_inode(fs->se, inos[i], -1, 0);
	free(inos);
}

int mfs_perm_setattr(struct mfs_req *c, const struct stat *attr, int to_set, const struct stat *cur)
{
	char path[PATH_MAX_LEN];
	enum mnode_kind kind = c->node->kind;
	bool dir = c->kind->flags & MK_DIR;
	struct ov o = {0};
	if (c->kind->flags & MK_FOREIGN)
		return -EPERM; /* another node's owners and modes: changed there */
	int r = may_change(c->req, attr, to_set, cur);
	if (r < 0)
		return r;
	r = mfs_node_path(c->fs, c->node, path, sizeof(path));
	if (r < 0)
		return r;
	uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : cur->st_uid;
	gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : cur->st_gid;
	mode_t mode = to_set & FUSE_SET_ATTR_MODE ? attr->st_mode & (dir ? 07777 : 0777)
	                                          : cur->st_mode & 07777;
	if (uid == cur->st_uid && gid == cur->st_gid && mode == (cur->st_mode & 07777))
		return 0;

	/* What the rules alone would give, to keep only what differs. A
	 * service's owner is kept by core (below); a config/APP's is its
	 * creator, kept here, against the mount's owner. */
	struct stat rules = {.st_mode = cur->st_mode & S_IFMT};
	if (kind == N_SVC || kind == N_APP) {
		rules.st_uid = kind == N_SVC ? uid : c->fs->uid;
		rules.st_gid = kind == N_SVC ? gid : c->fs->gid;
		rules.st_mode |= 0755;
	} else {
		mfs_perm_rules(c, &rules);
		if (c->kind->stat) {
			struct stat ks = rules;
			if (c->kind->stat(c, &ks) == 0)
				rules.st_uid = ks.st_uid;
		}
	}
	o.has_owner = uid != rules.st_uid || gid != rules.st_gid;
	o.uid = uid;
	o.gid = gid;
	o.has_mode = mode != (rules.st_mode & 07777);
	o.mode = mode;
	r = ov_put(c->fs, path, &o);
	if (r < 0)
		return r;

	if (kind == N_SVC && (uid != cur->st_uid || gid != cur->st_gid)) {
		/* Delegation: S and everything in it go to the new owner. */
		msvc_set_owner(c->svc, uid, gid);
		mfs_perm_owner_changed(c->fs, path);
		ov_drop_tree(c->fs, path, true, true);
		mu_log(MU_LOG_INFO, "%s: owner %u:%u", path, (unsigned)uid, (unsigned)gid);
	}
	if (kind == N_SVC || kind == N_APP)
		inval_below(c->fs, c->node);
	return 0;
}

/* ---- what a caller may read (the root's metrics) ---- */

void mfs_perm_caller(struct mfs_req *c, struct mfs_caller *ret)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(c->req);
	ret->uid = ctx->uid;
	ret->gid = ctx->gid;
	ret->ngroups = 0;
	if (ctx->uid == 0)
		return;
	/* Groups past the array's end are not counted: access they would
	 * give is refused (the safe side). */
	int n = fuse_req_getgroups(c->req, MFS_CALLER_GROUPS, ret->groups);
	ret->ngroups = n < 0 ? 0 : n > MFS_CALLER_GROUPS ? MFS_CALLER_GROUPS : (size_t)n;
}

/* The permission bits (rwx) who gets from st, as the kernel picks them:
 * the owner's class, else the group's, else the others'. */
static unsigned bits_for(const struct mfs_caller *who, const struct stat *st)
{
	if (who->uid == st->st_uid)
		return (st->st_mode >> 6) & 7;
	bool member = who->gid == st->st_gid;
	for (size_t i = 0; !member && i < who->ngroups; i++)
		member = who->groups[i] == st->st_gid;
	return member ? (st->st_mode >> 3) & 7 : st->st_mode & 7;
}

bool mfs_perm_may_read_svc(struct mfs *fs, const struct mfs_caller *who, struct mallafs_svc *svc,
                           const char *file, const struct mfs_kind *k)
{
	char path[PATH_MAX_LEN];
	if (who->uid == 0)
		return true;
	/* services/: search. */
	struct stat top = {.st_uid = fs->uid, .st_gid = fs->gid, .st_mode = 0755};
	snprintf(path, sizeof(path), "%s", mtree_name(MTREE_SERVICES));
	own_of(fs, path, &top);
	if (!(bits_for(who, &top) & 1))
		return false;
	/* services/S: search. */
	struct stat sc = {.st_mode = 0755};
	mallafs_svc_owner(svc, &sc.st_uid, &sc.st_gid);
	size_t at = strlen(path);
	snprintf(path + at, sizeof(path) - at, "/%s", msvc_name(svc));
	own_of(fs, path, &sc);
	if (!(bits_for(who, &sc) & 1))
		return false;
	/* services/S/FILE: read, with the mode the rules derive from S's. */
	struct stat f = {
	        .st_uid = sc.st_uid, .st_gid = sc.st_gid, .st_mode = derive(k, sc.st_mode, false)};
	at = strlen(path);
	if (snprintf(path + at, sizeof(path) - at, "/%s", file) >= (int)(sizeof(path) - at))
		return false;
	own_of(fs, path, &f);
	return (bits_for(who, &f) & 4) != 0;
}

void mfs_perm_created(struct mfs_req *parent, const char *name)
{
	char path[PATH_MAX_LEN];
	const struct fuse_ctx *ctx = fuse_req_ctx(parent->req);
	if (ctx->uid == parent->fs->uid && ctx->gid == parent->fs->gid)
		return; /* the rules' owner already */
	if (mfs_node_path(parent->fs, parent->node, path, sizeof(path)) < 0)
		return;
	size_t at = strlen(path);
	if (snprintf(path + at, sizeof(path) - at, "/%s", name) >= (int)(sizeof(path) - at))
		return;
	struct ov o = {.has_owner = true, .uid = ctx->uid, .gid = ctx->gid};
	ov_put(parent->fs, path, &o);
}

/* ---- for the state database (fs.h) ---- */

void mfs_perm_owner_changed(struct mfs *fs, const char *path)
{
	struct mfs_perm *p = fs->perm;
	pthread_mutex_lock(&p->lock);
	tell_locked(p, path);
	pthread_mutex_unlock(&p->lock);
}

void mfs_service_set_owner(struct mfs *fs, struct mallafs_svc *svc, uid_t uid, gid_t gid)
{
	char path[PATH_MAX_LEN];
	const char *name = msvc_name(svc);
	if (snprintf(path, sizeof(path), "%s/%s", mtree_name(MTREE_SERVICES), name) >=
	    (int)sizeof(path))
		return;
	msvc_set_owner(svc, uid, gid);
	ov_drop_tree(fs, path, false, true);
	mfs_perm_owner_changed(fs, path);
	struct mnode *root = mfs_node_get(fs, FUSE_ROOT_ID);
	struct mnode *dir = root ? mfs_node_find(fs, root, mtree_name(MTREE_SERVICES)) : NULL;
	struct mnode *n = dir ? mfs_node_find(fs, dir, name) : NULL;
	if (n) {
		if (fs->se)
			fuse_lowlevel_notify_inval_inode(fs->se, n->ino, -1, 0);
		inval_below(fs, n);
	}
	mfs_node_put(fs, n);
	mfs_node_put(fs, dir);
	mfs_node_put(fs, root);
	mu_log(MU_LOG_INFO, "%s: owner %u:%u", path, (unsigned)uid, (unsigned)gid);
}

int mfs_perm_add_listener(struct mfs *fs, mfs_perm_listener_fn fn, void *arg)
{
	struct mfs_perm *p = fs->perm;
	int r = -ENOSPC;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < LISTENERS_MAX && r < 0; i++)
		if (!p->listen[i].fn) {
			p->listen[i].fn = fn;
			p->listen[i].arg = arg;
			r = 0;
		}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void mfs_perm_remove_listener(struct mfs *fs, mfs_perm_listener_fn fn, void *arg)
{
	struct mfs_perm *p = fs->perm;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < LISTENERS_MAX; i++)
		if (p->listen[i].fn == fn && p->listen[i].arg == arg)
			p->listen[i].fn = NULL;
	pthread_mutex_unlock(&p->lock);
}

int mfs_perm_get(struct mfs *fs, const char *path, struct mfs_perm_entry *ret)
{
	return ov_get(fs, path, ret) ? 0 : -ENOENT;
}

struct foreach_ctx {
	int (*fn)(const char *path, const struct mfs_perm_entry *e, void *arg);
	void *arg;
};

static int foreach_one(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                       void *arg)
{
	struct foreach_ctx *f = arg;
	struct ov o;
	if (len != sizeof(o))
		return 0;
	memcpy(&o, value, sizeof(o));
	return f->fn(key, &o, f->arg);
}

int mfs_perm_foreach(struct mfs *fs,
                     int (*fn)(const char *path, const struct mfs_perm_entry *e, void *arg),
                     void *arg)
{
	struct foreach_ctx f = {.fn = fn, .arg = arg};
	pthread_mutex_lock(&fs->perm->lock);
	int r = mkv_foreach(fs->perm->table, foreach_one, &f);
	pthread_mutex_unlock(&fs->perm->lock);
	return r;
}

/* The kernel's cached attributes of path's node and everything below it,
 * dropped by the notifier thread (a node not looked up has none). */
static void inval_path(struct mfs *fs, const char *path)
{
	char buf[PATH_MAX_LEN];
	if (!fs->notifier)
		return;
	snprintf(buf, sizeof(buf), "%s", path);
	struct mnode *n = mfs_node_get(fs, FUSE_ROOT_ID);
	char *save = NULL;
	for (char *name = strtok_r(buf, "/", &save); n && name; name = strtok_r(NULL, "/", &save)) {
		struct mnode *child = mfs_node_find(fs, n, name);
		mfs_node_put(fs, n);
		n = child;
	}
	if (!n)
		return;
	uint64_t *inos = NULL;
	size_t count = 0;
	mfs_notify_inval_inode(fs, n->ino);
	if (mfs_node_inos_under(fs, n, &inos, &count) == 0)
		for (size_t i = 0; i < count; i++)
			mfs_notify_inval_inode(fs, inos[i]);
	free(inos);
	mfs_node_put(fs, n);
}

int mfs_perm_import(struct mfs *fs, const char *path, const struct mfs_perm_entry *e)
{
	if (strlen(path) >= PATH_MAX_LEN)
		return -ENAMETOOLONG;
	struct ov o = {.has_owner = e->has_owner,
	               .has_mode = e->has_mode,
	               .uid = e->uid,
	               .gid = e->gid,
	               .mode = e->mode & 07777};
	int r = ov_put(fs, path, &o);
	if (r == 0)
		inval_path(fs, path);
	return r;
}
