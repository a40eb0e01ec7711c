/* SPDX-License-Identifier: MIT */
/* A service's configuration: the effective configuration (the explicit one
 * plus the defaults of the chain's plugins), the merge phase, and the
 * transactional reconfigure behind config.ini and the config/ directory. The
 * rest of the service lives in service.c, service_chain.c and
 * service_store.c; the locks are described in service.h.
 *
 * Locks: msvc_reconfigure(), msvc_config_apply_ini() and the msvc_config_*()
 * changes take op_lock and hold it across the merge and update callbacks
 * and a restart they ask for (and the restart back to the old
 * configuration when that one fails to start); under it the committed
 * configuration is swapped with state_lock. msvc_config_effective() and msvc_config_render()
 * only read, under store_lock then state_lock. */
#include "service_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "events.h"
#include "tree.h"
#include "util.h"

/* The explicit configuration plus the defaults of the chain's plugins. */
static struct mallafs_cfg *effective_of(struct minst *const *chain, size_t n,
                                        const struct mallafs_cfg *cfg)
{
	struct mallafs_cfg *e = mcfg_dup(cfg);
	if (!e)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct mallafs_plugin *d = chain[i]->desc;
		for (const struct mallafs_setting *s = d->settings; s && s->key; s++) {
			if (mallafs_cfg_get(e, d->name, s->key))
				continue;
			if (mallafs_cfg_set(e, d->name, s->key, s->def) < 0) {
				mcfg_free(e);
				return NULL;
			}
		}
	}
	return e;
}

/* The merge phase over a chain, top to bottom. */
int msvc_merge_phase(struct minst *const *chain, size_t n, const struct mallafs_cfg *old,
                     const struct mallafs_cfg *update, struct mallafs_cfg **ret_new,
                     struct mallafs_reason *why)
{
	struct mallafs_cfg *acc = mcfg_dup(old);
	if (!acc)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct mallafs_plugin *d = chain[i]->desc;
		/* acc is this phase's own: each plugin gets what the one above
		 * left, with the update merged in again on top. */
		int r = mcfg_merge_scratch(acc, update);
		if (r == 0 && d->config_merge) {
			struct mallafs_reason pr = {{0}};
			r = d->config_merge(chain[i]->state, old, update, acc, &pr);
			if (r < 0) {
				mallafs_reason_set(why, "%s: %s", d->name,
				                   pr.text[0] ? pr.text : "configuration rejected");
				/* The key it names, in its own section unless it said. */
				if (pr.key[0] || pr.section[0])
					mallafs_reason_key(why,
					                   pr.section[0] ? pr.section : d->name,
					                   pr.key[0] ? pr.key : NULL);
			}
		}
		if (r < 0) {
			mcfg_free(acc);
			return r == -ENOMEM ? r : -EINVAL;
		}
	}
	*ret_new = acc;
	return 0;
}

void msvc_commit_cfg(struct mallafs_svc *svc, struct mallafs_cfg *cfg)
{
	pthread_mutex_lock(&svc->state_lock);
	struct mallafs_cfg *stale = svc->eff;
	svc->cfg = cfg;
	svc->eff = NULL;
	pthread_mutex_unlock(&svc->state_lock);
	mcfg_free(stale);
}

void msvc_forget_effective(struct mallafs_svc *svc)
{
	pthread_mutex_lock(&svc->state_lock);
	struct mallafs_cfg *stale = svc->eff;
	svc->eff = NULL;
	pthread_mutex_unlock(&svc->state_lock);
	mcfg_free(stale);
}

/* Keeps e as the effective configuration of cfg, if cfg is still the
 * committed one and nothing made one meanwhile. */
static void keep_effective(struct mallafs_svc *svc, const struct mallafs_cfg *cfg,
                           const struct mallafs_cfg *e)
{
	struct mallafs_cfg *d = mcfg_dup(e);
	pthread_mutex_lock(&svc->state_lock);
	if (d && svc->cfg == cfg && !svc->eff) {
		svc->eff = d;
		d = NULL;
	}
	pthread_mutex_unlock(&svc->state_lock);
	mcfg_free(d);
}

