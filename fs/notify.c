/* The notifier: makes every change the kernel did not see come through a
 * request reach its caches, inotify watchers and poll() waiters.
 *
 * Core reports every change to a listener, in the thread that made it. A
 * request handler names what it acts on (mfs_req_begin), so a change to that
 * very entry is known to the kernel already; anything else is queued here.
 *
 * The kernel makes inotify events only for operations that pass through the
 * mount, and must not be called from a request handler (a notification can
 * wait on locks the request holds). So this thread acts on the mount as a
 * client, through its echo process (echoproc.c: no thread of the daemon
 * does I/O on its own mount): a changed file is opened, written and closed
 * (IN_MODIFY, IN_CLOSE_WRITE), a new entry is created (IN_CREATE), a
 * removed one unlinked (IN_DELETE). echo.c recognises those requests by the
 * echo process's pid and answers them as the echo of a change already
 * made: they change nothing, so nothing feeds back. Derived files (config.ini, config keys, chain,
 * status, plugin files) are compared with the last state this thread saw, so
 * only what really changed is echoed, and a burst of changes to one file
 * becomes one echo. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "echoproc.h"
#include "events.h"
#include "fs_i.h"
#include "kv.h"
#include "runtime.h"
#include "service.h"
#include "tree.h"
#include "util.h"

#define QUEUE_MAX 65536

enum item_kind {
	IT_EVENT,  /* a core event */
	IT_INVAL,  /* drop the kernel's cache of ino */
	IT_RESYNC, /* compare a service's derived files with what was seen */
};

struct item {
	struct item *next;
	enum item_kind kind;
	enum mev_op op;
	uint64_t ino;
	char *path;
	char *detail; /* a rename's new path */
	char *key;    /* in the pending set, or NULL */
	struct mfs_target target;
};

/* What a service's derived files said when this thread last looked. */
struct snap {
	struct snap *next;
	char *name;
	struct mallafs_cfg *cfg; /* effective */
	char *ini, *chain, *status;
	char *files; /* published file names, one a line */
};

struct mnotifier {
	pthread_t thread;
	struct mfs_echoproc *ep; /* the thread's own */
	pid_t echo_pid;          /* the pid of the echo process's requests */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *head, *tail;
	size_t len;
	struct mkv *pending; /* dedup keys of queued items */
	bool stop;
	bool joined;
	struct snap *snaps; /* the thread's own */
	/* The echo under way: what the handlers should answer to it. */
	enum mfs_echo echo;
	uint64_t echo_parent;
	char echo_name[MU_NAME_MAX + 1];
};

static _Thread_local struct mfs_target tls_target;

void mfs_req_begin(uint64_t ino, uint64_t parent, const char *name, uint64_t parent2,
                   const char *name2)
{
	tls_target.set = true;
	tls_target.ino = ino;
	tls_target.parent = parent;
	snprintf(tls_target.name, sizeof(tls_target.name), "%s", name ? name : "");
	tls_target.parent2 = parent2;
	snprintf(tls_target.name2, sizeof(tls_target.name2), "%s", name2 ? name2 : "");
}

void mfs_req_end(void)
{
	tls_target.set = false;
}

bool mfs_req_is_echo(struct mfs *fs, fuse_req_t req)
{
	struct mnotifier *nt = fs->notifier;
	return nt && fuse_req_ctx(req)->pid == nt->echo_pid;
}

enum mfs_echo mfs_echo_current(struct mfs *fs)
{
	struct mnotifier *nt = fs->notifier;
	if (!nt)
		return MFS_ECHO_NONE;
	pthread_mutex_lock(&nt->lock);
	enum mfs_echo e = nt->echo;
	pthread_mutex_unlock(&nt->lock);
	return e;
}

enum mfs_echo mfs_echo_for(struct mfs *fs, uint64_t parent, const char *name)
{
	struct mnotifier *nt = fs->notifier;
	enum mfs_echo e = MFS_ECHO_NONE;
	if (!nt)
		return e;
	pthread_mutex_lock(&nt->lock);
	if (nt->echo != MFS_ECHO_NONE && nt->echo_parent == parent &&
	    strcmp(nt->echo_name, name) == 0)
		e = nt->echo;
	pthread_mutex_unlock(&nt->lock);
	return e;
}

/* ---- the queue ---- */

static void item_free(struct item *it)
{
	if (!it)
		return;
	free(it->path);
	free(it->detail);
	free(it->key);
	free(it);
}

