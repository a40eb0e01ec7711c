/* SPDX-License-Identifier: MIT */
/* A service's plugin chain: planning it from the declared plugins and their
 * dependencies, and adopting a new one (setup, adding and removing a
 * plugin). The rest of the service lives in service.c and service_store.c;
 * the locks are described in service.h.
 *
 * Locks: msvc_setup(), msvc_add_plugin() and msvc_del_plugin() take op_lock
 * and hold it throughout; under it the chain is planned (taking the plugin
 * registry's lock), swapped in with store_lock written, and the committed
 * configuration with state_lock. msvc_has_plugin() and msvc_chain_render()
 * only read, under store_lock. */
#include "service_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "events.h"
#include "plugin.h"
#include "tree.h"
#include "util.h"

/* Builds a chain order (top first) from declared names: each plugin above
 * all it depends on, declaration order kept among independent ones, base
 * last. A depth-first walk of the declared names in reverse, emitting each
 * plugin after its dependencies, gives the chain bottom first. */
struct plan {
	const struct mallafs_plugin **v; /* bottom first while building */
	size_t n, cap;
	const char *stack[64];
	size_t depth;
};

static bool plan_has(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i]->name, name) == 0)
			return true;
	return false;
}

static int plan_visit(struct mallafs_svc *svc, struct plan *p, const char *name,
                      struct mallafs_reason *why)
{
	if (strcmp(name, "base") == 0 || plan_has(p, name))
		return 0;
	for (size_t i = 0; i < p->depth; i++) {
		if (strcmp(p->stack[i], name) == 0) {
			struct mu_buf b = {0};
			for (size_t j = i; j < p->depth; j++)
				mu_buf_printf(&b, "%s -> ", p->stack[j]);
			mallafs_reason_set(why, "dependency cycle: %s%s", b.data ? b.data : "",
			                   name);
			mu_buf_free(&b);
			return -ELOOP;
		}
	}
	if (p->depth == MU_ARRAY_SIZE(p->stack)) {
		mallafs_reason_set(why, "dependencies nested too deep at %s", name);
		return -ELOOP;
	}

	const struct mallafs_plugin *desc;
	int r = mplugreg_find(svc->env.plugins, name, &desc, why);
	if (r < 0)
		return r;

	p->stack[p->depth++] = desc->name;
	for (const char *const *d = desc->deps; d && *d; d++) {
		r = plan_visit(svc, p, *d, why);
		if (r < 0)
			return r;
	}
	p->depth--;

	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		const struct mallafs_plugin **v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = desc;
	return 0;
}

/* A new chain array for the declared names, reusing svc's instances for the
 * plugins it already has and making (initialised, inactive) ones for the
 * rest. On failure nothing of svc changed. */
static int chain_plan(struct mallafs_svc *svc, char *const *declared, size_t ndeclared,
                      struct minst ***ret_chain, size_t *ret_n, struct mallafs_reason *why)
{
	struct plan p = {0};
	struct minst **chain = NULL;
	size_t n = 0;
	int r = 0;

	for (size_t i = ndeclared; i-- > 0;) {
		r = plan_visit(svc, &p, declared[i], why);
		if (r < 0)
			goto fail;
	}
	chain = calloc(p.n + 1, sizeof(*chain));
	if (!chain) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < p.n; i++) {
		const struct mallafs_plugin *desc = p.v[p.n - 1 - i];
		struct minst *in = NULL;
		for (size_t j = 0; j < svc->nchain; j++)
			if (svc->chain[j]->desc == desc)
				in = svc->chain[j];
		if (!in)
			in = msvc_inst_new(svc, desc, why, &r);
		if (!in)
			goto fail;
		chain[n++] = in;
	}
	chain[n++] = svc->chain[svc->nchain - 1]; /* base */
	free(p.v);
	*ret_chain = chain;
	*ret_n = n;
	return 0;
