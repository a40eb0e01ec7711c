/* SPDX-License-Identifier: MIT */
/* config/ through etcd: the config store's remote (nodecfg.h). Each change
 * is computed from the mirror (the value and the mod revision it holds,
 * read together under cl->lock), committed by one transaction that
 * compares that revision, and made here at once by the writer (so it reads
 * its own write, and its watchers' events are the request's own). A
 * transaction that lost a race waits for the mirror to catch up with the
 * revision etcd answered and computes again: `>>` from two nodes at once
 * appends both, a key written into an app another node removes either
 * lands first (then rmdir is ENOTEMPTY) or is ENOENT.
 *
 * In etcd: PREFIX/config/a/APP ({"node":NODE}) and PREFIX/config/k/APP/KEY
 * ("NODE\n" then the value's bytes: NODE wrote it last). */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"
#include "events.h"
#include "kv.h"
#include "nodecfg.h"
#include "util.h"

/* etcd refuses a request over 1.5 MiB (--max-request-bytes): the value,
 * its key and the transaction around it. */
#define VALUE_MAX ((size_t)1536 * 1024 - 8192)
/* Rounds of compute and compare before giving up (EAGAIN). */
#define TRIES 64

struct keys {
	char app[MCL_KEY_MAX], key[MCL_KEY_MAX];
	size_t app_len, key_len;
};

static int make_keys(struct mcl *cl, const char *app, const char *key, struct keys *k)
{
	char part[MCL_KEY_MAX];
	if ((size_t)snprintf(part, sizeof(part), "%s/%s", app, key ? key : "") >= sizeof(part))
		return -ENAMETOOLONG;
	k->app_len = mcl_key(cl, k->app, sizeof(k->app), "config/a", app, NULL);
	k->key_len = key ? mcl_key(cl, k->key, sizeof(k->key), "config/k", app, key) : 1;
	return k->app_len && k->key_len ? 0 : -ENAMETOOLONG;
}

/* What a change is computed from, read together under cl->lock. */
struct seen {
	bool app;     /* the app is here */
	int64_t arev; /* its mod revision */
	bool has;     /* the key is here */
	int64_t rev;  /* its mod revision */
	char *value;  /* its value (malloc'd) */
	size_t len;
};

static void look(struct mcl *cl, const char *app, const char *key, const struct keys *k,
                 struct seen *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&cl->lock);
	s->arev = mcl_rev_get(cl, k->app, k->app_len);
	s->app = mnodecfg_app_stat(cl->nc, app, NULL) == 0;
	if (key) {
		s->rev = mcl_rev_get(cl, k->key, k->key_len);
		s->has = mnodecfg_get(cl->nc, app, key, &s->value, &s->len) == 0;
	}
	pthread_mutex_unlock(&cl->lock);
}

/* "NODE\n" and the value: what etcd holds of a key. */
static char *wire_value(struct mcl *cl, const char *v, size_t len, size_t *ret_len)
{
	size_t nlen = strlen(cl->node);
	char *w = malloc(nlen + 1 + len + 1);
	if (!w)
		return NULL;
	memcpy(w, cl->node, nlen);
	w[nlen] = '\n';
	if (len)
		memcpy(w + nlen + 1, v, len);
	*ret_len = nlen + 1 + len;
	return w;
}

/* The compares every key change carries: the app is there as seen, the
 * key as seen (absent: never made since). */
static size_t compares(const struct keys *k, const struct seen *s, struct metcd_cmp *c)
{
	c[0] = (struct metcd_cmp){.key = k->app,
	                          .key_len = k->app_len,
	                          .target = METCD_MOD,
	                          .result = METCD_EQUAL,
	                          .number = s->arev};
	c[1] = (struct metcd_cmp){.key = k->key,
	                          .key_len = k->key_len,
	                          .target = s->has ? METCD_MOD : METCD_CREATE,
	                          .result = METCD_EQUAL,
	                          .number = s->has ? s->rev : 0};
	return 2;
}

/* The new value of a key from what was seen: one of the operations. */
struct change {
	char op; /* 'w' write, 'c' create, 't' truncate, 'd' delete */
	uint64_t off, size;
	const void *data;
	size_t len;
	unsigned flags;
};

