/* SPDX-License-Identifier: MIT */
/* The cluster's view (clview.h). Nodes and each node's services are kept
 * as the config store keeps apps: an mkv from name to the entry's pointer
 * (its bytes as the value), which gives O(1) lookup and listing cookies
 * that survive entries coming and going; ids and versions are the view's
 * own, so they are unique across nodes and never reused.
 *
 * Lock: v->lock (a rwlock that prefers writers, so that readers of
 * cluster/ in a loop cannot hold the engine back) guards everything below
 * it in struct mclview, every node and every service; events are emitted
 * under it (see clview.h). */
#include "clview.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "tree.h"
#include "util.h"

struct clv_svc {
	char *text;
	size_t len;
	struct mclview_owner own;
	uint64_t id, ver;
	struct timespec mtime, ctime;
};

struct clv_node {
	struct mkv *svcs; /* name -> struct clv_svc * */
	uint64_t id;
	struct timespec mtime; /* its arrival, then each change of its services */
};

struct mclview {
	pthread_rwlock_t lock;
	struct mev_ring *ring;
	struct mkv *nodes; /* name -> struct clv_node * */
	uint64_t next_id;  /* ids of nodes, services and the status */
	uint64_t next_ver; /* versions of texts */
	char *status;      /* NUL-terminated, never NULL */
	size_t status_len;
	uint64_t status_id, status_ver;
	struct timespec status_mtime;
};

/* ---- helpers, under the lock ---- */

static void *find_ptr(const struct mkv *kv, const char *name)
{
	void *p = NULL;
	if (!name || mkv_read(kv, name, 0, &p, sizeof(p)) != (ssize_t)sizeof(p))
		return NULL;
	return p;
}

static void svc_free(struct clv_svc *s)
{
	if (!s)
		return;
	free(s->text);
	free(s);
}

static int free_svc_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	svc_free(find_ptr(arg, name));
	return 0;
}

static void node_free(struct clv_node *n)
{
	if (!n)
		return;
	mkv_list(n->svcs, 0, free_svc_cb, n->svcs);
	mkv_free(n->svcs);
	free(n);
}

/* "cluster/nodes/NODE[/SVC]", or "cluster/status" when node is NULL. */
static void emit(struct mclview *v, enum mev_op op, const char *node, const char *svc,
                 const char *detail)
{
	if (!v->ring)
		return;
	char path[MTREE_PATH_MAX];
	if (node)
		mtree_join(path, sizeof(path), mtree_name(MTREE_CLUSTER), MCLVIEW_NODES, node, svc,
		           NULL);
	else
		mtree_join(path, sizeof(path), mtree_name(MTREE_CLUSTER), MCLVIEW_STATUS, NULL);
	mev_emit(v->ring, op, path, detail);
}

static void emit_size(struct mclview *v, enum mev_op op, const char *node, const char *svc,
                      size_t len)
{
	char size[24];
	snprintf(size, sizeof(size), "%zu", len);
	emit(v, op, node, svc, size);
}

