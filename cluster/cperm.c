/* SPDX-License-Identifier: MIT */
/* Owners and modes of config/ and registry/ through etcd: what fs/perm.c
 * keeps of chmod and chown (and of the creator of config/APP or
 * registry/POOL, when not the mount's owner) is the same on every node.
 * Owners travel as numbers: the nodes are expected to share their uids
 * and gids, as NFS clients do. services/ stays local (a service runs on
 * its node).
 *
 * In etcd: PREFIX/perm/PATH, PATH as perm.c names it (config/APP,
 * config/APP/KEY, registry/NAME, registry/POOL, registry/POOL/MEMBER), value
 * {"node","uid","gid","mode","has_owner","has_mode"} (node: the writer),
 * no lease: the key follows its entry. When the entry goes, every node's
 * perm.c drops its override, and each node that sees its table differ
 * from etcd deletes the key, comparing the mod revision its mirror holds
 * (so that a deletion that comes late never removes a newer override of a
 * path made again): the first one deletes, the others find nothing left
 * to do.
 *
 * Publishing: perm.c tells cperm's listener of each path set or dropped,
 * under its table's lock; the listener only queues the path for the
 * worker (csvc.c's queue, kind 'p', a path queued once). The worker reads
 * what the table and the mirror say, together under cl->lock, and, when
 * they differ, makes etcd say what the table says by one transaction that
 * compares the mod revision the mirror holds; then it waits for the mirror
 * to reach the transaction's revision, and when the compare failed (a
 * change from another node won) it looks again.
 *
 * Importing: the watcher applies PREFIX/perm/PATH under cl->lock (taken
 * before perm.c's table lock, a leaf, and mfs.lock: see fs/fs_i.h) into
 * cl->perms, and into the table unless this node made the change (the
 * table already says it, or something newer). A change imported is not
 * published again: the listener ignores what this thread does while it
 * imports (tl_importing). Until mcl_attach_fs the listing only fills
 * cl->perms; the attach imports it all.
 *
 * Paths are checked on both sides: only config/ and registry/, two or
 * three names that are neither "." nor "..", without control characters. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"
#include "fs.h"
#include "kv.h"
#include "util.h"

#define PERM_PATH_MAX 1024 /* config/APP/KEY: two names and a bit */
#define VALUE_MAX 512      /* the JSON of one entry */
#define TRIES 16           /* compares lost in a row before giving up */

/* What etcd says of one path (cl->perms, under cl->lock). */
struct seen {
	struct mfs_perm_entry e;
	int64_t rev; /* mod revision of PREFIX/perm/PATH */
};

/* The watcher's thread imports: its changes of the table are etcd's. */
static __thread bool tl_importing;

/* Whether path (len bytes) names an entry of config/ or registry/. */
static bool path_ok(const char *path, size_t len)
{
	const char *rest;
	size_t names = 0;
	if (len >= PERM_PATH_MAX || memchr(path, '\0', len))
		return false;
	if (len > 7 && memcmp(path, "config/", 7) == 0)
		rest = path + 7;
	else if (len > 9 && memcmp(path, "registry/", 9) == 0)
		rest = path + 9;
	else
		return false;
	const char *end = path + len;
	while (rest < end) {
		const char *slash = memchr(rest, '/', (size_t)(end - rest));
		size_t n = slash ? (size_t)(slash - rest) : (size_t)(end - rest);
		if (n == 0 || n > MU_NAME_MAX || (n == 1 && rest[0] == '.') ||
		    (n == 2 && rest[0] == '.' && rest[1] == '.'))
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)rest[i] < 0x20 || rest[i] == 0x7f)
				return false;
		names++;
		rest += n + (slash ? 1 : 0);
		if (slash && rest == end)
			return false; /* a trailing '/' */
	}
	return names >= 1 && names <= 2;
}

static bool same(const struct mfs_perm_entry *a, const struct mfs_perm_entry *b)
{
	return a->has_owner == b->has_owner && a->has_mode == b->has_mode &&
	       (!a->has_owner || (a->uid == b->uid && a->gid == b->gid)) &&
	       (!a->has_mode || (a->mode & 07777) == (b->mode & 07777));
}

/* ---- the value ---- */

