/* SPDX-License-Identifier: MIT */
/*
 * mallafs-scale: the file operations of the scale benchmark (scale.sh), on
 * one folder of many keys, so the same run can be made on a mallafs store, on
 * tmpfs and on nullfs and compared.
 *
 *     mallafs-scale create [--from A] --to B DIR
 *     mallafs-scale stat --keys N [--ops M] [--seed S] DIR
 *     mallafs-scale cat --keys N [--ops M] [--seed S] DIR
 *     mallafs-scale resp --keys N
 *
 * Key I is named k%07zu (8 bytes: k0000000, k0000001, ...) and holds the 12
 * bytes "val-%07zu\n".
 *
 * create makes keys A to B-1 with open(O_CREAT | O_EXCL), write, close, and
 * prints its total and per-key cost, and the cost of its first and of its
 * last 1,000 keys:
 *
 *     op=create n=1000000 total_s=64.10 per_key_us=64.10
 *     op=create_first1k median_us=60.12 p99_us=90.50 mean_us=61.30 n=1000
 *     op=create_last1k median_us=61.02 p99_us=95.10 mean_us=63.00 n=1000
 *
 * stat stats M distinct keys of the first N, drawn at random (the same ones
 * for the same seed), each twice in a row: op=stat is the first, op=stat_again
 * the second, which the kernel may answer from its cache. cat opens, reads to
 * the end and closes M distinct random keys (op=cat) and checks what it read.
 *
 * resp prints, for redis-cli --pipe, the SET commands that store the same N
 * keys with the same values in Redis.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "samples.h"

#define PROG "mallafs-scale"
/* k%07zu stays 8 bytes up to here */
#define MAX_KEYS 10000000u
#define NAME_LEN 8
#define VALUE_LEN 12
#define EDGE 1000

struct scale {
	int dirfd;
	size_t from;
	size_t to;
	size_t keys;
	size_t ops;
	uint64_t seed;
};

static void key_name(char buf[NAME_LEN + 1], size_t i)
{
	snprintf(buf, NAME_LEN + 1, "k%07u", (unsigned)(i % MAX_KEYS));
}

static void key_value(char buf[VALUE_LEN + 1], size_t i)
{
	snprintf(buf, VALUE_LEN + 1, "val-%07u\n", (unsigned)(i % MAX_KEYS));
}

static int fail(const char *op, size_t i, int rc)
{
	char name[NAME_LEN + 1];

	key_name(name, i);
	fprintf(stderr, PROG ": %s %s: %s\n", op, name, strerror(-rc));
	return rc;
}

static int create_key(int dirfd, size_t i)
{
	char name[NAME_LEN + 1], value[VALUE_LEN + 1];
	int fd, rc;

	key_name(name, i);
	key_value(value, i);
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, value, VALUE_LEN);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static int cmd_create(struct scale *sc)
{
	size_t n = sc->to - sc->from, edge = n < EDGE ? n : EDGE, i;
	struct samples first = {0}, last = {0};
	uint64_t start, t0, t;
	int rc = -ENOMEM;

	if (samples_init(&first, "create_first1k", edge) < 0 ||
	    samples_init(&last, "create_last1k", edge) < 0)
		goto out;
	t0 = now_ns();
	for (i = sc->from; i < sc->to; i++) {
		start = now_ns();
		rc = create_key(sc->dirfd, i);
		t = now_ns();
		if (rc < 0) {
			fail("create", i, rc);
			goto out;
		}
		if (i - sc->from < edge)
			samples_add(&first, start, t);
		if (sc->to - i <= edge)
			samples_add(&last, start, t);
	}
	t = now_ns() - t0;
	printf("op=create n=%zu total_s=%.3f per_key_us=%.2f\n", n, (double)t / 1e9,
	       (double)t / 1e3 / (double)n);
	samples_report(&first);
	samples_report(&last);
	rc = 0;
out:
	samples_free(&first);
	samples_free(&last);
	return rc;
}

/* xorshift64*: the same keys for the same seed on every target */
static uint64_t next_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}

/* M distinct indices below N, in random order: the start of a shuffle */
static uint32_t *pick_keys(const struct scale *sc)
{
	uint64_t state = sc->seed ? sc->seed : 1;
	uint32_t *idx, tmp;
	size_t i, j;

	idx = malloc(sc->keys * sizeof(*idx));
	if (!idx)
		return NULL;
	for (i = 0; i < sc->keys; i++)
		idx[i] = (uint32_t)i;
	for (i = 0; i < sc->ops; i++) {
		j = i + (size_t)(next_random(&state) % (sc->keys - i));
		tmp = idx[i];
		idx[i] = idx[j];
		idx[j] = tmp;
	}
	return idx;
}

static int stat_key(int dirfd, size_t i)
{
	char name[NAME_LEN + 1];
	struct stat st;

	key_name(name, i);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISREG(st.st_mode) && st.st_size == VALUE_LEN ? 0 : -EIO;
}

