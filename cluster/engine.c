/* SPDX-License-Identifier: MIT */
/* The engine's life: the options, the connection, this node's lease and
 * key (taken over from a dead predecessor of this host at once), the
 * keeper thread that keeps the lease alive and cluster/status current,
 * and the stop. cluster.h describes the whole. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clview.h"
#include "engine_i.h"
#include "kv.h"
#include "nodecfg.h"
#include "proc.h"
#include "registry.h"
#include "runtime.h"
#include "util.h"

/* ---- options ---- */

int mcl_config_add_endpoint(struct mcl_config *cfg, const char *url)
{
	char *s;
	if (asprintf(&s, "%s%s%s", cfg->endpoints ? cfg->endpoints : "", cfg->endpoints ? "," : "",
	             url) < 0)
		return -ENOMEM;
	free(cfg->endpoints);
	cfg->endpoints = s;
	return 0;
}

void mcl_config_free(struct mcl_config *cfg)
{
	char **f[] = {&cfg->endpoints, &cfg->node, &cfg->prefix, &cfg->ttl,  &cfg->timeout,
	              &cfg->cacert,    &cfg->cert, &cfg->key,    &cfg->user, &cfg->password_file};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
}

static bool node_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MCL_NODE_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

/* A prefix: absolute, no "//", no trailing '/', printable. */
static bool prefix_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 2 || n > 512 || s[0] != '/' || s[n - 1] == '/' || strstr(s, "//"))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

static int parse_num(const char *s, long lo, long hi, long *ret)
{
	uint64_t v;
	if (mu_parse_u64(s, &v) < 0 || v < (uint64_t)lo || v > (uint64_t)hi)
		return -EINVAL;
	*ret = (long)v;
	return 0;
}