static int refuse_name(const char *what, const char *name)
{
	int r = name ? mu_name_check_str(name, MU_NAME_STRICT) : -EINVAL;
	if (r == 0)
		return 0;
	/* Its first bytes, any that is not a name's as '?': the log gets no
	 * line breaks or escapes from etcd. */
	char shown[65] = "(none)";
	for (size_t i = 0; name && i < sizeof(shown) - 1; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		          (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
		shown[i] = ok ? ch : '?';
		shown[i + 1] = '\0';
		if (!ch) {
			shown[i] = '\0';
			break;
		}
	}
	mu_log(MU_LOG_WARNING,
	       "cluster view: refused a %s name \"%s\": not 1 to %d of [A-Za-z0-9._-], nor . or ..",
	       what, shown, MU_NAME_MAX);
	return r;
}

static int refuse_text(const char *what, size_t len)
{
	if (len <= MCLVIEW_TEXT_MAX)
		return 0;
	mu_log(MU_LOG_WARNING, "cluster view: refused %s of %zu bytes: at most %zu", what, len,
	       MCLVIEW_TEXT_MAX);
	return -EFBIG;
}

/* ---- life ---- */

struct mclview *mclview_new(struct mev_ring *ring)
{
	struct mclview *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->nodes = mkv_new();
	v->status = strdup("");
	/* Writers first: readers in a loop (anyone may read cluster/) must
	 * not hold the engine's changes back. */
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	int lr = pthread_rwlock_init(&v->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (!v->nodes || !v->status || lr != 0) {
		if (lr == 0)
			pthread_rwlock_destroy(&v->lock);
		mkv_free(v->nodes);
		free(v->status);
		free(v);
		return NULL;
	}
	v->ring = ring;
	v->next_id = 1;
	v->next_ver = 1;
	v->status_id = v->next_id++;
	v->status_ver = v->next_ver++;
	mu_now_real(&v->status_mtime);
	return v;
}

static int free_node_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	node_free(find_ptr(arg, name));
	return 0;
}

void mclview_free(struct mclview *v)
{
	if (!v)
		return;
	mkv_list(v->nodes, 0, free_node_cb, v->nodes);
	mkv_free(v->nodes);
	free(v->status);
	pthread_rwlock_destroy(&v->lock);
	free(v);
}

/* ---- cluster/status ---- */

int mclview_set_status(struct mclview *v, const char *text, size_t len)
{
	int r = refuse_text("a status", len);
	if (r < 0)
		return r;
	char *copy = mu_memdup0(len ? text : "", len);
	if (!copy)
		return -ENOMEM;
	pthread_rwlock_wrlock(&v->lock);
	if (len == v->status_len && memcmp(copy, v->status, len) == 0) {
		pthread_rwlock_unlock(&v->lock);
		free(copy);
		return 0;
	}
	free(v->status);
	v->status = copy;
	v->status_len = len;
	v->status_ver = v->next_ver++;
	mu_now_real(&v->status_mtime);
	emit_size(v, MEV_WRITE, NULL, NULL, len);
	pthread_rwlock_unlock(&v->lock);
	return 0;
}

int mclview_status(struct mclview *v, char **ret, size_t *ret_len, struct mkv_stat *ret_st)
{
	pthread_rwlock_rdlock(&v->lock);
	char *copy = mu_memdup0(v->status, v->status_len);
	if (copy) {
		*ret = copy;
		*ret_len = v->status_len;
		if (ret_st)
			*ret_st = (struct mkv_stat){.id = v->status_id,
			                            .size = v->status_len,
			                            .mtime = v->status_mtime,
			                            .ctime = v->status_mtime,
			                            .ver = v->status_ver};
	}
	pthread_rwlock_unlock(&v->lock);
	return copy ? 0 : -ENOMEM;
}

/* A listing of nodes or of a node's services: each entry's stat, from
 * its pointer, given to the caller's fn. */
struct walk {
	const struct mkv *kv;
	void (*stat)(const void *item, uint64_t cookie, struct mkv_stat *ret);
	int (*fn)(const char *name, const struct mkv_stat *st, void *arg);
	void *arg;
};

static int walk_cb(const char *name, const struct mkv_stat *kst, void *arg)
{
	struct walk *w = arg;
	struct mkv_stat st;
	const void *item = find_ptr(w->kv, name);
	if (!item)
		return 0;
	w->stat(item, kst->cookie, &st);
	return w->fn(name, &st, w->arg);
}

/* ---- nodes ---- */

/* item: a struct clv_node (a struct walk's stat). */
static void node_stat(const void *item, uint64_t cookie, struct mkv_stat *ret)
{
	const struct clv_node *n = item;
	*ret = (struct mkv_stat){.id = n->id,
	                         .cookie = cookie,
	                         .size = mkv_count(n->svcs),
	                         .mtime = n->mtime,
	                         .ctime = n->mtime,
	                         .ver = n->id};
}

/* The node, made (and its event emitted) when absent. Write lock held. */
static int node_get_or_put(struct mclview *v, const char *node, struct clv_node **ret)
{
	struct clv_node *n = find_ptr(v->nodes, node);
	if (n) {
		*ret = n;
		return 0;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->svcs = mkv_new())) {
		free(n);
		return -ENOMEM;
	}
	ssize_t w = mkv_write(v->nodes, node, 0, &n, sizeof(n), MKV_REPLACE);
	if (w < 0) {
		node_free(n);
		return (int)w;
	}
	n->id = v->next_id++;
	mu_now_real(&n->mtime);
	emit(v, MEV_MKDIR, node, NULL, NULL);
	*ret = n;
	return 0;
}

