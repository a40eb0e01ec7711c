/* SPDX-License-Identifier: MIT */
/* The store of a service and the files its plugins publish: every store
 * operation passes through the chain's store hooks, top to bottom, then back
 * up through store_after.
 *
 * Locks: an operation holds store_lock (read for GET and LIST, write for the
 * rest) across the whole chain and the table, so hooks never race with a
 * plugin's start or stop and mutations run one at a time. Events are emitted
 * with it held, which keeps the feed in the order of the changes. A refusal
 * is recorded (msvc_set_error, state_lock) only after store_lock is released.
 * Published files render under store_lock's read side. op_lock is never
 * taken here: the store stays usable while a reconfiguration or an exec hook
 * waits.
 *
 * Commits (store_commit, mallafs-plugin.h): when a store_before sets
 * op->commit, the chain's store_commit callbacks run with store_lock's
 * write side held, before base carries out a DELETE or RENAME, after it
 * carried out a CREATE, WRITE or TRUNCATE. For those three the key's value
 * and mtime are copied first (struct undo), and the events base emits are
 * held in a buffer of this thread (struct held) until the commits said
 * yes: a refusal puts the value back and drops them, so nobody ever sees a
 * change that did not count. A commit may wait for an fsync: only this
 * service's store operations wait with it. */
#include "service_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "tree.h"
#include "util.h"

static const char *const op_names[] = {
        [MALLAFS_OP_GET] = "get",       [MALLAFS_OP_CREATE] = "create",
        [MALLAFS_OP_WRITE] = "put",     [MALLAFS_OP_TRUNCATE] = "truncate",
        [MALLAFS_OP_DELETE] = "delete", [MALLAFS_OP_RENAME] = "rename",
        [MALLAFS_OP_LIST] = "list",
};

const char *mallafs_store_opname(enum mallafs_store_opcode code)
{
	return (size_t)code < MU_ARRAY_SIZE(op_names) ? op_names[code] : "?";
}

/* ---- output of render callbacks ---- */

int mallafs_out_append(struct mallafs_out *out, const void *data, size_t len)
{
	return mu_buf_append(&out->b, data, len);
}

