#include "runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "events.h"
#include "nodecfg.h"
#include "plugin.h"
#include "registry.h"
#include "retry.h"
#include "timer.h"
#include "service.h"
#include "tree.h"
#include "util.h"

#define MRT_DEFAULT_EVENTS 4096

struct svc_node {
	struct svc_node *next;
	struct mallafs_svc *svc;
};

struct mrt {
	struct mev_ring *events;
	struct mreg *reg;
	struct mnodecfg *nodecfg;
	struct mplugreg *plugins;
	struct mretry *retry;
	struct mtimer_loop *timers;
	struct msvc_env env;
	char *mountpoint;
	/* The node's memory: every store and the node config charge it. */
	struct mkv_account account;

	/* lock: the service list (in id order) and the id counter. Never held
	 * across a plugin callback: services are started and stopped outside. */
	pthread_mutex_t lock;
	struct svc_node *head, *tail;
	uint64_t next_id;
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
	if (!rt->events || !rt->plugins || !rt->nodecfg || !rt->reg || !rt->retry || !rt->timers ||
	    (opts->mountpoint && !rt->mountpoint)) {
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
	struct svc_node *n = rt->head;
	while (n) {
		struct svc_node *next = n->next;
		msvc_destroy(n->svc);
		msvc_unref(n->svc);
		free(n);
		n = next;
	}
	/* After the services: msvc_destroy cancels their tries. */
	mretry_free(rt->retry);
	/* After the services too: their plugins' stop callbacks cancel their
	 * timers and may still want one to run (none does once stopped). */
	mtimer_loop_free(rt->timers);
	mreg_free(rt->reg);
	mnodecfg_free(rt->nodecfg);
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

struct mplugreg *mrt_plugins(struct mrt *rt)
{
	return rt->plugins;
}

const struct mkv_account *mrt_account(struct mrt *rt)
{
	return &rt->account;
}

static struct svc_node *find_locked(struct mrt *rt, const char *name, struct svc_node **ret_prev)
{
	struct svc_node *prev = NULL;
	for (struct svc_node *n = rt->head; n; prev = n, n = n->next) {
		if (strcmp(msvc_name(n->svc), name) == 0) {
			if (ret_prev)
				*ret_prev = prev;
			return n;
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
	struct svc_node *node = calloc(1, sizeof(*node));
	r = -ENOMEM;
	if (!node)
		goto fail;

	/* Claim the name first, so two creators never both start a service. */
	pthread_mutex_lock(&rt->lock);
	if (find_locked(rt, name, NULL)) {
		pthread_mutex_unlock(&rt->lock);
		free(node);
		mallafs_reason_set(why, "service %s exists", name);
		r = -EEXIST;
		goto fail;
	}
	msvc_set_id(svc, rt->next_id++);
	node->svc = svc;
	if (rt->tail)
		rt->tail->next = node;
	else
		rt->head = node;
	rt->tail = node;
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
	struct svc_node *prev = NULL;
	pthread_mutex_lock(&rt->lock);
	struct svc_node *n = find_locked(rt, name, &prev);
	if (!n) {
		pthread_mutex_unlock(&rt->lock);
		return -ENOENT;
	}
	if (prev)
		prev->next = n->next;
	else
		rt->head = n->next;
	if (rt->tail == n)
		rt->tail = prev;
	pthread_mutex_unlock(&rt->lock);

	msvc_destroy(n->svc);
	char path[MTREE_PATH_MAX];
	mtree_join(path, sizeof(path), mtree_name(MTREE_SERVICES), name, NULL);
	mev_emit(rt->events, MEV_RMDIR, path, NULL);
	msvc_unref(n->svc);
	free(n);
	return 0;
}

struct mallafs_svc *mrt_service_get(struct mrt *rt, const char *name)
{
	pthread_mutex_lock(&rt->lock);
	struct svc_node *n = find_locked(rt, name, NULL);
	struct mallafs_svc *svc = n ? msvc_ref(n->svc) : NULL;
	pthread_mutex_unlock(&rt->lock);
	return svc;
}

int mrt_service_list(struct mrt *rt, uint64_t after_id,
                     int (*fn)(const char *name, uint64_t id, void *arg), void *arg)
{
	int r = 0;
	pthread_mutex_lock(&rt->lock);
	for (struct svc_node *n = rt->head; n && r == 0; n = n->next)
		if (msvc_id(n->svc) > after_id)
			r = fn(msvc_name(n->svc), msvc_id(n->svc), arg);
	pthread_mutex_unlock(&rt->lock);
	return r;
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
		for (struct svc_node *n = rt->head; n; n = n->next) {
			struct msvc_status st;
			msvc_status(n->svc, &st);
			if (st.state != MSVC_STOPPED) {
				if (svc)
					msvc_unref(svc);
				svc = msvc_ref(n->svc);
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