static char *encode(const struct mcl *cl, const struct mfs_perm_entry *e)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "node", json_object_new_string(cl->node));
	json_object_object_add(o, "uid", json_object_new_int64(e->uid));
	json_object_object_add(o, "gid", json_object_new_int64(e->gid));
	json_object_object_add(o, "mode", json_object_new_int64(e->mode & 07777));
	json_object_object_add(o, "has_owner", json_object_new_boolean(e->has_owner));
	json_object_object_add(o, "has_mode", json_object_new_boolean(e->has_mode));
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static bool get_num(json_object *o, const char *name, int64_t max, int64_t *ret)
{
	json_object *v;
	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*ret = json_object_get_int64(v);
	return *ret >= 0 && *ret <= max;
}

static bool get_bool(json_object *o, const char *name, bool *ret)
{
	json_object *v;
	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_boolean))
		return false;
	*ret = json_object_get_boolean(v);
	return true;
}

/* The value of PREFIX/perm/PATH into e and node (the writer). */
static bool decode(const char *value, size_t len, struct mfs_perm_entry *e, char *node,
                   size_t node_len)
{
	if (!value || len == 0 || len > VALUE_MAX)
		return false;
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return false;
	json_object *o = json_tokener_parse_ex(tok, value, (int)len);
	bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
	          json_object_is_type(o, json_type_object);
	json_tokener_free(tok);
	int64_t uid = 0, gid = 0, mode = 0;
	json_object *n;
	ok = ok && get_num(o, "uid", (int64_t)UINT32_MAX - 1, &uid) &&
	     get_num(o, "gid", (int64_t)UINT32_MAX - 1, &gid) && get_num(o, "mode", 07777, &mode) &&
	     get_bool(o, "has_owner", &e->has_owner) && get_bool(o, "has_mode", &e->has_mode) &&
	     json_object_object_get_ex(o, "node", &n) && json_object_is_type(n, json_type_string) &&
	     (size_t)json_object_get_string_len(n) < node_len;
	if (ok) {
		e->uid = (uid_t)uid;
		e->gid = (gid_t)gid;
		e->mode = (mode_t)mode;
		snprintf(node, node_len, "%s", json_object_get_string(n));
	}
	json_object_put(o);
	return ok;
}

/* ---- importing ---- */

/* path's entry in the table as e says (lock held, cl->fs set). */
static void import_locked(struct mcl *cl, const char *path, const struct mfs_perm_entry *e)
{
	struct mfs_perm_entry cur;
	bool has = mfs_perm_get(cl->fs, path, &cur) == 0;
	if (has ? same(&cur, e) : !e->has_owner && !e->has_mode)
		return;
	tl_importing = true;
	int r = mfs_perm_import(cl->fs, path, e);
	tl_importing = false;
	if (r < 0)
		mu_log(MU_LOG_WARNING, "cluster: %s: owner and mode from etcd not applied here: %s",
		       path, strerror(-r));
}

void mcl_perm_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                    bool gone, const char *origin)
{
	char path[PERM_PATH_MAX], writer[MCL_NODE_MAX + 1];
	struct seen s = {0};
	if (!path_ok(sub, sub_len)) {
		mu_log(MU_LOG_WARNING, "cluster: %.*s: not a path of config/ or registry/: ignored",
		       (int)(sub_len < 200 ? sub_len : 200), sub);
		return;
	}
	memcpy(path, sub, sub_len);
	path[sub_len] = '\0';
	if (!cl->perms && !(cl->perms = mkv_new())) {
		mu_log(MU_LOG_WARNING, "cluster: %s: owner and mode from etcd: out of memory",
		       path);
		return;
	}
	if (gone) {
		mkv_delete(cl->perms, path);
	} else {
		if (!decode(kv->value, kv->value_len, &s.e, writer, sizeof(writer))) {
			mu_log(MU_LOG_WARNING,
			       "cluster: %s: owner and mode in etcd are not what this node "
			       "reads: ignored",
			       path);
			return;
		}
		if (!origin)
			origin = writer;
		s.rev = kv->mod_revision;
		if (mkv_write(cl->perms, path, 0, &s, sizeof(s), MKV_REPLACE) < 0) {
			mu_log(MU_LOG_WARNING,
			       "cluster: %s: owner and mode from etcd: out of memory", path);
			return;
		}
	}
	/* This node's own change: its table says it already, or newer. */
	if (cl->fs && !(origin && strcmp(origin, cl->node) == 0))
		import_locked(cl, path, &s.e);
}

/* ---- publishing ---- */

