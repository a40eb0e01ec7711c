/* SPDX-License-Identifier: MIT */
/* What test_etcd.c's tests share: the endpoints, clients, a recorder of
 * watch events run on a thread, and a broken HTTP server on loopback. */
#ifndef MALLAFS_TEST_ETCD_FIXTURE_H
#define MALLAFS_TEST_ETCD_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd.h"

extern char *eps_buf;
extern const char *eps[8];
extern size_t n_eps;

int64_t now_ms(void);
double now_us(void);
void sleep_ms(long ms);
struct metcd *client_with(const char *const *e, size_t n, long timeout_ms, const char *user,
                          const char *password, const char *cacert);
struct metcd *client(void);
/* A unique prefix per test run, so that the tests share one etcd. */
char *pfx(const char *name);

#define OK(call)                                                           \
	do {                                                               \
		int r_ = (call);                                           \
		if (r_ != 0)                                               \
			fail_msg("%s: %d (%s)", #call, r_, metcd_error()); \
	} while (0)

/* The watch: a thread runs it and records what came. */
struct wrec {
	struct metcd *c;
	struct metcd_watch *w;
	char *key, *end;
	size_t key_len, end_len;
	int64_t start, compact;
	long idle_ms;
	atomic_int created;
	int64_t created_rev;
	pthread_mutex_t lock;
	struct metcd_event ev[64];
	int64_t ev_rev[64];
	size_t n_ev, n_batches, n_progress;
	atomic_int n_seen;
	int ret;
	int64_t ended_ms;
};

extern const struct metcd_watch_cb wcb;
void *watch_thread(void *arg);
void wrec_free(struct wrec *w);
void wait_for(atomic_int *v, int want, long ms);

/* A broken server on loopback: answers every request with head, then
 * fill_mb MiB of "a" (the inside of a JSON string that never ends). */
struct fake {
	int fd, port;
	const char *head;
	int fill_mb;
	pthread_t th;
};

void fake_start(struct fake *f, const char *head, int fill_mb);
void fake_stop(struct fake *f);
struct metcd *fake_client(struct fake *f, long timeout_ms);

#endif
