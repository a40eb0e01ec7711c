/* SPDX-License-Identifier: MIT */
/* A service: its plugin chain, configuration, lifecycle and store.
 *
 * Locks, so that the FUSE layer can call in from many threads:
 *  - op_lock (mutex) serialises the service's lifecycle, configuration and
 *    chain changes. It is held across plugin callbacks (an exec hook may wait),
 *    but nothing that only reads ever takes it, and it belongs to one service.
 *  - store_lock (rwlock) guards the table, the chain array and which plugin
 *    instances are active. Store hooks run under it, so they never race with
 *    a plugin's start or stop; it is never held across a start, stop, merge or
 *    update callback.
 *  - state_lock (mutex) guards the committed configuration and the status
 *    fields, for readers; held only for copies.
 * Lock order: op_lock, then store_lock, then state_lock. Events are emitted
 * with at most these held (listeners never call back into core). Under
 * op_lock come the plugin registry's lock (chains are planned with it held),
 * the retry scheduler's (retry.h: tries are scheduled and cancelled with it
 * held) and whatever start, stop and update callbacks take; under store_lock, the
 * locks a plugin's store hooks take, so a plugin thread or timer callback
 * calls into the store (mallafs_svc_store_op, mallafs_store_foreach) with
 * its own locks released. The timer loop's lock (timer.h) is a leaf under
 * all of these: plugins arm timers with their own locks held, and a stop
 * callback cancelling its timer waits for the callback with op_lock held, so
 * a timer callback never takes op_lock.
 * The store and published files live in service_store.c, the plugin chain
 * (planning it, adding and removing plugins) in service_chain.c, the
 * configuration and reconfigure in service_config.c, the object, its status
 * and lifecycle in service.c; service_i.h holds what they share.
 *
 * Services are reference-counted: msvc_ref()/msvc_unref(). A destroyed
 * service answers -ENOENT to everything. */
#ifndef MALLAFS_CORE_SERVICE_H
#define MALLAFS_CORE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "mallafs-plugin.h"
#include "util.h"

struct mev_ring;
struct mplugreg;
struct mretry;
struct mtimer_loop;

enum msvc_state {
	MSVC_STARTING = 0,
	MSVC_RUNNING,
	MSVC_PAUSING,
	MSVC_PAUSED,
	MSVC_STOPPING,
	MSVC_STOPPED,
	MSVC_FAILED,
};

enum msvc_admin {
	MSVC_ADMIN_ACTIVE = 0,
	MSVC_ADMIN_PAUSE,
	MSVC_ADMIN_INACTIVE,
};

const char *msvc_state_name(enum msvc_state st);
const char *msvc_admin_name(enum msvc_admin ad);
/* "active\n", "pause", "inactive" (one trailing newline allowed). 0 or -EINVAL. */
int msvc_admin_parse(const char *text, size_t len, enum msvc_admin *ret);

/* What a service needs from the runtime. */
struct msvc_env {
	struct mplugreg *plugins;
	struct mev_ring *events;     /* may be NULL */
	const char *mountpoint;      /* may be NULL; handed to plugins that ask */
	struct mkv_account *account; /* may be NULL; every store is charged to it */
	struct mretry *retry;        /* may be NULL: a failed service is not retried */
	/* The loop running its plugins' timers (mallafs_timer_*); NULL: the
	 * service makes one of its own (tests). */
	struct mtimer_loop *timers;
};

struct msvc_status {
	enum msvc_state state;
	enum msvc_admin admin;
	uint64_t restarts;
	char last_restart[MALLAFS_REASON_MAX + 32]; /* "-" or "TIME REASON" */
	char last_error[MALLAFS_REASON_MAX + 32];   /* "-" or "TIME REASON" */
	uint64_t retries;                           /* tries since it last ran */
	char next_retry[32];                        /* "-" or "TIME" */
};

/* A new, stopped service with the chain "base" and an empty configuration.
 * -EINVAL bad name, -ENOMEM. */
int msvc_new(const struct msvc_env *env, const char *name, struct mallafs_svc **ret);
struct mallafs_svc *msvc_ref(struct mallafs_svc *svc);
void msvc_unref(struct mallafs_svc *svc); /* accepts NULL */
const char *msvc_name(const struct mallafs_svc *svc);
/* False once the service is destroyed. */
bool msvc_alive(struct mallafs_svc *svc);
uint64_t msvc_id(const struct mallafs_svc *svc);
/* The owner (mallafs_svc_owner reads it): the daemon's uid and gid until
 * set; the filesystem sets it to the creator's, and chown changes it. */
void msvc_set_owner(struct mallafs_svc *svc, uid_t uid, gid_t gid);
void msvc_set_id(struct mallafs_svc *svc, uint64_t id);

/* Before the first start: the declared plugins (top to bottom, base implied)
 * and the initial configuration, which passes the merge phase. Errors as for
 * msvc_add_plugin and msvc_reconfigure, with the reason in why. */
