/* SPDX-License-Identifier: MIT */
/* The registry's operations: unique names and pools, registering,
 * storing, removing, rendering, listing, saving and restoring them. The
 * entries, their tables and the watcher thread are in registry_entries.c.
 *
 * Locks: each mreg_*() call takes the registry's lock for its lookups and
 * changes; what can fail (opening the process, reading its owner and start
 * time, allocating) is done before taking it, so /proc and pidfd_open are
 * never read with it held (polling a pidfd, which does not block, is). */
#include "registry_i.h"

#include "events.h"
#include "proc.h"
#include "slots.h"
#include "tree.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The unique name (pool false) or the pool (pool true) called name; the lock
 * is held. -ENOENT, or -EISDIR / -ENOTDIR when name is the other kind. */
static int find_top(struct mreg *reg, const char *name, bool pool, struct ent **ret)
{
	struct ent *e;

	if (mu_name_check_str(name, MU_NAME_STRICT) < 0)
		return -ENOENT;
	e = mreg_ent_find(&reg->names, name);
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
	m = mreg_ent_find(&p->members, member);
	if (!m)
		return -ENOENT;
	*ret = m;
	return 0;
}

/* registry/NAME, a name or a pool (member NULL), or registry/NAME/MEMBER;
 * the lock is held. -ENOENT. */
static int find_any(struct mreg *reg, const char *name, const char *member, struct ent **ret)
{
	if (member)
		return find_member(reg, name, member, ret);
	if (mu_name_check_str(name, MU_NAME_STRICT) < 0)
		return -ENOENT;
	*ret = mreg_ent_find(&reg->names, name);
	return *ret ? 0 : -ENOENT;
}

/* Whether pool is there (0), looked up alone: no pool is a plainer answer
 * than anything about a process. -ENOENT, -ENOTDIR. */
static int pool_check(struct mreg *reg, const char *pool)
{
	struct ent *p;
	pthread_mutex_lock(&reg->lock);
	int r = find_pool(reg, pool, &p);
	pthread_mutex_unlock(&reg->lock);
	return r;
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
		e = mreg_ent_find(&p->members, name);
	} else {
		e = mreg_ent_find(&reg->names, name);
		if (e && e->kind == 'n' && e->pid != pid) {
			mreg_reap_if_exited(reg, e->pid);
			e = mreg_ent_find(&reg->names, name);
		}
		if (e && (e->kind == 'p' || e->pid != pid))
			return -EEXIST;
	}
	*ret_pool = p;
	*ret_e = e;
	return 0;
}

/* Opens the live process pid and reads what names it for good: a pidfd,
 * then its owner and start time, then the pidfd still alive, so that what
 * was read is the pidfd's process's and not a successor's that reused the
 * PID. want_start (not NULL): the process must have that start time, or
 * it is another one (-ESRCH). */
