/* SPDX-License-Identifier: MIT */
/* What the engine's files share (cluster.h describes the engine, its
 * threads and its lock): engine.c (start, stop, the lease and the node
 * key, the keeper, cluster/status), mirror.c (the mirror's revisions, the
 * listing, the watch, the resync), ccfg.c (config/ through etcd), creg.c
 * (registry/ through etcd), csvc.c (the worker: services published,
 * deletions for exited processes). */
#ifndef MALLAFS_CLUSTER_ENGINE_I_H
#define MALLAFS_CLUSTER_ENGINE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cluster.h"
#include "etcd.h"

struct mkv;
struct mreg;
struct mnodecfg;
struct mclview;
struct mev_ring;
struct mreg_saved;
struct mfs;

#define MCL_NODE_MAX 64
#define MCL_KEY_MAX 4096

/* A job for the worker. */
struct mcl_job {
	struct mcl_job *next;
	char kind;          /* 'x' a process exited, 's' a service's status to publish,
	                     * 'p' an owner or mode to publish (cperm.c) */
	pid_t pid;          /* 'x' */
	uint64_t starttime; /* 'x' */
	char name[];        /* 's': the service; 'p': the path (config/..., registry/...) */
};

struct mcl {
	struct mrt *rt;
	struct mreg *reg;
	struct mnodecfg *nc;
	struct mclview *view;
	struct mev_ring *ring;
	struct metcd *etcd;

	char node[MCL_NODE_MAX + 1];
	char *prefix; /* without a trailing '/' */
	size_t prefix_len;
	long ttl_s, timeout_ms;
	char boot_id[40];
	uint64_t start_ticks; /* this daemon's start time (/proc/self/stat) */

	pthread_mutex_t lock; /* see cluster.h */
	/* Guarded by lock: */
	struct mkv *revs; /* etcd key -> struct mcl_rev: what the mirror holds */
	struct mkv *own;  /* etcd key of this node's registry entry -> struct mcl_own */
	/* config/ keys a writer of this node is changing (key -> a count): the
	 * watcher leaves this node's change of one to its writer (ccfg.c). */
	struct mkv *pending;
	struct mkv *perms; /* PATH of PREFIX/perm/PATH -> what etcd says (cperm.c) */
	struct mfs *fs;    /* the tree, from mcl_attach_fs to its detach (cperm.c) */
	int64_t rev;       /* the store's revision the mirror has reached */
	bool listing;      /* the watcher applies a listing (tombstones kept) */
	bool connected;
	char endpoint[256];
	struct timespec last_event; /* monotonic */
	char last_error[256];
	uint64_t resyncs;

	_Atomic int64_t lease; /* this node's; written by the keeper */
	_Atomic int64_t seen;  /* cl->rev, for writers waiting on wake */

	atomic_bool stopping;
	pthread_mutex_t wake_lock; /* a leaf: the stop flag's waits, the job queue */
	pthread_cond_t wake;
	struct mcl_job *jobs, **jobs_tail;
	size_t njobs;
	struct metcd_watch *watch; /* wake_lock: the watch running now, or NULL */
	pthread_t keeper, watcher, worker;
	bool keeper_started, watcher_started, worker_started;
	bool listening;
};

/* What the mirror holds of one etcd key: the mod revision of the change it
 * applied last, and whether that change was a deletion (a tombstone keeps
 * an older put that arrives late from coming back). */
struct mcl_rev {
	int64_t rev;
	bool gone;
};

/* This node's registry entry in etcd: the process holding it, and the mod
 * revision of its put (a deletion compares it, so that it never deletes
 * what another of this node's processes wrote since). */
struct mcl_own {
	pid_t pid;
	uint64_t starttime;
	int64_t rev;
};

/* ---- engine.c ---- */
/* PREFIX/PART[/A[/B]] into buf; its length, 0 when it does not fit. */
size_t mcl_key(const struct mcl *cl, char *buf, size_t len, const char *part, const char *a,
               const char *b);
