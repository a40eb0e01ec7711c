/* SPDX-License-Identifier: MIT */
/*
 * mallafs-watchlat: how long a change the daemon makes takes to reach a
 * watcher. Each round writes a config key of a service through the mount
 * (services/watchlat-PID/config/app/k, a service it makes and removes);
 * the daemon changes config.ini, which no request touched, and must tell
 * its watchers itself. Timed from the start
 * of the write() until
 *  - an inotify watcher of config.ini has its IN_MODIFY (inotify_config_ini),
 *  - a poll() waiter on config.ini, blocked before the change, wakes with
 *    POLLPRI (poll_config_ini); it re-reads the file from offset 0 between
 *    rounds, as sysfs's protocol has it.
 * The write() alone is timed too (config_key_write), for comparison.
 *
 *     mallafs-watchlat [--rounds N] [--timeout-ms MS] MOUNT
 *
 * Prints one line per measurement, as mallafs-bench does:
 *
 *     op=inotify_config_ini median_us=95.10 p99_us=210.40 mean_us=101.20 n=300 missed=0
 *
 * A round whose notification does not come within --timeout-ms counts as
 * missed, not as a sample. Exits non-zero only when something failed to run
 * (a system call, the setup), never because a number is slow.
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
#include <time.h>
#include <unistd.h>

#include "samples.h"

#define WARMUP 10
/* The writer waits this long after the waiter is told to wait, so that the
 * waiter is asleep in poll() when the change comes. */
#define ARM_NS 1000000L
/* Silence after the setup before the first round. */
#define QUIET_MS 100

struct lat {
	const char *mount;
	char svc[64]; /* services/watchlat-PID */
	size_t rounds;
	int timeout_ms;
	int key_fd; /* config/app/k, open for writing */
	int ini_fd; /* config.ini, open for reading (poll) */
	char ini_path[PATH_MAX];
	unsigned long serial; /* makes every value new */
	/* The writer thread. */
	pthread_t writer;
	sem_t go, done;
	atomic_bool quit;
	uint64_t t_start, t_end; /* of the last write(), set by the writer */
	int write_err;
};

static int path_of(const struct lat *l, const char *rel, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", l->mount, rel);

	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* mkdir MOUNT/SVC/rel (MOUNT/SVC when rel is empty). */
static int mkdir_svc(const struct lat *l, const char *rel)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s%s", l->mount, l->svc, rel);

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0755) < 0) {
		n = -errno;
		fprintf(stderr, "mallafs-watchlat: mkdir %s: %s\n", path, strerror(errno));
		return n;
	}
	return 0;
}

/* One write() of a new value to config/app/k: a reconfiguration. */
static int write_key(struct lat *l)
{
	char buf[64];
	int len = snprintf(buf, sizeof(buf), "v%lu\n", ++l->serial);

	if (pwrite(l->key_fd, buf, (size_t)len, 0) != len)
		return errno ? -errno : -EIO;
	return 0;
}

/* Reads fd from offset 0 to EOF, as a sysfs poller does after a wake-up. */
static int reread(int fd)
{
	char buf[4096];
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0)
		off += n;
	return n < 0 ? -errno : 0;
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
		l->t_start = now_ns();
		l->write_err = write_key(l);
		l->t_end = now_ns();
		sem_post(&l->done);
	}
	return NULL;
}

/* Waits for the writer's write() to end; its error, if any. */
static int writer_wait(struct lat *l)
{
	while (sem_wait(&l->done) < 0 && errno == EINTR)
		;
	return l->write_err;
}

/* Reads the inotify fd until an event in want comes or timeout_ms passes:
 * 1 when it came (*ret_t its arrival), 0 on timeout, -errno. *seen gathers
 * the masks of every event read, those read with it included. */
static int inotify_wait(int ifd, uint32_t want, int timeout_ms, uint64_t *ret_t, uint32_t *seen)
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
		if (len < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (len < 0)
			return -errno;
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			*seen |= ev->mask;
			p += sizeof(*ev) + ev->len;
		}
		if (*seen & want) {
			if (ret_t)
				*ret_t = arrived;
			return 1;
		}
	}
}