static int compute(const struct change *ch, const struct seen *s, char **ret, size_t *ret_len)
{
	uint64_t end;
	*ret = NULL;
	*ret_len = 0;
	switch (ch->op) {
	case 'c':
		return s->has ? -EEXIST : 0;
	case 'd':
		return s->has ? 0 : -ENOENT;
	case 't':
		if (!s->has)
			return -ENOENT;
		end = ch->size;
		break;
	default: /* 'w' */
		if (ch->flags & MKV_REPLACE)
			end = ch->off + ch->len;
		else if (ch->flags & MKV_APPEND)
			end = (s->has ? s->len : 0) + ch->len;
		else
			end = (s->has && s->len > ch->off + ch->len ? s->len : ch->off + ch->len);
		break;
	}
	if (end > VALUE_MAX)
		return -EFBIG;
	char *v = calloc(1, end + 1);
	if (!v)
		return -ENOMEM;
	if (s->has && !(ch->op == 'w' && (ch->flags & MKV_REPLACE)))
		memcpy(v, s->value, s->len < end ? s->len : end);
	if (ch->op == 'w') {
		uint64_t at = ch->flags & MKV_APPEND ? (s->has ? s->len : 0) : ch->off;
		if (ch->len)
			memcpy(v + at, ch->data, ch->len);
	}
	*ret = v;
	*ret_len = end;
	return 0;
}

/* How own_txn makes this node's committed change here (lock held), at
 * the revision etcd gave it. */
typedef void apply_fn(struct mcl *cl, const void *arg, int64_t rev);

/* A key's new value (value NULL: the key went). */
struct direct {
	const struct keys *k;
	const char *app, *key;
	const char *value;
	size_t len;
};

static void apply_key(struct mcl *cl, const void *arg, int64_t rev)
{
	const struct direct *d = arg;
	if (!mcl_rev_take(cl, d->k->key, d->k->key_len, rev, !d->value, true))
		return;
	if (d->value)
		mnodecfg_apply_put(cl->nc, d->app, d->key, d->value, d->len);
	else
		mnodecfg_apply_delete(cl->nc, d->app, d->key);
}

/* ---- this node's writers at work ---- */

bool mcl_cfg_pending(struct mcl *cl, const char *key)
{
	return mkv_stat(cl->pending, key, NULL) == 0;
}

/* Counts a writer in (delta 1) or out (-1) of each key (lock held). */
static void pending(struct mcl *cl, const char *const *keys, size_t n, int delta)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t c = 0;
		mkv_read(cl->pending, keys[i], 0, &c, sizeof(c));
		c = (uint32_t)((int64_t)c + delta);
		if (c)
			mkv_write(cl->pending, keys[i], 0, &c, sizeof(c), MKV_REPLACE);
		else
			mkv_delete(cl->pending, keys[i]);
	}
}

/* A transaction of this node's writer on keys. They are marked pending
 * across it, so that the watcher leaves the change to the writer: when it
 * succeeds, apply makes it here at once (the writer reads it back, and its
 * watchers' events are the request's own: the notifier does not replay
 * them; the watch's copy is then skipped). 1: made; 0: it lost a race, and
 * the mirror has caught up with what won (compute it again); -errno. A
 * transaction whose outcome is unknown (ETIMEDOUT) makes the watcher list
 * again: whatever etcd did is then applied from the listing. */
static int own_txn(struct mcl *cl, const char *const *keys, size_t nkeys,
                   const struct metcd_cmp *cmp, size_t ncmp, const struct metcd_op *ops,
                   size_t nops, apply_fn *apply, const void *arg)
{
	struct metcd_txn_result tr;
	pthread_mutex_lock(&cl->lock);
	pending(cl, keys, nkeys, 1);
	pthread_mutex_unlock(&cl->lock);
	int r = mcl_txn(cl, cmp, ncmp, ops, nops, NULL, 0, &tr);
	bool ok = r == 0 && tr.succeeded;
	int64_t rev = r == 0 ? tr.revision : 0;
	if (r == 0)
		metcd_txn_result_free(&tr);
	pthread_mutex_lock(&cl->lock);
	if (ok)
		apply(cl, arg, rev);
	pending(cl, keys, nkeys, -1);
	pthread_mutex_unlock(&cl->lock);
	if (r == -ETIMEDOUT)
		mcl_watch_restart(cl);
	if (r < 0)
		return r;
	if (!ok)
		mcl_mirror_wait(cl, rev, cl->timeout_ms);
	return ok;
}

