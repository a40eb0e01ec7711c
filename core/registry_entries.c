/* SPDX-License-Identifier: MIT */
/* The registry's entries: the tables that hold them, the watches of their
 * processes and the thread that removes the entries of a process that
 * exited, and making and freeing the registry. The operations on names and
 * pools are in registry.c.
 *
 * Locks: everything here runs with the registry's lock held, but for
 * mreg_new() and mreg_free(), and the watcher thread, which takes it around
 * each batch of exits it reaps (never the change lock). In cluster mode a
 * reaped process's watch waits in mreg.dead until mreg_unlock has dropped
 * the lock, then exited() is called for it, by whichever thread reaped. */
#include "registry_i.h"

#include "events.h"
#include "proc.h"
#include "slots.h"
#include "tree.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

int mreg_htab_init(struct htab *t, size_t nb)
{
	*t = (struct htab){0};
	t->b = calloc(nb, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	t->nb = nb;
	return 0;
}

void mreg_htab_fini(struct htab *t)
{
	free(t->b);
	free(t->old);
	*t = (struct htab){0};
}

/* Buckets of the old array one call moves, and empty ones it may pass. */
#define HTAB_STEP 4
#define HTAB_EMPTY_VISITS 64

/* Moves a few of the old buckets into the new array; the last one moved
 * frees the old array. */
static void htab_step(struct htab *t)
{
	size_t full = 0, visits = 0;
	while (t->old && full < HTAB_STEP && visits < HTAB_EMPTY_VISITS) {
		struct hnode *n = t->old[t->moved];
		t->old[t->moved] = NULL;
		if (n)
			full++;
		else
			visits++;
		while (n) {
			struct hnode *next = n->next;
			n->next = t->b[n->hash & (t->nb - 1)];
			t->b[n->hash & (t->nb - 1)] = n;
			n = next;
		}
		if (++t->moved == t->onb) {
			free(t->old);
			t->old = NULL;
			t->onb = t->moved = 0;
		}
	}
}

/* Starts growing: a new array twice the size takes new nodes at once, the
 * old one's move over step by step. An array of that size that cannot be
 * had leaves the table as it is (longer chains, still right). */
static void htab_grow(struct htab *t)
{
	if (t->old || t->nb > SIZE_MAX / 2 / sizeof(*t->b))
		return;
	struct hnode **b = calloc(t->nb * 2, sizeof(*b));
	if (!b)
		return;
	t->old = t->b;
	t->onb = t->nb;
	t->moved = 0;
	t->b = b;
	t->nb *= 2;
}

/* The bucket that holds (or takes) a node of hash: the old array's until
 * that bucket has moved. */
static struct hnode **htab_bucket(const struct htab *t, uint64_t hash)
{
	if (t->old && (hash & (t->onb - 1)) >= t->moved)
		return &t->old[hash & (t->onb - 1)];
	return &t->b[hash & (t->nb - 1)];
}

void mreg_htab_insert(struct htab *t, struct hnode *n, uint64_t hash)
{
	if (t->n >= t->nb)
		htab_grow(t);
	htab_step(t);
	/* Where lookups will look: an old bucket not moved yet moves it later. */
	struct hnode **b = htab_bucket(t, hash);
	n->hash = hash;
	n->next = *b;
	*b = n;
	t->n++;
}

void mreg_htab_remove(struct htab *t, struct hnode *n)
{
	htab_step(t);
	for (struct hnode **p = htab_bucket(t, n->hash); *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			t->n--;
			return;
		}
	}
}

struct hnode *mreg_htab_find(struct htab *t, uint64_t hash,
                             bool (*match)(const struct hnode *n, const void *key), const void *key)
{
	htab_step(t);
	for (struct hnode *n = *htab_bucket(t, hash); n; n = n->next)
		if (n->hash == hash && match(n, key))
			return n;
	return NULL;
}

uint64_t mreg_name_hash(const char *name)
{
	return mu_hash(name, strlen(name));
}

static uint64_t pid_hash(pid_t pid)
{
	return mu_hash(&pid, sizeof(pid));
}

static bool name_match(const struct hnode *n, const void *key)
{
	return strcmp(container_of(n, struct ent, h)->name, key) == 0;
}

struct ent *mreg_ent_find(struct htab *t, const char *name)
{
	struct hnode *n = mreg_htab_find(t, mreg_name_hash(name), name_match, name);
	return n ? container_of(n, struct ent, h) : NULL;
}

