/* SPDX-License-Identifier: MIT */
/*
 * The floor under cluster mode: etcd itself, spoken to as the daemons do
 * (libcurl, JSON over etcd's HTTP gateway, one kept connection per use).
 * A put of a fresh value to one key (/mallafs-bench/floor-PID, outside any
 * cluster prefix) is timed until its answer (etcd_put) and until a watch
 * of that key, open on a second connection in a thread of its own, reads
 * the event (etcd_put_to_watch). The key is deleted at the end.
 */

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clusterlat.h"

/* What the watch's answer may hold in one line before it is dropped. */
#define LINE_MAX_BYTES 65536

struct watch {
	CURL *curl;
	pthread_t thread;
	sem_t event;              /* one post per line with events */
	atomic_bool created;      /* the watch's first answer came */
	atomic_bool quit;         /* ends the transfer (the progress callback) */
	_Atomic uint64_t arrived; /* when the last event line was read */
	char line[LINE_MAX_BYTES];
	size_t len;
	bool skipping; /* the current line was too long */
	CURLcode rc;
};

static void b64(const char *in, char *out)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), i;
	const unsigned char *s = (const unsigned char *)in;

	for (i = 0; i + 2 < n; i += 3) {
		*out++ = abc[s[i] >> 2];
		*out++ = abc[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		*out++ = abc[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		*out++ = abc[s[i + 2] & 63];
	}
	if (i < n) {
		*out++ = abc[s[i] >> 2];
		if (i + 1 < n) {
			*out++ = abc[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
			*out++ = abc[(s[i + 1] & 15) << 2];
		} else {
			*out++ = abc[(s[i] & 3) << 4];
			*out++ = '=';
		}
		*out++ = '=';
	}
	*out = '\0';
}

static size_t watch_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watch *w = arg;
	size_t n = size * nmemb;
	uint64_t t = now_ns();

	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n') {
			if (w->len < sizeof(w->line) - 1)
				w->line[w->len++] = data[i];
			else
				w->skipping = true;
			continue;
		}
		w->line[w->len] = '\0';
		if (!w->skipping && strstr(w->line, "\"events\"")) {
			atomic_store(&w->arrived, t);
			sem_post(&w->event);
		} else if (!w->skipping && strstr(w->line, "\"created\"")) {
			atomic_store(&w->created, true);
		}
		w->len = 0;
		w->skipping = false;
	}
	return n;
}

static int watch_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct watch *w = arg;

	return atomic_load(&w->quit) ? 1 : 0;
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;

	w->rc = curl_easy_perform(w->curl);
	return NULL;
}

/* The answer of a put or a delete, kept for a message. */
struct answer {
	char buf[4096];
	size_t len;
};

static size_t answer_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;
	size_t room = sizeof(a->buf) - 1 - a->len;

	memcpy(a->buf + a->len, data, n < room ? n : room);
	a->len += n < room ? n : room;
	a->buf[a->len] = '\0';
	return n;
}

/* POST body to url on the handle: 0, or -EIO with the reason printed. */
static int post(CURL *curl, const char *url, const char *body)
{
	struct answer a = {.len = 0};
	long status = 0;
	CURLcode rc;

	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, answer_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK || status != 200) {
		fprintf(stderr, "mallafs-clusterlat: POST %s: %s %ld %s\n", url,
		        curl_easy_strerror(rc), status, a.buf);
		return -EIO;
	}
	return 0;
}

static int wait_event(struct watch *w, int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (sem_timedwait(&w->event, &ts) < 0) {
		if (errno != EINTR)
			return 0;
	}
	return 1;
}

