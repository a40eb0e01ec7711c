/* SPDX-License-Identifier: MIT */
/* readonly: an external mallafs plugin, built as readonly.so and loaded from
 * --plugin-dir by `mkdir services/NAME/plugins/readonly`.
 *
 * It protects keys whose names match one of the shell patterns in its
 * `keys` setting (comma-separated, e.g. "config-*, schema"): writes,
 * truncations, deletes and renames of them are refused with EPERM, and the
 * reason reaches the service's status. Reads pass. The setting applies live.
 *
 * Build it against the installed header:
 *     cc -shared -fPIC $(pkg-config --cflags mallafs-plugin) readonly.c -o readonly.so
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mallafs-plugin.h>

struct ro {
	const struct mallafs_plugin *self;
	pthread_rwlock_t lock;
	char *patterns; /* the setting, as written */
};

static const struct mallafs_setting settings[] = {
        {.key = "keys", .def = ""},
        {.key = NULL},
};

/* Whether name matches one of the comma-separated patterns. */
static int matches(const char *patterns, const char *name)
{
	const char *p = patterns;
	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n > 0) {
			char pat[256];
			if (n >= sizeof(pat))
				n = sizeof(pat) - 1;
			memcpy(pat, p, n);
			pat[n] = '\0';
			if (fnmatch(pat, name, 0) == 0)
				return 1;
		}
		p = end;
	}
	return 0;
}

static int ro_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret)
{
	struct ro *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->self = self;
	pthread_rwlock_init(&r->lock, NULL);
	*ret = r;
	return 0;
}

static void ro_fini(void *state)
{
	struct ro *r = state;
	if (!r)
		return;
	pthread_rwlock_destroy(&r->lock);
	free(r->patterns);
	free(r);
}

static int apply(struct ro *r, const struct mallafs_cfg *cfg)
{
	const char *v = mallafs_setting(cfg, r->self, "keys");
	char *copy = strdup(v ? v : "");
	if (!copy)
		return -ENOMEM;
	pthread_rwlock_wrlock(&r->lock);
	free(r->patterns);
	r->patterns = copy;
	pthread_rwlock_unlock(&r->lock);
	return 0;
}

static int ro_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	return apply(state, cfg);
}

static int ro_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                    struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	const char *v = mallafs_setting(merged, ((struct ro *)state)->self, "keys");
	for (const char *c = v; c && *c; c++) {
		if (*c == '/') {
			mallafs_reason_set(why, "keys: a key name has no '/': '%s'", v);
			return -EINVAL;
		}
	}
	return 0;
}

static enum mallafs_update ro_updated(void *state, const struct mallafs_cfg *old,
                                      const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	if (apply(state, cfg) < 0) {
		mallafs_reason_set(why, "out of memory");
		return MALLAFS_UPDATE_ERROR;
	}
	return MALLAFS_UPDATE_OK;
}

static int ro_store_before(void *state, struct mallafs_store_op *op)
{
	struct ro *r = state;
	if (op->code == MALLAFS_OP_GET || op->code == MALLAFS_OP_LIST)
		return 0;
	int hit;
	pthread_rwlock_rdlock(&r->lock);
	hit = matches(r->patterns, op->key) ||
	      (op->code == MALLAFS_OP_RENAME && matches(r->patterns, op->new_key));
	pthread_rwlock_unlock(&r->lock);
	if (!hit)
		return 0;
	mallafs_reason_set(op->why, "%s is read-only", op->key);
	return -EPERM;
}

const struct mallafs_plugin mallafs_plugin = {
        MALLAFS_PLUGIN_INIT,      .name = "readonly",    .settings = settings,
        .init = ro_init,          .fini = ro_fini,       .start = ro_start,
        .config_merge = ro_merge, .updated = ro_updated, .store_before = ro_store_before,
};