int mallafs_out_printf(struct mallafs_out *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = mu_buf_vprintf(&out->b, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- the store ---- */

/* The events of an operation whose commit is pending, held by the thread
 * that runs it (store_lock's write side held): at most a create and a
 * write come from one WRITE; more than HELD_MAX would go out at once. */
#define HELD_MAX 4
struct held {
	struct mallafs_svc *svc;
	size_t n;
	struct {
		enum mev_op op;
		bool has_detail;
		char path[MTREE_PATH_MAX];
		char detail[MTREE_PATH_MAX];
	} ev[HELD_MAX];
};
static __thread struct held *held_events;

static void store_emit(struct mallafs_svc *svc, enum mev_op op, const char *key, const char *detail)
{
	char path[MTREE_PATH_MAX];
	struct held *h = held_events;
	msvc_path(svc, path, sizeof(path), mtree_name(MTREE_STORE), key);
	if (h && h->svc == svc && h->n < HELD_MAX) {
		h->ev[h->n].op = op;
		h->ev[h->n].has_detail = detail != NULL;
		snprintf(h->ev[h->n].path, sizeof(h->ev[h->n].path), "%s", path);
		snprintf(h->ev[h->n].detail, sizeof(h->ev[h->n].detail), "%s",
		         detail ? detail : "");
		h->n++;
		return;
	}
	mev_emit(svc->env.events, op, path, detail);
}

/* Stops holding; emits what was held when emit is true, else drops it. */
static void held_end(struct held *h, bool emit)
{
	held_events = NULL;
	for (size_t i = 0; emit && i < h->n; i++)
		mev_emit(h->svc->env.events, h->ev[i].op, h->ev[i].path,
		         h->ev[i].has_detail ? h->ev[i].detail : NULL);
	h->n = 0;
}

int64_t mallafs_store_exec(struct mallafs_svc *svc, struct mallafs_store_op *op)
{
	struct mkv *kv = svc->kv;
	int64_t r = 0;
	char detail[MTREE_PATH_MAX];
	unsigned flags = 0;
	struct mkv_stat st;

	switch (op->code) {
	case MALLAFS_OP_GET:
		r = mkv_read(kv, op->key, op->offset, op->buf, op->size);
		break;
	case MALLAFS_OP_CREATE:
		r = mkv_create(kv, op->key);
		if (r == 0)
			store_emit(svc, MEV_CREATE, op->key, NULL);
		break;
	case MALLAFS_OP_WRITE: {
		bool existed = mkv_stat(kv, op->key, &st) == 0;
		if (op->flags & MALLAFS_OPF_APPEND)
			flags |= MKV_APPEND;
		if (op->flags & MALLAFS_OPF_REPLACE)
			flags |= MKV_REPLACE;
		r = mkv_write(kv, op->key, op->offset, op->data, op->size, flags);
		if (r >= 0) {
			if (!existed)
				store_emit(svc, MEV_CREATE, op->key, NULL);
			mkv_stat(kv, op->key, &st);
			snprintf(detail, sizeof(detail), "%llu", (unsigned long long)st.size);
			store_emit(svc, MEV_WRITE, op->key, detail);
		}
		break;
	}
	case MALLAFS_OP_TRUNCATE:
		/* A probe asks whether the chain lets it pass: nothing changes. */
		if (op->flags & MALLAFS_OPF_PROBE)
			r = mkv_stat(kv, op->key, NULL);
		else
			r = mkv_truncate(kv, op->key, op->offset);
		if (r == 0 && !(op->flags & MALLAFS_OPF_PROBE)) {
			snprintf(detail, sizeof(detail), "%llu", (unsigned long long)op->offset);
			store_emit(svc, MEV_WRITE, op->key, detail);
		}
		break;
	case MALLAFS_OP_DELETE:
		r = mkv_delete(kv, op->key);
		if (r == 0)
			store_emit(svc, MEV_DELETE, op->key, NULL);
		break;
	case MALLAFS_OP_RENAME:
		r = mkv_rename(kv, op->key, op->new_key);
		if (r == 0) {
			msvc_path(svc, detail, sizeof(detail), mtree_name(MTREE_STORE),
			          op->new_key);
			store_emit(svc, MEV_RENAME, op->key, detail);
		}
		break;
	case MALLAFS_OP_LIST:
		r = 0;
		break;
	default:
		r = -EINVAL;
	}
	op->result = r;
	return r;
}

/* A write or truncate whose end is past the largest value the store holds:
 * refused before any plugin sees it (so a quota never answers first with
 * ENOSPC), with nothing allocated. */
static int check_size(const struct mallafs_store_op *op, struct mallafs_reason *why)
{
	uint64_t end;
	if (op->code == MALLAFS_OP_TRUNCATE)
		end = op->offset;
	else if (op->code != MALLAFS_OP_WRITE)
		return 0;
	else if ((op->flags & MALLAFS_OPF_APPEND) && !(op->flags & MALLAFS_OPF_REPLACE))
		end = (op->old_size > 0 ? (uint64_t)op->old_size : 0) + op->size;
	else if (op->offset > UINT64_MAX - op->size)
		end = UINT64_MAX;
	else
		end = op->offset + op->size;
	if (end <= MKV_MAX_VALUE)
		return 0;
	mallafs_reason_set(why, "a value may hold at most %llu bytes",
	                   (unsigned long long)MKV_MAX_VALUE);
	return -EFBIG;
}

/* ---- commits ---- */

/* What undoes a CREATE, WRITE or TRUNCATE: the key's value before. */
struct undo {
	bool saved, existed;
	char *data;
	size_t len;
	struct timespec mtime;
};

static bool commit_before_base(const struct mallafs_store_op *op)
{
	return op->code == MALLAFS_OP_DELETE || op->code == MALLAFS_OP_RENAME;
}

static bool commit_after_base(const struct mallafs_store_op *op)
{
	return (op->code == MALLAFS_OP_CREATE || op->code == MALLAFS_OP_WRITE ||
	        op->code == MALLAFS_OP_TRUNCATE) &&
	       !(op->flags & MALLAFS_OPF_PROBE);
}

static bool chain_commits(struct mallafs_svc *svc)
{
	for (size_t i = 0; i < svc->nchain; i++)
		if (svc->chain[i]->active && svc->chain[i]->desc->store_commit)
			return true;
	return false;
}

/* Runs the commits, top to bottom; the index of the one that refused (its
 * errno in op->result), or -1. */
static ssize_t run_commits(struct mallafs_svc *svc, struct mallafs_store_op *op)
{
	for (size_t i = 0; i < svc->nchain; i++) {
		struct minst *in = svc->chain[i];
		if (!in->active || !in->desc->store_commit)
			continue;
		int r = in->desc->store_commit(in->state, op);
		if (r < 0) {
			op->result = r;
			return (ssize_t)i;
		}
	}
	return -1;
}

static int undo_save(struct mallafs_svc *svc, const char *key, struct undo *u)
{
	struct mkv_stat st;
	*u = (struct undo){.saved = true};
	if (mkv_stat(svc->kv, key, &st) < 0)
		return 0;
	u->existed = true;
	u->mtime = st.mtime;
	return mkv_get(svc->kv, key, &u->data, &u->len);
}

/* Puts the key back as undo_save found it. */
static void undo_apply(struct mallafs_svc *svc, const char *key, struct undo *u)
{
	int r;
	if (!u->existed) {
		r = mkv_delete(svc->kv, key);
	} else {
		ssize_t n = mkv_write(svc->kv, key, 0, u->data, u->len, MKV_REPLACE);
		r = n < 0 ? (int)n : mkv_set_mtime(svc->kv, key, &u->mtime);
	}
	if (r < 0 && r != -ENOENT)
		mu_log(MU_LOG_ERR, "service %s: cannot undo a refused change of %s: %s", svc->name,
		       key, strerror(-r));
}

/* Runs op through the chain with store_lock held. Returns the index of the
 * plugin that refused it, STORE_REFUSED when the store refused it before
 * any plugin, or -1. */
#define STORE_REFUSED ((ssize_t)-2)
static ssize_t chain_run(struct mallafs_svc *svc, struct mallafs_store_op *op)
{
	ssize_t reached = -1, refused = -1;
	struct mkv_stat st;
	struct undo undo = {0};
	struct held held = {.svc = svc};
	bool pending = false;

	op->old_size = mkv_stat(svc->kv, op->key, &st) == 0 ? (int64_t)st.size : -1;
	op->nkeys = mkv_count(svc->kv);
	op->store_bytes = mkv_bytes(svc->kv);
	op->new_key_size = -1;
	if (op->code == MALLAFS_OP_RENAME && mkv_stat(svc->kv, op->new_key, &st) == 0)
		op->new_key_size = (int64_t)st.size;
	op->result = 0;
	op->commit = 0;
	op->result = check_size(op, op->why);
	if (op->result < 0)
		return STORE_REFUSED;
	for (size_t i = 0; i < svc->nchain; i++) {
		struct minst *in = svc->chain[i];
		if (!in->active)
			continue;
		reached = (ssize_t)i;
		if (in->base && op->commit && chain_commits(svc)) {
			if (commit_before_base(op) && op->old_size >= 0) {
				refused = run_commits(svc, op);
				if (refused >= 0)
					break;
			} else if (commit_after_base(op)) {
				int r = undo_save(svc, op->key, &undo);
				if (r < 0) {
					op->result = r;
					mallafs_reason_set(op->why,
					                   "cannot keep the value to undo");
					refused = STORE_REFUSED;
					break;
				}
				pending = true;
				held_events = &held;
			}
		}
		if (!in->desc->store_before)
			continue;
		int r = in->desc->store_before(in->state, op);
		if (r < 0) {
			op->result = r;
			if (!in->base)
				refused = (ssize_t)i;
			break;
		}
	}
	if (pending) {
		held_events = NULL;
		if (op->result >= 0)
			refused = run_commits(svc, op);
		if (refused >= 0)
			undo_apply(svc, op->key, &undo);
		held_end(&held, refused < 0);
		free(undo.data);
	}
	for (ssize_t i = reached; i >= 0; i--) {
		struct minst *in = svc->chain[i];
		if (in->active && in->desc->store_after)
			in->desc->store_after(in->state, op);
	}
	return refused;
}

static bool op_reads(enum mallafs_store_opcode code)
{
	return code == MALLAFS_OP_GET || code == MALLAFS_OP_LIST;
}

/* The table itself said -ENOSPC: the node's memory (-o max_memory) is
 * full. Says so in op->why; returns who refused. */
static const char *full_reason(struct mallafs_svc *svc, struct mallafs_store_op *op)
{
	const struct mkv_account *a = svc->env.account;
	mallafs_reason_set(op->why, "the node's stores hold %llu of max_memory %llu bytes",
	                   (unsigned long long)mkv_account_used(a),
	                   (unsigned long long)mkv_account_limit(a));
	return "store";
}

static int64_t store_op(struct mallafs_svc *svc, struct mallafs_store_op *op,
                        int (*list_fn)(const char *key, const struct mkv_stat *st, void *arg),
                        void *list_arg, uint64_t after)
{
	struct mallafs_reason local = {{0}};
	if (!op->why)
		op->why = &local;
	op->why->text[0] = '\0';
	if (op->code != MALLAFS_OP_LIST && mu_name_check_str(op->key, MU_NAME_FILE) < 0)
		return op->result = -EINVAL;
	if (op->code == MALLAFS_OP_RENAME && mu_name_check_str(op->new_key, MU_NAME_FILE) < 0)
		return op->result = -EINVAL;
	if (op->code == MALLAFS_OP_LIST)
		op->key = "";

	if (op_reads(op->code))
		pthread_rwlock_rdlock(&svc->store_lock);
	else
		pthread_rwlock_wrlock(&svc->store_lock);
	ssize_t refused = -1;
	const char *refuser = NULL;
	if (svc->dead) {
		op->result = -ENOENT;
	} else {
		refused = chain_run(svc, op);
		if (refused == STORE_REFUSED)
			refuser = "store";
		else if (refused >= 0)
			refuser = svc->chain[refused]->desc->name;
		else if (op->result == -ENOSPC)
			refuser = full_reason(svc, op);
		if (op->code == MALLAFS_OP_LIST && op->result == 0)
			op->result = mkv_list(svc->kv, after, list_fn, list_arg);
	}
	pthread_rwlock_unlock(&svc->store_lock);

	if (refuser && !(op->flags & MALLAFS_OPF_QUIET)) {
		char reason[MALLAFS_REASON_MAX + 2 * MU_NAME_MAX + 64];
		snprintf(reason, sizeof(reason), "%s refused %s %s: %s", refuser,
		         mallafs_store_opname(op->code), op->key,
		         op->why->text[0] ? op->why->text : strerror((int)-op->result));
		msvc_set_error(svc, reason);
	}
	if (op->why == &local)
		op->why = NULL;
	return op->result;
}

int64_t msvc_store_op(struct mallafs_svc *svc, struct mallafs_store_op *op)
{
	if (op->code == MALLAFS_OP_LIST)
		return op->result = -EINVAL; /* msvc_store_list lists */
	return store_op(svc, op, NULL, NULL, 0);
}

int64_t mallafs_svc_store_op(struct mallafs_svc *svc, struct mallafs_store_op *op)
{
	return msvc_store_op(svc, op);
}

ssize_t msvc_store_read(struct mallafs_svc *svc, const char *key, uint64_t off, void *buf,
                        size_t len)
{
	struct mallafs_store_op op = {
	        .code = MALLAFS_OP_GET, .key = key, .buf = buf, .size = len, .offset = off};
	return (ssize_t)msvc_store_op(svc, &op);
}

ssize_t msvc_store_write(struct mallafs_svc *svc, const char *key, uint64_t off, const void *data,
                         size_t len, unsigned flags)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_WRITE,
	                              .key = key,
	                              .data = data,
	                              .size = len,
	                              .offset = off,
	                              .flags = flags};
	return (ssize_t)msvc_store_op(svc, &op);
}

