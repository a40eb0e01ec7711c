/* The FUSE low-level operations: each request finds its node, calls core
 * without holding the table lock, and replies with a positive errno.
 *
 * Caching: the skeleton, services and values (store keys, config/APP/KEY)
 * get long entry and attribute timeouts and keep their page cache across
 * opens while the value is unchanged; anything that changes them behind the
 * kernel's back is invalidated by the notifier. Control and generated files
 * (status, chain, config.ini, config keys, registry entries, plugin files)
 * are direct I/O with zero attribute timeouts: every read renders fresh and
 * every stat tells the current size. Entries that can vanish out of band
 * (config keys and sections, plugins, registry entries) have zero entry
 * timeouts. Failed lookups are not cached (no negative entries). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "events.h"
#include "fs_i.h"
#include "nodecfg.h"
#include "registry.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

#define LONG_TIMEOUT 3600.0

/* Readdir offsets: 1 and 2 are "." and "..". Listings of small, derived
 * folders count entries from 3; listings backed by core ids (services,
 * keys, registry entries, apps) use ID_BASE + id, so an offset stays valid
 * while entries come and go. */
#define ID_BASE 16

static struct mfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static bool kind_is_dir(enum mnode_kind k)
{
	switch (k) {
	case N_ROOT:
	case N_SERVICES:
	case N_REGISTRY:
	case N_NODECFG:
	case N_SVC:
	case N_STORE:
	case N_PLUGINS:
	case N_PLUGIN:
	case N_SCFG:
	case N_SECTION:
	case N_POOL:
	case N_APP:
		return true;
	default:
		return false;
	}
}

/* Files whose reads render state and whose writes are commands. */
static bool kind_is_control(enum mnode_kind k)
{
	switch (k) {
	case N_STATUS:
	case N_CHAIN:
	case N_CONFIG_INI:
	case N_SVCFILE:
	case N_SKEY:
	case N_REGNAME:
	case N_MEMBER:
		return true;
	default:
		return false;
	}
}

static bool kind_is_readonly(enum mnode_kind k)
{
	return k == N_CHAIN || k == N_SVCFILE || k == N_EVENTS;
}

static double entry_timeout(enum mnode_kind k)
{
	switch (k) {
	case N_SKEY:
	case N_SECTION:
	case N_PLUGIN:
	case N_SVCFILE:
	case N_REGNAME:
	case N_MEMBER:
		return 0.0;
	default:
		return LONG_TIMEOUT;
	}
}

static double attr_timeout(enum mnode_kind k)
{
	switch (k) {
	case N_ROOT:
	case N_SERVICES:
	case N_REGISTRY:
	case N_NODECFG:
	case N_EVENTS:
	case N_SVC:
	case N_STORE:
	case N_PLUGINS:
	case N_SCFG:
	case N_KEY:
	case N_APPKEY:
		return LONG_TIMEOUT;
	default:
		return 0.0;
	}
}

/* ---- rendering control and generated files ---- */

static int render_skey(struct mallafs_svc *svc, const char *section, const char *key,
		       char **ret, size_t *ret_len)
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

/* The text of a control or generated file, as one snapshot. */
static int render(struct mfs *fs, struct mnode *n, char **ret, size_t *ret_len)
{
	char name[MU_NAME_MAX + 1], pname[MU_NAME_MAX + 1];
	struct mallafs_svc *svc = mfs_node_svc(fs, n);
	int r = -ENOENT;

	mfs_node_name(fs, n, name, sizeof(name));
	mfs_node_parent_name(fs, n, pname, sizeof(pname));
	switch (n->kind) {
	case N_STATUS:
		r = svc ? msvc_status_render(svc, ret, ret_len) : -ENOENT;
		break;
	case N_CHAIN:
		r = svc ? msvc_chain_render(svc, ret, ret_len) : -ENOENT;
		break;
	case N_CONFIG_INI:
		r = svc ? msvc_config_render(svc, ret, ret_len) : -ENOENT;
		break;
	case N_SVCFILE:
		r = svc ? msvc_file_render(svc, name, ret, ret_len) : -ENOENT;
		break;
	case N_SKEY:
		r = svc ? render_skey(svc, pname, name, ret, ret_len) : -ENOENT;
		break;
	case N_REGNAME:
		r = mreg_render(mrt_registry(fs->rt), name, ret, ret_len);
		break;
	case N_MEMBER:
		r = mreg_pool_render(mrt_registry(fs->rt), pname, name, ret, ret_len);
		break;
	default:
		r = -EINVAL;
	}
	if (svc && r == 0 && !msvc_alive(svc)) {
		/* The service went while rendering: nothing is returned, and
		 * the caller, who frees *ret whatever happened, must not free
		 * it again. */
		free(*ret);
		*ret = NULL;
		*ret_len = 0;
		r = -ENOENT;
	}
	msvc_unref(svc);
	return r;
}

/* ---- attributes ---- */

static void set_times(struct stat *st, const struct timespec *m, const struct timespec *c)
{
	st->st_mtim = *m;
	st->st_atim = *m;
	st->st_ctim = *c;
}

static int node_stat(struct mfs *fs, struct mnode *n, struct stat *st)
{
	char name[MU_NAME_MAX + 1], pname[MU_NAME_MAX + 1];
	struct mallafs_svc *svc = NULL;
	int r = 0;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	set_times(st, &fs->born, &fs->born);
	if (kind_is_dir(n->kind)) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | (kind_is_readonly(n->kind) ? 0444 : 0644);
		st->st_nlink = 1;
	}

	mfs_node_name(fs, n, name, sizeof(name));
	mfs_node_parent_name(fs, n, pname, sizeof(pname));
	if (n->kind != N_ROOT && n->kind != N_SERVICES && n->kind != N_REGISTRY &&
	    n->kind != N_NODECFG && n->kind != N_EVENTS) {
		svc = mfs_node_svc(fs, n);
		if (svc && !msvc_alive(svc))
			r = -ENOENT;
	}

	if (r == 0) {
		switch (n->kind) {
		case N_KEY: {
			struct mkv_stat ks;
			r = msvc_store_stat(svc, name, &ks);
			if (r == 0) {
				st->st_size = (off_t)ks.size;
				set_times(st, &ks.mtime, &ks.ctime);
			}
			break;
		}
		case N_APPKEY: {
			struct mkv_stat ks;
			r = mnodecfg_stat(mrt_nodecfg(fs->rt), pname, name, &ks);
			if (r == 0) {
				st->st_size = (off_t)ks.size;
				set_times(st, &ks.mtime, &ks.ctime);
			}
			break;
		}
		case N_APP: {
			struct mkv_stat ks;
			r = mnodecfg_app_stat(mrt_nodecfg(fs->rt), name, &ks);
			if (r == 0)
				set_times(st, &ks.mtime, &ks.ctime);
			break;
		}
		case N_PLUGIN:
			r = msvc_has_plugin(svc, name) ? 0 : -ENOENT;
			break;
		case N_SECTION: {
			struct mallafs_cfg *e = msvc_config_effective(svc);
			r = !e ? -ENOMEM : mcfg_has_section(e, name) ? 0 : -ENOENT;
			mcfg_free(e);
			break;
		}
		case N_POOL: {
			struct mreg_entry re;
			r = mreg_stat(mrt_registry(fs->rt), name, NULL, &re);
			if (r == 0 && re.kind != 'p')
				r = -ENOENT;
			if (r == 0)
				set_times(st, &re.mtime, &re.mtime);
			break;
		}
		case N_REGNAME:
		case N_MEMBER: {
			struct mreg_entry re;
			if (n->kind == N_REGNAME)
				r = mreg_stat(mrt_registry(fs->rt), name, NULL, &re);
			else
				r = mreg_stat(mrt_registry(fs->rt), pname, name, &re);
			if (r == 0) {
				st->st_uid = re.uid;
				set_times(st, &re.mtime, &re.mtime);
			}
			break;
		}
		default:
			break;
		}
	}

	if (r == 0 && kind_is_control(n->kind)) {
		char *text = NULL;
		size_t len = 0;
		r = render(fs, n, &text, &len);
		if (r == 0)
			st->st_size = (off_t)len;
		free(text);
	}
	/* A control file made by create() exists, empty, until its first write
	 * makes it real or fails and leaves nothing behind. */
	if (r == -ENOENT && n->pending && !n->obj_id) {
		st->st_size = 0;
		r = 0;
	}
	st->st_blocks = (st->st_size + 511) / 512;
	msvc_unref(svc);
	return r;
}

