/* SPDX-License-Identifier: MIT */
/* The registry's family: registry/ (unique names and pools), a name, a
 * pool and a pool's member. A name or member is made by its first write
 * (create() leaves a pending node that its first write makes real or its
 * close removes); the writer's uid is what the PID rules check. In cluster
 * mode another node's entries show here as core keeps them: a name's text
 * "PID@NODE[ VALUE]", a member's file "PID@NODE"; core refuses writing or
 * removing them (EEXIST, EPERM). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "registry.h"
#include "runtime.h"

static struct mreg *registry(const struct mfs_req *c)
{
	return mrt_registry(c->fs->rt);
}

static void entry_times(struct stat *st, const struct mreg_entry *re)
{
	st->st_mtim = st->st_atim = st->st_ctim = re->mtime;
}

/* A name's or a member's: its process's owner and its last change. */
static int entry_stat(struct mfs_req *c, const char *name, const char *member, struct stat *st)
{
	struct mreg_entry re;
	int r = mreg_stat(registry(c), name, member, &re);
	if (r == 0) {
		st->st_uid = re.uid;
		entry_times(st, &re);
	}
	return r;
}

static int list_entry(const struct mreg_entry *e, void *arg)
{
	return mfs_dir_add(arg, e->name, e->kind == 'p', mfs_dir_id_off(e->cookie));
}

/* ---- registry/ ---- */

static int registry_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mreg_entry re;
	int r = mreg_stat(registry(c), name, NULL, &re);
	ret->kind = r == 0 && re.kind == 'p' ? N_POOL : N_REGNAME;
	ret->id = r == 0 ? re.id : 0;
	return r;
}

static int registry_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	return mreg_list(registry(c), mfs_dir_after(db), list_entry, db);
}

static int registry_mkdir(struct mfs_req *c, const char *name)
{
	int r = mreg_pool_make(registry(c), name, fuse_req_ctx(c->req)->uid);
	if (r == 0)
		mfs_perm_created(c, name);
	return r;
}

static int registry_rmdir(struct mfs_req *c, const char *name)
{
	return mreg_pool_destroy(registry(c), name);
}

static int registry_create(struct mfs_req *c, const char *name, enum mnode_kind *ret_kind,
                           bool *ret_pending)
{
	*ret_kind = N_REGNAME;
	*ret_pending = true;
	return mu_name_check_str(name, MU_NAME_STRICT);
}

static int registry_unlink(struct mfs_req *c, const char *name)
{
	struct mreg_entry re;
	int r = mreg_stat(registry(c), name, NULL, &re);
	if (r == 0)
		r = re.kind == 'p' ? -EISDIR : mreg_unregister(registry(c), name);
	return r;
}

const struct mfs_kind mfs_kind_registry = {
        .what = "registry/",
        .flags = MK_DIR,
        .mode = 01777, /* anyone registers; the sticky bit keeps others' names */
        .entry_timeout = MFS_LONG_TIMEOUT,
        .attr_timeout = MFS_LONG_TIMEOUT,
        .standin = N_REGNAME,
        .lookup = registry_lookup,
        .list = registry_list,
        .mkdir = registry_mkdir,
        .rmdir = registry_rmdir,
        .create = registry_create,
        .unlink = registry_unlink,
};

/* ---- registry/NAME ---- */

static int regname_stat(struct mfs_req *c, struct stat *st)
{
	return entry_stat(c, c->name, NULL, st);
}

static int regname_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	return mreg_render(registry(c), c->name, ret, ret_len);
}

/* ---- what one open file writes to a name or a member (doc.c) ---- */

/* What cat printed before the writer's first change and after its last. */
struct entry_undo {
	char *before; /* NULL: there was no entry */
	char *wrote;
	bool recorded;
};

