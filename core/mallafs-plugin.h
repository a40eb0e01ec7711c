/* SPDX-License-Identifier: MIT */
/**
 * @file mallafs-plugin.h
 * The mallafs plugin API: the one public, installed header.
 *
 * A plugin is a descriptor (struct mallafs_plugin) plus callbacks. Built-in
 * plugins are compiled into mallafs; an external plugin is a shared object
 * `NAME.so` in the daemon's plugin directory that exports
 *
 *     const struct mallafs_plugin mallafs_plugin = { MALLAFS_PLUGIN_INIT, ... };
 *
 * The daemon refuses a descriptor whose @c abi differs from its own
 * MALLAFS_PLUGIN_ABI; @c size lets a newer daemon accept an older, shorter
 * descriptor (missing callbacks read as NULL).
 *
 * Threads: callbacks of one service's plugins may run on any thread. The
 * lifecycle and configuration callbacks (init, start, stop, config_merge,
 * updated, fini) of one service never run concurrently with each other. Store
 * hooks run while the service's store lock is held: they must not block, sleep
 * or call back into the store; GET hooks may run concurrently with each other.
 * Return values follow the kernel's convention: 0 or a count on success,
 * -errno on failure.
 */
#ifndef MALLAFS_PLUGIN_H
#define MALLAFS_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version of this header. Bumped on every incompatible change
 * (2: struct mallafs_reason names the key it is about). */
#define MALLAFS_PLUGIN_ABI 2

/** Starts a descriptor initialiser: the ABI version and the descriptor's size. */
#define MALLAFS_PLUGIN_INIT .abi = MALLAFS_PLUGIN_ABI, .size = sizeof(struct mallafs_plugin)

/** The symbol an external plugin exports. */
#define MALLAFS_PLUGIN_SYMBOL "mallafs_plugin"

/** Longest reason text kept, including the NUL. */
#define MALLAFS_REASON_MAX 256

/** Longest section or key name a reason names, including the NUL. */
#define MALLAFS_REASON_NAME_MAX 256

/**
 * A reason given with a rejection, a restart request or an error, and the
 * configuration key it is about, when it is about one: the bootstrap file
 * then names that key's line. Both names are "" otherwise.
 */
struct mallafs_reason {
	char text[MALLAFS_REASON_MAX];
	char section[MALLAFS_REASON_NAME_MAX];
	char key[MALLAFS_REASON_NAME_MAX];
};