static int proc_identify(pid_t pid, const uint64_t *want_start, int *ret_fd, uid_t *ret_owner,
                         uint64_t *ret_start)
{
	int fd, r;

	r = mproc_open(pid, &fd, ret_owner);
	if (r < 0)
		return r;
	r = mproc_starttime(pid, ret_start);
	if (r == 0 && want_start && *ret_start != *want_start)
		r = -ESRCH;
	if (r == 0 && mproc_exited(fd))
		r = -ESRCH;
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Registers pid under name (pool NULL) or stores its value in pool, once
 * the caller has checked the names: the process must be live (with start
 * time *want_start, when not NULL) and the caller root or its owner. A
 * unique name's empty value is no value; a member's is "". The same
 * process again keeps its entry and id, with the new value. */
static int hold(struct mreg *reg, const char *pool, const char *name, pid_t pid, const char *value,
                size_t vlen, uid_t caller, const uint64_t *want_start)
{
	struct ent *n = NULL, *p, *e;
	struct pidw *spare = NULL, *w = NULL;
	char *val = NULL;
	uid_t owner = 0;
	uint64_t start = 0;
	int fd = -1, r;

	r = proc_identify(pid, want_start, &fd, &owner, &start);
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
	/* Alive now, under the lock: then a live watch of pid found below is
	 * this same process's, not a predecessor's. */
	if (mproc_exited(fd)) {
		r = -ESRCH;
		goto unlock;
	}
	/* A watch of this PID that has exited belonged to an earlier process. */
	mreg_reap_if_exited(reg, pid);
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
		mreg_emit_register(reg, e);
		goto unlock;
	}
	n->kind = p ? 'm' : 'n';
	n->pool = p;
	r = mreg_ent_place(reg, n);
	if (r < 0)
		goto unlock;
	r = mreg_pidw_get(reg, pid, &fd, &spare, &w);
	if (r < 0) {
		mreg_ent_unplace(reg, n);
		goto unlock;
	}
	mu_now_real(&n->mtime);
	n->pid = pid;
	n->uid = owner;
	n->starttime = start;
	n->value = val;
	val = NULL;
	if (p)
		p->mtime = n->mtime;
	mreg_htab_insert(p ? &p->members : &reg->names, &n->h, mreg_name_hash(n->name));
	mreg_pidw_attach(w, n);
	mreg_emit_register(reg, n);
	n = NULL;
unlock:
	pthread_mutex_unlock(&reg->lock);
out:
	mreg_ent_free(n);
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
	return hold(reg, NULL, name, pid, value, vlen, caller, NULL);
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
	e = mreg_ent_find(&reg->names, name);
	if (!e)
		r = -ENOENT;
	else if (e->kind == 'p')
		r = -EISDIR;
	else
		mreg_remove_name(reg, e, NULL);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* What cat prints of a name or a member; the lock is held. */
static int ent_text(const struct ent *e, struct mu_buf *b)
{
	if (e->kind == 'm')
		return mu_buf_printf(b, "%s\n", e->value);
	if (e->value)
		return mu_buf_printf(b, "%d %s\n", (int)e->pid, e->value);
	return mu_buf_printf(b, "%d\n", (int)e->pid);
}

/* What cat prints of registry/NAME (pool NULL) or registry/POOL/NAME. */
static int render(struct mreg *reg, const char *pool, const char *name, char **ret_text,
                  size_t *ret_len)
{
	struct mu_buf b = {0};
	struct ent *e;
	int r;

	if (!reg)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = pool ? find_member(reg, pool, name, &e) : find_name(reg, name, &e);
	if (r == 0)
		r = ent_text(e, &b);
	pthread_mutex_unlock(&reg->lock);
	if (r < 0) {
		mu_buf_free(&b);
		return r;
	}
	*ret_text = mu_buf_steal(&b, ret_len);
	return 0;
}

int mreg_render(struct mreg *reg, const char *name, char **ret_text, size_t *ret_len)
{
	return render(reg, NULL, name, ret_text, ret_len);
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
	if (!p || !(p->name = strdup(pool)) || mreg_htab_init(&p->members, 8) < 0) {
		r = -ENOMEM;
		goto out;
	}

	pthread_mutex_lock(&reg->lock);
	e = mreg_ent_find(&reg->names, pool);
	if (e && e->kind == 'n') {
		mreg_reap_if_exited(reg, e->pid);
		e = mreg_ent_find(&reg->names, pool);
	}
	if (e) {
		r = -EEXIST;
		goto unlock;
	}
	p->kind = 'p';
	r = mreg_ent_place(reg, p);
	if (r < 0)
		goto unlock;
	mu_now_real(&p->mtime);
	mreg_htab_insert(&reg->names, &p->h, mreg_name_hash(p->name));
	char path[MTREE_PATH_MAX];
	mreg_ent_path(path, sizeof(path), p);
	mev_emit(reg->ring, MEV_MKDIR, path, NULL);
	p = NULL;
	r = 0;
unlock:
	pthread_mutex_unlock(&reg->lock);
out:
	mreg_ent_free(p);
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
	/* Members whose process has exited are gone already, as for names.
	 * Reaping a member's process removes it and no other member of this
	 * pool; the first live one ends the walk. */
	for (uint32_t pos = 0; p->slots && mslots_next(p->slots, pos, &pos); pos++) {
		struct ent *m = mslots_get(p->slots, pos);
		mreg_reap_if_exited(reg, m->pid);
		if (p->slots && mslots_get(p->slots, pos) == m) {
			r = -ENOTEMPTY;
			goto unlock;
		}
	}
	mreg_htab_remove(&reg->names, &p->h);
	mreg_ent_unplace(reg, p);
	char path[MTREE_PATH_MAX];
	mreg_ent_path(path, sizeof(path), p);
	mev_emit(reg->ring, MEV_RMDIR, path, NULL);
	mreg_ent_free(p);
unlock:
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_pool_store(struct mreg *reg, const char *pool, const char *member, const char *value,
                    size_t len, uid_t caller)
{
	pid_t pid;
	int r;

	if (!reg || !member || (!value && len))
		return -EINVAL;
	if (len && value[len - 1] == '\n')
		len--;
	if (mu_name_check_str(pool, MU_NAME_STRICT) < 0 ||
	    parse_pid(member, strlen(member), true, &pid) < 0 || check_value(value, len) < 0)
		return -EINVAL;
	r = pool_check(reg, pool);
	if (r < 0)
		return r;
	return hold(reg, pool, member, pid, value, len, caller, NULL);
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
		mreg_remove_member(reg, m, NULL);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_pool_render(struct mreg *reg, const char *pool, const char *member, char **ret_text,
                     size_t *ret_len)
{
	return render(reg, pool, member, ret_text, ret_len);
}

static void to_entry(const struct ent *e, struct mreg_entry *ret)
{
	ret->name = e->name;
	ret->kind = e->kind;
	ret->id = e->id;
	ret->cookie = mslots_cookie(e->pos);
	ret->mtime = e->mtime;
	ret->uid = e->kind == 'p' ? 0 : e->uid;
}

/* Calls fn under the lock, so fn must not call into the registry; the
 * name it gets lives only for the call. A non-zero return from fn stops
 * the walk and is returned. It starts where cookie says, without looking
 * at what comes before: O(1) per entry it returns. */
static int walk(struct mreg *reg, const struct mslots *slots, uint64_t cookie,
                int (*fn)(const struct mreg_entry *e, void *arg), void *arg)
{
	for (uint32_t pos = mslots_resume(cookie); mslots_next(slots, pos, &pos); pos++) {
		struct mreg_entry x;
		reg->list_steps++;
		to_entry(mslots_get(slots, pos), &x);
		int r = fn(&x, arg);
		if (r)
			return r;
	}
	return 0;
}

int mreg_list(struct mreg *reg, uint64_t cookie, int (*fn)(const struct mreg_entry *e, void *arg),
              void *arg)
{
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = walk(reg, reg->top, cookie, fn, arg);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_pool_list(struct mreg *reg, const char *pool, uint64_t cookie,
                   int (*fn)(const struct mreg_entry *e, void *arg), void *arg)
{
	struct ent *p;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_pool(reg, pool, &p);
	if (r == 0 && p->slots)
		r = walk(reg, p->slots, cookie, fn, arg);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

uint64_t mreg_list_steps(struct mreg *reg)
{
	pthread_mutex_lock(&reg->lock);
	uint64_t n = reg->list_steps;
	pthread_mutex_unlock(&reg->lock);
	return n;
}

void mreg_counts(struct mreg *reg, struct mreg_counts *ret)
{
	pthread_mutex_lock(&reg->lock);
	*ret = reg->counts;
	pthread_mutex_unlock(&reg->lock);
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
	r = find_any(reg, name, member, &e);
	if (r == 0) {
		to_entry(e, ret);
		ret->name = NULL;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_revert(struct mreg *reg, const char *pool, const char *name, const char *wrote,
                const char *before)
{
	struct mu_buf b = {0};
	struct ent *e;
	char *value = NULL;
	int r;

	if (!reg || !name || !wrote)
		return -EINVAL;
	if (before) {
		/* The same process held it before (another would have made the
		 * write EEXIST): only its value goes back. */
		size_t len = strlen(before);
		const char *v = before;
		if (len && before[len - 1] == '\n')
			len--;
		if (!pool) {
			const char *sp = memchr(before, ' ', len);
			v = sp ? sp + 1 : before + len;
			len -= (size_t)(v - before);
		}
		if ((pool || len) && !(value = mu_memdup0(v, len)))
			return -ENOMEM;
	}
	pthread_mutex_lock(&reg->lock);
	r = pool ? find_member(reg, pool, name, &e) : find_name(reg, name, &e);
	if (r == 0)
		r = ent_text(e, &b);
	if (r == 0 && strcmp(b.data ? b.data : "", wrote) != 0)
		r = -ESTALE; /* changed since: the newer holder's stays */
	if (r == 0 && !before) {
		if (pool)
			mreg_remove_member(reg, e, NULL);
		else
			mreg_remove_name(reg, e, NULL);
	} else if (r == 0) {
		free(e->value);
		e->value = value;
		value = NULL;
		mu_now_real(&e->mtime);
		mreg_emit_register(reg, e);
	}
	pthread_mutex_unlock(&reg->lock);
	mu_buf_free(&b);
	free(value);
	return r;
}

/* The saved form of e; the lock is held (the strings live while it is). */
static void to_saved(const struct ent *e, struct mreg_saved *ret)
{
	*ret = (struct mreg_saved){.kind = e->kind};
	if (e->kind == 'p') {
		ret->name = e->name;
		return;
	}
	ret->name = e->kind == 'm' ? e->pool->name : e->name;
	ret->member = e->kind == 'm' ? e->name : NULL;
	ret->pid = e->pid;
	ret->starttime = e->starttime;
	ret->value = e->value;
	ret->uid = e->uid;
}

static int save_one(const struct ent *e, int (*fn)(const struct mreg_saved *s, void *arg),
                    void *arg)
{
	struct mreg_saved s;
	to_saved(e, &s);
	return fn(&s, arg);
}

/* Pools come first, so that restoring in this order finds each member's
 * pool made already. */
int mreg_save_foreach(struct mreg *reg, int (*fn)(const struct mreg_saved *s, void *arg), void *arg)
{
	int r = 0;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	for (uint32_t pos = 0; r == 0 && mslots_next(reg->top, pos, &pos); pos++) {
		const struct ent *e = mslots_get(reg->top, pos);
		if (e->kind == 'p')
			r = save_one(e, fn, arg);
	}
	for (uint32_t pos = 0; r == 0 && mslots_next(reg->top, pos, &pos); pos++) {
		const struct ent *e = mslots_get(reg->top, pos);
		if (e->kind == 'n') {
			r = save_one(e, fn, arg);
			continue;
		}
		for (uint32_t m = 0; r == 0 && e->slots && mslots_next(e->slots, m, &m); m++)
			r = save_one(mslots_get(e->slots, m), fn, arg);
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int mreg_save_get(struct mreg *reg, const char *name, const char *member,
                  int (*fn)(const struct mreg_saved *s, void *arg), void *arg)
{
	struct ent *e = NULL;
	int r;

	if (!reg || !fn)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	r = find_any(reg, name, member, &e);
	if (r == 0)
		r = save_one(e, fn, arg);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* A saved member's value is never NULL, but one that comes back NULL (an
 * empty value stored as NULL) is restored as the empty value it was. */
int mreg_restore(struct mreg *reg, const struct mreg_saved *s)
{
	const char *value;
	size_t vlen;
	pid_t pid;
	int r;

	if (!reg || !s || !s->name)
		return -EINVAL;
	if (s->kind == 'p')
		return mreg_pool_create(reg, s->name);
	if ((s->kind != 'n' && s->kind != 'm') || s->pid <= 0 ||
	    mu_name_check_str(s->name, MU_NAME_STRICT) < 0)
		return -EINVAL;
	value = s->value ? s->value : "";
	vlen = strlen(value);
	if (check_value(value, vlen) < 0)
		return -EINVAL;
	if (s->kind == 'n')
		return hold(reg, NULL, s->name, s->pid, value, vlen, 0, &s->starttime);
	/* A member is called by its PID, in the one spelling a file name has. */
	if (!s->member || parse_pid(s->member, strlen(s->member), true, &pid) < 0 || pid != s->pid)
		return -EINVAL;
	r = pool_check(reg, s->name);
	if (r < 0)
		return r;
	return hold(reg, s->name, s->member, s->pid, value, vlen, 0, &s->starttime);
}