/* ---- lookup ---- */

static const struct {
	const char *name;
	enum mnode_kind kind;
} root_entries[] = {
	{"services", N_SERVICES},
	{"registry", N_REGISTRY},
	{"config", N_NODECFG},
	{"events", N_EVENTS},
}, svc_entries[] = {
	{"store", N_STORE},   {"plugins", N_PLUGINS}, {"config", N_SCFG},
	{"config.ini", N_CONFIG_INI}, {"chain", N_CHAIN},    {"status", N_STATUS},
};

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

/* What (parent, name) is, if it exists: its kind, core id, and for a
 * service the service itself (a new reference). */
static int probe_child(struct mfs *fs, struct mnode *parent, const char *name,
		       enum mnode_kind *ret_kind, uint64_t *ret_id, struct mallafs_svc **ret_svc)
{
	struct mallafs_svc *svc = NULL;
	int r = -ENOENT;

	*ret_id = 0;
	*ret_svc = NULL;
	if (!kind_is_dir(parent->kind))
		return -ENOTDIR;
	if (parent->kind != N_ROOT && parent->kind != N_SERVICES && parent->kind != N_REGISTRY &&
	    parent->kind != N_NODECFG && parent->kind != N_POOL && parent->kind != N_APP) {
		svc = mfs_node_svc(fs, parent);
		if (!svc || !msvc_alive(svc)) {
			msvc_unref(svc);
			return -ENOENT;
		}
	}

	switch (parent->kind) {
	case N_ROOT:
		for (size_t i = 0; i < MU_ARRAY_SIZE(root_entries); i++) {
			if (strcmp(name, root_entries[i].name) == 0) {
				*ret_kind = root_entries[i].kind;
				r = 0;
			}
		}
		break;
	case N_SERVICES: {
		struct mallafs_svc *s = mrt_service_get(fs->rt, name);
		if (s) {
			*ret_kind = N_SVC;
			*ret_id = msvc_id(s);
			*ret_svc = s;
			r = 0;
		}
		break;
	}
	case N_SVC: {
		for (size_t i = 0; i < MU_ARRAY_SIZE(svc_entries); i++) {
			if (strcmp(name, svc_entries[i].name) == 0) {
				*ret_kind = svc_entries[i].kind;
				r = 0;
			}
		}
		struct has_name h = {name, false};
		if (r < 0 && msvc_files_foreach(svc, match_name, &h) >= 0 && h.found) {
			*ret_kind = N_SVCFILE;
			r = 0;
		}
		break;
	}
	case N_STORE: {
		struct mkv_stat st;
		r = msvc_store_stat(svc, name, &st);
		*ret_kind = N_KEY;
		*ret_id = r == 0 ? st.id : 0;
		break;
	}
	case N_PLUGINS:
		*ret_kind = N_PLUGIN;
		r = msvc_has_plugin(svc, name) ? 0 : -ENOENT;
		break;
	case N_SCFG:
	case N_SECTION: {
		struct mallafs_cfg *e = msvc_config_effective(svc);
		if (!e) {
			r = -ENOMEM;
		} else if (parent->kind == N_SCFG) {
			*ret_kind = N_SECTION;
			r = mcfg_has_section(e, name) ? 0 : -ENOENT;
		} else {
			*ret_kind = N_SKEY;
			r = mallafs_cfg_get(e, parent->name, name) ? 0 : -ENOENT;
		}
		mcfg_free(e);
		break;
	}
	case N_REGISTRY: {
		struct mreg_entry re;
		r = mreg_stat(mrt_registry(fs->rt), name, NULL, &re);
		*ret_kind = r == 0 && re.kind == 'p' ? N_POOL : N_REGNAME;
		*ret_id = r == 0 ? re.id : 0;
		break;
	}
	case N_POOL: {
		struct mreg_entry re;
		r = mreg_stat(mrt_registry(fs->rt), parent->name, name, &re);
		*ret_kind = N_MEMBER;
		*ret_id = r == 0 ? re.id : 0;
		break;
	}
	case N_NODECFG: {
		struct mkv_stat st;
		r = mnodecfg_app_stat(mrt_nodecfg(fs->rt), name, &st);
		*ret_kind = N_APP;
		*ret_id = r == 0 ? st.id : 0;
		break;
	}
	case N_APP: {
		struct mkv_stat st;
		r = mnodecfg_stat(mrt_nodecfg(fs->rt), parent->name, name, &st);
		*ret_kind = N_APPKEY;
		*ret_id = r == 0 ? st.id : 0;
		break;
	}
	default:
		r = -ENOENT;
	}
	msvc_unref(svc);
	if (r < 0) {
		msvc_unref(*ret_svc);
		*ret_svc = NULL;
		/* Names core refuses outright cannot exist. */
		return r == -EINVAL ? -ENOENT : r;
	}
	return 0;
}

/* Makes (or finds) the node for an existing child and replies with it. */
static void reply_child(fuse_req_t req, struct mfs *fs, struct mnode *parent, const char *name,
			enum mnode_kind kind, uint64_t id, struct mallafs_svc *svc,
			struct fuse_file_info *create_fi, bool pending)
{
	struct fuse_entry_param e;
	struct mnode *n = mfs_node_child(fs, parent, name, kind, id);
	int r = -ENOMEM;
	if (!n)
		goto fail;
	if (svc)
		mfs_node_set_svc(fs, n, svc);
	if (pending)
		n->pending = true;
	memset(&e, 0, sizeof(e));
	r = node_stat(fs, n, &e.attr);
	if (r < 0)
		goto fail;
	e.ino = n->ino;
	e.generation = 0;
	e.entry_timeout = entry_timeout(kind);
	e.attr_timeout = attr_timeout(kind);
	mfs_node_lookup_inc(fs, n);
	int sent = create_fi ? fuse_reply_create(req, &e, create_fi) : fuse_reply_entry(req, &e);
	if (sent != 0)
		mfs_node_forget(fs, n->ino, 1); /* the kernel never got it */
	mfs_node_put(fs, n);
	return;
fail:
	mfs_node_put(fs, n);
	fuse_reply_err(req, -r);
}

/* Names what the request acts on: a node's changes reach the kernel through
 * this very request. */
static void begin_on(struct mfs *fs, struct mnode *n)
{
	char name[MU_NAME_MAX + 1];
	mfs_node_name(fs, n, name, sizeof(name));
	mfs_req_begin(n->ino, 0, name, 0, NULL);
}

/* What a removed entry was, from where it lived. */
static enum mnode_kind standin_kind(enum mnode_kind parent)
{
	switch (parent) {
	case N_STORE:
		return N_KEY;
	case N_POOL:
		return N_MEMBER;
	case N_APP:
		return N_APPKEY;
	case N_SECTION:
		return N_SKEY;
	case N_SCFG:
		return N_SECTION;
	case N_PLUGINS:
		return N_PLUGIN;
	case N_SVC:
		return N_SVCFILE;
	case N_NODECFG:
		return N_APP;
	default:
		return N_REGNAME;
	}
}

