/* SPDX-License-Identifier: MIT */
/* registry/ through etcd: the registry's remote (registry.h). This node's
 * names and members are written by one transaction each, attached to the
 * node's lease, before the registry makes them here; a process that exits
 * has its entries deleted in one transaction by the worker (compared
 * against the revision each was written at, so that nothing another of
 * this node's processes wrote since goes). Other nodes' entries come from
 * the watcher (mreg_mirror_*); this node's own keys seen by the watcher
 * are skipped: the registry here is their authority. Pools are shared:
 * any node makes or removes one, the watcher applies them all.
 *
 * In etcd: PREFIX/registry/n/NAME, PREFIX/registry/p/POOL and
 * PREFIX/registry/m/POOL/PID@NODE, JSON: {"node","pid","start","uid",
 * "value"} (a pool: {"node","uid"}). */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"
#include "events.h"
#include "kv.h"
#include "registry.h"
#include "util.h"

/* The etcd key of an entry: 'n' n/NAME, 'p' p/POOL, 'm' m/POOL/PID@NODE. */
static size_t entry_key(struct mcl *cl, char kind, const char *name, pid_t pid, const char *node,
                        char *buf, size_t len)
{
	char member[MCL_NODE_MAX + 32];
	switch (kind) {
	case 'n':
		return mcl_key(cl, buf, len, "registry/n", name, NULL);
	case 'p':
		return mcl_key(cl, buf, len, "registry/p", name, NULL);
	default:
		snprintf(member, sizeof(member), "%d@%s", (int)pid, node);
		return mcl_key(cl, buf, len, "registry/m", name, member);
	}
}

static char *entry_value(struct mcl *cl, const struct mreg_saved *s)
{
	json_object *o = json_object_new_object();
	char num[32];
	if (!o)
		return NULL;
	json_object_object_add(o, "node", json_object_new_string(cl->node));
	json_object_object_add(o, "uid", json_object_new_int64((int64_t)s->uid));
	if (s->kind != 'p') {
		json_object_object_add(o, "pid", json_object_new_int64(s->pid));
		snprintf(num, sizeof(num), "%" PRIu64, s->starttime);
		json_object_object_add(o, "start", json_object_new_string(num));
		if (s->value)
			json_object_object_add(o, "value", json_object_new_string(s->value));
	}
	char *v = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return v;
}

static void own_record(struct mcl *cl, const char *key, const struct mreg_saved *s, int64_t rev)
{
	struct mcl_own own = {.pid = s->pid, .starttime = s->starttime, .rev = rev};
	pthread_mutex_lock(&cl->lock);
	mkv_write(cl->own, key, 0, &own, sizeof(own), MKV_REPLACE);
	pthread_mutex_unlock(&cl->lock);
}

static int64_t own_forget(struct mcl *cl, const char *key)
{
	struct mcl_own own = {0};
	pthread_mutex_lock(&cl->lock);
	if (mkv_read(cl->own, key, 0, &own, sizeof(own)) != (ssize_t)sizeof(own))
		own.rev = 0;
	mkv_delete(cl->own, key);
	pthread_mutex_unlock(&cl->lock);
	return own.rev;
}

static void txn_failed(struct mcl *cl, const char *what, const char *name, int r)
{
	char w[600];
	snprintf(w, sizeof(w), "registry/%s: %s", name, what);
	mcl_note_error(cl, w, r);
}

