/* SPDX-License-Identifier: MIT */
/* The watch: POST /v3/watch with a create_request, then a stream of JSON
 * objects {"result": {...}}, each followed by a newline, in chunks of any
 * size. Bytes are kept until a newline comes and the line is parsed whole
 * (an error that ends the stream may have no newline: it is parsed when
 * the transfer ends); one message may be at most METCD_MAX_MSG bytes. The transfer runs in a curl
 * multi handle polled every 50 ms, so that a stop (an atomic flag, any thread) and the idle limit
 * are seen within that even when nothing flows. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_i.h"

#define POLL_MS 50

struct metcd_watch {
	atomic_bool stop;
};

struct metcd_watch *metcd_watch_new(void)
{
	struct metcd_watch *w = calloc(1, sizeof(*w));
	if (w)
		atomic_init(&w->stop, false);
	return w;
}

void metcd_watch_free(struct metcd_watch *w)
{
	free(w);
}

void metcd_watch_stop(struct metcd_watch *w)
{
	atomic_store(&w->stop, true);
}

static void event_clear(struct metcd_event *e)
{
	metcd_kv_clear(&e->kv);
	metcd_kv_clear(&e->prev_kv);
}

static int parse_event(struct json_object *o, struct metcd_event *e)
{
	struct json_object *t, *kv, *prev;
	memset(e, 0, sizeof(*e));
	e->type = METCD_EV_PUT; /* 0: left out */
	if (json_object_object_get_ex(o, "type", &t) && t) {
		const char *s = json_object_get_string(t);
		if (strcmp(s, "DELETE") == 0 || strcmp(s, "1") == 0)
			e->type = METCD_EV_DELETE;
		else if (strcmp(s, "PUT") != 0 && strcmp(s, "0") != 0)
			return metcd_fail(-EPROTO, "etcd: event type \"%s\"", s);
	}
	if (!json_object_object_get_ex(o, "kv", &kv))
		return metcd_fail(-EPROTO, "etcd: an event without kv");
	int r = metcd_j_kv(kv, &e->kv);
	if (r < 0)
		return r;
	if (e->type == METCD_EV_DELETE) {
		free(e->kv.value);
		e->kv.value = NULL;
		e->kv.value_len = 0;
	}
	if (json_object_object_get_ex(o, "prev_kv", &prev) && prev) {
		r = metcd_j_kv(prev, &e->prev_kv);
		if (r < 0)
			event_clear(e);
	}
	return r;
}

/* An error in the stream or as the whole answer: {"error": {"grpc_code",
 * "message"}} or {"error": "...", "code", "message"}. */
static int stream_error(struct metcd_wstream *x, struct json_object *o)
{
	struct json_object *e = NULL, *m = NULL, *cd = NULL;
	json_object_object_get_ex(o, "error", &e);
	struct json_object *from = json_object_is_type(e, json_type_object) ? e : o;
	json_object_object_get_ex(from, "message", &m);
	if (!json_object_object_get_ex(from, "grpc_code", &cd))
		json_object_object_get_ex(from, "code", &cd);
	const char *msg = m ? json_object_get_string(m) : json_object_get_string(e);
	return metcd_map_error(msg ? msg : "(no message)", cd ? json_object_get_int(cd) : 0,
	                       &x->retry);
}

