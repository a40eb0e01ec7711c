/* SPDX-License-Identifier: MIT */
#include "nodecfg.h"

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

struct nc_app {
	struct mkv *keys;
	struct timespec mtime, ctime; /* creation, then each change of the key set */
};

struct mnodecfg {
	pthread_rwlock_t lock;
	struct mev_ring *ring;
	/* App name -> struct nc_app * (the pointer's bytes as the value). An
	 * mkv gives O(1) lookup, ids that grow and are never reused, and listing
	 * cursors that survive apps coming and going: all an app folder needs. */
	struct mkv *apps;
	struct mkv_account *acct; /* every table is charged to it; may be NULL */
	/* Cluster mode: changes go there (set before the tree is served). */
	const struct mnodecfg_remote *remote;
	void *remote_arg;
};

static struct nc_app *find_app(const struct mnodecfg *nc, const char *app)
{
	struct nc_app *a = NULL;
	if (!app || mkv_read(nc->apps, app, 0, &a, sizeof(a)) != (ssize_t)sizeof(a))
		return NULL;
	return a;
}

static void app_free(struct nc_app *a)
{
	if (!a)
		return;
	mkv_free(a->keys);
	free(a);
}

/* The reason of a refusal for want of room goes to the log: the node
 * config has no status file to show it. */
static int refused(struct mnodecfg *nc, const char *op, const char *app, const char *key, int r)
{
	if (r == -ENOSPC)
		mu_log(MU_LOG_WARNING,
		       "config/%s/%s: %s refused: the node's stores hold %llu of max_memory %llu "
		       "bytes",
		       app, key, op, (unsigned long long)mkv_account_used(nc->acct),
		       (unsigned long long)mkv_account_limit(nc->acct));
	else if (r == -EFBIG)
		mu_log(MU_LOG_WARNING,
		       "config/%s/%s: %s refused: a value may hold at most %llu bytes", app, key,
		       op, (unsigned long long)MKV_MAX_VALUE);
	return r;
}

static void app_touch(struct nc_app *a)
{
	mu_now_real(&a->mtime);
	a->ctime = a->mtime;
}

/* Called with the write lock held, so the feed's order is the order of the
 * changes; listeners never call back into core, so this cannot deadlock. */
static void emit(struct mnodecfg *nc, enum mev_op op, const char *app, const char *key,
                 const char *detail)
{
	if (!nc->ring)
		return;
	char path[MTREE_PATH_MAX];
	/* "config/APP", or with a key "config/APP/KEY". */
	mtree_join(path, sizeof(path), mtree_name(MTREE_CONFIG), app, key, NULL);
	mev_emit(nc->ring, op, path, detail);
}

static void emit_size(struct mnodecfg *nc, const char *app, const char *key, struct mkv *keys)
{
	struct mkv_stat st;
	if (!nc->ring || mkv_stat(keys, key, &st) < 0)
		return;
	char size[24];
	snprintf(size, sizeof(size), "%" PRIu64, st.size);
	emit(nc, MEV_WRITE, app, key, size);
}

struct mnodecfg *mnodecfg_new(struct mev_ring *ring)
{
	struct mnodecfg *nc = calloc(1, sizeof(*nc));
	if (!nc)
		return NULL;
	nc->apps = mkv_new();
	if (!nc->apps)
		goto err_nc;
	if (pthread_rwlock_init(&nc->lock, NULL) != 0)
		goto err_apps;
	nc->ring = ring;
	return nc;

err_apps:
	mkv_free(nc->apps);
err_nc:
	free(nc);
	return NULL;
}

static int account_app_cb(const char *app, const struct mkv_stat *st, void *arg)
{
	struct mnodecfg *nc = arg;
	mkv_set_account(find_app(nc, app)->keys, nc->acct);
	return 0;
}

void mnodecfg_set_account(struct mnodecfg *nc, struct mkv_account *a)
{
	pthread_rwlock_wrlock(&nc->lock);
	nc->acct = a;
	mkv_set_account(nc->apps, a);
	mkv_list(nc->apps, 0, account_app_cb, nc);
	pthread_rwlock_unlock(&nc->lock);
}

