/* SPDX-License-Identifier: MIT */
/* test_plugins' external plugins, built by the test itself, one .so per name:
 *
 *     cc -shared -fPIC -I CORE -DDEP_NAME='"deptop"' [-DDEP_ON='"depmid"']
 *        [-DDEP_ABI=999] [-DDEP_SELF='"other"'] test_plugins_dep.c -o deptop.so
 *
 * DEP_NAME is the file's name, DEP_ON the one plugin it depends on (none
 * without it), DEP_ABI overrides the ABI version, DEP_SELF the name the
 * descriptor gives itself. Each appends "NAME start" and "NAME stop" to the
 * file named by $TEST_PLUGINS_LOG, so the test sees the order in which a
 * chain starts and stops. */
#include <stdio.h>
#include <stdlib.h>

#include <mallafs-plugin.h>

#ifndef DEP_NAME
#error "build with -DDEP_NAME='\"name\"'"
#endif
#ifndef DEP_ABI
#define DEP_ABI MALLAFS_PLUGIN_ABI
#endif
#ifndef DEP_SELF
#define DEP_SELF DEP_NAME
#endif

static void say(const char *what)
{
	const char *path = getenv("TEST_PLUGINS_LOG");
	FILE *f = path && *path ? fopen(path, "a") : NULL;
	if (!f)
		return;
	fprintf(f, "%s %s\n", DEP_NAME, what);
	fclose(f);
}

static int dep_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret)
{
	*ret = svc;
	return 0;
}

static int dep_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	say("start");
	return 0;
}

static void dep_stop(void *state)
{
	say("stop");
}

#ifdef DEP_ON
static const char *const deps[] = {DEP_ON, NULL};
#endif

const struct mallafs_plugin mallafs_plugin = {
        .abi = DEP_ABI,
        .size = sizeof(struct mallafs_plugin),
        .name = DEP_SELF,
#ifdef DEP_ON
        .deps = deps,
#endif
        .init = dep_init,
        .start = dep_start,
        .stop = dep_stop,
};