void msvc_emit_reconfigure(struct mallafs_svc *svc)
{
	char path[MTREE_PATH_MAX];
	msvc_path(svc, path, sizeof(path), NULL, NULL);
	mev_emit(svc->env.events, MEV_RECONFIGURE, path, NULL);
}

/* Tells the active plugins from chain[from] down, which were told of the
 * change from old to new, of the change back (top to bottom, the reverse of
 * the update phase); op_lock held. */
void msvc_tell_back(struct mallafs_svc *svc, size_t from, const struct mallafs_cfg *new,
                    const struct mallafs_cfg *old)
{
	for (size_t j = from; j < svc->nchain; j++) {
		struct minst *t = svc->chain[j];
		if (!t->active || !t->desc->updated)
			continue;
		struct mallafs_reason br = {{0}};
		if (t->desc->updated(t->state, new, old, &br) != MALLAFS_UPDATE_OK)
			mu_log(MU_LOG_WARNING, "service %s: %s: rolling back: %s", svc->name,
			       t->desc->name, br.text[0] ? br.text : "not ok");
	}
}

/* The restart the update phase asked for, new committed in place of old; op_lock
 * held. If it fails to start, the change is rolled back: old is committed
 * again, the plugins still active are told (those the failed start stopped
 * get old from their start callback), and the service restarts with old; if
 * that fails too, it stays failed and is retried (msvc_after_start). 0, or
 * -EIO with the failed start's reason in why. */
static int restart_or_roll_back(struct mallafs_svc *svc, struct mallafs_cfg *old,
                                const struct mallafs_cfg *new, const char *reason,
                                struct mallafs_reason *why)
{
	struct mallafs_reason failed = {{0}}, again = {{0}};
	if (msvc_restart(svc, reason, &failed) == 0)
		return 0;
	msvc_commit_cfg(svc, old);
	msvc_emit_reconfigure(svc);
	msvc_tell_back(svc, 0, new, old);
	char back[MALLAFS_REASON_MAX + 32];
	snprintf(back, sizeof(back), "rolling back: %s", failed.text);
	int r = msvc_restart(svc, back, &again);
	msvc_after_start(svc, r);
	if (r == 0)
		mallafs_reason_set(why, "restart failed, rolled back: %s", failed.text);
	else
		mallafs_reason_set(why,
		                   "restart failed, rolled back: %s; the old configuration "
		                   "failed to start too: %s",
		                   failed.text, again.text);
	return -EIO;
}

/* Reconfiguration, op_lock held. */
static int reconfigure_locked(struct mallafs_svc *svc, const struct mallafs_cfg *update,
                              struct mallafs_reason *why)
{
	struct mallafs_cfg *old = svc->cfg, *new = NULL, *eold = NULL, *enew = NULL;
	int r;

	if (svc->dead)
		return -ENOENT;
	r = msvc_merge_phase(svc->chain, svc->nchain, old, update, &new, why);
	if (r < 0)
		goto refused;

	eold = msvc_config_effective(svc);
	enew = effective_of(svc->chain, svc->nchain, new);
	if (!eold || !enew) {
		r = -ENOMEM;
		mallafs_reason_set(why, "out of memory");
		goto refused;
	}
	if (mcfg_equal(eold, enew)) {
		/* Nothing a plugin or a reader can see changed: no callbacks. */
		if (!mcfg_equal(old, new)) {
			msvc_commit_cfg(svc, new);
			keep_effective(svc, new, enew);
			mcfg_free(old);
		} else {
			mcfg_free(new);
		}
		r = 0;
		goto out;
	}

	msvc_commit_cfg(svc, new);
	keep_effective(svc, new, enew);