/* The notifier's lookup of an entry it is about to unlink for watchers:
 * the object is gone, so a stand-in with no cache life answers. */
static void reply_child_standin(fuse_req_t req, struct mfs *fs, struct mnode *p, const char *name,
				enum mnode_kind kind)
{
	struct mnode *n = mfs_node_child(fs, p, name, kind, 0);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct fuse_entry_param e = {0};
	e.ino = n->ino;
	e.attr.st_ino = n->ino;
	e.attr.st_mode = kind_is_dir(kind) ? S_IFDIR | 0755 : S_IFREG | 0644;
	e.attr.st_nlink = kind_is_dir(kind) ? 2 : 1;
	e.attr.st_uid = fs->uid;
	e.attr.st_gid = fs->gid;
	mfs_node_lookup_inc(fs, n);
	if (fuse_reply_entry(req, &e) != 0)
		mfs_node_forget(fs, n->ino, 1);
	mfs_node_put(fs, n);
}

static void reply_standin(fuse_req_t req, struct mfs *fs, struct mnode *p, const char *name)
{
	reply_child_standin(req, fs, p, name, standin_kind(p->kind));
}

/* The notifier's create of an entry that exists: answered with it. */
static void echo_create_reply(fuse_req_t req, struct mfs *fs, struct mnode *p, const char *name,
			      struct fuse_file_info *fi)
{
	enum mnode_kind kind;
	uint64_t id;
	struct mallafs_svc *svc;
	int r = probe_child(fs, p, name, &kind, &id, &svc);
	msvc_unref(svc);
	if (r < 0 || kind_is_dir(kind)) {
		fuse_reply_err(req, r < 0 ? -r : EISDIR);
		return;
	}
	fi->direct_io = 1;
	fi->noflush = 1;
	fi->fh = 0;
	reply_child(req, fs, p, name, kind, id, NULL, fi, false);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs *fs = fs_of(req);
	enum mnode_kind kind;
	uint64_t id;
	struct mallafs_svc *svc;

	mfs_req_begin(0, parent, name, 0, NULL);
	struct mnode *p = mfs_node_get(fs, parent);
	enum mfs_echo echo =
		p && mfs_req_is_echo(fs, req) ? mfs_echo_for(fs, parent, name) : MFS_ECHO_NONE;
	if (echo == MFS_ECHO_CREATE) {
		/* The notifier is about to create what exists: the kernel must
		 * not know it yet. */
		fuse_reply_err(req, ENOENT);
		mfs_node_put(fs, p);
		mfs_req_end();
		return;
	}
	int r = p ? probe_child(fs, p, name, &kind, &id, &svc) : -ENOENT;
	/* Deleting for watchers, the notifier walks folders that went too
	 * (a section's keys, then the section): the kernel's own nodes answer. */
	struct mnode *known = NULL;
	if (r < 0 && echo == MFS_ECHO_NONE && p && mfs_req_is_echo(fs, req) &&
	    mfs_echo_current(fs) == MFS_ECHO_DELETE && (known = mfs_node_find(fs, p, name))) {
		reply_child_standin(req, fs, p, name, known->kind);
		mfs_node_put(fs, known);
		mfs_node_put(fs, p);
		mfs_req_end();
		return;
	}
	if (r < 0 && echo == MFS_ECHO_DELETE) {
		reply_standin(req, fs, p, name);
		mfs_node_put(fs, p);
		mfs_req_end();
		return;
	}
	if (r < 0) {
		/* A pending control file (created, not yet written) stays
		 * visible to its creator's follow-up lookups. */
		struct mnode *n = p ? mfs_node_find(fs, p, name) : NULL;
		if (n && n->pending && !n->obj_id) {
			reply_child(req, fs, p, name, n->kind, 0, NULL, NULL, true);
			mfs_node_put(fs, n);
			mfs_node_put(fs, p);
			mfs_req_end();
			return;
		}
		mfs_node_put(fs, n);
		fuse_reply_err(req, -r);
	} else {
		reply_child(req, fs, p, name, kind, id, svc, NULL, false);
		msvc_unref(svc);
	}
	mfs_node_put(fs, p);
	mfs_req_end();
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	mfs_node_forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mfs *fs = fs_of(req);
	for (size_t i = 0; i < count; i++)
		mfs_node_forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	struct stat st;
	mfs_req_begin(ino, 0, NULL, 0, NULL);
	struct mnode *n = mfs_node_get(fs, ino);
	int r = n ? node_stat(fs, n, &st) : -ENOENT;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, attr_timeout(n->kind));
	mfs_node_put(fs, n);
	mfs_req_end();
}

static int value_truncate(struct mfs *fs, struct mnode *n, uint64_t size)
{
	char name[MU_NAME_MAX + 1], pname[MU_NAME_MAX + 1];
	mfs_node_name(fs, n, name, sizeof(name));
	if (n->kind == N_KEY) {
		struct mallafs_svc *svc = mfs_node_svc(fs, n);
		int r = svc ? msvc_store_truncate(svc, name, size) : -ENOENT;
		msvc_unref(svc);
		return r;
	}
	mfs_node_parent_name(fs, n, pname, sizeof(pname));
	return mnodecfg_truncate(mrt_nodecfg(fs->rt), pname, name, size);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	struct stat st;
	int r = 0;
	struct mnode *n = mfs_node_get(fs, ino);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	begin_on(fs, n);
	r = node_stat(fs, n, &st);
	if (r < 0 || mfs_req_is_echo(fs, req))
		goto out;
	bool value = n->kind == N_KEY || n->kind == N_APPKEY;

	if ((to_set & FUSE_SET_ATTR_MODE) && (attr->st_mode & 07777) != (st.st_mode & 07777))
		r = -EPERM;
	if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != st.st_uid)
		r = -EPERM;
	if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != st.st_gid)
		r = -EPERM;
	if (r < 0)
		goto out;

	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (value)
			r = value_truncate(fs, n, (uint64_t)attr->st_size);
		else if (kind_is_dir(n->kind))
			r = -EISDIR;
		else if (kind_is_readonly(n->kind))
			r = -EACCES;
		/* Control files: truncation wipes nothing, like sysfs. */
		if (r < 0)
			goto out;
	}
	if (value && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		const struct timespec *m = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? NULL : &attr->st_mtim;
		char name[MU_NAME_MAX + 1], pname[MU_NAME_MAX + 1];
		mfs_node_name(fs, n, name, sizeof(name));
		if (n->kind == N_KEY) {
			struct mallafs_svc *svc = mfs_node_svc(fs, n);
			r = svc ? msvc_store_set_mtime(svc, name, m) : -ENOENT;
			msvc_unref(svc);
		} else {
			mfs_node_parent_name(fs, n, pname, sizeof(pname));
			r = mnodecfg_set_mtime(mrt_nodecfg(fs->rt), pname, name, m);
		}
		if (r < 0)
			goto out;
	}
	r = node_stat(fs, n, &st);
out:
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, attr_timeout(n->kind));
	mfs_node_put(fs, n);
	mfs_req_end();
}

