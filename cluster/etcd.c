/* SPDX-License-Identifier: MIT */
/* The etcd client itself: options, endpoints, the pool of curl easy
 * handles, one unary call with failover and re-authentication, and the
 * mapping of etcd's errors to errnos. Requests and answers are built and
 * read in etcd_json.c, the watch stream in etcd_watch.c. Lock: see
 * etcd_i.h (metcd.lock is a leaf). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd_i.h"

static __thread char err_buf[512];

const char *metcd_error(void)
{
	return err_buf;
}

int metcd_fail(int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	return e;
}

int64_t metcd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int dup_opt(const char *s, char **ret)
{
	*ret = NULL;
	if (s == NULL)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* "http://HOST:PORT" or "https://HOST:PORT", no path, nothing odd. */
static bool good_endpoint(const char *e)
{
	const char *h;
	if (strncmp(e, "http://", 7) == 0)
		h = e + 7;
	else if (strncmp(e, "https://", 8) == 0)
		h = e + 8;
	else
		return false;
	if (*h == '\0' || strlen(h) > 255)
		return false;
	for (; *h; h++)
		if (*h <= ' ' || *h == '/' || *h == '?' || *h == '#' || *h == '@' || *h == 0x7f)
			return false;
	return true;
}

int metcd_new(const struct metcd_opts *o, struct metcd **ret, char *why, size_t whylen)
{
	*ret = NULL;
	if (o->n_endpoints == 0) {
		snprintf(why, whylen, "no etcd endpoint");
		return -EINVAL;
	}
	for (size_t i = 0; i < o->n_endpoints; i++)
		if (o->endpoints[i] == NULL || !good_endpoint(o->endpoints[i])) {
			snprintf(why, whylen,
			         "bad etcd endpoint \"%s\" (http://HOST:PORT or https://HOST:PORT)",
			         o->endpoints[i] ? o->endpoints[i] : "(null)");
			return -EINVAL;
		}
	if (o->timeout_ms <= 0) {
		snprintf(why, whylen, "etcd timeout must be positive");
		return -EINVAL;
	}
	if ((o->cert == NULL) != (o->key == NULL)) {
		snprintf(why, whylen, "etcd TLS client certificate and key go together");
		return -EINVAL;
	}
	if (o->user && o->password == NULL) {
		snprintf(why, whylen, "etcd user without a password");
		return -EINVAL;
	}
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(why, whylen, "curl_global_init: %s", curl_easy_strerror(global_rc));
		return -EIO;
	}
	struct metcd *c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto nomem;
	pthread_mutex_init(&c->lock, NULL);
	c->eps = calloc(o->n_endpoints, sizeof(*c->eps));
	if (c->eps == NULL)
		goto nomem;
	c->n_eps = o->n_endpoints;
	for (size_t i = 0; i < o->n_endpoints; i++)
		if (dup_opt(o->endpoints[i], &c->eps[i]) < 0)
			goto nomem;
	c->timeout_ms = o->timeout_ms;
	if (dup_opt(o->cacert, &c->cacert) < 0 || dup_opt(o->cert, &c->cert) < 0 ||
	    dup_opt(o->key, &c->key) < 0 || dup_opt(o->user, &c->user) < 0 ||
	    dup_opt(o->password, &c->password) < 0)
		goto nomem;
	*ret = c;
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
	metcd_free(c);
	return -ENOMEM;
}