int msvc_store_create(struct mallafs_svc *svc, const char *key)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_CREATE, .key = key};
	return (int)msvc_store_op(svc, &op);
}

int msvc_store_truncate(struct mallafs_svc *svc, const char *key, uint64_t size)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_TRUNCATE, .key = key, .offset = size};
	return (int)msvc_store_op(svc, &op);
}

int msvc_store_delete(struct mallafs_svc *svc, const char *key)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_DELETE, .key = key};
	return (int)msvc_store_op(svc, &op);
}

int msvc_store_rename(struct mallafs_svc *svc, const char *from, const char *to)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_RENAME, .key = from, .new_key = to};
	return (int)msvc_store_op(svc, &op);
}

int msvc_store_stat(struct mallafs_svc *svc, const char *key, struct mkv_stat *ret)
{
	pthread_rwlock_rdlock(&svc->store_lock);
	int r = svc->dead ? -ENOENT : mkv_stat(svc->kv, key, ret);
	pthread_rwlock_unlock(&svc->store_lock);
	return r;
}

int msvc_store_key_name(struct mallafs_svc *svc, uint64_t id, char *buf, size_t len)
{
	pthread_rwlock_rdlock(&svc->store_lock);
	int r = svc->dead ? -ENOENT : mkv_name_of(svc->kv, id, buf, len);
	pthread_rwlock_unlock(&svc->store_lock);
	return r;
}