/* Queues it unless an item with the same key is queued already. */
static void enqueue(struct mnotifier *nt, struct item *it)
{
	pthread_mutex_lock(&nt->lock);
	if (nt->stop || nt->len >= QUEUE_MAX ||
	    (it->key && mkv_create(nt->pending, it->key) == -EEXIST)) {
		if (nt->len >= QUEUE_MAX)
			mu_log(MU_LOG_WARNING, "notifier: queue full, a change is not echoed");
		pthread_mutex_unlock(&nt->lock);
		item_free(it);
		return;
	}
	if (nt->tail)
		nt->tail->next = it;
	else
		nt->head = it;
	nt->tail = it;
	nt->len++;
	pthread_cond_signal(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
}

static struct item *item_new(enum item_kind kind, enum mev_op op, const char *path,
                             const char *keyfmt)
{
	struct item *it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	it->kind = kind;
	it->op = op;
	if (path && !(it->path = strdup(path)))
		goto fail;
	if (keyfmt) {
		struct mu_buf b = {0};
		if (mu_buf_printf(&b, "%s%s", keyfmt, path ? path : "") < 0) {
			mu_buf_free(&b);
			goto fail;
		}
		it->key = mu_buf_steal(&b, NULL);
	}
	return it;
fail:
	item_free(it);
	return NULL;
}

static const char *last_component(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* "services/NAME/..." -> NAME into buf; false for other paths. */
static bool service_of(const char *path, char *buf, size_t len)
{
	const char *top = mtree_name(MTREE_SERVICES);
	size_t tl = strlen(top);
	if (strncmp(path, top, tl) != 0 || path[tl] != '/')
		return false;
	const char *s = path + tl + 1, *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);
	if (n == 0 || n >= len)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return true;
}

static void listener(const struct mev *ev, void *arg)
{
	struct mfs *fs = arg;
	struct mnotifier *nt = fs->notifier;
	char svc[MU_NAME_MAX + 1];

	switch (ev->op) {
	case MEV_RECONFIGURE:
	case MEV_RESTART:
	case MEV_STATUS:
	case MEV_PLUGIN_ADD:
	case MEV_PLUGIN_DEL:
		if (service_of(ev->path, svc, sizeof(svc))) {
			/* Coalesced per service and per request: a resync must
			 * not lose the entry its request made itself. */
			char key[64];
			snprintf(key, sizeof(key), "R:%llu:%llu:",
			         (unsigned long long)(tls_target.set ? tls_target.ino : 0),
			         (unsigned long long)(tls_target.set ? tls_target.parent : 0));
			struct item *it = item_new(IT_RESYNC, ev->op, svc, key);
			if (it) {
				it->target = tls_target;
				enqueue(nt, it);
			}
		}
		return;
	default:
		break;
	}
	/* The entry the current request acts on: the kernel saw it. */
	const char *last = last_component(ev->path);
	if (tls_target.set &&
	    (strcmp(last, tls_target.name) == 0 || strcmp(last, tls_target.name2) == 0))
		return;
	if (ev->op == MEV_RENAME && tls_target.set && ev->detail &&
	    strcmp(last_component(ev->detail), tls_target.name2) == 0)
		return;
	/* A plugin file that changed: one echo per burst. */
	const char *dedup = ev->op == MEV_WRITE ? "M:" : NULL;
	struct item *it = item_new(IT_EVENT, ev->op, ev->path, dedup);
	if (!it)
		return;
	if (ev->op == MEV_RENAME && ev->detail && !(it->detail = strdup(ev->detail))) {
		item_free(it);
		return;
	}
	it->target = tls_target;
	enqueue(nt, it);
}

void mfs_notify_created(struct mfs *fs, const char *path)
{
	if (!fs->notifier)
		return;
	struct item *it = item_new(IT_EVENT, MEV_CREATE, path, NULL);
	if (it)
		enqueue(fs->notifier, it);
}

void mfs_notify_inval_inode(struct mfs *fs, uint64_t ino)
{
	if (!fs->notifier)
		return;
	struct item *it = item_new(IT_INVAL, MEV_WRITE, NULL, NULL);
	if (!it)
		return;
	it->ino = ino;
	enqueue(fs->notifier, it);
}

/* ---- the echoes ---- */

/* Walks the table along path. Returns the node (referenced) if the kernel
 * knows it; *ret_parent gets its parent's node (referenced) if the kernel
 * knows that, and *ret_last the last component (pointing into path). */
static struct mnode *walk(struct mfs *fs, char *path, struct mnode **ret_parent,
                          const char **ret_last)
{
	struct mnode *parent = NULL, *n = mfs_node_get(fs, fs->root->ino);
	char *save = NULL;
	*ret_last = NULL;
	for (char *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		mfs_node_put(fs, parent);
		parent = n;
		*ret_last = c;
		n = parent ? mfs_node_find(fs, parent, c) : NULL;
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

struct resolved {
	struct mnode *node, *parent;
	const char *last;
	char buf[PATH_MAX];
};

static void resolve(struct mfs *fs, const char *path, struct resolved *r)
{
	snprintf(r->buf, sizeof(r->buf), "%s", path);
	r->node = walk(fs, r->buf, &r->parent, &r->last);
}

static void resolved_put(struct mfs *fs, struct resolved *r)
{
	mfs_node_put(fs, r->node);
	mfs_node_put(fs, r->parent);
}

/* Whether the request recorded in t acted on this entry itself. */
static bool in_band(const struct mfs_target *t, const struct resolved *r)
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
	struct mnotifier *nt = fs->notifier;
	pthread_mutex_lock(&nt->lock);
	nt->echo = e;
	nt->echo_parent = parent;
	snprintf(nt->echo_name, sizeof(nt->echo_name), "%s", name ? name : "");
	pthread_mutex_unlock(&nt->lock);
}

static int abs_path(struct mfs *fs, const char *path, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", fs->mountpoint, path);
	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* A changed file: IN_MODIFY and IN_CLOSE_WRITE, then fresh caches. */
static void echo_modify(struct mfs *fs, const char *path)
{
	char abs[PATH_MAX];
	struct resolved r;
	if (abs_path(fs, path, abs, sizeof(abs)) < 0)
		return;
	int e = mfs_echoproc_do(fs->notifier->ep, MFS_ECHO_OP_TOUCH, abs);
	if (e < 0 && e != -ENOENT)
		mu_log(MU_LOG_DEBUG, "notifier: echo write %s: %s", path, strerror(-e));
	resolve(fs, path, &r);
	if (r.node) {
		mfs_node_cache_set(fs, r.node, false, NULL);
		fuse_lowlevel_notify_inval_inode(fs->se, r.node->ino, 0, 0);
		mfs_poll_wake(fs, r.node);
	}
	resolved_put(fs, &r);
}

/* A new entry: IN_CREATE. The kernel must believe it is creating it, so a
 * cached dentry goes first and the echo lookup answers ENOENT. */
static void echo_create(struct mfs *fs, const char *path, bool dir)
{
	char abs[PATH_MAX];
	struct resolved r;
	if (abs_path(fs, path, abs, sizeof(abs)) < 0)
		return;
	resolve(fs, path, &r);
	if (!r.parent || !r.last) {
		resolved_put(fs, &r);
		return; /* its folder was never seen: nobody can watch it */
	}
	fuse_lowlevel_notify_inval_entry(fs->se, r.parent->ino, r.last, strlen(r.last));
	set_echo(fs, MFS_ECHO_CREATE, r.parent->ino, r.last);
	mfs_echoproc_do(fs->notifier->ep, dir ? MFS_ECHO_OP_MKDIR : MFS_ECHO_OP_CREATE, abs);
	set_echo(fs, MFS_ECHO_NONE, 0, NULL);
	resolved_put(fs, &r);
}

/* A removed entry: IN_DELETE. The echo lookup answers with a stand-in. */
static void echo_delete(struct mfs *fs, const char *path, bool dir)
{
	char abs[PATH_MAX];
	struct resolved r;
	if (abs_path(fs, path, abs, sizeof(abs)) < 0)
		return;
	resolve(fs, path, &r);
	if (!r.parent || !r.last) {
		resolved_put(fs, &r);
		return;
	}
	set_echo(fs, MFS_ECHO_DELETE, r.parent->ino, r.last);
	int e = mfs_echoproc_do(fs->notifier->ep, dir ? MFS_ECHO_OP_RMDIR : MFS_ECHO_OP_UNLINK,
	                        abs);
	if (e < 0)
		mu_log(MU_LOG_DEBUG, "notifier: echo delete %s: %s", path, strerror(-e));
	set_echo(fs, MFS_ECHO_NONE, 0, NULL);
	/* Whatever happened, no cache may keep it. */
	mfs_node_unhash(fs, r.parent, r.last);
	fuse_lowlevel_notify_inval_entry(fs->se, r.parent->ino, r.last, strlen(r.last));
	resolved_put(fs, &r);
}

/* ---- derived files of a service ---- */

static void snap_free(struct snap *s)
{
	if (!s)
		return;
	free(s->name);
	mcfg_free(s->cfg);
	free(s->ini);
	free(s->chain);
	free(s->status);
	free(s->files);
	free(s);
}

static int add_file_name(const char *name, void *arg)
{
	return mu_buf_printf(arg, "%s\n", name);
}

static struct snap *snap_take(struct mallafs_svc *svc)
{
	struct snap *s = calloc(1, sizeof(*s));
	size_t len;
	struct mu_buf files = {0};
	if (!s)
		return NULL;
	s->name = strdup(msvc_name(svc));
	s->cfg = msvc_config_effective(svc);
	if (!s->name || !s->cfg || msvc_config_render(svc, &s->ini, &len) < 0 ||
	    msvc_chain_render(svc, &s->chain, &len) < 0 ||
	    msvc_status_render(svc, &s->status, &len) < 0 ||
	    msvc_files_foreach(svc, add_file_name, &files) < 0 ||
	    !(s->files = mu_buf_steal(&files, NULL))) {
		mu_buf_free(&files);
		snap_free(s);
		return NULL;
	}
	return s;
}

static struct snap **snap_slot(struct mnotifier *nt, const char *name)
{
	struct snap **pp = &nt->snaps;
	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	return pp;
}

struct echo_plan {
	struct mfs *fs;
	const struct mfs_target *target;
	const char *svc;
};

/* Echoes the change of services/SVC/A[/B[/C]] (a derived file or folder),
 * unless the request made it itself; poll() waiters are woken either way. */
static void derived(struct echo_plan *p, enum mfs_echo what, bool dir, const char *a, const char *b,
                    const char *c)
{
	char path[MTREE_PATH_MAX];
	if (mtree_join(path, sizeof(path), mtree_name(MTREE_SERVICES), p->svc, a, b, c, NULL) < 0)
		return;

	struct resolved r;
	resolve(p->fs, path, &r);
	bool mine = in_band(p->target, &r);
	if (mine && r.node && what == MFS_ECHO_MODIFY)
		mfs_poll_wake(p->fs, r.node);
	resolved_put(p->fs, &r);
	if (mine)
		return;
	if (what == MFS_ECHO_MODIFY)
		echo_modify(p->fs, path);
	else if (what == MFS_ECHO_CREATE)
		echo_create(p->fs, path, dir);
	else
		echo_delete(p->fs, path, dir);
}

struct cfg_diff {
	struct echo_plan *p;
	const struct mallafs_cfg *self, *other;
	const char *section;
	bool old_side;
};

static int diff_key(const char *key, const char *value, void *arg)
{
	struct cfg_diff *d = arg;
	const char *o = mallafs_cfg_get(d->other, d->section, key);
	const char *cfgdir = mtree_name(MTREE_SVC_CONFIG);
	if (d->old_side) {
		if (!o)
			derived(d->p, MFS_ECHO_DELETE, false, cfgdir, d->section, key);
	} else if (!o) {
		derived(d->p, MFS_ECHO_CREATE, false, cfgdir, d->section, key);
	} else if (strcmp(o, value) != 0) {
		derived(d->p, MFS_ECHO_MODIFY, false, cfgdir, d->section, key);
	}
	return 0;
}

/* One side's section against the other side: a section only on the old
 * side went, only on the new side came; for one on both, its keys. */
static int diff_section(const char *section, void *arg)
{
	struct cfg_diff *d = arg;
	if (!mcfg_has_section(d->other, section)) {
		/* A folder that goes takes its keys: their watchers (and the
		 * folder's) see each go first, as rm -r would show it. */
		if (d->old_side) {
			struct cfg_diff k = *d;
			k.section = section;
			mallafs_cfg_foreach(d->self, section, diff_key, &k);
		}
		derived(d->p, d->old_side ? MFS_ECHO_DELETE : MFS_ECHO_CREATE, true,
		        mtree_name(MTREE_SVC_CONFIG), section, NULL);
		return 0;
	}
	struct cfg_diff k = *d;
	k.section = section;
	return mallafs_cfg_foreach(d->self, section, diff_key, &k);
}

/* Lines of a that b lacks: what to create (or delete, swapped). */
/* sub: the folder of services/SVC/ they are in, NULL for SVC/ itself. */
static void diff_lines(struct echo_plan *p, const char *a, const char *b, enum mfs_echo what,
                       bool dir, const char *sub)
{
	const char *s = a;
	while (s && *s) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		char name[MU_NAME_MAX + 1];
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, s, n);
			name[n] = '\0';
			bool found = false;
			for (const char *t = b; t && *t;) {
				const char *te = strchr(t, '\n');
				size_t tn = te ? (size_t)(te - t) : strlen(t);
				if (tn == n && memcmp(t, s, n) == 0) {
					found = true;
					break;
				}
				t = te ? te + 1 : NULL;
			}
			if (!found)
				derived(p, what, dir, sub ? sub : name, sub ? name : NULL, NULL);
		}
		s = e ? e + 1 : NULL;
	}
}

