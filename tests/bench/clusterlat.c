/* SPDX-License-Identifier: MIT */
/*
 * mallafs-clusterlat: what cluster mode costs. Given the mounts of two
 * nodes of one etcd, A and B, and optionally a node-local mallafs L:
 *  - cross_node_inotify: a write() of a fresh value to config/APP/k on A,
 *    timed from its start until an inotify watcher of B's config/APP has
 *    IN_MODIFY for k (the daemon of B learnt it from etcd's watch);
 *  - same_node_inotify: the same with the watcher on A, the baseline (the
 *    kernel itself tells A's watchers of a write through A);
 *  - config_write_cluster: the write() alone, on A (one etcd transaction);
 *  - register_local (on L) and register_cluster (on A): open, write "PID"
 *    to registry/NAME (a fresh NAME each round) and close, timed; the entry
 *    is removed after, untimed;
 *  - registrations_per_s_{local,cluster}_{1,4}: registrations of fresh
 *    names for --seconds by 1 and by 4 threads at once, as a rate (with
 *    each one's median and p99); the names are removed after.
 * With --etcd URL, the floor under all of it, through libcurl on one kept
 * connection to etcd's HTTP gateway (the daemons talk to etcd this way):
 *  - etcd_put: one POST /v3/kv/put, timed until its answer;
 *  - etcd_put_to_watch: the same put, timed until a watch of the key, open
 *    on a second connection, has the event.
 *
 *     mallafs-clusterlat [--rounds N] [--seconds S] [--timeout-ms MS]
 *                        [--local L] [--etcd URL] [A B]
 *
 * Prints one line per measurement, as the other drivers do:
 *
 *     op=cross_node_inotify median_us=950.10 p99_us=2100.40 mean_us=1010.20 n=200 missed=0
 *     op=registrations_per_s_cluster_4 per_s=812 n=2436 seconds=3.00 median_us=... p99_us=...
 *
 * A notification later than --timeout-ms counts as missed, not as a sample.
 * Exits non-zero only when something failed to run, never because a number
 * is slow.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clusterlat.h"
#include "samples.h"

/* The writer waits this long after the watcher is told to wait, so that the
 * watcher is asleep in poll() when the change comes. */
#define ARM_NS 1000000L
/* Silence after the setup before the first round, and after each round:
 * the writing node may tell its watchers twice (the kernel for the write,
 * the daemon again when etcd's watch brings the change back). */
#define QUIET_MS 200
#define SETTLE_MS 20
#define WRITERS 4
/* Samples kept per writer of a rate run (the count goes on). */
#define RATE_CAP 200000

struct lat {
	const char *a, *b, *local;
	char app[64]; /* config/clusterlat-PID */
	char key[PATH_MAX];
	size_t rounds;
	int timeout_ms;
	double seconds;
	unsigned long serial; /* makes every value new */
	/* The writer thread. */
	pthread_t writer;
	sem_t go, done;
	atomic_bool quit;
	/* The last write()'s start (UINT64_MAX until it starts) and end, set by
	 * the writer */
	_Atomic uint64_t t_start;
	uint64_t t_end;
	int write_err;
};

/* One write() of a new value, always as long, to config/APP/k on A. */
static int write_key(struct lat *l)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%020lu\n", ++l->serial);
	int fd = open(l->key, O_WRONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	atomic_store(&l->t_start, now_ns());
	if (pwrite(fd, buf, (size_t)len, 0) != len)
		rc = errno ? -errno : -EIO;
	l->t_end = now_ns();
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void *writer_main(void *arg)
{
	struct lat *l = arg;
	struct timespec arm = {0, ARM_NS};

	for (;;) {
		while (sem_wait(&l->go) < 0 && errno == EINTR)
			;
		if (atomic_load(&l->quit))
			break;
		nanosleep(&arm, NULL);
		l->write_err = write_key(l);
		sem_post(&l->done);
	}
	return NULL;
}

static int writer_wait(struct lat *l)
{
	while (sem_wait(&l->done) < 0 && errno == EINTR)
		;
	return l->write_err;
}

/* Reads the inotify fd until an event in want for the name k comes or
 * timeout_ms passes: 1 when it came (*ret_t its arrival), 0 on timeout,
 * -errno. Events read before *not_before (an earlier change's) do not
 * count. */
static int inotify_wait(int ifd, uint32_t want, int timeout_ms, _Atomic uint64_t *not_before,
                        uint64_t *ret_t)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		uint64_t t = now_ns();
		struct pollfd pfd = {.fd = ifd, .events = POLLIN};

		if (t >= deadline)
			return 0;
		int n = poll(&pfd, 1, (int)((deadline - t) / 1000000u) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			continue;
		uint64_t arrived = now_ns();
		ssize_t len = read(ifd, buf, sizeof(buf));
		uint32_t seen = 0;
		if (len < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (len < 0)
			return -errno;
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->len && strcmp(ev->name, "k") == 0)
				seen |= ev->mask;
			p += sizeof(*ev) + ev->len;
		}
		if ((seen & want) && arrived >= atomic_load(not_before)) {
			if (ret_t)
				*ret_t = arrived;
			return 1;
		}
	}
}

