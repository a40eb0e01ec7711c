/* SPDX-License-Identifier: MIT */
/* The registry's operations on names and pool members: registering,
 * storing, removing, rendering, undoing and restoring them. Pools are made
 * and removed in registry_pools.c, listings and saving walks are in
 * registry_list.c, cluster mode's mirror in registry_remote.c; the entries,
 * their tables and the watcher thread are in registry_entries.c.
 *
 * Locks: each mreg_*() call takes the registry's lock for its lookups and
 * changes; what can fail (opening the process, reading its owner and start
 * time, allocating) is done before taking it, so /proc and pidfd_open are
 * never read with it held (polling a pidfd, which does not block, is).
 * In cluster mode a writer takes the change lock first and holds it
 * across: local checks under the lock, the lock dropped, the shared
 * store's hold() or release(), the lock taken again, the checks again
 * (its process may have exited, the mirror may have changed), applying.
 * A process that exited between hold() and applying is detected (its
 * pidfd) and the hold undone with release(): -ESRCH. */
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
int mreg_parse_pid(const char *s, size_t len, bool canonical, pid_t *ret)
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

/* "PID@NODE": digits, '@', a node name ([A-Za-z0-9._-]+): a process of
 * another node, which only its node registers. */
bool mreg_remote_form(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);
	if (!at || at == s || at == s + len - 1)
		return false;
	for (const char *c = s; c < at; c++)
		if (*c < '0' || *c > '9')
			return false;
	return mu_name_check(at + 1, (size_t)(s + len - at - 1), MU_NAME_STRICT) == 0;
}

/* What cat prints must be one line, and values are C strings inside. */
int mreg_check_value(const char *value, size_t len)
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

int mreg_find_pool(struct mreg *reg, const char *name, struct ent **ret)
{
	return find_top(reg, name, true, ret);
}

/* The member of p whose file is called member: "PID" this node's, or
 * "PID@NODE" another node's; the lock is held. */
static struct ent *member_lookup(struct mreg *reg, struct ent *p, const char *member)
{
	const char *at = strchr(member, '@');
	char pid_text[16];
	pid_t pid;

	if (!at)
		return mreg_parse_pid(member, strlen(member), true, &pid) < 0
		               ? NULL
		               : mreg_member_find(p, member, NULL);
	size_t len = (size_t)(at - member);
	if (len >= sizeof(pid_text) || mreg_parse_pid(member, len, true, &pid) < 0)
		return NULL;
	memcpy(pid_text, member, len);
	pid_text[len] = '\0';
	struct mreg_node *node = mreg_node_find(reg, at + 1);
	return node ? mreg_member_find(p, pid_text, node) : NULL;
}

/* A member of pool called member; the lock is held. */
int mreg_find_member(struct mreg *reg, const char *pool, const char *member, struct ent **ret)
{
	struct ent *p, *m;
	int r;

	r = mreg_find_pool(reg, pool, &p);
	if (r < 0)
		return r;
	m = member ? member_lookup(reg, p, member) : NULL;
	if (!m)
		return -ENOENT;
	*ret = m;
	return 0;
}

/* registry/NAME, a name or a pool (member NULL), or registry/NAME/MEMBER;
 * the lock is held. -ENOENT. */