fail:
	/* Free only the instances made here. */
	for (size_t i = 0; i < n; i++) {
		bool old = false;
		for (size_t j = 0; j < svc->nchain; j++)
			old = old || svc->chain[j] == chain[i];
		if (!old)
			msvc_inst_free(chain[i]);
	}
	free(chain);
	free(p.v);
	return r;
}

static bool chain_contains(struct minst *const *chain, size_t n, const struct minst *in)
{
	for (size_t i = 0; i < n; i++)
		if (chain[i] == in)
			return true;
	return false;
}

/* Frees the instances of a planned chain that svc's chain does not hold. */
static void chain_discard(struct mallafs_svc *svc, struct minst **chain, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!chain_contains(svc->chain, svc->nchain, chain[i]))
			msvc_inst_free(chain[i]);
	free(chain);
}

/* ---- setup, add and remove plugins ---- */

static int names_dup(char *const *src, size_t n, const char *extra, bool extra_first, char ***ret)
{
	char **v = calloc(n + 1, sizeof(*v));
	size_t k = 0;
	if (!v)
		return -ENOMEM;
	if (extra && extra_first && !(v[k++] = strdup(extra)))
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (!(v[k++] = strdup(src[i])))
			goto fail;
	if (extra && !extra_first && !(v[k++] = strdup(extra)))
		goto fail;
	*ret = v;
	return 0;
fail:
	for (size_t i = 0; i < k; i++)
		free(v[i]);
	free(v);
	return -ENOMEM;
}

static void names_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Installs a chain and its declared names; the old ones are handed back. */
static void chain_swap(struct mallafs_svc *svc, struct minst ***chain, size_t *n, char ***declared,
                       size_t *ndeclared)
{
	char **od = svc->declared;
	size_t ond = svc->ndeclared;
	pthread_rwlock_wrlock(&svc->store_lock);
	struct minst **oc = svc->chain;
	size_t on = svc->nchain;
	svc->chain = *chain;
	svc->nchain = *n;
	svc->declared = *declared;
	svc->ndeclared = *ndeclared;
	pthread_rwlock_unlock(&svc->store_lock);
	/* Other plugins, other defaults. */
	msvc_forget_effective(svc);
	*chain = oc;
	*n = on;
	*declared = od;
	*ndeclared = ond;
}

static void emit_plugin(struct mallafs_svc *svc, enum mev_op op, const char *name)
{
	char path[MTREE_PATH_MAX];
	msvc_path(svc, path, sizeof(path), mtree_name(MTREE_PLUGINS), name);
	mev_emit(svc->env.events, op, path, NULL);
}

/* The update phase of a rechain, over the plugins of the new chain that
 * were already running (those that join are not started yet), bottom to
 * top, old and new being the committed configurations before and after.
 * A plugin that refuses: the configuration goes back to old and those told
 * before it are told of the change back; -EIO with the reason. A plugin
 * asking for a restart: want_restart and its reason. */
static int rechain_update(struct mallafs_svc *svc, struct mallafs_cfg *old,
                          const struct mallafs_cfg *new, char *restart_reason, size_t rlen,
                          struct mallafs_reason *why)
{
	for (size_t i = svc->nchain; i-- > 0;) {
		struct minst *in = svc->chain[i];
		if (!in->active || !in->desc->updated)
			continue;
		struct mallafs_reason pr = {{0}};
		enum mallafs_update u = in->desc->updated(in->state, old, new, &pr);
		if (u == MALLAFS_UPDATE_RESTART && !restart_reason[0]) {
			snprintf(restart_reason, rlen, "%s: %s", in->desc->name,
			         pr.text[0] ? pr.text : "restart requested");
		} else if (u != MALLAFS_UPDATE_OK && u != MALLAFS_UPDATE_RESTART) {
			mallafs_reason_set(why, "%s: %s", in->desc->name,
			                   pr.text[0] ? pr.text : "update failed");
			msvc_commit_cfg(svc, old);
			msvc_tell_back(svc, i + 1, new, old);
			return -EIO;
		}
	}
	return 0;
}