static void inotify_drain(int ifd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pfd = {.fd = ifd, .events = POLLIN};

	while (poll(&pfd, 1, 0) > 0 && read(ifd, buf, sizeof(buf)) > 0)
		;
}

static int bench_inotify(struct lat *l, struct samples *s, struct samples *w)
{
	int ifd = inotify_init1(IN_CLOEXEC);
	int rc = 0;

	if (ifd < 0) {
		perror("mallafs-watchlat: inotify_init1");
		return -errno;
	}
	if (inotify_add_watch(ifd, l->ini_path, IN_MODIFY | IN_CLOSE_WRITE) < 0) {
		rc = -errno;
		fprintf(stderr, "mallafs-watchlat: watch %s: %s\n", l->ini_path, strerror(errno));
		goto out;
	}
	/* The echoes of the setup may still come: wait for them to end. */
	for (uint32_t seen = 0; inotify_wait(ifd, IN_ALL_EVENTS, QUIET_MS, NULL, &seen) > 0;)
		seen = 0;
	for (size_t i = 0; i < WARMUP + l->rounds; i++) {
		uint64_t arrived = 0;
		uint32_t seen = 0;

		inotify_drain(ifd);
		sem_post(&l->go);
		int got = inotify_wait(ifd, IN_MODIFY, l->timeout_ms, &arrived, &seen);
		rc = writer_wait(l);
		if (rc < 0) {
			fprintf(stderr, "mallafs-watchlat: write config/app/k: %s\n",
			        strerror(-rc));
			goto out;
		}
		if (got < 0) {
			rc = got;
			fprintf(stderr, "mallafs-watchlat: read inotify: %s\n", strerror(-rc));
			goto out;
		}
		/* The echo's close, so that the next round starts clean. */
		if (got > 0 && !(seen & IN_CLOSE_WRITE) &&
		    inotify_wait(ifd, IN_CLOSE_WRITE, l->timeout_ms, NULL, &seen) < 0)
			break;
		if (i < WARMUP)
			continue;
		samples_add(w, l->t_start, l->t_end);
		if (got == 0 || arrived < l->t_start)
			s->missed++;
		else
			samples_add(s, l->t_start, arrived);
	}
	rc = 0;
out:
	close(ifd);
	return rc;
}