/* ms from now on CLOCK_REALTIME (pthread_cond_timedwait's clock). */
void mcl_deadline(struct timespec *until, long ms);
/* Sleeps up to ms unless stopping; true when stopping. */
bool mcl_sleep(struct mcl *cl, long ms);
/* The connection changed (lock not held): cluster/status follows. */
void mcl_set_connected(struct mcl *cl, bool up, const char *error);
/* Rewrites cluster/status from the fields (lock held). */
void mcl_status_locked(struct mcl *cl);
/* An etcd error as the log and cluster/status say it. */
void mcl_note_error(struct mcl *cl, const char *what, int r);

/* ---- mirror.c ---- */
int mcl_mirror_load(struct mcl *cl, char *why, size_t whylen);
/* The watcher's, and the fuzzer's: a batch of watch events at revision,
 * applied in order (takes cl->lock, then wakes the writers waiting). */
int mcl_mirror_apply(struct mcl *cl, const struct metcd_event *ev, size_t n, int64_t revision);
/* A listing of PREFIX at revision: the difference with the mirror applied,
 * containers first (cl->lock held). */
int mcl_mirror_relist(struct mcl *cl, const struct metcd_kv *kvs, size_t n, int64_t revision);
int mcl_watcher_start(struct mcl *cl);
/* Ends the watch running now (the watcher lists again, unless stopping). */
void mcl_watch_restart(struct mcl *cl);
/* Under lock: whether a change of key at rev is newer than the mirror's,
 * and then records it. */
/* ahead: this node's own change, applied by its writer before the watch
 * brings it (a deletion then leaves a tombstone until the watch does). */
bool mcl_rev_take(struct mcl *cl, const char *key, size_t key_len, int64_t rev, bool gone,
                  bool ahead);
int64_t mcl_rev_get(struct mcl *cl, const char *key, size_t key_len);
/* Waits up to ms for the mirror to reach rev (a writer reading its own
 * write): 0, or -ETIMEDOUT (the watch is broken). */
int mcl_mirror_wait(struct mcl *cl, int64_t rev, long ms);
/* A transaction of this node: the success branch also records this node
 * as the writer of the revision (PREFIX/writer), which tells every node's
 * watcher whose change it applies. */
int mcl_txn(struct mcl *cl, const struct metcd_cmp *cmp, size_t n_cmp,
            const struct metcd_op *success, size_t n_success, const struct metcd_op *failure,
            size_t n_failure, struct metcd_txn_result *ret);

/* ---- ccfg.c ---- */
/* Whether a writer of this node is changing key (lock held). */
bool mcl_cfg_pending(struct mcl *cl, const char *key);
void mcl_cfg_attach(struct mcl *cl);
void mcl_cfg_detach(struct mcl *cl);
/* The watcher's: a change of PREFIX/config/... (lock held). */
void mcl_cfg_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                   bool gone, const char *origin);

/* ---- creg.c ---- */
void mcl_reg_attach(struct mcl *cl);
void mcl_reg_detach(struct mcl *cl);
void mcl_reg_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                   const struct metcd_kv *prev, bool gone, const char *origin);
/* The worker's: deletes the entries of an exited process. */
void mcl_reg_exited(struct mcl *cl, pid_t pid, uint64_t starttime);
/* Puts every entry this node holds again (a new lease). */
int mcl_reg_republish(struct mcl *cl);

/* ---- cperm.c ---- */
/* The watcher's: a change of PREFIX/perm/PATH (lock held). */
void mcl_perm_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                    bool gone, const char *origin);
/* The worker's: makes PREFIX/perm/PATH say what the tree's table says. */
void mcl_perm_sync(struct mcl *cl, const char *path);

/* The mode of services/SVC here (chmod's, or 0755); 0755 before the fs is
 * attached. Takes cl->lock. */
mode_t mcl_svc_mode(struct mcl *cl, const char *svc);

/* ---- csvc.c ---- */
int mcl_worker_start(struct mcl *cl);
void mcl_queue(struct mcl *cl, char kind, pid_t pid, uint64_t starttime, const char *name);
void mcl_svc_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                   bool gone, const char *origin);
void mcl_node_apply(struct mcl *cl, const char *sub, size_t sub_len, bool gone, const char *origin);
/* Publishes every local service's status (a new lease, the start). */
int mcl_svc_publish_all(struct mcl *cl);
void mcl_svc_listen(struct mcl *cl);
void mcl_svc_unlisten(struct mcl *cl);

#endif
