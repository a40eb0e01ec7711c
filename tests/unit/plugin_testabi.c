/* SPDX-License-Identifier: MIT */
/* A plugin built for another ABI version: loading it must fail with EINVAL. */
#include "mallafs-plugin.h"

const struct mallafs_plugin mallafs_plugin = {
        .abi = 999,
        .size = sizeof(struct mallafs_plugin),
        .name = "testabi",
};
