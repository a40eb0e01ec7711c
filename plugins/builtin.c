#include "builtin.h"

#include <stddef.h>

const struct mallafs_plugin *const mallafs_builtin_plugins[] = {
	&mallafs_plugin_base,
	NULL,
};
