/* SPDX-License-Identifier: MIT */
/* The requests and answers of etcd's JSON gateway: base64 bytes, int64 as
 * strings, fields left out at their zero value; the key-value calls
 * (range, put, deleterange, txn) and the lease calls built on them. */
#include <errno.h>
#include <inttypes.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_i.h"

char *metcd_b64_encode(const void *data, size_t len)
{
	size_t n = (len + 2) / 3 * 4 + 1;
	char *out = malloc(n);
	if (out == NULL)
		return NULL;
	if (b64_ntop(data, len, out, n) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

int metcd_b64_decode(const char *text, size_t len, char **ret, size_t *ret_len)
{
	*ret = NULL;
	*ret_len = 0;
	/* b64_pton wants a C string; a NUL inside is not base64. */
	if (memchr(text, '\0', len))
		return -EINVAL;
	char *in = strndup(text, len);
	char *out = malloc(len / 4 * 3 + 4);
	if (in == NULL || out == NULL) {
		free(in);
		free(out);
		return -ENOMEM;
	}
	int n = b64_pton(in, (unsigned char *)out, len / 4 * 3 + 3);
	free(in);
	if (n < 0) {
		free(out);
		return -EINVAL;
	}
	out[n] = '\0';
	*ret = out;
	*ret_len = (size_t)n;
	return 0;
}

size_t metcd_prefix_end(const char *prefix, size_t len, char *buf)
{
	memcpy(buf, prefix, len);
	while (len > 0) {
		unsigned char b = (unsigned char)buf[len - 1];
		if (b < 0xff) {
			buf[len - 1] = (char)(b + 1);
			return len;
		}
		len--;
	}
	/* All 0xff (or empty): every key from prefix on. */
	buf[0] = '\0';
	return 1;
}

int metcd_j_add_bytes(struct json_object *o, const char *name, const char *data, size_t len)
{
	char *b = metcd_b64_encode(data, len);
	struct json_object *s = b ? json_object_new_string(b) : NULL;
	free(b);
	if (s == NULL || json_object_object_add(o, name, s) < 0) {
		json_object_put(s);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	return 0;
}

int metcd_j_add_i64(struct json_object *o, const char *name, int64_t v)
{
	char num[24];
	snprintf(num, sizeof(num), "%" PRId64, v);
	struct json_object *s = json_object_new_string(num);
	if (s == NULL || json_object_object_add(o, name, s) < 0) {
		json_object_put(s);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	return 0;
}

static int add_obj(struct json_object *o, const char *name, struct json_object *v)
{
	if (v == NULL || json_object_object_add(o, name, v) < 0) {
		json_object_put(v);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	return 0;
}

int metcd_j_i64(struct json_object *o, const char *name, int64_t *ret)
{
	struct json_object *v;
	*ret = 0;
	if (!json_object_object_get_ex(o, name, &v) || v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		*ret = json_object_get_int64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		char *end;
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (*s != '\0' && *end == '\0' && errno == 0) {
			*ret = n;
			return 0;
		}
	}
	return metcd_fail(-EPROTO, "etcd: \"%s\" is not a 64-bit number", name);
}

int metcd_j_bytes(struct json_object *o, const char *name, bool absent_null, char **ret,
                  size_t *ret_len)
{
	struct json_object *v;
	*ret = NULL;
	*ret_len = 0;
	if (!json_object_object_get_ex(o, name, &v) || v == NULL) {
		if (absent_null)
			return 0;
		*ret = strdup("");
		return *ret ? 0 : metcd_fail(-ENOMEM, "out of memory");
	}
	if (!json_object_is_type(v, json_type_string))
		return metcd_fail(-EPROTO, "etcd: \"%s\" is not a string", name);
	int r = metcd_b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
	                         ret, ret_len);
	if (r == -EINVAL)
		return metcd_fail(-EPROTO, "etcd: \"%s\" is not base64", name);
	return r < 0 ? metcd_fail(r, "out of memory") : 0;
}

int metcd_j_array(struct json_object *o, const char *name, struct json_object **ret, size_t *n)
{
	*n = 0;
	if (!json_object_object_get_ex(o, name, ret) || *ret == NULL)
		return 0;
	if (!json_object_is_type(*ret, json_type_array))
		return metcd_fail(-EPROTO, "etcd: \"%s\" is not an array", name);
	*n = json_object_array_length(*ret);
	return 0;
}

bool metcd_j_bool(struct json_object *o, const char *name)
{
	struct json_object *v;
	return json_object_object_get_ex(o, name, &v) && json_object_get_boolean(v);
}

void metcd_kv_clear(struct metcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

int metcd_j_kv(struct json_object *o, struct metcd_kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	if (!json_object_is_type(o, json_type_object))
		return metcd_fail(-EPROTO, "etcd: a key-value is not an object");
	int r = metcd_j_bytes(o, "key", false, &kv->key, &kv->key_len);
	if (r == 0)
		r = metcd_j_bytes(o, "value", false, &kv->value, &kv->value_len);
	if (r == 0)
		r = metcd_j_i64(o, "create_revision", &kv->create_revision);
	if (r == 0)
		r = metcd_j_i64(o, "mod_revision", &kv->mod_revision);
	if (r == 0)
		r = metcd_j_i64(o, "version", &kv->version);
	if (r == 0)
		r = metcd_j_i64(o, "lease", &kv->lease);
	if (r < 0)
		metcd_kv_clear(kv);
	return r;
}

void metcd_range_free(struct metcd_range *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		metcd_kv_clear(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

int metcd_j_revision(struct json_object *o, int64_t *ret)
{
	struct json_object *h;
	*ret = 0;
	if (!json_object_object_get_ex(o, "header", &h) ||
	    !json_object_is_type(h, json_type_object))
		return metcd_fail(-EPROTO, "etcd: an answer without a header");
	return metcd_j_i64(h, "revision", ret);
}

int metcd_j_range(struct json_object *o, struct metcd_range *rg)
{
	struct json_object *kvs;
	memset(rg, 0, sizeof(*rg));
	int r = metcd_j_revision(o, &rg->revision);
	if (r < 0)
		return r;
	rg->more = metcd_j_bool(o, "more");
	size_t n;
	r = metcd_j_array(o, "kvs", &kvs, &n);
	if (r < 0 || n == 0)
		return r;
	rg->kvs = calloc(n, sizeof(*rg->kvs));
	if (rg->kvs == NULL)
		return metcd_fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		r = metcd_j_kv(json_object_array_get_idx(kvs, i), &rg->kvs[i]);
		if (r < 0) {
			metcd_range_free(rg);
			return r;
		}
		rg->n++;
	}
	return 0;
}

/* The fields of a RangeRequest / DeleteRangeRequest key and range_end. */
static int add_key_range(struct json_object *o, const char *key, size_t key_len,
                         const char *range_end, size_t range_end_len)
{
	int r = metcd_j_add_bytes(o, "key", key, key_len);
	if (r == 0 && range_end)
		r = metcd_j_add_bytes(o, "range_end", range_end, range_end_len);
	return r;
}

static struct json_object *range_req(const char *key, size_t key_len, const char *range_end,
                                     size_t range_end_len, int64_t limit, int64_t rev,
                                     bool keys_only)
{
	struct json_object *o = json_object_new_object();
	int r = o ? add_key_range(o, key, key_len, range_end, range_end_len) : -ENOMEM;
	if (r == 0 && limit > 0)
		r = metcd_j_add_i64(o, "limit", limit);
	if (r == 0 && rev > 0)
		r = metcd_j_add_i64(o, "revision", rev);
	if (r == 0 && keys_only)
		r = add_obj(o, "keys_only", json_object_new_boolean(1));
	if (r < 0) {
		json_object_put(o);
		metcd_fail(-ENOMEM, "out of memory");
		return NULL;
	}
	return o;
}

int metcd_range(struct metcd *c, const char *key, size_t key_len, const char *range_end,
                size_t range_end_len, int64_t limit, int64_t rev, bool keys_only,
                struct metcd_range *ret)
{
	memset(ret, 0, sizeof(*ret));
	struct json_object *req =
	        range_req(key, key_len, range_end, range_end_len, limit, rev, keys_only);
	struct json_object *ans = NULL;
	if (req == NULL)
		return -ENOMEM;
	int r = metcd_call(c, "/v3/kv/range", req, true, &ans);
	json_object_put(req);
	if (r == 0)
		r = metcd_j_range(ans, ret);
	json_object_put(ans);
	return r;
}

static struct json_object *put_req(const char *key, size_t key_len, const char *value,
                                   size_t value_len, int64_t lease)
{
	struct json_object *o = json_object_new_object();
	int r = o ? metcd_j_add_bytes(o, "key", key, key_len) : -ENOMEM;
	if (r == 0)
		r = metcd_j_add_bytes(o, "value", value, value_len);
	if (r == 0 && lease != 0)
		r = metcd_j_add_i64(o, "lease", lease);
	if (r < 0) {
		json_object_put(o);
		metcd_fail(-ENOMEM, "out of memory");
		return NULL;
	}
	return o;
}

int metcd_put(struct metcd *c, const char *key, size_t key_len, const char *value, size_t value_len,
              int64_t lease, int64_t *ret_rev)
{
	struct json_object *req = put_req(key, key_len, value, value_len, lease), *ans = NULL;
	int64_t rev = 0;
	if (req == NULL)
		return -ENOMEM;
	int r = metcd_call(c, "/v3/kv/put", req, false, &ans);
	json_object_put(req);
	if (r == 0)
		r = metcd_j_revision(ans, &rev);
	json_object_put(ans);
	if (ret_rev)
		*ret_rev = rev;
	return r;
}

int metcd_delete(struct metcd *c, const char *key, size_t key_len, const char *range_end,
                 size_t range_end_len, int64_t *ret_deleted, int64_t *ret_rev)
{
	struct json_object *req = json_object_new_object(), *ans = NULL;
	int64_t rev = 0, deleted = 0;
	int r = req ? add_key_range(req, key, key_len, range_end, range_end_len) : -ENOMEM;
	if (r < 0) {
		json_object_put(req);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	r = metcd_call(c, "/v3/kv/deleterange", req, false, &ans);
	json_object_put(req);
	if (r == 0)
		r = metcd_j_revision(ans, &rev);
	if (r == 0)
		r = metcd_j_i64(ans, "deleted", &deleted);
	json_object_put(ans);
	if (ret_deleted)
		*ret_deleted = deleted;
	if (ret_rev)
		*ret_rev = rev;
	return r;
}

static struct json_object *cmp_json(const struct metcd_cmp *m)
{
	static const char *const targets[] = {"CREATE", "MOD", "VERSION", "VALUE", "LEASE"};
	static const char *const fields[] = {"create_revision", "mod_revision", "version", "value",
	                                     "lease"};
	static const char *const results[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
	if ((unsigned)m->target > METCD_LEASE || (unsigned)m->result > METCD_NOT_EQUAL) {
		metcd_fail(-EINVAL, "bad txn compare");
		return NULL;
	}
	struct json_object *o = json_object_new_object();
	int r = o ? add_key_range(o, m->key, m->key_len, m->range_end, m->range_end_len) : -ENOMEM;
	if (r == 0)
		r = add_obj(o, "target", json_object_new_string(targets[m->target]));
	if (r == 0)
		r = add_obj(o, "result", json_object_new_string(results[m->result]));
	if (r == 0 && m->target == METCD_VALUE)
		r = metcd_j_add_bytes(o, "value", m->value ? m->value : "", m->value_len);
	else if (r == 0)
		r = metcd_j_add_i64(o, fields[m->target], m->number);
	if (r < 0) {
		json_object_put(o);
		metcd_fail(-ENOMEM, "out of memory");
		return NULL;
	}
	return o;
}

static struct json_object *op_json(const struct metcd_op *op)
{
	struct json_object *inner, *o = json_object_new_object();
	const char *name;
	switch (op->kind) {
	case METCD_PUT:
		inner = put_req(op->key, op->key_len, op->value ? op->value : "", op->value_len,
		                op->lease);
		name = "request_put";
		break;
	case METCD_DELETE:
		inner = json_object_new_object();
		if (inner && add_key_range(inner, op->key, op->key_len, op->range_end,
		                           op->range_end_len) < 0) {
			json_object_put(inner);
			inner = NULL;
		}
		name = "request_delete_range";
		break;
	case METCD_GET:
		inner = range_req(op->key, op->key_len, op->range_end, op->range_end_len, 0, 0,
		                  false);
		name = "request_range";
		break;
	default:
		json_object_put(o);
		metcd_fail(-EINVAL, "bad txn op");
		return NULL;
	}
	if (o == NULL || add_obj(o, name, inner) < 0) {
		json_object_put(o);
		metcd_fail(-ENOMEM, "out of memory");
		return NULL;
	}
	return o;
}

/* Builds the TxnRequest; -errno with the reason set. */
static int txn_req(const struct metcd_cmp *cmp, size_t n_cmp, const struct metcd_op *success,
                   size_t n_success, const struct metcd_op *failure, size_t n_failure,
                   struct json_object **ret)
{
	struct json_object *o = json_object_new_object();
	struct json_object *ac = json_object_new_array(), *as = json_object_new_array(),
	                   *af = json_object_new_array();
	*ret = NULL;
	if (o == NULL) {
		json_object_put(ac);
		json_object_put(as);
		json_object_put(af);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	if (add_obj(o, "compare", ac) < 0 || add_obj(o, "success", as) < 0 ||
	    add_obj(o, "failure", af) < 0)
		goto fail;
	for (size_t i = 0; i < n_cmp; i++) {
		struct json_object *e = cmp_json(&cmp[i]);
		if (e == NULL || json_object_array_add(ac, e) < 0)
			goto fail;
	}
	for (size_t i = 0; i < n_success + n_failure; i++) {
		bool s = i < n_success;
		struct json_object *e = op_json(s ? &success[i] : &failure[i - n_success]);
		if (e == NULL || json_object_array_add(s ? as : af, e) < 0)
			goto fail;
	}
	*ret = o;
	return 0;
fail:
	json_object_put(o);
	return strncmp(metcd_error(), "bad", 3) == 0 ? -EINVAL : -ENOMEM;
}

void metcd_txn_result_free(struct metcd_txn_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_gets; i++)
		metcd_range_free(&r->gets[i]);
	free(r->gets);
	free(r->deleted);
	memset(r, 0, sizeof(*r));
}

int metcd_j_txn(struct json_object *ans, struct metcd_txn_result *t)
{
	struct json_object *resps;
	int r = metcd_j_revision(ans, &t->revision);
	if (r < 0)
		return r;
	t->succeeded = metcd_j_bool(ans, "succeeded");
	size_t n;
	r = metcd_j_array(ans, "responses", &resps, &n);
	if (r < 0 || n == 0)
		return r;
	t->gets = calloc(n, sizeof(*t->gets));
	t->deleted = calloc(n, sizeof(*t->deleted));
	if (t->gets == NULL || t->deleted == NULL)
		return metcd_fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(resps, i), *v;
		if (json_object_object_get_ex(e, "response_range", &v)) {
			r = metcd_j_range(v, &t->gets[t->n_gets]);
			if (r < 0)
				return r;
			t->n_gets++;
		} else if (json_object_object_get_ex(e, "response_delete_range", &v)) {
			r = metcd_j_i64(v, "deleted", &t->deleted[t->n_deleted]);
			if (r < 0)
				return r;
			t->n_deleted++;
		}
	}
	return 0;
}

int metcd_txn(struct metcd *c, const struct metcd_cmp *cmp, size_t n_cmp,
              const struct metcd_op *success, size_t n_success, const struct metcd_op *failure,
              size_t n_failure, struct metcd_txn_result *ret)
{
	struct json_object *req, *ans = NULL;
	bool writes = false;
	memset(ret, 0, sizeof(*ret));
	metcd_fail(0, "%s", "");
	int r = txn_req(cmp, n_cmp, success, n_success, failure, n_failure, &req);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_success + n_failure; i++)
		if ((i < n_success ? success[i] : failure[i - n_success]).kind != METCD_GET)
			writes = true;
	r = metcd_call(c, "/v3/kv/txn", req, !writes, &ans);
	json_object_put(req);
	if (r == 0)
		r = metcd_j_txn(ans, ret);
	json_object_put(ans);
	if (r < 0)
		metcd_txn_result_free(ret);
	return r;
}

int metcd_compact(struct metcd *c, int64_t rev)
{
	struct json_object *req = json_object_new_object(), *ans = NULL;
	int r = req ? metcd_j_add_i64(req, "revision", rev) : -ENOMEM;
	if (r < 0) {
		json_object_put(req);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	r = metcd_call(c, "/v3/kv/compaction", req, true, &ans);
	json_object_put(req);
	json_object_put(ans);
	return r;
}

/* A call with {"ID": id} (and TTL when ttl >= 0). */
static int lease_call(struct metcd *c, const char *path, int64_t id, int64_t ttl, bool idem,
                      struct json_object **ans)
{
	struct json_object *req = json_object_new_object();
	int r = req ? metcd_j_add_i64(req, "ID", id) : -ENOMEM;
	if (r == 0 && ttl >= 0)
		r = metcd_j_add_i64(req, "TTL", ttl);
	if (r < 0) {
		json_object_put(req);
		return metcd_fail(-ENOMEM, "out of memory");
	}
	r = metcd_call(c, path, req, idem, ans);
	json_object_put(req);
	return r;
}

int metcd_j_lease_grant(struct json_object *ans, int64_t *ret_id)
{
	int r = metcd_j_i64(ans, "ID", ret_id);
	if (r == 0 && *ret_id == 0) {
		struct json_object *e;
		if (json_object_object_get_ex(ans, "error", &e))
			r = metcd_fail(-EIO, "etcd: lease grant: %s", json_object_get_string(e));
		else
			r = metcd_fail(-EPROTO, "etcd: lease grant gave no ID");
	}
	return r;
}

int metcd_j_lease_keepalive(struct json_object *ans, int64_t id, int64_t *ret_ttl)
{
	struct json_object *res;
	int r;
	if (!json_object_object_get_ex(ans, "result", &res) ||
	    !json_object_is_type(res, json_type_object))
		r = metcd_fail(-EPROTO, "etcd: lease keepalive without a result");
	else
		r = metcd_j_i64(res, "TTL", ret_ttl);
	if (r == 0 && *ret_ttl <= 0)
		r = metcd_fail(-ENOENT, "etcd: lease %" PRIx64 " not found", (uint64_t)id);
	return r;
}

int metcd_lease_grant(struct metcd *c, int64_t ttl_s, int64_t *ret_id)
{
	struct json_object *ans = NULL;
	*ret_id = 0;
	int r = lease_call(c, "/v3/lease/grant", 0, ttl_s, false, &ans);
	if (r == 0)
		r = metcd_j_lease_grant(ans, ret_id);
	json_object_put(ans);
	return r;
}

int metcd_lease_keepalive(struct metcd *c, int64_t id, int64_t *ret_ttl)
{
	struct json_object *ans = NULL;
	*ret_ttl = 0;
	/* A stream in gRPC: the gateway answers {"result": {...}} once for
	 * the one request sent. */
	int r = lease_call(c, "/v3/lease/keepalive", id, -1, true, &ans);
	if (r == 0)
		r = metcd_j_lease_keepalive(ans, id, ret_ttl);
	json_object_put(ans);
	return r;
}

int metcd_lease_revoke(struct metcd *c, int64_t id)
{
	struct json_object *ans = NULL;
	int r = lease_call(c, "/v3/lease/revoke", id, -1, true, &ans);
	json_object_put(ans);
	return r;
}