/* perm.c's listener: under its table's lock, so it only queues. */
static void on_perm(const char *path, void *arg)
{
	static const char svc[] = "services/";
	if (!tl_importing && path_ok(path, strlen(path)))
		mcl_queue(arg, 'p', 0, 0, path);
	/* A service's mode or owner: cluster/nodes/NODE/SERVICE shows them. */
	else if (strncmp(path, svc, sizeof(svc) - 1) == 0 && !strchr(path + sizeof(svc) - 1, '/'))
		mcl_queue(arg, 's', 0, 0, path + sizeof(svc) - 1);
}

mode_t mcl_svc_mode(struct mcl *cl, const char *svc)
{
	char path[MU_NAME_MAX + 16];
	struct mfs_perm_entry e;
	mode_t mode = 0755;
	snprintf(path, sizeof(path), "services/%s", svc);
	pthread_mutex_lock(&cl->lock);
	if (cl->fs && mfs_perm_get(cl->fs, path, &e) == 0 && e.has_mode)
		mode = e.mode & 07777;
	pthread_mutex_unlock(&cl->lock);
	return mode;
}

static int import_cb(const char *key, const void *value, size_t len, const struct mkv_stat *st,
                     void *arg)
{
	struct seen s;
	if (len == sizeof(s)) {
		memcpy(&s, value, sizeof(s));
		import_locked(arg, key, &s.e);
	}
	return 0;
}

void mcl_attach_fs(struct mcl *cl, struct mfs *fs)
{
	if (!cl)
		return;
	pthread_mutex_lock(&cl->lock);
	if (cl->fs)
		mfs_perm_remove_listener(cl->fs, on_perm, cl);
	cl->fs = fs;
	if (fs) {
		if (cl->perms)
			mkv_foreach(cl->perms, import_cb, cl);
		if (mfs_perm_add_listener(fs, on_perm, cl) < 0)
			mu_log(MU_LOG_ERR, "cluster: owners and modes set here will not be "
			                   "published: no listener slot left");
	}
	pthread_mutex_unlock(&cl->lock);
}

void mcl_perm_sync(struct mcl *cl, const char *path)
{
	char key[MCL_KEY_MAX];
	size_t klen = mcl_key(cl, key, sizeof(key), "perm", path, NULL);
	if (!klen)
		return;
	for (int tries = 0; tries < TRIES && !atomic_load(&cl->stopping); tries++) {
		struct seen s = {0};
		struct mfs_perm_entry t;
		pthread_mutex_lock(&cl->lock);
		if (!cl->fs) {
			pthread_mutex_unlock(&cl->lock);
			return;
		}
		bool in_etcd = cl->perms &&
		               mkv_read(cl->perms, path, 0, &s, sizeof(s)) == (ssize_t)sizeof(s);
		bool in_table = mfs_perm_get(cl->fs, path, &t) == 0;
		pthread_mutex_unlock(&cl->lock);
		if (in_table == in_etcd && (!in_table || same(&t, &s.e)))
			return;

		char *value = in_table ? encode(cl, &t) : NULL;
		if (in_table && !value) {
			mu_log(MU_LOG_WARNING, "cluster: %s: owner and mode not published: %s",
			       path, strerror(ENOMEM));
			return;
		}
		const struct metcd_cmp cmp = {.key = key,
		                              .key_len = klen,
		                              .target = METCD_MOD,
		                              .result = METCD_EQUAL,
		                              .number = in_etcd ? s.rev : 0};
		const struct metcd_op op = {.kind = in_table ? METCD_PUT : METCD_DELETE,
		                            .key = key,
		                            .key_len = klen,
		                            .value = value,
		                            .value_len = value ? strlen(value) : 0};
		struct metcd_txn_result res = {0};
		int r = mcl_txn(cl, &cmp, 1, &op, 1, NULL, 0, &res);
		free(value);
		if (r < 0) {
			mu_log(MU_LOG_WARNING, "cluster: %s: owner and mode not published: %s: %s",
			       path, strerror(-r), metcd_error());
			return;
		}
		bool done = res.succeeded;
		int64_t rev = res.revision;
		metcd_txn_result_free(&res);
		/* The next look (or the next job) starts from what etcd has. */
		if (mcl_mirror_wait(cl, rev, cl->timeout_ms < 2000 ? cl->timeout_ms : 2000) < 0 ||
		    done)
			return;
	}
	mu_log(MU_LOG_WARNING,
	       "cluster: %s: owner and mode not published: changed elsewhere %d "
	       "times in a row",
	       path, TRIES);
}
