/* SPDX-License-Identifier: MIT */
/* The built-in plugins, each in its own file, each only through the plugin API. */
#ifndef MALLAFS_PLUGINS_BUILTIN_H
#define MALLAFS_PLUGINS_BUILTIN_H

#include "mallafs-plugin.h"

extern const struct mallafs_plugin mallafs_plugin_base;
extern const struct mallafs_plugin mallafs_plugin_trace;
extern const struct mallafs_plugin mallafs_plugin_metrics;
extern const struct mallafs_plugin mallafs_plugin_limits;
extern const struct mallafs_plugin mallafs_plugin_ttl;
extern const struct mallafs_plugin mallafs_plugin_exec;
extern const struct mallafs_plugin mallafs_plugin_persist;

/* NULL-terminated, in the order `--help` lists them. */
extern const struct mallafs_plugin *const mallafs_builtin_plugins[];

#endif