	bool want_restart = false;
	char restart_reason[MALLAFS_REASON_MAX + 64] = "";
	for (size_t i = svc->nchain; i-- > 0;) {
		struct minst *in = svc->chain[i];
		if (!in->active || !in->desc->updated)
			continue;
		struct mallafs_reason pr = {{0}};
		enum mallafs_update u = in->desc->updated(in->state, old, new, &pr);
		if (u == MALLAFS_UPDATE_RESTART && !want_restart) {
			want_restart = true;
			snprintf(restart_reason, sizeof(restart_reason), "%s: %s", in->desc->name,
			         pr.text[0] ? pr.text : "restart requested");
		} else if (u != MALLAFS_UPDATE_OK && u != MALLAFS_UPDATE_RESTART) {
			mallafs_reason_set(why, "%s: %s", in->desc->name,
			                   pr.text[0] ? pr.text : "update failed");
			/* Roll back: the configuration first, then tell the
			 * plugins already told, in the reverse order. */
			msvc_commit_cfg(svc, old);
			msvc_tell_back(svc, i + 1, new, old);
			mcfg_free(new);
			r = -EIO;
			goto refused_committed;
		}
	}
	msvc_emit_reconfigure(svc);
	if (want_restart && svc->started) {
		r = restart_or_roll_back(svc, old, new, restart_reason, why);
		if (r < 0) {
			mcfg_free(new);
			goto refused_committed;
		}
	}
	mcfg_free(old);
	r = 0;
	goto out;

refused:
	mcfg_free(new);
refused_committed:
	msvc_set_error(svc, why->text[0] ? why->text : strerror(-r));
out:
	mcfg_free(eold);
	mcfg_free(enew);
	return r;
}

int msvc_reconfigure(struct mallafs_svc *svc, const struct mallafs_cfg *update,
                     struct mallafs_reason *why)
{
	return msvc_reconfigure_undo(svc, update, NULL, why);
}

int msvc_reconfigure_undo(struct mallafs_svc *svc, const struct mallafs_cfg *update,
                          struct msvc_undo *u, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	if (!why)
		why = &local;
	why->text[0] = '\0';
	pthread_mutex_lock(&svc->op_lock);
	struct mallafs_cfg *prev = u ? mcfg_dup(svc->cfg) : NULL;
	int r = u && !prev ? -ENOMEM : reconfigure_locked(svc, update, why);
	if (r == 0 && u && msvc_undo_record(u, prev, svc->cfg, update) < 0)
		mu_log(MU_LOG_WARNING,
		       "service %s: out of memory: a refused document's "
		       "earlier part may not be undone",
		       svc->name);
	pthread_mutex_unlock(&svc->op_lock);
	mcfg_free(prev);
	return r;
}

int msvc_config_apply_ini(struct mallafs_svc *svc, const char *text, size_t len,
                          struct mallafs_reason *why)
{
	return msvc_config_apply_ini_undo(svc, text, len, NULL, why);
}

int msvc_config_apply_ini_undo(struct mallafs_svc *svc, const char *text, size_t len,
                               struct msvc_undo *u, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	struct mallafs_cfg *update = NULL;
	char err[MALLAFS_REASON_MAX];
	int line = 0;

	if (!why)
		why = &local;
	int r = mcfg_parse_ini(text, len, &update, &line, err, sizeof(err));
	if (r < 0) {
		mallafs_reason_set(why, "%s: %s", mtree_name(MTREE_CONFIG_INI), err);
		msvc_set_error(svc, why->text);
		return r;
	}
	/* A document applied in parts: each part applies what it adds. */
	struct mallafs_cfg *delta = NULL;
	r = msvc_undo_delta(u, update, &delta);
	if (r == 0)
		r = msvc_reconfigure_undo(svc, delta, u, why);
	if (r == 0 && u) {
		msvc_undo_applied(u, update);
		update = NULL;
	}
	mcfg_free(delta);
	mcfg_free(update);
	return r;
}

