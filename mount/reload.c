/* SPDX-License-Identifier: MIT */
/* The bootstrap file applied again on SIGHUP (reload.h): each item is one
 * step, and each step records what it changed so the steps before a
 * refusal can be undone, last first.
 *
 * Locks: none of its own beyond the thread's pipe. Every change goes
 * through core's functions, which take the service's op_lock (or the
 * node configuration's lock) for each change; a reload is not atomic
 * towards users who change the same service at the same time (their
 * change may be undone with the reload's, or may survive it), as a chown
 * and a write racing each other are not. */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "bootstrap_i.h"
#include "cfg.h"
#include "fs.h"
#include "kv.h"
#include "nodecfg.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

/* A node-wide key as it was before the step wrote it. */
struct app_prev {
	const char *key; /* the parsed file's */
	bool had;
	char *value;
	size_t len;
};

struct step {
	struct boot_item *it;
	struct mallafs_svc *svc; /* a reference; NULL for an app */
	bool created;            /* the service or app did not exist */
	/* An existing service: what to put back. */
	bool owner_changed;
	uid_t old_uid;
	gid_t old_gid;
	bool chain_changed;
	char **old_declared;
	size_t nold;
	struct msvc_undo *undo;
	bool admin_changed;
	enum msvc_admin old_admin;
	/* An app. */
	struct app_prev *keys;
	size_t nkeys;
};

struct reload {
	struct boot b;
	struct mfs *fs;
	struct step *steps;
	size_t nsteps;
	/* What the summary counts. */
	unsigned created, changed, keys;
};

static void step_fini(struct step *s)
{
	msvc_unref(s->svc);
	for (size_t i = 0; s->old_declared && i < s->nold; i++)
		free(s->old_declared[i]);
	free(s->old_declared);
	msvc_undo_free(s->undo);
	for (size_t i = 0; i < s->nkeys; i++)
		free(s->keys[i].value);
	free(s->keys);
}

/* ---- node-wide apps ---- */

