/* SPDX-License-Identifier: MIT */
/* What other nodes put in etcd, applied to this node's tree (cluster/
 * mirror.c and the appliers of ccfg.c, creg.c, csvc.c): a struct mcl made
 * by hand around a real runtime's registry, config store and cluster view,
 * no etcd, fed a script (fuzz.h has the line format):
 *
 *     N NODE               this node's name (before anything else; default "me")
 *     P REV KEY VALUE      a put of KEY at mod revision REV, into the batch
 *     D REV KEY PREV       a deletion (PREV: the value before it; empty: none)
 *     B REV                the batch applied as one watch message at REV
 *     L REV                the batch's puts applied as a listing at REV
 *     r NAME VALUE         this node registers NAME (its own PID)
 *     p POOL               a pool made here      m POOL VALUE  a member of it
 *     u NAME               this node unregisters NAME
 *
 * KEY is under the prefix (/mallafs/default/KEY) unless it starts with '/'.
 * After each batch: every name the registry, the config store and the view
 * list stats, with the counts they give; and nothing this node registered
 * went but by what may take it: a put of its name (the shared store settled
 * a race otherwise), or its pool's key (a pool goes with its members). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clview.h"
#include "engine_i.h"
#include "events.h"
#include "fuzz.h"
#include "kv.h"
#include "nodecfg.h"
#include "registry.h"
#include "runtime.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BATCH_MAX 64
#define OWN_MAX 32

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

/* An entry this node made: a name (member NULL) or a member of a pool. */
struct own {
	char *name, *member;
};

struct ctx {
	struct mrt *rt;
	struct mcl cl;
	bool ready;
	char node[MCL_NODE_MAX + 1];
	struct metcd_event ev[BATCH_MAX];
	size_t n;
	struct own own[OWN_MAX];
	size_t n_own;
	struct mkv *pools_seen; /* registry/p/POOL keys any event named */
};

static void event_clear(struct metcd_event *e)
{
	free(e->kv.key);
	free(e->kv.value);
	free(e->prev_kv.key);
	free(e->prev_kv.value);
	memset(e, 0, sizeof(*e));
}

static int hold(void *arg, const struct mreg_saved *s)
{
	return 0;
}

static void exited(void *arg, pid_t pid, uint64_t starttime)
{
}

static const struct mreg_remote remote = {.hold = hold, .release = hold, .exited = exited};

static void setup(struct ctx *c)
{
	struct mrt_options o = {.event_capacity = 64};
	c->rt = mrt_new(&o);
	FUZZ_CHECK(c->rt, "mrt_new: %s", strerror(errno));
	FUZZ_CHECK(mrt_cluster_enable(c->rt) == 0, "mrt_cluster_enable");
	struct mcl *cl = &c->cl;
	pthread_mutex_init(&cl->lock, NULL);
	pthread_mutex_init(&cl->wake_lock, NULL);
	pthread_cond_init(&cl->wake, NULL);
	cl->jobs_tail = &cl->jobs;
	cl->rt = c->rt;
	cl->reg = mrt_registry(c->rt);
	cl->nc = mrt_nodecfg(c->rt);
	cl->ring = mrt_events(c->rt);
	cl->view = mrt_clview(c->rt);
	cl->revs = mkv_new();
	cl->own = mkv_new();
	cl->pending = mkv_new();
	c->pools_seen = mkv_new();
	FUZZ_CHECK(cl->revs && cl->own && cl->pending && c->pools_seen, "out of memory");
	snprintf(cl->node, sizeof(cl->node), "%s", c->node[0] ? c->node : "me");
	cl->prefix = strdup(MCL_DEFAULT_PREFIX);
	FUZZ_CHECK(cl->prefix, "out of memory");
	cl->prefix_len = strlen(cl->prefix);
	/* The registry knows this node's name; its hooks (etcd) do nothing. */
	if (mreg_set_remote(cl->reg, cl->node, &remote, NULL) < 0) {
		/* A name the registry refuses: the engine refuses it too. */
		snprintf(cl->node, sizeof(cl->node), "me");
		FUZZ_CHECK(mreg_set_remote(cl->reg, cl->node, &remote, NULL) == 0, "remote");
	}
	c->ready = true;
}

static void teardown(struct ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		event_clear(&c->ev[i]);
	}
	for (size_t i = 0; i < c->n_own; i++) {
		free(c->own[i].name);
		free(c->own[i].member);
	}
	if (!c->ready)
		return;
	mreg_set_remote(c->cl.reg, NULL, NULL, NULL);
	mrt_free(c->rt);
	mkv_free(c->cl.revs);
	mkv_free(c->cl.own);
	mkv_free(c->cl.pending);
	mkv_free(c->cl.perms); /* owners and modes (perm/) kept without an fs */
	mkv_free(c->pools_seen);
	free(c->cl.prefix);
	pthread_mutex_destroy(&c->cl.lock);
	pthread_mutex_destroy(&c->cl.wake_lock);
	pthread_cond_destroy(&c->cl.wake);
}