/* Runs a one-change update, refusing it first when check() says so. */
static int reconfigure_one(struct mallafs_svc *svc, struct mallafs_cfg *update,
                           int (*check)(struct mallafs_svc *svc, const struct mallafs_cfg *eff,
                                        struct mallafs_cfg *update, const char *section,
                                        const char *key),
                           const char *section, const char *key, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	if (!why)
		why = &local;
	why->text[0] = '\0';
	pthread_mutex_lock(&svc->op_lock);
	int r = -ENOENT;
	if (svc->dead)
		goto out;
	if (check) {
		struct mallafs_cfg *eff = msvc_config_effective(svc);
		r = eff ? check(svc, eff, update, section, key) : -ENOMEM;
		mcfg_free(eff);
		if (r < 0) {
			if (!why->text[0])
				mallafs_reason_set(why, "config %s%s%s: %s", section,
				                   key ? "/" : "", key ? key : "", strerror(-r));
			msvc_set_error(svc, why->text);
			goto out;
		}
		if (r > 0) {
			r = 0; /* nothing to do */
			goto out;
		}
	}
	r = reconfigure_locked(svc, update, why);
out:
	pthread_mutex_unlock(&svc->op_lock);
	return r;
}

static int check_names(const char *section, const char *key, struct mallafs_reason *why)
{
	if (mu_name_check_str(section, MU_NAME_STRICT) < 0) {
		mallafs_reason_set(why, "invalid section name");
		return -EINVAL;
	}
	const char *bad;
	if (key && mcfg_key_check(key, &bad) < 0) {
		mallafs_reason_set(why, "config %s: invalid key name '%s': %s", section, key, bad);
		return -EINVAL;
	}
	return 0;
}

int msvc_config_check_key(struct mallafs_svc *svc, const char *section, const char *key)
{
	struct mallafs_reason why = {{0}};
	int r = check_names(section, key, &why);
	if (r < 0)
		msvc_set_error(svc, why.text);
	return r;
}

int msvc_config_set(struct mallafs_svc *svc, const char *section, const char *key,
                    const char *value, size_t len, struct mallafs_reason *why)
{
	return msvc_config_set_undo(svc, section, key, value, len, NULL, why);
}

int msvc_config_set_undo(struct mallafs_svc *svc, const char *section, const char *key,
                         const char *value, size_t len, struct msvc_undo *u,
                         struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	if (!why)
		why = &local;
	int r = check_names(section, key, why);
	if (r == 0 && len > 0 && value[len - 1] == '\n')
		len--;
	if (r == 0 && memchr(value, '\0', len)) {
		mallafs_reason_set(why, "config %s/%s: a value cannot hold a NUL byte", section,
		                   key);
		r = -EINVAL;
	}
	if (r < 0) {
		msvc_set_error(svc, why->text);
		return r;
	}
	char *v = mu_memdup0(value, len);
	struct mallafs_cfg *update = mcfg_new();
	r = (v && update) ? mallafs_cfg_set(update, section, key, v) : -ENOMEM;
	if (r == 0)
		r = msvc_reconfigure_undo(svc, update, u, why);
	mcfg_free(update);
	free(v);
	return r;
}

/* A plugin's section whose last set key goes: the section goes too (it
 * shows while the plugin is in the chain, through the defaults), rather
 * than stay behind empty once the plugin leaves. A section the user made
 * stays. */
static bool unset_empties_plugin_section(struct mallafs_svc *svc, const char *section,
                                         const char *key)
{
	bool plugin = false;
	pthread_rwlock_rdlock(&svc->store_lock);
	struct minst *in = msvc_chain_find(svc, section);
	plugin = in && in->desc->settings && in->desc->settings[0].key;
	pthread_rwlock_unlock(&svc->store_lock);
	if (!plugin)
		return false;
	pthread_mutex_lock(&svc->state_lock);
	bool last = mcfg_section_len(svc->cfg, section) == 1 &&
	            mallafs_cfg_get(svc->cfg, section, key) != NULL;
	pthread_mutex_unlock(&svc->state_lock);
	return last;
}

