/* SPDX-License-Identifier: MIT */
/* The state database (-o state=FILE): everything a restart would lose but
 * the stores (persist keeps those) in one SQLite database. Services with
 * their declared chains, admin status, owners and committed configuration;
 * the node-wide config; the owners and modes chmod and chown set (fs/perm.c);
 * the registrations, with the identity of their processes.
 *
 * Usage, from main():
 *     mstate_open(path, &st, &fresh, ...)  before the bootstrap file
 *     fresh ? mboot_load(...) : mstate_restore(st, rt)
 *     fs = mfs_new(rt); mstate_restore_perms(st, fs) (when not fresh)
 *     mstate_start(st, rt, fs)              saves all, then follows changes
 *     ... mount, serve, unmount ...
 *     mstate_stop(st)                       before the services stop
 *     mstate_close(st)
 * A fresh state (a new database, or one never saved to) takes what the
 * bootstrap made; a state that exists is what comes back, and the bootstrap
 * file is not applied. */
#ifndef MALLAFS_STATE_STATE_H
#define MALLAFS_STATE_STATE_H

#include <stdbool.h>
#include <stddef.h>

struct mrt;
struct mfs;
struct mstate;

/* Opens path (relative to the working directory, or absolute), creating it
 * 0600 for the daemon's uid when missing, after checking that nobody but
 * the daemon can write it: the file must be the daemon's and not writable
 * by group or others, its folder the daemon's or root's and not writable by
 * others unless sticky; then msql_open's checks (not a symbolic link
 * anywhere, ours, not newer, sound, writable). *ret_fresh: nothing was
 * ever saved in it. 0, or -errno with the reason (one line, without the
 * path) in why. */
int mstate_open(const char *path, struct mstate **ret, bool *ret_fresh, char *why, size_t whylen);

/* Cluster mode (before mstate_restore): registry/ and config/ are etcd's,
 * so this database keeps only what is this node's. */
void mstate_set_local_only(struct mstate *st);

/* Brings back the node config, the services and the live registrations
 * (rt's, before anything else is in it). A service that cannot be made as
 * saved still comes back (see state_load.c), with the reason in its status;
 * nothing here fails the mount but the database itself. 0 or -errno, the
 * reason in why. */
int mstate_restore(struct mstate *st, struct mrt *rt, char *why, size_t whylen);
/* The owners and modes of the nodes restore brought back. */
int mstate_restore_perms(struct mstate *st, struct mfs *fs);

/* Listens to rt's changes and fs's owners and modes (fs may be NULL: none),
 * saves the whole tree in one transaction (so that what the database holds
 * is what is running), and starts the thread that commits each change
 * within 50 ms. 0 or -errno, the reason in why. */
int mstate_start(struct mstate *st, struct mrt *rt, struct mfs *fs, char *why, size_t whylen);

/* Stops listening, commits what changed since the last commit, stops the
 * thread. Before the services stop: stopping them is no change to save. */
void mstate_stop(struct mstate *st);

/* Closes the database and frees st (accepts NULL); stops first if needed. */
void mstate_close(struct mstate *st);

/* For tests: commits what is marked now, in the calling thread when the
 * flush thread is not started, else waits for the thread to commit it.
 * 0 or the commit's -errno. */
int mstate_flush(struct mstate *st);

#endif
