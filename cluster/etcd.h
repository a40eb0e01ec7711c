/* SPDX-License-Identifier: MIT */
/* A client of etcd v3 through its JSON gateway (POST /v3/kv/range, put,
 * deleterange, txn; /v3/watch as a stream; /v3/lease/grant, keepalive,
 * revoke; /v3/auth/authenticate), over libcurl (HTTP, TLS) and json-c.
 * Keys and values are byte strings (any byte, NUL included), base64 on the
 * wire (glibc's b64_ntop/b64_pton). 64-bit numbers are strings in etcd's
 * JSON both ways.
 *
 * Endpoints: the client uses one endpoint at a time and moves to the next
 * (round robin) when one cannot be reached or answers that it has no
 * leader; metcd_endpoint() names the one in use.
 *
 * Errors: every call returns 0 or -errno, with the reason (etcd's own
 * message, or curl's) in the buffer of metcd_error():
 *  -ETIMEDOUT  no endpoint answered within the timeout (the outcome of a
 *              change is then unknown), or none could be connected to;
 *  -EFBIG      "request is too large" (over 1.5 MiB), "too many operations
 *              in txn request" (over 128);
 *  -ENOSPC     "mvcc: database space exceeded" (the space quota);
 *  -ESTALE     "mvcc: required revision has been compacted";
 *  -ENOENT     "requested lease not found" (expired or revoked);
 *  -EACCES     auth: "permission denied", bad user or password;
 *  -EPROTO     an answer that is not what the API documents;
 *  -EIO        any other error etcd reports;
 *  -ECANCELED  a watch stopped by metcd_watch_stop();
 *  -ENOMEM.
 * With a user (auth), the token from /v3/auth/authenticate goes in the
 * Authorization header; an "invalid auth token" answer makes the client
 * authenticate again once and repeat the request.
 *
 * Threads: a struct metcd may be used by several threads at once (each
 * call uses an easy handle of its own from a small pool; the token and the
 * endpoint in use are under one mutex, a leaf). A watch runs on the calling
 * thread until it ends. */
#ifndef MALLAFS_CLUSTER_ETCD_H
#define MALLAFS_CLUSTER_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metcd;

struct metcd_opts {
	const char *const *endpoints; /* "http://HOST:PORT" or "https://..." */
	size_t n_endpoints;
	long timeout_ms; /* per call, connecting included */
	/* TLS: PEM files; NULL for none (the system's CAs). */
	const char *cacert, *cert, *key;
	/* User auth; NULL user for none. */
	const char *user, *password;
};

/* Copies what it needs from o; does not connect (the first call does).
 * -EINVAL with a reason in why for a bad endpoint. */
int metcd_new(const struct metcd_opts *o, struct metcd **ret, char *why, size_t whylen);
void metcd_free(struct metcd *c); /* accepts NULL */
/* The endpoint in use now, into buf. */
void metcd_endpoint(struct metcd *c, char *buf, size_t len);
/* The reason for this thread's last failed call ("" when none). */
const char *metcd_error(void);

struct metcd_kv {
	char *key; /* malloc'd, NUL after the bytes */
	size_t key_len;
	char *value; /* malloc'd, NUL after the bytes; NULL in a DELETE event */
	size_t value_len;
	int64_t create_revision, mod_revision, version, lease;
};

struct metcd_range {
	struct metcd_kv *kvs;
	size_t n;
	int64_t revision; /* the store's revision the answer is from */
	bool more;        /* limit cut the answer short */
};
void metcd_range_free(struct metcd_range *r); /* frees the contents, not r */

/* The keys in [key, range_end) (range_end NULL: key alone; "\0" of length
 * 1: every key from key on), at most limit (0: all) in key order, as of
 * revision rev (0: now). keys_only: values are not fetched. Linearizable. */
int metcd_range(struct metcd *c, const char *key, size_t key_len, const char *range_end,
                size_t range_end_len, int64_t limit, int64_t rev, bool keys_only,
                struct metcd_range *ret);
/* The end of the range of every key that starts with prefix (prefix with
 * its last byte below 0xff incremented), into buf (at least len bytes):
 * its length. */
size_t metcd_prefix_end(const char *prefix, size_t len, char *buf);

/* Transactions: if every compare holds, the success ops, else the failure
 * ops, in one revision. */