static void log_refusal(struct mcl *cl, const char *app, const char *key, const char *what, int r)
{
	if (r == -EFBIG)
		mu_log(MU_LOG_WARNING,
		       "config/%s/%s: %s refused: in cluster mode a value holds at most %zu bytes "
		       "(etcd's request limit)",
		       app, key, what, VALUE_MAX);
	else if (r != -ENOENT && r != -EEXIST)
		mcl_note_error(cl, what, r);
}

/* One key's change, computed, compared, committed, settled. */
static int key_change(struct mcl *cl, const char *app, const char *key, const struct change *ch)
{
	struct keys k;
	int r = make_keys(cl, app, key, &k);
	if (r < 0)
		return r;
	for (int tries = 0; tries < TRIES; tries++) {
		struct seen s;
		char *v = NULL, *wire = NULL;
		size_t len = 0, wire_len = 0;
		look(cl, app, key, &k, &s);
		r = s.app ? compute(ch, &s, &v, &len) : -ENOENT;
		if (r == 0 && ch->op != 'd' && !(wire = wire_value(cl, v, len, &wire_len)))
			r = -ENOMEM;
		if (r < 0) {
			free(s.value);
			free(v);
			log_refusal(cl, app, key, "write", r);
			return r;
		}
		struct metcd_cmp cmp[2];
		size_t ncmp = compares(&k, &s, cmp);
		struct metcd_op op = {.kind = ch->op == 'd' ? METCD_DELETE : METCD_PUT,
		                      .key = k.key,
		                      .key_len = k.key_len,
		                      .value = wire,
		                      .value_len = wire_len};
		const char *keys[] = {k.key};
		struct direct d = {&k, app, key, ch->op == 'd' ? NULL : (v ? v : ""), len};
		r = own_txn(cl, keys, 1, cmp, ncmp, &op, 1, apply_key, &d);
		free(s.value);
		free(wire);
		free(v);
		if (r < 0)
			log_refusal(cl, app, key, "write", r);
		if (r != 0)
			return r < 0 ? r : 0;
		/* Lost a race: computed again from what won. */
	}
	mu_log(MU_LOG_WARNING, "config/%s/%s: gave up after %d rounds of changes by other nodes",
	       app, key, TRIES);
	return -EAGAIN;
}

static ssize_t r_write(void *arg, const char *app, const char *key, uint64_t off, const void *data,
                       size_t len, unsigned flags)
{
	struct change ch = {.op = 'w', .off = off, .data = data, .len = len, .flags = flags};
	int r = key_change(arg, app, key, &ch);
	return r < 0 ? r : (ssize_t)len;
}

static int r_create(void *arg, const char *app, const char *key)
{
	struct change ch = {.op = 'c'};
	return key_change(arg, app, key, &ch);
}

static int r_truncate(void *arg, const char *app, const char *key, uint64_t size)
{
	struct change ch = {.op = 't', .size = size};
	return key_change(arg, app, key, &ch);
}

static int r_remove(void *arg, const char *app, const char *key)
{
	struct change ch = {.op = 'd'};
	return key_change(arg, app, key, &ch);
}

static char *app_value(struct mcl *cl)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "node", json_object_new_string(cl->node));
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* An app made (present) or removed. */
struct app_change {
	const struct keys *k;
	const char *app;
	bool present;
};

static void apply_app(struct mcl *cl, const void *arg, int64_t rev)
{
	const struct app_change *a = arg;
	if (mcl_rev_take(cl, a->k->app, a->k->app_len, rev, !a->present, true))
		mnodecfg_apply_app(cl->nc, a->app, a->present);
}