static void resync(struct mfs *fs, const char *name, const struct mfs_target *target)
{
	struct mnotifier *nt = fs->notifier;
	struct snap **slot = snap_slot(nt, name);
	struct snap *old = *slot;
	struct mallafs_svc *svc = mrt_service_get(fs->rt, name);
	struct snap *now = svc && msvc_alive(svc) ? snap_take(svc) : NULL;
	msvc_unref(svc);
	if (!now) {
		if (old) {
			*slot = old->next;
			snap_free(old);
		}
		return;
	}
	now->next = old ? old->next : NULL;
	*slot = now;
	if (!old)
		return; /* first sight: nothing to compare with */

	struct echo_plan p = {fs, target, name};
	/* Configuration: sections and keys that came, went or changed. */
	struct cfg_diff d = {&p, old->cfg, now->cfg, NULL, true};
	mcfg_foreach_section(old->cfg, diff_section, &d);
	d = (struct cfg_diff){&p, now->cfg, old->cfg, NULL, false};
	mcfg_foreach_section(now->cfg, diff_section, &d);
	if (strcmp(old->ini, now->ini) != 0)
		derived(&p, MFS_ECHO_MODIFY, false, mtree_name(MTREE_CONFIG_INI), NULL, NULL);
	if (strcmp(old->chain, now->chain) != 0) {
		derived(&p, MFS_ECHO_MODIFY, false, mtree_name(MTREE_CHAIN), NULL, NULL);
		diff_lines(&p, now->chain, old->chain, MFS_ECHO_CREATE, true,
		           mtree_name(MTREE_PLUGINS));
		diff_lines(&p, old->chain, now->chain, MFS_ECHO_DELETE, true,
		           mtree_name(MTREE_PLUGINS));
	}
	if (strcmp(old->files, now->files) != 0) {
		diff_lines(&p, now->files, old->files, MFS_ECHO_CREATE, false, NULL);
		diff_lines(&p, old->files, now->files, MFS_ECHO_DELETE, false, NULL);
	}
	if (strcmp(old->status, now->status) != 0)
		derived(&p, MFS_ECHO_MODIFY, false, mtree_name(MTREE_STATUS), NULL, NULL);
	snap_free(old);
}