/* A name: free (no name, no pool of that name) or this node's already. */
static int hold_name(struct mcl *cl, const struct mreg_saved *s, const char *key, size_t klen,
                     const char *val)
{
	char pkey[MCL_KEY_MAX];
	size_t plen = entry_key(cl, 'p', s->name, 0, NULL, pkey, sizeof(pkey));
	int64_t lease = atomic_load(&cl->lease);
	struct metcd_cmp cmp[2] = {
	        {.key = key, .key_len = klen, .target = METCD_CREATE, .result = METCD_EQUAL},
	        {.key = pkey, .key_len = plen, .target = METCD_CREATE, .result = METCD_EQUAL}};
	struct metcd_op put = {.kind = METCD_PUT,
	                       .key = key,
	                       .key_len = klen,
	                       .value = val,
	                       .value_len = strlen(val),
	                       .lease = lease};
	struct metcd_op gets[2] = {{.kind = METCD_GET, .key = key, .key_len = klen},
	                           {.kind = METCD_GET, .key = pkey, .key_len = plen}};
	for (int tries = 0; tries < 8; tries++) {
		struct metcd_txn_result tr;
		int r = mcl_txn(cl, cmp, 2, &put, 1, gets, 2, &tr);
		if (r < 0) {
			txn_failed(cl, "register", s->name, r);
			return r;
		}
		if (tr.succeeded) {
			own_record(cl, key, s, tr.revision);
			metcd_txn_result_free(&tr);
			return 0;
		}
		bool pool = tr.n_gets > 1 && tr.gets[1].n > 0;
		bool mine = tr.n_gets > 0 && tr.gets[0].n > 0 && tr.gets[0].kvs[0].lease == lease;
		int64_t rev = mine ? tr.gets[0].kvs[0].mod_revision : 0;
		metcd_txn_result_free(&tr);
		if (pool || !mine)
			return -EEXIST;
		/* This node's (the same process again, or one that exited and
		 * whose deletion is still queued): replaced as it was seen. */
		cmp[0] = (struct metcd_cmp){.key = key,
		                            .key_len = klen,
		                            .target = METCD_MOD,
		                            .result = METCD_EQUAL,
		                            .number = rev};
	}
	return -EAGAIN;
}

static int hold_other(struct mcl *cl, const struct mreg_saved *s, const char *key, size_t klen,
                      const char *val)
{
	char pkey[MCL_KEY_MAX], nkey[MCL_KEY_MAX];
	size_t plen = entry_key(cl, 'p', s->name, 0, NULL, pkey, sizeof(pkey));
	size_t nlen = entry_key(cl, 'n', s->name, 0, NULL, nkey, sizeof(nkey));
	struct metcd_cmp cmp[2];
	size_t ncmp;
	struct metcd_op put = {.kind = METCD_PUT,
	                       .key = key,
	                       .key_len = klen,
	                       .value = val,
	                       .value_len = strlen(val)};
	if (s->kind == 'p') {
		/* A pool: neither a pool nor a name of that name anywhere. */
		cmp[0] = (struct metcd_cmp){.key = pkey,
		                            .key_len = plen,
		                            .target = METCD_CREATE,
		                            .result = METCD_EQUAL};
		cmp[1] = (struct metcd_cmp){.key = nkey,
		                            .key_len = nlen,
		                            .target = METCD_CREATE,
		                            .result = METCD_EQUAL};
		ncmp = 2;
	} else {
		/* A member: its pool is there. */
		cmp[0] = (struct metcd_cmp){.key = pkey,
		                            .key_len = plen,
		                            .target = METCD_CREATE,
		                            .result = METCD_GREATER,
		                            .number = 0};
		ncmp = 1;
		put.lease = atomic_load(&cl->lease);
	}
	struct metcd_txn_result tr;
	int r = mcl_txn(cl, cmp, ncmp, &put, 1, NULL, 0, &tr);
	if (r < 0) {
		txn_failed(cl, s->kind == 'p' ? "mkdir" : "register", s->name, r);
		return r;
	}
	bool ok = tr.succeeded;
	int64_t rev = tr.revision;
	metcd_txn_result_free(&tr);
	if (!ok)
		return s->kind == 'p' ? -EEXIST : -ENOENT;
	/* A pool is made here by the registry itself once this returns (the
	 * watcher may be first: the registry takes that as done). */
	if (s->kind == 'm')
		own_record(cl, key, s, rev);
	return 0;
}

static int r_hold(void *arg, const struct mreg_saved *s)
{
	struct mcl *cl = arg;
	char key[MCL_KEY_MAX];
	size_t klen = entry_key(cl, s->kind, s->name, s->pid, cl->node, key, sizeof(key));
	char *val = entry_value(cl, s);
	if (!klen || !val) {
		free(val);
		return klen ? -ENOMEM : -ENAMETOOLONG;
	}
	int r = s->kind == 'n' ? hold_name(cl, s, key, klen, val)
	                       : hold_other(cl, s, key, klen, val);
	free(val);
	return r;
}

