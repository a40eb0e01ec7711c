/* SPDX-License-Identifier: MIT */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "tree.h"
#include "util.h"

struct loaded {
	struct loaded *next;
	void *handle;
	struct mallafs_plugin desc; /* full-size copy: fields the object lacks read as NULL */
};

struct mplugreg {
	const struct mallafs_plugin *const *builtins;
	char *dir;
	pthread_mutex_t lock;
	struct loaded *loaded;
};

struct mplugreg *mplugreg_new(const struct mallafs_plugin *const *builtins, const char *plugin_dir)
{
	struct mplugreg *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	reg->builtins = builtins;
	if (plugin_dir) {
		reg->dir = strdup(plugin_dir);
		if (!reg->dir) {
			free(reg);
			return NULL;
		}
	}
	pthread_mutex_init(&reg->lock, NULL);
	return reg;
}

void mplugreg_free(struct mplugreg *reg)
{
	if (!reg)
		return;
	struct loaded *l = reg->loaded;
	while (l) {
		struct loaded *next = l->next;
		dlclose(l->handle);
		free(l);
		l = next;
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg->dir);
	free(reg);
}

int mplugreg_check(const struct mallafs_plugin *desc, const char *name, struct mallafs_reason *why)
{
	if (desc->abi != MALLAFS_PLUGIN_ABI) {
		mallafs_reason_set(why, "plugin %s: ABI version %u, this mallafs speaks %u", name,
		                   desc->abi, MALLAFS_PLUGIN_ABI);
		return -EINVAL;
	}
	/* The fields up to and including the name are what every version has. */
	size_t min = offsetof(struct mallafs_plugin, name) + sizeof(desc->name);
	if (desc->size < min) {
		mallafs_reason_set(why, "plugin %s: descriptor of %u bytes is too short", name,
		                   desc->size);
		return -EINVAL;
	}
	if (!desc->name || strcmp(desc->name, name) != 0) {
		mallafs_reason_set(why, "plugin %s: descriptor names itself '%s'", name,
		                   desc->name ? desc->name : "(null)");
		return -EINVAL;
	}
	/* Published files share the service folder with the fixed entries. */
	const struct mallafs_file *files =
	        desc->size >= offsetof(struct mallafs_plugin, files) + sizeof(desc->files)
	                ? desc->files
	                : NULL;
	for (const struct mallafs_file *f = files; f && f->name; f++) {
		if (mu_name_check_str(f->name, MU_NAME_STRICT) < 0 || !f->render ||
		    mtree_service_reserved(f->name)) {
			mallafs_reason_set(why, "plugin %s: cannot publish a file named '%s'", name,
			                   f->name);
			return -EINVAL;
		}
	}
	/* Settings show in config.ini, which must be able to write them back. */
	const struct mallafs_setting *settings =
	        desc->size >= offsetof(struct mallafs_plugin, settings) + sizeof(desc->settings)
	                ? desc->settings
	                : NULL;
	for (const struct mallafs_setting *st = settings; st && st->key; st++) {
		const char *bad;
		if (mcfg_key_check(st->key, &bad) < 0) {
			mallafs_reason_set(why, "plugin %s: setting '%s': %s", name, st->key, bad);
			return -EINVAL;
		}
	}
	return 0;
}

static const struct mallafs_plugin *find_builtin(struct mplugreg *reg, const char *name)
{
	for (const struct mallafs_plugin *const *p = reg->builtins; p && *p; p++)
		if (strcmp((*p)->name, name) == 0)
			return *p;
	return NULL;
}

static int load_object(struct mplugreg *reg, const char *name, const struct mallafs_plugin **ret,
                       struct mallafs_reason *why)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s.so", reg->dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		mallafs_reason_set(why, "plugin %s: path too long", name);
		return -ENAMETOOLONG;
	}
	if (access(path, F_OK) != 0) {
		mallafs_reason_set(why, "no plugin named %s", name);
		return -ENOENT;
	}
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		const char *e = dlerror();
		mallafs_reason_set(why, "plugin %s: cannot load: %s", name, e ? e : "?");
		return -EINVAL;
	}
	const struct mallafs_plugin *desc = dlsym(handle, MALLAFS_PLUGIN_SYMBOL);
	if (!desc) {
		mallafs_reason_set(why, "plugin %s: %s.so exports no '%s' descriptor", name, name,
		                   MALLAFS_PLUGIN_SYMBOL);
		dlclose(handle);
		return -EINVAL;
	}
	int r = mplugreg_check(desc, name, why);
	if (r < 0) {
		dlclose(handle);
		return r;
	}
	struct loaded *l = calloc(1, sizeof(*l));
	if (!l) {
		dlclose(handle);
		return -ENOMEM;
	}
	l->handle = handle;
	memcpy(&l->desc, desc, desc->size < sizeof(l->desc) ? desc->size : sizeof(l->desc));
	l->desc.size = sizeof(l->desc);
	l->next = reg->loaded;
	reg->loaded = l;
	*ret = &l->desc;
	return 0;
}

int mplugreg_find(struct mplugreg *reg, const char *name, const struct mallafs_plugin **ret,
                  struct mallafs_reason *why)
{
	if (mu_name_check_str(name, MU_NAME_STRICT) < 0) {
		mallafs_reason_set(why, "invalid plugin name");
		return -EINVAL;
	}
	const struct mallafs_plugin *b = find_builtin(reg, name);
	if (b) {
		*ret = b;
		return 0;
	}
	if (!reg->dir) {
		mallafs_reason_set(why, "no plugin named %s", name);
		return -ENOENT;
	}

	int r = 0;
	pthread_mutex_lock(&reg->lock);
	for (struct loaded *l = reg->loaded; l; l = l->next) {
		if (strcmp(l->desc.name, name) == 0) {
			*ret = &l->desc;
			goto out;
		}
	}
	r = load_object(reg, name, ret, why);
out:
	pthread_mutex_unlock(&reg->lock);
	return r;
}
