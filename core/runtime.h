/* SPDX-License-Identifier: MIT */
/* The runtime: every service, the registry, the node-wide config store and
 * the change events, as one object the filesystem holds. Thread-safe.
 *
 * Failed services are retried by retry.c's threads (retry.h), stopped and
 * joined by mrt_stop_all and mrt_free before the services go. The plugins'
 * timers run on one loop (timer.h) for every service, stopped and joined by
 * mrt_stop_all once the services are.
 *
 * Locks: one mutex guards the table of services and the id counter. It comes
 * before a service's state_lock (mrt_stop_all reads each status under it)
 * and is never held across a service's op_lock or a plugin callback:
 * services are created, started, stopped and destroyed outside it.
 * mrt_service_list calls fn with it held, so fn must not call back into the
 * runtime. */
#ifndef MALLAFS_CORE_RUNTIME_H
#define MALLAFS_CORE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "mallafs-plugin.h"

struct mev_ring;
struct mreg;
struct mnodecfg;
struct mplugreg;
struct mclview;

/* The events feed keeps this many events when event_capacity is 0. */
#define MRT_DEFAULT_EVENTS 4096

struct mrt_options {
	const struct mallafs_plugin *const *builtins; /* NULL-terminated */
	const char *plugin_dir;                       /* may be NULL */
	const char *mountpoint;                       /* may be NULL */
	size_t event_capacity;                        /* 0: MRT_DEFAULT_EVENTS */
	/* Bytes of keys and values all stores and the node config may hold
	 * together (-o max_memory); 0: no limit. */
	uint64_t max_memory;
	/* A failed, active service is tried again after retry_base_ms,
	 * doubling up to retry_max_ms (0: 5 s and 5 min; the environment's
	 * MALLAFS_RETRY_BASE_MS and MALLAFS_RETRY_MAX_MS, for tests, else). */
	unsigned retry_base_ms, retry_max_ms;
};

struct mrt;

/* NULL on failure with errno set. */
struct mrt *mrt_new(const struct mrt_options *opts);
/* Stops every service (top to bottom each, in reverse creation order) and frees. */
void mrt_free(struct mrt *rt);

struct mev_ring *mrt_events(struct mrt *rt);
struct mreg *mrt_registry(struct mrt *rt);
struct mnodecfg *mrt_nodecfg(struct mrt *rt);
struct mplugreg *mrt_plugins(struct mrt *rt);
/* Cluster mode (issue 15): the view of the cluster that cluster/ shows,
 * fed by the cluster engine. mrt_cluster_enable makes it, once, before
 * the tree is served (the filesystem lists cluster/ from then on): 0,
 * -EEXIST when on already, -ENOMEM. mrt_clview is NULL until then; the
 * pointer never changes after the tree is served, so it is read without
 * a lock. */
int mrt_cluster_enable(struct mrt *rt);
struct mclview *mrt_clview(struct mrt *rt);
/* What the stores and the node config hold, against -o max_memory. */
const struct mkv_account *mrt_account(struct mrt *rt);

/* Creates and starts a service with the chain "base" (mkdir services/NAME).
 * -EINVAL bad name, -EEXIST. */
int mrt_service_create(struct mrt *rt, const char *name, struct mallafs_reason *why);
/* Creates a service from the bootstrap: declared plugins, initial
 * configuration and admin status; started unless admin is inactive. */
int mrt_service_create_full(struct mrt *rt, const char *name, const char *const *plugins,
                            size_t nplugins, const struct mallafs_cfg *cfg, const char *admin,
                            struct mallafs_reason *why);
/* Stops and removes it (rmdir services/NAME). -ENOENT. */
int mrt_service_destroy(struct mrt *rt, const char *name);
/* A new reference (msvc_unref when done), or NULL. */
struct mallafs_svc *mrt_service_get(struct mrt *rt, const char *name);
/* Services after the one whose cookie is given (0: from the start), in
 * cookie order, each with its cookie. As with mreg_list: a service there
 * throughout comes exactly once, however many come and go between two
 * calls, and resuming costs O(1), not the services before the cookie.
 * (msvc_id is another number: the service's identity, never reused.) */
int mrt_service_list(struct mrt *rt, uint64_t cookie,
                     int (*fn)(const char *name, uint64_t cookie, void *arg), void *arg);
/* How many services the listings have looked at so far (tests). */
uint64_t mrt_service_list_steps(struct mrt *rt);
/* Stops the retries of failed services (joining their threads), then
 * every service (on unmount; they stay listed), then the timer loop. */
void mrt_stop_all(struct mrt *rt);

#endif