/* Adopts a new list of declared plugins (taking ownership of it): plan the
 * chain, run the merge phase with update (NULL: none) over it, then commit the
 * configuration and the chain, run the update phase over the plugins that
 * stay when update_phase says so (a reconfiguration that also changes the
 * chain), start the plugins that joined (bottom to top) and stop those that
 * left (top to bottom), then restart the service if a plugin asked. A
 * plugin refusing the update or failing to start puts everything back as it
 * was: -EIO with the reason. A restart that fails leaves the new chain and
 * configuration with the service failed (and retried): -EIO. */
static int rechain(struct mallafs_svc *svc, char **declared, size_t ndeclared,
                   const struct mallafs_cfg *update, bool update_phase, struct mallafs_reason *why)
{
	char restart_reason[MALLAFS_REASON_MAX + 64] = "";
	struct minst **chain = NULL;
	size_t n = 0;
	struct mallafs_cfg *new = NULL, *none = NULL;
	int r = chain_plan(svc, declared, ndeclared, &chain, &n, why);
	if (r < 0)
		goto fail;
	/* No update: the merge phase still runs, so the chain's plugins check
	 * the configuration staged for them. */
	if (!update && !(update = none = mcfg_new())) {
		r = -ENOMEM;
		goto fail;
	}
	r = msvc_merge_phase(chain, n, svc->cfg, update, &new, why);
	mcfg_free(none);
	if (r < 0)
		goto fail;

	struct mallafs_cfg *old_cfg = svc->cfg;
	msvc_commit_cfg(svc, new);
	chain_swap(svc, &chain, &n, &declared, &ndeclared);
	/* From here chain/n/declared hold the old chain. */

	if (update_phase &&
	    rechain_update(svc, old_cfg, new, restart_reason, sizeof(restart_reason), why) < 0) {
		chain_swap(svc, &chain, &n, &declared, &ndeclared);
		chain_discard(svc, chain, n);
		names_free(declared, ndeclared);
		mcfg_free(new);
		return -EIO;
	}
	if (svc->started) {
		size_t i = svc->nchain;
		while (i-- > 0) {
			struct minst *in = svc->chain[i];
			if (chain_contains(chain, n, in))
				continue;
			r = msvc_start_one(svc, in, why);
			if (r < 0)
				break;
		}
		if (r < 0) {
			for (size_t j = i + 1; j < svc->nchain; j++)
				if (!chain_contains(chain, n, svc->chain[j]))
					msvc_stop_one(svc, svc->chain[j]);
			msvc_commit_cfg(svc, old_cfg);
			chain_swap(svc, &chain, &n, &declared, &ndeclared);
			chain_discard(svc, chain, n);
			names_free(declared, ndeclared);
			mcfg_free(new);
			return -EIO;
		}
		for (size_t j = 0; j < n; j++)
			if (!chain_contains(svc->chain, svc->nchain, chain[j]))
				msvc_stop_one(svc, chain[j]);
	}
	for (size_t j = 0; j < svc->nchain; j++)
		if (!chain_contains(chain, n, svc->chain[j]))
			emit_plugin(svc, MEV_PLUGIN_ADD, svc->chain[j]->desc->name);
	for (size_t j = 0; j < n; j++) {
		if (chain_contains(svc->chain, svc->nchain, chain[j]))
			continue;
		emit_plugin(svc, MEV_PLUGIN_DEL, chain[j]->desc->name);
		msvc_inst_free(chain[j]);
	}
	free(chain);
	names_free(declared, ndeclared);
	mcfg_free(old_cfg);
	msvc_emit_reconfigure(svc);
	if (restart_reason[0] && svc->started) {
		struct mallafs_reason failed = {{0}};
		r = msvc_restart(svc, restart_reason, &failed);
		msvc_after_start(svc, r);
		if (r < 0) {
			mallafs_reason_set(why, "restart failed: %s", failed.text);
			return -EIO;
		}
	}
	return 0;
fail:
	if (chain)
		chain_discard(svc, chain, n);
	mcfg_free(new);
	names_free(declared, ndeclared);
	return r;
}