/* ---- listings ---- */

struct names {
	char **v;
	char *kinds;
	size_t n, cap;
};

static void names_add(struct names *ns, const char *name, char kind)
{
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 16;
		ns->v = realloc(ns->v, ns->cap * sizeof(*ns->v));
		ns->kinds = realloc(ns->kinds, ns->cap);
		FUZZ_CHECK(ns->v && ns->kinds, "out of memory");
	}
	ns->v[ns->n] = strdup(name);
	FUZZ_CHECK(ns->v[ns->n], "out of memory");
	ns->kinds[ns->n++] = kind;
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	free(ns->kinds);
	memset(ns, 0, sizeof(*ns));
}

static int reg_cb(const struct mreg_entry *e, void *arg)
{
	names_add(arg, e->name, e->kind);
	return 0;
}

static int kv_cb(const char *name, const struct mkv_stat *st, void *arg)
{
	names_add(arg, name, 0);
	return 0;
}

static void check_registry(struct mreg *reg)
{
	struct names top = {0};
	struct mreg_counts want, got = {0};
	FUZZ_CHECK(mreg_list(reg, 0, reg_cb, &top) == 0, "mreg_list");
	for (size_t i = 0; i < top.n; i++) {
		struct mreg_entry st;
		FUZZ_CHECK(mreg_stat(reg, top.v[i], NULL, &st) == 0 && st.kind == top.kinds[i],
		           "registry/%s listed (%c) but does not stat so", top.v[i], top.kinds[i]);
		if (top.kinds[i] == 'n') {
			got.names++;
			continue;
		}
		FUZZ_CHECK(top.kinds[i] == 'p', "registry/%s: kind %c", top.v[i], top.kinds[i]);
		got.pools++;
		struct names mem = {0};
		FUZZ_CHECK(mreg_pool_list(reg, top.v[i], 0, reg_cb, &mem) == 0, "pool list %s",
		           top.v[i]);
		for (size_t j = 0; j < mem.n; j++)
			FUZZ_CHECK(mreg_stat(reg, top.v[i], mem.v[j], &st) == 0,
			           "registry/%s/%s listed but does not stat", top.v[i], mem.v[j]);
		got.members += mem.n;
		names_free(&mem);
	}
	mreg_counts(reg, &want);
	FUZZ_CHECK(got.names == want.names && got.pools == want.pools &&
	                   got.members == want.members,
	           "registry lists %llu names, %llu pools, %llu members; counts %llu, %llu, %llu",
	           (unsigned long long)got.names, (unsigned long long)got.pools,
	           (unsigned long long)got.members, (unsigned long long)want.names,
	           (unsigned long long)want.pools, (unsigned long long)want.members);
	names_free(&top);
}

static void check_config(struct mnodecfg *nc)
{
	struct names apps = {0};
	FUZZ_CHECK(mnodecfg_app_list(nc, 0, kv_cb, &apps) == 0, "app list");
	for (size_t i = 0; i < apps.n; i++) {
		struct mkv_stat st;
		struct names keys = {0};
		FUZZ_CHECK(mnodecfg_app_stat(nc, apps.v[i], &st) == 0,
		           "config/%s listed but does not stat", apps.v[i]);
		FUZZ_CHECK(mnodecfg_list(nc, apps.v[i], 0, kv_cb, &keys) == 0, "list %s",
		           apps.v[i]);
		FUZZ_CHECK(st.size == keys.n, "config/%s: size %llu, %zu keys listed", apps.v[i],
		           (unsigned long long)st.size, keys.n);
		for (size_t j = 0; j < keys.n; j++) {
			struct mkv_stat ks;
			FUZZ_CHECK(mnodecfg_stat(nc, apps.v[i], keys.v[j], &ks) == 0,
			           "config/%s/%s listed but does not stat", apps.v[i], keys.v[j]);
		}
		names_free(&keys);
	}
	names_free(&apps);
}

