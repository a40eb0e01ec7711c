/* SPDX-License-Identifier: MIT */
/* A service's configuration: config/ (one folder per section), a section
 * (one file per key), and a key, whose writes reconfigure the service. A
 * plugin's section lists every setting the plugin declares, defaults
 * included, so the effective configuration is what is shown. */
#include <errno.h>
#include <stdlib.h>

#include "cfg.h"
#include "kind.h"
#include "service.h"
#include "tree.h"

/* ---- config/ ---- */

static int scfg_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mallafs_cfg *e = msvc_config_effective(c->svc);
	if (!e)
		return -ENOMEM;
	ret->kind = N_SECTION;
	int r = mcfg_has_section(e, name) ? 0 : -ENOENT;
	mcfg_free(e);
	return r;
}

static int list_section(const char *section, void *arg)
{
	return mfs_dir_add_next(arg, section, true);
}

static int scfg_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	struct mallafs_cfg *e = msvc_config_effective(c->svc);
	if (!e)
		return -ENOMEM;
	int r = mcfg_foreach_section(e, list_section, db);
	mcfg_free(e);
	return r;
}

static int scfg_mkdir(struct mfs_req *c, const char *name)
{
	struct mallafs_reason why = {{0}};
	return msvc_config_add_section(c->svc, name, &why);
}

static int scfg_rmdir(struct mfs_req *c, const char *name)
{
	struct mallafs_reason why = {{0}};
	return msvc_config_del_section(c->svc, name, &why);
}

const struct mfs_kind mfs_kind_scfg = {
        .what = "a service's config/",
        .flags = MK_DIR | MK_IN_SVC,
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_SECTION,
        .lookup = scfg_lookup,
        .list = scfg_list,
        .mkdir = scfg_mkdir,
        .rmdir = scfg_rmdir,
};

/* ---- config/SECTION/ ---- */

/* The text of config/SECTION/KEY: the value and a newline. */
static int key_text(struct mallafs_svc *svc, const char *section, const char *key, char **ret,
                    size_t *ret_len)
{
	struct mallafs_cfg *e = msvc_config_effective(svc);
	if (!e)
		return -ENOMEM;
	const char *v = mallafs_cfg_get(e, section, key);
	int r = -ENOENT;
	if (v) {
		struct mu_buf b = {0};
		r = mu_buf_printf(&b, "%s\n", v);
		if (r == 0)
			*ret = mu_buf_steal(&b, ret_len);
		else
			mu_buf_free(&b);
	}
	mcfg_free(e);
	return r;
}

static int section_stat(struct mfs_req *c, struct stat *st)
{
	struct mallafs_cfg *e = msvc_config_effective(c->svc);
	int r = !e ? -ENOMEM : mcfg_has_section(e, c->name) ? 0 : -ENOENT;
	mcfg_free(e);
	return r;
}

static int section_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mallafs_cfg *e = msvc_config_effective(c->svc);
	if (!e)
		return -ENOMEM;
	ret->kind = N_SKEY;
	int r = mallafs_cfg_get(e, c->name, name) ? 0 : -ENOENT;
	mcfg_free(e);
	return r;
}

static int list_key(const char *key, const char *value, void *arg)
{
	return mfs_dir_add_next(arg, key, false);
}

static int section_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	struct mallafs_cfg *e = msvc_config_effective(c->svc);
	int r;
	if (!e)
		r = -ENOMEM;
	else if (!mcfg_has_section(e, c->name))
		r = -ENOENT;
	else
		r = mallafs_cfg_foreach(e, c->name, list_key, db);
	mcfg_free(e);
	return r;
}

/* A new key exists once its first write reconfigures with it. */
static int section_create(struct mfs_req *c, const char *name, enum mnode_kind *ret_kind,
                          bool *ret_pending)
{
	*ret_kind = N_SKEY;
	*ret_pending = true;
	/* Refused here, at the create, not at the first write. */
	return msvc_config_check_key(c->svc, c->name, name);
}

static int section_unlink(struct mfs_req *c, const char *name)
{
	struct mallafs_reason why = {{0}};
	int r = msvc_config_unset(c->svc, c->name, name, &why);
	if (r < 0)
		return r;
	/* A plugin's key goes back to its default: the file the kernel just
	 * saw go is there again. */
	char *text;
	size_t len;
	if (key_text(c->svc, c->name, name, &text, &len) == 0) {
		free(text);
		char path[MTREE_PATH_MAX];
		if (mtree_join(path, sizeof(path), mtree_name(MTREE_SERVICES), msvc_name(c->svc),
		               mtree_name(MTREE_SVC_CONFIG), c->name, name, NULL) == 0)
			mfs_notify_created(c->fs, path);
	}
	return 0;
}

const struct mfs_kind mfs_kind_section = {
        .what = "a configuration section",
        .flags = MK_DIR | MK_IN_SVC,
        .standin = N_SKEY,
        .stat = section_stat,
        .lookup = section_lookup,
        .list = section_list,
        .create = section_create,
        .unlink = section_unlink,
};

/* ---- config/SECTION/KEY ---- */

static int skey_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	return mfs_rendered_svc(c, key_text(c->svc, c->pname, c->name, ret, ret_len), ret, ret_len);
}

/* The value is the document (doc.c): each part sets the key to the value
 * so far (one trailing newline dropped by core), a refused part puts back
 * the value it had before the first. */
static int skey_apply(struct mfs_req *c, void **state, const char *text, size_t len)
{
	struct mallafs_reason why = {{0}};
	if (!*state && !(*state = msvc_undo_new()))
		return -ENOMEM;
	return msvc_config_set_undo(c->svc, c->pname, c->name, text, len, *state, &why);
}

static const struct mfs_doc_ops skey_doc = {
        .max = MFS_CONFIG_DOC_MAX,
        .apply = skey_apply,
        .undo = mfs_config_undo,
        .free = mfs_config_undo_free,
};

static int skey_store(struct mfs_req *c, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct mallafs_reason why = {{0}};
	if (!h)
		return msvc_config_set(c->svc, c->pname, c->name, buf, size, &why);
	return mfs_doc_write(c, h, &skey_doc, buf, size, off);
}

static int skey_flush(struct mfs_req *c, struct fuse_file_info *fi)
{
	return mfs_doc_flush(c, fi, &skey_doc);
}

const struct mfs_kind mfs_kind_skey = {
        .what = "a configuration key",
        .flags = MK_RENDERED | MK_IN_SVC | MK_PENDING,
        MFS_RENDERED_OPS,
        .render = skey_render,
        .store = skey_store,
        .write = mfs_rendered_write,
        .flush = skey_flush,
};