struct member_key {
	const char *pid;
	const struct mreg_node *node;
};

static bool member_match(const struct hnode *n, const void *key)
{
	const struct ent *e = container_of(n, struct ent, h);
	const struct member_key *k = key;
	return e->node == k->node && strcmp(e->name, k->pid) == 0;
}

/* Members of every node with one PID share a hash, hence a chain: as long
 * as the nodes that have a process of that PID in the pool. */
struct ent *mreg_member_find(struct ent *pool, const char *pid, const struct mreg_node *node)
{
	struct member_key k = {pid, node};
	struct hnode *n = mreg_htab_find(&pool->members, mreg_name_hash(pid), member_match, &k);
	return n ? container_of(n, struct ent, h) : NULL;
}

struct mreg_node *mreg_node_find(struct mreg *reg, const char *name)
{
	for (struct mreg_node *n = reg->nodes; n; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

struct mreg_node *mreg_node_get(struct mreg *reg, const char *name, struct mreg_node **spare)
{
	struct mreg_node *n = mreg_node_find(reg, name);
	if (!n) {
		n = *spare;
		*spare = NULL;
		n->refs = 0;
		n->next = reg->nodes;
		n->pprev = &reg->nodes;
		if (reg->nodes)
			reg->nodes->pprev = &n->next;
		reg->nodes = n;
	}
	n->refs++;
	return n;
}

void mreg_node_unref(struct mreg_node *n)
{
	if (!n || --n->refs)
		return;
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	free(n);
}

const char *mreg_ent_fname(const struct ent *e, char *buf, size_t len)
{
	if (e->kind != 'm' || !e->node)
		return e->name;
	snprintf(buf, len, "%s@%s", e->name, e->node->name);
	return buf;
}

static bool pid_match(const struct hnode *n, const void *key)
{
	return container_of(n, struct pidw, h)->pid == *(const pid_t *)key;
}

static struct pidw *pidw_find(struct mreg *reg, pid_t pid)
{
	struct hnode *n = mreg_htab_find(&reg->pids, pid_hash(pid), pid_match, &pid);
	return n ? container_of(n, struct pidw, h) : NULL;
}

/* The count of e's kind. */
static uint64_t *count_of(struct mreg *reg, const struct ent *e)
{
	if (e->kind == 'p')
		return &reg->counts.pools;
	return e->kind == 'm' ? &reg->counts.members : &reg->counts.names;
}

int mreg_ent_place(struct mreg *reg, struct ent *e)
{
	struct ent *p = e->pool;
	if (p && !p->slots && !(p->slots = mslots_new()))
		return -ENOMEM;
	int r = mslots_add(p ? p->slots : reg->top, e, &e->pos);
	if (r == 0) {
		e->id = ++reg->last_id;
		(*count_of(reg, e))++;
	} else if (p && mslots_count(p->slots) == 0) {
		mslots_free(p->slots); /* the table just made */
		p->slots = NULL;
	}
	return r;
}

void mreg_ent_unplace(struct mreg *reg, struct ent *e)
{
	struct ent *p = e->pool;
	(*count_of(reg, e))--;
	if (!p) {
		mslots_del(reg->top, e->pos);
		return;
	}
	mslots_del(p->slots, e->pos);
	/* A table holds a chunk of positions (tens of KiB): an empty pool
	 * keeps none. */
	if (mslots_count(p->slots) == 0) {
		mslots_free(p->slots);
		p->slots = NULL;
	}
}

void mreg_ent_free(struct ent *e)
{
	if (!e)
		return;
	mreg_htab_fini(&e->members);
	mslots_free(e->slots);
	mreg_node_unref(e->node);
	free(e->name);
	free(e->value);
	free(e);
}

static void pidw_free(struct mreg *reg, struct pidw *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		/* Closing would drop it from the set too; saying so keeps the set
		 * right even if the fd were ever duplicated. */
		epoll_ctl(reg->epfd, EPOLL_CTL_DEL, w->fd, NULL);
		close(w->fd);
	}
	free(w);
}

void mreg_pidw_attach(struct pidw *w, struct ent *e)
{
	e->w = w;
	e->wprev = w->last;
	e->wnext = NULL;
	if (w->last)
		w->last->wnext = e;
	else
		w->first = e;
	w->last = e;
	w->refs++;
}

/* The last entry going stops the watch. Another node's entry has none. */
static void pidw_detach(struct mreg *reg, struct ent *e)
{
	struct pidw *w = e->w;
	if (!w)
		return;
	if (e->wprev)
		e->wprev->wnext = e->wnext;
	else
		w->first = e->wnext;
	if (e->wnext)
		e->wnext->wprev = e->wprev;
	else
		w->last = e->wprev;
	e->w = NULL;
	e->wprev = e->wnext = NULL;
	if (--w->refs == 0) {
		mreg_htab_remove(&reg->pids, &w->h);
		pidw_free(reg, w);
	}
}

/* "registry/NAME" (a name or a pool) or "registry/POOL/PID" (a member;
 * PID@NODE for another node's). */
void mreg_ent_path(char *buf, size_t len, const struct ent *e)
{
	const char *root = mtree_name(MTREE_REGISTRY);
	char fname[MU_NAME_MAX + 1];
	if (e->kind == 'm')
		mtree_join(buf, len, root, e->pool->name, mreg_ent_fname(e, fname, sizeof(fname)),
		           NULL);
	else
		mtree_join(buf, len, root, e->name, NULL);
}

void mreg_emit_register(struct mreg *reg, const struct ent *e)
{
	char path[MTREE_PATH_MAX];
	mreg_ent_path(path, sizeof(path), e);
	if (e->kind == 'm')
		mev_emit(reg->ring, MEV_REGISTER, path, e->value[0] ? e->value : NULL);
	else if (e->node)
		mev_emitf(reg->ring, MEV_REGISTER, path, "%d@%s%s%s", (int)e->pid, e->node->name,
		          e->value ? " " : "", e->value ? e->value : "");
	else if (e->value)
		mev_emitf(reg->ring, MEV_REGISTER, path, "%d %s", (int)e->pid, e->value);
	else
		mev_emitf(reg->ring, MEV_REGISTER, path, "%d", (int)e->pid);
}

void mreg_remove_name(struct mreg *reg, struct ent *e, const char *detail)
{
	char path[MTREE_PATH_MAX];
	mreg_htab_remove(&reg->names, &e->h);
	mreg_ent_unplace(reg, e);
	pidw_detach(reg, e);
	mreg_ent_path(path, sizeof(path), e);
	mev_emit(reg->ring, MEV_UNREGISTER, path, detail);
	mreg_ent_free(e);
}

void mreg_remove_member(struct mreg *reg, struct ent *m, const char *detail)
{
	char path[MTREE_PATH_MAX];
	struct ent *p = m->pool;
	mreg_htab_remove(&p->members, &m->h);
	mreg_ent_unplace(reg, m);
	mu_now_real(&p->mtime);
	pidw_detach(reg, m);
	mreg_ent_path(path, sizeof(path), m);
	mev_emit(reg->ring, MEV_UNREGISTER, path, detail);
	mreg_ent_free(m);
}

void mreg_remove_pool(struct mreg *reg, struct ent *p)
{
	char path[MTREE_PATH_MAX];
	uint32_t pos;

	/* The last member frees the pool's slots. */
	while (p->slots && mslots_next(p->slots, 0, &pos))
		mreg_remove_member(reg, mslots_get(p->slots, pos), NULL);
	mreg_htab_remove(&reg->names, &p->h);
	mreg_ent_unplace(reg, p);
	mreg_ent_path(path, sizeof(path), p);
	mev_emit(reg->ring, MEV_RMDIR, path, NULL);
	mreg_ent_free(p);
}

/* Removes every entry of an exited process, as if each were removed with
 * rm. In cluster mode its watch then waits in mreg.dead for mreg_unlock to
 * call exited(). */
static void reap(struct mreg *reg, struct pidw *w)
{
	w->refs++; /* w outlives its entries here */
	while (w->first) {
		struct ent *e = w->first;
		if (e->kind == 'n')
			mreg_remove_name(reg, e, "exit");
		else
			mreg_remove_member(reg, e, "exit");
	}
	mreg_htab_remove(&reg->pids, &w->h);
	if (!reg->cluster || !reg->remote.exited) {
		pidw_free(reg, w);
		return;
	}
	epoll_ctl(reg->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	close(w->fd);
	w->fd = -1;
	w->dead = reg->dead;
	reg->dead = w;
}

void mreg_unlock(struct mreg *reg)
{
	struct pidw *dead = reg->dead;
	void (*exited)(void *arg, pid_t pid, uint64_t starttime) = reg->remote.exited;
	void *arg = reg->remote_arg;
	reg->dead = NULL;
	pthread_mutex_unlock(&reg->lock);
	while (dead) {
		struct pidw *next = dead->dead;
		exited(arg, dead->pid, dead->starttime);
		free(dead);
		dead = next;
	}
}

/* Entries of a process that has exited count as gone even before the
 * watcher thread gets to them, so whoever asks first removes them. */
void mreg_reap_if_exited(struct mreg *reg, pid_t pid)
{
	struct pidw *w = pidw_find(reg, pid);
	if (w && mproc_exited(w->fd))
		reap(reg, w);
}

/* The live watch of pid, or a new one made of fd and spare (which it then
 * takes). The caller has reaped an exited watch of pid already. */
int mreg_pidw_get(struct mreg *reg, pid_t pid, uint64_t starttime, int *fd, struct pidw **spare,
                  struct pidw **ret)
{
	struct pidw *w = pidw_find(reg, pid);
	if (w) {
		*ret = w;
		return 0;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)pid};
	if (epoll_ctl(reg->epfd, EPOLL_CTL_ADD, *fd, &ev) < 0)
		return -errno;
	w = *spare;
	*spare = NULL;
	w->pid = pid;
	w->starttime = starttime;
	w->fd = *fd;
	*fd = -1;
	mreg_htab_insert(&reg->pids, &w->h, pid_hash(pid));
	*ret = w;
	return 0;
}

static void *watcher_main(void *arg)
{
	struct mreg *reg = arg;
	struct epoll_event evs[32];

	for (;;) {
		int n = epoll_wait(reg->epfd, evs, (int)MU_ARRAY_SIZE(evs), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			mu_log(MU_LOG_ERR, "registry: epoll_wait: %s; exits are no longer watched",
			       strerror(errno));
			return NULL;
		}
		bool stop = false;
		pthread_mutex_lock(&reg->lock);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == 0)
				stop = true;
			else
				mreg_reap_if_exited(reg, (pid_t)evs[i].data.u64);
		}
		mreg_unlock(reg);
		if (stop)
			return NULL;
	}
}