void metcd_free(struct metcd *c)
{
	if (c == NULL)
		return;
	if (c->eps)
		for (size_t i = 0; i < c->n_eps; i++)
			free(c->eps[i]);
	for (size_t i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	free(c->eps);
	free(c->cacert);
	free(c->cert);
	free(c->key);
	free(c->user);
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
	free(c->token);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void metcd_endpoint(struct metcd *c, char *buf, size_t len)
{
	metcd_ep_get(c, buf, len);
}

size_t metcd_ep_get(struct metcd *c, char *buf, size_t len)
{
	pthread_mutex_lock(&c->lock);
	size_t i = c->cur;
	if (buf && len)
		snprintf(buf, len, "%s", c->eps[i]);
	pthread_mutex_unlock(&c->lock);
	return i;
}

void metcd_ep_next(struct metcd *c, size_t i)
{
	pthread_mutex_lock(&c->lock);
	if (c->cur == i)
		c->cur = (i + 1) % c->n_eps;
	pthread_mutex_unlock(&c->lock);
}

CURL *metcd_easy_get(struct metcd *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->n_pool > 0)
		h = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

void metcd_easy_put(struct metcd *c, CURL *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->n_pool < METCD_POOL) {
		c->pool[c->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_cleanup(h);
}

int metcd_easy_setup(struct metcd *c, CURL *h, const char *url, const char *body,
                     struct curl_slist **hdrs, long connect_ms, long total_ms)
{
	*hdrs = NULL;
	char *tok = NULL;
	struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
	if (l)
		l = curl_slist_append(l, "Expect:");
	if (l == NULL)
		return metcd_fail(-ENOMEM, "out of memory");
	*hdrs = l;
	pthread_mutex_lock(&c->lock);
	if (c->token)
		tok = strdup(c->token);
	pthread_mutex_unlock(&c->lock);
	if (tok) {
		size_t n = strlen(tok) + 32;
		char *hv = malloc(n);
		if (hv)
			snprintf(hv, n, "Authorization: %s", tok);
		struct curl_slist *l2 = hv ? curl_slist_append(l, hv) : NULL;
		free(hv);
		free(tok);
		if (l2 == NULL)
			return metcd_fail(-ENOMEM, "out of memory");
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	if (total_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (c->cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	if (c->cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
	}
	return 0;
}

/* etcd's messages (server/etcdserver/api/v3rpc/rpctypes/error.go), what
 * the gateway passes on as "message" with the gRPC code. */
int metcd_map_error(const char *msg, int code, enum metcd_retry *retry)
{
	static const struct {
		const char *text;
		int e;
		enum metcd_retry retry;
	} known[] = {
	        {"etcdserver: no leader", -ETIMEDOUT, METCD_NOLEADER},
	        {"etcdserver: leader changed", -ETIMEDOUT, METCD_UNSURE},
	        {"etcdserver: request timed out", -ETIMEDOUT, METCD_UNSURE},
	        {"etcdserver: server stopped", -ETIMEDOUT, METCD_UNSURE},
	        {"etcdserver: not capable", -ETIMEDOUT, METCD_NOLEADER},
	        {"etcdserver: request is too large", -EFBIG, METCD_FINAL},
	        {"etcdserver: too many operations in txn request", -EFBIG, METCD_FINAL},
	        {"etcdserver: mvcc: database space exceeded", -ENOSPC, METCD_FINAL},
	        {"etcdserver: mvcc: required revision has been compacted", -ESTALE, METCD_FINAL},
	        {"etcdserver: requested lease not found", -ENOENT, METCD_FINAL},
	        {"etcdserver: invalid auth token", -EACCES, METCD_BADTOKEN},
	        {"auth: invalid auth token", -EACCES, METCD_BADTOKEN},
	        {"etcdserver: permission denied", -EACCES, METCD_FINAL},
	        {"etcdserver: authentication failed, invalid user ID or password", -EACCES,
	         METCD_FINAL},
	        {"etcdserver: user name is empty", -EACCES, METCD_FINAL},
	        {"etcdserver: user name not found", -EACCES, METCD_FINAL},
	        {"etcdserver: authentication is not enabled", -EACCES, METCD_FINAL},
	};
	*retry = METCD_FINAL;
	/* A watch's cancel_reason wraps the message in gRPC's words. */
	const char *desc =
	        strncmp(msg, "rpc error: code = ", 18) == 0 ? strstr(msg, " desc = ") : NULL;
	if (desc)
		msg = desc + 8;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(msg, known[i].text) == 0) {
			*retry = known[i].retry;
			return metcd_fail(known[i].e, "%s", msg);
		}
	/* gRPC codes: 8 resource exhausted (a message over the server's
	 * limit, before etcd sees it), 7 permission denied, 16
	 * unauthenticated, 14 unavailable. */
	switch (code) {
	case 8:
		return metcd_fail(-EFBIG, "%s", msg);
	case 7:
	case 16:
		return metcd_fail(-EACCES, "%s", msg);
	case 14:
		*retry = METCD_UNSURE;
		return metcd_fail(-ETIMEDOUT, "%s", msg);
	default:
		return metcd_fail(-EIO, "etcd: %s (code %d)", msg, code);
	}
}

void metcd_token_drop(struct metcd *c, const char *tok)
{
	pthread_mutex_lock(&c->lock);
	if (c->token && tok && strcmp(c->token, tok) == 0) {
		free(c->token);
		c->token = NULL;
	}
	pthread_mutex_unlock(&c->lock);
}

struct answer {
	char *p;
	size_t n, cap;
	bool over;
};

static size_t answer_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;
	if (n > METCD_MAX_ANSWER - a->n) {
		a->over = true;
		return 0;
	}
	if (a->n + n + 1 > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		while (cap < a->n + n + 1)
			cap *= 2;
		char *p = realloc(a->p, cap);
		if (p == NULL)
			return 0;
		a->p = p;
		a->cap = cap;
	}
	memcpy(a->p + a->n, data, n);
	a->n += n;
	a->p[a->n] = '\0';
	return n;
}

int metcd_j_answer(const char *ep, const char *text, long status, enum metcd_retry *retry,
                   struct json_object **ret)
{
	enum json_tokener_error jerr;
	*retry = METCD_FINAL;
	struct json_object *o = text ? json_tokener_parse_verbose(text, &jerr) : NULL;
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return metcd_fail(-EPROTO, "%s: HTTP %ld, not a JSON object: %.100s", ep, status,
		                  text ? text : "");
	}
	if (status == 200 && !json_object_object_get_ex(o, "error", NULL)) {
		*ret = o;
		return 0;
	}
	struct json_object *m = NULL, *cd = NULL;
	json_object_object_get_ex(o, "message", &m);
	json_object_object_get_ex(o, "code", &cd);
	const char *msg = m ? json_object_get_string(m) : NULL;
	if (msg == NULL) {
		json_object_object_get_ex(o, "error", &m);
		msg = m && json_object_is_type(m, json_type_string) ? json_object_get_string(m)
		                                                    : "(no message)";
	}
	int r = metcd_map_error(msg, cd ? json_object_get_int(cd) : 0, retry);
	if (r == -EIO)
		metcd_fail(r, "%s: etcd: %s (HTTP %ld)", ep, msg, status);
	json_object_put(o);
	return r;
}

/* One try on endpoint ep: 0 and *ret, or -errno with *retry (how the
 * caller may go on) and *sent (whether the request may have been sent). */
static int try_once(struct metcd *c, const char *ep, const char *path, const char *body,
                    long remaining, enum metcd_retry *retry, bool *sent, struct json_object **ret)
{
	char url[512];
	struct answer a = {0};
	struct curl_slist *hdrs = NULL;
	*retry = METCD_FINAL;
	*sent = false;
	snprintf(url, sizeof(url), "%s%s", ep, path);
	CURL *h = metcd_easy_get(c);
	if (h == NULL)
		return metcd_fail(-ENOMEM, "curl_easy_init failed");
	/* Connecting gets a share of the time, so that a black hole leaves
	 * some for the next endpoint. */
	long connect_ms = c->timeout_ms / (long)c->n_eps;
	if (connect_ms < 250)
		connect_ms = 250;
	if (connect_ms > remaining)
		connect_ms = remaining;
	int r = metcd_easy_setup(c, h, url, body, &hdrs, connect_ms, remaining);
	if (r < 0)
		goto out;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, answer_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
	CURLcode cr = curl_easy_perform(h);
	if (cr != CURLE_OK) {
		long reqsize = 0;
		curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
		*sent = reqsize > 0;
		if (a.over) {
			r = metcd_fail(-EPROTO, "%s: answer over %u bytes", ep, METCD_MAX_ANSWER);
			goto out;
		}
		*retry = METCD_UNSURE;
		r = metcd_fail(-ETIMEDOUT, "%s: %s", ep, curl_easy_strerror(cr));
		goto out;
	}
	*sent = true;
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	r = metcd_j_answer(ep, a.p, status, retry, ret);
out:
	curl_slist_free_all(hdrs);
	free(a.p);
	metcd_easy_put(c, h);
	return r;
}

static int call_until(struct metcd *c, const char *path, const char *body, bool idempotent,
                      bool noauth, int64_t deadline, struct json_object **ret);

int metcd_token(struct metcd *c, int64_t deadline, char **ret)
{
	*ret = NULL;
	if (c->user == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	if (c->token)
		*ret = strdup(c->token);
	pthread_mutex_unlock(&c->lock);
	if (*ret)
		return 0;
	struct json_object *req = json_object_new_object(), *ans = NULL, *t = NULL;
	if (req == NULL || json_object_object_add(req, "name", json_object_new_string(c->user)) ||
	    json_object_object_add(req, "password", json_object_new_string(c->password))) {
		json_object_put(req);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	int r = call_until(c, "/v3/auth/authenticate", json_object_to_json_string_ext(req, 0), true,
	                   true, deadline, &ans);
	json_object_put(req);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(ans, "token", &t) ||
	    !json_object_is_type(t, json_type_string)) {
		json_object_put(ans);
		return metcd_fail(-EPROTO, "etcd: authenticate gave no token");
	}
	/* It goes into a header: printable ASCII only. */
	for (const char *s = json_object_get_string(t); *s; s++)
		if (*s < 0x21 || *s > 0x7e) {
			json_object_put(ans);
			return metcd_fail(-EPROTO,
			                  "etcd: authenticate gave a token with odd bytes");
		}
	*ret = strdup(json_object_get_string(t));
	json_object_put(ans);
	if (*ret == NULL)
		return metcd_fail(-ENOMEM, "out of memory");
	pthread_mutex_lock(&c->lock);
	free(c->token);
	c->token = strdup(*ret);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int call_until(struct metcd *c, const char *path, const char *body, bool idempotent,
                      bool noauth, int64_t deadline, struct json_object **ret)
{
	bool reauthed = false;
	long backoff = 25;
	size_t failed = 0;
	char ep[300];
	for (;;) {
		long remaining = (long)(deadline - metcd_now_ms());
		if (remaining <= 0) {
			if (failed == 0)
				metcd_fail(-ETIMEDOUT, "etcd: no answer within %ld ms",
				           c->timeout_ms);
			return -ETIMEDOUT;
		}
		char *tok = NULL;
		if (!noauth) {
			int r = metcd_token(c, deadline, &tok);
			if (r < 0)
				return r;
		}
		size_t i = metcd_ep_get(c, ep, sizeof(ep));
		enum metcd_retry retry;
		bool sent;
		int r = try_once(c, ep, path, body, remaining, &retry, &sent, ret);
		if (r == 0) {
			free(tok);
			return 0;
		}
		if (retry == METCD_BADTOKEN && !reauthed && !noauth) {
			reauthed = true;
			metcd_token_drop(c, tok);
			free(tok);
			continue;
		}
		free(tok);
		if (retry == METCD_FINAL || retry == METCD_BADTOKEN)
			return r;
		if (retry == METCD_UNSURE && sent && !idempotent) {
			char why[sizeof(err_buf)];
			snprintf(why, sizeof(why), "%s", err_buf);
			return metcd_fail(r, "%s (the change may or may not have been made)", why);
		}
		/* Another endpoint; after a round of failures, a pause. */
		metcd_ep_next(c, i);
		if (++failed % c->n_eps == 0) {
			remaining = (long)(deadline - metcd_now_ms());
			if (remaining <= 0)
				return -ETIMEDOUT;
			sleep_ms(backoff < remaining ? backoff : remaining);
			if (backoff < 400)
				backoff *= 2;
		}
	}
}

int metcd_call(struct metcd *c, const char *path, struct json_object *req, bool idempotent,
               struct json_object **ret)
{
	*ret = NULL;
	err_buf[0] = '\0';
	const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	if (body == NULL)
		return metcd_fail(-ENOMEM, "out of memory");
	return call_until(c, path, body, idempotent, false, metcd_now_ms() + c->timeout_ms, ret);
}
