/* SPDX-License-Identifier: MIT */
/* The worker thread and what it does: it publishes this node's services
 * (PREFIX/services/NODE/SERVICE: {"uid","gid","mode"}, a newline, the
 * status text, on the node's lease) whenever core's events say a service's
 * status may have changed, and deletes the etcd entries of this node's
 * processes that exited (creg.c). Jobs come through a queue (cl->jobs,
 * under cl->wake_lock); a service already queued is not queued again.
 * The watcher's side of nodes/ and services/ feeds the cluster view. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clview.h"
#include "engine_i.h"
#include "events.h"
#include "mallafs-plugin.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

/* At most this many jobs wait; past it a service's publication waits for
 * the next change, an owner's or mode's waits for the next chmod or chown
 * of its path (logged); exits are always queued: they free etcd entries.
 * A service or a path already queued is not queued again. */
#define JOBS_MAX 65536

void mcl_queue(struct mcl *cl, char kind, pid_t pid, uint64_t starttime, const char *name)
{
	size_t nlen = name ? strlen(name) : 0;
	pthread_mutex_lock(&cl->wake_lock);
	if (kind == 's' || kind == 'p') {
		for (struct mcl_job *j = cl->jobs; j; j = j->next)
			if (j->kind == kind && strcmp(j->name, name) == 0)
				goto out;
		if (cl->njobs >= JOBS_MAX) {
			if (kind == 'p')
				mu_log(MU_LOG_WARNING,
				       "cluster: %s: owner and mode not published (%d jobs wait)",
				       name, JOBS_MAX);
			goto out;
		}
	}
	struct mcl_job *j = malloc(sizeof(*j) + nlen + 1);
	if (!j)
		goto out;
	j->next = NULL;
	j->kind = kind;
	j->pid = pid;
	j->starttime = starttime;
	memcpy(j->name, name ? name : "", nlen + 1);
	*cl->jobs_tail = j;
	cl->jobs_tail = &j->next;
	cl->njobs++;
	pthread_cond_broadcast(&cl->wake);
out:
	pthread_mutex_unlock(&cl->wake_lock);
}

static struct mcl_job *next_job(struct mcl *cl)
{
	pthread_mutex_lock(&cl->wake_lock);
	while (!cl->jobs && !atomic_load(&cl->stopping))
		pthread_cond_wait(&cl->wake, &cl->wake_lock);
	struct mcl_job *j = cl->jobs;
	if (j && !atomic_load(&cl->stopping)) {
		cl->jobs = j->next;
		if (!cl->jobs)
			cl->jobs_tail = &cl->jobs;
		cl->njobs--;
	} else {
		j = NULL;
	}
	pthread_mutex_unlock(&cl->wake_lock);
	return j;
}

static int publish(struct mcl *cl, const char *name)
{
	char key[MCL_KEY_MAX];
	size_t klen = mcl_key(cl, key, sizeof(key), "services", cl->node, name);
	struct mallafs_svc *svc = mrt_service_get(cl->rt, name);
	int r;
	if (!klen) {
		msvc_unref(svc);
		return -ENAMETOOLONG;
	}
	if (!svc)
		return metcd_delete(cl->etcd, key, klen, NULL, 0, NULL, NULL);
	char *text = NULL;
	size_t len = 0;
	uid_t uid;
	gid_t gid;
	mallafs_svc_owner(svc, &uid, &gid);
	r = msvc_status_render(svc, &text, &len);
	msvc_unref(svc);
	if (r < 0)
		return r;
	char head[128];
	/* The status file's mode on this node: the service's, read-only. */
	int hlen =
	        snprintf(head, sizeof(head), "{\"uid\":%u,\"gid\":%u,\"mode\":%u}\n", (unsigned)uid,
	                 (unsigned)gid, (unsigned)(mcl_svc_mode(cl, name) & 0444));
	char *v = malloc((size_t)hlen + len);
	if (!v) {
		free(text);
		return -ENOMEM;
	}
	memcpy(v, head, (size_t)hlen);
	memcpy(v + hlen, text, len);
	r = metcd_put(cl->etcd, key, klen, v, (size_t)hlen + len, atomic_load(&cl->lease), NULL);
	free(v);
	free(text);
	return r;
}

static int list_cb(const char *name, uint64_t cookie, void *arg)
{
	mcl_queue(arg, 's', 0, 0, name);
	return 0;
}

int mcl_svc_publish_all(struct mcl *cl)
{
	return mrt_service_list(cl->rt, 0, list_cb, cl);
}

static void *worker_main(void *arg)
{
	struct mcl *cl = arg;
	struct mcl_job *j;
	mcl_svc_publish_all(cl);
	while ((j = next_job(cl))) {
		if (j->kind == 'x') {
			mcl_reg_exited(cl, j->pid, j->starttime);
		} else if (j->kind == 'p') {
			mcl_perm_sync(cl, j->name);
		} else {
			int r = publish(cl, j->name);
			if (r < 0)
				mu_log(MU_LOG_WARNING, "cluster: services/%s not published: %s: %s",
				       j->name, strerror(-r), metcd_error());
		}
		free(j);
	}
	return NULL;
}