static int free_app_cb(const char *app, const struct mkv_stat *st, void *arg)
{
	app_free(find_app(arg, app));
	return 0;
}

void mnodecfg_free(struct mnodecfg *nc)
{
	if (!nc)
		return;
	mkv_list(nc->apps, 0, free_app_cb, nc);
	mkv_free(nc->apps);
	pthread_rwlock_destroy(&nc->lock);
	free(nc);
}

void mnodecfg_set_remote(struct mnodecfg *nc, const struct mnodecfg_remote *ops, void *arg)
{
	pthread_rwlock_wrlock(&nc->lock);
	nc->remote = ops;
	nc->remote_arg = arg;
	pthread_rwlock_unlock(&nc->lock);
}

static int local_app_create(struct mnodecfg *nc, const char *app);

int mnodecfg_app_create(struct mnodecfg *nc, const char *app)
{
	int r = mu_name_check_str(app, MU_NAME_STRICT);
	if (r < 0)
		return r;
	if (nc->remote)
		return nc->remote->app_create(nc->remote_arg, app);
	return local_app_create(nc, app);
}

static int local_app_create(struct mnodecfg *nc, const char *app)
{
	int r;
	struct nc_app *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->keys = mkv_new();
	if (!a->keys) {
		r = -ENOMEM;
		goto err_app;
	}
	app_touch(a);

	pthread_rwlock_wrlock(&nc->lock);
	if (mkv_stat(nc->apps, app, NULL) == 0) {
		r = -EEXIST;
		goto err_unlock;
	}
	mkv_set_account(a->keys, nc->acct);
	ssize_t n = mkv_write(nc->apps, app, 0, &a, sizeof(a), MKV_REPLACE);
	if (n < 0) {
		r = refused(nc, "mkdir", app, "", (int)n);
		goto err_unlock;
	}
	emit(nc, MEV_MKDIR, app, NULL, NULL);
	pthread_rwlock_unlock(&nc->lock);
	return 0;

err_unlock:
	pthread_rwlock_unlock(&nc->lock);
err_app:
	app_free(a);
	return r;
}

static int local_app_destroy(struct mnodecfg *nc, const char *app, bool with_keys);

int mnodecfg_app_destroy(struct mnodecfg *nc, const char *app)
{
	if (nc->remote)
		return nc->remote->app_destroy(nc->remote_arg, app);
	return local_app_destroy(nc, app, false);
}

struct delete_ctx {
	struct mnodecfg *nc;
	const char *app;
	struct nc_app *a;
};

static int delete_key_cb(const char *key, const struct mkv_stat *st, void *arg);

/* with_keys: the keys go first, each with its event (the shared store
 * says the app went; this node had not heard of their removal yet). */