static int r_app_create(void *arg, const char *app)
{
	struct mcl *cl = arg;
	struct keys k;
	int r = make_keys(cl, app, NULL, &k);
	char *val = r == 0 ? app_value(cl) : NULL;
	if (r == 0 && !val)
		r = -ENOMEM;
	for (int tries = 0; r == 0 && tries < TRIES; tries++) {
		struct seen s;
		look(cl, app, NULL, &k, &s);
		if (s.app) {
			r = -EEXIST;
			break;
		}
		struct metcd_cmp cmp = {.key = k.app,
		                        .key_len = k.app_len,
		                        .target = METCD_CREATE,
		                        .result = METCD_EQUAL,
		                        .number = 0};
		struct metcd_op op = {.kind = METCD_PUT,
		                      .key = k.app,
		                      .key_len = k.app_len,
		                      .value = val,
		                      .value_len = strlen(val)};
		const char *keys[] = {k.app};
		struct app_change a = {&k, app, true};
		r = own_txn(cl, keys, 1, &cmp, 1, &op, 1, apply_app, &a);
		if (r < 0)
			break;
		if (r == 1) {
			free(val);
			return 0;
		}
	}
	free(val);
	if (r < 0)
		log_refusal(cl, app, "", "mkdir", r);
	return r == 0 ? -EAGAIN : r;
}