static void check_view(struct mclview *v)
{
	struct names nodes = {0};
	FUZZ_CHECK(mclview_node_list(v, 0, kv_cb, &nodes) == 0, "node list");
	for (size_t i = 0; i < nodes.n; i++) {
		struct mkv_stat st;
		struct names svcs = {0};
		FUZZ_CHECK(mclview_node_stat(v, nodes.v[i], &st) == 0,
		           "cluster/%s listed but does not stat", nodes.v[i]);
		FUZZ_CHECK(mclview_service_list(v, nodes.v[i], 0, kv_cb, &svcs) == 0,
		           "service list %s", nodes.v[i]);
		FUZZ_CHECK(st.size == svcs.n, "cluster/%s: size %llu, %zu services listed",
		           nodes.v[i], (unsigned long long)st.size, svcs.n);
		for (size_t j = 0; j < svcs.n; j++)
			FUZZ_CHECK(mclview_service_stat(v, nodes.v[i], svcs.v[j], NULL, NULL) == 0,
			           "cluster/%s/%s listed but does not stat", nodes.v[i], svcs.v[j]);
		names_free(&svcs);
	}
	names_free(&nodes);
}

/* ---- this node's own entries ---- */

/* registry/KIND/NAME under the prefix: NAME, else NULL. */
static const char *reg_key(const struct ctx *c, const struct metcd_kv *kv, char kind)
{
	const char *k = kv->key;
	size_t pl = c->cl.prefix_len;
	if (kv->key_len != strlen(k) || kv->key_len < pl + 13 || memcmp(k, c->cl.prefix, pl) != 0 ||
	    memcmp(k + pl, "/registry/", 10) != 0 || k[pl + 10] != kind || k[pl + 11] != '/')
		return NULL;
	return k + pl + 12;
}

/* Whether the batch puts registry/n/NAME or registry/p/NAME. */
static bool batch_puts_name(const struct ctx *c, const char *name, bool listing)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct metcd_event *e = &c->ev[i];
		if (e->type != METCD_EV_PUT && !listing)
			continue;
		const char *n = reg_key(c, &e->kv, 'n'), *p = reg_key(c, &e->kv, 'p');
		if ((n && strcmp(n, name) == 0) || (p && strcmp(p, name) == 0))
			return true;
	}
	return false;
}

/* Whether the entry is there and still this node's: a member named by its
 * PID alone, a name that cat shows as "PID" (another node's: "PID@NODE"). */
static bool still_own(struct ctx *c, const struct own *o)
{
	struct mreg_entry st;
	if (o->member)
		return mreg_stat(c->cl.reg, o->name, o->member, &st) == 0;
	char *text = NULL, pid[16];
	size_t len = 0;
	if (mreg_render(c->cl.reg, o->name, &text, &len) < 0)
		return false;
	int n = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	bool mine = len > (size_t)n && memcmp(text, pid, (size_t)n) == 0 &&
	            (text[n] == ' ' || text[n] == '\n');
	free(text);
	return mine;
}

static void check_own(struct ctx *c, bool listing)
{
	for (size_t i = 0; i < c->n_own;) {
		struct own *o = &c->own[i];
		if (still_own(c, o)) {
			i++;
			continue;
		}
		if (o->member)
			FUZZ_CHECK(mkv_stat(c->pools_seen, o->name, NULL) == 0,
			           "this node's registry/%s/%s went, its pool's key untouched",
			           o->name, o->member);
		else
			FUZZ_CHECK(batch_puts_name(c, o->name, listing),
			           "this node's registry/%s went without a put of its key",
			           o->name);
		free(o->name);
		free(o->member);
		*o = c->own[--c->n_own];
	}
}

static void own_add(struct ctx *c, const char *name, const char *member)
{
	for (size_t i = 0; i < c->n_own; i++)
		if (strcmp(c->own[i].name, name) == 0 &&
		    (member ? c->own[i].member && strcmp(c->own[i].member, member) == 0
		            : !c->own[i].member))
			return;
	if (c->n_own == OWN_MAX)
		return;
	c->own[c->n_own].name = strdup(name);
	c->own[c->n_own].member = member ? strdup(member) : NULL;
	FUZZ_CHECK(c->own[c->n_own].name && (!member || c->own[c->n_own].member), "out of memory");
	c->n_own++;
}

static void own_drop(struct ctx *c, const char *name)
{
	for (size_t i = 0; i < c->n_own; i++)
		if (!c->own[i].member && strcmp(c->own[i].name, name) == 0) {
			free(c->own[i].name);
			c->own[i] = c->own[--c->n_own];
			return;
		}
}

/* ---- the script ---- */

