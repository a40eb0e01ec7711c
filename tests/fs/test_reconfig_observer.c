/* SPDX-License-Identifier: MIT */
/* test_reconfig's observer: an external plugin that appends one line per
 * callback to the file named by $TEST_RECONFIG_LOG, so the test sees from
 * outside in which order the daemon calls the chain's plugins. Built by the
 * test itself (cc -shared -fPIC -DOBS_NAME='"NAME"'), once per name.
 *
 * Lines: "NAME merge k=K" (K as merged), "NAME update old=K new=K", "NAME start
 * k=K", "NAME stop", where K is the value of [app] k ("-" when unset).
 *
 * It also acts on [app] k: "reject-NAME" is rejected in its merge callback,
 * "fail-NAME" fails its update callback, "restart-NAME" asks for a restart. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mallafs-plugin.h>

#ifndef OBS_NAME
#error "build with -DOBS_NAME='\"name\"'"
#endif

static void say(const char *fmt, ...)
{
	const char *path = getenv("TEST_RECONFIG_LOG");
	if (!path || !*path)
		return;
	FILE *f = fopen(path, "a");
	if (!f)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(f, "%s ", OBS_NAME);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
	va_end(ap);
	fclose(f);
}

static const char *k_of(const struct mallafs_cfg *cfg)
{
	const char *v = cfg ? mallafs_cfg_get(cfg, "app", "k") : NULL;
	return v ? v : "-";
}

static int obs_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret)
{
	*ret = svc;
	return 0;
}

static int obs_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	say("start k=%s", k_of(cfg));
	return 0;
}

static void obs_stop(void *state)
{
	say("stop");
}

static int obs_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                     struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	say("merge k=%s", k_of(merged));
	if (strcmp(k_of(merged), "reject-" OBS_NAME) == 0) {
		mallafs_reason_set(why, "%s rejects k", OBS_NAME);
		return -EINVAL;
	}
	return 0;
}

static enum mallafs_update obs_updated(void *state, const struct mallafs_cfg *old,
                                       const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	say("update old=%s new=%s", k_of(old), k_of(cfg));
	if (strcmp(k_of(cfg), "fail-" OBS_NAME) == 0) {
		mallafs_reason_set(why, "%s cannot apply k", OBS_NAME);
		return MALLAFS_UPDATE_ERROR;
	}
	if (strcmp(k_of(cfg), "restart-" OBS_NAME) == 0) {
		mallafs_reason_set(why, "%s needs a restart", OBS_NAME);
		return MALLAFS_UPDATE_RESTART;
	}
	return MALLAFS_UPDATE_OK;
}

const struct mallafs_plugin mallafs_plugin = {
        MALLAFS_PLUGIN_INIT, .name = OBS_NAME,          .init = obs_init,       .start = obs_start,
        .stop = obs_stop,    .config_merge = obs_merge, .updated = obs_updated,
};