struct mreg *mreg_new(struct mev_ring *ring)
{
	struct mreg *reg;
	int r;

	reg = calloc(1, sizeof(*reg));
	if (!reg) {
		errno = ENOMEM;
		return NULL;
	}
	reg->ring = ring;
	reg->epfd = -1;
	reg->stopfd = -1;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->change, NULL);
	reg->top = mslots_new();
	if (!reg->top || mreg_htab_init(&reg->names, 16) < 0 ||
	    mreg_htab_init(&reg->pids, 16) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	reg->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (reg->epfd < 0) {
		r = -errno;
		goto fail;
	}
	reg->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (reg->stopfd < 0) {
		r = -errno;
		goto fail;
	}
	/* data 0 marks the stop fd: no process has PID 0. */
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
	if (epoll_ctl(reg->epfd, EPOLL_CTL_ADD, reg->stopfd, &ev) < 0) {
		r = -errno;
		goto fail;
	}
	/* Signals meant for the daemon must not land on the watcher. */
	r = mu_thread_start(&reg->thread, "mallafs-reg", watcher_main, reg);
	if (r < 0)
		goto fail;
	reg->thread_started = true;
	return reg;
fail:
	mreg_free(reg);
	errno = -r;
	return NULL;
}

void mreg_free(struct mreg *reg)
{
	if (!reg)
		return;
	if (reg->thread_started) {
		eventfd_write(reg->stopfd, 1);
		pthread_join(reg->thread, NULL);
	}
	/* No events: the registry is going away, not its processes. */
	for (uint32_t pos = 0; reg->top && mslots_next(reg->top, pos, &pos); pos++) {
		struct ent *e = mslots_get(reg->top, pos);
		for (uint32_t mpos = 0; e->slots && mslots_next(e->slots, mpos, &mpos); mpos++) {
			struct ent *m = mslots_get(e->slots, mpos);
			pidw_detach(reg, m);
			mreg_ent_free(m);
		}
		if (e->kind == 'n')
			pidw_detach(reg, e);
		mreg_ent_free(e);
	}
	mslots_free(reg->top);
	mreg_htab_fini(&reg->names);
	mreg_htab_fini(&reg->pids);
	if (reg->stopfd >= 0)
		close(reg->stopfd);
	if (reg->epfd >= 0)
		close(reg->epfd);
	pthread_mutex_destroy(&reg->lock);
	pthread_mutex_destroy(&reg->change);
	free(reg->node);
	free(reg);
}