static int local_app_destroy(struct mnodecfg *nc, const char *app, bool with_keys)
{
	int r = 0;
	pthread_rwlock_wrlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	if (!a) {
		r = -ENOENT;
		goto out;
	}
	if (with_keys) {
		struct delete_ctx dc = {nc, app, a};
		mkv_list(a->keys, 0, delete_key_cb, &dc);
	}
	if (mkv_count(a->keys) > 0) {
		r = -ENOTEMPTY;
		goto out;
	}
	mkv_delete(nc->apps, app);
	app_free(a);
	emit(nc, MEV_RMDIR, app, NULL, NULL);
out:
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

static void app_stat(const struct nc_app *a, const struct mkv_stat *index_st, struct mkv_stat *st)
{
	st->id = index_st->id;
	st->cookie = index_st->cookie;
	st->size = mkv_count(a->keys);
	st->mtime = a->mtime;
	st->ctime = a->ctime;
}

struct app_list_ctx {
	struct mnodecfg *nc;
	int (*fn)(const char *app, const struct mkv_stat *st, void *arg);
	void *arg;
};

static int app_list_cb(const char *app, const struct mkv_stat *index_st, void *arg)
{
	struct app_list_ctx *ctx = arg;
	struct nc_app *a = find_app(ctx->nc, app);
	if (!a)
		return 0;
	struct mkv_stat st;
	app_stat(a, index_st, &st);
	return ctx->fn(app, &st, ctx->arg);
}

int mnodecfg_app_list(struct mnodecfg *nc, uint64_t after,
                      int (*fn)(const char *app, const struct mkv_stat *st, void *arg), void *arg)
{
	if (!fn)
		return -EINVAL;
	struct app_list_ctx ctx = {nc, fn, arg};
	pthread_rwlock_rdlock(&nc->lock);
	int r = mkv_list(nc->apps, after, app_list_cb, &ctx);
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

int mnodecfg_app_stat(struct mnodecfg *nc, const char *app, struct mkv_stat *ret)
{
	int r = -ENOENT;
	pthread_rwlock_rdlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	struct mkv_stat index_st;
	if (a && mkv_stat(nc->apps, app, &index_st) == 0) {
		if (ret)
			app_stat(a, &index_st, ret);
		r = 0;
	}
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

int mnodecfg_stat(struct mnodecfg *nc, const char *app, const char *key, struct mkv_stat *ret)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	r = a ? mkv_stat(a->keys, key, ret) : -ENOENT;
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

ssize_t mnodecfg_read(struct mnodecfg *nc, const char *app, const char *key, uint64_t off,
                      void *buf, size_t len)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	ssize_t n = a ? mkv_read(a->keys, key, off, buf, len) : -ENOENT;
	pthread_rwlock_unlock(&nc->lock);
	return n;
}

static ssize_t local_write(struct mnodecfg *nc, const char *app, const char *key, uint64_t off,
                           const void *data, size_t len, unsigned flags);

ssize_t mnodecfg_write(struct mnodecfg *nc, const char *app, const char *key, uint64_t off,
                       const void *data, size_t len, unsigned flags)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r < 0)
		return r;
	if (nc->remote)
		return nc->remote->write(nc->remote_arg, app, key, off, data, len, flags);
	return local_write(nc, app, key, off, data, len, flags);
}

static ssize_t local_write(struct mnodecfg *nc, const char *app, const char *key, uint64_t off,
                           const void *data, size_t len, unsigned flags)
{
	pthread_rwlock_wrlock(&nc->lock);
	ssize_t n = -ENOENT;
	struct nc_app *a = find_app(nc, app);
	if (!a)
		goto out;
	bool existed = mkv_stat(a->keys, key, NULL) == 0;
	n = mkv_write(a->keys, key, off, data, len, flags);
	if (n < 0) {
		n = refused(nc, "write", app, key, (int)n);
		goto out;
	}
	if (!existed) {
		app_touch(a);
		emit(nc, MEV_CREATE, app, key, NULL);
	}
	/* mkv_write changes nothing for an empty write that does not replace. */
	if (len > 0 || (flags & MKV_REPLACE))
		emit_size(nc, app, key, a->keys);
out:
	pthread_rwlock_unlock(&nc->lock);
	return n;
}

int mnodecfg_create(struct mnodecfg *nc, const char *app, const char *key)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r < 0)
		return r;
	if (nc->remote)
		return nc->remote->create(nc->remote_arg, app, key);
	pthread_rwlock_wrlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	r = a ? refused(nc, "create", app, key, mkv_create(a->keys, key)) : -ENOENT;
	if (r == 0) {
		app_touch(a);
		emit(nc, MEV_CREATE, app, key, NULL);
	}
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

int mnodecfg_truncate(struct mnodecfg *nc, const char *app, const char *key, uint64_t size)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r < 0)
		return r;
	if (nc->remote)
		return nc->remote->truncate(nc->remote_arg, app, key, size);
	pthread_rwlock_wrlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	r = a ? refused(nc, "truncate", app, key, mkv_truncate(a->keys, key, size)) : -ENOENT;
	if (r == 0)
		emit_size(nc, app, key, a->keys);
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

int mnodecfg_set_mtime(struct mnodecfg *nc, const char *app, const char *key,
                       const struct timespec *mtime)
{
	pthread_rwlock_wrlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	int r = a ? mkv_set_mtime(a->keys, key, mtime) : -ENOENT;
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

static int local_delete(struct mnodecfg *nc, const char *app, const char *key);

int mnodecfg_delete(struct mnodecfg *nc, const char *app, const char *key)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r < 0)
		return r;
	if (nc->remote)
		return nc->remote->remove(nc->remote_arg, app, key);
	return local_delete(nc, app, key);
}