int msvc_store_set_mtime(struct mallafs_svc *svc, const char *key, const struct timespec *mtime)
{
	pthread_rwlock_wrlock(&svc->store_lock);
	int r = svc->dead ? -ENOENT : mkv_set_mtime(svc->kv, key, mtime);
	pthread_rwlock_unlock(&svc->store_lock);
	return r;
}

int msvc_store_list(struct mallafs_svc *svc, uint64_t after,
                    int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg)
{
	struct mallafs_store_op op = {.code = MALLAFS_OP_LIST};
	return (int)store_op(svc, &op, fn, arg, after);
}

struct foreach_ctx {
	int (*fn)(const char *key, const void *value, size_t len, const struct timespec *mtime,
	          void *arg);
	void *arg;
	int ret; /* what fn returned, when it stopped the walk */
};

static int foreach_one(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                       void *arg)
{
	struct foreach_ctx *c = arg;
	c->ret = c->fn(key, value, len, &st->mtime, c->arg);
	return c->ret ? -ECANCELED : 0;
}

/* Keys per hold of store_lock in mallafs_store_foreach. */
#define FOREACH_SLICE 4096

int mallafs_store_foreach(struct mallafs_svc *svc,
                          int (*fn)(const char *key, const void *value, size_t len,
                                    const struct timespec *mtime, void *arg),
                          void *arg)
{
	struct foreach_ctx c = {fn, arg};
	uint64_t cookie = 0;
	int r = 1;
	/* A slice at a time, so that a walk of a large store (persist's
	 * reconciliation) never holds writers back for long. */
	while (r == 1) {
		pthread_rwlock_rdlock(&svc->store_lock);
		r = svc->dead ? -ENOENT
		              : mkv_foreach_from(svc->kv, &cookie, FOREACH_SLICE, foreach_one, &c);
		pthread_rwlock_unlock(&svc->store_lock);
	}
	return r == -ECANCELED && c.ret ? c.ret : r;
}