static int r_app_destroy(void *arg, const char *app)
{
	struct mcl *cl = arg;
	struct keys k;
	char end[MCL_KEY_MAX], keys[MCL_KEY_MAX];
	int r = make_keys(cl, app, NULL, &k);
	if (r < 0)
		return r;
	size_t keys_len = mcl_key(cl, keys, sizeof(keys), "config/k", app, "");
	size_t end_len = metcd_prefix_end(keys, keys_len, end);
	for (int tries = 0; tries < TRIES; tries++) {
		struct seen s;
		struct mkv_stat st;
		look(cl, app, NULL, &k, &s);
		if (!s.app)
			return -ENOENT;
		if (mnodecfg_app_stat(cl->nc, app, &st) == 0 && st.size > 0)
			return -ENOTEMPTY;
		/* No key under the app, on any node: etcd checks the range. */
		struct metcd_cmp cmp[2] = {{.key = k.app,
		                            .key_len = k.app_len,
		                            .target = METCD_MOD,
		                            .result = METCD_EQUAL,
		                            .number = s.arev},
		                           {.key = keys,
		                            .key_len = keys_len,
		                            .range_end = end,
		                            .range_end_len = end_len,
		                            .target = METCD_CREATE,
		                            .result = METCD_LESS,
		                            .number = 1}};
		struct metcd_op op = {.kind = METCD_DELETE, .key = k.app, .key_len = k.app_len};
		const char *pkeys[] = {k.app};
		struct app_change a = {&k, app, false};
		r = own_txn(cl, pkeys, 1, cmp, 2, &op, 1, apply_app, &a);
		if (r < 0)
			log_refusal(cl, app, "", "rmdir", r);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	return -EAGAIN;
}

struct key_move {
	const struct keys *k, *t;
	const char *app, *key, *to_app, *to_key;
};

static void apply_move(struct mcl *cl, const void *arg, int64_t rev)
{
	const struct key_move *rn = arg;
	if (mcl_rev_take(cl, rn->t->key, rn->t->key_len, rev, false, true) &&
	    mcl_rev_take(cl, rn->k->key, rn->k->key_len, rev, true, true))
		mnodecfg_apply_rename(cl->nc, rn->app, rn->key, rn->to_app, rn->to_key);
}

/* A rename: the target takes the source's value and the source goes, in
 * one transaction that compares both and both apps. */
static int r_rename(void *arg, const char *app, const char *key, const char *to_app,
                    const char *to_key)
{
	struct mcl *cl = arg;
	struct keys k, t;
	int r = make_keys(cl, app, key, &k);
	if (r == 0)
		r = make_keys(cl, to_app, to_key, &t);
	if (r < 0)
		return r;
	if (strcmp(app, to_app) == 0 && strcmp(key, to_key) == 0) {
		struct seen s;
		look(cl, app, key, &k, &s);
		free(s.value);
		return s.has ? 0 : -ENOENT;
	}
	for (int tries = 0; tries < TRIES; tries++) {
		struct seen s, d;
		look(cl, app, key, &k, &s);
		look(cl, to_app, to_key, &t, &d);
		if (!s.app || !d.app || !s.has) {
			free(s.value);
			free(d.value);
			return -ENOENT;
		}
		size_t wire_len;
		char *wire = wire_value(cl, s.value, s.len, &wire_len);
		if (!wire) {
			free(s.value);
			free(d.value);
			return -ENOMEM;
		}
		/* Both apps and both keys as seen; one app compared once. */
		struct metcd_cmp cmp[4];
		size_t ncmp = compares(&k, &s, cmp);
		ncmp += compares(&t, &d, cmp + ncmp);
		if (strcmp(app, to_app) == 0)
			cmp[2] = cmp[3], ncmp--;
		struct metcd_op ops[2] = {
		        {.kind = METCD_PUT,
		         .key = t.key,
		         .key_len = t.key_len,
		         .value = wire,
		         .value_len = wire_len},
		        {.kind = METCD_DELETE, .key = k.key, .key_len = k.key_len}};
		const char *keys[] = {t.key, k.key};
		struct key_move rn = {&k, &t, app, key, to_app, to_key};
		r = own_txn(cl, keys, 2, cmp, ncmp, ops, 2, apply_move, &rn);
		free(d.value);
		free(wire);
		free(s.value);
		if (r < 0)
			log_refusal(cl, app, key, "rename", r);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	return -EAGAIN;
}

static const struct mnodecfg_remote remote = {
        .app_create = r_app_create,
        .app_destroy = r_app_destroy,
        .write = r_write,
        .create = r_create,
        .truncate = r_truncate,
        .remove = r_remove,
        .rename = r_rename,
};

void mcl_cfg_attach(struct mcl *cl)
{
	mnodecfg_set_remote(cl->nc, &remote, cl);
}

void mcl_cfg_detach(struct mcl *cl)
{
	mnodecfg_set_remote(cl->nc, NULL, NULL);
}

/* ---- the watcher's side ---- */

/* "APP" or "APP/KEY" of sub (after "a/" or "k/") into app and key. */
static bool split(const char *sub, size_t len, char *app, char *key, size_t size)
{
	const char *slash = memchr(sub, '/', len);
	size_t alen = slash ? (size_t)(slash - sub) : len;
	if (alen == 0 || alen >= size)
		return false;
	memcpy(app, sub, alen);
	app[alen] = '\0';
	if (!key)
		return !slash && mu_name_check_str(app, MU_NAME_STRICT) == 0;
	if (!slash || len - alen - 1 == 0 || len - alen - 1 >= size)
		return false;
	memcpy(key, slash + 1, len - alen - 1);
	key[len - alen - 1] = '\0';
	return mu_name_check_str(app, MU_NAME_STRICT) == 0 &&
	       mu_name_check_str(key, MU_NAME_FILE) == 0;
}

void mcl_cfg_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                   bool gone, const char *origin)
{
	char app[MU_NAME_MAX + 1], key[MU_NAME_MAX + 1], writer[MCL_NODE_MAX + 1];
	if (sub_len < 3 || sub[1] != '/')
		return;
	bool is_app = sub[0] == 'a';
	if ((!is_app && sub[0] != 'k') ||
	    !split(sub + 2, sub_len - 2, app, is_app ? NULL : key, sizeof(app)))
		return;
	const char *value = NULL;
	size_t len = 0;
	if (!gone && !is_app && kv->value) {
		/* "NODE\n" and the bytes. */
		const char *nl = memchr(kv->value, '\n', kv->value_len);
		if (!nl || (size_t)(nl - kv->value) > MCL_NODE_MAX)
			return;
		memcpy(writer, kv->value, (size_t)(nl - kv->value));
		writer[nl - kv->value] = '\0';
		if (!origin)
			origin = writer;
		value = nl + 1;
		len = kv->value_len - (size_t)(nl - kv->value) - 1;
	}
	mev_set_origin(origin && strcmp(origin, cl->node) != 0 ? origin : NULL);
	int r = 0;
	if (is_app)
		r = mnodecfg_apply_app(cl->nc, app, !gone);
	else if (gone)
		r = mnodecfg_apply_delete(cl->nc, app, key);
	else if ((r = mnodecfg_apply_put(cl->nc, app, key, value, len)) == -ENOENT &&
	         mnodecfg_apply_app(cl->nc, app, true) == 0)
		r = mnodecfg_apply_put(cl->nc, app, key, value, len);
	mev_set_origin(NULL);
	if (r < 0 && r != -ENOENT)
		mu_log(MU_LOG_WARNING, "cluster: config/%s%s%s from etcd not applied here: %s", app,
		       is_app ? "" : "/", is_app ? "" : key, strerror(-r));
}
