/* SPDX-License-Identifier: MIT */
/* The derived files of a service (config.ini, the config keys and
 * sections, chain, plugins/, status, the plugins' files) change with a
 * reconfiguration, a restart or a plugin coming or going, without a request
 * on them. The notifier keeps what they said when it last looked, compares
 * it with what they say now, and echoes each difference, unless the
 * request that caused it acted on that very entry. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "echoes.h"
#include "resync.h"
#include "runtime.h"
#include "service.h"
#include "tree.h"

/* What a service's derived files said when the notifier last looked. */
struct mfs_snaps {
	struct mfs_snaps *next;
	char *name;
	struct mallafs_cfg *cfg; /* effective */
	char *ini, *chain, *status;
	char *files; /* published file names, one a line */
};

static void snap_free(struct mfs_snaps *s)
{
	if (!s)
		return;
	free(s->name);
	mcfg_free(s->cfg);
	free(s->ini);
	free(s->chain);
	free(s->status);
	free(s->files);
	free(s);
}

static int add_file_name(const char *name, void *arg)
{
	return mu_buf_printf(arg, "%s\n", name);
}

static struct mfs_snaps *snap_take(struct mallafs_svc *svc)
{
	struct mfs_snaps *s = calloc(1, sizeof(*s));
	size_t len;
	struct mu_buf files = {0};
	if (!s)
		return NULL;
	s->name = strdup(msvc_name(svc));
	s->cfg = msvc_config_effective(svc);
	if (!s->name || !s->cfg || msvc_config_render(svc, &s->ini, &len) < 0 ||
	    msvc_chain_render(svc, &s->chain, &len) < 0 ||
	    msvc_status_render_core(svc, &s->status, &len) < 0 ||
	    msvc_files_foreach(svc, add_file_name, &files) < 0 ||
	    !(s->files = mu_buf_steal(&files, NULL))) {
		mu_buf_free(&files);
		snap_free(s);
		return NULL;
	}
	return s;
}

static struct mfs_snaps **snap_slot(struct mfs_snaps **snaps, const char *name)
{
	struct mfs_snaps **pp = snaps;
	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	return pp;
}

struct echo_plan {
	struct mfs *fs;
	const struct mfs_target *target;
	const char *svc;
};

/* Echoes the change of services/SVC/A[/B[/C]] (a derived file or folder),
 * unless the request made it itself; poll() waiters are woken either way. */
static void derived(struct echo_plan *p, enum mfs_echo what, bool dir, const char *a, const char *b,
                    const char *c)
{
	char path[MTREE_PATH_MAX];
	if (mtree_join(path, sizeof(path), mtree_name(MTREE_SERVICES), p->svc, a, b, c, NULL) < 0)
		return;

	struct resolved r;
	mfs_resolve(p->fs, path, &r);
	bool mine = mfs_in_band(p->target, &r);
	if (mine && r.node && what == MFS_ECHO_MODIFY)
		mfs_poll_wake(p->fs, r.node);
	mfs_resolved_put(p->fs, &r);
	if (mine)
		return;
	if (what == MFS_ECHO_MODIFY)
		mfs_echo_modify(p->fs, path);
	else if (what == MFS_ECHO_CREATE)
		mfs_echo_create(p->fs, path, dir);
	else
		mfs_echo_delete(p->fs, path, dir);
}

struct cfg_diff {
	struct echo_plan *p;
	const struct mallafs_cfg *self, *other;
	const char *section;
	bool old_side;
};

static int diff_key(const char *key, const char *value, void *arg)
{
	struct cfg_diff *d = arg;
	const char *o = mallafs_cfg_get(d->other, d->section, key);
	const char *cfgdir = mtree_name(MTREE_SVC_CONFIG);
	if (d->old_side) {
		if (!o)
			derived(d->p, MFS_ECHO_DELETE, false, cfgdir, d->section, key);
	} else if (!o) {
		derived(d->p, MFS_ECHO_CREATE, false, cfgdir, d->section, key);
	} else if (strcmp(o, value) != 0) {
		derived(d->p, MFS_ECHO_MODIFY, false, cfgdir, d->section, key);
	}
	return 0;
}

/* One side's section against the other side: a section only on the old
 * side went, only on the new side came; for one on both, its keys. */