/* ---- directories: mkdir, rmdir, readdir ---- */

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mfs *fs = fs_of(req);
	struct mallafs_reason why = {{0}};
	int r;
	mfs_req_begin(0, parent, name, 0, NULL);
	struct mnode *p = mfs_node_get(fs, parent);
	struct mallafs_svc *svc = p ? mfs_node_svc(fs, p) : NULL;
	if (!p) {
		r = -ENOENT;
		goto out;
	}
	if (mfs_req_is_echo(fs, req)) {
		r = 0; /* it exists already: answer with it */
		goto out;
	}
	switch (p->kind) {
	case N_SERVICES:
		r = mrt_service_create(fs->rt, name, &why);
		break;
	case N_PLUGINS:
		r = svc ? msvc_add_plugin(svc, name, &why) : -ENOENT;
		break;
	case N_SCFG:
		r = svc ? msvc_config_add_section(svc, name, &why) : -ENOENT;
		break;
	case N_REGISTRY:
		r = mreg_pool_create(mrt_registry(fs->rt), name);
		break;
	case N_NODECFG:
		r = mnodecfg_app_create(mrt_nodecfg(fs->rt), name);
		break;
	case N_STORE:
	default:
		r = kind_is_dir(p->kind) ? -EPERM : -ENOTDIR;
	}
out:
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		enum mnode_kind kind;
		uint64_t id;
		struct mallafs_svc *csvc;
		r = probe_child(fs, p, name, &kind, &id, &csvc);
		if (r < 0)
			fuse_reply_err(req, -r);
		else
			reply_child(req, fs, p, name, kind, id, csvc, NULL, false);
		msvc_unref(csvc);
	}
	msvc_unref(svc);
	mfs_node_put(fs, p);
	mfs_req_end();
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs *fs = fs_of(req);
	struct mallafs_reason why = {{0}};
	int r;
	mfs_req_begin(0, parent, name, 0, NULL);
	struct mnode *p = mfs_node_get(fs, parent);
	struct mallafs_svc *svc = p ? mfs_node_svc(fs, p) : NULL;
	if (!p) {
		r = -ENOENT;
		goto out;
	}
	if (mfs_req_is_echo(fs, req)) {
		r = 0; /* already gone */
		mfs_node_unhash(fs, p, name);
		goto out;
	}
	switch (p->kind) {
	case N_SERVICES:
		r = mrt_service_destroy(fs->rt, name);
		break;
	case N_PLUGINS:
		r = svc ? msvc_del_plugin(svc, name, &why) : -ENOENT;
		break;
	case N_SCFG:
		r = svc ? msvc_config_del_section(svc, name, &why) : -ENOENT;
		break;
	case N_REGISTRY:
		r = mreg_pool_destroy(mrt_registry(fs->rt), name);
		break;
	case N_NODECFG:
		r = mnodecfg_app_destroy(mrt_nodecfg(fs->rt), name);
		break;
	default: {
		/* The fixed folders cannot go; anything else is not a folder. */
		enum mnode_kind kind;
		uint64_t id;
		struct mallafs_svc *csvc;
		r = probe_child(fs, p, name, &kind, &id, &csvc);
		msvc_unref(csvc);
		if (r == 0)
			r = kind_is_dir(kind) ? -EBUSY : -ENOTDIR;
	}
	}
	if (r == 0)
		mfs_node_unhash(fs, p, name);
out:
	fuse_reply_err(req, -r);
	msvc_unref(svc);
	mfs_node_put(fs, p);
	mfs_req_end();
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, len;
	bool full;
	struct mfs *fs;
	struct mnode *dir;
	off_t next; /* index-based listings: the offset of the next entry */
	off_t skip; /* entries before this offset are skipped */
};

/* Adds one entry whose offset (the one the next readdir resumes from) is off. */
static bool dirbuf_add(struct dirbuf *db, const char *name, bool dir, off_t off)
{
	struct stat st = {0};
	st.st_mode = dir ? S_IFDIR : S_IFREG;
	/* d_ino: the node's if the kernel knows it, else a stable stand-in. */
	struct mnode *n = mfs_node_find(db->fs, db->dir, name);
	st.st_ino = n ? n->ino : ((mu_hash(name, strlen(name)) | (1ULL << 62)) & ~(1ULL << 63));
	mfs_node_put(db->fs, n);
	size_t need = fuse_add_direntry(db->req, NULL, 0, name, NULL, 0);
	if (db->len + need > db->size) {
		db->full = true;
		return false;
	}
	fuse_add_direntry(db->req, db->buf + db->len, db->size - db->len, name, &st, off);
	db->len += need;
	return true;
}

/* For index-based listings. */
static int dirbuf_next(struct dirbuf *db, const char *name, bool dir)
{
	off_t off = ++db->next;
	if (off <= db->skip)
		return 0;
	return dirbuf_add(db, name, dir, off) ? 0 : 1;
}

static int list_name_file(const char *name, void *arg)
{
	return dirbuf_next(arg, name, false);
}

static int list_service(const char *name, uint64_t id, void *arg)
{
	return dirbuf_add(arg, name, true, (off_t)(ID_BASE + id)) ? 0 : 1;
}

static int list_kv(const char *key, const struct mkv_stat *st, void *arg)
{
	return dirbuf_add(arg, key, false, (off_t)(ID_BASE + st->id)) ? 0 : 1;
}

static int list_app(const char *app, const struct mkv_stat *st, void *arg)
{
	return dirbuf_add(arg, app, true, (off_t)(ID_BASE + st->id)) ? 0 : 1;
}

static int list_reg(const struct mreg_entry *e, void *arg)
{
	return dirbuf_add(arg, e->name, e->kind == 'p', (off_t)(ID_BASE + e->id)) ? 0 : 1;
}

static int list_section(const char *section, void *arg)
{
	return dirbuf_next(arg, section, true);
}

static int list_cfg_key(const char *key, const char *value, void *arg)
{
	return dirbuf_next(arg, key, false);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	struct dirbuf db = {.req = req, .size = size, .fs = fs, .next = 2, .skip = off};
	int r = 0;
	mfs_req_begin(ino, 0, NULL, 0, NULL);
	struct mnode *n = mfs_node_get(fs, ino);
	struct mallafs_svc *svc = n ? mfs_node_svc(fs, n) : NULL;
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	if (!kind_is_dir(n->kind)) {
		r = -ENOTDIR;
		goto out;
	}
	db.dir = n;
	db.buf = malloc(size ? size : 1);
	if (!db.buf) {
		r = -ENOMEM;
		goto out;
	}
	if (off < 1 && !dirbuf_add(&db, ".", true, 1))
		goto reply;
	if (off < 2 && !dirbuf_add(&db, "..", true, 2))
		goto reply;
	uint64_t after = off > ID_BASE ? (uint64_t)(off - ID_BASE) : 0;

	switch (n->kind) {
	case N_ROOT:
		for (size_t i = 0; i < MU_ARRAY_SIZE(root_entries); i++)
			if (dirbuf_next(&db, root_entries[i].name, root_entries[i].kind != N_EVENTS))
				break;
		break;
	case N_SERVICES:
		r = mrt_service_list(fs->rt, after, list_service, &db);
		break;
	case N_SVC:
		if (!svc || !msvc_alive(svc)) {
			r = -ENOENT;
			break;
		}
		for (size_t i = 0; i < MU_ARRAY_SIZE(svc_entries); i++)
			if (dirbuf_next(&db, svc_entries[i].name, kind_is_dir(svc_entries[i].kind)))
				goto reply;
		r = msvc_files_foreach(svc, list_name_file, &db);
		break;
	case N_STORE:
		r = svc ? msvc_store_list(svc, after, list_kv, &db) : -ENOENT;
		break;
	case N_PLUGINS: {
		char *text = NULL, *save = NULL;
		size_t len;
		r = svc ? msvc_chain_render(svc, &text, &len) : -ENOENT;
		for (char *t = r == 0 ? strtok_r(text, "\n", &save) : NULL; t;
		     t = strtok_r(NULL, "\n", &save))
			if (dirbuf_next(&db, t, true))
				break;
		free(text);
		break;
	}
	case N_SCFG:
	case N_SECTION: {
		struct mallafs_cfg *e = svc ? msvc_config_effective(svc) : NULL;
		if (!e)
			r = svc ? -ENOMEM : -ENOENT;
		else if (n->kind == N_SCFG)
			r = mcfg_foreach_section(e, list_section, &db);
		else if (!mcfg_has_section(e, n->name))
			r = -ENOENT;
		else
			r = mallafs_cfg_foreach(e, n->name, list_cfg_key, &db);
		mcfg_free(e);
		break;
	}
	case N_PLUGIN:
		break;
	case N_REGISTRY:
		r = mreg_list(mrt_registry(fs->rt), after, list_reg, &db);
		break;
	case N_POOL:
		r = mreg_pool_list(mrt_registry(fs->rt), n->name, after, list_reg, &db);
		break;
	case N_NODECFG:
		r = mnodecfg_app_list(mrt_nodecfg(fs->rt), after, list_app, &db);
		break;
	case N_APP:
		r = mnodecfg_list(mrt_nodecfg(fs->rt), n->name, after, list_kv, &db);
		break;
	default:
		r = -ENOTDIR;
	}
	if (r > 0)
		r = 0; /* a callback stopped the listing: the buffer is full */
reply:
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, db.buf, db.len);
out:
	if (r < 0 && !db.buf)
		fuse_reply_err(req, -r);
	free(db.buf);
	msvc_unref(svc);
	mfs_node_put(fs, n);
	mfs_req_end();
}

