/* SPDX-License-Identifier: MIT */
/*
 * mallafs-durable: the timed parts of the durability benchmark
 * (durability.sh): one key changed again and again with pauses between the
 * changes, on a mallafs store, in Redis and in a plain file, and the wait
 * for a store to be back after a restart.
 *
 *     mallafs-durable write [--changes N] [--gap-ms G] [--quiet-ms Q] [--pid PID] FILE
 *     mallafs-durable raw [--changes N] [--gap-ms G] [--quiet-ms Q] FILE
 *     mallafs-durable set [--changes N] [--gap-ms G] [--quiet-ms Q] [--pid PID] SOCKET KEY
 *     mallafs-durable wait --since NS [--timeout S] MNT KEYFILE VALUE STATUS
 *     mallafs-durable wait-get --since NS [--timeout S] SOCKET KEY VALUE
 *
 * Change I (from 0) is the 12 bytes "chg-%07u\n". write changes FILE (a
 * key) with open(O_WRONLY | O_TRUNC), write, close. raw writes the value at
 * offset 0 of FILE (created 0600 when missing, and written once before the
 * changes) and fsyncs it. set sends SET KEY VALUE to the Redis at the unix
 * socket SOCKET and waits for its +OK.
 *
 * After each change it pauses G ms (--gap-ms, 80) and then waits until the
 * process PID (--pid; this one by default) has written nothing for Q ms
 * (--quiet-ms, 300), so that each change is written on its own, however
 * long that takes (60 s at most). What a process wrote is write_bytes of /proc/PID/io: the pages it
 * made dirty in files, 4 KiB each. It prints how long a change took, what
 * the process wrote for one change (the median, mean and largest of the N,
 * --changes, 100), how many changes wrote nothing (they were written with
 * another, or not at all), and the value the key holds last:
 *
 *     op=write median_us=... p99_us=... mean_us=... n=100
 *     bytes_median=4096 bytes_mean=4137 bytes_max=8192 bytes_total=413696 unwritten=0
 *     last=chg-0000099
 *
 * wait is for a daemon just started at NS (CLOCK_REALTIME nanoseconds, as
 * `date +%s%N` prints): polling every millisecond, it prints when MNT became
 * a mount (its device differs from its parent's), when KEYFILE first read
 * VALUE (a trailing newline of VALUE not needed), and when STATUS first had
 * the line "state: running", in seconds since NS. wait-get is the same for
 * a Redis just started: when GET KEY over SOCKET first answered VALUE (not
 * an error such as -LOADING):
 *
 *     mount_s=0.512 key_s=0.514 running_s=0.515
 *     key_s=1.201
 *
 * Exit status: 0, 1 when a call failed or a wait timed out (--timeout,
 * 30 s by default, for wait and wait-get), 2 on a usage error.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "samples.h"

#define PROG "mallafs-durable"
#define VALUE_LEN 12
#define POLL_NS 1000000
/* how often a process's write_bytes is read, and for how long at most */
#define QUIET_POLL_NS 5000000
#define QUIET_MAX_NS 60000000000ull

struct durable {
	size_t changes;
	size_t gap_ms;
	size_t quiet_ms;
	uint64_t since;
	size_t timeout_s;
	long pid; /* whose write_bytes, 0 for this process */
};

static void change_value(char buf[VALUE_LEN + 1], size_t i)
{
	snprintf(buf, VALUE_LEN + 1, "chg-%07u\n", (unsigned)(i % 10000000u));
}

static void pause_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
	                      .tv_nsec = (long)(ns % 1000000000u)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* write_bytes of /proc/PID/io (pid 0: this process), or -1 */
static long long write_bytes(long pid)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%ld/io", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/io");
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "write_bytes: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Waits until d->pid has written nothing for d->quiet_ms and returns its
 * write_bytes; -ETIMEDOUT after QUIET_MAX_NS, -ESRCH when it is gone. */