int mclview_node_put(struct mclview *v, const char *node)
{
	int r = refuse_name("node", node);
	if (r < 0)
		return r;
	struct clv_node *n;
	pthread_rwlock_wrlock(&v->lock);
	r = node_get_or_put(v, node, &n);
	pthread_rwlock_unlock(&v->lock);
	return r;
}

struct gone {
	struct mclview *v;
	struct clv_node *n;
	const char *node;
};

/* Each service of a node that goes: its event, then it goes. */
static int svc_gone_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	struct gone *g = arg;
	struct clv_svc *s = find_ptr(g->n->svcs, name);
	emit(g->v, MEV_DELETE, g->node, name, NULL);
	mkv_delete(g->n->svcs, name);
	svc_free(s);
	return 0;
}

int mclview_node_remove(struct mclview *v, const char *node)
{
	int r = 0;
	pthread_rwlock_wrlock(&v->lock);
	struct clv_node *n = find_ptr(v->nodes, node);
	if (!n) {
		r = -ENOENT;
	} else {
		struct gone g = {v, n, node};
		mkv_list(n->svcs, 0, svc_gone_cb, &g);
		mkv_delete(v->nodes, node);
		node_free(n);
		emit(v, MEV_RMDIR, node, NULL, NULL);
	}
	pthread_rwlock_unlock(&v->lock);
	return r;
}

int mclview_node_stat(struct mclview *v, const char *node, struct mkv_stat *ret)
{
	struct mkv_stat kst;
	pthread_rwlock_rdlock(&v->lock);
	struct clv_node *n = find_ptr(v->nodes, node);
	if (n && mkv_stat(v->nodes, node, &kst) == 0)
		node_stat(n, kst.cookie, ret);
	pthread_rwlock_unlock(&v->lock);
	return n ? 0 : -ENOENT;
}

int mclview_node_list(struct mclview *v, uint64_t after,
                      int (*fn)(const char *node, const struct mkv_stat *st, void *arg), void *arg)
{
	struct walk w = {v->nodes, node_stat, fn, arg};
	pthread_rwlock_rdlock(&v->lock);
	int r = mkv_list(v->nodes, after, walk_cb, &w);
	pthread_rwlock_unlock(&v->lock);
	return r;
}

/* ---- services ---- */

/* item: a struct clv_svc (a struct walk's stat). */
static void svc_stat(const void *item, uint64_t cookie, struct mkv_stat *ret)
{
	const struct clv_svc *s = item;
	*ret = (struct mkv_stat){.id = s->id,
	                         .cookie = cookie,
	                         .size = s->len,
	                         .mtime = s->mtime,
	                         .ctime = s->ctime,
	                         .ver = s->ver};
}

/* A new service's entry, its text taken over. Write lock held. */
static int svc_add(struct mclview *v, struct clv_node *n, const char *node, const char *svc,
                   char *text, size_t len, const struct mclview_owner *own)
{
	struct clv_svc *s = calloc(1, sizeof(*s));
	if (!s) {
		free(text);
		return -ENOMEM;
	}
	*s = (struct clv_svc){.text = text, .len = len, .own = *own};
	ssize_t w = mkv_write(n->svcs, svc, 0, &s, sizeof(s), MKV_REPLACE);
	if (w < 0) {
		svc_free(s);
		return (int)w;
	}
	s->id = v->next_id++;
	s->ver = v->next_ver++;
	mu_now_real(&s->mtime);
	s->ctime = s->mtime;
	n->mtime = s->mtime;
	emit_size(v, MEV_CREATE, node, svc, len);
	return 0;
}