/* ---- files: create, open, read, write, release ---- */

/* Per-open state of a control or generated file: the snapshot reads are
 * served from, rendered at the first read and again at every read from
 * offset 0 (as sysfs does). The events feed keeps its cursor here. */
struct handle {
	pthread_mutex_t lock;
	char *text;
	size_t len;
	bool have;
	uint64_t cursor;
	bool nonblock;
	/* config.ini and config keys: the document this open file has written
	 * so far (writers such as a shell's printf send one line a write), and
	 * how much of it was applied. Guarded by lock. */
	struct mu_buf doc;
	size_t applied;
	/* fs->lock guards these. Requests find a handle by its id and hold a
	 * reference, so a release racing a read never frees it under the read. */
	uint64_t id;
	unsigned refs;
	struct handle *hnext;
	struct fuse_pollhandle *ph;
	struct mnode *node; /* referenced while on its list */
	struct handle *poll_next;
};

static struct handle *handle_new(void)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (h)
		pthread_mutex_init(&h->lock, NULL);
	return h;
}

static void handle_destroy(struct mfs *fs, struct handle *h)
{
	if (h->node) {
		pthread_mutex_lock(&fs->lock);
		struct handle **pp = (struct handle **)&h->node->polls;
		while (*pp && *pp != h)
			pp = &(*pp)->poll_next;
		if (*pp)
			*pp = h->poll_next;
		if (h->ph)
			fuse_pollhandle_destroy(h->ph);
		pthread_mutex_unlock(&fs->lock);
		mfs_node_put(fs, h->node);
	}
	mfs_feed_forget(fs, h);
	pthread_mutex_destroy(&h->lock);
	mu_buf_free(&h->doc);
	free(h->text);
	free(h);
}

/* Files the open handles, giving fi->fh its id. */
static void handle_register(struct mfs *fs, struct handle *h, struct fuse_file_info *fi)
{
	pthread_mutex_lock(&fs->lock);
	h->id = ++fs->next_fh;
	h->refs = 1; /* the open file's */
	size_t s = h->id % MFS_HANDLE_BUCKETS;
	h->hnext = fs->handles[s];
	fs->handles[s] = h;
	pthread_mutex_unlock(&fs->lock);
	fi->fh = h->id;
}

/* The handle of an open file, referenced; NULL for files without one. */
static struct handle *handle_get(struct mfs *fs, struct fuse_file_info *fi)
{
	if (!fi || !fi->fh)
		return NULL;
	pthread_mutex_lock(&fs->lock);
	struct handle *h = fs->handles[fi->fh % MFS_HANDLE_BUCKETS];
	while (h && h->id != fi->fh)
		h = h->hnext;
	if (h)
		h->refs++;
	pthread_mutex_unlock(&fs->lock);
	return h;
}

void mfs_handle_put(struct mfs *fs, struct handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fs->lock);
	bool last = --h->refs == 0;
	pthread_mutex_unlock(&fs->lock);
	if (last)
		handle_destroy(fs, h);
}

/* The open file is closed: its id goes, and the handle with the last reference. */
static void handle_release(struct mfs *fs, uint64_t id)
{
	if (!id)
		return;
	pthread_mutex_lock(&fs->lock);
	struct handle **pp = &fs->handles[id % MFS_HANDLE_BUCKETS];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->hnext;
	struct handle *h = *pp;
	if (h)
		*pp = h->hnext;
	pthread_mutex_unlock(&fs->lock);
	mfs_handle_put(fs, h);
}

static bool canonical_pid(const char *s)
{
	uint64_t v;
	return s[0] != '0' && mu_parse_u64(s, &v) == 0 && v > 0 && v <= INT_MAX;
}

