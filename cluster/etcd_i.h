/* SPDX-License-Identifier: MIT */
/* The inside of the etcd client, shared by etcd.c (the client, its easy
 * handles, one call with failover and auth), etcd_json.c (requests and
 * answers) and etcd_watch.c (the stream).
 *
 * Lock: metcd.lock, a leaf, guards cur, token and the handle pool; nothing
 * else is taken under it and no transfer runs while it is held. The rest
 * of struct metcd is set by metcd_new and read-only after. */
#ifndef MALLAFS_CLUSTER_ETCD_I_H
#define MALLAFS_CLUSTER_ETCD_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "etcd.h"

/* Easy handles kept for reuse (each keeps its connections). */
#define METCD_POOL 8
/* An answer larger than this is refused (-EPROTO): a broken or hostile
 * server cannot make us allocate without bound. One etcd request is at
 * most 1.5 MiB, but a range or a watch batch holds many; base64 and JSON
 * add a third. */
#define METCD_MAX_ANSWER (64u << 20)
#define METCD_MAX_MSG (32u << 20)

struct metcd {
	char **eps;
	size_t n_eps;
	long timeout_ms;
	char *cacert, *cert, *key;
	char *user, *password;

	pthread_mutex_t lock;
	size_t cur;  /* the endpoint in use */
	char *token; /* auth, NULL until authenticated */
	CURL *pool[METCD_POOL];
	size_t n_pool;
};

/* Sets this thread's metcd_error() and returns e (a -errno). */
int metcd_fail(int e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t metcd_now_ms(void);

/* Endpoints: the one in use (its index, copied into buf) and moving on from
 * index i (only when i is still the one in use). */
size_t metcd_ep_get(struct metcd *c, char *buf, size_t len);
void metcd_ep_next(struct metcd *c, size_t i);

/* An easy handle of the pool (or a new one), set up for a POST of body to
 * url with TLS, keepalive, no Expect:, the token; *hdrs to free after. */
CURL *metcd_easy_get(struct metcd *c);
void metcd_easy_put(struct metcd *c, CURL *h);
int metcd_easy_setup(struct metcd *c, CURL *h, const char *url, const char *body,
                     struct curl_slist **hdrs, long connect_ms, long total_ms);
/* The token (strdup'd, NULL for none), authenticating first when a user is
 * set and there is none yet. */
int metcd_token(struct metcd *c, int64_t deadline, char **ret);
void metcd_token_drop(struct metcd *c, const char *tok);

/* What to do with an error etcd sent: */
enum metcd_retry {
	METCD_FINAL,    /* return the errno */
	METCD_NOLEADER, /* nothing was applied: another endpoint, always */
	METCD_UNSURE,   /* unavailable, maybe applied: again only if idempotent */
	METCD_BADTOKEN, /* authenticate again once */
};
/* Maps an error message and gRPC code to -errno (sets metcd_error). */
int metcd_map_error(const char *msg, int code, enum metcd_retry *retry);

/* One unary call: POST req (JSON) to path with failover and auth; *ret
 * the parsed answer (json_object_put it). idempotent: it may be sent again
 * when the first try's outcome is unknown. */
int metcd_call(struct metcd *c, const char *path, struct json_object *req, bool idempotent,
               struct json_object **ret);

/* JSON helpers (etcd_json.c). */
int metcd_j_add_bytes(struct json_object *o, const char *name, const char *data, size_t len);
int metcd_j_add_i64(struct json_object *o, const char *name, int64_t v);
/* A 64-bit number, a string or a number; absent: 0 (etcd omits zeros). */
int metcd_j_i64(struct json_object *o, const char *name, int64_t *ret);
/* Base64 bytes; absent: "" (or NULL when absent_null). */
int metcd_j_bytes(struct json_object *o, const char *name, bool absent_null, char **ret,
                  size_t *ret_len);
/* An array, absent or null: *ret NULL, *n 0. */
int metcd_j_array(struct json_object *o, const char *name, struct json_object **ret, size_t *n);
bool metcd_j_bool(struct json_object *o, const char *name);
int metcd_j_kv(struct json_object *o, struct metcd_kv *kv);
void metcd_kv_clear(struct metcd_kv *kv);
int metcd_j_range(struct json_object *o, struct metcd_range *r);
/* header.revision of an answer. */
int metcd_j_revision(struct json_object *o, int64_t *ret);

/* The answers (what the calls do with them; the fuzzer feeds them too).
 * An answer's text (NUL-terminated, NULL: none) with its HTTP status: 0
 * and *ret the object, or the errno of etcd's error (*retry how to go on). */
int metcd_j_answer(const char *ep, const char *text, long status, enum metcd_retry *retry,
                   struct json_object **ret);
/* A txn's answer: the responses of the branch taken, gets and deletes in
 * order (metcd_txn_result_free it, also after an error). */
int metcd_j_txn(struct json_object *ans, struct metcd_txn_result *t);
int metcd_j_lease_grant(struct json_object *ans, int64_t *ret_id);
int metcd_j_lease_keepalive(struct json_object *ans, int64_t id, int64_t *ret_ttl);

/* The watch stream's parser (etcd_watch.c): messages are parsed as bytes
 * come, in chunks of any size, and handed to cb. tok: made by the first
 * feed (NULL before), json_tokener_free it after. */
struct metcd_wstream {
	const struct metcd_watch_cb *cb;
	void *arg;
	const char *ep;
	struct json_tokener *tok;
	char *line; /* the bytes since the last newline */
	size_t line_len, line_cap;
	int result; /* non-zero: the watch ends with it */
	enum metcd_retry retry;
	bool created, got_bytes;
	int64_t compact;
	int64_t last_ms; /* when the last bytes came */
};
/* Feeds len more bytes of the stream: 0, or the -errno that ends the
 * watch (then x->result; nothing more is parsed). */
int metcd_wstream_feed(struct metcd_wstream *x, const char *data, size_t len);
/* The stream ended: parses what came after the last newline. */
int metcd_wstream_end(struct metcd_wstream *x);
/* Frees what feeding allocated (x itself is the caller's). */
void metcd_wstream_fini(struct metcd_wstream *x);

#endif