int mclview_service_put(struct mclview *v, const char *node, const char *svc, const char *text,
                        size_t len, uid_t uid, gid_t gid, mode_t mode)
{
	int r = refuse_name("node", node);
	if (r == 0)
		r = refuse_name("service", svc);
	if (r == 0)
		r = refuse_text("a service's status", len);
	if (r == 0 && (mode & ~(mode_t)07777)) {
		mu_log(MU_LOG_WARNING,
		       "cluster view: refused %s/%s's mode %#o: not a permission mode", node, svc,
		       (unsigned)mode);
		r = -EINVAL;
	}
	if (r < 0)
		return r;
	char *copy = mu_memdup0(len ? text : "", len);
	if (!copy)
		return -ENOMEM;
	struct mclview_owner own = {uid, gid, mode};

	pthread_rwlock_wrlock(&v->lock);
	struct clv_node *n;
	r = node_get_or_put(v, node, &n);
	struct clv_svc *s = r == 0 ? find_ptr(n->svcs, svc) : NULL;
	if (r < 0) {
		free(copy);
	} else if (!s) {
		r = svc_add(v, n, node, svc, copy, len, &own);
	} else {
		bool same_text = len == s->len && memcmp(copy, s->text, len) == 0;
		bool same_own =
		        own.uid == s->own.uid && own.gid == s->own.gid && own.mode == s->own.mode;
		if (!same_own) {
			s->own = own;
			mu_now_real(&s->ctime);
		}
		if (same_text) {
			free(copy);
		} else {
			free(s->text);
			s->text = copy;
			s->len = len;
			s->ver = v->next_ver++;
			mu_now_real(&s->mtime);
			s->ctime = s->mtime;
			emit_size(v, MEV_WRITE, node, svc, len);
		}
	}
	pthread_rwlock_unlock(&v->lock);
	return r;
}

int mclview_service_remove(struct mclview *v, const char *node, const char *svc)
{
	int r = -ENOENT;
	pthread_rwlock_wrlock(&v->lock);
	struct clv_node *n = find_ptr(v->nodes, node);
	struct clv_svc *s = n ? find_ptr(n->svcs, svc) : NULL;
	if (s) {
		mkv_delete(n->svcs, svc);
		svc_free(s);
		mu_now_real(&n->mtime);
		emit(v, MEV_DELETE, node, svc, NULL);
		r = 0;
	}
	pthread_rwlock_unlock(&v->lock);
	return r;
}

/* The service's entry and its listing cookie. Lock held. */
static struct clv_svc *svc_find(struct mclview *v, const char *node, const char *svc,
                                uint64_t *ret_cookie)
{
	struct clv_node *n = find_ptr(v->nodes, node);
	struct clv_svc *s = n ? find_ptr(n->svcs, svc) : NULL;
	struct mkv_stat kst;
	if (s && mkv_stat(n->svcs, svc, &kst) == 0)
		*ret_cookie = kst.cookie;
	return s;
}

int mclview_service_stat(struct mclview *v, const char *node, const char *svc, struct mkv_stat *ret,
                         struct mclview_owner *ret_own)
{
	uint64_t cookie = 0;
	pthread_rwlock_rdlock(&v->lock);
	struct clv_svc *s = svc_find(v, node, svc, &cookie);
	if (s && ret)
		svc_stat(s, cookie, ret);
	if (s && ret_own)
		*ret_own = s->own;
	pthread_rwlock_unlock(&v->lock);
	return s ? 0 : -ENOENT;
}

int mclview_service_get(struct mclview *v, const char *node, const char *svc, char **ret,
                        size_t *ret_len, struct mkv_stat *ret_st)
{
	uint64_t cookie = 0;
	int r = -ENOENT;
	pthread_rwlock_rdlock(&v->lock);
	struct clv_svc *s = svc_find(v, node, svc, &cookie);
	if (s) {
		char *copy = mu_memdup0(s->text, s->len);
		r = copy ? 0 : -ENOMEM;
		if (copy) {
			*ret = copy;
			*ret_len = s->len;
			if (ret_st)
				svc_stat(s, cookie, ret_st);
		}
	}
	pthread_rwlock_unlock(&v->lock);
	return r;
}

int mclview_service_list(struct mclview *v, const char *node, uint64_t after,
                         int (*fn)(const char *svc, const struct mkv_stat *st, void *arg),
                         void *arg)
{
	int r = -ENOENT;
	pthread_rwlock_rdlock(&v->lock);
	struct clv_node *n = find_ptr(v->nodes, node);
	if (n) {
		struct walk w = {n->svcs, svc_stat, fn, arg};
		r = mkv_list(n->svcs, after, walk_cb, &w);
	}
	pthread_rwlock_unlock(&v->lock);
	return r;
}
