/* SPDX-License-Identifier: MIT */
/* base: the bottom of every chain. It owns the store: every operation that
 * the plugins above pass on is carried out here, on the service's table. */
#include "builtin.h"

static int base_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret_state)
{
	*ret_state = svc;
	return 0;
}

static int base_store_before(void *state, struct mallafs_store_op *op)
{
	int64_t r = mallafs_store_exec(state, op);
	return r < 0 ? (int)r : 0;
}

const struct mallafs_plugin mallafs_plugin_base = {
        MALLAFS_PLUGIN_INIT,
        .name = "base",
        .init = base_init,
        .store_before = base_store_before,
};
