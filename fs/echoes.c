/* SPDX-License-Identifier: MIT */
/* The notifier's echoes: what it does on its own mount so that inotify
 * sees a change the daemon made behind the kernel's back (open and write
 * for a changed file, create or mkdir for a new entry, unlink or rmdir for
 * a removed one), done by the echo process (echoproc.c), and which echo is
 * under way, for echo.c to answer it. Used by the notifier's thread only,
 * but for the queries of echo.c, which take the lock.
 *
 * Lock: mfs_echoes.lock guards echo, parent and name; a leaf. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echoes.h"
#include "echoproc.h"

struct mfs_echoes {
	struct mfs_echoproc *proc;
	pid_t pid; /* the pid of the echo process's requests */
	pthread_mutex_t lock;
	/* The echo under way: what echo.c should answer to it. */
	enum mfs_echo echo;
	uint64_t parent;
	char name[MU_NAME_MAX + 1];
};

int mfs_echoes_start(struct mfs *fs)
{
	struct mfs_echoes *ec = calloc(1, sizeof(*ec));
	if (!ec)
		return -ENOMEM;
	int r = mfs_echoproc_start(fs->mountpoint, &ec->proc);
	if (r < 0) {
		free(ec);
		return r;
	}
	ec->pid = mfs_echoproc_pid(ec->proc);
	pthread_mutex_init(&ec->lock, NULL);
	fs->echoes = ec;
	return 0;
}

void mfs_echoes_kill(struct mfs *fs)
{
	struct mfs_echoes *ec = fs->echoes;
	if (ec)
		mfs_echoproc_kill(ec->proc);
}

void mfs_echoes_stop(struct mfs *fs)
{
	struct mfs_echoes *ec = fs->echoes;
	if (!ec)
		return;
	fs->echoes = NULL;
	mfs_echoproc_stop(ec->proc);
	pthread_mutex_destroy(&ec->lock);
	free(ec);
}

bool mfs_req_is_echo(struct mfs *fs, fuse_req_t req)
{
	struct mfs_echoes *ec = fs->echoes;
	return ec && fuse_req_ctx(req)->pid == ec->pid;
}

enum mfs_echo mfs_echo_current(struct mfs *fs)
{
	struct mfs_echoes *ec = fs->echoes;
	if (!ec)
		return MFS_ECHO_NONE;
	pthread_mutex_lock(&ec->lock);
	enum mfs_echo e = ec->echo;
	pthread_mutex_unlock(&ec->lock);
	return e;
}

enum mfs_echo mfs_echo_for(struct mfs *fs, uint64_t parent, const char *name)
{
	struct mfs_echoes *ec = fs->echoes;
	enum mfs_echo e = MFS_ECHO_NONE;
	if (!ec)
		return e;
	pthread_mutex_lock(&ec->lock);
	if (ec->echo != MFS_ECHO_NONE && ec->parent == parent && strcmp(ec->name, name) == 0)
		e = ec->echo;
	pthread_mutex_unlock(&ec->lock);
	return e;
}

/* Walks the table along path. Returns the node (referenced) if the kernel
 * knows it; *ret_parent gets its parent's node (referenced) if the kernel
 * knows that, and *ret_last the last component (pointing into path). */
static struct mnode *walk(struct mfs *fs, char *path, struct mnode **ret_parent,
                          const char **ret_last, bool held)
{
	struct mnode *parent = NULL, *n = mfs_node_get(fs, fs->root->ino);
	char *save = NULL;
	*ret_last = NULL;
	for (char *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		mfs_node_put(fs, parent);
		parent = n;
		*ret_last = c;
		n = !parent ? NULL
		    : held  ? mfs_node_find_held(fs, parent, c)
		            : mfs_node_find(fs, parent, c);
		if (!n) {
			/* Only the last component may be unknown. */
			if (strtok_r(NULL, "/", &save)) {
				mfs_node_put(fs, parent);
				parent = NULL;
			}
			break;
		}
	}
	*ret_parent = parent;
	return n;
}

void mfs_resolve(struct mfs *fs, const char *path, struct resolved *r)
{
	snprintf(r->buf, sizeof(r->buf), "%s", path);
	r->node = walk(fs, r->buf, &r->parent, &r->last, true);
}

void mfs_resolve_in_table(struct mfs *fs, const char *path, struct resolved *r)
{
	snprintf(r->buf, sizeof(r->buf), "%s", path);
	r->node = walk(fs, r->buf, &r->parent, &r->last, false);
}

void mfs_resolved_put(struct mfs *fs, struct resolved *r)
{
	mfs_node_put(fs, r->node);
	mfs_node_put(fs, r->parent);
}