int mallafs_store_load(struct mallafs_svc *svc, const char *key, const void *value, size_t len)
{
	/* No mtime given: the load's time, as a write's. */
	struct mallafs_store_rec rec = {.key = key, .value = value, .len = len};
	return mallafs_store_load_many(svc, &rec, 1);
}

/* Keys per hold of store_lock in mallafs_store_load_many. */
#define LOAD_SLICE 4096

int mallafs_store_load_many(struct mallafs_svc *svc, const struct mallafs_store_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (mu_name_check_str(recs[i].key, MU_NAME_FILE) < 0)
			return -EINVAL;
	int r = 0;
	for (size_t i = 0; r == 0 && i < n;) {
		size_t end = n - i > LOAD_SLICE ? i + LOAD_SLICE : n;
		pthread_rwlock_wrlock(&svc->store_lock);
		if (svc->dead)
			r = -ENOENT;
		for (; r == 0 && i < end; i++) {
			struct mallafs_store_op op = {.code = MALLAFS_OP_WRITE,
			                              .key = recs[i].key,
			                              .data = recs[i].value,
			                              .size = recs[i].len,
			                              .flags = MALLAFS_OPF_REPLACE};
			int64_t w = mallafs_store_exec(svc, &op);
			if (w < 0)
				r = (int)w;
			else if (recs[i].mtime.tv_sec || recs[i].mtime.tv_nsec)
				mkv_set_mtime(svc->kv, recs[i].key, &recs[i].mtime);
		}
		pthread_rwlock_unlock(&svc->store_lock);
	}
	return r;
}

