/* The table of node kinds: each kind's row, defined beside the work it
 * names (kind_root.c, kind_service.c, kind_config.c, kind_value.c,
 * kind_registry.c). */
#include <errno.h>
#include <stdlib.h>

#include "kind.h"

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
};

/* A kind added to the enum without a row fails to build here. */
_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == N_KIND_COUNT_,
               "every node kind has its row in kinds[]");

const struct mfs_kind *mfs_kind(enum mnode_kind k)
{
	/* A hole in the designated initialisers would be NULL: found at the
	 * first request on that kind in every test, not at a user's. */
	if ((unsigned)k >= N_KIND_COUNT_ || !kinds[k])
		abort();
	return kinds[k];
}

int mfs_kinds_check(void)
{
	for (size_t i = 0; i < N_KIND_COUNT_; i++)
		if (!kinds[i] || !kinds[i]->what)
			return -EINVAL;
	return 0;
}
