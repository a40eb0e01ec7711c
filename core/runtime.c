/* SPDX-License-Identifier: MIT */
#include "runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "clview.h"
#include "events.h"
#include "nodecfg.h"
#include "plugin.h"
#include "registry.h"
#include "retry.h"
#include "timer.h"
#include "service.h"
#include "slots.h"
#include "tree.h"
#include "util.h"

struct mrt {
	struct mev_ring *events;
	struct mreg *reg;
	struct mnodecfg *nodecfg;
	struct mplugreg *plugins;
	struct mclview *clview; /* cluster mode's, or NULL: set before serving */
	struct mretry *retry;
	struct mtimer_loop *timers;
	struct msvc_env env;
	char *mountpoint;
	/* The node's memory: every store and the node config charge it. */
	struct mkv_account account;

	/* lock: the services and the id counter. Never held across a plugin
	 * callback: services are started and stopped outside. */
	pthread_mutex_t lock;
	struct mslots *svcs; /* each service, referenced, at a stable position */
	uint64_t next_id;
	uint64_t list_steps; /* services the listings looked at (tests) */
};

/* A delay of the environment (tests make retries quick): name's value in
 * ms, or 0 (the default) when unset or not a number of 1 ms to 1 hour. */
static unsigned env_ms(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return 0;
	char *end;
	errno = 0;
	unsigned long ms = strtoul(v, &end, 10);
	if (errno || *end || ms < 1 || ms > 3600000ul || *v == '-') {
		mu_log(MU_LOG_WARNING, "%s=%s is not a delay of 1 to 3600000 ms: ignored", name, v);
		return 0;
	}
	return (unsigned)ms;
}

struct mrt *mrt_new(const struct mrt_options *opts)
{
	struct mrt *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	pthread_mutex_init(&rt->lock, NULL);
	rt->next_id = 1;
	rt->svcs = mslots_new();
	rt->events = mev_ring_new(opts->event_capacity ? opts->event_capacity : MRT_DEFAULT_EVENTS);
	rt->plugins = mplugreg_new(opts->builtins, opts->plugin_dir);
	rt->nodecfg = rt->events ? mnodecfg_new(rt->events) : NULL;
	rt->reg = rt->events ? mreg_new(rt->events) : NULL;
	unsigned base_ms =
	        opts->retry_base_ms ? opts->retry_base_ms : env_ms("MALLAFS_RETRY_BASE_MS");
	unsigned max_ms = opts->retry_max_ms ? opts->retry_max_ms : env_ms("MALLAFS_RETRY_MAX_MS");
	rt->timers = mtimer_loop_new(0, 0);
	rt->retry = rt->timers ? mretry_new(base_ms, max_ms, rt->timers) : NULL;
	if (opts->mountpoint)
		rt->mountpoint = strdup(opts->mountpoint);
	if (!rt->svcs || !rt->events || !rt->plugins || !rt->nodecfg || !rt->reg || !rt->retry ||
	    !rt->timers || (opts->mountpoint && !rt->mountpoint)) {
		int e = errno ? errno : ENOMEM;
		mrt_free(rt);
		errno = e;
		return NULL;
	}
	atomic_init(&rt->account.used, 0);
	atomic_init(&rt->account.limit, opts->max_memory);
	mnodecfg_set_account(rt->nodecfg, &rt->account);
	rt->env = (struct msvc_env){.plugins = rt->plugins,
	                            .events = rt->events,
	                            .mountpoint = rt->mountpoint,
	                            .account = &rt->account,
	                            .retry = rt->retry,
	                            .timers = rt->timers};
	return rt;
}

void mrt_free(struct mrt *rt)
{
	if (!rt)
		return;
	mrt_stop_all(rt);
	for (uint32_t pos = 0; rt->svcs && mslots_next(rt->svcs, pos, &pos); pos++) {
		struct mallafs_svc *svc = mslots_del(rt->svcs, pos);
		msvc_destroy(svc);
		msvc_unref(svc);
	}
	mslots_free(rt->svcs);
	/* After the services: msvc_destroy cancels their tries. */
	mretry_free(rt->retry);
	/* After the services too: their plugins' stop callbacks cancel their
	 * timers and may still want one to run (none does once stopped). */
	mtimer_loop_free(rt->timers);
	mreg_free(rt->reg);
	mnodecfg_free(rt->nodecfg);
	mclview_free(rt->clview);
	mplugreg_free(rt->plugins);
	mev_ring_free(rt->events);
	pthread_mutex_destroy(&rt->lock);
	free(rt->mountpoint);
	free(rt);
}

struct mev_ring *mrt_events(struct mrt *rt)
{
	return rt->events;
}

struct mreg *mrt_registry(struct mrt *rt)
{
	return rt->reg;
}

struct mnodecfg *mrt_nodecfg(struct mrt *rt)
{
	return rt->nodecfg;
}

int mrt_cluster_enable(struct mrt *rt)
{
	if (rt->clview)
		return -EEXIST;
	rt->clview = mclview_new(rt->events);
	return rt->clview ? 0 : -ENOMEM;
}

struct mclview *mrt_clview(struct mrt *rt)
{
	return rt->clview;
}

struct mplugreg *mrt_plugins(struct mrt *rt)
{
	return rt->plugins;
}

const struct mkv_account *mrt_account(struct mrt *rt)
{
	return &rt->account;
}

/* The service called name, and its position; the lock is held. A walk of
 * the services, as few as they are (each is threads and a store). */
static struct mallafs_svc *find_locked(struct mrt *rt, const char *name, uint32_t *ret_pos)
{
	for (uint32_t pos = 0; mslots_next(rt->svcs, pos, &pos); pos++) {
		struct mallafs_svc *svc = mslots_get(rt->svcs, pos);
		if (strcmp(msvc_name(svc), name) == 0) {
			if (ret_pos)
				*ret_pos = pos;
			return svc;
		}
	}
	return NULL;
}

