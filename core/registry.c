#include "registry.h"

#include "events.h"
#include "proc.h"
#include "tree.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(pid_t) == sizeof(int), "pid_t is assumed to be an int");

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* An intrusive chained hash table. It never fails to insert: growing is
 * best effort, so that once an operation has allocated its entry up front
 * nothing after the point of no return can fail. */
struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htab {
	struct hnode **b;
	size_t nb; /* a power of two */
	size_t n;
};

static int htab_init(struct htab *t, size_t nb)
{
	t->b = calloc(nb, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	t->nb = nb;
	t->n = 0;
	return 0;
}

static void htab_fini(struct htab *t)
{
	free(t->b);
	*t = (struct htab){0};
}

static void htab_grow(struct htab *t)
{
	if (t->nb > SIZE_MAX / 2 / sizeof(*t->b))
		return;
	size_t nb = t->nb * 2;
	struct hnode **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < t->nb; i++) {
		struct hnode *n = t->b[i];
		while (n) {
			struct hnode *next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
			n = next;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

static void htab_insert(struct htab *t, struct hnode *n, uint64_t hash)
{
	if (t->n >= t->nb)
		htab_grow(t);
	n->hash = hash;
	n->next = t->b[hash & (t->nb - 1)];
	t->b[hash & (t->nb - 1)] = n;
	t->n++;
}

static void htab_remove(struct htab *t, struct hnode *n)
{
	for (struct hnode **p = &t->b[n->hash & (t->nb - 1)]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			t->n--;
			return;
		}
	}
}

struct pidw;

/* One entry: a unique name ('n'), a pool ('p') or a pool member ('m'). */
struct ent {
	struct hnode h; /* in mreg.names ('n', 'p') or the pool's members ('m') */
	char kind;
	char *name; /* a member's name is its PID in canonical decimal */
	uint64_t id;
	struct timespec mtime;
	struct ent *prev, *next; /* id order in mreg.top or the pool's list */

	/* 'n' and 'm': the holder. */
	pid_t pid;
	uid_t uid;
	char *value; /* 'n': NULL when none; 'm': never NULL */
	struct pidw *w;
	struct ent *wprev, *wnext;
	struct ent *pool; /* 'm' */

	/* 'p' */
	struct htab members;
	struct ent *first, *last;
};

/* The watch of one process: its pidfd sits in the epoll set while at least
 * one entry is held by it, so the number of entries is the refcount. */
struct pidw {
	struct hnode h; /* in mreg.pids */
	pid_t pid;
	int fd;
	size_t refs;
	struct ent *first, *last;
};

struct mreg {
	pthread_mutex_t lock;
	struct mev_ring *ring;
	struct htab names; /* unique names and pools share one namespace */
	struct ent *first, *last;
	struct htab pids;
	uint64_t last_id;
	int epfd;
	int stopfd;
	pthread_t thread;
	bool thread_started;
};

static uint64_t name_hash(const char *name)
{
	return mu_hash(name, strlen(name));
}

static uint64_t pid_hash(pid_t pid)
{
	return mu_hash(&pid, sizeof(pid));
}

static struct ent *ent_find(struct htab *t, const char *name)
{
	uint64_t hash = name_hash(name);
	for (struct hnode *n = t->b[hash & (t->nb - 1)]; n; n = n->next) {
		struct ent *e = container_of(n, struct ent, h);
		if (n->hash == hash && strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

static struct pidw *pidw_find(struct mreg *reg, pid_t pid)
{
	uint64_t hash = pid_hash(pid);
	for (struct hnode *n = reg->pids.b[hash & (reg->pids.nb - 1)]; n; n = n->next) {
		struct pidw *w = container_of(n, struct pidw, h);
		if (w->pid == pid)
			return w;
	}
	return NULL;
}

static void list_append(struct ent **first, struct ent **last, struct ent *e)
{
	e->prev = *last;
	e->next = NULL;
	if (*last)
		(*last)->next = e;
	else
		*first = e;
	*last = e;
}

static void list_remove(struct ent **first, struct ent **last, struct ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		*first = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		*last = e->prev;
	e->prev = e->next = NULL;
}

static void ent_free(struct ent *e)
{
	if (!e)
		return;
	htab_fini(&e->members);
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

static void pidw_attach(struct pidw *w, struct ent *e)
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

/* The last entry going stops the watch. */
static void pidw_detach(struct mreg *reg, struct ent *e)
{
	struct pidw *w = e->w;
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
		htab_remove(&reg->pids, &w->h);
		pidw_free(reg, w);
	}
}

/* "registry/NAME" (a name or a pool) or "registry/POOL/PID" (a member). */
static void ent_path(char *buf, size_t len, const struct ent *e)
{
	const char *root = mtree_name(MTREE_REGISTRY);
	if (e->kind == 'm')
		mtree_join(buf, len, root, e->pool->name, e->name, NULL);
	else
		mtree_join(buf, len, root, e->name, NULL);
}

static void emit_register(struct mreg *reg, const struct ent *e)
{
	char path[MTREE_PATH_MAX];
	ent_path(path, sizeof(path), e);
	if (e->kind == 'm')
		mev_emit(reg->ring, MEV_REGISTER, path, e->value[0] ? e->value : NULL);
	else if (e->value)
		mev_emitf(reg->ring, MEV_REGISTER, path, "%d %s", (int)e->pid, e->value);
	else
		mev_emitf(reg->ring, MEV_REGISTER, path, "%d", (int)e->pid);
}

static void remove_name(struct mreg *reg, struct ent *e, const char *detail)
{
	char path[MTREE_PATH_MAX];
	htab_remove(&reg->names, &e->h);
	list_remove(&reg->first, &reg->last, e);
	pidw_detach(reg, e);
	ent_path(path, sizeof(path), e);
	mev_emit(reg->ring, MEV_UNREGISTER, path, detail);
	ent_free(e);
}

static void remove_member(struct mreg *reg, struct ent *m, const char *detail)
{
	char path[MTREE_PATH_MAX];
	struct ent *p = m->pool;
	htab_remove(&p->members, &m->h);
	list_remove(&p->first, &p->last, m);
	mu_now_real(&p->mtime);
	pidw_detach(reg, m);
	ent_path(path, sizeof(path), m);
	mev_emit(reg->ring, MEV_UNREGISTER, path, detail);
	ent_free(m);
}

/* Removes every entry of an exited process, as if each were removed with rm. */
static void reap(struct mreg *reg, struct pidw *w)
{
	for (;;) {
		struct ent *e = w->first;
		/* Removing the last entry frees w. */
		bool last = w->refs == 1;
		if (e->kind == 'n')
			remove_name(reg, e, "exit");
		else
			remove_member(reg, e, "exit");
		if (last)
			break;
	}
}

/* Entries of a process that has exited count as gone even before the
 * watcher thread gets to them, so whoever asks first removes them. */
static void reap_if_exited(struct mreg *reg, pid_t pid)
{
	struct pidw *w = pidw_find(reg, pid);
	if (w && mproc_exited(w->fd))
		reap(reg, w);
}

/* A decimal PID: digits only, > 0, fits pid_t. canonical: no leading zero,
 * as a file name must have exactly one spelling. */
static int parse_pid(const char *s, size_t len, bool canonical, pid_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || (canonical && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > INT_MAX)
			return -EINVAL;
	}
	if (v == 0)
		return -EINVAL;
	*ret = (pid_t)v;
	return 0;
}

/* What cat prints must be one line, and values are C strings inside. */
static int check_value(const char *value, size_t len)
{
	if (len && (memchr(value, '\n', len) || memchr(value, '\0', len)))
		return -EINVAL;
	return 0;
}

/* The live watch of pid, or a new one made of fd and spare (which it then
 * takes). The caller has reaped an exited watch of pid already. */
static int pidw_get(struct mreg *reg, pid_t pid, int *fd, struct pidw **spare, struct pidw **ret)
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
	w->fd = *fd;
	*fd = -1;
	htab_insert(&reg->pids, &w->h, pid_hash(pid));
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
				reap_if_exited(reg, (pid_t)evs[i].data.u64);
		}
		pthread_mutex_unlock(&reg->lock);
		if (stop)
			return NULL;
	}
}

struct mreg *mreg_new(struct mev_ring *ring)
{
	struct mreg *reg;
	sigset_t all, old;
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
	if (htab_init(&reg->names, 16) < 0 || htab_init(&reg->pids, 16) < 0) {
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
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&reg->thread, NULL, watcher_main, reg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	reg->thread_started = true;
	pthread_setname_np(reg->thread, "mallafs-reg");
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
	struct ent *e = reg->first;
	while (e) {
		struct ent *next = e->next;
		struct ent *m = e->first;
		while (m) {
			struct ent *mnext = m->next;
			pidw_detach(reg, m);
			ent_free(m);
			m = mnext;
		}
		if (e->kind == 'n')
			pidw_detach(reg, e);
		ent_free(e);
		e = next;
	}
	htab_fini(&reg->names);
	htab_fini(&reg->pids);
	if (reg->stopfd >= 0)
		close(reg->stopfd);
	if (reg->epfd >= 0)
		close(reg->epfd);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

/* The unique name (pool false) or the pool (pool true) called name; the lock
 * is held. -ENOENT, or -EISDIR / -ENOTDIR when name is the other kind. */
static int find_top(struct mreg *reg, const char *name, bool pool, struct ent **ret)
{
	struct ent *e;

	if (mu_name_check_str(name, MU_NAME_STRICT) < 0)
		return -ENOENT;
	e = ent_find(&reg->names, name);
	if (!e)
		return -ENOENT;
	if ((e->kind == 'p') != pool)
		return pool ? -ENOTDIR : -EISDIR;
	*ret = e;
	return 0;
}

static int find_name(struct mreg *reg, const char *name, struct ent **ret)
{
	return find_top(reg, name, false, ret);
}

static int find_pool(struct mreg *reg, const char *name, struct ent **ret)
{
	return find_top(reg, name, true, ret);
}

/* A member of pool called member; the lock is held. */
static int find_member(struct mreg *reg, const char *pool, const char *member, struct ent **ret)
{
	struct ent *p, *m;
	pid_t pid;
	int r;

	r = find_pool(reg, pool, &p);
	if (r < 0)
		return r;
	if (!member || parse_pid(member, strlen(member), true, &pid) < 0)
		return -ENOENT;
	m = ent_find(&p->members, member);
	if (!m)
		return -ENOENT;
	*ret = m;
	return 0;
}

/* Where an entry for pid called name goes: the unique names (pool NULL) or
 * pool's members. *ret_pool is the pool (NULL for a name) and *ret_e the
 * live entry pid already holds there, or NULL. -EEXIST: another live
 * process holds the name, or it is a pool; -ENOENT: no pool. The lock is
 * held. */
static int hold_find(struct mreg *reg, const char *pool, const char *name, pid_t pid,
                     struct ent **ret_pool, struct ent **ret_e)
{
	struct ent *p = NULL, *e;
	int r;

	if (pool) {
		/* The pool may have gone while the lock was dropped. */
		r = find_pool(reg, pool, &p);
		if (r < 0)
			return r;
		/* A member's name is its PID: the same live process, if any
		 * (an exited one was reaped already). */
		e = ent_find(&p->members, name);
	} else {
		e = ent_find(&reg->names, name);
		if (e && e->kind == 'n' && e->pid != pid) {
			reap_if_exited(reg, e->pid);
			e = ent_find(&reg->names, name);
		}
		if (e && (e->kind == 'p' || e->pid != pid))
			return -EEXIST;
	}
	*ret_pool = p;
	*ret_e = e;
	return 0;
}

/* Registers pid under name (pool NULL) or stores its value in pool, once
 * the caller has checked the names: the process must be live and the caller
 * root or its owner. A unique name's empty value is no value; a member's is
 * "". The same process again keeps its entry and id, with the new value. */
static int hold(struct mreg *reg, const char *pool, const char *name, pid_t pid, const char *value,
                size_t vlen, uid_t caller)
{
	struct ent *n = NULL, *p, *e;
	struct pidw *spare = NULL, *w = NULL;
	char *val = NULL;
	uid_t owner = 0;
	int fd = -1, r;

	r = mproc_open(pid, &fd, &owner);
	if (r < 0)
		return r;
	if (caller != 0 && caller != owner) {
		r = -EPERM;
		goto out;
	}

	/* Everything that can fail to allocate is made before touching state.
	 * For a unique name "PID \n" would not read back the same, hence no
	 * value rather than an empty one. */
	n = calloc(1, sizeof(*n));
	spare = calloc(1, sizeof(*spare));
	if (!n || !spare || !(n->name = strdup(name)) ||
	    ((pool || vlen) && !(val = mu_memdup0(value, vlen)))) {
		r = -ENOMEM;
		goto out;
	}

	pthread_mutex_lock(&reg->lock);
	/* A watch of this PID that has exited belonged to an earlier process. */
	reap_if_exited(reg, pid);
	r = hold_find(reg, pool, name, pid, &p, &e);
	if (r < 0)
		goto unlock;
	if (e) {
		/* Same live process: keep the entry and its id. */
		free(e->value);
		e->value = val;
		val = NULL;
		e->uid = owner;
		mu_now_real(&e->mtime);
		emit_register(reg, e);
		goto unlock;
	}
	r = pidw_get(reg, pid, &fd, &spare, &w);
	if (r < 0)
		goto unlock;
	n->kind = p ? 'm' : 'n';
	n->id = ++reg->last_id;
	mu_now_real(&n->mtime);
	n->pid = pid;
	n->uid = owner;
	n->value = val;
	val = NULL;
	if (p) {
		n->pool = p;
		p->mtime = n->mtime;
		htab_insert(&p->members, &n->h, name_hash(n->name));
		list_append(&p->first, &p->last, n);
	} else {
		htab_insert(&reg->names, &n->h, name_hash(n->name));
		list_append(&reg->first, &reg->last, n);
	}
	pidw_attach(w, n);
	emit_register(reg, n);
	n = NULL;
unlock:
	pthread_mutex_unlock(&reg->lock);
out:
	ent_free(n);
	free(spare);
	free(val);
	if (fd >= 0)
		close(fd);
	return r;
}

int mreg_register(struct mreg *reg, const char *name, pid_t pid, const char *value, uid_t caller)
{
	size_t vlen = value ? strlen(value) : 0;

	if (!reg || mu_name_check_str(name, MU_NAME_STRICT) < 0 || pid <= 0 ||
	    check_value(value, vlen) < 0)
		return -EINVAL;
	return hold(reg, NULL, name, pid, value, vlen, caller);
}

int mreg_register_text(struct mreg *reg, const char *name, const char *text, size_t len,
                       uid_t caller)
{
	const char *sp;
	char *value = NULL;
	pid_t pid;
	int r;

	if (!reg || (!text && len))
		return -EINVAL;
	if (len && text[len - 1] == '\n')
		len--;
	sp = len ? memchr(text, ' ', len) : NULL;
	size_t pid_len = sp ? (size_t)(sp - text) : len;
	r = parse_pid(text, pid_len, false, &pid);
	if (r < 0)
		return r;
	if (sp) {
		size_t vlen = len - pid_len - 1;
		if (check_value(sp + 1, vlen) < 0)
			return -EINVAL;
		value = mu_memdup0(sp + 1, vlen);
		if (!value)
			return -ENOMEM;
	}
	r = mreg_register(reg, name, pid, value, caller);
	free(value);
	return r;
}

int mreg_unregister(struct mreg *reg, const char *name)
{
	struct ent *e;
	int r = 0;

	if (!reg || mu_name_check_str(name, MU_NAME_STRICT) < 0)
		return -ENOENT;
	pthread_mutex_lock(&reg->lock);
	e = ent_find(&reg->names, name);
	if (!e)
		r = -ENOENT;
	else if (e->kind == 'p')
		r = -EISDIR;
	else
		remove_name(reg, e, NULL);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_render(struct mreg *reg, const char *name, char **ret_text, size_t *ret_len)
{
	struct mu_buf b = {0};
	struct ent *e;
	int r;

	if (!reg)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_name(reg, name, &e);
	if (r == 0) {
		if (e->value)
			r = mu_buf_printf(&b, "%d %s\n", (int)e->pid, e->value);
		else
			r = mu_buf_printf(&b, "%d\n", (int)e->pid);
	}
	pthread_mutex_unlock(&reg->lock);
	if (r < 0) {
		mu_buf_free(&b);
		return r;
	}
	*ret_text = mu_buf_steal(&b, ret_len);
	return 0;
}

int mreg_lookup(struct mreg *reg, const char *name, pid_t *ret_pid, char **ret_value)
{
	struct ent *e;
	char *value = NULL;
	pid_t pid = 0;
	int r;

	if (!reg)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_name(reg, name, &e);
	if (r == 0) {
		pid = e->pid;
		if (ret_value && e->value && !(value = strdup(e->value)))
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&reg->lock);
	if (r < 0)
		return r;
	if (ret_pid)
		*ret_pid = pid;
	if (ret_value)
		*ret_value = value;
	return 0;
}

int mreg_pool_create(struct mreg *reg, const char *pool)
{
	struct ent *p = NULL, *e;
	int r;

	if (!reg || mu_name_check_str(pool, MU_NAME_STRICT) < 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->name = strdup(pool)) || htab_init(&p->members, 8) < 0) {
		r = -ENOMEM;
		goto out;
	}

	pthread_mutex_lock(&reg->lock);
	e = ent_find(&reg->names, pool);
	if (e && e->kind == 'n') {
		reap_if_exited(reg, e->pid);
		e = ent_find(&reg->names, pool);
	}
	if (e) {
		r = -EEXIST;
		goto unlock;
	}
	p->kind = 'p';
	p->id = ++reg->last_id;
	mu_now_real(&p->mtime);
	htab_insert(&reg->names, &p->h, name_hash(p->name));
	list_append(&reg->first, &reg->last, p);
	char path[MTREE_PATH_MAX];
	ent_path(path, sizeof(path), p);
	mev_emit(reg->ring, MEV_MKDIR, path, NULL);
	p = NULL;
	r = 0;
unlock:
	pthread_mutex_unlock(&reg->lock);
out:
	ent_free(p);
	return r;
}

int mreg_pool_destroy(struct mreg *reg, const char *pool)
{
	struct ent *p;
	int r;

	if (!reg)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_pool(reg, pool, &p);
	if (r < 0)
		goto unlock;
	/* Members whose process has exited are gone already, as for names. */
	for (struct ent *m = p->first, *next; m; m = next) {
		/* Reaping m's process removes m and no other member of this pool. */
		next = m->next;
		reap_if_exited(reg, m->pid);
	}
	if (p->first) {
		r = -ENOTEMPTY;
		goto unlock;
	}
	htab_remove(&reg->names, &p->h);
	list_remove(&reg->first, &reg->last, p);
	char path[MTREE_PATH_MAX];
	ent_path(path, sizeof(path), p);
	mev_emit(reg->ring, MEV_RMDIR, path, NULL);
	ent_free(p);
unlock:
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_pool_store(struct mreg *reg, const char *pool, const char *member, const char *value,
                    size_t len, uid_t caller)
{
	struct ent *p;
	pid_t pid;
	int r;

	if (!reg || !member || (!value && len))
		return -EINVAL;
	if (len && value[len - 1] == '\n')
		len--;
	if (mu_name_check_str(pool, MU_NAME_STRICT) < 0 ||
	    parse_pid(member, strlen(member), true, &pid) < 0 || check_value(value, len) < 0)
		return -EINVAL;
	/* No pool is a plainer answer than anything about the process. */
	pthread_mutex_lock(&reg->lock);
	r = find_pool(reg, pool, &p);
	pthread_mutex_unlock(&reg->lock);
	if (r < 0)
		return r;
	return hold(reg, pool, member, pid, value, len, caller);
}

int mreg_pool_unstore(struct mreg *reg, const char *pool, const char *member)
{
	struct ent *m;
	int r;

	if (!reg)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_member(reg, pool, member, &m);
	if (r == 0)
		remove_member(reg, m, NULL);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_pool_render(struct mreg *reg, const char *pool, const char *member, char **ret_text,
                     size_t *ret_len)
{
	struct mu_buf b = {0};
	struct ent *m;
	int r;

	if (!reg)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_member(reg, pool, member, &m);
	if (r == 0)
		r = mu_buf_printf(&b, "%s\n", m->value);
	pthread_mutex_unlock(&reg->lock);
	if (r < 0) {
		mu_buf_free(&b);
		return r;
	}
	*ret_text = mu_buf_steal(&b, ret_len);
	return 0;
}

static void to_entry(const struct ent *e, struct mreg_entry *ret)
{
	ret->name = e->name;
	ret->kind = e->kind;
	ret->id = e->id;
	ret->mtime = e->mtime;
	ret->uid = e->kind == 'p' ? 0 : e->uid;
}

/* Calls fn under the lock, so fn must not call into the registry; the
 * name it gets lives only for the call. A non-zero return from fn stops
 * the walk and is returned. */
static int walk(struct ent *first, uint64_t after_id,
                int (*fn)(const struct mreg_entry *e, void *arg), void *arg)
{
	for (struct ent *e = first; e; e = e->next) {
		if (e->id <= after_id)
			continue;
		struct mreg_entry x;
		to_entry(e, &x);
		int r = fn(&x, arg);
		if (r)
			return r;
	}
	return 0;
}

int mreg_list(struct mreg *reg, uint64_t after_id, int (*fn)(const struct mreg_entry *e, void *arg),
              void *arg)
{
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = walk(reg->first, after_id, fn, arg);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_pool_list(struct mreg *reg, const char *pool, uint64_t after_id,
                   int (*fn)(const struct mreg_entry *e, void *arg), void *arg)
{
	struct ent *p;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_pool(reg, pool, &p);
	if (r == 0)
		r = walk(p->first, after_id, fn, arg);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* ret->name is set to NULL: the entry's own name lives only while the lock
 * is held, and the caller knows the name it asked for. */
int mreg_stat(struct mreg *reg, const char *name, const char *member, struct mreg_entry *ret)
{
	struct ent *e = NULL;
	int r;

	if (!reg || !ret)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	if (member) {
		r = find_member(reg, name, member, &e);
	} else if (mu_name_check_str(name, MU_NAME_STRICT) < 0) {
		r = -ENOENT;
	} else {
		e = ent_find(&reg->names, name);
		r = e ? 0 : -ENOENT;
	}
	if (r == 0) {
		to_entry(e, ret);
		ret->name = NULL;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}
