/* SPDX-License-Identifier: MIT */
/* SIGHUP: the bootstrap file applied again to the live tree, as one
 * all-or-nothing change (SPEC.md "The command", signals).
 *
 * The file is the desired state of what it names: a service it names is
 * created when missing; an existing one takes the file's owner, its chain
 * becomes the file's `plugins =` (when the file has that line) and each
 * configuration key the file names takes the file's value, in one
 * reconfiguration, then its admin status; each node-wide key it names
 * takes the file's value (its app made when missing). What the file does
 * not name is left alone: no service, plugin, key or app is removed
 * because the file lacks it.
 *
 * All or nothing: the whole file is parsed and checked first; then items
 * are applied in file order, and the first refusal (a merge callback's,
 * a plugin that fails to start, a key over the memory limit) undoes what
 * the items before it did, in reverse order: created services removed,
 * chains, configurations, admin statuses and owners put back, node-wide
 * keys restored. The reason is "FILE:LINE: reason", as at start.
 *
 * Threads: SIGHUP is blocked in every thread and read from a signalfd by
 * the reload thread, which reloads, one reload at a time, calling core and
 * fs's mfs_service_set_owner directly: never through the mount. */
#ifndef MALLAFS_MOUNT_RELOAD_H
#define MALLAFS_MOUNT_RELOAD_H

#include <stddef.h>

struct mrt;
struct mfs;

/* Applies the file at path to rt (fs: for owners; NULL before the
 * filesystem exists). 0 with msg a one-line summary ("FILE: 1 service
 * created, 2 reconfigured, 1 node-wide key written" or "FILE: nothing to
 * change"), or -errno with msg "FILE:LINE: reason" and nothing changed. */
int mboot_reload(struct mrt *rt, struct mfs *fs, const char *path, char *msg, size_t msglen);

/* What the reload thread tells around each reload (a service manager's
 * readiness protocol): reloading before, done after with the result and
 * the message. Called in the reload thread; either may be NULL. */
struct mreload_hooks {
	void (*reloading)(void *arg);
	void (*done)(int r, const char *msg, void *arg);
	void *arg;
};

struct mreload;

/* First thing in main(), before any thread exists: SIGHUP is blocked in
 * every thread, to be read by the reload thread only (a signalfd), never
 * by a handler; one sent before that thread runs waits for it. A SIGHUP
 * ignored at start (nohup) stays ignored. Exec hooks get an empty mask. */
void mreload_block_sighup(void);
/* Starts the reload thread. path (absolute; NULL: started without a
 * bootstrap file, and a SIGHUP only says so in the log) is copied. NULL
 * with errno on failure. */
struct mreload *mreload_start(struct mrt *rt, struct mfs *fs, const char *path,
                              const struct mreload_hooks *hooks);
/* Joins the thread (a reload under way ends first); SIGHUP stays blocked.
 * Accepts NULL. */
void mreload_stop(struct mreload *rl);

#endif
