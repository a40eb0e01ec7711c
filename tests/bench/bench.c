/* SPDX-License-Identifier: MIT */
/*
 * mallafs-bench: times the file operations people run on a mallafs store
 * (stat, cat, echo, create, ls, rm) in one folder, so the same run can be
 * made on tmpfs, on nullfs and on mallafs and the results compared.
 *
 *     mallafs-bench [--iterations N] [--keys N] [--rounds N] [--lists N] DIR
 *
 * Prints one line per operation:
 *
 *     op=stat median_us=0.91 p99_us=1.80 mean_us=1.02 n=20000
 *
 * Every file it makes is named mb-*; it removes them when done.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "samples.h"

#define CAT_SIZE 4096
#define KEY_SIZE 100
#define ECHO_TEXT "hello\n"
#define PREFIX "mb-"

struct bench {
	const char *dir;
	/* operations run relative to the folder, so that the depth of DIR (a
	 * mallafs store sits three folders below its mount) costs nothing and
	 * every target is timed on the same work */
	int dirfd;
	size_t iterations;
	size_t keys;
	size_t rounds;
	size_t lists;
	size_t base_entries;
	char value[CAT_SIZE];
};

static int put_file(struct bench *b, const char *name, int flags, const char *buf, size_t len)
{
	int fd, rc;

	fd = openat(b->dirfd, name, O_WRONLY | O_CLOEXEC | flags, 0644);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, buf, len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void key_name(char *buf, size_t size, const char *kind, size_t i)
{
	snprintf(buf, size, PREFIX "%s-%zu", kind, i);
}

static int op_stat(struct bench *b, size_t i)
{
	struct stat st;

	if (fstatat(b->dirfd, PREFIX "stat", &st, 0) < 0)
		return -errno;
	return st.st_size == CAT_SIZE ? 0 : -EIO;
}

static int op_cat(struct bench *b, size_t i)
{
	char buf[2 * CAT_SIZE];
	size_t total = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = openat(b->dirfd, PREFIX "cat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* read to EOF, as cat does: the last read returns 0 */
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		total += (size_t)n;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && total != CAT_SIZE)
		rc = -EIO;
	return rc;
}

static int op_echo(struct bench *b, size_t i)
{
	return put_file(b, PREFIX "echo", O_TRUNC, ECHO_TEXT, sizeof(ECHO_TEXT) - 1);
}

static int op_create_unlink(struct bench *b, size_t i)
{
	char name[64];
	int fd;

	key_name(name, sizeof(name), "new", i);
	fd = openat(b->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (close(fd) < 0)
		return -errno;
	if (unlinkat(b->dirfd, name, 0) < 0)
		return -errno;
	return 0;
}

static int op_create_key(struct bench *b, size_t i)
{
	char name[64];

	key_name(name, sizeof(name), "key", i);
	return put_file(b, name, O_CREAT | O_EXCL, b->value, KEY_SIZE);
}

static int op_rm_key(struct bench *b, size_t i)
{
	char name[64];

	key_name(name, sizeof(name), "key", i);
	return unlinkat(b->dirfd, name, 0) < 0 ? -errno : 0;
}

/* counts the entries, "." and ".." included, into *ret_count */
static int list_dir(struct bench *b, size_t *ret_count)
{
	struct dirent *de;
	size_t count = 0;
	DIR *d;
	int fd, rc = 0;

	fd = openat(b->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	errno = 0;
	while ((de = readdir(d)))
		count++;
	if (errno)
		rc = -errno;
	closedir(d);
	if (rc == 0)
		*ret_count = count;
	return rc;
}

static int op_list(struct bench *b, size_t i)
{
	size_t count = 0;
	int rc;

	rc = list_dir(b, &count);
	if (rc == 0 && count != b->base_entries + b->keys)
		rc = -EIO;
	return rc;
}

typedef int (*op_fn)(struct bench *b, size_t i);

static int fail(const char *op, size_t i, int rc)
{
	fprintf(stderr, "mallafs-bench: %s (iteration %zu): %s\n", op, i, strerror(-rc));
	return rc;
}

/* runs fn for i in [from, to), timing each call into s when s is not NULL */
static int run(struct bench *b, const char *op, op_fn fn, size_t from, size_t to, struct samples *s)
{
	uint64_t start;
	size_t i;
	int rc;

	for (i = from; i < to; i++) {
		start = now_ns();
		rc = fn(b, i);
		if (s)
			samples_add(s, start, now_ns());
		if (rc < 0)
			return fail(op, i, rc);
	}
	return 0;
}

static int bench_one(struct bench *b, const char *op, op_fn fn)
{
	size_t warmup = b->iterations / 10 > 10 ? b->iterations / 10 : 10;
	struct samples s;
	int rc;

	if (samples_init(&s, op, b->iterations) < 0)
		return -ENOMEM;
	/* the warm-up indices stay clear of the timed ones for create_unlink */
	rc = run(b, op, fn, b->iterations, b->iterations + warmup, NULL);
	if (rc == 0)
		rc = run(b, op, fn, 0, b->iterations, &s);
	if (rc == 0)
		samples_report(&s);
	samples_free(&s);
	return rc;
}

/* create N keys, list them, remove them; round 0 is the warm-up */
static int bench_keys(struct bench *b)
{
	struct samples create, list, rm;
	size_t r;
	int rc = -ENOMEM;

	memset(&create, 0, sizeof(create));
	memset(&list, 0, sizeof(list));
	memset(&rm, 0, sizeof(rm));
	if (samples_init(&create, "create", b->keys * b->rounds) < 0 ||
	    samples_init(&list, "list", b->lists * b->rounds) < 0 ||
	    samples_init(&rm, "rm", b->keys * b->rounds) < 0)
		goto out;
	for (r = 0; r <= b->rounds; r++) {
		rc = run(b, "create", op_create_key, 0, b->keys, r ? &create : NULL);
		if (rc == 0)
			rc = run(b, "list", op_list, 0, b->lists, r ? &list : NULL);
		if (rc == 0)
			rc = run(b, "rm", op_rm_key, 0, b->keys, r ? &rm : NULL);
		if (rc < 0)
			goto out;
	}
	samples_report(&create);
	samples_report(&list);
	samples_report(&rm);
out:
	samples_free(&create);
	samples_free(&list);
	samples_free(&rm);
	return rc;
}

/* removes every mb-* file, whatever an interrupted run left behind */
static int clean(struct bench *b, size_t *ret_found)
{
	size_t found = 0;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	fd = openat(b->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) != 0)
			continue;
		found++;
		if (unlinkat(b->dirfd, de->d_name, 0) < 0 && errno != ENOENT && rc == 0)
			rc = -errno;
	}
	closedir(d);
	if (ret_found)
		*ret_found = found;
	return rc;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: mallafs-bench [--iterations N] [--keys N] [--rounds N] [--lists N] "
	             "DIR\n"
	             "  --iterations N  timed stat, cat, echo, create_unlink calls (20000)\n"
	             "  --keys N        files made by each create/list/rm round (1000)\n"
	             "  --rounds N      timed create/list/rm rounds, after one warm-up (3)\n"
	             "  --lists N       listings of the N files per round (100)\n");
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	        {"iterations", required_argument, NULL, 'i'},
	        {"keys", required_argument, NULL, 'k'},
	        {"rounds", required_argument, NULL, 'r'},
	        {"lists", required_argument, NULL, 'l'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct bench b = {
	        .dirfd = -1,
	        .iterations = 20000,
	        .keys = 1000,
	        .rounds = 3,
	        .lists = 100,
	};
	size_t found, i;
	int c, rc;

	while ((c = getopt_long(argc, argv, "i:k:r:l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			rc = parse_size("mallafs-bench", optarg, "--iterations", 1, &b.iterations);
			break;
		case 'k':
			rc = parse_size("mallafs-bench", optarg, "--keys", 1, &b.keys);
			break;
		case 'r':
			rc = parse_size("mallafs-bench", optarg, "--rounds", 1, &b.rounds);
			break;
		case 'l':
			rc = parse_size("mallafs-bench", optarg, "--lists", 1, &b.lists);
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
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	b.dir = argv[optind];
	b.dirfd = open(b.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b.dirfd < 0) {
		fprintf(stderr, "mallafs-bench: %s: %s\n", b.dir, strerror(errno));
		return 1;
	}
	for (i = 0; i < sizeof(b.value); i++)
		b.value[i] = (char)('a' + i % 26);

	rc = clean(&b, &found);
	if (rc < 0) {
		fprintf(stderr, "mallafs-bench: cleaning %s: %s\n", b.dir, strerror(-rc));
		goto out;
	}
	if (found)
		fprintf(stderr, "mallafs-bench: removed %zu " PREFIX "* files left in %s\n", found,
		        b.dir);
	rc = list_dir(&b, &b.base_entries);
	if (rc < 0) {
		fprintf(stderr, "mallafs-bench: listing %s: %s\n", b.dir, strerror(-rc));
		goto out;
	}

	printf("# mallafs-bench dir=%s iterations=%zu keys=%zu rounds=%zu lists=%zu\n", b.dir,
	       b.iterations, b.keys, b.rounds, b.lists);
	fflush(stdout);
	rc = put_file(&b, PREFIX "stat", O_CREAT | O_EXCL, b.value, CAT_SIZE);
	if (rc == 0)
		rc = put_file(&b, PREFIX "cat", O_CREAT | O_EXCL, b.value, CAT_SIZE);
	if (rc == 0)
		rc = put_file(&b, PREFIX "echo", O_CREAT | O_EXCL, ECHO_TEXT,
		              sizeof(ECHO_TEXT) - 1);
	if (rc < 0) {
		fail("setup", 0, rc);
		goto out;
	}
	rc = bench_one(&b, "stat", op_stat);
	if (rc == 0)
		rc = bench_one(&b, "cat", op_cat);
	if (rc == 0)
		rc = bench_one(&b, "echo", op_echo);
	if (rc == 0)
		rc = bench_one(&b, "create_unlink", op_create_unlink);
	if (rc == 0) {
		/* the three setup files are listed too */
		b.base_entries += 3;
		rc = bench_keys(&b);
	}
out:
	if (clean(&b, NULL) < 0 && rc == 0)
		rc = -EIO;
	close(b.dirfd);
	return rc < 0 ? 1 : 0;
}