static int entry_render(struct mfs_req *c, const char *pool, char **ret)
{
	size_t len;
	int r = pool ? mreg_pool_render(registry(c), pool, c->name, ret, &len)
	             : mreg_render(registry(c), c->name, ret, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		*ret = NULL; /* no entry (a pool by that name: registering says EEXIST) */
	return 0;
}

/* An entry is one line: a second one refuses the document, before it
 * registers anything when it comes in the same write. */
static int entry_check(struct mfs_req *c, const char *text, size_t len)
{
	const char *nl = memchr(text, '\n', len);
	return nl && nl != text + len - 1 ? -EINVAL : 0;
}

static int entry_apply(struct mfs_req *c, void **state, const char *text, size_t len)
{
	const char *pool = c->kind == &mfs_kind_member ? c->pname : NULL;
	uid_t uid = fuse_req_ctx(c->req)->uid;
	struct entry_undo *u = *state;
	char *before = NULL;
	if (!u && !(u = *state = calloc(1, sizeof(*u))))
		return -ENOMEM;
	int r = u->recorded ? 0 : entry_render(c, pool, &before);
	if (r == 0)
		r = pool ? mreg_pool_store(registry(c), pool, c->name, text, len, uid)
		         : mreg_register_text(registry(c), c->name, text, len, uid);
	if (r == 0 && !u->recorded) {
		u->before = before;
		before = NULL;
		u->recorded = true;
	}
	if (r == 0) {
		free(u->wrote);
		if (entry_render(c, pool, &u->wrote) < 0)
			u->wrote = NULL; /* not undoable, as if changed since */
	}
	free(before);
	return r;
}

static void entry_undo_free(void *state)
{
	struct entry_undo *u = state;
	free(u->before);
	free(u->wrote);
	free(u);
}

static void entry_undo(struct mfs_req *c, void *state)
{
	struct entry_undo *u = state;
	if (u->recorded && u->wrote)
		mreg_revert(registry(c), c->kind == &mfs_kind_member ? c->pname : NULL, c->name,
		            u->wrote, u->before);
	free(u->before);
	free(u->wrote);
	*u = (struct entry_undo){0};
}

static const struct mfs_doc_ops entry_doc = {
        .max = (64u << 10),
        .check = entry_check,
        .apply = entry_apply,
        .undo = entry_undo,
        .free = entry_undo_free,
};

static int entry_store(struct mfs_req *c, struct handle *h, const char *buf, size_t size, off_t off)
{
	if (!h)
		return -EBADF;
	return mfs_doc_write(c, h, &entry_doc, buf, size, off);
}

static int entry_flush(struct mfs_req *c, struct fuse_file_info *fi)
{
	return mfs_doc_flush(c, fi, &entry_doc);
}

static uint64_t regname_id(struct mfs_req *c)
{
	struct mreg_entry re;
	return mreg_stat(registry(c), c->name, NULL, &re) == 0 ? re.id : 0;
}

const struct mfs_kind mfs_kind_regname = {
        .what = "a registered name",
        .flags = MK_RENDERED | MK_PENDING,
        MFS_RENDERED_OPS,
        .stat = regname_stat,
        .render = regname_render,
        .store = entry_store,
        .write = mfs_rendered_write,
        .flush = entry_flush,
        .id = regname_id,
};

/* ---- registry/POOL/ ---- */

static int pool_stat(struct mfs_req *c, struct stat *st)
{
	struct mreg_entry re;
	int r = mreg_stat(registry(c), c->name, NULL, &re);
	if (r == 0 && re.kind != 'p')
		r = -ENOENT;
	if (r == 0)
		entry_times(st, &re);
	return r;
}

static int pool_lookup(struct mfs_req *c, const char *name, struct mfs_child *ret)
{
	struct mreg_entry re;
	int r = mreg_stat(registry(c), c->name, name, &re);
	ret->kind = N_MEMBER;
	ret->id = r == 0 ? re.id : 0;
	return r;
}

static int pool_list(struct mfs_req *c, struct mfs_dirbuf *db)
{
	return mreg_pool_list(registry(c), c->name, mfs_dir_after(db), list_entry, db);
}

static int pool_create(struct mfs_req *c, const char *name, enum mnode_kind *ret_kind,
                       bool *ret_pending)
{
	*ret_kind = N_MEMBER;
	*ret_pending = true;
	return mreg_member_name_check(registry(c), name); /* PID@NODE: EPERM */
}

static int pool_unlink(struct mfs_req *c, const char *name)
{
	return mreg_pool_unstore(registry(c), c->name, name);
}

const struct mfs_kind mfs_kind_pool = {
        .what = "a pool",
        .flags = MK_DIR,
        .mode = 01777, /* as registry/ */
        .entry_timeout = MFS_LONG_TIMEOUT,
        .standin = N_MEMBER,
        .stat = pool_stat,
        .lookup = pool_lookup,
        .list = pool_list,
        .create = pool_create,
        .unlink = pool_unlink,
};

/* ---- registry/POOL/PID (PID@NODE: another node's, read-only) ---- */

static int member_stat(struct mfs_req *c, struct stat *st)
{
	return entry_stat(c, c->pname, c->name, st);
}

static int member_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	return mreg_pool_render(registry(c), c->pname, c->name, ret, ret_len);
}

static uint64_t member_id(struct mfs_req *c)
{
	struct mreg_entry re;
	return mreg_stat(registry(c), c->pname, c->name, &re) == 0 ? re.id : 0;
}

const struct mfs_kind mfs_kind_member = {
        .what = "a pool member",
        .flags = MK_RENDERED | MK_PENDING,
        MFS_RENDERED_OPS,
        .stat = member_stat,
        .render = member_render,
        .store = entry_store,
        .write = mfs_rendered_write,
        .flush = entry_flush,
        .id = member_id,
};