/* Whether plugins (n of them) is the list svc declares, in its order. */
static bool same_declared(const struct mallafs_svc *svc, const char *const *plugins, size_t n)
{
	if (n != svc->ndeclared)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(plugins[i], svc->declared[i]) != 0)
			return false;
	return true;
}

/* The checks of a declared list: no base, no name twice. */
static int check_declared(const char *const *plugins, size_t n, struct mallafs_reason *why)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(plugins[i], "base") == 0) {
			mallafs_reason_set(why, "base is always in the chain, last");
			return -EEXIST;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(plugins[i], plugins[j]) == 0) {
				mallafs_reason_set(why, "plugin %s named twice", plugins[i]);
				return -EEXIST;
			}
		}
	}
	return 0;
}

int msvc_setup(struct mallafs_svc *svc, const char *const *plugins, size_t nplugins,
               const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	char **declared = NULL;
	if (!why)
		why = &local;
	pthread_mutex_lock(&svc->op_lock);
	int r = check_declared(plugins, nplugins, why);
	if (r == 0)
		r = names_dup((char *const *)plugins, nplugins, NULL, false, &declared);
	if (r == 0)
		r = rechain(svc, declared, nplugins, cfg, false, why);
	pthread_mutex_unlock(&svc->op_lock);
	return r;
}

int msvc_add_plugin(struct mallafs_svc *svc, const char *name, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	char **declared = NULL;
	if (!why)
		why = &local;
	why->text[0] = '\0';
	pthread_mutex_lock(&svc->op_lock);
	int r = -ENOENT;
	if (svc->dead)
		goto out;
	r = -EINVAL;
	if (mu_name_check_str(name, MU_NAME_STRICT) < 0) {
		mallafs_reason_set(why, "invalid plugin name");
		goto refused;
	}
	r = -EEXIST;
	if (msvc_chain_find(svc, name)) {
		mallafs_reason_set(why, "plugin %s is already in the chain", name);
		goto refused;
	}
	/* A plugin added at run time goes on top of the chain. */
	r = names_dup(svc->declared, svc->ndeclared, name, true, &declared);
	if (r < 0)
		goto refused;
	r = rechain(svc, declared, svc->ndeclared + 1, NULL, false, why);
	if (r < 0)
		goto refused;
	mu_log(MU_LOG_INFO, "service %s: added plugin %s", svc->name, name);
	goto out;
refused:
	msvc_set_error(svc, why->text[0] ? why->text : strerror(-r));
out:
	pthread_mutex_unlock(&svc->op_lock);
	return r;
}

int msvc_del_plugin(struct mallafs_svc *svc, const char *name, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	char **declared = NULL;
	size_t k = 0;
	if (!why)
		why = &local;
	why->text[0] = '\0';
	pthread_mutex_lock(&svc->op_lock);
	int r = -ENOENT;
	if (svc->dead)
		goto out;
	struct minst *in = msvc_chain_find(svc, name);
	if (!in) {
		mallafs_reason_set(why, "plugin %s is not in the chain", name);
		goto refused;
	}
	r = -EBUSY;
	if (in->base) {
		mallafs_reason_set(why, "base cannot be removed");
		goto refused;
	}
	for (size_t i = 0; i < svc->nchain; i++) {
		for (const char *const *d = svc->chain[i]->desc->deps; d && *d; d++) {
			if (strcmp(*d, name) == 0) {
				mallafs_reason_set(why, "plugin %s needs %s",
				                   svc->chain[i]->desc->name, name);
				goto refused;
			}
		}
	}
	declared = calloc(svc->ndeclared + 1, sizeof(*declared));
	r = -ENOMEM;
	if (!declared)
		goto refused;
	for (size_t i = 0; i < svc->ndeclared; i++) {
		if (strcmp(svc->declared[i], name) == 0)
			continue;
		if (!(declared[k++] = strdup(svc->declared[i]))) {
			names_free(declared, k);
			goto refused;
		}
	}
	r = rechain(svc, declared, k, NULL, false, why);
	if (r < 0)
		goto refused;
	mu_log(MU_LOG_INFO, "service %s: removed plugin %s", svc->name, name);
	goto out;
refused:
	msvc_set_error(svc, why->text[0] ? why->text : strerror(-r));
out:
	pthread_mutex_unlock(&svc->op_lock);
	return r;
}