/* The write lock is held. */
static int delete_locked(struct mnodecfg *nc, const char *app, struct nc_app *a, const char *key)
{
	int r = mkv_delete(a->keys, key);
	if (r == 0) {
		app_touch(a);
		emit(nc, MEV_DELETE, app, key, NULL);
	}
	return r;
}

static int local_delete(struct mnodecfg *nc, const char *app, const char *key)
{
	pthread_rwlock_wrlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	int r = a ? delete_locked(nc, app, a, key) : -ENOENT;
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

/* Deleting the entry a listing stands on is allowed (mkv_list); key is
 * that entry's name, freed with it: its event is made from a copy. */
static int delete_key_cb(const char *key, const struct mkv_stat *st, void *arg)
{
	struct delete_ctx *dc = arg;
	char *copy = strdup(key);
	if (copy)
		delete_locked(dc->nc, dc->app, dc->a, copy);
	free(copy);
	return 0;
}

static int local_rename(struct mnodecfg *nc, const char *app, const char *key, const char *to_app,
                        const char *to_key);

int mnodecfg_rename(struct mnodecfg *nc, const char *app, const char *key, const char *to_app,
                    const char *to_key)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r == 0)
		r = mu_name_check_str(to_key, MU_NAME_FILE);
	if (r < 0)
		return r;
	if (nc->remote)
		return nc->remote->rename(nc->remote_arg, app, key, to_app, to_key);
	return local_rename(nc, app, key, to_app, to_key);
}

static int local_rename(struct mnodecfg *nc, const char *app, const char *key, const char *to_app,
                        const char *to_key)
{
	int r = 0;
	pthread_rwlock_wrlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	struct nc_app *to = find_app(nc, to_app);
	if (!a || !to) {
		r = -ENOENT;
		goto out;
	}
	if (mkv_stat(a->keys, key, NULL) < 0) {
		r = -ENOENT;
		goto out;
	}
	if (a == to && strcmp(key, to_key) == 0)
		goto out;
	r = refused(nc, "rename", app, key, mkv_move(a->keys, key, to->keys, to_key));
	if (r < 0)
		goto out;
	app_touch(a);
	if (to != a)
		app_touch(to);
	if (nc->ring) {
		char dest[MTREE_PATH_MAX];
		mtree_join(dest, sizeof(dest), mtree_name(MTREE_CONFIG), to_app, to_key, NULL);
		emit(nc, MEV_RENAME, app, key, dest);
	}
out:
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

/* fn runs under the read lock: it must not call back into this store. */
int mnodecfg_list(struct mnodecfg *nc, const char *app, uint64_t after,
                  int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg)
{
	if (!fn)
		return -EINVAL;
	pthread_rwlock_rdlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	int r = a ? mkv_list(a->keys, after, fn, arg) : -ENOENT;
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

int mnodecfg_get(struct mnodecfg *nc, const char *app, const char *key, char **ret, size_t *ret_len)
{
	int r = mu_name_check_str(key, MU_NAME_FILE);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&nc->lock);
	struct nc_app *a = find_app(nc, app);
	r = a ? mkv_get(a->keys, key, ret, ret_len) : -ENOENT;
	pthread_rwlock_unlock(&nc->lock);
	return r;
}

int mnodecfg_apply_app(struct mnodecfg *nc, const char *app, bool present)
{
	if (!present)
		return local_app_destroy(nc, app, true);
	int r = local_app_create(nc, app);
	return r == -EEXIST ? 0 : r;
}

int mnodecfg_apply_put(struct mnodecfg *nc, const char *app, const char *key, const void *value,
                       size_t len)
{
	ssize_t n = local_write(nc, app, key, 0, value, len, MKV_REPLACE);
	return n < 0 ? (int)n : 0;
}

int mnodecfg_apply_delete(struct mnodecfg *nc, const char *app, const char *key)
{
	return local_delete(nc, app, key);
}

int mnodecfg_apply_rename(struct mnodecfg *nc, const char *app, const char *key, const char *to_app,
                          const char *to_key)
{
	return local_rename(nc, app, key, to_app, to_key);
}
