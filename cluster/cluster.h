/* SPDX-License-Identifier: MIT */
/* Cluster mode (-o cluster=URL[,URL...]): registry/ and config/ shared by
 * every daemon ("node") of one etcd, cluster/ showing the live nodes and
 * their services. The engine is etcd-agnostic core's client: it plugs into
 * the registry (mreg_set_remote), the config store (mnodecfg_set_remote)
 * and the cluster view (mclview), and keeps them as etcd says.
 *
 * In etcd, under PREFIX (-o cluster_prefix, default /mallafs/default):
 *   PREFIX/nodes/NODE             {"boot_id","pid","start","lease","since"}  node's lease
 *   PREFIX/services/NODE/SERVICE  {"uid","gid","mode"} LF status text       node's lease
 *   PREFIX/registry/n/NAME        {"node","pid","uid","value"?}             holder's lease
 *   PREFIX/registry/p/POOL        {"node","uid"}                            no lease
 *   PREFIX/registry/m/POOL/PID@NODE {"node","pid","uid","value"}            holder's lease
 *   PREFIX/config/a/APP           {"node"}                                  no lease
 *   PREFIX/config/k/APP/KEY       NODE LF value bytes (NODE: the writer)    no lease
 *   PREFIX/perm/PATH              {"node","uid","gid","mode",               no lease
 *                                 "has_owner","has_mode"} (cperm.c)
 *   PREFIX/writer                 NODE: put by every transaction of a node,
 *                                 so watchers know whose revision it is
 * Unique names and pools share one namespace: making either compares that
 * neither key exists.
 *
 * Consistency: a change is committed by one etcd transaction that compares
 * what it was computed from (the mod revision this node's mirror holds), then
 * applied here at once (a node reads its own writes); a transaction that
 * lost a race is computed again from what etcd says. Everyone else's changes
 * arrive through one watch of PREFIX and are applied in revision order; a
 * key's change older than what the mirror holds is skipped.
 *
 * Threads: the keeper (the lease's keepalive, the node key, the status),
 * the watcher (the initial listing, the watch, the resync after a break)
 * and the worker (deletions for processes that exited, services' status
 * and owners and modes published); writers of registry/ and config/ run
 * the transactions of their own changes on their request's thread.
 *
 * Locks, in order: the registry's change lock (held by a registry writer
 * across its hold()/release(): registry.h), then the engine's mutex
 * (struct mcl.lock: the mirror's revisions, this node's own entries, the
 * keys its config writers are changing, the status fields, the fs pointer),
 * then the registry's, the config store's and the view's locks and
 * fs/perm.c's table lock, then the event ring's; struct mcl.wake_lock (the
 * stop flag's waits, the job queue, the running watch) is a leaf, taken by
 * event and perm listeners under any of those. None is held across a call
 * to etcd. */
#ifndef MALLAFS_CLUSTER_CLUSTER_H
#define MALLAFS_CLUSTER_CLUSTER_H

#include <stddef.h>

struct mrt;
struct mcl;

/* The -o options as given (strings owned by the caller's option parser). */
struct mcl_config {
	char *endpoints; /* cluster=: URLs separated by commas */
	char *node;      /* node=: default the host name */
	char *prefix;    /* cluster_prefix= */
	char *ttl;       /* cluster_ttl= seconds */
	char *timeout;   /* cluster_timeout= ms */
	char *cacert, *cert, *key;
	char *user, *password_file;
};

#define MCL_DEFAULT_PREFIX "/mallafs/default"
#define MCL_DEFAULT_TTL 10
#define MCL_DEFAULT_TIMEOUT_MS 5000

/* Appends one more URL to cfg->endpoints (an -o list split at its commas). */
int mcl_config_add_endpoint(struct mcl_config *cfg, const char *url);
void mcl_config_free(struct mcl_config *cfg);

/* Connects, takes the node's name (refused while another live daemon
 * holds it: -EEXIST; a predecessor of this host, dead, is taken over at
 * once), loads the shared tree into rt's registry and config store, and
 * starts the threads. Call it before the bootstrap file is applied and
 * before the tree is served. -errno with a reason in why. */
int mcl_start(struct mrt *rt, const struct mcl_config *cfg, struct mcl **ret, char *why,
              size_t whylen);
/* Once the tree exists (after mfs_new): owners and modes set by chmod and
 * chown under config/ and registry/ are published from here on, and those
 * etcd holds are imported into fs's table (cperm.c). NULL detaches: call it
 * before mfs_free. Accepts a NULL cl. */
struct mfs;
void mcl_attach_fs(struct mcl *cl, struct mfs *fs);
/* Stops the threads, deletes this node's entries (revoking its lease),
 * and detaches from core. Accepts NULL. */
void mcl_stop(struct mcl *cl);

#endif