/* Whether the request recorded in t acted on this entry itself. */
bool mfs_in_band(const struct mfs_target *t, const struct resolved *r)
{
	if (!t->set)
		return false;
	if (r->node && r->node->ino == t->ino)
		return true;
	if (r->parent && r->last &&
	    ((r->parent->ino == t->parent && strcmp(r->last, t->name) == 0) ||
	     (r->parent->ino == t->parent2 && strcmp(r->last, t->name2) == 0)))
		return true;
	return false;
}

static void set_echo(struct mfs *fs, enum mfs_echo e, uint64_t parent, const char *name)
{
	struct mfs_echoes *ec = fs->echoes;
	pthread_mutex_lock(&ec->lock);
	ec->echo = e;
	ec->parent = parent;
	snprintf(ec->name, sizeof(ec->name), "%s", name ? name : "");
	pthread_mutex_unlock(&ec->lock);
}

static int abs_path(struct mfs *fs, const char *path, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", fs->mountpoint, path);
	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* A changed file: IN_MODIFY and IN_CLOSE_WRITE, then fresh caches. */
void mfs_echo_modify(struct mfs *fs, const char *path)
{
	char abs[PATH_MAX];
	struct resolved r;
	if (abs_path(fs, path, abs, sizeof(abs)) < 0)
		return;
	int e = mfs_echoproc_do(fs->echoes->proc, MFS_ECHO_OP_TOUCH, abs);
	if (e < 0 && e != -ENOENT)
		mu_log(MU_LOG_DEBUG, "notifier: echo write %s: %s", path, strerror(-e));
	mfs_resolve(fs, path, &r);
	if (r.node) {
		mfs_node_cache_set(fs, r.node, false, NULL);
		fuse_lowlevel_notify_inval_inode(fs->se, r.node->ino, 0, 0);
		mfs_poll_wake(fs, r.node);
	}
	mfs_resolved_put(fs, &r);
}

/* The absolute path of an entry whose folder the kernel knows (nobody can
 * watch one in a folder never seen), and where it is in the table. */
static bool echo_target(struct mfs *fs, const char *path, char *abs, size_t len, struct resolved *r)
{
	if (abs_path(fs, path, abs, len) < 0)
		return false;
	mfs_resolve(fs, path, r);
	if (r->parent && r->last)
		return true;
	mfs_resolved_put(fs, r);
	return false;
}

/* A new entry: IN_CREATE. The kernel must believe it is creating it, so a
 * cached dentry goes first and the echo lookup answers ENOENT. */
void mfs_echo_create(struct mfs *fs, const char *path, bool dir)
{
	char abs[PATH_MAX];
	struct resolved r;
	if (!echo_target(fs, path, abs, sizeof(abs), &r))
		return;
	/* Only a name the kernel still holds (its node is in the table) needs
	 * dropping: the kernel takes the folder's lock to drop it, and could
	 * wait there on a request in flight. */
	if (r.node)
		fuse_lowlevel_notify_inval_entry(fs->se, r.parent->ino, r.last, strlen(r.last));
	set_echo(fs, MFS_ECHO_CREATE, r.parent->ino, r.last);
	mfs_echoproc_do(fs->echoes->proc, dir ? MFS_ECHO_OP_MKDIR : MFS_ECHO_OP_CREATE, abs);
	set_echo(fs, MFS_ECHO_NONE, 0, NULL);
	mfs_resolved_put(fs, &r);
}

/* A removed entry: IN_DELETE. The echo lookup answers with a stand-in. */
void mfs_echo_delete(struct mfs *fs, const char *path, bool dir)
{
	char abs[PATH_MAX];
	struct resolved r;
	if (!echo_target(fs, path, abs, sizeof(abs), &r))
		return;
	set_echo(fs, MFS_ECHO_DELETE, r.parent->ino, r.last);
	int e = mfs_echoproc_do(fs->echoes->proc, dir ? MFS_ECHO_OP_RMDIR : MFS_ECHO_OP_UNLINK,
	                        abs);
	if (e < 0)
		mu_log(MU_LOG_DEBUG, "notifier: echo delete %s: %s", path, strerror(-e));
	set_echo(fs, MFS_ECHO_NONE, 0, NULL);
	/* Whatever happened, no cache may keep it: an unlink that went through
	 * took the kernel's entry with it; one that failed leaves it to drop. */
	mfs_node_unhash(fs, r.parent, r.last);
	if (e < 0)
		fuse_lowlevel_notify_inval_entry(fs->se, r.parent->ino, r.last, strlen(r.last));
	mfs_resolved_put(fs, &r);
}