enum metcd_target { METCD_CREATE, METCD_MOD, METCD_VERSION, METCD_VALUE, METCD_LEASE };
enum metcd_result { METCD_EQUAL, METCD_GREATER, METCD_LESS, METCD_NOT_EQUAL };
struct metcd_cmp {
	const char *key;
	size_t key_len;
	const char *range_end; /* NULL: key alone; else every key in [key, range_end) */
	size_t range_end_len;
	enum metcd_target target;
	enum metcd_result result;
	int64_t number;    /* the revision, version or lease compared */
	const char *value; /* METCD_VALUE */
	size_t value_len;
};
enum metcd_op_kind { METCD_PUT, METCD_DELETE, METCD_GET };
struct metcd_op {
	enum metcd_op_kind kind;
	const char *key;
	size_t key_len;
	const char *range_end; /* DELETE and GET: as in metcd_range */
	size_t range_end_len;
	const char *value; /* PUT */
	size_t value_len;
	int64_t lease; /* PUT: 0 for none */
};
struct metcd_txn_result {
	bool succeeded;
	int64_t revision; /* the store's revision after the txn */
	/* One per GET op of the branch taken, in order. */
	struct metcd_range *gets;
	size_t n_gets;
	/* Per DELETE op of the branch taken, in order: how many keys went. */
	int64_t *deleted;
	size_t n_deleted;
};
int metcd_txn(struct metcd *c, const struct metcd_cmp *cmp, size_t n_cmp,
              const struct metcd_op *success, size_t n_success, const struct metcd_op *failure,
              size_t n_failure, struct metcd_txn_result *ret);
void metcd_txn_result_free(struct metcd_txn_result *r); /* the contents */

/* A put and a delete alone, for convenience; *ret_rev (may be NULL) is the
 * store's revision after it. */
int metcd_put(struct metcd *c, const char *key, size_t key_len, const char *value, size_t value_len,
              int64_t lease, int64_t *ret_rev);
int metcd_delete(struct metcd *c, const char *key, size_t key_len, const char *range_end,
                 size_t range_end_len, int64_t *ret_deleted, int64_t *ret_rev);

/* Compacts the store's history up to revision rev (what the registry's
 * keeper runs now and then; tests make a watch's start stale with it). */
int metcd_compact(struct metcd *c, int64_t rev);

/* Leases. keepalive: *ret_ttl is the TTL left, -ENOENT when the lease is
 * gone (etcd answers a TTL of 0 or none). revoke: -ENOENT when gone. */
int metcd_lease_grant(struct metcd *c, int64_t ttl_s, int64_t *ret_id);
int metcd_lease_keepalive(struct metcd *c, int64_t id, int64_t *ret_ttl);
int metcd_lease_revoke(struct metcd *c, int64_t id);

/* Watching [key, range_end) from revision start_rev (0: from now), with
 * each event's previous key-value. */
enum metcd_ev_type { METCD_EV_PUT, METCD_EV_DELETE };
struct metcd_event {
	enum metcd_ev_type type;
	struct metcd_kv kv;      /* DELETE: key and mod_revision only */
	struct metcd_kv prev_kv; /* key NULL when etcd sent none */
};
struct metcd_watch_cb {
	/* Once the watch is created on an endpoint (before any event). */
	void (*created)(void *arg, int64_t revision);
	/* Every batch of events etcd sends, in revision order; revision is
	 * the store's at the batch (also sent alone, n 0, as progress). A
	 * non-zero return ends the watch with that value. */
	int (*events)(void *arg, const struct metcd_event *ev, size_t n, int64_t revision);
};
struct metcd_watch;
/* A stop handle for a watch run by another thread. */
struct metcd_watch *metcd_watch_new(void);
void metcd_watch_free(struct metcd_watch *w);
/* Makes the running (or next) metcd_watch() on w return -ECANCELED
 * within 100 ms; any thread, async-signal-unsafe. */
void metcd_watch_stop(struct metcd_watch *w);
/* Runs the watch on the calling thread until it ends: -ECANCELED (stopped),
 * -ESTALE (start_rev compacted: the answer's compact_revision in
 * *ret_compact), -ETIMEDOUT (not created on any endpoint within
 * timeout_ms, the stream broke, or it sent nothing, not even progress, for
 * idle_ms; 0: no idle limit), the callback's non-zero return, or another
 * error (-EACCES, -EPROTO for a message over 32 MiB or not JSON). It does
 * not reconnect: the caller re-lists and watches again (a stream that
 * broke moves the client to the next endpoint first). Progress
 * notifications are asked for, but etcd sends them only every
 * --experimental-watch-progress-notify-interval (10 min by default): an
 * idle_ms below that needs the flag set lower on the servers. */
int metcd_watch(struct metcd *c, struct metcd_watch *w, const char *key, size_t key_len,
                const char *range_end, size_t range_end_len, int64_t start_rev, long idle_ms,
                const struct metcd_watch_cb *cb, void *arg, int64_t *ret_compact);

/* Base64 of the standard alphabet with padding (glibc's resolver
 * functions), for the ones who build etcd requests by hand (tests). */
char *metcd_b64_encode(const void *data, size_t len);                            /* malloc'd */
int metcd_b64_decode(const char *text, size_t len, char **ret, size_t *ret_len); /* -EINVAL */

#endif