static int add_service_name(const char *name, uint64_t id, void *arg)
{
	return mu_buf_printf(arg, "%s\n", name);
}

/* A first look at the services there before the mount (the bootstrap's).
 * The list is copied first: resync takes the runtime's lock itself. */
static void snap_all(struct mfs *fs)
{
	struct mu_buf names = {0};
	struct mfs_target none = {0};
	if (mrt_service_list(fs->rt, 0, add_service_name, &names) == 0 && names.data) {
		char *save = NULL;
		for (char *n = strtok_r(names.data, "\n", &save); n;
		     n = strtok_r(NULL, "\n", &save))
			resync(fs, n, &none);
	}
	mu_buf_free(&names);
}

/* ---- the thread ---- */

static bool is_dir_path(enum mev_op op, const char *path)
{
	if (op == MEV_MKDIR || op == MEV_RMDIR)
		return true;
	return false;
}

static void apply_event(struct mfs *fs, struct item *it)
{
	struct resolved r;
	char svc[MU_NAME_MAX + 1];
	resolve(fs, it->path, &r);
	bool mine = in_band(&it->target, &r);
	bool known = r.node != NULL;
	resolved_put(fs, &r);
	if (mine)
		return;
	bool dir = is_dir_path(it->op, it->path);
	switch (it->op) {
	case MEV_CREATE:
	case MEV_MKDIR:
	case MEV_REGISTER:
		if (it->op == MEV_MKDIR && service_of(it->path, svc, sizeof(svc)) &&
		    !strchr(it->path + 9, '/'))
			resync(fs, svc, &it->target);
		/* A registration or write replacing a value is a change, not a new entry. */
		if (it->op == MEV_REGISTER && known)
			echo_modify(fs, it->path);
		else
			echo_create(fs, it->path, dir);
		break;
	case MEV_WRITE:
		echo_modify(fs, it->path);
		break;
	case MEV_DELETE:
	case MEV_RMDIR:
	case MEV_UNREGISTER:
		if (it->op == MEV_RMDIR && service_of(it->path, svc, sizeof(svc)))
			resync(fs, svc, &it->target);
		echo_delete(fs, it->path, dir);
		break;
	case MEV_RENAME:
		echo_delete(fs, it->path, false);
		if (it->detail)
			echo_create(fs, it->detail, false);
		break;
	default:
		break;
	}
}

