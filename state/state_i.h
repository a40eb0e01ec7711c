/* SPDX-License-Identifier: MIT */
/* What the files of the state database share (state.c: open, checks,
 * schema, start and stop; state_save.c: the listeners, the dirty set and
 * the flush; state_load.c: restore). The locks are described at the top of
 * state.c. */
#ifndef MALLAFS_STATE_STATE_I_H
#define MALLAFS_STATE_STATE_I_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "state.h"

struct mkv;

/* What a dirty mark names: its key in the dirty set is the letter, ':'
 * and the path below (or the whole path, for an owner or mode). */
#define MST_SERVICE 's'  /* NAME: a service's row, chain and configuration */
#define MST_ADMIN 'A'    /* NAME: a service's row alone (admin status, owner) */
#define MST_APP 'a'      /* APP: one node-wide config app */
#define MST_KEY 'k'      /* APP/KEY: one of its keys */
#define MST_REG 'r'      /* NAME or POOL/PID: a registration, a pool, a member */
#define MST_OVERRIDE 'o' /* PATH: what chmod and chown set on a node */

/* The statements the flush runs, prepared once. */
enum mst_stmt {
	Q_SVC_PUT,
	Q_SVC_OWNER,
	Q_SVC_DEL,
	Q_PLUG_DEL,
	Q_PLUG_PUT,
	Q_SEC_DEL,
	Q_SEC_PUT,
	Q_CFG_DEL,
	Q_CFG_PUT,
	Q_APP_PUT,
	Q_APP_DEL,
	Q_APPKEYS_DEL,
	Q_KEY_PUT,
	Q_KEY_DEL,
	Q_REG_PUT,
	Q_REG_DEL,
	Q_OV_PUT,
	Q_OV_DEL,
	Q_SEEDED,
	Q_COUNT_,
};

struct mstate {
	char *path;
	sqlite3 *db; /* the opening thread's until mstate_start, then the flush thread's */
	sqlite3_stmt *q[Q_COUNT_];
	struct mrt *rt;
	struct mfs *fs;
	bool listening; /* the listeners are in place (start to stop) */
	/* Cluster mode: registry/ and config/ are etcd's; neither restored
	 * nor saved (rows a node-local run left stay as they are). */
	bool local_only;

	pthread_mutex_t lock; /* see state.c */
	pthread_cond_t wake;  /* the flush thread waits on it (CLOCK_MONOTONIC) */
	pthread_cond_t done;  /* mstate_flush waits on it */
	struct mkv *dirty;    /* lock: the marks, keys only */
	bool marked;          /* lock: dirty holds a mark since first_mark_ms */
	uint64_t first_mark_ms;
	bool all;                 /* lock: a mark was lost (no memory): resave everything */
	struct mkv *held;         /* lock: services restored not as saved (state_load.c) */
	bool stopping;            /* lock */
	uint64_t asked, answered; /* lock: mstate_flush's requests and the flushes done */
	int answer;               /* lock: the last flush's result */
	bool thread_started;
	pthread_t thread;

	/* The flush thread's (the opening thread's before it starts). */
	bool failing;
	char last_fail[512];
	uint64_t retry_at_ms;
};

/* state.c: the statements, by the flush. */
sqlite3_stmt *mst_q(struct mstate *st, enum mst_stmt q);

/* state_save.c */
/* Marks what path (of an event, or of an owner or mode) changed; lock not held. */
void mst_mark(struct mstate *st, char letter, const char *path);
/* Marks every row of the database and everything the tree holds. */
int mst_mark_all(struct mstate *st);
/* Marks everything and commits it, even when nothing is marked (the
 * first save: "seeded"). */
int mst_save_all(struct mstate *st);
/* Commits the dirty set in one transaction; on failure it stays marked.
 * 0 or -errno (logged once per distinct reason). */
int mst_flush_now(struct mstate *st);
int mst_listen(struct mstate *st); /* -ENOSPC: the event ring has no room */
void mst_unlisten(struct mstate *st);
void *mst_thread(void *arg);

/* Binds text (SQLITE_TRANSIENT) to the n-th parameter. */
int mst_bind_text(sqlite3_stmt *s, int n, const char *text);
/* Steps a statement that returns no row, and resets it. 0 or -errno, the
 * reason in why (may be NULL). */
int mst_step(struct mstate *st, sqlite3_stmt *s, const char *what, char *why, size_t whylen);

#endif
