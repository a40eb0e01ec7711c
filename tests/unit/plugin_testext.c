/* SPDX-License-Identifier: MIT */
/* An external plugin, loaded from a shared object by test_service. */
#include "mallafs-plugin.h"

static int render_hello(void *state, struct mallafs_out *out)
{
	return mallafs_out_printf(out, "hello from %s\n", "testext");
}

static const struct mallafs_file files[] = {
        {.name = "hello", .render = render_hello},
        {0},
};

const struct mallafs_plugin mallafs_plugin = {
        MALLAFS_PLUGIN_INIT,
        .name = "testext",
        .files = files,
};