/* Waits until the watch has been silent for ms. */
static void inotify_quiet(int ifd, int ms)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pfd = {.fd = ifd, .events = POLLIN};

	while (poll(&pfd, 1, ms) > 0 && read(ifd, buf, sizeof(buf)) > 0)
		;
}

/* Rounds of write_key on A, watched in dir (A's or B's config/APP);
 * w (may be NULL) gets the write() alone. */
static int bench_inotify(struct lat *l, const char *dir, struct samples *s, struct samples *w)
{
	int ifd = inotify_init1(IN_CLOEXEC);
	int rc = 0;

	if (ifd < 0) {
		perror("mallafs-clusterlat: inotify_init1");
		return -errno;
	}
	if (inotify_add_watch(ifd, dir, IN_MODIFY | IN_CLOSE_WRITE) < 0) {
		rc = -errno;
		fprintf(stderr, "mallafs-clusterlat: watch %s: %s\n", dir, strerror(errno));
		goto out;
	}
	inotify_quiet(ifd, QUIET_MS);
	for (size_t i = 0; i < WARMUP + l->rounds; i++) {
		uint64_t arrived = 0;

		atomic_store(&l->t_start, UINT64_MAX);
		sem_post(&l->go);
		int got = inotify_wait(ifd, IN_MODIFY, l->timeout_ms, &l->t_start, &arrived);
		rc = writer_wait(l);
		if (rc < 0) {
			fprintf(stderr, "mallafs-clusterlat: write %s: %s\n", l->key,
			        strerror(-rc));
			goto out;
		}
		if (got < 0) {
			rc = got;
			fprintf(stderr, "mallafs-clusterlat: read inotify: %s\n", strerror(-rc));
			goto out;
		}
		/* The rest of the change's events (its close, a second telling),
		 * so that the next round starts clean. */
		inotify_quiet(ifd, SETTLE_MS);
		if (i < WARMUP)
			continue;
		uint64_t t0 = atomic_load(&l->t_start);
		if (w)
			samples_add(w, t0, l->t_end);
		if (got == 0)
			s->missed++;
		else
			samples_add(s, t0, arrived);
	}
	rc = 0;
out:
	close(ifd);
	return rc;
}

/* MOUNT/registry/clN-PID-T-I */
static int reg_path(const char *mount, int t, size_t i, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/registry/cl%d-%ld-%zu", mount, t, (long)getpid(), i);

	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* echo PID > MOUNT/registry/NAME: 0 or -errno, with the reason printed. */
static int reg_once(const char *path)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = 0;

	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, "mallafs-clusterlat: open %s: %s\n", path, strerror(errno));
		return rc;
	}
	rc = write_all(fd, buf, (size_t)len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		fprintf(stderr, "mallafs-clusterlat: register %s: %s\n", path, strerror(-rc));
	return rc;
}

static int unreg(const char *path)
{
	if (unlink(path) == 0)
		return 0;
	fprintf(stderr, "mallafs-clusterlat: rm %s: %s\n", path, strerror(errno));
	return -errno;
}

static int bench_register(struct lat *l, const char *mount, struct samples *s)
{
	char path[PATH_MAX];
	int rc;

	for (size_t i = 0; i < WARMUP + l->rounds; i++) {
		rc = reg_path(mount, 0, i, path, sizeof(path));
		if (rc < 0)
			return rc;
		uint64_t t0 = now_ns();
		rc = reg_once(path);
		uint64_t t1 = now_ns();
		if (rc < 0)
			return rc;
		if (i >= WARMUP)
			samples_add(s, t0, t1);
		rc = unreg(path);
		if (rc < 0)
			return rc;
	}
	return 0;
}

struct rate_writer {
	pthread_t thread;
	const char *mount;
	int t;
	uint64_t deadline;
	size_t count; /* registered, to be removed */
	struct samples s;
	int rc;
};