static long long wait_quiet(const struct durable *d)
{
	uint64_t start = now_ns(), since = start, quiet = (uint64_t)d->quiet_ms * 1000000u;
	long long last = write_bytes(d->pid), now;

	for (;;) {
		if (last < 0)
			return -ESRCH;
		if (now_ns() - since >= quiet)
			return last;
		if (now_ns() - start > QUIET_MAX_NS)
			return -ETIMEDOUT;
		pause_ns(QUIET_POLL_NS);
		now = write_bytes(d->pid);
		if (now != last)
			since = now_ns();
		last = now;
	}
}

static int cmp_bytes(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* Prints what was written for one change: median, mean, largest, total. */
static void bytes_report(long long *bytes, size_t n)
{
	long long total = 0;
	size_t zero = 0;

	qsort(bytes, n, sizeof(*bytes), cmp_bytes);
	for (size_t i = 0; i < n; i++) {
		total += bytes[i];
		zero += bytes[i] == 0;
	}
	printf("bytes_median=%lld bytes_mean=%.0f bytes_max=%lld bytes_total=%lld unwritten=%zu\n",
	       bytes[(n - 1) / 2], (double)total / (double)n, bytes[n - 1], total, zero);
}

static int fail(const char *what, const char *name, int rc)
{
	fprintf(stderr, PROG ": %s %s: %s\n", what, name, strerror(-rc));
	return rc;
}

/* What one change does: 0 or -errno. */
typedef int (*change_fn)(void *arg, const char *value);

struct key_file {
	const char *path;
	int fd; /* raw's, open across the changes */
};

static int change_key(void *arg, const char *value)
{
	struct key_file *k = arg;
	int fd = open(k->path, O_WRONLY | O_TRUNC | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = write_all(fd, value, VALUE_LEN);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static int change_raw(void *arg, const char *value)
{
	struct key_file *k = arg;

	if (pwrite(k->fd, value, VALUE_LEN, 0) != VALUE_LEN)
		return errno ? -errno : -EIO;
	return fsync(k->fd) < 0 ? -errno : 0;
}

/* A RESP command of up to three arguments; 0 or -errno. */
static int resp_send(int fd, const char *a, const char *b, const char *c)
{
	const char *args[] = {a, b, c};
	char buf[256];
	size_t argc = c ? 3 : 2;
	int len = snprintf(buf, sizeof(buf), "*%zu\r\n", argc);

	for (size_t i = 0; i < argc; i++)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "$%zu\r\n%s\r\n",
		                strlen(args[i]), args[i]);
	if (len >= (int)sizeof(buf))
		return -E2BIG;
	return write_all(fd, buf, (size_t)len);
}

/* Reads one reply (a simple line, or a bulk string of its line and its
 * data) into buf; 0 or -errno. */
static int resp_reply(int fd, char *buf, size_t size)
{
	size_t got = 0, want = 0;
	ssize_t n;

	for (;;) {
		if (got + 1 >= size)
			return -EMSGSIZE;
		n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		got += (size_t)n;
		buf[got] = '\0';
		char *eol = strstr(buf, "\r\n");
		if (!eol)
			continue;
		if (buf[0] != '$')
			return 0;
		long blen = strtol(buf + 1, NULL, 10);
		if (blen < 0)
			return 0;
		want = (size_t)(eol - buf) + 2 + (size_t)blen + 2;
		if (got >= want)
			return 0;
	}
}

static int resp_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

struct redis_key {
	int fd;
	const char *key;
};

static int change_set(void *arg, const char *value)
{
	struct redis_key *r = arg;
	char reply[256];
	int rc = resp_send(r->fd, "SET", r->key, value);

	if (rc == 0)
		rc = resp_reply(r->fd, reply, sizeof(reply));
	if (rc == 0 && strcmp(reply, "+OK\r\n") != 0) {
		fprintf(stderr, PROG ": SET %s: %s", r->key, reply);
		rc = -EIO;
	}
	return rc;
}

/* The changes, timed, each followed by the gap and the wait for the
 * writer to be quiet. */
static int run_changes(const struct durable *d, const char *op, const char *name, change_fn fn,
                       void *arg)
{
	struct samples s = {0};
	char value[VALUE_LEN + 1] = "";
	long long *bytes = calloc(d->changes, sizeof(*bytes)), before, after;
	uint64_t start;
	int rc = -ENOMEM;

	if (!bytes || samples_init(&s, op, d->changes) < 0) {
		fail("samples for", name, rc);
		goto out;
	}
	before = wait_quiet(d);
	for (size_t i = 0; i < d->changes && before >= 0; i++) {
		change_value(value, i);
		start = now_ns();
		rc = fn(arg, value);
		if (rc < 0) {
			fail(op, name, rc);
			goto out;
		}
		samples_add(&s, start, now_ns());
		pause_ns((uint64_t)d->gap_ms * 1000000u);
		after = wait_quiet(d);
		bytes[i] = after - before;
		before = after;
	}
	if (before < 0) {
		rc = (int)before;
		fprintf(stderr, PROG ": the writes of process %ld: %s\n", d->pid, strerror(-rc));
		goto out;
	}
	samples_report(&s);
	bytes_report(bytes, d->changes);
	printf("last=%.*s\n", VALUE_LEN - 1, value);
	rc = 0;
out:
	samples_free(&s);
	free(bytes);
	return rc;
}

static int cmd_write(const struct durable *d, char **args)
{
	struct key_file k = {.path = args[0], .fd = -1};

	return run_changes(d, "write", args[0], change_key, &k);
}

static int cmd_raw(const struct durable *d, char **args)
{
	struct key_file k = {.path = args[0]};
	int rc;

	k.fd = open(args[0], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (k.fd < 0)
		return fail("open", args[0], -errno);
	/* the file's first write allocates its block: not a change's cost */
	char value[VALUE_LEN + 1];
	change_value(value, 0);
	rc = change_raw(&k, value);
	if (rc < 0) {
		close(k.fd);
		return fail("write", args[0], rc);
	}
	struct durable self = *d;
	self.pid = 0;
	rc = run_changes(&self, "raw", args[0], change_raw, &k);
	close(k.fd);
	return rc;
}

static int cmd_set(const struct durable *d, char **args)
{
	struct redis_key r = {.key = args[1]};
	int rc;

	r.fd = resp_connect(args[0]);
	if (r.fd < 0)
		return fail("connect", args[0], r.fd);
	rc = run_changes(d, "set", args[1], change_set, &r);
	close(r.fd);
	return rc;
}

/* Seconds since d->since, or -1 when the timeout is past. */
static double elapsed_s(const struct durable *d)
{
	double s = (double)(realtime_ns() - d->since) / 1e9;

	return s > (double)d->timeout_s ? -1 : s;
}

/* Whether the file's content is value (less a trailing newline). */
static bool file_holds(const char *path, const char *value)
{
	char buf[4096];
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n < 0)
		return false;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return strcmp(buf, value) == 0;
}

static bool file_has_line(const char *path, const char *line)
{
	FILE *f = fopen(path, "r");
	char buf[512];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		found = strcmp(buf, line) == 0;
	}
	fclose(f);
	return found;
}

static bool is_mount(const char *mnt)
{
	char parent[4096];
	struct stat a, b;

	if (snprintf(parent, sizeof(parent), "%s/..", mnt) >= (int)sizeof(parent))
		return false;
	return stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static int cmd_wait(const struct durable *d, char **args)
{
	double mount_s = -1, key_s = -1, running_s = -1, t;

	while ((t = elapsed_s(d)) >= 0) {
		if (mount_s < 0 && is_mount(args[0]))
			mount_s = t;
		if (mount_s >= 0 && key_s < 0 && file_holds(args[1], args[2]))
			key_s = elapsed_s(d);
		if (mount_s >= 0 && running_s < 0 && file_has_line(args[3], "state: running"))
			running_s = elapsed_s(d);
		if (key_s >= 0 && running_s >= 0) {
			printf("mount_s=%.3f key_s=%.3f running_s=%.3f\n", mount_s, key_s,
			       running_s);
			return 0;
		}
		pause_ns(POLL_NS);
	}
	fprintf(stderr, PROG ": %zu s and %s%s%s\n", d->timeout_s,
	        mount_s < 0 ? "still no mount" : "",
	        mount_s >= 0 && key_s < 0 ? "the key does not hold its value yet" : "",
	        key_s >= 0 && running_s < 0 ? "the status does not say running yet" : "");
	return -ETIMEDOUT;
}

static int cmd_wait_get(const struct durable *d, char **args)
{
	char reply[256], want[256];
	double t;
	int fd = -1;

	snprintf(want, sizeof(want), "$%zu\r\n%s\r\n", strlen(args[2]), args[2]);
	while ((t = elapsed_s(d)) >= 0) {
		if (fd < 0)
			fd = resp_connect(args[0]);
		if (fd >= 0 && (resp_send(fd, "GET", args[1], NULL) < 0 ||
		                resp_reply(fd, reply, sizeof(reply)) < 0)) {
			close(fd);
			fd = -1;
		}
		if (fd >= 0 && strcmp(reply, want) == 0) {
			printf("key_s=%.3f\n", elapsed_s(d));
			close(fd);
			return 0;
		}
		pause_ns(POLL_NS);
	}
	if (fd >= 0)
		close(fd);
	fprintf(stderr, PROG ": %zu s and GET %s does not answer %s\n", d->timeout_s, args[1],
	        args[2]);
	return -ETIMEDOUT;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROG " write [--changes N] [--gap-ms G] [--quiet-ms Q] [--pid PID] FILE\n"
	        "       " PROG " raw [--changes N] [--gap-ms G] [--quiet-ms Q] FILE\n"
	        "       " PROG
	        " set [--changes N] [--gap-ms G] [--quiet-ms Q] [--pid PID] SOCKET KEY\n"
	        "       " PROG " wait --since NS [--timeout S] MNT KEYFILE VALUE STATUS\n"
	        "       " PROG " wait-get --since NS [--timeout S] SOCKET KEY VALUE\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"changes", required_argument, NULL, 'n'},
	                                     {"gap-ms", required_argument, NULL, 'g'},
	                                     {"quiet-ms", required_argument, NULL, 'q'},
	                                     {"since", required_argument, NULL, 's'},
	                                     {"timeout", required_argument, NULL, 't'},
	                                     {"pid", required_argument, NULL, 'p'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	static const struct {
		const char *name;
		int args;
		int (*fn)(const struct durable *d, char **args);
	} cmds[] = {{"write", 1, cmd_write},
	            {"raw", 1, cmd_raw},
	            {"set", 2, cmd_set},
	            {"wait", 4, cmd_wait},
	            {"wait-get", 3, cmd_wait_get}};
	struct durable d = {.changes = 100, .gap_ms = 80, .quiet_ms = 300, .timeout_s = 30};
	bool since = false;
	size_t pid;
	int c;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'n':
			rc = parse_size(PROG, optarg, "--changes", 1, &d.changes);
			break;
		case 'g':
			rc = parse_size(PROG, optarg, "--gap-ms", 0, &d.gap_ms);
			break;
		case 'q':
			rc = parse_size(PROG, optarg, "--quiet-ms", 1, &d.quiet_ms);
			break;
		case 's':
			d.since = strtoull(optarg, NULL, 10);
			since = true;
			break;
		case 'p':
			rc = parse_size(PROG, optarg, "--pid", 1, &pid);
			d.pid = (long)pid;
			break;
		case 't':
			rc = parse_size(PROG, optarg, "--timeout", 1, &d.timeout_s);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			rc = -EINVAL;
		}
		if (rc < 0) {
			usage(stderr);
			return 2;
		}
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		if (argc - optind != cmds[i].args ||
		    (!since && strncmp(cmds[i].name, "wait", 4) == 0)) {
			usage(stderr);
			return 2;
		}
		return cmds[i].fn(&d, argv + optind) < 0 ? 1 : 0;
	}
	usage(stderr);
	return 2;
}
