/* SPDX-License-Identifier: MIT */
#include "builtin.h"

#include <stddef.h>

const struct mallafs_plugin *const mallafs_builtin_plugins[] = {
        &mallafs_plugin_base,    &mallafs_plugin_trace,
        &mallafs_plugin_metrics, &mallafs_plugin_limits,
        &mallafs_plugin_ttl,     &mallafs_plugin_exec,
        &mallafs_plugin_persist, NULL,
};