static void flush(struct ctx *c, int64_t rev, bool listing)
{
	struct mcl *cl = &c->cl;
	for (size_t i = 0; i < c->n; i++) {
		const char *p = reg_key(c, &c->ev[i].kv, 'p');
		if (p)
			mkv_write(c->pools_seen, p, 0, "", 0, MKV_REPLACE);
	}
	if (listing) {
		struct metcd_kv kvs[BATCH_MAX];
		size_t n = 0;
		for (size_t i = 0; i < c->n; i++)
			if (c->ev[i].type == METCD_EV_PUT)
				kvs[n++] = c->ev[i].kv;
		pthread_mutex_lock(&cl->lock);
		FUZZ_EXPECT("relist", mcl_mirror_relist(cl, kvs, n, rev));
		pthread_mutex_unlock(&cl->lock);
	} else {
		FUZZ_EXPECT("apply", mcl_mirror_apply(cl, c->ev, c->n, rev));
	}
	check_own(c, listing);
	check_registry(cl->reg);
	check_config(cl->nc);
	check_view(cl->view);
	fuzz_read_feed(cl->ring);
	for (size_t i = 0; i < c->n; i++) {
		event_clear(&c->ev[i]);
	}
	c->n = 0;
}

/* A copy with a NUL after it (what the JSON parser leaves). */
static char *dup_bytes(const struct fuzz_arg *a, size_t *len)
{
	char *s = malloc(a->len + 1);
	FUZZ_CHECK(s, "out of memory");
	memcpy(s, a->s, a->len);
	s[a->len] = '\0';
	*len = a->len;
	return s;
}

static void add_event(struct ctx *c, const struct fuzz_op *o)
{
	if (c->n == BATCH_MAX)
		flush(c, (int64_t)fuzz_u64(&o->args[0], 0), false);
	struct metcd_event *e = &c->ev[c->n++];
	memset(e, 0, sizeof(*e));
	e->type = o->op == 'P' ? METCD_EV_PUT : METCD_EV_DELETE;
	const struct fuzz_arg *k = &o->args[1];
	if (k->len > 0 && k->s[0] == '/') {
		e->kv.key = dup_bytes(k, &e->kv.key_len);
	} else {
		size_t pl = strlen(MCL_DEFAULT_PREFIX);
		e->kv.key_len = pl + 1 + k->len;
		e->kv.key = malloc(e->kv.key_len + 1);
		FUZZ_CHECK(e->kv.key, "out of memory");
		memcpy(e->kv.key, MCL_DEFAULT_PREFIX "/", pl + 1);
		memcpy(e->kv.key + pl + 1, k->s, k->len);
		e->kv.key[e->kv.key_len] = '\0';
	}
	e->kv.mod_revision = (int64_t)fuzz_u64(&o->args[0], 0);
	if (o->op == 'P') {
		e->kv.value = dup_bytes(&o->args[2], &e->kv.value_len);
	} else if (o->args[2].len > 0) {
		e->prev_kv.key = malloc(e->kv.key_len + 1);
		FUZZ_CHECK(e->prev_kv.key, "out of memory");
		memcpy(e->prev_kv.key, e->kv.key, e->kv.key_len + 1);
		e->prev_kv.key_len = e->kv.key_len;
		e->prev_kv.value = dup_bytes(&o->args[2], &e->prev_kv.value_len);
	}
}

static void run(void *arg, const struct fuzz_op *o)
{
	struct ctx *c = arg;
	const struct fuzz_arg *a = o->args;
	if (o->op == 'N') {
		if (!c->ready)
			snprintf(c->node, sizeof(c->node), "%s", a[0].s);
		return;
	}
	if (!c->ready)
		setup(c);
	struct mreg *reg = c->cl.reg;
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	switch (o->op) {
	case 'P':
	case 'D':
		add_event(c, o);
		break;
	case 'B':
	case 'L':
		flush(c, (int64_t)fuzz_u64(&a[0], 0), o->op == 'L');
		break;
	case 'r':
		if (mreg_register(reg, a[0].s, getpid(), a[1].len ? a[1].s : NULL, 0) == 0)
			own_add(c, a[0].s, NULL);
		break;
	case 'p':
		mreg_pool_make(reg, a[0].s, 0);
		break;
	case 'm':
		if (mreg_pool_store(reg, a[0].s, pid, a[1].s, a[1].len, 0) == 0)
			own_add(c, a[0].s, pid);
		break;
	case 'u':
		if (mreg_unregister(reg, a[0].s) == 0)
			own_drop(c, a[0].s);
		break;
	}
}

static const struct fuzz_op_spec specs[] = {
        {'N', 1, false}, {'P', 3, true},  {'D', 3, true}, {'B', 1, false}, {'L', 1, false},
        {'r', 2, true},  {'p', 1, false}, {'m', 2, true}, {'u', 1, false}, {'\0', 0, false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx *c = calloc(1, sizeof(*c));
	FUZZ_CHECK(c, "out of memory");
	fuzz_replay(data, size, specs, run, c);
	if (!c->ready)
		setup(c);
	flush(c, 0, false);
	teardown(c);
	free(c);
	return 0;
}