static int bench_poll(struct lat *l, struct samples *s)
{
	int rc = reread(l->ini_fd);

	if (rc < 0) {
		fprintf(stderr, "mallafs-watchlat: read config.ini: %s\n", strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < WARMUP + l->rounds; i++) {
		struct pollfd pfd = {.fd = l->ini_fd, .events = POLLPRI};
		uint64_t woke;
		int n;

		sem_post(&l->go);
		do {
			n = poll(&pfd, 1, l->timeout_ms);
		} while (n < 0 && errno == EINTR);
		woke = now_ns();
		if (n < 0) {
			perror("mallafs-watchlat: poll config.ini");
			writer_wait(l);
			return -errno;
		}
		rc = writer_wait(l);
		if (rc < 0) {
			fprintf(stderr, "mallafs-watchlat: write config/app/k: %s\n",
			        strerror(-rc));
			return rc;
		}
		/* Re-arm: what poll() compares with is what was last read. */
		rc = reread(l->ini_fd);
		if (rc < 0) {
			fprintf(stderr, "mallafs-watchlat: read config.ini: %s\n", strerror(-rc));
			return rc;
		}
		if (i < WARMUP)
			continue;
		if (n == 0 || !(pfd.revents & POLLPRI) || woke < l->t_start)
			s->missed++;
		else
			samples_add(s, l->t_start, woke);
	}
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: mallafs-watchlat [--rounds N] [--timeout-ms MS] MOUNT\n"
	        "  --rounds N       timed changes per measurement, after %d warm-up ones (300)\n"
	        "  --timeout-ms MS  a notification later than this counts as missed (2000)\n",
	        WARMUP);
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	        {"rounds", required_argument, NULL, 'r'},
	        {"timeout-ms", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct lat l = {.rounds = 300, .timeout_ms = 2000, .key_fd = -1, .ini_fd = -1};
	struct samples ino, pol, wr;
	char path[PATH_MAX];
	bool thread = false, made = false;
	long v;
	int c, rc = -EINVAL;

	while ((c = getopt_long(argc, argv, "r:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_long("mallafs-watchlat", optarg, "--rounds", 1, 1000000, &v) < 0)
				return 2;
			l.rounds = (size_t)v;
			break;
		case 't':
			if (parse_long("mallafs-watchlat", optarg, "--timeout-ms", 1, 600000, &v) <
			    0)
				return 2;
			l.timeout_ms = (int)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	l.mount = argv[optind];
	if (samples_init(&ino, "inotify_config_ini", l.rounds) < 0 ||
	    samples_init(&pol, "poll_config_ini", l.rounds) < 0 ||
	    samples_init(&wr, "config_key_write", l.rounds) < 0) {
		fprintf(stderr, "mallafs-watchlat: out of memory\n");
		return 1;
	}

	snprintf(l.svc, sizeof(l.svc), "services/watchlat-%ld", (long)getpid());
	rc = mkdir_svc(&l, "");
	if (rc < 0)
		goto out;
	made = true;
	rc = mkdir_svc(&l, "/config/app");
	if (rc < 0)
		goto out;
	rc = -ENAMETOOLONG;
	if (snprintf(path, sizeof(path), "%s/%s/config/app/k", l.mount, l.svc) >=
	            (int)sizeof(path) ||
	    snprintf(l.ini_path, sizeof(l.ini_path), "%s/%s/config.ini", l.mount, l.svc) >=
	            (int)sizeof(l.ini_path))
		goto out;
	l.key_fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (l.key_fd < 0) {
		rc = -errno;
		fprintf(stderr, "mallafs-watchlat: open %s: %s\n", path, strerror(errno));
		goto out;
	}
	rc = write_key(&l);
	if (rc < 0) {
		fprintf(stderr, "mallafs-watchlat: write %s: %s\n", path, strerror(-rc));
		goto out;
	}
	l.ini_fd = open(l.ini_path, O_RDONLY | O_CLOEXEC);
	if (l.ini_fd < 0) {
		rc = -errno;
		fprintf(stderr, "mallafs-watchlat: open %s: %s\n", l.ini_path, strerror(errno));
		goto out;
	}
	if (sem_init(&l.go, 0, 0) < 0 || sem_init(&l.done, 0, 0) < 0) {
		rc = -errno;
		perror("mallafs-watchlat: sem_init");
		goto out;
	}
	rc = -pthread_create(&l.writer, NULL, writer_main, &l);
	if (rc < 0) {
		fprintf(stderr, "mallafs-watchlat: pthread_create: %s\n", strerror(-rc));
		goto out;
	}
	thread = true;

	printf("# mallafs-watchlat mount=%s rounds=%zu timeout_ms=%d\n", l.mount, l.rounds,
	       l.timeout_ms);
	fflush(stdout);
	rc = bench_inotify(&l, &ino, &wr);
	if (rc == 0)
		rc = bench_poll(&l, &pol);
	if (rc == 0) {
		samples_report_missed(&ino);
		samples_report_missed(&pol);
		samples_report_missed(&wr);
	}
out:
	if (thread) {
		atomic_store(&l.quit, true);
		sem_post(&l.go);
		pthread_join(l.writer, NULL);
	}
	if (l.ini_fd >= 0)
		close(l.ini_fd);
	if (l.key_fd >= 0)
		close(l.key_fd);
	/* The service goes with its configuration. */
	if (made && path_of(&l, l.svc, path, sizeof(path)) == 0 && rmdir(path) < 0) {
		fprintf(stderr, "mallafs-watchlat: rmdir %s: %s\n", path, strerror(errno));
		if (rc == 0)
			rc = -EIO;
	}
	samples_free(&ino);
	samples_free(&pol);
	samples_free(&wr);
	return rc < 0 ? 1 : 0;
}