static int r_release(void *arg, const struct mreg_saved *s)
{
	struct mcl *cl = arg;
	char key[MCL_KEY_MAX], end[MCL_KEY_MAX], members[MCL_KEY_MAX];
	size_t klen = entry_key(cl, s->kind, s->name, s->pid, cl->node, key, sizeof(key));
	struct metcd_txn_result tr;
	struct metcd_op del = {.kind = METCD_DELETE, .key = key, .key_len = klen};
	int r;
	if (!klen)
		return -ENAMETOOLONG;
	if (s->kind == 'p') {
		/* No member on any node. */
		size_t mlen = mcl_key(cl, members, sizeof(members), "registry/m", s->name, "");
		size_t elen = metcd_prefix_end(members, mlen, end);
		struct metcd_cmp cmp[2] = {{.key = key,
		                            .key_len = klen,
		                            .target = METCD_CREATE,
		                            .result = METCD_GREATER},
		                           {.key = members,
		                            .key_len = mlen,
		                            .range_end = end,
		                            .range_end_len = elen,
		                            .target = METCD_CREATE,
		                            .result = METCD_LESS,
		                            .number = 1}};
		struct metcd_op get = {.kind = METCD_GET, .key = key, .key_len = klen};
		r = mcl_txn(cl, cmp, 2, &del, 1, &get, 1, &tr);
		if (r < 0) {
			txn_failed(cl, "rmdir", s->name, r);
			return r;
		}
		bool ok = tr.succeeded, there = tr.n_gets && tr.gets[0].n;
		metcd_txn_result_free(&tr);
		return ok ? 0 : there ? -ENOTEMPTY : -ENOENT;
	}
	/* This node's entry, as it wrote it last. */
	int64_t rev = own_forget(cl, key);
	struct metcd_cmp cmp = {.key = key,
	                        .key_len = klen,
	                        .target = METCD_MOD,
	                        .result = METCD_EQUAL,
	                        .number = rev};
	if (!rev)
		return 0; /* not in etcd (a lease that expired): nothing to do there */
	r = mcl_txn(cl, &cmp, 1, &del, 1, NULL, 0, &tr);
	if (r < 0) {
		txn_failed(cl, "unregister", s->name, r);
		return r;
	}
	metcd_txn_result_free(&tr);
	return 0;
}

static void r_exited(void *arg, pid_t pid, uint64_t starttime)
{
	mcl_queue(arg, 'x', pid, starttime, NULL);
}

struct gather {
	pid_t pid;
	uint64_t starttime;
	char **keys;
	int64_t *revs;
	size_t n, cap;
};

