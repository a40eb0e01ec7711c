/* SPDX-License-Identifier: MIT */
/* The table of node kinds: each kind's row, defined beside the work it
 * names (kind_root.c, kind_service.c, kind_config.c, kind_value.c,
 * kind_registry.c, metrics.c, kind_cluster.c). */
#include <errno.h>

#include "kind.h"
#include "runtime.h"
#include "tree.h"

static const struct mfs_kind *const kinds[] = {
        [N_ROOT] = &mfs_kind_root,         [N_SERVICES] = &mfs_kind_services,
        [N_REGISTRY] = &mfs_kind_registry, [N_NODECFG] = &mfs_kind_nodecfg,
        [N_EVENTS] = &mfs_kind_events,     [N_SVC] = &mfs_kind_svc,
        [N_STORE] = &mfs_kind_store,       [N_KEY] = &mfs_kind_key,
        [N_PLUGINS] = &mfs_kind_plugins,   [N_PLUGIN] = &mfs_kind_plugin,
        [N_SCFG] = &mfs_kind_scfg,         [N_SECTION] = &mfs_kind_section,
        [N_SKEY] = &mfs_kind_skey,         [N_CONFIG_INI] = &mfs_kind_config_ini,
        [N_CHAIN] = &mfs_kind_chain,       [N_STATUS] = &mfs_kind_status,
        [N_SVCFILE] = &mfs_kind_svcfile,   [N_REGNAME] = &mfs_kind_regname,
        [N_POOL] = &mfs_kind_pool,         [N_MEMBER] = &mfs_kind_member,
        [N_APP] = &mfs_kind_app,           [N_APPKEY] = &mfs_kind_appkey,
        [N_METRICS] = &mfs_kind_metrics,   [N_CLUSTER] = &mfs_kind_cluster,
        [N_CLSTATUS] = &mfs_kind_clstatus, [N_CLNODES] = &mfs_kind_clnodes,
        [N_CLNODE] = &mfs_kind_clnode,     [N_CLSVC] = &mfs_kind_clsvc,
};

/* A kind added to the enum without a row fails to build here. */
_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == N_KIND_COUNT_,
               "every node kind has its row in kinds[]");

/* A hole in the designated initialisers would be NULL: mfs_kinds_check,
 * run when the filesystem is made, refuses to mount with one. */
const struct mfs_kind *mfs_kind(enum mnode_kind k)
{
	return kinds[k];
}

int mfs_kinds_check(void)
{
	for (size_t i = 0; i < N_KIND_COUNT_; i++)
		if (!kinds[i] || !kinds[i]->what)
			return -EINVAL;
	return 0;
}

/* The kinds of the tree's fixed entries (core/tree.h names them). */
static const enum mnode_kind tree_kinds[] = {
        [MTREE_SERVICES] = N_SERVICES,     [MTREE_REGISTRY] = N_REGISTRY,
        [MTREE_CONFIG] = N_NODECFG,        [MTREE_EVENTS] = N_EVENTS,
        [MTREE_METRICS] = N_METRICS,       [MTREE_STORE] = N_STORE,
        [MTREE_PLUGINS] = N_PLUGINS,       [MTREE_SVC_CONFIG] = N_SCFG,
        [MTREE_CONFIG_INI] = N_CONFIG_INI, [MTREE_CHAIN] = N_CHAIN,
        [MTREE_STATUS] = N_STATUS,         [MTREE_CLUSTER] = N_CLUSTER,
};

_Static_assert(sizeof(tree_kinds) / sizeof(tree_kinds[0]) == MTREE_COUNT_,
               "every fixed entry of the tree has its kind");

int mfs_fixed_lookup(const char *name, bool in_service, struct mfs_child *ret)
{
	int t = mtree_lookup(name, in_service);
	if (t < 0)
		return t;
	ret->kind = tree_kinds[t];
	return 0;
}

int mfs_fixed_list(struct mfs_dirbuf *db, bool in_service)
{
	for (size_t i = 0; i < MTREE_COUNT_; i++)
		if (mtree[i].in_service == in_service &&
		    (i != MTREE_CLUSTER || mrt_clview(db->fs->rt)) &&
		    mfs_dir_add_next(db, mtree[i].name, mtree[i].dir))
			return 1;
	return 0;
}