int msvc_setup(struct mallafs_svc *svc, const char *const *plugins, size_t nplugins,
               const struct mallafs_cfg *cfg, struct mallafs_reason *why);

/* Lifecycle. set_admin moves the service to the admin status (starting or
 * stopping plugins as needed). A plugin failing to start leaves the service
 * `failed` with the reason in last_error and returns -EIO (or the plugin's
 * error). msvc_destroy stops the service (top to bottom) and marks it gone.
 *
 * A failed service whose admin status is active is tried again (env.retry):
 * after mretry_delay_ms(retries), retries counting the tries since it last
 * ran; a try that starts it ends the retries. Writing the admin status
 * starts them over (a failed `active` write schedules the first try again);
 * `pause`, `inactive` and msvc_destroy cancel them. msvc_retry is the try,
 * run by retry.c: it does nothing unless the service is still failed, alive
 * and active. */
int msvc_set_admin(struct mallafs_svc *svc, enum msvc_admin admin);
int msvc_set_admin_text(struct mallafs_svc *svc, const char *text, size_t len);
void msvc_destroy(struct mallafs_svc *svc);
void msvc_retry(struct mallafs_svc *svc);
void msvc_status(struct mallafs_svc *svc, struct msvc_status *ret);
/* A refused or failed operation: the reason goes to status (last_error)
 * and the log. Takes state_lock: call it with store_lock released. */
void msvc_set_error(struct mallafs_svc *svc, const char *reason);
/* A service that is not started and must not be (the state database
 * could not make it as saved): `failed` with the reason in last_error and
 * the log, not tried again (that is for active services: give it admin
 * inactive first). */
void msvc_set_failed(struct mallafs_svc *svc, const char *reason);
/* What `cat status` prints (malloc'd). */
int msvc_status_render(struct mallafs_svc *svc, char **ret_text, size_t *ret_len);
/* The same without the lines plugins add (persist_last_commit, ...): what
 * watchers of status hear of by themselves. Plugin lines change as the
 * plugin works (each commit); a plugin announces a change worth waking
 * watchers for with mallafs_svc_file_changed(svc, "status"). */
int msvc_status_render_core(struct mallafs_svc *svc, char **ret_text, size_t *ret_len);

/* The chain. */
int msvc_add_plugin(struct mallafs_svc *svc, const char *name, struct mallafs_reason *why);
int msvc_del_plugin(struct mallafs_svc *svc, const char *name, struct mallafs_reason *why);
bool msvc_has_plugin(struct mallafs_svc *svc, const char *name);
/* What `cat chain` prints: one name a line, top to bottom. */
int msvc_chain_render(struct mallafs_svc *svc, char **ret_text, size_t *ret_len);
/* The declared plugins, top to bottom, base not included (what the state
 * database saves; the chain adds base and the plugins they need): a
 * NULL-terminated array of *ret_n copies, freed with each name. -ENOENT once
 * the service is destroyed, -ENOMEM. */
int msvc_declared(struct mallafs_svc *svc, char ***ret, size_t *ret_n);

/* Configuration. All changes run a reconfiguration: -EINVAL rejected (merge
 * phase), -EIO rolled back (update phase, or a restart it asked for failed
 * to start: the old configuration is committed back and the service
 * restarted with it, failed and retried if that fails too); why (may be
 * NULL) gets the reason, which also goes to last_error and the log. */
int msvc_reconfigure(struct mallafs_svc *svc, const struct mallafs_cfg *update,
                     struct mallafs_reason *why);
int msvc_config_apply_ini(struct mallafs_svc *svc, const char *text, size_t len,
                          struct mallafs_reason *why);
int msvc_config_set(struct mallafs_svc *svc, const char *section, const char *key,
                    const char *value, size_t len, struct mallafs_reason *why);
/* Whether section/key may be created (mcfg_key_check): 0, or -EINVAL with
 * the reason in the log and last_error, as msvc_config_set would. */
int msvc_config_check_key(struct mallafs_svc *svc, const char *section, const char *key);
int msvc_config_unset(struct mallafs_svc *svc, const char *section, const char *key,
                      struct mallafs_reason *why);
int msvc_config_add_section(struct mallafs_svc *svc, const char *section,
                            struct mallafs_reason *why);
int msvc_config_del_section(struct mallafs_svc *svc, const char *section,
                            struct mallafs_reason *why);
/* Undo records: the changes one writer (an open file of config.ini or of a
 * config key) made over several reconfigurations, undone together when a
 * later part of its document is refused (service_undo.c). The _undo
 * variants act as the functions above and record in u (NULL: as those). */
struct msvc_undo;
struct msvc_undo *msvc_undo_new(void);
void msvc_undo_free(struct msvc_undo *u); /* accepts NULL */
bool msvc_undo_empty(const struct msvc_undo *u);
int msvc_reconfigure_undo(struct mallafs_svc *svc, const struct mallafs_cfg *update,
                          struct msvc_undo *u, struct mallafs_reason *why);