static void *run(void *arg)
{
	struct mfs *fs = arg;
	struct mnotifier *nt = fs->notifier;

	snap_all(fs);

	pthread_mutex_lock(&nt->lock);
	for (;;) {
		while (!nt->head && !nt->stop)
			pthread_cond_wait(&nt->cond, &nt->lock);
		if (nt->stop)
			break;
		struct item *it = nt->head;
		nt->head = it->next;
		if (!nt->head)
			nt->tail = NULL;
		nt->len--;
		/* Taken off the set first: a change from now on queues again. */
		if (it->key)
			mkv_delete(nt->pending, it->key);
		pthread_mutex_unlock(&nt->lock);

		switch (it->kind) {
		case IT_INVAL:
			fuse_lowlevel_notify_inval_inode(fs->se, it->ino, 0, 0);
			break;
		case IT_RESYNC:
			resync(fs, it->path, &it->target);
			break;
		case IT_EVENT:
			apply_event(fs, it);
			break;
		}
		item_free(it);
		pthread_mutex_lock(&nt->lock);
	}
	pthread_mutex_unlock(&nt->lock);
	return NULL;
}

int mfs_notifier_start(struct mfs *fs)
{
	struct mnotifier *nt = calloc(1, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	pthread_mutex_init(&nt->lock, NULL);
	pthread_cond_init(&nt->cond, NULL);
	nt->pending = mkv_new();
	int r = -ENOMEM;
	if (!nt->pending)
		goto fail;
	/* Forked before the thread starts and before the request loop does:
	 * echo.c compares request pids with it from the first request on. */
	r = mfs_echoproc_start(&nt->ep);
	if (r < 0)
		goto fail;
	nt->echo_pid = mfs_echoproc_pid(nt->ep);
	fs->notifier = nt;
	r = mfs_thread_start(&nt->thread, "mallafs-notify", run, fs);
	if (r < 0)
		goto fail;
	r = mev_ring_add_listener(mrt_events(fs->rt), listener, fs);
	if (r < 0) {
		mfs_notifier_stop(fs);
		mfs_notifier_join(fs);
		return r;
	}
	return 0;
fail:
	fs->notifier = NULL;
	mfs_echoproc_stop(nt->ep);
	mkv_free(nt->pending);
	pthread_cond_destroy(&nt->cond);
	pthread_mutex_destroy(&nt->lock);
	free(nt);
	return r;
}

/* Stops listening and asks the thread to end. It may be waiting for its
 * echo process, inside a request on the mount that only the unmount will
 * end, so it is joined later. */
void mfs_notifier_stop(struct mfs *fs)
{
	struct mnotifier *nt = fs->notifier;
	if (!nt)
		return;
	mev_ring_remove_listener(mrt_events(fs->rt), listener, fs);
	pthread_mutex_lock(&nt->lock);
	nt->stop = true;
	pthread_cond_signal(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
}

void mfs_notifier_join(struct mfs *fs)
{
	struct mnotifier *nt = fs->notifier;
	if (!nt)
		return;
	pthread_join(nt->thread, NULL);
	fs->notifier = NULL;
	mfs_echoproc_stop(nt->ep);
	while (nt->head) {
		struct item *it = nt->head;
		nt->head = it->next;
		item_free(it);
	}
	while (nt->snaps) {
		struct snap *s = nt->snaps;
		nt->snaps = s->next;
		snap_free(s);
	}
	mkv_free(nt->pending);
	pthread_cond_destroy(&nt->cond);
	pthread_mutex_destroy(&nt->lock);
	free(nt);
}