int msvc_redeclare_undo(struct mallafs_svc *svc, const char *const *plugins, size_t nplugins,
                        const struct mallafs_cfg *update, struct msvc_undo *u, bool *ret_rechained,
                        struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	struct mallafs_cfg *none = NULL, *prev = NULL;
	char **declared = NULL;
	bool rechained = false;
	if (!why)
		why = &local;
	why->text[0] = '\0';
	pthread_mutex_lock(&svc->op_lock);
	int r = -ENOENT;
	if (svc->dead)
		goto out;
	r = -ENOMEM;
	if (!update && !(update = none = mcfg_new()))
		goto refused;
	if (u && !(prev = mcfg_dup(svc->cfg)))
		goto refused;
	if (!plugins || same_declared(svc, plugins, nplugins)) {
		/* It sets last_error itself. */
		r = msvc_reconfigure_locked(svc, update, why);
		if (r < 0)
			goto out;
	} else {
		r = check_declared(plugins, nplugins, why);
		if (r == 0)
			r = names_dup((char *const *)plugins, nplugins, NULL, false, &declared);
		if (r == 0)
			r = rechain(svc, declared, nplugins, update, true, why);
		/* A restart that failed keeps the new chain and configuration
		 * (the service failed): the caller must know to undo them. */
		rechained = r == 0 || (r == -EIO && same_declared(svc, plugins, nplugins));
		if (rechained)
			mu_log(MU_LOG_INFO, "service %s: chain declared anew", svc->name);
	}
	if (u && (r == 0 || rechained) && msvc_undo_record(u, prev, svc->cfg, update) < 0)
		mu_log(MU_LOG_WARNING, "service %s: out of memory: this change may not be undone",
		       svc->name);
	if (r < 0)
		goto refused;
	goto out;
refused:
	msvc_set_error(svc, why->text[0] ? why->text : strerror(-r));
out:
	if (ret_rechained)
		*ret_rechained = rechained;
	pthread_mutex_unlock(&svc->op_lock);
	mcfg_free(prev);
	mcfg_free(none);
	return r;
}

bool msvc_has_plugin(struct mallafs_svc *svc, const char *name)
{
	pthread_rwlock_rdlock(&svc->store_lock);
	bool has = !svc->dead && msvc_chain_find(svc, name) != NULL;
	pthread_rwlock_unlock(&svc->store_lock);
	return has;
}

int msvc_chain_render(struct mallafs_svc *svc, char **ret_text, size_t *ret_len)
{
	struct mu_buf b = {0};
	int r = 0;
	pthread_rwlock_rdlock(&svc->store_lock);
	for (size_t i = 0; r == 0 && i < svc->nchain; i++)
		r = mu_buf_printf(&b, "%s\n", svc->chain[i]->desc->name);
	pthread_rwlock_unlock(&svc->store_lock);
	if (r < 0) {
		mu_buf_free(&b);
		return r;
	}
	*ret_text = mu_buf_steal(&b, ret_len);
	return *ret_text ? 0 : -ENOMEM;
}

int msvc_declared(struct mallafs_svc *svc, char ***ret, size_t *ret_n)
{
	char **v = NULL;
	pthread_rwlock_rdlock(&svc->store_lock);
	int r = svc->dead ? -ENOENT : names_dup(svc->declared, svc->ndeclared, NULL, false, &v);
	size_t n = svc->ndeclared;
	pthread_rwlock_unlock(&svc->store_lock);
	if (r < 0)
		return r;
	*ret = v;
	*ret_n = n;
	return 0;
}