int msvc_status_plugins(struct mallafs_svc *svc, struct mu_buf *b)
{
	struct mallafs_out out = {.b = *b};
	int r = 0;
	pthread_rwlock_rdlock(&svc->store_lock);
	for (size_t i = 0; r == 0 && !svc->dead && i < svc->nchain; i++)
		if (svc->chain[i]->desc->status)
			r = svc->chain[i]->desc->status(svc->chain[i]->state, &out);
	pthread_rwlock_unlock(&svc->store_lock);
	*b = out.b;
	return r;
}

/* ---- published files ---- */

int msvc_files_foreach(struct mallafs_svc *svc, int (*fn)(const char *name, void *arg), void *arg)
{
	int r = 0;
	pthread_rwlock_rdlock(&svc->store_lock);
	for (size_t i = 0; r == 0 && !svc->dead && i < svc->nchain; i++)
		for (const struct mallafs_file *f = svc->chain[i]->desc->files;
		     r == 0 && f && f->name; f++)
			r = fn(f->name, arg);
	pthread_rwlock_unlock(&svc->store_lock);
	return r;
}

int msvc_plugin_peek(struct mallafs_svc *svc, const struct mallafs_plugin *desc,
                     int (*fn)(void *state, void *arg), void *arg)
{
	int r = -ENOENT;
	pthread_rwlock_rdlock(&svc->store_lock);
	for (size_t i = 0; r == -ENOENT && !svc->dead && i < svc->nchain; i++)
		if (svc->chain[i]->desc == desc)
			r = fn(svc->chain[i]->state, arg);
	pthread_rwlock_unlock(&svc->store_lock);
	return r;
}

int msvc_file_render(struct mallafs_svc *svc, const char *name, char **ret_text, size_t *ret_len)
{
	struct mallafs_out out = {{0}};
	int r = -ENOENT;
	pthread_rwlock_rdlock(&svc->store_lock);
	for (size_t i = 0; r == -ENOENT && !svc->dead && i < svc->nchain; i++) {
		for (const struct mallafs_file *f = svc->chain[i]->desc->files; f && f->name; f++) {
			if (strcmp(f->name, name) == 0) {
				r = f->render(svc->chain[i]->state, &out);
				break;
			}
		}
	}
	pthread_rwlock_unlock(&svc->store_lock);
	if (r < 0) {
		mu_buf_free(&out.b);
		return r;
	}
	*ret_text = mu_buf_steal(&out.b, ret_len);
	return *ret_text ? 0 : -ENOMEM;
}