static int gather_cb(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                     void *arg)
{
	struct gather *g = arg;
	struct mcl_own own;
	if (len != sizeof(own))
		return 0;
	memcpy(&own, value, sizeof(own));
	if (own.pid != g->pid || own.starttime != g->starttime)
		return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 8;
		char **k = realloc(g->keys, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		g->keys = k;
		int64_t *r = realloc(g->revs, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		g->revs = r;
		g->cap = cap;
	}
	if (!(g->keys[g->n] = strdup(key)))
		return -ENOMEM;
	g->revs[g->n++] = own.rev;
	return 0;
}

/* Deletes, 60 to a transaction, each as it was written last; a
 * transaction whose compare fails goes key by key. */
void mcl_reg_exited(struct mcl *cl, pid_t pid, uint64_t starttime)
{
	struct gather g = {.pid = pid, .starttime = starttime};
	pthread_mutex_lock(&cl->lock);
	mkv_foreach(cl->own, gather_cb, &g);
	for (size_t i = 0; i < g.n; i++)
		mkv_delete(cl->own, g.keys[i]);
	pthread_mutex_unlock(&cl->lock);
	for (size_t at = 0; at < g.n; at += 60) {
		size_t n = g.n - at < 60 ? g.n - at : 60;
		struct metcd_cmp cmp[60];
		struct metcd_op del[60];
		for (size_t i = 0; i < n; i++) {
			cmp[i] = (struct metcd_cmp){.key = g.keys[at + i],
			                            .key_len = strlen(g.keys[at + i]),
			                            .target = METCD_MOD,
			                            .result = METCD_EQUAL,
			                            .number = g.revs[at + i]};
			del[i] = (struct metcd_op){
			        .kind = METCD_DELETE, .key = cmp[i].key, .key_len = cmp[i].key_len};
		}
		struct metcd_txn_result tr;
		int r = mcl_txn(cl, cmp, n, del, n, NULL, 0, &tr);
		bool ok = r == 0 && tr.succeeded;
		if (r == 0)
			metcd_txn_result_free(&tr);
		for (size_t i = 0; r == 0 && !ok && i < n; i++)
			if (mcl_txn(cl, &cmp[i], 1, &del[i], 1, NULL, 0, &tr) == 0)
				metcd_txn_result_free(&tr);
		if (r < 0)
			mu_log(MU_LOG_WARNING,
			       "cluster: the entries of exited process %d stay in etcd until this "
			       "node's lease goes: %s",
			       (int)pid, metcd_error());
	}
	for (size_t i = 0; i < g.n; i++)
		free(g.keys[i]);
	free(g.keys);
	free(g.revs);
}

struct repub {
	struct mreg_saved *v;
	char **strs;
	size_t n, cap;
};

static int repub_cb(const struct mreg_saved *s, void *arg)
{
	struct repub *p = arg;
	if (s->kind == 'p')
		return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct mreg_saved *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		char **strs = realloc(p->strs, cap * 3 * sizeof(*strs));
		if (!strs)
			return -ENOMEM;
		p->strs = strs;
		p->cap = cap;
	}
	struct mreg_saved *c = &p->v[p->n];
	char **str = &p->strs[p->n * 3];
	*c = *s;
	str[0] = strdup(s->name);
	str[1] = s->member ? strdup(s->member) : NULL;
	str[2] = s->value ? strdup(s->value) : NULL;
	c->name = str[0];
	c->member = str[1];
	c->value = str[2];
	p->n++;
	return str[0] ? 0 : -ENOMEM;
}

int mcl_reg_republish(struct mcl *cl)
{
	struct repub p = {0};
	int r = mreg_save_foreach(cl->reg, repub_cb, &p);
	for (size_t i = 0; i < p.n; i++) {
		int h = r == 0 ? r_hold(cl, &p.v[i]) : 0;
		if (h < 0)
			mu_log(MU_LOG_WARNING, "cluster: registry/%s%s%s: not written again: %s",
			       p.v[i].name, p.v[i].member ? "/" : "",
			       p.v[i].member ? p.v[i].member : "", strerror(-h));
		free(p.strs[i * 3]);
		free(p.strs[i * 3 + 1]);
		free(p.strs[i * 3 + 2]);
	}
	free(p.v);
	free(p.strs);
	return r;
}

static const struct mreg_remote remote = {.hold = r_hold, .release = r_release, .exited = r_exited};

void mcl_reg_attach(struct mcl *cl)
{
	mreg_set_remote(cl->reg, cl->node, &remote, cl);
}

void mcl_reg_detach(struct mcl *cl)
{
	mreg_set_remote(cl->reg, NULL, NULL, NULL);
}

/* ---- the watcher's side ---- */

struct parsed {
	char node[MCL_NODE_MAX + 1];
	pid_t pid;
	uid_t uid;
	char *value; /* malloc'd or NULL */
};