static int check_unset(struct mallafs_svc *svc, const struct mallafs_cfg *eff,
                       struct mallafs_cfg *update, const char *section, const char *key)
{
	if (!mallafs_cfg_get(eff, section, key))
		return -ENOENT;
	/* A default that was never set: already what rm would give. */
	if (!mallafs_cfg_get(svc->cfg, section, key))
		return 1;
	if (unset_empties_plugin_section(svc, section, key))
		return mcfg_set_removed_section(update, section);
	return 0;
}

int msvc_config_unset(struct mallafs_svc *svc, const char *section, const char *key,
                      struct mallafs_reason *why)
{
	if (check_names(section, key, why) < 0)
		return -ENOENT; /* no file by a name that cannot exist */
	struct mallafs_cfg *update = mcfg_new();
	int r = update ? mcfg_set_removed_key(update, section, key) : -ENOMEM;

	if (r == 0)
		r = reconfigure_one(svc, update, check_unset, section, key, why);
	mcfg_free(update);
	return r;
}

static int check_add_section(struct mallafs_svc *svc, const struct mallafs_cfg *eff,
                             struct mallafs_cfg *update, const char *section, const char *key)
{
	return mcfg_has_section(eff, section) ? -EEXIST : 0;
}

static int check_del_section(struct mallafs_svc *svc, const struct mallafs_cfg *eff,
                             struct mallafs_cfg *update, const char *section, const char *key)
{
	if (!mcfg_has_section(eff, section))
		return -ENOENT;
	if (mcfg_section_len(eff, section) > 0)
		return -ENOTEMPTY;
	return 0;
}

int msvc_config_add_section(struct mallafs_svc *svc, const char *section,
                            struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	if (!why)
		why = &local;
	int r = check_names(section, NULL, why);
	if (r < 0) {
		msvc_set_error(svc, why->text);
		return r;
	}
	struct mallafs_cfg *update = mcfg_new();
	r = update ? mcfg_add_section(update, section) : -ENOMEM;
	if (r == 0)
		r = reconfigure_one(svc, update, check_add_section, section, NULL, why);
	mcfg_free(update);
	return r;
}

int msvc_config_del_section(struct mallafs_svc *svc, const char *section,
                            struct mallafs_reason *why)
{
	if (mu_name_check_str(section, MU_NAME_STRICT) < 0)
		return -ENOENT;
	struct mallafs_cfg *update = mcfg_new();
	int r = update ? mcfg_set_removed_section(update, section) : -ENOMEM;
	if (r == 0)
		r = reconfigure_one(svc, update, check_del_section, section, NULL, why);
	mcfg_free(update);
	return r;
}

struct mallafs_cfg *msvc_config_effective(struct mallafs_svc *svc)
{
	pthread_rwlock_rdlock(&svc->store_lock);
	pthread_mutex_lock(&svc->state_lock);
	if (!svc->eff)
		svc->eff = effective_of(svc->chain, svc->nchain, svc->cfg);
	/* A copy is one reference: the cache makes every read O(1). */
	struct mallafs_cfg *e = svc->eff ? mcfg_dup(svc->eff) : NULL;
	pthread_mutex_unlock(&svc->state_lock);
	pthread_rwlock_unlock(&svc->store_lock);
	return e;
}

int msvc_config_render(struct mallafs_svc *svc, char **ret_text, size_t *ret_len)
{
	struct mallafs_cfg *e = msvc_config_effective(svc);
	if (!e)
		return -ENOMEM;
	int r = mallafs_cfg_render(e, ret_text, ret_len);
	mcfg_free(e);
	return r;
}

int msvc_reconfigure_locked(struct mallafs_svc *svc, const struct mallafs_cfg *update,
                            struct mallafs_reason *why)
{
	return reconfigure_locked(svc, update, why);
}

struct mallafs_cfg *msvc_config_committed(struct mallafs_svc *svc)
{
	pthread_mutex_lock(&svc->state_lock);
	struct mallafs_cfg *c = svc->cfg ? mcfg_dup(svc->cfg) : mcfg_new();
	pthread_mutex_unlock(&svc->state_lock);
	return c;
}
