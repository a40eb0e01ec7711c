/* SPDX-License-Identifier: MIT */
/* The helpers of test_etcd.c (etcd_fixture.h). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "etcd_fixture.h"

char *eps_buf;
const char *eps[8];
size_t n_eps;

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

void sleep_ms(long ms)
{
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

struct metcd *client_with(const char *const *e, size_t n, long timeout_ms, const char *user,
                          const char *password, const char *cacert)
{
	struct metcd_opts o = {.endpoints = e,
	                       .n_endpoints = n,
	                       .timeout_ms = timeout_ms,
	                       .user = user,
	                       .password = password,
	                       .cacert = cacert};
	struct metcd *c = NULL;
	char why[200];
	int r = metcd_new(&o, &c, why, sizeof(why));
	if (r < 0)
		fail_msg("metcd_new: %s", why);
	return c;
}

struct metcd *client(void)
{
	return client_with(eps, n_eps, 3000, NULL, NULL, NULL);
}

/* A unique prefix per test run, so that the tests share one etcd. */
char *pfx(const char *name)
{
	static int seq;
	char *p = NULL;
	assert_true(asprintf(&p, "/t%d-%d/%s/", (int)getpid(), ++seq, name) > 0);
	return p;
}

static void on_created(void *arg, int64_t rev)
{
	struct wrec *w = arg;
	w->created_rev = rev;
	atomic_store(&w->created, 1);
}

static char *dup_bytes(const char *b, size_t n)
{
	if (b == NULL)
		return NULL;
	char *d = malloc(n + 1);
	memcpy(d, b, n);
	d[n] = 0;
	return d;
}

static int on_events(void *arg, const struct metcd_event *ev, size_t n, int64_t rev)
{
	struct wrec *w = arg;
	pthread_mutex_lock(&w->lock);
	if (n == 0)
		w->n_progress++;
	else
		w->n_batches++;
	for (size_t i = 0; i < n && w->n_ev < 64; i++) {
		struct metcd_event *e = &w->ev[w->n_ev];
		*e = ev[i];
		e->kv.key = dup_bytes(ev[i].kv.key, ev[i].kv.key_len);
		e->kv.value = dup_bytes(ev[i].kv.value, ev[i].kv.value_len);
		e->prev_kv.key = dup_bytes(ev[i].prev_kv.key, ev[i].prev_kv.key_len);
		e->prev_kv.value = dup_bytes(ev[i].prev_kv.value, ev[i].prev_kv.value_len);
		w->ev_rev[w->n_ev++] = rev;
	}
	pthread_mutex_unlock(&w->lock);
	atomic_fetch_add(&w->n_seen, (int)n);
	return 0;
}

const struct metcd_watch_cb wcb = {.created = on_created, .events = on_events};

void *watch_thread(void *arg)
{
	struct wrec *w = arg;
	w->ret = metcd_watch(w->c, w->w, w->key, w->key_len, w->end, w->end_len, w->start,
	                     w->idle_ms, &wcb, w, &w->compact);
	w->ended_ms = now_ms();
	return NULL;
}

void wrec_free(struct wrec *w)
{
	for (size_t i = 0; i < w->n_ev; i++) {
		free(w->ev[i].kv.key);
		free(w->ev[i].kv.value);
		free(w->ev[i].prev_kv.key);
		free(w->ev[i].prev_kv.value);
	}
	metcd_watch_free(w->w);
	pthread_mutex_destroy(&w->lock);
}

void wait_for(atomic_int *v, int want, long ms)
{
	int64_t end = now_ms() + ms;
	while (atomic_load(v) < want && now_ms() < end)
		sleep_ms(2);
	assert_true(atomic_load(v) >= want);
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	int s = accept(f->fd, NULL, NULL);
	if (s < 0)
		return NULL;
	char req[4096];
	ssize_t n = read(s, req, sizeof(req)); /* the request, more or less */
	(void)n;
	static char fill[1 << 16];
	memset(fill, 'a', sizeof(fill));
	if (write(s, f->head, strlen(f->head)) > 0)
		for (int i = 0; i < f->fill_mb * 16; i++)
			if (write(s, fill, sizeof(fill)) < 0)
				break;
	close(s);
	return NULL;
}

void fake_start(struct fake *f, const char *head, int fill_mb)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(f->fd >= 0);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->fd, 4), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
	f->port = ntohs(a.sin_port);
	f->head = head;
	f->fill_mb = fill_mb;
	assert_int_equal(pthread_create(&f->th, NULL, fake_thread, f), 0);
}

void fake_stop(struct fake *f)
{
	shutdown(f->fd, SHUT_RDWR);
	pthread_join(f->th, NULL);
	close(f->fd);
}

struct metcd *fake_client(struct fake *f, long timeout_ms)
{
	static char ep[64];
	static const char *e[] = {ep};
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", f->port);
	return client_with(e, 1, timeout_ms, NULL, NULL, NULL);
}