static bool parse_entry(const char *text, struct parsed *p)
{
	json_object *o = text ? json_tokener_parse(text) : NULL, *f;
	memset(p, 0, sizeof(*p));
	if (!o)
		return false;
	/* node and value are strings ("value": null from a buggy node is no
	 * value to copy: the entry is not one of ours). */
	bool ok = json_object_object_get_ex(o, "node", &f) &&
	          json_object_is_type(f, json_type_string) &&
	          snprintf(p->node, sizeof(p->node), "%s", json_object_get_string(f)) <
	                  (int)sizeof(p->node);
	if (json_object_object_get_ex(o, "pid", &f))
		p->pid = (pid_t)json_object_get_int64(f);
	if (json_object_object_get_ex(o, "uid", &f))
		p->uid = (uid_t)json_object_get_int64(f);
	if (ok && json_object_object_get_ex(o, "value", &f)) {
		if (json_object_is_type(f, json_type_string))
			p->value = strdup(json_object_get_string(f));
		if (!p->value)
			ok = false;
	}
	json_object_put(o);
	if (!ok)
		p->node[0] = '\0';
	return ok;
}

void mcl_reg_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                   const struct metcd_kv *prev, bool gone, const char *origin)
{
	char name[MU_NAME_MAX + 1], member[MU_NAME_MAX + 1];
	struct parsed p;
	if (sub_len < 3 || sub[1] != '/' || sub_len - 2 > MU_NAME_MAX * 2 + 1)
		return;
	char kind = sub[0];
	if (kind != 'n' && kind != 'p' && kind != 'm')
		return; /* not a key of ours: its deletion must not remove NAME */
	const char *rest = sub + 2, *slash = memchr(rest, '/', sub_len - 2);
	size_t nlen = slash ? (size_t)(slash - rest) : sub_len - 2;
	if (nlen == 0 || nlen > MU_NAME_MAX || (kind == 'm') != (slash != NULL))
		return;
	memcpy(name, rest, nlen);
	name[nlen] = '\0';
	member[0] = '\0';
	if (slash) {
		size_t mlen = sub_len - 2 - nlen - 1;
		if (mlen == 0 || mlen > MU_NAME_MAX)
			return;
		memcpy(member, slash + 1, mlen);
		member[mlen] = '\0';
	}
	if (mu_name_check_str(name, MU_NAME_STRICT) < 0)
		return;
	const char *text = !gone ? kv->value : prev ? prev->value : NULL;
	bool parsed = parse_entry(text, &p);
	if (kind == 'm') {
		char *at = strchr(member, '@');
		if (!at) {
			free(p.value);
			return;
		}
		snprintf(p.node, sizeof(p.node), "%s", at + 1);
		parsed = true;
	}
	/* This node's own names and members: the registry here is theirs. */
	if (kind != 'p' && parsed && strcmp(p.node, cl->node) == 0) {
		free(p.value);
		return;
	}
	if (!origin && parsed && p.node[0])
		origin = p.node;
	mev_set_origin(origin && strcmp(origin, cl->node) != 0 ? origin : NULL);
	int r = 0;
	if (gone) {
		/* registry/n/NAME going removes a name, registry/p/NAME a pool:
		 * never the other kind of that name (a pool with this node's
		 * members, for a name's key that another node deleted). A name
		 * this node holds is not the mirror's to remove either
		 * (mreg_mirror_remove refuses it). The watcher is the mirror's
		 * only writer, so the kind cannot change between the two calls. */
		struct mreg_entry e;
		if (kind == 'm')
			r = mreg_mirror_remove(cl->reg, name, member);
		else if (mreg_stat(cl->reg, name, NULL, &e) == 0 && e.kind == kind)
			r = mreg_mirror_remove(cl->reg, name, NULL);
	} else if (parsed) {
		char pidtext[16];
		snprintf(pidtext, sizeof(pidtext), "%d", (int)p.pid);
		struct mreg_saved s = {.name = name,
		                       .member = kind == 'm' ? pidtext : NULL,
		                       .kind = kind,
		                       .pid = p.pid,
		                       .value = kind == 'm' && !p.value ? "" : p.value,
		                       .uid = p.uid};
		r = mreg_mirror_put(cl->reg, &s, kind == 'p' ? NULL : p.node, NULL);
	}
	mev_set_origin(NULL);
	if (r < 0 && r != -ENOENT && r != -EEXIST)
		mu_log(MU_LOG_WARNING, "cluster: registry/%s%s%s from etcd not applied here: %s",
		       name, member[0] ? "/" : "", member, strerror(-r));
	free(p.value);
}
