/* SPDX-License-Identifier: MIT */
/* What the files of the service share: the service object and the helpers
 * one file lends another. Private to core/service*.c; everything else goes
 * through service.h. The locks and what each guards are described in
 * service.h. */
#ifndef MALLAFS_CORE_SERVICE_I_H
#define MALLAFS_CORE_SERVICE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service.h"

/* One plugin in one service's chain. */
struct minst {
	const struct mallafs_plugin *desc;
	void *state;
	bool active; /* started: its store hooks run (base: always) */
	bool base;
};

struct mallafs_svc {
	char *name;
	uint64_t id;
	struct msvc_env env;
	atomic_uint refs;
	/* The owner, uid in the high half and gid in the low half, so the
	 * pair is read and changed as one (no lock). */
	_Atomic uint64_t owner;

	/* The loop env.timers points to when the service made it (env gave
	 * none), freed with the service. */
	struct mtimer_loop *own_timers;

	pthread_mutex_t op_lock;
	/* op_lock: whether the plugins are started, and the declared plugins
	 * (top to bottom, base not included), which are also written with
	 * store_lock held, so that store_lock holders may read them
	 * (msvc_declared). */
	char **declared;
	size_t ndeclared;
	bool started;

	pthread_rwlock_t store_lock;
	/* store_lock (written with op_lock held too, so op_lock holders may read) */
	struct mkv *kv;
	struct minst **chain; /* [0] is the top, [nchain - 1] is base */
	size_t nchain;
	bool dead;

	pthread_mutex_t state_lock;
	/* state_lock (written with op_lock held too) */
	struct mallafs_cfg *cfg; /* committed explicit configuration */
	/* cfg plus the chain's defaults, made on the first read after a
	 * change of either (NULL until then); readers get copies of it, one
	 * reference each. */
	struct mallafs_cfg *eff;
	struct msvc_status st;
};

/* service_store.c: appends the lines of the chain's status callbacks to b
 * (store_lock's read side held while they run). 0 or -errno. */
struct mu_buf;
int msvc_status_plugins(struct mallafs_svc *svc, struct mu_buf *b);

/* "services/NAME", then sub and name when given (NULL ends the path). */
void msvc_path(const struct mallafs_svc *svc, char *buf, size_t len, const char *sub,
               const char *name);

/* service.c, for the chain and the configuration: */

/* A new instance of desc for svc, initialised and inactive (base: active). */
struct minst *msvc_inst_new(struct mallafs_svc *svc, const struct mallafs_plugin *desc,
                            struct mallafs_reason *why, int *ret_err);
void msvc_inst_free(struct minst *in);
/* The instance of the plugin called name in svc's chain, or NULL. Call it
 * with op_lock or store_lock held. */
struct minst *msvc_chain_find(struct mallafs_svc *svc, const char *name);
/* Start or stop one plugin, op_lock held; they take store_lock to flip
 * the instance's active flag, and call the plugin with it released. */
int msvc_start_one(struct mallafs_svc *svc, struct minst *in, struct mallafs_reason *why);
void msvc_stop_one(struct mallafs_svc *svc, struct minst *in);
/* Stops and starts a started chain, counting the restart; op_lock held.
 * A failed start leaves the service failed (0 or its error, the reason in
 * *why, may be NULL); the caller then calls msvc_after_start. */
int msvc_restart(struct mallafs_svc *svc, const char *reason, struct mallafs_reason *why);
/* After a try to start the chain that returned r, op_lock held: running
 * ends the retries; failed with admin active schedules the next try (the
 * delay grows with status' retries), else none. */
void msvc_after_start(struct mallafs_svc *svc, int r);

/* service_config.c, for the chain: */

/* The merge phase over a chain, top to bottom, into *ret_new. */
int msvc_merge_phase(struct minst *const *chain, size_t n, const struct mallafs_cfg *old,
                     const struct mallafs_cfg *update, struct mallafs_cfg **ret_new,
                     struct mallafs_reason *why);
/* Installs cfg as the committed configuration (op_lock held; takes
 * state_lock); the caller frees the one it replaced. */
void msvc_commit_cfg(struct mallafs_svc *svc, struct mallafs_cfg *cfg);
/* Drops the cached effective configuration (the chain changed); takes
 * state_lock. */
void msvc_forget_effective(struct mallafs_svc *svc);
void msvc_emit_reconfigure(struct mallafs_svc *svc);
/* Tells the active plugins from chain[from] down, told of the change from
 * old to new, of the change back (top to bottom); op_lock held. */
void msvc_tell_back(struct mallafs_svc *svc, size_t from, const struct mallafs_cfg *new,
                    const struct mallafs_cfg *old);
/* A reconfiguration, op_lock held (service_config.c). */
int msvc_reconfigure_locked(struct mallafs_svc *svc, const struct mallafs_cfg *update,
                            struct mallafs_reason *why);
/* service_undo.c: u records what update did, from the committed
 * configuration before (prev) and after (cur); op_lock held. */
int msvc_undo_record(struct msvc_undo *u, const struct mallafs_cfg *prev,
                     const struct mallafs_cfg *cur, const struct mallafs_cfg *update);
/* What of parsed (a document's text so far) the parts applied before did
 * not apply yet (*ret, a new configuration: all of parsed when u is NULL
 * or nothing was applied); then, once it is applied, parsed (taken over)
 * becomes what was applied. */
int msvc_undo_delta(const struct msvc_undo *u, const struct mallafs_cfg *parsed,
                    struct mallafs_cfg **ret);
void msvc_undo_applied(struct msvc_undo *u, struct mallafs_cfg *parsed);

#endif