/* The password: the file's first line, from a file nobody else may read. */
static int read_password(const char *path, char **ret, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, whylen, "cluster_password_file=%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_size > 4096) {
		snprintf(why, whylen,
		         "cluster_password_file=%s: must be a regular file of at most 4096 bytes "
		         "that only its owner may read (mode %04o)",
		         path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	char buf[4097];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(why, whylen, "cluster_password_file=%s: %s", path, strerror(errno));
		return -errno;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*ret = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *ret ? 0 : -ENOMEM;
}

static int read_line_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	bool ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -EIO;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* ---- keys and small helpers ---- */

size_t mcl_key(const struct mcl *cl, char *buf, size_t len, const char *part, const char *a,
               const char *b)
{
	int n = snprintf(buf, len, "%s/%s%s%s%s%s", cl->prefix, part, a ? "/" : "", a ? a : "",
	                 b ? "/" : "", b ? b : "");
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

void mcl_deadline(struct timespec *until, long ms)
{
	clock_gettime(CLOCK_REALTIME, until);
	until->tv_sec += ms / 1000;
	until->tv_nsec += (ms % 1000) * 1000000L;
	if (until->tv_nsec >= 1000000000L) {
		until->tv_sec++;
		until->tv_nsec -= 1000000000L;
	}
}

bool mcl_sleep(struct mcl *cl, long ms)
{
	struct timespec until;
	mcl_deadline(&until, ms);
	pthread_mutex_lock(&cl->wake_lock);
	while (!atomic_load(&cl->stopping))
		if (pthread_cond_timedwait(&cl->wake, &cl->wake_lock, &until) != 0)
			break;
	pthread_mutex_unlock(&cl->wake_lock);
	return atomic_load(&cl->stopping);
}

void mcl_note_error(struct mcl *cl, const char *what, int r)
{
	const char *e = metcd_error();
	mu_log(MU_LOG_WARNING, "cluster: %s: %s%s%s", what, strerror(-r), e[0] ? ": " : "", e);
	pthread_mutex_lock(&cl->lock);
	snprintf(cl->last_error, sizeof(cl->last_error), "%s: %s%s%s", what, strerror(-r),
	         e[0] ? ": " : "", e);
	pthread_mutex_unlock(&cl->lock);
}

void mcl_status_locked(struct mcl *cl)
{
	if (!cl->view)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char text[1024];
	long long age = -1;
	if (cl->last_event.tv_sec)
		age = (long long)(now.tv_sec - cl->last_event.tv_sec) * 1000 +
		      (now.tv_nsec - cl->last_event.tv_nsec) / 1000000;
	int n = snprintf(text, sizeof(text),
	                 "%s\nnode %s\nendpoint %s\nrevision %" PRId64
	                 "\nlast_event_age_ms %lld\nresyncs %" PRIu64 "\n%s%s%s",
	                 cl->connected ? "connected" : "disconnected", cl->node, cl->endpoint,
	                 cl->rev, age, cl->resyncs, cl->last_error[0] ? "last_error " : "",
	                 cl->last_error, cl->last_error[0] ? "\n" : "");
	if (n > 0)
		mclview_set_status(cl->view, text,
		                   (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

void mcl_set_connected(struct mcl *cl, bool up, const char *error)
{
	pthread_mutex_lock(&cl->lock);
	bool changed = cl->connected != up;
	cl->connected = up;
	metcd_endpoint(cl->etcd, cl->endpoint, sizeof(cl->endpoint));
	if (up)
		cl->last_error[0] = '\0';
	else if (error)
		snprintf(cl->last_error, sizeof(cl->last_error), "%s", error);
	if (changed) {
		mu_log(up ? MU_LOG_INFO : MU_LOG_WARNING, "cluster: %s %s%s%s",
		       up ? "connected to" : "disconnected from", cl->endpoint,
		       !up && error ? ": " : "", !up && error ? error : "");
		mcl_status_locked(cl);
	}
	pthread_mutex_unlock(&cl->lock);
}

/* ---- the node key ---- */

static char *node_value(struct mcl *cl, int64_t lease)
{
	json_object *o = json_object_new_object();
	char num[32];
	if (!o)
		return NULL;
	json_object_object_add(o, "boot_id", json_object_new_string(cl->boot_id));
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	snprintf(num, sizeof(num), "%" PRIu64, cl->start_ticks);
	json_object_object_add(o, "start", json_object_new_string(num));
	snprintf(num, sizeof(num), "%" PRId64, lease);
	json_object_object_add(o, "lease", json_object_new_string(num));
	json_object_object_add(o, "since", json_object_new_int64((int64_t)time(NULL)));
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* Whether the daemon the node key names is provably dead: it ran on this
 * host (same boot id) and its PID is gone or is another process now. */
static bool holder_dead(struct mcl *cl, const char *value, int64_t *ret_lease)
{
	json_object *o = json_tokener_parse(value);
	json_object *boot, *pid, *start, *lease;
	bool dead = false;
	*ret_lease = 0;
	if (!o)
		return false;
	if (json_object_object_get_ex(o, "boot_id", &boot) &&
	    json_object_object_get_ex(o, "pid", &pid) &&
	    json_object_object_get_ex(o, "start", &start) &&
	    json_object_object_get_ex(o, "lease", &lease) &&
	    strcmp(json_object_get_string(boot), cl->boot_id) == 0) {
		pid_t p = (pid_t)json_object_get_int64(pid);
		uint64_t want = strtoull(json_object_get_string(start), NULL, 10), have;
		*ret_lease = strtoll(json_object_get_string(lease), NULL, 10);
		dead = p <= 0 || p == getpid() || mproc_starttime(p, &have) < 0 || have != want;
	}
	json_object_put(o);
	return dead;
}

/* Claims PREFIX/nodes/NODE for this daemon's lease. */
static int claim_node(struct mcl *cl, int64_t lease, char *why, size_t whylen)
{
	char key[MCL_KEY_MAX];
	size_t klen = mcl_key(cl, key, sizeof(key), "nodes", cl->node, NULL);
	char *val = node_value(cl, lease);
	int r = -ENOMEM;
	if (!val)
		return r;
	for (int tries = 0; tries < 3; tries++) {
		struct metcd_cmp cmp = {.key = key,
		                        .key_len = klen,
		                        .target = METCD_CREATE,
		                        .result = METCD_EQUAL,
		                        .number = 0};
		struct metcd_op put = {.kind = METCD_PUT,
		                       .key = key,
		                       .key_len = klen,
		                       .value = val,
		                       .value_len = strlen(val),
		                       .lease = lease};
		struct metcd_op get = {.kind = METCD_GET, .key = key, .key_len = klen};
		struct metcd_txn_result tr;
		r = metcd_txn(cl->etcd, &cmp, 1, &put, 1, &get, 1, &tr);
		if (r < 0) {
			snprintf(why, whylen, "cluster: cannot claim node %s: %s: %s", cl->node,
			         strerror(-r), metcd_error());
			break;
		}
		if (tr.succeeded) {
			metcd_txn_result_free(&tr);
			break;
		}
		/* Held: by a dead predecessor of this host, or a live daemon. */
		int64_t old = 0;
		bool dead =
		        tr.n_gets && tr.gets[0].n && holder_dead(cl, tr.gets[0].kvs[0].value, &old);
		if (tr.n_gets && tr.gets[0].n && tr.gets[0].kvs[0].lease == lease)
			dead = true, old = 0; /* ours already (a retry) */
		if (!dead) {
			snprintf(why, whylen,
			         "cluster: node name %s is held by a live daemon (%s%.*s); give "
			         "this one "
			         "another name with -o node=NAME, or wait up to cluster_ttl for a "
			         "dead "
			         "one's to expire",
			         cl->node, "etcd has ",
			         tr.n_gets && tr.gets[0].n ? (int)tr.gets[0].kvs[0].value_len : 0,
			         tr.n_gets && tr.gets[0].n ? tr.gets[0].kvs[0].value : "");
			metcd_txn_result_free(&tr);
			r = -EEXIST;
			break;
		}
		metcd_txn_result_free(&tr);
		if (old) {
			mu_log(MU_LOG_WARNING,
			       "cluster: node %s: taking the name over from a dead daemon of this "
			       "host (its lease %" PRId64 " revoked: its entries go now)",
			       cl->node, old);
			r = metcd_lease_revoke(cl->etcd, old);
			if (r < 0 && r != -ENOENT) {
				snprintf(why, whylen,
				         "cluster: cannot revoke lease %" PRId64 ": %s: %s", old,
				         strerror(-r), metcd_error());
				break;
			}
		} else {
			r = metcd_put(cl->etcd, key, klen, val, strlen(val), lease, NULL);
			if (r < 0)
				snprintf(why, whylen, "cluster: cannot claim node %s: %s: %s",
				         cl->node, strerror(-r), metcd_error());
			break;
		}
		r = -EAGAIN;
	}
	if (r == -EAGAIN)
		snprintf(why, whylen, "cluster: node %s: the name keeps changing hands", cl->node);
	free(val);
	return r;
}

/* A new lease after the old one expired (etcd lost sight of this node for
 * longer than cluster_ttl): the node key, the registry entries and the
 * services are written again. */
static int renew(struct mcl *cl)
{
	int64_t lease;
	char why[512];
	int r = metcd_lease_grant(cl->etcd, cl->ttl_s, &lease);
	if (r < 0)
		return r;
	atomic_store(&cl->lease, lease);
	r = claim_node(cl, lease, why, sizeof(why));
	if (r < 0) {
		mu_log(MU_LOG_ERR, "%s", why);
		return r;
	}
	mu_log(MU_LOG_WARNING,
	       "cluster: node %s: the lease had expired (etcd did not hear from this node for "
	       "%ld s): its entries are written again with lease %" PRId64,
	       cl->node, cl->ttl_s, lease);
	r = mcl_reg_republish(cl);
	if (r == 0)
		r = mcl_svc_publish_all(cl);
	return r;
}

static void *keeper_main(void *arg)
{
	struct mcl *cl = arg;
	long every = cl->ttl_s * 1000 / 3;
	long wait = every;
	while (!mcl_sleep(cl, wait)) {
		int64_t ttl;
		int r = metcd_lease_keepalive(cl->etcd, atomic_load(&cl->lease), &ttl);
		if (r == -ENOENT)
			r = renew(cl);
		if (r < 0) {
			char e[300];
			snprintf(e, sizeof(e), "lease keepalive: %s: %s", strerror(-r),
			         metcd_error());
			mcl_set_connected(cl, false, e);
			/* The watch may hang on a dead connection: it starts again. */
			mcl_watch_restart(cl);
			wait = 500;
			continue;
		}
		wait = every;
		pthread_mutex_lock(&cl->lock);
		mcl_status_locked(cl);
		pthread_mutex_unlock(&cl->lock);
	}
	return NULL;
}

/* ---- start and stop ---- */

static int make_client(struct mcl *cl, const struct mcl_config *cfg, char *why, size_t whylen)
{
	char *list = strdup(cfg->endpoints), *save = NULL, *password = NULL;
	const char *eps[16];
	size_t n = 0;
	int r = -ENOMEM;
	if (!list)
		return r;
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == sizeof(eps) / sizeof(eps[0])) {
			snprintf(why, whylen, "cluster=: at most 16 endpoints");
			r = -EINVAL;
			goto out;
		}
		eps[n++] = t;
	}
	if (n == 0) {
		snprintf(why, whylen, "cluster=: no endpoint given");
		r = -EINVAL;
		goto out;
	}
	if (cfg->password_file &&
	    (r = read_password(cfg->password_file, &password, why, whylen)) < 0)
		goto out;
	if (cfg->user && !password) {
		snprintf(why, whylen, "cluster_user= needs cluster_password_file=");
		r = -EINVAL;
		goto out;
	}
	struct metcd_opts o = {.endpoints = eps,
	                       .n_endpoints = n,
	                       .timeout_ms = cl->timeout_ms,
	                       .cacert = cfg->cacert,
	                       .cert = cfg->cert,
	                       .key = cfg->key,
	                       .user = cfg->user,
	                       .password = password};
	r = metcd_new(&o, &cl->etcd, why, whylen);
out:
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	free(list);
	return r;
}

static int parse_config(struct mcl *cl, const struct mcl_config *cfg, char *why, size_t whylen)
{
	char host[256] = "";
	const char *node = cfg->node;
	if (!node) {
		if (gethostname(host, sizeof(host) - 1) < 0)
			host[0] = '\0';
		node = host;
	}
	if (!node_name_ok(node)) {
		snprintf(why, whylen, "node=%s: a node name is 1 to %d of [A-Za-z0-9._-]%s", node,
		         MCL_NODE_MAX,
		         cfg->node ? "" : " (the host name does not do: give -o node=NAME)");
		return -EINVAL;
	}
	snprintf(cl->node, sizeof(cl->node), "%s", node);
	const char *prefix = cfg->prefix ? cfg->prefix : MCL_DEFAULT_PREFIX;
	if (!prefix_ok(prefix)) {
		snprintf(why, whylen,
		         "cluster_prefix=%s: an absolute path of printable characters, without "
		         "\"//\" or a trailing '/'",
		         prefix);
		return -EINVAL;
	}
	cl->prefix = strdup(prefix);
	if (!cl->prefix)
		return -ENOMEM;
	cl->prefix_len = strlen(prefix);
	cl->ttl_s = MCL_DEFAULT_TTL;
	cl->timeout_ms = MCL_DEFAULT_TIMEOUT_MS;
	if (cfg->ttl && parse_num(cfg->ttl, 2, 3600, &cl->ttl_s) < 0) {
		snprintf(why, whylen, "cluster_ttl=%s: seconds from 2 to 3600", cfg->ttl);
		return -EINVAL;
	}
	if (cfg->timeout && parse_num(cfg->timeout, 100, 600000, &cl->timeout_ms) < 0) {
		snprintf(why, whylen, "cluster_timeout=%s: milliseconds from 100 to 600000",
		         cfg->timeout);
		return -EINVAL;
	}
	if (read_line_file("/proc/sys/kernel/random/boot_id", cl->boot_id, sizeof(cl->boot_id)) <
	            0 ||
	    mproc_starttime(getpid(), &cl->start_ticks) < 0) {
		snprintf(why, whylen, "cluster: cannot read this host's boot id or our start time");
		return -EIO;
	}
	return 0;
}

static void mcl_free(struct mcl *cl)
{
	if (!cl)
		return;
	for (struct mcl_job *j = cl->jobs, *next; j; j = next) {
		next = j->next;
		free(j);
	}
	metcd_free(cl->etcd);
	mkv_free(cl->revs);
	mkv_free(cl->own);
	mkv_free(cl->pending);
	mkv_free(cl->perms);
	pthread_mutex_destroy(&cl->lock);
	pthread_mutex_destroy(&cl->wake_lock);
	pthread_cond_destroy(&cl->wake);
	free(cl->prefix);
	free(cl);
}

int mcl_start(struct mrt *rt, const struct mcl_config *cfg, struct mcl **ret, char *why,
              size_t whylen)
{
	struct mcl *cl = calloc(1, sizeof(*cl));
	int r;
	if (!cl)
		return -ENOMEM;
	pthread_mutex_init(&cl->lock, NULL);
	pthread_mutex_init(&cl->wake_lock, NULL);
	pthread_cond_init(&cl->wake, NULL);
	cl->jobs_tail = &cl->jobs;
	cl->rt = rt;
	cl->reg = mrt_registry(rt);
	cl->nc = mrt_nodecfg(rt);
	cl->ring = mrt_events(rt);
	cl->revs = mkv_new();
	cl->own = mkv_new();
	cl->pending = mkv_new();
	r = -ENOMEM;
	if (!cl->revs || !cl->own || !cl->pending)
		goto err;
	if ((r = parse_config(cl, cfg, why, whylen)) < 0 ||
	    (r = make_client(cl, cfg, why, whylen)) < 0)
		goto err;
	r = mrt_cluster_enable(rt);
	if (r < 0) {
		snprintf(why, whylen, "cluster: %s", strerror(-r));
		goto err;
	}
	cl->view = mrt_clview(rt);

	int64_t lease;
	r = metcd_lease_grant(cl->etcd, cl->ttl_s, &lease);
	if (r < 0) {
		snprintf(why, whylen, "cluster: cannot reach etcd at %s: %s: %s", cfg->endpoints,
		         strerror(-r), metcd_error());
		goto err;
	}
	atomic_store(&cl->lease, lease);
	if ((r = claim_node(cl, lease, why, whylen)) < 0)
		goto err_lease;
	if ((r = mcl_mirror_load(cl, why, whylen)) < 0)
		goto err_lease;
	mcl_cfg_attach(cl);
	mcl_reg_attach(cl);
	mcl_set_connected(cl, true, NULL);
	if ((r = mu_thread_start(&cl->keeper, "mallafs-clkeep", keeper_main, cl)) < 0) {
		snprintf(why, whylen, "cluster: cannot start a thread: %s", strerror(-r));
		goto err_attached;
	}
	cl->keeper_started = true;
	if ((r = mcl_watcher_start(cl)) < 0 || (r = mcl_worker_start(cl)) < 0) {
		snprintf(why, whylen, "cluster: cannot start a thread: %s", strerror(-r));
		goto err_attached;
	}
	mcl_svc_listen(cl);
	/* The watcher's thread writes the endpoint and the revision now. */
	pthread_mutex_lock(&cl->lock);
	mu_log(MU_LOG_INFO,
	       "cluster: node %s joined %s under %s (lease %" PRId64
	       ", ttl %ld s, revision %" PRId64 ")",
	       cl->node, cl->endpoint, cl->prefix, lease, cl->ttl_s, cl->rev);
	pthread_mutex_unlock(&cl->lock);
	*ret = cl;
	return 0;

err_attached:
	mcl_stop(cl);
	return r;
err_lease:
	metcd_lease_revoke(cl->etcd, lease);
err:
	mcl_free(cl);
	return r;
}

void mcl_stop(struct mcl *cl)
{
	if (!cl)
		return;
	mcl_svc_unlisten(cl);
	atomic_store(&cl->stopping, true);
	pthread_mutex_lock(&cl->wake_lock);
	pthread_cond_broadcast(&cl->wake);
	pthread_mutex_unlock(&cl->wake_lock);
	mcl_watch_restart(cl);
	if (cl->keeper_started)
		pthread_join(cl->keeper, NULL);
	if (cl->watcher_started)
		pthread_join(cl->watcher, NULL);
	if (cl->worker_started)
		pthread_join(cl->worker, NULL);
	mcl_reg_detach(cl);
	mcl_cfg_detach(cl);
	/* Every entry of this node goes everywhere at once. */
	int r = metcd_lease_revoke(cl->etcd, atomic_load(&cl->lease));
	if (r < 0 && r != -ENOENT)
		mu_log(MU_LOG_WARNING,
		       "cluster: cannot revoke lease %" PRId64
		       ": %s: this node's entries go when it expires, within %ld s",
		       atomic_load(&cl->lease), metcd_error(), cl->ttl_s);
	else
		mu_log(MU_LOG_INFO, "cluster: node %s left", cl->node);
	mcl_free(cl);
}