static int handle_events(struct metcd_wstream *x, struct json_object *evs, size_t n, int64_t rev)
{
	struct metcd_event *ev = calloc(n ? n : 1, sizeof(*ev));
	if (ev == NULL)
		return metcd_fail(-ENOMEM, "out of memory");
	size_t got = 0;
	int r = 0;
	for (; got < n; got++) {
		r = parse_event(json_object_array_get_idx(evs, got), &ev[got]);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = x->cb->events(x->arg, ev, n, rev);
	for (size_t i = 0; i < got; i++)
		event_clear(&ev[i]);
	free(ev);
	return r;
}

static int handle_msg(struct metcd_wstream *x, struct json_object *o)
{
	struct json_object *res, *evs = NULL;
	int64_t rev;
	if (!json_object_is_type(o, json_type_object))
		return metcd_fail(-EPROTO, "%s: watch: a message that is not an object", x->ep);
	if (json_object_object_get_ex(o, "error", NULL))
		return stream_error(x, o);
	if (!json_object_object_get_ex(o, "result", &res) ||
	    !json_object_is_type(res, json_type_object))
		return metcd_fail(-EPROTO, "%s: watch: a message without a result", x->ep);
	int r = metcd_j_revision(res, &rev);
	if (r < 0)
		return r;
	if (metcd_j_bool(res, "canceled")) {
		struct json_object *why = NULL;
		r = metcd_j_i64(res, "compact_revision", &x->compact);
		if (r < 0)
			return r;
		if (x->compact > 0)
			return metcd_fail(-ESTALE, "etcd: watch: revision compacted (at %lld)",
			                  (long long)x->compact);
		json_object_object_get_ex(res, "cancel_reason", &why);
		r = metcd_map_error(why ? json_object_get_string(why) : "watch canceled", 0,
		                    &x->retry);
		x->retry = METCD_FINAL;
		return r;
	}
	if (metcd_j_bool(res, "created")) {
		x->created = true;
		if (x->cb->created)
			x->cb->created(x->arg, rev);
	}
	size_t n;
	r = metcd_j_array(res, "events", &evs, &n);
	if (r < 0 || (n == 0 && metcd_j_bool(res, "created")))
		return r;
	return handle_events(x, evs, n, rev);
}

/* One line of the stream: the JSON values in it, each parsed whole, so
 * that what a message means never depends on where the chunks were cut
 * (json-c's incremental tokener reads a bad number differently across a
 * chunk's end). */
static int parse_line(struct metcd_wstream *x, const char *buf, size_t n)
{
	size_t off = 0;
	while (x->result == 0) {
		while (off < n && (buf[off] == ' ' || buf[off] == '\t' || buf[off] == '\r'))
			off++;
		if (off == n)
			break;
		json_tokener_reset(x->tok);
		struct json_object *o = json_tokener_parse_ex(x->tok, buf + off, (int)(n - off));
		enum json_tokener_error je = json_tokener_get_error(x->tok);
		if (o) {
			off += json_tokener_get_parse_end(x->tok);
			x->result = handle_msg(x, o);
			json_object_put(o);
		} else if (je == json_tokener_continue) {
			x->result = metcd_fail(-EPROTO, "%s: watch: a message cut short", x->ep);
		} else {
			x->result = metcd_fail(-EPROTO, "%s: watch: bad JSON: %s", x->ep,
			                       json_tokener_error_desc(je));
		}
	}
	return x->result;
}

static int line_append(struct metcd_wstream *x, const char *data, size_t n)
{
	if (x->line_len + n > x->line_cap) {
		size_t cap = x->line_cap ? x->line_cap : 4096;
		while (cap < x->line_len + n)
			cap *= 2;
		char *p = realloc(x->line, cap);
		if (p == NULL)
			return x->result = metcd_fail(-ENOMEM, "out of memory");
		x->line = p;
		x->line_cap = cap;
	}
	memcpy(x->line + x->line_len, data, n);
	x->line_len += n;
	return 0;
}

int metcd_wstream_feed(struct metcd_wstream *x, const char *data, size_t len)
{
	/* Strict: no comments, and no control bytes inside strings; but
	 * the next message may follow the last on its line. */
	if (x->tok == NULL && x->result == 0) {
		x->tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
		if (x->tok == NULL)
			return x->result = metcd_fail(-ENOMEM, "out of memory");
		json_tokener_set_flags(x->tok,
		                       JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	}
	x->got_bytes = true;
	x->last_ms = metcd_now_ms();
	while (len > 0 && x->result == 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (x->line_len + take > METCD_MAX_MSG) {
			x->result = metcd_fail(-EPROTO, "%s: watch: a message over %u bytes", x->ep,
			                       METCD_MAX_MSG);
			break;
		}
		if (nl && x->line_len == 0) {
			parse_line(x, data, take);
		} else if (line_append(x, data, take) == 0 && nl) {
			parse_line(x, x->line, x->line_len);
			x->line_len = 0;
		}
		take += nl ? 1 : 0;
		data += take;
		len -= take;
	}
	return x->result;
}

int metcd_wstream_end(struct metcd_wstream *x)
{
	if (x->result == 0 && x->line_len > 0 && x->tok) {
		parse_line(x, x->line, x->line_len);
		x->line_len = 0;
	}
	return x->result;
}

void metcd_wstream_fini(struct metcd_wstream *x)
{
	if (x->tok)
		json_tokener_free(x->tok);
	x->tok = NULL;
	free(x->line);
	x->line = NULL;
	x->line_len = x->line_cap = 0;
}

static size_t watch_write(char *data, size_t size, size_t nmemb, void *arg)
{
	size_t len = size * nmemb;
	return metcd_wstream_feed(arg, data, len) == 0 ? len : 0;
}

static struct json_object *watch_req(const char *key, size_t key_len, const char *range_end,
                                     size_t range_end_len, int64_t start_rev)
{
	struct json_object *o = json_object_new_object(), *cr = json_object_new_object();
	int r = (o && cr) ? metcd_j_add_bytes(cr, "key", key, key_len) : -ENOMEM;
	if (r == 0 && range_end)
		r = metcd_j_add_bytes(cr, "range_end", range_end, range_end_len);
	if (r == 0 && start_rev > 0)
		r = metcd_j_add_i64(cr, "start_revision", start_rev);
	if (r == 0 &&
	    (json_object_object_add(cr, "prev_kv", json_object_new_boolean(1)) < 0 ||
	     json_object_object_add(cr, "progress_notify", json_object_new_boolean(1)) < 0))
		r = -ENOMEM;
	if (r == 0 && json_object_object_add(o, "create_request", cr) < 0)
		r = -ENOMEM;
	if (r < 0) {
		json_object_put(o);
		json_object_put(cr);
		metcd_fail(-ENOMEM, "out of memory");
		return NULL;
	}
	return o;
}

/* One stream on endpoint ep until it ends. */
static int watch_once(struct metcd *c, struct metcd_watch *w, const char *ep, const char *body,
                      long idle_ms, int64_t deadline, struct metcd_wstream *x)
{
	char url[512];
	struct curl_slist *hdrs = NULL;
	snprintf(url, sizeof(url), "%s/v3/watch", ep);
	CURL *h = metcd_easy_get(c);
	CURLM *m = curl_multi_init();
	x->ep = ep;
	int r = -ENOMEM;
	if (h == NULL || m == NULL) {
		metcd_fail(r, "out of memory");
		goto out;
	}
	long connect_ms = c->timeout_ms / (long)c->n_eps;
	if (connect_ms < 250)
		connect_ms = 250;
	r = metcd_easy_setup(c, h, url, body, &hdrs, connect_ms, 0);
	if (r < 0)
		goto out;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_multi_add_handle(m, h);
	x->last_ms = metcd_now_ms();
	for (;;) {
		int running = 0;
		if (atomic_load(&w->stop)) {
			r = metcd_fail(-ECANCELED, "etcd: watch stopped");
			break;
		}
		CURLMcode mc = curl_multi_perform(m, &running);
		if (x->result != 0) {
			r = x->result;
			break;
		}
		if (mc != CURLM_OK) {
			r = metcd_fail(-EIO, "curl: %s", curl_multi_strerror(mc));
			break;
		}
		if (running == 0) {
			/* A last message with no newline after it: the gateway
			 * ends a stream with an error so. */
			if (metcd_wstream_end(x) != 0) {
				r = x->result;
				break;
			}
			int q;
			CURLMsg *msg = curl_multi_info_read(m, &q);
			CURLcode cr = msg && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_OK;
			long reqsize = 0;
			curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
			x->retry = reqsize == 0 ? METCD_NOLEADER : METCD_FINAL;
			if (cr != CURLE_OK)
				r = metcd_fail(-ETIMEDOUT, "%s: watch: %s", ep,
				               curl_easy_strerror(cr));
			else
				r = metcd_fail(-ETIMEDOUT, "%s: watch: the stream ended", ep);
			break;
		}
		int64_t now = metcd_now_ms();
		if (!x->created && now > deadline) {
			r = metcd_fail(-ETIMEDOUT, "%s: watch: not created within %ld ms", ep,
			               c->timeout_ms);
			break;
		}
		if (idle_ms > 0 && now - x->last_ms > idle_ms) {
			r = metcd_fail(-ETIMEDOUT, "%s: watch: nothing for %ld ms", ep, idle_ms);
			break;
		}
		curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
	}
	curl_multi_remove_handle(m, h);
out:
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	metcd_wstream_fini(x);
	/* A handle whose transfer was cut is not worth keeping. */
	if (h)
		curl_easy_cleanup(h);
	return r;
}

int metcd_watch(struct metcd *c, struct metcd_watch *w, const char *key, size_t key_len,
                const char *range_end, size_t range_end_len, int64_t start_rev, long idle_ms,
                const struct metcd_watch_cb *cb, void *arg, int64_t *ret_compact)
{
	char ep[300];
	bool reauthed = false;
	if (ret_compact)
		*ret_compact = 0;
	metcd_fail(0, "%s", "");
	struct json_object *req = watch_req(key, key_len, range_end, range_end_len, start_rev);
	if (req == NULL)
		return -ENOMEM;
	const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	int64_t deadline = metcd_now_ms() + c->timeout_ms;
	int r;
	for (;;) {
		struct metcd_wstream x = {.cb = cb, .arg = arg};
		char *tok = NULL;
		r = metcd_token(c, deadline, &tok);
		if (r < 0)
			break;
		size_t i = metcd_ep_get(c, ep, sizeof(ep));
		r = watch_once(c, w, ep, body, idle_ms, deadline, &x);
		if (r == -ESTALE && ret_compact)
			*ret_compact = x.compact;
		if (x.retry == METCD_BADTOKEN && !reauthed) {
			reauthed = true;
			metcd_token_drop(c, tok);
			free(tok);
			continue;
		}
		free(tok);
		if (r != -ETIMEDOUT || x.retry == METCD_FINAL || x.retry == METCD_BADTOKEN) {
			if (r == -ETIMEDOUT && x.got_bytes)
				metcd_ep_next(c, i);
			break;
		}
		/* Not connected, or no leader: the next endpoint, while the
		 * time to create the watch lasts. */
		metcd_ep_next(c, i);
		if (x.created || metcd_now_ms() >= deadline || atomic_load(&w->stop))
			break;
		struct timespec d = {0, 50 * 1000000L};
		nanosleep(&d, NULL);
	}
	json_object_put(req);
	return r;
}
