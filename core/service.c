/* SPDX-License-Identifier: MIT */
#include "service_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "events.h"
#include "plugin.h"
#include "retry.h"
#include "timer.h"
#include "tree.h"
#include "util.h"

static const char *const state_names[] = {
        [MSVC_STARTING] = "starting", [MSVC_RUNNING] = "running",   [MSVC_PAUSING] = "pausing",
        [MSVC_PAUSED] = "paused",     [MSVC_STOPPING] = "stopping", [MSVC_STOPPED] = "stopped",
        [MSVC_FAILED] = "failed",
};

static const char *const admin_names[] = {
        [MSVC_ADMIN_ACTIVE] = "active",
        [MSVC_ADMIN_PAUSE] = "pause",
        [MSVC_ADMIN_INACTIVE] = "inactive",
};

const char *msvc_state_name(enum msvc_state st)
{
	return (size_t)st < MU_ARRAY_SIZE(state_names) ? state_names[st] : "?";
}

const char *msvc_admin_name(enum msvc_admin ad)
{
	return (size_t)ad < MU_ARRAY_SIZE(admin_names) ? admin_names[ad] : "?";
}

int msvc_admin_parse(const char *text, size_t len, enum msvc_admin *ret)
{
	if (len > 0 && text[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < MU_ARRAY_SIZE(admin_names); i++) {
		if (strlen(admin_names[i]) == len && memcmp(admin_names[i], text, len) == 0) {
			*ret = (enum msvc_admin)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- status, errors, events ---- */

void msvc_path(const struct mallafs_svc *svc, char *buf, size_t len, const char *sub,
               const char *name)
{
	mtree_join(buf, len, mtree_name(MTREE_SERVICES), svc->name, sub, name, NULL);
}

/* The time, after_ms from now, as status shows times. */
static void when_from_now(char *dst, size_t len, unsigned after_ms)
{
	struct timespec ts;
	struct tm tm;

	mu_now_real(&ts);
	ts.tv_sec += (time_t)((after_ms + (unsigned)(ts.tv_nsec / 1000000)) / 1000);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(dst, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void stamp(char *dst, size_t len, const char *reason)
{
	char when[32];
	when_from_now(when, sizeof(when), 0);
	snprintf(dst, len, "%s %s", when, reason);
}

static void emit_status(struct mallafs_svc *svc)
{
	char path[MTREE_PATH_MAX];
	msvc_path(svc, path, sizeof(path), mtree_name(MTREE_STATUS), NULL);
	pthread_mutex_lock(&svc->state_lock);
	enum msvc_state st = svc->st.state;
	enum msvc_admin ad = svc->st.admin;
	pthread_mutex_unlock(&svc->state_lock);
	mev_emitf(svc->env.events, MEV_STATUS, path, "%s %s", msvc_state_name(st),
	          msvc_admin_name(ad));
}

static void set_state(struct mallafs_svc *svc, enum msvc_state st)
{
	pthread_mutex_lock(&svc->state_lock);
	bool changed = svc->st.state != st;
	svc->st.state = st;
	pthread_mutex_unlock(&svc->state_lock);
	if (changed)
		emit_status(svc);
}

void msvc_set_error(struct mallafs_svc *svc, const char *reason)
{
	mu_log(MU_LOG_WARNING, "service %s: %s", svc->name, reason);
	pthread_mutex_lock(&svc->state_lock);
	stamp(svc->st.last_error, sizeof(svc->st.last_error), reason);
	pthread_mutex_unlock(&svc->state_lock);
	emit_status(svc);
}

const char *mallafs_svc_name(const struct mallafs_svc *svc)
{
	return svc->name;
}

const char *mallafs_svc_mountpoint(const struct mallafs_svc *svc)
{
	return svc->env.mountpoint;
}

void mallafs_svc_owner(const struct mallafs_svc *svc, uid_t *ret_uid, gid_t *ret_gid)
{
	uint64_t o = atomic_load(&svc->owner);
	if (ret_uid)
		*ret_uid = (uid_t)(o >> 32);
	if (ret_gid)
		*ret_gid = (gid_t)(o & 0xffffffffu);
}

void msvc_set_owner(struct mallafs_svc *svc, uid_t uid, gid_t gid)
{
	atomic_store(&svc->owner, ((uint64_t)uid << 32) | (uint64_t)gid);
}

void mallafs_svc_log(struct mallafs_svc *svc, int level, const char *fmt, ...)
{
	char line[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	mu_log((enum mu_log_level)level, "service %s: %s", svc->name, line);
}

void mallafs_svc_file_changed(struct mallafs_svc *svc, const char *name)
{
	char path[MTREE_PATH_MAX];
	msvc_path(svc, path, sizeof(path), name, NULL);
	mev_emit(svc->env.events, MEV_WRITE, path, NULL);
}

/* ---- plugins' timers, on the runtime's loop (timer.h) ---- */

/* The service is not referenced: its plugin instances, which own their
 * timers, are freed before it. */
struct mallafs_timer {
	struct mtimer *t;
	const struct mallafs_svc *svc;
};

int64_t mallafs_timer_now(void)
{
	return mtimer_now();
}

int mallafs_timer_new(struct mallafs_svc *svc, void (*fn)(void *arg), void *arg,
                      struct mallafs_timer **ret)
{
	struct mallafs_timer *pt = calloc(1, sizeof(*pt));
	if (!pt)
		return -ENOMEM;
	int r = mtimer_new(svc->env.timers, fn, arg, &pt->t);
	if (r < 0) {
		free(pt);
		return r;
	}
	pt->svc = svc;
	*ret = pt;
	return 0;
}

int mallafs_timer_arm(struct mallafs_timer *pt, int64_t deadline)
{
	/* The owner now: a chown moves the service's next callbacks to the
	 * new owner's share of the workers. */
	uid_t uid;
	mallafs_svc_owner(pt->svc, &uid, NULL);
	return mtimer_arm(pt->t, deadline, uid);
}

void mallafs_timer_cancel(struct mallafs_timer *pt)
{
	mtimer_cancel(pt->t);
}

void mallafs_timer_free(struct mallafs_timer *pt)
{
	if (!pt)
		return;
	mtimer_free(pt->t);
	free(pt);
}

/* ---- life of the object ---- */

void msvc_inst_free(struct minst *in)
{
	if (!in)
		return;
	if (in->desc->fini)
		in->desc->fini(in->state);
	free(in);
}

struct minst *msvc_inst_new(struct mallafs_svc *svc, const struct mallafs_plugin *desc,
                            struct mallafs_reason *why, int *ret_err)
{
	struct minst *in = calloc(1, sizeof(*in));
	if (!in) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	in->desc = desc;
	in->base = strcmp(desc->name, "base") == 0;
	in->active = in->base;
	if (desc->init) {
		int r = desc->init(svc, desc, &in->state);
		if (r < 0) {
			mallafs_reason_set(why, "%s: cannot initialise: %s", desc->name,
			                   strerror(-r));
			free(in);
			*ret_err = r;
			return NULL;
		}
	}
	return in;
}

int msvc_new(const struct msvc_env *env, const char *name, struct mallafs_svc **ret)
{
	if (mu_name_check_str(name, MU_NAME_STRICT) < 0)
		return -EINVAL;
	int r = -ENOMEM;
	struct mallafs_reason why;
	const struct mallafs_plugin *base;

	r = mplugreg_find(env->plugins, "base", &base, &why);
	if (r < 0)
		return r;

	struct mallafs_svc *svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	r = -ENOMEM;
	svc->env = *env;
	if (!svc->env.timers) {
		svc->own_timers = mtimer_loop_new(0, 0);
		if (!svc->own_timers) {
			free(svc);
			return -ENOMEM;
		}
		svc->env.timers = svc->own_timers;
	}
	atomic_init(&svc->refs, 1);
	msvc_set_owner(svc, getuid(), getgid());
	pthread_mutex_init(&svc->op_lock, NULL);
	pthread_rwlock_init(&svc->store_lock, NULL);
	pthread_mutex_init(&svc->state_lock, NULL);
	svc->st.state = MSVC_STOPPED;
	svc->st.admin = MSVC_ADMIN_INACTIVE;
	strcpy(svc->st.last_restart, "-");
	strcpy(svc->st.last_error, "-");
	strcpy(svc->st.next_retry, "-");

	svc->name = strdup(name);
	svc->kv = mkv_new();
	svc->cfg = mcfg_new();
	svc->chain = calloc(1, sizeof(*svc->chain));
	if (!svc->name || !svc->kv || !svc->cfg || !svc->chain)
		goto fail;
	mkv_set_account(svc->kv, svc->env.account);
	svc->chain[0] = msvc_inst_new(svc, base, &why, &r);
	if (!svc->chain[0])
		goto fail;
	svc->nchain = 1;
	*ret = svc;
	return 0;
fail:
	msvc_unref(svc);
	return r;
}

struct mallafs_svc *msvc_ref(struct mallafs_svc *svc)
{
	atomic_fetch_add(&svc->refs, 1);
	return svc;
}

void msvc_unref(struct mallafs_svc *svc)
{
	if (!svc || atomic_fetch_sub(&svc->refs, 1) != 1)
		return;
	for (size_t i = 0; i < svc->nchain; i++)
		msvc_inst_free(svc->chain[i]);
	free(svc->chain);
	mtimer_loop_free(svc->own_timers); /* after the plugins freed their timers */
	for (size_t i = 0; i < svc->ndeclared; i++)
		free(svc->declared[i]);
	free(svc->declared);
	mkv_free(svc->kv);
	mcfg_free(svc->cfg);
	mcfg_free(svc->eff);
	pthread_mutex_destroy(&svc->state_lock);
	pthread_rwlock_destroy(&svc->store_lock);
	pthread_mutex_destroy(&svc->op_lock);
	free(svc->name);
	free(svc);
}

const char *msvc_name(const struct mallafs_svc *svc)
{
	return svc->name;
}

bool msvc_alive(struct mallafs_svc *svc)
{
	pthread_rwlock_rdlock(&svc->store_lock);
	bool alive = !svc->dead;
	pthread_rwlock_unlock(&svc->store_lock);
	return alive;
}

uint64_t msvc_id(const struct mallafs_svc *svc)
{
	return svc->id;
}

void msvc_set_id(struct mallafs_svc *svc, uint64_t id)
{
	svc->id = id;
}

struct minst *msvc_chain_find(struct mallafs_svc *svc, const char *name)
{
	for (size_t i = 0; i < svc->nchain; i++)
		if (strcmp(svc->chain[i]->desc->name, name) == 0)
			return svc->chain[i];
	return NULL;
}

/* ---- lifecycle ---- */

void msvc_stop_one(struct mallafs_svc *svc, struct minst *in)
{
	if (in->base || !in->active)
		return;
	pthread_rwlock_wrlock(&svc->store_lock);
	in->active = false;
	pthread_rwlock_unlock(&svc->store_lock);
	if (in->desc->stop)
		in->desc->stop(in->state);
}

int msvc_start_one(struct mallafs_svc *svc, struct minst *in, struct mallafs_reason *why)
{
	if (in->active)
		return 0;
	if (in->desc->start) {
		struct mallafs_reason pr = {{0}};
		int r = in->desc->start(in->state, svc->cfg, &pr);
		if (r < 0) {
			mallafs_reason_set(why, "%s: cannot start: %s", in->desc->name,
			                   pr.text[0] ? pr.text : strerror(-r));
			return r;
		}
	}
	pthread_rwlock_wrlock(&svc->store_lock);
	in->active = true;
	pthread_rwlock_unlock(&svc->store_lock);
	return 0;
}

/* Top to bottom. */
static void stop_chain(struct mallafs_svc *svc, enum msvc_state final)
{
	if (!svc->started)
		return;
	set_state(svc, MSVC_STOPPING);
	for (size_t i = 0; i < svc->nchain; i++)
		msvc_stop_one(svc, svc->chain[i]);
	svc->started = false;
	set_state(svc, final);
}

static enum msvc_state running_state(struct mallafs_svc *svc)
{
	pthread_mutex_lock(&svc->state_lock);
	enum msvc_admin ad = svc->st.admin;
	pthread_mutex_unlock(&svc->state_lock);
	return ad == MSVC_ADMIN_PAUSE ? MSVC_PAUSED : MSVC_RUNNING;
}

/* Bottom to top; a failure stops what started and leaves the service
 * failed, with the reason in last_error and in *why (may be NULL). */
static int start_chain(struct mallafs_svc *svc, struct mallafs_reason *why)
{
	struct mallafs_reason local = {{0}};
	if (!why)
		why = &local;
	set_state(svc, MSVC_STARTING);
	for (size_t i = svc->nchain; i-- > 0;) {
		int r = msvc_start_one(svc, svc->chain[i], why);
		if (r < 0) {
			for (size_t j = i + 1; j < svc->nchain; j++)
				msvc_stop_one(svc, svc->chain[j]);
			msvc_set_error(svc, why->text);
			set_state(svc, MSVC_FAILED);
			return r;
		}
	}
	svc->started = true;
	/* Running ends the retries, in the same change of status. */
	enum msvc_state run = running_state(svc);
	pthread_mutex_lock(&svc->state_lock);
	uint64_t n = svc->st.retries;
	svc->st.state = run;
	svc->st.retries = 0;
	strcpy(svc->st.next_retry, "-");
	pthread_mutex_unlock(&svc->state_lock);
	if (n > 0)
		mu_log(MU_LOG_INFO, "service %s: running again after %llu retries", svc->name,
		       (unsigned long long)n);
	emit_status(svc);
	return 0;
}

/* ---- retries (retry.h does the timing) ---- */

/* No try pending, none counted; op_lock held. */
static void retries_end(struct mallafs_svc *svc)
{
	if (svc->env.retry)
		mretry_cancel(svc->env.retry, svc);
	pthread_mutex_lock(&svc->state_lock);
	bool changed = svc->st.retries != 0 || strcmp(svc->st.next_retry, "-") != 0;
	svc->st.retries = 0;
	strcpy(svc->st.next_retry, "-");
	pthread_mutex_unlock(&svc->state_lock);
	if (changed)
		emit_status(svc);
}

void msvc_after_start(struct mallafs_svc *svc, int r)
{
	pthread_mutex_lock(&svc->state_lock);
	uint64_t n = svc->st.retries;
	bool active = svc->st.admin == MSVC_ADMIN_ACTIVE;
	pthread_mutex_unlock(&svc->state_lock);
	if (r == 0 || !active || svc->dead || !svc->env.retry) {
		retries_end(svc);
		return;
	}
	unsigned delay = mretry_delay_ms(svc->env.retry, n);
	int e = mretry_schedule(svc->env.retry, svc, delay);
	char when[sizeof(svc->st.next_retry)] = "-";
	if (e == 0)
		when_from_now(when, sizeof(when), delay);
	else if (e != -ESHUTDOWN)
		mu_log(MU_LOG_WARNING, "service %s: cannot schedule a retry: %s", svc->name,
		       strerror(-e));
	pthread_mutex_lock(&svc->state_lock);
	strcpy(svc->st.next_retry, when);
	pthread_mutex_unlock(&svc->state_lock);
	if (e == 0)
		mu_log(MU_LOG_INFO, "service %s: failed; retry %llu in %u ms, at %s", svc->name,
		       (unsigned long long)n + 1, delay, when);
	emit_status(svc);
}

void msvc_retry(struct mallafs_svc *svc)
{
	pthread_mutex_lock(&svc->op_lock);
	pthread_mutex_lock(&svc->state_lock);
	/* Whoever changed the service since this try was scheduled decided
	 * already. */
	bool wanted = !svc->dead && !svc->started && svc->st.state == MSVC_FAILED &&
	              svc->st.admin == MSVC_ADMIN_ACTIVE;
	uint64_t n = wanted ? ++svc->st.retries : 0;
	if (wanted)
		strcpy(svc->st.next_retry, "-");
	pthread_mutex_unlock(&svc->state_lock);
	if (wanted) {
		mu_log(MU_LOG_INFO, "service %s: retry %llu: starting", svc->name,
		       (unsigned long long)n);
		msvc_after_start(svc, start_chain(svc, NULL));
	}
	pthread_mutex_unlock(&svc->op_lock);
}

int msvc_restart(struct mallafs_svc *svc, const char *reason, struct mallafs_reason *why)
{
	char path[MTREE_PATH_MAX];
	msvc_path(svc, path, sizeof(path), NULL, NULL);
	mu_log(MU_LOG_INFO, "service %s: restarting: %s", svc->name, reason);
	stop_chain(svc, MSVC_STOPPING);
	pthread_mutex_lock(&svc->state_lock);
	svc->st.restarts++;
	stamp(svc->st.last_restart, sizeof(svc->st.last_restart), reason);
	pthread_mutex_unlock(&svc->state_lock);
	mev_emit(svc->env.events, MEV_RESTART, path, reason);
	return start_chain(svc, why);
}

int msvc_set_admin(struct mallafs_svc *svc, enum msvc_admin admin)
{
	int r = 0;
	pthread_mutex_lock(&svc->op_lock);
	if (svc->dead) {
		r = -ENOENT;
		goto out;
	}
	pthread_mutex_lock(&svc->state_lock);
	bool changed = svc->st.admin != admin;
	enum msvc_state before = svc->st.state;
	svc->st.admin = admin;
	pthread_mutex_unlock(&svc->state_lock);
	if (admin == MSVC_ADMIN_INACTIVE) {
		if (svc->started)
			stop_chain(svc, MSVC_STOPPED);
		else
			set_state(svc, MSVC_STOPPED);
		retries_end(svc);
	} else if (!svc->started) {
		/* The writer's try: the retries start over after it. */
		retries_end(svc);
		r = start_chain(svc, NULL);
		msvc_after_start(svc, r);
		if (r < 0)
			r = -EIO;
	} else {
		if (admin == MSVC_ADMIN_PAUSE)
			set_state(svc, MSVC_PAUSING);
		set_state(svc, running_state(svc));
	}
	/* One event per change: a state change above already told. */
	struct msvc_status now;
	msvc_status(svc, &now);
	if (changed && now.state == before)
		emit_status(svc);
out:
	pthread_mutex_unlock(&svc->op_lock);
	return r;
}

void msvc_set_failed(struct mallafs_svc *svc, const char *reason)
{
	pthread_mutex_lock(&svc->op_lock);
	if (!svc->dead && !svc->started)
		set_state(svc, MSVC_FAILED);
	msvc_set_error(svc, reason);
	pthread_mutex_unlock(&svc->op_lock);
}

int msvc_set_admin_text(struct mallafs_svc *svc, const char *text, size_t len)
{
	enum msvc_admin admin;
	if (msvc_admin_parse(text, len, &admin) < 0) {
		char reason[64];
		snprintf(reason, sizeof(reason), "%s: write active, pause or inactive",
		         mtree_name(MTREE_STATUS));
		msvc_set_error(svc, reason);
		return -EINVAL;
	}
	return msvc_set_admin(svc, admin);
}

void msvc_destroy(struct mallafs_svc *svc)
{
	pthread_mutex_lock(&svc->op_lock);
	if (!svc->dead) {
		stop_chain(svc, MSVC_STOPPED);
		set_state(svc, MSVC_STOPPED);
		pthread_rwlock_wrlock(&svc->store_lock);
		svc->dead = true;
		pthread_rwlock_unlock(&svc->store_lock);
		if (svc->env.retry)
			mretry_cancel(svc->env.retry, svc);
	}
	pthread_mutex_unlock(&svc->op_lock);
}

void msvc_status(struct mallafs_svc *svc, struct msvc_status *ret)
{
	pthread_mutex_lock(&svc->state_lock);
	*ret = svc->st;
	pthread_mutex_unlock(&svc->state_lock);
}

static int status_render(struct mallafs_svc *svc, bool plugins, char **ret_text, size_t *ret_len)
{
	struct msvc_status st;
	struct mu_buf b = {0};
	msvc_status(svc, &st);
	int r = mu_buf_printf(&b,
	                      "state: %s\nadmin: %s\nrestarts: %llu\nlast_restart: %s\n"
	                      "last_error: %s\nretries: %llu\nnext_retry: %s\n",
	                      msvc_state_name(st.state), msvc_admin_name(st.admin),
	                      (unsigned long long)st.restarts, st.last_restart, st.last_error,
	                      (unsigned long long)st.retries, st.next_retry);
	if (r == 0 && plugins)
		r = msvc_status_plugins(svc, &b);
	if (r < 0) {
		mu_buf_free(&b);
		return r;
	}
	*ret_text = mu_buf_steal(&b, ret_len);
	return 0;
}

int msvc_status_render(struct mallafs_svc *svc, char **ret_text, size_t *ret_len)
{
	return status_render(svc, true, ret_text, ret_len);
}

int msvc_status_render_core(struct mallafs_svc *svc, char **ret_text, size_t *ret_len)
{
	return status_render(svc, false, ret_text, ret_len);
}