static int app_apply(struct reload *rl, struct step *s)
{
	struct boot *b = &rl->b;
	struct boot_item *it = s->it;
	struct mnodecfg *nc = mrt_nodecfg(b->rt);
	struct lined_list keys = {0};
	int r = mnodecfg_app_create(nc, it->name);
	if (r < 0 && r != -EEXIST)
		return mboot_fail(b, it->line, r, "config %s: %s", it->name, strerror(-r));
	s->created = r == 0;
	r = mboot_list_keys(b->file, it->section, &keys);
	if (r == 0 && keys.n && !(s->keys = calloc(keys.n, sizeof(*s->keys))))
		r = -ENOMEM;
	if (r < 0) {
		r = mboot_fail(b, it->line, r, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < keys.n; i++) {
		const struct lined *k = &keys.v[i];
		size_t len = strlen(k->value);
		struct app_prev *p = &s->keys[s->nkeys];
		struct mkv_stat st;
		/* The slot of an unchanged key before is taken again. */
		*p = (struct app_prev){.key = k->name};
		if (mnodecfg_stat(nc, it->name, k->name, &st) == 0) {
			p->value = malloc(st.size + 1);
			ssize_t n = p->value ? mnodecfg_read(nc, it->name, k->name, 0, p->value,
			                                     st.size)
			                     : -ENOMEM;
			if (n < 0) {
				free(p->value);
				p->value = NULL;
				r = mboot_fail(b, k->line, (int)n, "config %s: key %s: %s",
				               it->name, k->name, strerror((int)-n));
				goto out;
			}
			p->had = true;
			p->len = (size_t)n;
			if (p->len == len && memcmp(p->value, k->value, len) == 0) {
				free(p->value);
				p->value = NULL;
				continue; /* unchanged: nothing to write or undo */
			}
		}
		s->nkeys++;
		ssize_t n = mnodecfg_write(nc, it->name, k->name, 0, k->value, len, MKV_REPLACE);
		if (n < 0) {
			r = mboot_fail(b, k->line, (int)n, "config %s: key %s: %s", it->name,
			               k->name, strerror((int)-n));
			goto out;
		}
		rl->keys++;
	}
	r = 0;
out:
	free(keys.v);
	return r;
}

static void app_undo(struct reload *rl, struct step *s)
{
	struct mnodecfg *nc = mrt_nodecfg(rl->b.rt);
	const char *app = s->it->name;
	for (size_t i = s->nkeys; i-- > 0;) {
		struct app_prev *p = &s->keys[i];
		ssize_t r =
		        p->had ? mnodecfg_write(nc, app, p->key, 0, p->value, p->len, MKV_REPLACE)
		               : mnodecfg_delete(nc, app, p->key);
		if (r < 0 && r != -ENOENT)
			mu_log(MU_LOG_WARNING,
			       "reload: config %s: key %s could not be put back: %s", app, p->key,
			       strerror((int)-r));
	}
	if (s->created) {
		int r = mnodecfg_app_destroy(nc, app);
		if (r < 0)
			mu_log(MU_LOG_WARNING, "reload: config %s could not be removed: %s", app,
			       strerror(-r));
	}
}

/* ---- services ---- */

/* The line a refusal of the service's change is reported at. */
static int refusal_line(struct boot *b, const struct boot_item *it,
                        const struct mallafs_reason *why)
{
	int line = mboot_reason_line(b, it, why);
	if (!line)
		line = it->plugins_line ? it->plugins_line
		       : it->declared   ? it->decl_line
		                        : it->line;
	return line;
}

static int service_create(struct reload *rl, struct step *s)
{
	struct boot *b = &rl->b;
	int r = mboot_create_service(b, s->it);
	/* A service the failed creation left behind goes too. */
	s->created = true;
	s->svc = mrt_service_get(b->rt, s->it->name);
	if (r == 0 && s->svc && s->it->owned && rl->fs)
		mfs_service_set_owner(rl->fs, s->svc, s->it->uid, s->it->gid);
	if (r == 0)
		rl->created++;
	return r;
}

static int service_apply(struct reload *rl, struct step *s)
{
	struct boot *b = &rl->b;
	struct boot_item *it = s->it;
	struct mallafs_reason why = {{0}};
	bool changed = false;
	int r;

	if (it->owned) {
		mallafs_svc_owner(s->svc, &s->old_uid, &s->old_gid);
		if (s->old_uid != it->uid || s->old_gid != it->gid) {
			s->owner_changed = true;
			changed = true;
			if (rl->fs)
				mfs_service_set_owner(rl->fs, s->svc, it->uid, it->gid);
			else
				msvc_set_owner(s->svc, it->uid, it->gid);
		}
	}

	/* The chain as it was, to declare again on undo; core tells whether
	 * the file's list changes it. */
	bool chain = it->plugins_line != 0;
	if (chain) {
		r = msvc_declared(s->svc, &s->old_declared, &s->nold);
		if (r < 0)
			return mboot_fail(b, it->plugins_line, r, "service %s: %s", it->name,
			                  strerror(-r));
	}
	if (chain || it->cfg) {
		s->undo = msvc_undo_new();
		if (!s->undo)
			return mboot_fail(b, it->line, -ENOMEM, "out of memory");
		r = msvc_redeclare_undo(s->svc, chain ? (const char *const *)it->plugins : NULL,
		                        it->nplugins, it->cfg, s->undo, &s->chain_changed, &why);
		if (r < 0)
			return mboot_fail(b, refusal_line(b, it, &why), r, "service %s: %s",
			                  it->name, why.text[0] ? why.text : strerror(-r));
		changed = changed || s->chain_changed || !msvc_undo_empty(s->undo);
	}

	if (it->admin) {
		enum msvc_admin ad = MSVC_ADMIN_ACTIVE;
		struct msvc_status st;
		msvc_admin_parse(it->admin, strlen(it->admin), &ad);
		msvc_status(s->svc, &st);
		if (st.admin != ad) {
			s->old_admin = st.admin;
			s->admin_changed = true;
			changed = true;
			r = msvc_set_admin(s->svc, ad);
			if (r < 0) {
				msvc_status(s->svc, &st);
				const char *sp = strchr(st.last_error, ' '); /* after its time */
				return mboot_fail(b, it->decl_line, r, "service %s: admin %s: %s",
				                  it->name, it->admin, sp ? sp + 1 : strerror(-r));
			}
		}
	}
	if (changed)
		rl->changed++;
	return 0;
}

static void service_undo(struct reload *rl, struct step *s)
{
	const char *name = s->it->name;
	int r;
	if (s->created) {
		r = mrt_service_destroy(rl->b.rt, name);
		if (r < 0 && r != -ENOENT)
			mu_log(MU_LOG_WARNING, "reload: service %s could not be removed: %s", name,
			       strerror(-r));
		return;
	}
	if (s->admin_changed && msvc_set_admin(s->svc, s->old_admin) < 0)
		mu_log(MU_LOG_WARNING, "reload: service %s: admin %s could not be put back", name,
		       msvc_admin_name(s->old_admin));
	if (s->undo && msvc_undo_apply(s->svc, s->undo) < 0)
		mu_log(MU_LOG_WARNING, "reload: service %s: configuration could not be put back",
		       name);
	if (s->chain_changed) {
		struct mallafs_reason why = {{0}};
		r = msvc_redeclare_undo(s->svc, (const char *const *)s->old_declared, s->nold, NULL,
		                        NULL, NULL, &why);
		if (r < 0)
			mu_log(MU_LOG_WARNING,
			       "reload: service %s: chain could not be put back: %s", name,
			       why.text[0] ? why.text : strerror(-r));
	}
	if (s->owner_changed) {
		if (rl->fs)
			mfs_service_set_owner(rl->fs, s->svc, s->old_uid, s->old_gid);
		else
			msvc_set_owner(s->svc, s->old_uid, s->old_gid);
	}
}

/* ---- the whole file ---- */

static int apply(struct reload *rl)
{
	struct boot *b = &rl->b;
	rl->steps = calloc(b->nitems ? b->nitems : 1, sizeof(*rl->steps));
	if (!rl->steps)
		return mboot_fail(b, 0, -ENOMEM, "out of memory");
	for (size_t i = 0; i < b->nitems; i++) {
		struct step *s = &rl->steps[rl->nsteps++];
		int r;
		s->it = &b->items[i];
		if (s->it->kind == ITEM_APP) {
			r = app_apply(rl, s);
		} else {
			s->svc = mrt_service_get(b->rt, s->it->name);
			r = s->svc ? service_apply(rl, s) : service_create(rl, s);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static void undo_all(struct reload *rl)
{
	for (size_t i = rl->nsteps; i-- > 0;) {
		struct step *s = &rl->steps[i];
		if (s->it->kind == ITEM_APP)
			app_undo(rl, s);
		else
			service_undo(rl, s);
	}
}

int mboot_reload(struct mrt *rt, struct mfs *fs, const char *path, char *msg, size_t msglen)
{
	struct reload rl = {.b = {.rt = rt, .path = path, .err = msg, .errlen = msglen}, .fs = fs};
	int r = mboot_parse(&rl.b);
	if (r == 0)
		r = apply(&rl);
	if (r < 0) {
		undo_all(&rl);
	} else if (!rl.created && !rl.changed && !rl.keys) {
		snprintf(msg, msglen, "%s: nothing to change", path);
	} else {
		snprintf(msg, msglen,
		         "%s: %u service%s created, %u changed, %u node-wide key%s written", path,
		         rl.created, rl.created == 1 ? "" : "s", rl.changed, rl.keys,
		         rl.keys == 1 ? "" : "s");
	}
	for (size_t i = 0; i < rl.nsteps; i++)
		step_fini(&rl.steps[i]);
	free(rl.steps);
	mboot_fini(&rl.b);
	return r;
}

/* ---- the thread ---- */

struct mreload {
	struct mrt *rt;
	struct mfs *fs;
	char *path;
	struct mreload_hooks hooks;
	pthread_t thread;
	int sigfd;   /* signalfd of SIGHUP */
	int stop[2]; /* a pipe: mreload_stop closes its write end */
};

/* Whether SIGHUP was ignored at start (nohup): then it stays so. */
static bool hup_ignored;

void mreload_block_sighup(void)
{
	struct sigaction old;
	sigset_t set;
	if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler == SIG_IGN) {
		hup_ignored = true;
		return;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

static void *reload_main(void *arg)
{
	struct mreload *rl = arg;
	char msg[1024];
	for (;;) {
		struct pollfd pfd[2] = {{.fd = rl->sigfd, .events = POLLIN},
		                        {.fd = rl->stop[0], .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break; /* mreload_stop */
		/* Several signals at once are one reload: a blocked signal is
		 * pending once however often it was sent. */
		struct signalfd_siginfo si;
		if (read(rl->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (!rl->path) {
			mu_log(MU_LOG_WARNING,
			       "SIGHUP: nothing to reload: the daemon was started without a "
			       "bootstrap file (--config)");
			continue;
		}
		if (rl->hooks.reloading)
			rl->hooks.reloading(rl->hooks.arg);
		mu_log(MU_LOG_INFO, "SIGHUP: reloading %s", rl->path);
		int r = mboot_reload(rl->rt, rl->fs, rl->path, msg, sizeof(msg));
		if (r < 0)
			mu_log(MU_LOG_ERR, "reload refused, nothing changed: %s", msg);
		else
			mu_log(MU_LOG_INFO, "reloaded %s", msg);
		if (rl->hooks.done)
			rl->hooks.done(r, msg, rl->hooks.arg);
	}
	return NULL;
}

struct mreload *mreload_start(struct mrt *rt, struct mfs *fs, const char *path,
                              const struct mreload_hooks *hooks)
{
	struct mreload *rl = calloc(1, sizeof(*rl));
	sigset_t set;
	int e;
	if (!rl)
		return NULL;
	rl->sigfd = rl->stop[0] = rl->stop[1] = -1;
	rl->rt = rt;
	rl->fs = fs;
	if (hooks)
		rl->hooks = *hooks;
	if (hup_ignored) {
		mu_log(MU_LOG_INFO, "SIGHUP is ignored (nohup?): no reload by signal");
		return rl;
	}
	if (path && !(rl->path = strdup(path)))
		goto fail;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	rl->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (rl->sigfd < 0 || pipe2(rl->stop, O_CLOEXEC) < 0)
		goto fail;
	e = pthread_create(&rl->thread, NULL, reload_main, rl);
	if (e) {
		errno = e;
		goto fail;
	}
	return rl;
fail:
	e = errno;
	if (rl->sigfd >= 0)
		close(rl->sigfd);
	if (rl->stop[0] >= 0) {
		close(rl->stop[0]);
		close(rl->stop[1]);
	}
	free(rl->path);
	free(rl);
	errno = e;
	return NULL;
}

void mreload_stop(struct mreload *rl)
{
	if (!rl)
		return;
	if (rl->sigfd >= 0) {
		/* The thread sees the read end hang up. */
		close(rl->stop[1]);
		pthread_join(rl->thread, NULL);
		close(rl->stop[0]);
		close(rl->sigfd);
	}
	free(rl->path);
	free(rl);
}