/* Opens an existing node; for values, decides whether the page cache holds. */
static int open_node(struct mfs *fs, struct mnode *n, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	int r = 0;

	if (kind_is_dir(n->kind))
		return -EISDIR;
	if (kind_is_readonly(n->kind) && acc != O_RDONLY)
		return -EACCES;

	if (n->kind == N_KEY || n->kind == N_APPKEY) {
		if (fi->flags & O_TRUNC) {
			r = value_truncate(fs, n, 0);
			if (r < 0)
				return r;
		}
		/* Opening for reading is the store's get: it passes the chain
		 * even when the data then comes from the kernel's cache. */
		if (n->kind == N_KEY && acc != O_WRONLY) {
			char name[MU_NAME_MAX + 1];
			mfs_node_name(fs, n, name, sizeof(name));
			struct mallafs_svc *svc = mfs_node_svc(fs, n);
			char none;
			struct mallafs_store_op op = {.code = MALLAFS_OP_GET,
						      .key = name,
						      .buf = &none,
						      .flags = MALLAFS_OPF_OPEN};
			r = svc ? (int)msvc_store_op(svc, &op) : -ENOENT;
			msvc_unref(svc);
			if (r < 0)
				return r;
		}
		struct stat st;
		r = node_stat(fs, n, &st);
		if (r < 0)
			return r;
		pthread_mutex_lock(&fs->lock);
		fi->keep_cache = !(fi->flags & O_TRUNC) && n->cache_ok &&
				 n->cache_mtime.tv_sec == st.st_mtim.tv_sec &&
				 n->cache_mtime.tv_nsec == st.st_mtim.tv_nsec;
		/* Opened without keep_cache, the kernel drops what it had. */
		n->cache_ok = true;
		n->cache_mtime = st.st_mtim;
		pthread_mutex_unlock(&fs->lock);
		fi->noflush = 1;
		return 0;
	}

	/* Control, generated and event files. */
	struct stat st;
	r = node_stat(fs, n, &st);
	if (r < 0)
		return r;
	struct handle *h = handle_new();
	if (!h)
		return -ENOMEM;
	if (n->kind == N_EVENTS) {
		h->cursor = mev_ring_next_seq(mrt_events(fs->rt));
		h->nonblock = (fi->flags & O_NONBLOCK) != 0;
	} else if (render(fs, n, &h->text, &h->len) == 0) {
		/* What poll() compares with until the first read. */
		h->have = true;
	}
	handle_register(fs, h, fi);
	fi->direct_io = 1;
	fi->noflush = 1;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	struct mnode *n = mfs_node_get(fs, ino);
	int r = -ENOENT;
	if (n) {
		begin_on(fs, n);
		if (mfs_req_is_echo(fs, req)) {
			/* An echo write goes straight through, touching no
			 * cache; its close waits for nothing (no FLUSH). */
			fi->direct_io = 1;
			fi->noflush = 1;
			fi->fh = 0;
			r = 0;
		} else {
			r = open_node(fs, n, fi);
		}
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else if (fuse_reply_open(req, fi) != 0) {
		handle_release(fs, fi->fh);
	}
	mfs_node_put(fs, n);
	mfs_req_end();
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	enum mnode_kind kind = N_KEY;
	bool pending = false;
	int r = 0;
	mfs_req_begin(0, parent, name, 0, NULL);
	struct mnode *p = mfs_node_get(fs, parent);
	struct mallafs_svc *svc = p ? mfs_node_svc(fs, p) : NULL;
	if (!p) {
		r = -ENOENT;
		goto fail;
	}
	if (mfs_req_is_echo(fs, req)) {
		echo_create_reply(req, fs, p, name, fi);
		msvc_unref(svc);
		mfs_node_put(fs, p);
		mfs_req_end();
		return;
	}
	switch (p->kind) {
	case N_STORE:
		kind = N_KEY;
		r = svc ? msvc_store_create(svc, name) : -ENOENT;
		break;
	case N_APP:
		kind = N_APPKEY;
		r = mnodecfg_create(mrt_nodecfg(fs->rt), p->name, name);
		break;
	case N_SECTION:
		kind = N_SKEY;
		pending = true;
		r = mu_name_check_str(name, MU_NAME_FILE);
		break;
	case N_REGISTRY:
		kind = N_REGNAME;
		pending = true;
		r = mu_name_check_str(name, MU_NAME_STRICT);
		break;
	case N_POOL:
		kind = N_MEMBER;
		pending = true;
		r = canonical_pid(name) ? 0 : -EINVAL;
		break;
	default:
		r = kind_is_dir(p->kind) ? -EPERM : -ENOTDIR;
	}
	if (r == -EEXIST && !(fi->flags & O_EXCL))
		r = 0; /* lost a race with another creator: open theirs */
	if (r < 0)
		goto fail;

	enum mnode_kind k2;
	uint64_t id = 0;
	struct mallafs_svc *csvc = NULL;
	if (probe_child(fs, p, name, &k2, &id, &csvc) == 0) {
		pending = false;
		kind = k2;
	} else if (!pending) {
		r = -ENOENT;
		goto fail;
	}
	msvc_unref(csvc);

	struct mnode *n = mfs_node_child(fs, p, name, kind, id);
	if (!n) {
		r = -ENOMEM;
		goto fail;
	}
	if (pending)
		n->pending = true;
	fi->flags &= ~O_TRUNC; /* just made, or opened as O_CREAT alone asks */
	r = open_node(fs, n, fi);
	if (r == 0) {
		reply_child(req, fs, p, name, kind, id, NULL, fi, pending);
	} else {
		fuse_reply_err(req, -r);
	}
	mfs_node_put(fs, n);
	msvc_unref(svc);
	mfs_node_put(fs, p);
	mfs_req_end();
	return;
fail:
	fuse_reply_err(req, -r);
	msvc_unref(svc);
	mfs_node_put(fs, p);
	mfs_req_end();
}

/* A config.ini document whose last line had no newline: applied now; an
 * error can only go to status and the log. */
static void finish_doc(struct mfs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = handle_get(fs, fi);
	struct mnode *n = h ? mfs_node_get(fs, ino) : NULL;
	if (n && n->kind == N_CONFIG_INI) {
		pthread_mutex_lock(&h->lock);
		if (h->doc.len > h->applied) {
			struct mallafs_svc *svc = mfs_node_svc(fs, n);
			if (svc)
				msvc_config_apply_ini(svc, h->doc.data, h->doc.len, NULL);
			msvc_unref(svc);
			h->applied = h->doc.len;
		}
		pthread_mutex_unlock(&h->lock);
	}
	mfs_node_put(fs, n);
	mfs_handle_put(fs, h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	finish_doc(fs, ino, fi);
	handle_release(fs, fi->fh);
	/* Created and closed without a write that made it real: gone. */
	struct mnode *n = mfs_node_get(fs, ino);
	if (n && n->pending && !n->obj_id && kind_is_control(n->kind)) {
		struct stat st;
		if (node_stat(fs, n, &st) == 0 && n->pending)
			mfs_node_unhash_self(fs, n);
	}
	mfs_node_put(fs, n);
	fuse_reply_err(req, 0);
}

void mfs_poll_wake(struct mfs *fs, struct mnode *n)
{
	pthread_mutex_lock(&fs->lock);
	for (struct handle *h = n->polls; h; h = h->poll_next)
		if (h->ph)
			fuse_lowlevel_notify_poll(h->ph);
	pthread_mutex_unlock(&fs->lock);
}

/* Like sysfs: readable always, and POLLPRI|POLLERR once the text differs
 * from what this open file last read (or saw at open). The kernel asks
 * again after every wake-up. */
static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	struct mfs *fs = fs_of(req);
	struct handle *h = handle_get(fs, fi);
	unsigned revents = POLLIN | POLLRDNORM;
	struct mnode *n = mfs_node_get(fs, ino);
	if (!n || !h) {
		/* Values and echo opens: plain files, always ready. */
		if (ph)
			fuse_pollhandle_destroy(ph);
		if (n && (n->kind == N_KEY || n->kind == N_APPKEY))
			revents |= POLLOUT | POLLWRNORM;
		fuse_reply_poll(req, revents);
		mfs_node_put(fs, n);
		mfs_handle_put(fs, h);
		return;
	}
	if (n->kind == N_EVENTS) {
		mfs_feed_poll(fs, h, ph, &h->cursor, &revents);
		fuse_reply_poll(req, revents);
		mfs_node_put(fs, n);
		mfs_handle_put(fs, h);
		return;
	}

	pthread_mutex_lock(&fs->lock);
	if (ph) {
		if (h->ph)
			fuse_pollhandle_destroy(h->ph);
		h->ph = ph;
	}
	if (!h->node) {
		h->node = n;
		n->refs++; /* kept until release */
		h->poll_next = n->polls;
		n->polls = h;
	}
	pthread_mutex_unlock(&fs->lock);

	char *text = NULL;
	size_t len = 0;
	int r = render(fs, n, &text, &len);
	pthread_mutex_lock(&h->lock);
	if (r < 0 || !h->have || len != h->len || (len && memcmp(text, h->text, len) != 0))
		revents |= POLLPRI | POLLERR;
	pthread_mutex_unlock(&h->lock);
	free(text);
	if (kind_is_control(n->kind) && !kind_is_readonly(n->kind))
		revents |= POLLOUT | POLLWRNORM;
	fuse_reply_poll(req, revents);
	mfs_node_put(fs, n);
	mfs_handle_put(fs, h);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	char name[MU_NAME_MAX + 1], pname[MU_NAME_MAX + 1];
	ssize_t r = 0;
	char *buf = NULL;
	struct mnode *n = mfs_node_get(fs, ino);
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	begin_on(fs, n);
	if (n->kind == N_EVENTS) {
		struct handle *h = handle_get(fs, fi);
		if (!h) {
			r = -EBADF;
			goto out;
		}
		/* The feed keeps the reference while the read is parked. */
		mfs_feed_read(fs, req, h, &h->cursor, h->nonblock || (fi->flags & O_NONBLOCK), size);
		goto done;
	}
	if (n->kind == N_KEY || n->kind == N_APPKEY) {
		buf = malloc(size ? size : 1);
		if (!buf) {
			r = -ENOMEM;
			goto out;
		}
		mfs_node_name(fs, n, name, sizeof(name));
		if (n->kind == N_KEY) {
			struct mallafs_svc *svc = mfs_node_svc(fs, n);
			struct mallafs_store_op op = {.code = MALLAFS_OP_GET,
						      .key = name,
						      .buf = buf,
						      .size = size,
						      .offset = (uint64_t)off,
						      .flags = MALLAFS_OPF_PAGE};
			r = svc ? (ssize_t)msvc_store_op(svc, &op) : -ENOENT;
			msvc_unref(svc);
		} else {
			mfs_node_parent_name(fs, n, pname, sizeof(pname));
			r = mnodecfg_read(mrt_nodecfg(fs->rt), pname, name, (uint64_t)off, buf, size);
		}
		if (r >= 0)
			fuse_reply_buf(req, buf, (size_t)r);
		goto out;
	}

	struct handle *h = handle_get(fs, fi);
	if (!h) {
		r = -EBADF;
		goto out;
	}
	pthread_mutex_lock(&h->lock);
	if (off == 0 || !h->have) {
		char *text = NULL;
		size_t len = 0;
		r = render(fs, n, &text, &len);
		if (r == 0) {
			free(h->text);
			h->text = text;
			h->len = len;
			h->have = true;
		} else if (r == -ENOENT && n->pending) {
			r = 0; /* created, never written: empty */
		}
	}
	if (r == 0) {
		size_t start = (size_t)off < h->len ? (size_t)off : h->len;
		size_t count = h->len - start < size ? h->len - start : size;
		fuse_reply_buf(req, h->text ? h->text + start : "", count);
	}
	pthread_mutex_unlock(&h->lock);
	mfs_handle_put(fs, h);
out:
	if (r < 0)
		fuse_reply_err(req, (int)-r);
done:
	free(buf);
	mfs_node_put(fs, n);
	mfs_req_end();
}

/* A write to a value. When a plugin changed what was written (or where),
 * the kernel's page cache no longer matches: it is told to drop it. */
static ssize_t write_value(struct mfs *fs, struct mnode *n, const char *buf, size_t size,
			   off_t off)
{
	char name[MU_NAME_MAX + 1], pname[MU_NAME_MAX + 1];
	mfs_node_name(fs, n, name, sizeof(name));
	ssize_t r;
	bool exact = true;
	if (n->kind == N_KEY) {
		struct mallafs_svc *svc = mfs_node_svc(fs, n);
		if (!svc)
			return -ENOENT;
		struct mallafs_store_op op = {.code = MALLAFS_OP_WRITE,
					      .key = name,
					      .data = buf,
					      .size = size,
					      .offset = (uint64_t)off};
		r = (ssize_t)msvc_store_op(svc, &op);
		exact = op.data == buf && op.size == size && op.offset == (uint64_t)off &&
			(r < 0 || (size_t)r == size);
		if (r >= 0)
			r = (ssize_t)size;
		msvc_unref(svc);
	} else {
		mfs_node_parent_name(fs, n, pname, sizeof(pname));
		r = mnodecfg_write(mrt_nodecfg(fs->rt), pname, name, (uint64_t)off, buf, size, 0);
	}
	struct stat st;
	if (r >= 0 && node_stat(fs, n, &st) == 0) {
		pthread_mutex_lock(&fs->lock);
		/* The kernel's pages now hold what it wrote: valid if that is
		 * exactly what the value became. */
		n->cache_ok = n->cache_ok && exact;
		n->cache_mtime = st.st_mtim;
		pthread_mutex_unlock(&fs->lock);
		if (!exact)
			mfs_notify_inval_inode(fs, n->ino);
	}
	return r;
}

/* What a write to config.ini or a config key applies. One write() is one
 * document (or value); later writes at the offset where the last one ended
 * extend it, and the whole of it is applied again (a deep merge applied
 * twice is applied once), so a document written a line at a time works.
 * config.ini applies up to its last complete line, the rest at release. */
static int config_doc(struct handle *h, const char *buf, size_t size, off_t off, bool ini,
		      const char **ret, size_t *ret_len)
{
	if (!h) {
		*ret = buf;
		*ret_len = size;
		return 0;
	}
	if (off == 0 || (size_t)off != h->doc.len) {
		h->doc.len = 0;
		h->applied = 0;
	}
	int r = mu_buf_append(&h->doc, buf, size);
	if (r < 0)
		return r;
	size_t len = h->doc.len;
	if (ini) {
		const char *nl = memrchr(h->doc.data, '\n', len);
		if (nl)
			len = (size_t)(nl - h->doc.data) + 1;
		else if (off != 0)
			len = h->applied; /* still inside one line: wait for its end */
	}
	*ret = h->doc.data;
	*ret_len = len;
	return 0;
}

static int write_control(fuse_req_t req, struct mfs *fs, struct mnode *n, struct handle *h,
			 const char *buf, size_t size, off_t off)
{
	char name[MU_NAME_MAX + 1], pname[MU_NAME_MAX + 1];
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct mallafs_reason why = {{0}};
	struct mallafs_svc *svc = mfs_node_svc(fs, n);
	int r;

	mfs_node_name(fs, n, name, sizeof(name));
	mfs_node_parent_name(fs, n, pname, sizeof(pname));
	switch (n->kind) {
	case N_STATUS:
		r = svc ? msvc_set_admin_text(svc, buf, size) : -ENOENT;
		break;
	case N_SKEY:
	case N_CONFIG_INI: {
		const char *doc;
		size_t len;
		bool ini = n->kind == N_CONFIG_INI;
		if (h)
			pthread_mutex_lock(&h->lock);
		r = svc ? config_doc(h, buf, size, off, ini, &doc, &len) : -ENOENT;
		if (r == 0 && (!ini || !h || len > h->applied || off == 0)) {
			if (ini)
				r = msvc_config_apply_ini(svc, doc, len, &why);
			else
				r = msvc_config_set(svc, pname, name, doc, len, &why);
			/* Applied or refused, it is done: never again at close. */
			if (h)
				h->applied = len;
		}
		if (h)
			pthread_mutex_unlock(&h->lock);
		break;
	}
	case N_REGNAME:
		r = mreg_register_text(mrt_registry(fs->rt), name, buf, size, ctx->uid);
		break;
	case N_MEMBER:
		r = mreg_pool_store(mrt_registry(fs->rt), pname, name, buf, size, ctx->uid);
		break;
	default:
		r = -EACCES;
	}
	msvc_unref(svc);
	if (r < 0 && n->pending && !n->obj_id) {
		/* A refused first write leaves no entry behind. */
		mfs_node_unhash_self(fs, n);
	}
	if (r == 0 && n->pending) {
		struct mreg_entry re;
		int s = n->kind == N_REGNAME
				? mreg_stat(mrt_registry(fs->rt), name, NULL, &re)
				: n->kind == N_MEMBER ? mreg_stat(mrt_registry(fs->rt), pname, name, &re)
						      : -ENOENT;
		pthread_mutex_lock(&fs->lock);
		n->pending = false;
		if (s == 0)
			n->obj_id = re.id;
		pthread_mutex_unlock(&fs->lock);
	}
	return r;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct mfs *fs = fs_of(req);
	ssize_t r;
	struct mnode *n = mfs_node_get(fs, ino);
	if (n)
		begin_on(fs, n);
	if (!n) {
		r = -ENOENT;
	} else if (mfs_req_is_echo(fs, req)) {
		r = (ssize_t)size; /* the echo of a change already made */
	} else if (n->kind == N_KEY || n->kind == N_APPKEY) {
		r = write_value(fs, n, buf, size, off);
	} else if (kind_is_readonly(n->kind)) {
		r = -EACCES;
	} else {
		struct handle *h = handle_get(fs, fi);
		r = write_control(req, fs, n, h, buf, size, off);
		if (r == 0) {
			r = (ssize_t)size;
			if (h) {
				pthread_mutex_lock(&h->lock);
				h->have = false; /* the next read renders the new state */
				pthread_mutex_unlock(&h->lock);
			}
		}
		mfs_handle_put(fs, h);
	}
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
	mfs_node_put(fs, n);
	mfs_req_end();
}

/* ---- unlink, rename ---- */

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs *fs = fs_of(req);
	struct mallafs_reason why = {{0}};
	int r;
	mfs_req_begin(0, parent, name, 0, NULL);
	struct mnode *p = mfs_node_get(fs, parent);
	struct mallafs_svc *svc = p ? mfs_node_svc(fs, p) : NULL;
	if (!p) {
		r = -ENOENT;
		goto out;
	}
	if (mfs_req_is_echo(fs, req)) {
		r = 0; /* already gone */
		mfs_node_unhash(fs, p, name);
		goto out;
	}
	switch (p->kind) {
	case N_STORE:
		r = svc ? msvc_store_delete(svc, name) : -ENOENT;
		break;
	case N_SECTION:
		r = svc ? msvc_config_unset(svc, p->name, name, &why) : -ENOENT;
		if (r == 0) {
			/* A plugin's key goes back to its default: the file the
			 * kernel just saw go is there again. */
			char *text;
			size_t len;
			if (render_skey(svc, p->name, name, &text, &len) == 0) {
				free(text);
				char path[3 * MU_NAME_MAX + 32];
				snprintf(path, sizeof(path), "services/%s/config/%s/%s",
					 msvc_name(svc), p->name, name);
				mfs_notify_created(fs, path);
			}
		}
		break;
	case N_REGISTRY: {
		struct mreg_entry re;
		r = mreg_stat(mrt_registry(fs->rt), name, NULL, &re);
		if (r == 0)
			r = re.kind == 'p' ? -EISDIR : mreg_unregister(mrt_registry(fs->rt), name);
		break;
	}
	case N_POOL:
		r = mreg_pool_unstore(mrt_registry(fs->rt), p->name, name);
		break;
	case N_APP:
		r = mnodecfg_delete(mrt_nodecfg(fs->rt), p->name, name);
		break;
	default: {
		enum mnode_kind kind;
		uint64_t id;
		struct mallafs_svc *csvc;
		r = probe_child(fs, p, name, &kind, &id, &csvc);
		msvc_unref(csvc);
		if (r == 0)
			r = kind_is_dir(kind) ? -EISDIR : -EPERM;
	}
	}
	if (r == -EINVAL)
		r = -ENOENT; /* a name that cannot exist */
	if (r == 0)
		mfs_node_unhash(fs, p, name);
out:
	fuse_reply_err(req, -r);
	msvc_unref(svc);
	mfs_node_put(fs, p);
	mfs_req_end();
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct mfs *fs = fs_of(req);
	int r = 0;
	uint64_t new_id = 0;
	mfs_req_begin(0, parent, name, newparent, newname);
	struct mnode *p = mfs_node_get(fs, parent);
	struct mnode *np = mfs_node_get(fs, newparent);
	struct mallafs_svc *svc = p ? mfs_node_svc(fs, p) : NULL;
	struct mallafs_svc *nsvc = np ? mfs_node_svc(fs, np) : NULL;
	if (!p || !np) {
		r = -ENOENT;
		goto out;
	}
	if (flags & ~RENAME_NOREPLACE) {
		r = -EINVAL; /* no RENAME_EXCHANGE or WHITEOUT for values */
		goto out;
	}
	if (p->kind == N_STORE && np->kind == N_STORE) {
		if (svc != nsvc) {
			r = -EXDEV; /* mv copies across services */
			goto out;
		}
		struct mkv_stat st;
		if ((flags & RENAME_NOREPLACE) && msvc_store_stat(svc, newname, &st) == 0) {
			r = -EEXIST;
			goto out;
		}
		r = msvc_store_rename(svc, name, newname);
		if (r == 0 && msvc_store_stat(svc, newname, &st) == 0)
			new_id = st.id;
	} else if (p->kind == N_APP && np->kind == N_APP) {
		struct mnodecfg *nc = mrt_nodecfg(fs->rt);
		struct mkv_stat st;
		if ((flags & RENAME_NOREPLACE) && mnodecfg_stat(nc, np->name, newname, &st) == 0) {
			r = -EEXIST;
			goto out;
		}
		r = mnodecfg_rename(nc, p->name, name, np->name, newname);
		if (r == 0 && mnodecfg_stat(nc, np->name, newname, &st) == 0)
			new_id = st.id;
	} else if ((p->kind == N_STORE || p->kind == N_APP) &&
		   (np->kind == N_STORE || np->kind == N_APP)) {
		r = -EXDEV;
	} else {
		r = -EPERM;
	}
	if (r == -EINVAL)
		r = -ENOENT;
	if (r == 0)
		mfs_node_move(fs, p, name, np, newname, new_id);
out:
	fuse_reply_err(req, -r);
	msvc_unref(svc);
	msvc_unref(nsvc);
	mfs_node_put(fs, p);
	mfs_node_put(fs, np);
	mfs_req_end();
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {0};
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = MU_NAME_MAX;
	sv.f_files = 1 << 30;
	sv.f_ffree = 1 << 30;
	sv.f_favail = 1 << 30;
	fuse_reply_statfs(req, &sv);
}