int msvc_config_apply_ini_undo(struct mallafs_svc *svc, const char *text, size_t len,
                               struct msvc_undo *u, struct mallafs_reason *why);
int msvc_config_set_undo(struct mallafs_svc *svc, const char *section, const char *key,
                         const char *value, size_t len, struct msvc_undo *u,
                         struct mallafs_reason *why);
/* One reconfiguration that may also declare the chain anew: plugins (NULL:
 * the chain stays) becomes the declared list, top to bottom, base implied;
 * the merge phase runs over the new chain with update (NULL: none), the
 * plugins that stay get the update phase, those that join start and those
 * that leave stop. Errors as msvc_reconfigure's and msvc_setup's (-EEXIST
 * for base or a name given twice, -ENOENT for an unknown plugin). u (may
 * be NULL) records the configuration's change, not the chain's: to undo,
 * msvc_undo_apply, then this again with the old declared list.
 * *ret_rechained (may be NULL) says whether the chain changed: false when
 * plugins is NULL or the list svc declares already, and on a refusal; true
 * also on -EIO from a restart that failed, which keeps the new chain and
 * configuration (recorded in u) with the service failed. */
int msvc_redeclare_undo(struct mallafs_svc *svc, const char *const *plugins, size_t nplugins,
                        const struct mallafs_cfg *update, struct msvc_undo *u, bool *ret_rechained,
                        struct mallafs_reason *why);
/* Every key u recorded that still holds the value u's writer left goes back
 * to the value it had before, as one reconfiguration, and u is emptied.
 * 0, or that reconfiguration's error (logged). */
int msvc_undo_apply(struct mallafs_svc *svc, struct msvc_undo *u);

/* The effective configuration (explicit values plus the defaults of the
 * plugins in the chain): a private copy for the caller to free. */
struct mallafs_cfg *msvc_config_effective(struct mallafs_svc *svc);
/* The committed explicit configuration (no defaults): a private copy for
 * the caller to free, NULL when out of memory. */
struct mallafs_cfg *msvc_config_committed(struct mallafs_svc *svc);
/* What `cat config.ini` prints. */
int msvc_config_render(struct mallafs_svc *svc, char **ret_text, size_t *ret_len);

/* The store, through the chain. op->why may be NULL. Returns op->result. */
int64_t msvc_store_op(struct mallafs_svc *svc, struct mallafs_store_op *op);
ssize_t msvc_store_read(struct mallafs_svc *svc, const char *key, uint64_t off, void *buf,
                        size_t len);
ssize_t msvc_store_write(struct mallafs_svc *svc, const char *key, uint64_t off, const void *data,
                         size_t len, unsigned flags);
int msvc_store_create(struct mallafs_svc *svc, const char *key);
int msvc_store_truncate(struct mallafs_svc *svc, const char *key, uint64_t size);
int msvc_store_delete(struct mallafs_svc *svc, const char *key);
int msvc_store_rename(struct mallafs_svc *svc, const char *from, const char *to);
/* Attributes, not an operation of the chain (stat is the filesystem's, not Malla's). */
int msvc_store_stat(struct mallafs_svc *svc, const char *key, struct mkv_stat *ret);
/* The name of the key of id id (kv.h), into buf: -ENOENT when it is gone.
 * Metadata, not a store operation. */
int msvc_store_key_name(struct mallafs_svc *svc, uint64_t id, char *buf, size_t len);
/* Sets a value's mtime (NULL: now), as touch does: metadata, not a store operation. */
int msvc_store_set_mtime(struct mallafs_svc *svc, const char *key, const struct timespec *mtime);
/* Listing passes the chain's hooks as a LIST operation, then lists the
 * keys after the one whose cookie (struct mkv_stat) is after, 0: from the
 * start, as mkv_list does. */
int msvc_store_list(struct mallafs_svc *svc, uint64_t after,
                    int (*fn)(const char *key, const struct mkv_stat *st, void *arg), void *arg);

/* Files published by the chain's plugins (trace, metrics, ...). */
int msvc_files_foreach(struct mallafs_svc *svc, int (*fn)(const char *name, void *arg), void *arg);
int msvc_file_render(struct mallafs_svc *svc, const char *name, char **ret_text, size_t *ret_len);
/* Calls fn with the state of the chain's instance of the plugin desc (the
 * descriptor found in the registry: a built-in's own), under store_lock's
 * read side, so the instance cannot go meanwhile: fn must be quick and
 * must not call back into the service. fn's result, or -ENOENT when the
 * chain has no such plugin (or the service is gone). */
int msvc_plugin_peek(struct mallafs_svc *svc, const struct mallafs_plugin *desc,
                     int (*fn)(void *state, void *arg), void *arg);

/* What a render callback writes to (opaque to plugins): core's and the
 * daemon's own renderers use the plugin API's helpers on it too. */
struct mallafs_out {
	struct mu_buf b;
};

#endif