/** Sets a reason, printf-style, about no key. NULL why is allowed and ignored. */
void mallafs_reason_set(struct mallafs_reason *why, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/**
 * Says which configuration key the reason (set before) is about: a merge
 * callback that rejects a value names its key. A NULL @p section is the
 * calling plugin's own (the section named after it) when @p key is given; a
 * NULL @p key names @p section alone. Names too long to keep name nothing. NULL why is ignored.
 */
void mallafs_reason_key(struct mallafs_reason *why, const char *section, const char *key);

/**
 * A configuration: sections, each holding keys with string values. In an
 * update (the second argument of config_merge) a key whose value is NULL, or a
 * section marked removed, asks for its removal.
 */
struct mallafs_cfg;

/** The value of @p key in @p section, or NULL. */
const char *mallafs_cfg_get(const struct mallafs_cfg *cfg, const char *section, const char *key);
/** Sets a key (copying both), creating the section as needed. 0 or -errno: -EINVAL for a key
 * config.ini could not write back (holding one of "=:[];#", a control character, or a space at
 * either end). */
int mallafs_cfg_set(struct mallafs_cfg *cfg, const char *section, const char *key,
                    const char *value);
/** Removes a key. 0, or -ENOENT when it was not there. */
int mallafs_cfg_unset(struct mallafs_cfg *cfg, const char *section, const char *key);
/** Calls @p fn for every key of @p section in a stable order; stops on a non-zero return and
 * returns it. */
int mallafs_cfg_foreach(const struct mallafs_cfg *cfg, const char *section,
                        int (*fn)(const char *key, const char *value, void *arg), void *arg);
/** Renders the whole configuration as INI text (malloc'd, NUL-terminated). 0 or -ENOMEM. */
int mallafs_cfg_render(const struct mallafs_cfg *cfg, char **ret_text, size_t *ret_len);

/** The service a plugin instance belongs to. */
struct mallafs_svc;

struct mallafs_plugin;

/**
 * A plugin's setting: what `ls config/PLUGIN` shows, with its default.
 * @c restart says whether a change needs a restart (documentation; the
 * plugin's @c updated callback decides).
 */
struct mallafs_setting {
	const char *key;
	const char *def; /**< default value, never NULL */
	int restart;     /**< 1 when a change needs a restart */
};

/**
 * The effective value of one of @p self's settings in @p cfg: the value set
 * in section `self->name`, or the declared default. NULL for an undeclared key
 * that is not set.
 */
const char *mallafs_setting(const struct mallafs_cfg *cfg, const struct mallafs_plugin *self,
                            const char *key);

/** What an update callback answers. */
enum mallafs_update {
	MALLAFS_UPDATE_OK = 0,      /**< applied live */
	MALLAFS_UPDATE_RESTART = 1, /**< the service must restart; reason says why */
	MALLAFS_UPDATE_ERROR = 2,   /**< failed; the change is rolled back; reason says why */
};

/** The store operations that pass through the chain. */
enum mallafs_store_opcode {
	MALLAFS_OP_GET = 0,  /**< read @c size bytes at @c offset into @c buf */
	MALLAFS_OP_CREATE,   /**< create an empty key; -EEXIST if it exists */
	MALLAFS_OP_WRITE,    /**< write @c size bytes of @c data at @c offset, creating the key */
	MALLAFS_OP_TRUNCATE, /**< set the value's length to @c offset */
	MALLAFS_OP_DELETE,   /**< remove the key */
	MALLAFS_OP_RENAME,   /**< rename @c key to @c new_key, replacing it */
	MALLAFS_OP_LIST,     /**< list the keys (hooks observe or refuse it) */
	MALLAFS_OP_COUNT_,
};

/** Flags of a WRITE. */
#define MALLAFS_OPF_APPEND 0x1 /**< write at the end, whatever @c offset says */
/** The value becomes @c offset zero bytes, then @c data, in one step (a put
 * at offset 0: `>` through the mount, whose truncation is held back until
 * its first write, comes as one). */
#define MALLAFS_OPF_REPLACE 0x2
/** Issued by a plugin for its own ends (an expiry): a refusal goes back to
 * the caller only, not to the service's last_error. */
#define MALLAFS_OPF_QUIET 0x4
/** GET: a read opening a value (size 0, nothing read yet). Through the
 * mount every open for reading is one: later reads may be served from the
 * kernel's cache without reaching the chain. */
#define MALLAFS_OPF_OPEN 0x8
/** GET: a later part of a value that an OPEN get already got. */
#define MALLAFS_OPF_PAGE 0x10
/** TRUNCATE: a question, not a change. An open with O_TRUNC holds its
 * truncation back until its first write (one REPLACE) or its close (a real
 * TRUNCATE); it asks first whether the chain would let the truncation
 * pass, so that a refusal still fails the open. Plugins that refuse judge
 * it as any TRUNCATE; those that count or record changes skip it. The
 * store is not changed and no event is emitted. */
#define MALLAFS_OPF_PROBE 0x20

/** Name of an opcode ("get", "put", ...) for logs and traces. */
const char *mallafs_store_opname(enum mallafs_store_opcode code);

/**
 * One store operation. Hooks may change @c data, @c size and @c offset (the
 * pointed-to bytes must then stay valid until the operation ends) or refuse
 * the operation by returning -errno from @c store_before.
 */
struct mallafs_store_op {
	enum mallafs_store_opcode code;
	const char *key;            /**< NUL-terminated */
	const char *new_key;        /**< RENAME only */
	const void *data;           /**< WRITE: the bytes */
	void *buf;                  /**< GET: where the bytes go */
	size_t size;                /**< WRITE: bytes in data; GET: room in buf */
	uint64_t offset;            /**< GET, WRITE: where; TRUNCATE: the new length */
	unsigned flags;             /**< MALLAFS_OPF_* */
	struct mallafs_reason *why; /**< a refusing hook may say why here (never NULL in hooks) */
	/* Filled by the daemon before the hooks run. */
	int64_t old_size; /**< the key's value size before, -1 when absent */
	uint64_t nkeys;   /**< keys in the store before */
	/* Filled by the daemon after the bottom of the chain ran. */
	int64_t result; /**< bytes read or written, 0, or -errno */
	/* Filled by the daemon before the hooks run (after result, so that
	 * plugins built against the older, shorter struct still fit). */
	uint64_t store_bytes; /**< bytes of keys (names) and values in the store before */
	int64_t new_key_size; /**< RENAME: the value size under new_key, -1 when absent */
	/* Appended after new_key_size (older plugins see a shorter struct). */
	/** Set to 1 by a store_before that wants the chain's store_commit
	 * callbacks called for this operation (see struct mallafs_plugin); the
	 * daemon then keeps what it needs to undo a CREATE, WRITE or TRUNCATE
	 * that a commit refuses. 0 when the hooks start. */
	int commit;
};

/** Where a render callback writes. */
struct mallafs_out;

/** A read-only file a plugin publishes in its service's folder. */
struct mallafs_file {
	const char *name;
	/** Appends the file's current text to @p out via mallafs_out_append(). 0 or -errno. */
	int (*render)(void *state, struct mallafs_out *out);
};

int mallafs_out_append(struct mallafs_out *out, const void *data, size_t len);
int mallafs_out_printf(struct mallafs_out *out, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/** A plugin descriptor. Unused callbacks are NULL. */
struct mallafs_plugin {
	uint32_t abi;  /**< MALLAFS_PLUGIN_ABI */
	uint32_t size; /**< sizeof(struct mallafs_plugin) as the plugin was built */
	const char *name;
	const char *const *deps;                /**< NULL-terminated names, or NULL */
	const struct mallafs_setting *settings; /**< terminated by a NULL key, or NULL */
	const struct mallafs_file *files;       /**< terminated by a NULL name, or NULL */

	/** Creates the per-service state when the plugin joins a chain. */
	int (*init)(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret_state);
	/** Frees it when the plugin leaves the chain or the service ends. */
	void (*fini)(void *state);
	/** Starts (bottom to top) with the committed configuration. 0 or -errno with a reason. */
	int (*start)(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why);
	/** Stops (top to bottom). */
	void (*stop)(void *state);
	/**
	 * Merge phase (top to bottom). @p old is the committed configuration;
	 * @p merged arrives holding the merge so far (as the plugins above left
	 * it) with @p update deep-merged in; the callback may change it, or
	 * reject the change by returning -EINVAL (or another -errno) with a
	 * reason.
	 */
	int (*config_merge)(void *state, const struct mallafs_cfg *old,
	                    const struct mallafs_cfg *update, struct mallafs_cfg *merged,
	                    struct mallafs_reason *why);
	/** Update phase (bottom to top), after the new configuration is committed. */
	enum mallafs_update (*updated)(void *state, const struct mallafs_cfg *old,
	                               const struct mallafs_cfg *cfg, struct mallafs_reason *why);
	/** Before the operation, top to bottom: 0 passes it on, -errno refuses it. */
	int (*store_before)(void *state, struct mallafs_store_op *op);
	/** After it (refused or done), bottom to top, for the plugins store_before reached. */
	void (*store_after)(void *state, const struct mallafs_store_op *op);

	/* Appended after store_after: a descriptor built before them is
	 * shorter, and the daemon reads them as NULL (its @c size tells). */

	/**
	 * Makes a change durable before it counts: called only for an
	 * operation whose @c commit a store_before set to 1, for every active
	 * plugin of the chain that has it (top to bottom), once the change is
	 * certain. DELETE and RENAME: just before base carries the change out
	 * (the table still holds the state before; not called when the key is
	 * absent, @c old_size -1). CREATE, WRITE and TRUNCATE (never a PROBE):
	 * right after base carried it out (the table holds the new value:
	 * mallafs_store_exec() with a GET reads it). 0 lets it count; -errno
	 * refuses it with that errno (a reason in @c why; the service's
	 * last_error records it as this plugin's refusal): a DELETE or RENAME is
	 * then not carried out, a CREATE, WRITE or TRUNCATE is undone (the key's
	 * value and mtime as before, or absent again), and no event of it is
	 * ever emitted; store_after then sees the error in @c result. A plugin
	 * that committed before another refused sees that error too.
	 *
	 * Runs with the store's write lock held, like every store hook, and
	 * may block (an fsync): only the service's own store operations wait.
	 */
	int (*store_commit)(void *state, const struct mallafs_store_op *op);
	/**
	 * Lines the plugin adds to its service's `status` file ("name: value\n"
	 * each), appended via mallafs_out_printf(), for an active plugin or
	 * not. Runs with the store's read lock held, as a published file's
	 * render: it must not block or call into the store. 0 or -errno.
	 */
	int (*status)(void *state, struct mallafs_out *out);
};

/** The service's name. */
const char *mallafs_svc_name(const struct mallafs_svc *svc);
/** Logs one line, prefixed with the service's name. level is a syslog level. */
void mallafs_svc_log(struct mallafs_svc *svc, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/** Says that a published file's text changed, so readers and watchers are told. */
void mallafs_svc_file_changed(struct mallafs_svc *svc, const char *name);

/**
 * Carries out @p op on the service's table itself, with no hooks: what the
 * `base` plugin does at the bottom of the chain. Only valid inside a store
 * hook (the store lock is held). Returns what op->result will be.
 */
int64_t mallafs_store_exec(struct mallafs_svc *svc, struct mallafs_store_op *op);

/**
 * Calls @p fn for every key with its value and last change time, a slice
 * of a few thousand keys at a time, each under the store's read lock (fn
 * must not call into the store), so that a walk of a large store never
 * holds its writers back for long. A key there throughout the walk comes
 * exactly once; one changed, made or removed meanwhile may come as it was
 * or as it is, or not at all: a plugin that needs the changes records them
 * in store_after. A non-zero return (other than from the store itself)
 * stops the walk and is returned. Never call it from a store hook.
 */
int mallafs_store_foreach(struct mallafs_svc *svc,
                          int (*fn)(const char *key, const void *value, size_t len,
                                    const struct timespec *mtime, void *arg),
                          void *arg);

/**
 * Puts a value straight into the table, past the chain: for loading saved
 * state. Readers and watchers see it as a write. Never from a store hook.
 * 0 or -errno.
 */
int mallafs_store_load(struct mallafs_svc *svc, const char *key, const void *value, size_t len);

/** One value for mallafs_store_load_many(). */
struct mallafs_store_rec {
	const char *key; /**< NUL-terminated */
	const void *value;
	size_t len;
	struct timespec mtime; /**< the value's last change; {0, 0}: now */
};

/**
 * Puts @p n values straight into the table, past the chain, as
 * mallafs_store_load() does one, replacing the values of the keys named:
 * for loading a large saved store fast. Every key is checked first: one
 * that is not a valid store key loads nothing (-EINVAL). The store lock is
 * taken per slice of a few thousand keys, so readers are not held for the
 * whole load. Watchers see one write event per key. Never from a store
 * hook. 0, or -errno (-ENOSPC: the node's max_memory; what was loaded
 * before stays).
 */
int mallafs_store_load_many(struct mallafs_svc *svc, const struct mallafs_store_rec *recs,
                            size_t n);

/**
 * The service's owner. Whatever the service runs or writes on its own
 * (exec hooks, persist's files) is done with these rights, never the
 * daemon's. It can change while the service runs (chown of the service).
 */
void mallafs_svc_owner(const struct mallafs_svc *svc, uid_t *ret_uid, gid_t *ret_gid);

/** Where the tree is mounted (for hooks' environment), or NULL. */
const char *mallafs_svc_mountpoint(const struct mallafs_svc *svc);

/**
 * Runs a whole store operation through the chain, as a request through the
 * mount would: for plugins acting on their own (an expiry timer). Never call
 * it from a store hook.
 */
int64_t mallafs_svc_store_op(struct mallafs_svc *svc, struct mallafs_store_op *op);

/**
 * A timer of a plugin instance, kept by the daemon's one timer loop instead
 * of a thread of the plugin's own: one thread keeps every deadline, and a
 * bounded pool of worker threads, shared by every service, runs the
 * callbacks that come due. The callbacks of the services of one owner (the
 * uid owning the service when it was armed) hold at most a few workers at
 * once, so a slow callback (a write to a slow disk, a delete waiting for a
 * hook) never delays another owner's timers; a callback may block, but the
 * longer it does, the later its owner's other timers run.
 *
 * One timer's callback never runs twice at once: armed again while it runs
 * (by itself too), it runs again after it returned, once due. It runs with
 * none of the daemon's locks held (it may call mallafs_svc_store_op or
 * mallafs_store_foreach). Deadlines are mallafs_timer_now() times.
 */
struct mallafs_timer;

/** CLOCK_MONOTONIC in nanoseconds: the clock of timers. */
int64_t mallafs_timer_now(void);
/** A new, unarmed timer of svc calling fn(arg); in init. 0 or -ENOMEM. */
int mallafs_timer_new(struct mallafs_svc *svc, void (*fn)(void *arg), void *arg,
                      struct mallafs_timer **ret);
/**
 * Fires at @p deadline (a past one: now), replacing the pending deadline,
 * earlier or later; O(log timers). Any thread, any lock held, store hooks
 * included. 0, or -ESHUTDOWN once the daemon is stopping (nothing fires
 * then), or -errno when the loop could not start its thread.
 */
int mallafs_timer_arm(struct mallafs_timer *t, int64_t deadline);
/**
 * Drops the pending deadline and, unless called from the callback itself,
 * waits for a callback under way to return: afterwards nothing of it runs
 * until the timer is armed again, so stop may then free what it uses. Never
 * call it with a lock the callback takes.
 */
void mallafs_timer_cancel(struct mallafs_timer *t);
/** Cancels, then frees (accepts NULL); in fini, never from the callback. */
void mallafs_timer_free(struct mallafs_timer *t);

#ifdef __cplusplus
}
#endif

#endif