static int rounds_of_puts(CURL *put, struct watch *w, const char *url, const char *key64,
                          size_t rounds, int timeout_ms)
{
	struct samples s_put, s_watch;
	char body[256], value[32], value64[64];
	int rc = 0;

	if (samples_init(&s_put, "etcd_put", rounds) < 0 ||
	    samples_init(&s_watch, "etcd_put_to_watch", rounds) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < WARMUP + rounds; i++) {
		snprintf(value, sizeof(value), "%020zu", i);
		b64(value, value64);
		snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", key64, value64);
		while (sem_trywait(&w->event) == 0)
			;
		uint64_t t0 = now_ns();
		rc = post(put, url, body);
		uint64_t t1 = now_ns();
		if (rc < 0)
			break;
		int got = wait_event(w, timeout_ms);
		uint64_t arrived = atomic_load(&w->arrived);
		if (i < WARMUP)
			continue;
		samples_add(&s_put, t0, t1);
		if (!got || arrived < t0)
			s_watch.missed++;
		else
			samples_add(&s_watch, t0, arrived);
	}
	if (rc == 0) {
		samples_report_missed(&s_put);
		samples_report_missed(&s_watch);
	}
	samples_free(&s_put);
	samples_free(&s_watch);
	return rc;
}

int bench_etcd(const char *url, size_t rounds, int timeout_ms)
{
	char key[64], key64[128], put_url[1024], watch_url[1024], del_url[1024], body[256];
	struct watch *w = calloc(1, sizeof(*w));
	CURL *put = NULL;
	bool thread = false;
	int rc = -EIO;

	if (!w)
		return -ENOMEM;
	snprintf(key, sizeof(key), "/mallafs-bench/floor-%ld", (long)getpid());
	b64(key, key64);
	if ((size_t)snprintf(put_url, sizeof(put_url), "%s/v3/kv/put", url) >= sizeof(put_url) ||
	    (size_t)snprintf(watch_url, sizeof(watch_url), "%s/v3/watch", url) >=
	            sizeof(watch_url) ||
	    (size_t)snprintf(del_url, sizeof(del_url), "%s/v3/kv/deleterange", url) >=
	            sizeof(del_url)) {
		fprintf(stderr, "mallafs-clusterlat: --etcd: URL too long\n");
		free(w);
		return -ENAMETOOLONG;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || sem_init(&w->event, 0, 0) < 0) {
		fprintf(stderr, "mallafs-clusterlat: cannot set libcurl up\n");
		free(w);
		return -EIO;
	}
	put = curl_easy_init();
	w->curl = curl_easy_init();
	if (!put || !w->curl)
		goto out;
	curl_easy_setopt(put, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(put, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	snprintf(body, sizeof(body), "{\"create_request\":{\"key\":\"%s\"}}", key64);
	curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->curl, CURLOPT_URL, watch_url);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, watch_data);
	curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(w->curl, CURLOPT_XFERINFOFUNCTION, watch_progress);
	curl_easy_setopt(w->curl, CURLOPT_XFERINFODATA, w);
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
		goto out;
	thread = true;
	for (int i = 0; i < timeout_ms && !atomic_load(&w->created); i++) {
		struct timespec ms = {0, 1000000L};
		nanosleep(&ms, NULL);
	}
	if (!atomic_load(&w->created)) {
		fprintf(stderr, "mallafs-clusterlat: POST %s: no watch within %d ms\n", watch_url,
		        timeout_ms);
		goto out;
	}
	rc = rounds_of_puts(put, w, put_url, key64, rounds, timeout_ms);
	snprintf(body, sizeof(body), "{\"key\":\"%s\"}", key64);
	if (post(put, del_url, body) < 0 && rc == 0)
		rc = -EIO;
out:
	if (thread) {
		atomic_store(&w->quit, true);
		pthread_join(w->thread, NULL);
	}
	if (rc == -EIO && !put)
		fprintf(stderr, "mallafs-clusterlat: curl_easy_init failed\n");
	curl_easy_cleanup(put);
	curl_easy_cleanup(w->curl);
	sem_destroy(&w->event);
	free(w);
	curl_global_cleanup();
	return rc;
}