int mrt_service_create_full(struct mrt *rt, const char *name, const char *const *plugins,
                            size_t nplugins, const struct mallafs_cfg *cfg, const char *admin,
                            struct mallafs_reason *why)
{
	struct mallafs_svc *svc = NULL;
	enum msvc_admin ad = MSVC_ADMIN_ACTIVE;
	int r;

	if (mu_name_check_str(name, MU_NAME_STRICT) < 0) {
		mallafs_reason_set(why, "invalid service name");
		return -EINVAL;
	}
	if (admin && msvc_admin_parse(admin, strlen(admin), &ad) < 0) {
		mallafs_reason_set(why, "admin must be active, pause or inactive");
		return -EINVAL;
	}
	r = msvc_new(&rt->env, name, &svc);
	if (r < 0) {
		mallafs_reason_set(why, "cannot create service %s: %s", name, strerror(-r));
		return r;
	}
	if (nplugins || cfg) {
		r = msvc_setup(svc, plugins, nplugins, cfg, why);
		if (r < 0)
			goto fail;
	}
	/* Claim the name first, so two creators never both start a service. */
	uint32_t pos;
	pthread_mutex_lock(&rt->lock);
	if (find_locked(rt, name, NULL)) {
		pthread_mutex_unlock(&rt->lock);
		mallafs_reason_set(why, "service %s exists", name);
		r = -EEXIST;
		goto fail;
	}
	r = mslots_add(rt->svcs, svc, &pos);
	if (r < 0) {
		pthread_mutex_unlock(&rt->lock);
		mallafs_reason_set(why, "cannot create service %s: %s", name, strerror(-r));
		goto fail;
	}
	msvc_set_id(svc, rt->next_id++);
	pthread_mutex_unlock(&rt->lock);

	char path[MTREE_PATH_MAX];
	mtree_join(path, sizeof(path), mtree_name(MTREE_SERVICES), name, NULL);
	mev_emit(rt->events, MEV_MKDIR, path, NULL);
	/* A service that fails to start stays, failed, for the user to see why. */
	if (msvc_set_admin(svc, ad) < 0)
		mu_log(MU_LOG_WARNING, "service %s: failed to start", name);
	return 0;
fail:
	msvc_destroy(svc);
	msvc_unref(svc);
	return r;
}

int mrt_service_create(struct mrt *rt, const char *name, struct mallafs_reason *why)
{
	return mrt_service_create_full(rt, name, NULL, 0, NULL, NULL, why);
}

int mrt_service_destroy(struct mrt *rt, const char *name)
{
	uint32_t pos;
	pthread_mutex_lock(&rt->lock);
	struct mallafs_svc *svc = find_locked(rt, name, &pos);
	if (svc)
		mslots_del(rt->svcs, pos);
	pthread_mutex_unlock(&rt->lock);
	if (!svc)
		return -ENOENT;

	msvc_destroy(svc);
	char path[MTREE_PATH_MAX];
	mtree_join(path, sizeof(path), mtree_name(MTREE_SERVICES), name, NULL);
	mev_emit(rt->events, MEV_RMDIR, path, NULL);
	msvc_unref(svc);
	return 0;
}

struct mallafs_svc *mrt_service_get(struct mrt *rt, const char *name)
{
	pthread_mutex_lock(&rt->lock);
	struct mallafs_svc *svc = find_locked(rt, name, NULL);
	if (svc)
		msvc_ref(svc);
	pthread_mutex_unlock(&rt->lock);
	return svc;
}

int mrt_service_list(struct mrt *rt, uint64_t cookie,
                     int (*fn)(const char *name, uint64_t cookie, void *arg), void *arg)
{
	int r = 0;
	pthread_mutex_lock(&rt->lock);
	for (uint32_t pos = mslots_resume(cookie); r == 0 && mslots_next(rt->svcs, pos, &pos);
	     pos++) {
		rt->list_steps++;
		r = fn(msvc_name(mslots_get(rt->svcs, pos)), mslots_cookie(pos), arg);
	}
	pthread_mutex_unlock(&rt->lock);
	return r;
}

uint64_t mrt_service_list_steps(struct mrt *rt)
{
	pthread_mutex_lock(&rt->lock);
	uint64_t n = rt->list_steps;
	pthread_mutex_unlock(&rt->lock);
	return n;
}

void mrt_stop_all(struct mrt *rt)
{
	/* No try may start a service being stopped, nor outlive the runtime. */
	if (rt->retry)
		mretry_stop(rt->retry);
	/* Newest first, each outside the list lock (stopping may run hooks). */
	for (;;) {
		struct mallafs_svc *svc = NULL;
		pthread_mutex_lock(&rt->lock);
		for (uint32_t pos = 0; rt->svcs && mslots_next(rt->svcs, pos, &pos); pos++) {
			struct mallafs_svc *s = mslots_get(rt->svcs, pos);
			struct msvc_status st;
			msvc_status(s, &st);
			if (st.state != MSVC_STOPPED && (!svc || msvc_id(s) > msvc_id(svc))) {
				if (svc)
					msvc_unref(svc);
				svc = msvc_ref(s);
			}
		}
		pthread_mutex_unlock(&rt->lock);
		if (!svc)
			break;
		/* Stopped for good: the daemon is going away. */
		msvc_destroy(svc);
		msvc_unref(svc);
	}
	/* Every plugin stopped: no timer callback runs after this. */
	if (rt->timers)
		mtimer_loop_stop(rt->timers);
}