int mreg_find_any(struct mreg *reg, const char *name, const char *member, struct ent **ret)
{
	if (member)
		return mreg_find_member(reg, name, member, ret);
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
	int r = mreg_find_pool(reg, pool, &p);
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
		r = mreg_find_pool(reg, pool, &p);
		if (r < 0)
			return r;
		/* A member's name is its PID: the same live process, if any
		 * (an exited one was reaped already). */
		e = mreg_member_find(p, name, NULL);
	} else {
		e = mreg_ent_find(&reg->names, name);
		if (e && e->kind == 'n' && !e->node && e->pid != pid) {
			mreg_reap_if_exited(reg, e->pid);
			e = mreg_ent_find(&reg->names, name);
		}
		/* Another node's holder lives until its node says otherwise. */
		if (e && (e->kind == 'p' || e->node || e->pid != pid))
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

/* What hold() has made ready before taking the lock: the new entry, a
 * watch for its process, the value, and the process's identity. */
struct ready {
	struct ent *n;
	struct pidw *spare;
	char *val;
	int fd;
	pid_t pid;
	uid_t owner;
	uint64_t start;
};

/* Applies a registration whose checks passed (hold_find gave p and e);
 * the lock is held. -ENOMEM, -ENOSPC, -errno of epoll before anything
 * changed. */
static int hold_apply(struct mreg *reg, struct ent *p, struct ent *e, struct ready *rd)
{
	struct ent *n = rd->n;
	struct pidw *w = NULL;
	int r;

	if (e) {
		/* Same live process: keep the entry and its id. */
		free(e->value);
		e->value = rd->val;
		rd->val = NULL;
		e->uid = rd->owner;
		mu_now_real(&e->mtime);
		mreg_emit_register(reg, e);
		return 0;
	}
	n->kind = p ? 'm' : 'n';
	n->pool = p;
	r = mreg_ent_place(reg, n);
	if (r < 0)
		return r;
	r = mreg_pidw_get(reg, rd->pid, rd->start, &rd->fd, &rd->spare, &w);
	if (r < 0) {
		mreg_ent_unplace(reg, n);
		return r;
	}
	mu_now_real(&n->mtime);
	n->pid = rd->pid;
	n->uid = rd->owner;
	n->starttime = rd->start;
	n->value = rd->val;
	rd->val = NULL;
	if (p)
		p->mtime = n->mtime;
	mreg_htab_insert(p ? &p->members : &reg->names, &n->h, mreg_name_hash(n->name));
	mreg_pidw_attach(w, n);
	mreg_emit_register(reg, n);
	rd->n = NULL;
	return 0;
}

int mreg_ask_hold(struct mreg *reg, const struct mreg_saved *s)
{
	mreg_unlock(reg);
	int r = reg->remote.hold(reg->remote_arg, s);
	if (r == 0)
		pthread_mutex_lock(&reg->lock);
	return r;
}

void mreg_drop_stale(struct mreg *reg, const char *name)
{
	struct ent *e = mreg_ent_find(&reg->names, name);
	if (e && e->kind == 'n' && e->node)
		mreg_remove_name(reg, e, NULL);
}

void mreg_undo_hold(struct mreg *reg, const struct mreg_saved *s)
{
	struct mreg_saved u = *s;
	u.value = NULL;
	int r = reg->remote.release(reg->remote_arg, &u);
	if (r < 0)
		mu_log(MU_LOG_WARNING, "registry: undoing %s%s%s in the shared store: %s", u.name,
		       u.member ? "/" : "", u.member ? u.member : "", strerror(-r));
}

/* Cluster mode, holding the change lock and the lock, once the local
 * checks passed: asks the shared store with the lock dropped, then applies
 * what it allowed, or undoes it there (release) when that fails here.
 * Returns with the lock dropped. */
static int hold_shared(struct mreg *reg, const char *pool, const char *name, struct ready *rd)
{
	struct mreg_saved s = {.name = pool ? pool : name,
	                       .member = pool ? name : NULL,
	                       .kind = pool ? 'm' : 'n',
	                       .pid = rd->pid,
	                       .starttime = rd->start,
	                       .value = rd->val,
	                       .uid = rd->owner};
	struct ent *p = NULL, *e = NULL;
	int r;

	r = mreg_ask_hold(reg, &s);
	if (r < 0)
		return r;
	/* Meanwhile its process may have exited or the mirror changed: the
	 * pool gone, or another node's stale holder of the name still shown.
	 * No writer of this node ran: they wait for the change lock. */
	r = mproc_exited(rd->fd) ? -ESRCH : 0;
	if (r == 0 && !pool)
		mreg_drop_stale(reg, name);
	if (r == 0)
		r = hold_find(reg, pool, name, rd->pid, &p, &e);
	if (r == 0)
		r = hold_apply(reg, p, e, rd);
	mreg_unlock(reg);
	if (r < 0)
		mreg_undo_hold(reg, &s);
	return r;
}

/* Registers pid under name (pool NULL) or stores its value in pool, once
 * the caller has checked the names: the process must be live (with start
 * time *want_start, when not NULL) and the caller root or its owner. A
 * unique name's empty value is no value; a member's is "". The same
 * process again keeps its entry and id, with the new value. In cluster
 * mode, hooks: the shared store is asked first (hold_shared). */
static int hold(struct mreg *reg, const char *pool, const char *name, pid_t pid, const char *value,
                size_t vlen, uid_t caller, const uint64_t *want_start, bool hooks)
{
	struct ready rd = {.fd = -1, .pid = pid};
	struct ent *p, *e;
	int r;

	r = proc_identify(pid, want_start, &rd.fd, &rd.owner, &rd.start);
	if (r < 0)
		return r;
	if (caller != 0 && caller != rd.owner) {
		r = -EPERM;
		goto out;
	}

	/* Everything that can fail to allocate is made before touching state.
	 * For a unique name "PID \n" would not read back the same, hence no
	 * value rather than an empty one. */
	rd.n = calloc(1, sizeof(*rd.n));
	rd.spare = calloc(1, sizeof(*rd.spare));
	if (!rd.n || !rd.spare || !(rd.n->name = strdup(name)) ||
	    ((pool || vlen) && !(rd.val = mu_memdup0(value, vlen)))) {
		r = -ENOMEM;
		goto out;
	}

	hooks = hooks && reg->cluster;
	if (hooks)
		pthread_mutex_lock(&reg->change);
	pthread_mutex_lock(&reg->lock);
	/* Alive now, under the lock: then a live watch of pid found below is
	 * this same process's, not a predecessor's. */
	if (mproc_exited(rd.fd)) {
		r = -ESRCH;
		goto unlock;
	}
	/* A watch of this PID that has exited belonged to an earlier process. */
	mreg_reap_if_exited(reg, pid);
	r = hold_find(reg, pool, name, pid, &p, &e);
	if (r == 0 && hooks) {
		r = hold_shared(reg, pool, name, &rd);
		pthread_mutex_unlock(&reg->change);
		goto out;
	}
	if (r == 0)
		r = hold_apply(reg, p, e, &rd);
unlock:
	mreg_unlock(reg);
	if (hooks)
		pthread_mutex_unlock(&reg->change);
out:
	mreg_ent_free(rd.n);
	free(rd.spare);
	free(rd.val);
	if (rd.fd >= 0)
		close(rd.fd);
	return r;
}

int mreg_register(struct mreg *reg, const char *name, pid_t pid, const char *value, uid_t caller)
{
	size_t vlen = value ? strlen(value) : 0;

	if (!reg || mu_name_check_str(name, MU_NAME_STRICT) < 0 || pid <= 0 ||
	    mreg_check_value(value, vlen) < 0)
		return -EINVAL;
	return hold(reg, NULL, name, pid, value, vlen, caller, NULL, true);
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
	r = mreg_parse_pid(text, pid_len, false, &pid);
	if (r < 0)
		return reg->cluster && mreg_remote_form(text, pid_len) ? -EPERM : r;
	if (sp) {
		size_t vlen = len - pid_len - 1;
		if (mreg_check_value(sp + 1, vlen) < 0)
			return -EINVAL;
		value = mu_memdup0(sp + 1, vlen);
		if (!value)
			return -ENOMEM;
	}
	r = mreg_register(reg, name, pid, value, caller);
	free(value);
	return r;
}

/* This node's name (pool NULL) or member that rm removes; the lock is
 * held. -ENOENT, -EISDIR (a pool), -EPERM (another node's: read-only). */
static int unhold_find(struct mreg *reg, const char *pool, const char *name, struct ent **ret)
{
	int r = pool ? mreg_find_member(reg, pool, name, ret) : find_name(reg, name, ret);
	return r == 0 && (*ret)->node ? -EPERM : r;
}

/* rm of a name (pool NULL) or a member. In cluster mode the shared store
 * is told first (release), holding the change lock. */
static int unhold(struct mreg *reg, const char *pool, const char *name)
{
	struct mreg_saved s = {
	        .name = pool ? pool : name, .member = pool ? name : NULL, .kind = pool ? 'm' : 'n'};
	bool hooks = reg->cluster;
	struct ent *e;
	int r;

	if (hooks)
		pthread_mutex_lock(&reg->change);
	pthread_mutex_lock(&reg->lock);
	r = unhold_find(reg, pool, name, &e);
	if (r == 0 && hooks) {
		s.pid = e->pid;
		s.starttime = e->starttime;
		s.uid = e->uid;
		pthread_mutex_unlock(&reg->lock);
		r = reg->remote.release(reg->remote_arg, &s);
		if (r < 0)
			goto out;
		pthread_mutex_lock(&reg->lock);
		/* Gone meanwhile (its process exited): gone all the same. */
		if (unhold_find(reg, pool, name, &e) < 0 || e->pid != s.pid ||
		    e->starttime != s.starttime)
			e = NULL;
	}
	if (r == 0 && e && pool)
		mreg_remove_member(reg, e, NULL);
	else if (r == 0 && e)
		mreg_remove_name(reg, e, NULL);
	pthread_mutex_unlock(&reg->lock);
out:
	if (hooks)
		pthread_mutex_unlock(&reg->change);
	return r;
}

int mreg_unregister(struct mreg *reg, const char *name)
{
	if (!reg || mu_name_check_str(name, MU_NAME_STRICT) < 0)
		return -ENOENT;
	return unhold(reg, NULL, name);
}

/* What cat prints of a name or a member; the lock is held. */
static int ent_text(const struct ent *e, struct mu_buf *b)
{
	if (e->kind == 'm')
		return mu_buf_printf(b, "%s\n", e->value);
	if (e->node)
		return mu_buf_printf(b, "%d@%s%s%s\n", (int)e->pid, e->node->name,
		                     e->value ? " " : "", e->value ? e->value : "");
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
	r = pool ? mreg_find_member(reg, pool, name, &e) : find_name(reg, name, &e);
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
	if (r == 0 && e->node)
		r = -EREMOTE;
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

int mreg_pool_store(struct mreg *reg, const char *pool, const char *member, const char *value,
                    size_t len, uid_t caller)
{
	pid_t pid;
	int r;

	if (!reg || !member || (!value && len))
		return -EINVAL;
	if (len && value[len - 1] == '\n')
		len--;
	if (mu_name_check_str(pool, MU_NAME_STRICT) < 0)
		return -EINVAL;
	/* Only local processes are registered here: PID@NODE is its node's. */
	if (mreg_parse_pid(member, strlen(member), true, &pid) < 0)
		return reg->cluster && mreg_remote_form(member, strlen(member)) ? -EPERM : -EINVAL;
	if (mreg_check_value(value, len) < 0)
		return -EINVAL;
	r = pool_check(reg, pool);
	if (r < 0)
		return r;
	return hold(reg, pool, member, pid, value, len, caller, NULL, true);
}

int mreg_pool_unstore(struct mreg *reg, const char *pool, const char *member)
{
	if (!reg)
		return -EINVAL;
	return unhold(reg, pool, member);
}

int mreg_pool_render(struct mreg *reg, const char *pool, const char *member, char **ret_text,
                     size_t *ret_len)
{
	return render(reg, pool, member, ret_text, ret_len);
}

/* The name (pool NULL) or member whose cat still prints wrote; the lock
 * is held. -ESTALE when it changed since: the newer holder's stays. */
static int revert_find(struct mreg *reg, const char *pool, const char *name, const char *wrote,
                       struct ent **ret)
{
	struct mu_buf b = {0};
	int r = pool ? mreg_find_member(reg, pool, name, ret) : find_name(reg, name, ret);
	if (r == 0)
		r = ent_text(*ret, &b);
	if (r == 0 && strcmp(b.data ? b.data : "", wrote) != 0)
		r = -ESTALE;
	mu_buf_free(&b);
	return r;
}

int mreg_revert(struct mreg *reg, const char *pool, const char *name, const char *wrote,
                const char *before)
{
	bool hooks = reg && reg->cluster;
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
	if (hooks)
		pthread_mutex_lock(&reg->change);
	pthread_mutex_lock(&reg->lock);
	r = revert_find(reg, pool, name, wrote, &e);
	if (r == 0 && hooks) {
		/* As the change it is: the shared store first. */
		struct mreg_saved s = {.name = pool ? pool : name,
		                       .member = pool ? name : NULL,
		                       .kind = pool ? 'm' : 'n',
		                       .pid = e->pid,
		                       .starttime = e->starttime,
		                       .value = value,
		                       .uid = e->uid};
		pthread_mutex_unlock(&reg->lock);
		r = before ? reg->remote.hold(reg->remote_arg, &s)
		           : reg->remote.release(reg->remote_arg, &s);
		if (r < 0)
			goto out;
		pthread_mutex_lock(&reg->lock);
		r = revert_find(reg, pool, name, wrote, &e);
	}
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
out:
	if (hooks)
		pthread_mutex_unlock(&reg->change);
	free(value);
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
		return mreg_pool_make_here(reg, s->name);
	if ((s->kind != 'n' && s->kind != 'm') || s->pid <= 0 ||
	    mu_name_check_str(s->name, MU_NAME_STRICT) < 0)
		return -EINVAL;
	value = s->value ? s->value : "";
	vlen = strlen(value);
	if (mreg_check_value(value, vlen) < 0)
		return -EINVAL;
	if (s->kind == 'n')
		return hold(reg, NULL, s->name, s->pid, value, vlen, 0, &s->starttime, false);
	/* A member is called by its PID, in the one spelling a file name has. */
	if (!s->member || mreg_parse_pid(s->member, strlen(s->member), true, &pid) < 0 ||
	    pid != s->pid)
		return -EINVAL;
	r = pool_check(reg, s->name);
	if (r < 0)
		return r;
	return hold(reg, s->name, s->member, s->pid, value, vlen, 0, &s->starttime, false);
}
