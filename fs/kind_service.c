/* SPDX-License-Identifier: MIT */
/* A service's family: its folder services/NAME/, the files status, chain
 * and config.ini, the files its plugins publish, and plugins/ with one
 * empty folder per plugin of the chain. store/ is the values' family,
 * config/ the service configuration's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "service.h"

/* ---- services/NAME/ ---- */

struct has_name {
	const char *name;
	bool found;
};

static int match_name(const char *name, void *arg)
{
	struct has_name *h = arg;
	if (strcmp(h->name, name) == 0) {
		h->found = true;
		return 1;
	}
	return 0;
}

static int svc_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	if (mfs_fixed_lookup(name, true, ret) == 0)
		return 0;
	struct has_name h = {name, false};
	if (msvc_files_foreach(c->svc, match_name, &h) >= 0 && h.found) {
		ret->kind = N_SVCFILE;
		return 0;
	}
	return -ENOENT;
}

static int list_file(const char *name, void *arg)
{
	return mfs_dir_add_next(arg, name, false);
}

static int svc_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	if (mfs_fixed_list(db, true))
		return 1;
	return msvc_files_foreach(c->svc, list_file, db);
}

const struct mfs_kind mfs_kind_svc = {
        .what = "a service",
        .flags = MK_DIR | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_SVCFILE,
        .lookup = svc_lookup,
        .list = svc_list,
};

/* ---- status ---- */

static int status_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	return mfs_rendered_svc(c, msvc_status_render(c->svc, ret, ret_len), ret, ret_len);
}

static int status_store(struct mfs_req *c, struct handle *h, const char *buf, size_t size,
                        off_t off)
{
	return msvc_set_admin_text(c->svc, buf, size);
}

const struct mfs_kind mfs_kind_status = {
        .what = "status",
        .flags = MK_RENDERED | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        MFS_RENDERED_OPS,
        .render = status_render,
        .store = status_store,
        .write = mfs_rendered_write,
};

/* ---- chain ---- */

static int chain_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	return mfs_rendered_svc(c, msvc_chain_render(c->svc, ret, ret_len), ret, ret_len);
}

const struct mfs_kind mfs_kind_chain = {
        .what = "chain",
        .flags = MK_RENDERED | MK_RDONLY | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        MFS_RENDERED_OPS,
        .render = chain_render,
};

/* ---- config.ini ---- */

static int ini_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	return mfs_rendered_svc(c, msvc_config_render(c->svc, ret, ret_len), ret, ret_len);
}

/* A document is one change (doc.c): each part reconfigures with what it
 * adds, and a refused part undoes the earlier ones (service_undo.c). */
static int ini_apply(struct mfs_req *c, void **state, const char *text, size_t len)
{
	struct mallafs_reason why = {{0}};
	if (!*state && !(*state = msvc_undo_new()))
		return -ENOMEM;
	return msvc_config_apply_ini_undo(c->svc, text, len, *state, &why);
}

/* Shared with config keys (kind_config.c). */
void mfs_config_undo(struct mfs_req *c, void *state)
{
	msvc_undo_apply(c->svc, state);
}

void mfs_config_undo_free(void *state)
{
	msvc_undo_free(state);
}

static const struct mfs_doc_ops ini_doc = {
        .max = MFS_CONFIG_DOC_MAX,
        .apply = ini_apply,
        .undo = mfs_config_undo,
        .free = mfs_config_undo_free,
};

static int ini_store(struct mfs_req *c, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct mallafs_reason why = {{0}};
	if (!h)
		return msvc_config_apply_ini(c->svc, buf, size, &why);
	return mfs_doc_write(c, h, &ini_doc, buf, size, off);
}

static int ini_flush(struct mfs_req *c, struct fuse_file_info *fi)
{
	return mfs_doc_flush(c, fi, &ini_doc);
}

const struct mfs_kind mfs_kind_config_ini = {
        .what = "config.ini",
        .flags = MK_RENDERED | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .open = mfs_rendered_open,
        .read = mfs_rendered_read,
        .poll = mfs_rendered_poll,
        .truncate = mfs_rendered_truncate,
        .render = ini_render,
        .store = ini_store,
        .write = mfs_rendered_write,
        .flush = ini_flush,
        .release = mfs_rendered_release,
};

/* ---- files published by plugins (trace, metrics, ...) ---- */

static int svcfile_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	return mfs_rendered_svc(c, msvc_file_render(c->svc, c->name, ret, ret_len), ret, ret_len);
}

const struct mfs_kind mfs_kind_svcfile = {
        .what = "a plugin's file",
        .flags = MK_RENDERED | MK_RDONLY | MK_IN_SVC,
        MFS_RENDERED_OPS,
        .render = svcfile_render,
};

/* ---- plugins/ ---- */

static int plugins_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	ret->kind = N_PLUGIN;
	return msvc_has_plugin(c->svc, name) ? 0 : -ENOENT;
}

/* The chain's order, top to bottom. */
static int plugins_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	char *text = NULL, *save = NULL;
	size_t len;
	int r = msvc_chain_render(c->svc, &text, &len);
	for (char *t = r == 0 ? strtok_r(text, "\n", &save) : NULL; t;
	     t = strtok_r(NULL, "\n", &save))
		if (mfs_dir_add_next(db, t, true))
			break;
	free(text);
	return r;
}

static int plugins_mkdir(struct mfs_req *c, const char *name)
{
	struct mallafs_reason why = {{0}};
	return msvc_add_plugin(c->svc, name, &why);
}

static int plugins_rmdir(struct mfs_req *c, const char *name)
{
	struct mallafs_reason why = {{0}};
	return msvc_del_plugin(c->svc, name, &why);
}

const struct mfs_kind mfs_kind_plugins = {
        .what = "plugins/",
        .flags = MK_DIR | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_PLUGIN,
        .lookup = plugins_lookup,
        .list = plugins_list,
        .mkdir = plugins_mkdir,
        .rmdir = plugins_rmdir,
};

/* ---- plugins/P/: empty ---- */

static int plugin_stat(struct mfs_req *c, struct stat *st)
{
	return msvc_has_plugin(c->svc, c->name) ? 0 : -ENOENT;
}

const struct mfs_kind mfs_kind_plugin = {
        .what = "a plugin",
        .flags = MK_DIR | MK_IN_SVC,
        .standin = N_PLUGIN,
        .stat = plugin_stat,
};