static int diff_section(const char *section, void *arg)
{
	struct cfg_diff *d = arg;
	if (!mcfg_has_section(d->other, section)) {
		/* A folder that goes takes its keys: their watchers (and the
		 * folder's) see each go first, as rm -r would show it. */
		if (d->old_side) {
			struct cfg_diff k = *d;
			k.section = section;
			mallafs_cfg_foreach(d->self, section, diff_key, &k);
		}
		derived(d->p, d->old_side ? MFS_ECHO_DELETE : MFS_ECHO_CREATE, true,
		        mtree_name(MTREE_SVC_CONFIG), section, NULL);
		return 0;
	}
	struct cfg_diff k = *d;
	k.section = section;
	return mallafs_cfg_foreach(d->self, section, diff_key, &k);
}

/* Lines of a that b lacks: what to create (or delete, swapped). */
/* sub: the folder of services/SVC/ they are in, NULL for SVC/ itself. */
static void diff_lines(struct echo_plan *p, const char *a, const char *b, enum mfs_echo what,
                       bool dir, const char *sub)
{
	const char *s = a;
	while (s && *s) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		char name[MU_NAME_MAX + 1];
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, s, n);
			name[n] = '\0';
			bool found = false;
			for (const char *t = b; t && *t;) {
				const char *te = strchr(t, '\n');
				size_t tn = te ? (size_t)(te - t) : strlen(t);
				if (tn == n && memcmp(t, s, n) == 0) {
					found = true;
					break;
				}
				t = te ? te + 1 : NULL;
			}
			if (!found)
				derived(p, what, dir, sub ? sub : name, sub ? name : NULL, NULL);
		}
		s = e ? e + 1 : NULL;
	}
}

void mfs_resync(struct mfs *fs, struct mfs_snaps **snaps, const char *name,
                const struct mfs_target *target)
{
	struct mfs_snaps **slot = snap_slot(snaps, name);
	struct mfs_snaps *old = *slot;
	struct mallafs_svc *svc = mrt_service_get(fs->rt, name);
	struct mfs_snaps *now = svc && msvc_alive(svc) ? snap_take(svc) : NULL;
	msvc_unref(svc);
	if (!now) {
		if (old) {
			*slot = old->next;
			snap_free(old);
		}
		return;
	}
	now->next = old ? old->next : NULL;
	*slot = now;
	if (!old)
		return; /* first sight: nothing to compare with */

	struct echo_plan p = {fs, target, name};
	/* Configuration: sections and keys that came, went or changed. */
	struct cfg_diff d = {&p, old->cfg, now->cfg, NULL, true};
	mcfg_foreach_section(old->cfg, diff_section, &d);
	d = (struct cfg_diff){&p, now->cfg, old->cfg, NULL, false};
	mcfg_foreach_section(now->cfg, diff_section, &d);
	if (strcmp(old->ini, now->ini) != 0)
		derived(&p, MFS_ECHO_MODIFY, false, mtree_name(MTREE_CONFIG_INI), NULL, NULL);
	if (strcmp(old->chain, now->chain) != 0) {
		derived(&p, MFS_ECHO_MODIFY, false, mtree_name(MTREE_CHAIN), NULL, NULL);
		diff_lines(&p, now->chain, old->chain, MFS_ECHO_CREATE, true,
		           mtree_name(MTREE_PLUGINS));
		diff_lines(&p, old->chain, now->chain, MFS_ECHO_DELETE, true,
		           mtree_name(MTREE_PLUGINS));
	}
	if (strcmp(old->files, now->files) != 0) {
		diff_lines(&p, now->files, old->files, MFS_ECHO_CREATE, false, NULL);
		diff_lines(&p, old->files, now->files, MFS_ECHO_DELETE, false, NULL);
	}
	if (strcmp(old->status, now->status) != 0)
		derived(&p, MFS_ECHO_MODIFY, false, mtree_name(MTREE_STATUS), NULL, NULL);
	snap_free(old);
}

static int add_service_name(const char *name, uint64_t cookie, void *arg)
{
	return mu_buf_printf(arg, "%s\n", name);
}

/* A first look at the services there before the mount (the bootstrap's).
 * The list is copied first: resync takes the runtime's lock itself. */
void mfs_resync_all(struct mfs *fs, struct mfs_snaps **snaps)
{
	struct mu_buf names = {0};
	struct mfs_target none = {0};
	if (mrt_service_list(fs->rt, 0, add_service_name, &names) == 0 && names.data) {
		char *save = NULL;
		for (char *n = strtok_r(names.data, "\n", &save); n;
		     n = strtok_r(NULL, "\n", &save))
			mfs_resync(fs, snaps, n, &none);
	}
	mu_buf_free(&names);
}

void mfs_snaps_free(struct mfs_snaps *s)
{
	while (s) {
		struct mfs_snaps *next = s->next;
		snap_free(s);
		s = next;
	}
}