static int cat_key(int dirfd, size_t i)
{
	char name[NAME_LEN + 1], want[VALUE_LEN + 1], buf[4 * VALUE_LEN];
	size_t total = 0;
	ssize_t n;
	int fd, rc = 0;

	key_name(name, i);
	key_value(want, i);
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* to the end, as cat does: the last read returns 0 */
	for (;;) {
		n = read(fd, buf + total, sizeof(buf) - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total == sizeof(buf)) {
			rc = -EIO;
			break;
		}
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && (total != VALUE_LEN || memcmp(buf, want, VALUE_LEN) != 0))
		rc = -EIO;
	return rc;
}

static int cmd_lookup(struct scale *sc, const char *what)
{
	bool is_stat = strcmp(what, "stat") == 0;
	struct samples first = {0}, again = {0};
	uint64_t start, mid;
	uint32_t *idx;
	size_t i;
	int rc = -ENOMEM;

	if (sc->ops > sc->keys)
		sc->ops = sc->keys;
	idx = pick_keys(sc);
	if (samples_init(&first, what, sc->ops) < 0 ||
	    samples_init(&again, "stat_again", is_stat ? sc->ops : 0) < 0 || !idx)
		goto out;
	for (i = 0; i < sc->ops; i++) {
		start = now_ns();
		rc = is_stat ? stat_key(sc->dirfd, idx[i]) : cat_key(sc->dirfd, idx[i]);
		mid = now_ns();
		if (rc == 0 && is_stat) {
			rc = stat_key(sc->dirfd, idx[i]);
			samples_add(&again, mid, now_ns());
		}
		if (rc < 0) {
			fail(what, idx[i], rc);
			goto out;
		}
		samples_add(&first, start, mid);
	}
	samples_report(&first);
	samples_report(&again);
	rc = 0;
out:
	free(idx);
	samples_free(&first);
	samples_free(&again);
	return rc;
}

static int cmd_resp(struct scale *sc)
{
	char name[NAME_LEN + 1], value[VALUE_LEN + 1];
	size_t i;

	for (i = 0; i < sc->keys; i++) {
		key_name(name, i);
		key_value(value, i);
		printf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", NAME_LEN, name, VALUE_LEN,
		       value);
	}
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -EIO;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: " PROG " create [--from A] --to B DIR\n"
	             "       " PROG " stat|cat --keys N [--ops M] [--seed S] DIR\n"
	             "       " PROG " resp --keys N\n"
	             "  --from A, --to B  create keys A to B-1 (from 0)\n"
	             "  --keys N          the keys k0000000 to N-1 exist\n"
	             "  --ops M           stat or cat M distinct random keys of them (10000)\n"
	             "  --seed S          which keys (1)\n");
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	        {"from", required_argument, NULL, 'f'},
	        {"to", required_argument, NULL, 't'},
	        {"keys", required_argument, NULL, 'k'},
	        {"ops", required_argument, NULL, 'o'},
	        {"seed", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct scale sc = {.dirfd = -1, .ops = 10000, .seed = 1};
	const char *cmd, *dir = NULL;
	size_t seed = 1;
	int c, rc = 0;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			rc = parse_size(PROG, optarg, "--from", 0, &sc.from);
			break;
		case 't':
			rc = parse_size(PROG, optarg, "--to", 1, &sc.to);
			break;
		case 'k':
			rc = parse_size(PROG, optarg, "--keys", 1, &sc.keys);
			break;
		case 'o':
			rc = parse_size(PROG, optarg, "--ops", 1, &sc.ops);
			break;
		case 's':
			rc = parse_size(PROG, optarg, "--seed", 0, &seed);
			sc.seed = seed;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (rc < 0)
			return 2;
	}
	if (strcmp(cmd, "resp") == 0) {
		if (optind != argc || sc.keys == 0 || sc.keys > MAX_KEYS) {
			usage(stderr);
			return 2;
		}
		return cmd_resp(&sc) < 0 ? 1 : 0;
	}
	if (optind == argc - 1)
		dir = argv[optind];
	if (!dir || (strcmp(cmd, "create") == 0 && (sc.to <= sc.from || sc.to > MAX_KEYS)) ||
	    (strcmp(cmd, "create") != 0 && (sc.keys == 0 || sc.keys > MAX_KEYS))) {
		usage(stderr);
		return 2;
	}
	sc.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sc.dirfd < 0) {
		fprintf(stderr, PROG ": %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (strcmp(cmd, "create") == 0) {
		rc = cmd_create(&sc);
	} else if (strcmp(cmd, "stat") == 0 || strcmp(cmd, "cat") == 0) {
		rc = cmd_lookup(&sc, cmd);
	} else {
		usage(stderr);
		rc = -EINVAL;
	}
	close(sc.dirfd);
	return rc < 0 ? 1 : 0;
}