static void *rate_main(void *arg)
{
	struct rate_writer *r = arg;
	char path[PATH_MAX];

	while (now_ns() < r->deadline) {
		r->rc = reg_path(r->mount, r->t, r->count, path, sizeof(path));
		if (r->rc < 0)
			break;
		uint64_t t0 = now_ns();
		r->rc = reg_once(path);
		uint64_t t1 = now_ns();
		if (r->rc < 0)
			break;
		r->count++;
		samples_add(&r->s, t0, t1);
	}
	return NULL;
}

/* Registrations of fresh names by writers threads for l->seconds. */
static int bench_rate(struct lat *l, const char *mount, const char *target, int writers)
{
	struct rate_writer w[WRITERS] = {0};
	struct samples all;
	struct summary sum;
	char op[64], path[PATH_MAX];
	uint64_t t0, t1;
	size_t total = 0;
	int rc = 0, started = 0;

	snprintf(op, sizeof(op), "registrations_per_s_%s_%d", target, writers);
	if (samples_init(&all, op, (size_t)writers * RATE_CAP) < 0)
		return -ENOMEM;
	t0 = now_ns();
	for (int i = 0; i < writers; i++) {
		w[i].mount = mount;
		w[i].t = i + 1;
		w[i].deadline = t0 + (uint64_t)(l->seconds * 1e9);
		if (samples_init(&w[i].s, op, RATE_CAP) < 0) {
			rc = -ENOMEM;
			break;
		}
		rc = -pthread_create(&w[i].thread, NULL, rate_main, &w[i]);
		if (rc < 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	t1 = now_ns();
	for (int i = 0; i < started; i++) {
		if (w[i].rc < 0 && rc == 0)
			rc = w[i].rc;
		for (size_t j = 0; j < w[i].s.n && all.n < all.cap; j++)
			all.us[all.n++] = w[i].s.us[j];
		total += w[i].count;
		for (size_t j = 0; j < w[i].count; j++) {
			int r = reg_path(mount, w[i].t, j, path, sizeof(path));
			if (r == 0)
				r = unreg(path);
			if (r < 0 && rc == 0)
				rc = r;
		}
	}
	for (int i = 0; i < writers; i++)
		samples_free(&w[i].s);
	if (rc == 0) {
		double secs = (double)(t1 - t0) / 1e9;

		samples_summary(&all, &sum);
		printf("op=%s per_s=%.0f n=%zu seconds=%.2f median_us=%.2f p99_us=%.2f\n", op,
		       (double)total / secs, total, secs, sum.median_us, sum.p99_us);
		fflush(stdout);
	}
	samples_free(&all);
	return rc;
}

static int path_to(char *buf, size_t size, const char *mount, const char *rel)
{
	int n = snprintf(buf, size, "%s/%s", mount, rel);

	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* Waits until path exists (B learning A's mkdir from etcd). */
static int wait_exists(const char *path, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	struct timespec nap = {0, 5000000L};
	struct stat st;

	while (stat(path, &st) < 0) {
		if (now_ns() > deadline) {
			fprintf(stderr, "mallafs-clusterlat: %s: not there after %d ms\n", path,
			        timeout_ms);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
	return 0;
}

/* The config measurements, in config/clusterlat-PID made on A and removed
 * after. */
static int bench_config(struct lat *l)
{
	char dir_a[PATH_MAX], dir_b[PATH_MAX];
	struct samples cross, same, wr;
	bool thread = false, made = false;
	int rc, fd;

	snprintf(l->app, sizeof(l->app), "config/clusterlat-%ld", (long)getpid());
	if (samples_init(&cross, "cross_node_inotify", l->rounds) < 0 ||
	    samples_init(&same, "same_node_inotify", l->rounds) < 0 ||
	    samples_init(&wr, "config_write_cluster", l->rounds) < 0)
		return -ENOMEM;
	rc = path_to(dir_a, sizeof(dir_a), l->a, l->app);
	if (rc == 0)
		rc = path_to(dir_b, sizeof(dir_b), l->b, l->app);
	if (rc == 0 && (size_t)snprintf(l->key, sizeof(l->key), "%s/k", dir_a) >= sizeof(l->key))
		rc = -ENAMETOOLONG;
	if (rc < 0)
		goto out;
	if (mkdir(dir_a, 0755) < 0) {
		rc = -errno;
		fprintf(stderr, "mallafs-clusterlat: mkdir %s: %s\n", dir_a, strerror(errno));
		goto out;
	}
	made = true;
	fd = open(l->key, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, "mallafs-clusterlat: open %s: %s\n", l->key, strerror(errno));
		goto out;
	}
	close(fd);
	rc = write_key(l);
	if (rc == 0)
		rc = wait_exists(dir_b, l->timeout_ms);
	if (rc < 0)
		goto out;
	rc = -pthread_create(&l->writer, NULL, writer_main, l);
	if (rc < 0)
		goto out;
	thread = true;
	rc = bench_inotify(l, dir_b, &cross, &wr);
	if (rc == 0)
		rc = bench_inotify(l, dir_a, &same, NULL);
	if (rc == 0) {
		samples_report_missed(&cross);
		samples_report_missed(&same);
		samples_report_missed(&wr);
	}
out:
	if (thread) {
		atomic_store(&l->quit, true);
		sem_post(&l->go);
		pthread_join(l->writer, NULL);
	}
	if (made && (unlink(l->key) < 0 || rmdir(dir_a) < 0)) {
		fprintf(stderr, "mallafs-clusterlat: rm -r %s: %s\n", dir_a, strerror(errno));
		if (rc == 0)
			rc = -EIO;
	}
	samples_free(&cross);
	samples_free(&same);
	samples_free(&wr);
	return rc;
}

static int bench_registry(struct lat *l)
{
	struct samples loc, clu;
	int rc = 0;

	if (samples_init(&loc, "register_local", l->rounds) < 0 ||
	    samples_init(&clu, "register_cluster", l->rounds) < 0)
		return -ENOMEM;
	if (l->local)
		rc = bench_register(l, l->local, &loc);
	if (rc == 0)
		rc = bench_register(l, l->a, &clu);
	if (rc == 0) {
		samples_report(&loc);
		samples_report(&clu);
	}
	samples_free(&loc);
	samples_free(&clu);
	for (int n = 1; rc == 0 && n <= WRITERS; n += WRITERS - 1) {
		if (l->local)
			rc = bench_rate(l, l->local, "local", n);
		if (rc == 0)
			rc = bench_rate(l, l->a, "cluster", n);
	}
	return rc;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: mallafs-clusterlat [OPTIONS] [A B]\n"
	        "  A B              the mounts of two nodes of one etcd\n"
	        "  --local L        a node-local mallafs, the registrations' baseline\n"
	        "  --etcd URL       time etcd's own put and put-to-watch (the floor)\n"
	        "  --rounds N       timed rounds per measurement, after %d warm-up ones (200)\n"
	        "  --seconds S      how long each registration rate runs (3)\n"
	        "  --timeout-ms MS  a notification later than this counts as missed (2000)\n",
	        WARMUP);
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	        {"rounds", required_argument, NULL, 'r'},
	        {"seconds", required_argument, NULL, 's'},
	        {"timeout-ms", required_argument, NULL, 't'},
	        {"local", required_argument, NULL, 'l'},
	        {"etcd", required_argument, NULL, 'e'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct lat l = {.rounds = 200, .timeout_ms = 2000, .seconds = 3};
	const char *etcd = NULL;
	long v;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "r:s:t:l:e:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_long("mallafs-clusterlat", optarg, "--rounds", 1, 1000000, &v) <
			    0)
				return 2;
			l.rounds = (size_t)v;
			break;
		case 's':
			if (parse_long("mallafs-clusterlat", optarg, "--seconds", 1, 3600, &v) < 0)
				return 2;
			l.seconds = (double)v;
			break;
		case 't':
			if (parse_long("mallafs-clusterlat", optarg, "--timeout-ms", 1, 600000,
			               &v) < 0)
				return 2;
			l.timeout_ms = (int)v;
			break;
		case 'l':
			l.local = optarg;
			break;
		case 'e':
			etcd = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind == 2) {
		l.a = argv[optind];
		l.b = argv[optind + 1];
	} else if (argc != optind || !etcd) {
		usage(stderr);
		return 2;
	}
	if (sem_init(&l.go, 0, 0) < 0 || sem_init(&l.done, 0, 0) < 0) {
		perror("mallafs-clusterlat: sem_init");
		return 1;
	}
	printf("# mallafs-clusterlat a=%s b=%s local=%s etcd=%s rounds=%zu seconds=%.0f\n",
	       l.a ? l.a : "-", l.b ? l.b : "-", l.local ? l.local : "-", etcd ? etcd : "-",
	       l.rounds, l.seconds);
	fflush(stdout);
	if (etcd)
		rc = bench_etcd(etcd, l.rounds, l.timeout_ms);
	if (rc == 0 && l.a)
		rc = bench_config(&l);
	if (rc == 0 && l.a)
		rc = bench_registry(&l);
	sem_destroy(&l.go);
	sem_destroy(&l.done);
	return rc < 0 ? 1 : 0;
}