int mcl_worker_start(struct mcl *cl)
{
	int r = mu_thread_start(&cl->worker, "mallafs-clwork", worker_main, cl);
	if (r == 0)
		cl->worker_started = true;
	return r;
}

/* A service's status may have changed: its path is services/NAME[/...]. */
static void listener(const struct mev *ev, void *arg)
{
	struct mcl *cl = arg;
	static const char pre[] = "services/";
	switch (ev->op) {
	case MEV_STATUS:
	case MEV_RECONFIGURE:
	case MEV_RESTART:
	case MEV_PLUGIN_ADD:
	case MEV_PLUGIN_DEL:
	case MEV_MKDIR:
	case MEV_RMDIR:
		break;
	default:
		return;
	}
	if (strncmp(ev->path, pre, sizeof(pre) - 1) != 0)
		return;
	const char *name = ev->path + sizeof(pre) - 1;
	size_t len = strcspn(name, "/");
	char svc[MU_NAME_MAX + 1];
	if (len == 0 || len > MU_NAME_MAX)
		return;
	/* mkdir and rmdir of the service itself, not of a folder inside. */
	if ((ev->op == MEV_MKDIR || ev->op == MEV_RMDIR) && name[len] != '\0')
		return;
	memcpy(svc, name, len);
	svc[len] = '\0';
	mcl_queue(cl, 's', 0, 0, svc);
}

void mcl_svc_listen(struct mcl *cl)
{
	cl->listening = mev_ring_add_listener(cl->ring, listener, cl) == 0;
}

void mcl_svc_unlisten(struct mcl *cl)
{
	if (cl->listening)
		mev_ring_remove_listener(cl->ring, listener, cl);
	cl->listening = false;
}

/* ---- the watcher's side: the view ---- */

static bool node_ok(const char *s, size_t len)
{
	return len > 0 && len <= MCL_NODE_MAX && memchr(s, '/', len) == NULL;
}

void mcl_node_apply(struct mcl *cl, const char *sub, size_t sub_len, bool gone, const char *origin)
{
	char node[MCL_NODE_MAX + 1];
	if (!cl->view || !node_ok(sub, sub_len))
		return;
	memcpy(node, sub, sub_len);
	node[sub_len] = '\0';
	mev_set_origin(strcmp(node, cl->node) != 0 ? node : NULL);
	if (gone)
		mclview_node_remove(cl->view, node);
	else
		mclview_node_put(cl->view, node);
	mev_set_origin(NULL);
}

void mcl_svc_apply(struct mcl *cl, const char *sub, size_t sub_len, const struct metcd_kv *kv,
                   bool gone, const char *origin)
{
	char node[MCL_NODE_MAX + 1], svc[MU_NAME_MAX + 1];
	const char *slash = memchr(sub, '/', sub_len);
	if (!cl->view || !slash || !node_ok(sub, (size_t)(slash - sub)))
		return;
	size_t slen = sub_len - (size_t)(slash - sub) - 1;
	if (slen == 0 || slen > MU_NAME_MAX)
		return;
	memcpy(node, sub, (size_t)(slash - sub));
	node[slash - sub] = '\0';
	memcpy(svc, slash + 1, slen);
	svc[slen] = '\0';
	if (mu_name_check_str(svc, MU_NAME_STRICT) < 0)
		return;
	mev_set_origin(strcmp(node, cl->node) != 0 ? node : NULL);
	if (gone) {
		mclview_service_remove(cl->view, node, svc);
	} else {
		const char *nl = kv->value ? memchr(kv->value, '\n', kv->value_len) : NULL;
		if (nl) {
			char head[256];
			size_t hlen = (size_t)(nl - kv->value);
			unsigned uid = 0, gid = 0, mode = 0444;
			if (hlen < sizeof(head)) {
				memcpy(head, kv->value, hlen);
				head[hlen] = '\0';
				json_object *o = json_tokener_parse(head), *f;
				if (o && json_object_object_get_ex(o, "uid", &f))
					uid = (unsigned)json_object_get_int64(f);
				if (o && json_object_object_get_ex(o, "gid", &f))
					gid = (unsigned)json_object_get_int64(f);
				if (o && json_object_object_get_ex(o, "mode", &f))
					mode = (unsigned)json_object_get_int64(f) & 0444;
				json_object_put(o);
			}
			mclview_service_put(cl->view, node, svc, nl + 1, kv->value_len - hlen - 1,
			                    (uid_t)uid, (gid_t)gid, (mode_t)mode);
		}
	}
	mev_set_origin(NULL);
}