/* ---- the session ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with open: a control file can then ignore it, and a
	 * value is truncated through the chain in the same request. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Plain readdir: readdirplus would look up every entry of a big store. */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.release = op_release,
	.readdir = op_readdir,
	.statfs = op_statfs,
	.poll = op_poll,
};

const struct fuse_lowlevel_ops *mfs_lowlevel_ops(void)
{
	return &ops;
}

struct mfs *mfs_new(struct mrt *rt)
{
	struct mfs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	fs->rt = rt;
	fs->uid = getuid();
	fs->gid = getgid();
	mu_now_real(&fs->born);
	pthread_mutex_init(&fs->lock, NULL);
	if (mfs_nodes_init(fs) < 0) {
		mfs_free(fs);
		return NULL;
	}
	fs->root->kind = N_ROOT;
	return fs;
}

void mfs_free(struct mfs *fs)
{
	if (!fs)
		return;
	mfs_notifier_join(fs);
	mfs_nodes_fini(fs);
	pthread_mutex_destroy(&fs->lock);
	free(fs->mountpoint);
	free(fs);
}

int mfs_start(struct mfs *fs, struct fuse_session *se, const char *mountpoint)
{
	fs->se = se;
	if (!mountpoint)
		return -EINVAL;
	fs->mountpoint = strdup(mountpoint);
	if (!fs->mountpoint)
		return -ENOMEM;
	int r = mfs_feed_start(fs);
	if (r < 0)
		return r;
	r = mfs_notifier_start(fs);
	if (r < 0)
		mfs_feed_stop(fs);
	return r;
}

void mfs_stop(struct mfs *fs)
{
	mfs_notifier_stop(fs);
	mfs_feed_stop(fs);
}
