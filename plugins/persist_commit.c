/* SPDX-License-Identifier: MIT */
/* persist's commits: what batch mode records of each change (the key's
 * value read from the table), the timer's commit of the map (and the
 * reconciliation of the whole store after a start), its retries, and what
 * status and the log say of them. The lock order is persist_i.h's. */
#include "persist_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

int64_t persist_real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The time now as status shows times. */
static void now_text(char *buf, size_t len)
{
	struct tm tm;
	time_t t = time(NULL);
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the table's values ---- */

/* The value of key in the table (store lock held): a malloc'd copy, or
 * -ENOENT. guess is a bound on its size, when known. */
int persist_table_value(struct mallafs_svc *svc, const char *key, uint64_t guess, char **ret,
                        size_t *ret_len)
{
	size_t cap = guess < (1u << 20) ? (size_t)guess + 1 : (1u << 20);
	for (;;) {
		char *buf = malloc(cap);
		if (!buf)
			return -ENOMEM;
		struct mallafs_store_op get = {
		        .code = MALLAFS_OP_GET, .key = key, .buf = buf, .size = cap};
		int64_t n = mallafs_store_exec(svc, &get);
		if (n < 0 || (size_t)n < cap) {
			if (n < 0)
				free(buf);
			else
				*ret = buf, *ret_len = (size_t)n;
			return n < 0 ? (int)n : 0;
		}
		free(buf);
		if (cap > SIZE_MAX / 4)
			return -ENOMEM;
		cap *= 4;
	}
}

/* A bound on the size of op->key's value after op. */
uint64_t persist_size_guess(const struct mallafs_store_op *op)
{
	uint64_t old = op->old_size > 0 ? (uint64_t)op->old_size : 0;
	if (op->code == MALLAFS_OP_TRUNCATE)
		return op->offset;
	if (op->code != MALLAFS_OP_WRITE)
		return old;
	uint64_t end = op->offset + op->size;
	return (op->flags & MALLAFS_OPF_APPEND) ? old + op->size : (end > old ? end : old);
}

/* ---- the map and its commits ---- */

/* Records key's state in the table now into the map. p->lock and the store
 * lock held. */
int persist_record_key(struct persist *p, const char *key, uint64_t guess)
{
	char *v = NULL;
	size_t len = 0;
	int r = persist_table_value(p->svc, key, guess, &v, &len);
	if (r == -ENOENT)
		return pdirty_put(&p->dirty, key, true, NULL, 0, 0);
	if (r < 0)
		return r;
	r = pdirty_put(&p->dirty, key, false, v, len, persist_real_ns());
	free(v);
	return r;
}

/* Arms the timer for the map, 50 ms from now, unless a commit or a retry
 * is due already. p->lock held. */
void persist_arm_commit(struct persist *p)
{
	if (p->armed || p->failing || p->stopping)
		return;
	p->armed = true;
	int r = mallafs_timer_arm(p->timer, mallafs_timer_now() + PERSIST_COALESCE_NS);
	/* Only a daemon going away (whose stop commits what is left) or one
	 * that cannot start its timer thread refuses. */
	if (r < 0 && r != -ESHUTDOWN)
		mallafs_svc_log(p->svc, LOG_ERR, "persist: cannot arm the committer's timer: %s",
		                strerror(-r));
}

static int apply_one(const struct pdirty_ent *e, void *arg)
{
	void **a = arg;
	struct persist *p = a[0];
	struct mallafs_reason *why = a[1];
	return e->del ? pdb_del(&p->d, e->key, why)
	              : pdb_put(&p->d, e->key, e->value, e->len, e->mtime, why);
}

static int copy_one(const char *key, const void *value, size_t len, const struct timespec *mtime,
                    void *arg)
{
	return precs_add(arg, key, strlen(key), value, len,
	                 (int64_t)mtime->tv_sec * 1000000000 + mtime->tv_nsec);
}

/* Commits take (and reconciles the whole store first when sync): one
 * transaction each. Takes db_lock; no other lock held. */
static int commit_map(struct persist *p, struct pdirty *take, bool sync, struct mallafs_reason *why)
{
	struct precs snap = {0};
	int r = 0;
	if (sync) {
		r = mallafs_store_foreach(p->svc, copy_one, &snap);
		if (r < 0) {
			mallafs_reason_set(why, "cannot copy the store: %s", strerror(-r));
			precs_free(&snap);
			return r;
		}
		precs_sort(&snap);
	}
	pthread_mutex_lock(&p->db_lock);
	if (sync)
		r = pdb_sync(&p->d, &snap, NULL, why);
	if (r == 0 && take->n) {
		void *a[2] = {p, why};
		r = pdb_begin(&p->d, why);
		if (r == 0)
			r = pdirty_foreach(take, apply_one, a);
		if (r == 0)
			r = pdb_commit(&p->d, why);
		else
			pdb_rollback(&p->d);
	}
	pthread_mutex_unlock(&p->db_lock);
	precs_free(&snap);
	return r;
}

/* Notes a commit's outcome in status and the log (a failure once per
 * distinct reason, and the recovery), announcing a change of persist_error
 * to status's watchers. p->lock not held. */
void persist_note_commit(struct persist *p, int r, const struct mallafs_reason *why, bool retry)
{
	char when[32], line[MALLAFS_REASON_MAX];
	bool log_it = false;
	now_text(when, sizeof(when));
	pthread_mutex_lock(&p->lock);
	if (r < 0) {
		snprintf(p->error, sizeof(p->error), "%s %s%s", when, why->text,
		         retry ? " (will retry)" : "");
		if (strcmp(p->logged, why->text) != 0) {
			snprintf(p->logged, sizeof(p->logged), "%s", why->text);
			log_it = true;
		}
	} else {
		snprintf(p->last_commit, sizeof(p->last_commit), "%s", when);
		strcpy(p->error, "-");
		log_it = p->logged[0] != '\0';
		p->logged[0] = '\0';
	}
	snprintf(line, sizeof(line), "%s", why->text);
	pthread_mutex_unlock(&p->lock);
	if (!log_it)
		return;
	/* persist_error changed: watchers of status hear of it (a commit
	 * that only moves persist_last_commit is not announced). */
	mallafs_svc_file_changed(p->svc, "status");
	if (r < 0)
		mallafs_svc_log(p->svc, LOG_ERR, "persist: cannot commit to %s: %s%s", p->path,
		                line, retry ? " (trying again)" : "");
	else
		mallafs_svc_log(p->svc, LOG_INFO, "persist: committing to %s again", p->path);
}

/* Takes the map (and the reconciliation) out, commits it; on failure puts
 * it back under the changes made since. */
int persist_commit_pending(struct persist *p, bool retry, struct mallafs_reason *why)
{
	pthread_mutex_lock(&p->lock);
	struct pdirty take = p->dirty;
	bool sync = p->syncing;
	p->dirty = (struct pdirty){0};
	p->armed = false;
	pthread_mutex_unlock(&p->lock);
	if (!take.n && !sync)
		return 0;
	int r = commit_map(p, &take, sync, why);
	pthread_mutex_lock(&p->lock);
	if (r < 0)
		pdirty_merge_older(&p->dirty, &take);
	else if (sync)
		p->syncing = false;
	pthread_mutex_unlock(&p->lock);
	pdirty_free(&take);
	persist_note_commit(p, r, why, retry);
	return r;
}

/* The timer's callback, on a worker of the daemon's loop. */
void persist_commit_due(void *arg)
{
	struct persist *p = arg;
	struct mallafs_reason why = {{0}};
	pthread_mutex_lock(&p->lock);
	bool stopping = p->stopping;
	pthread_mutex_unlock(&p->lock);
	if (stopping)
		return;
	int r = persist_commit_pending(p, true, &why);
	pthread_mutex_lock(&p->lock);
	if (r < 0) {
		p->retry_ms = p->failing ? p->retry_ms * 2 : PERSIST_RETRY_MS;
		if (p->retry_ms > PERSIST_RETRY_MAX_MS)
			p->retry_ms = PERSIST_RETRY_MAX_MS;
		p->failing = true;
		if (!p->stopping)
			mallafs_timer_arm(p->timer,
			                  mallafs_timer_now() + (int64_t)p->retry_ms * 1000000);
	} else {
		p->failing = false;
		/* Changes recorded while this commit ran. */
		if (p->dirty.n)
			persist_arm_commit(p);
	}
	pthread_mutex_unlock(&p->lock);
}
