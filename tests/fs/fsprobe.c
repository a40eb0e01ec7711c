/* SPDX-License-Identifier: MIT */
/* fsprobe: one precise system call (or a short sequence of them) for the
 * mount tests, where the shell cannot say which call failed or with which
 * errno (a redirection only prints strerror text).
 *
 *     fsprobe errno OP PATH [ARG...]   one operation; prints OK or the errno name
 *         open PATH [FLAGS]            FLAGS: r w rw, plus c (O_CREAT) x (O_EXCL)
 *                                      t (O_TRUNC) a (O_APPEND); default r
 *         creat PATH                   open(O_WRONLY|O_CREAT|O_TRUNC)
 *         write PATH DATA              open(O_WRONLY|O_CREAT|O_TRUNC), one write()
 *         read PATH                    open(O_RDONLY), read() to EOF
 *         pread PATH OFF LEN           one pread() of LEN bytes at OFF
 *         pwrite PATH DATA OFF         open(O_WRONLY), one pwrite() at OFF
 *         lseek PATH OFF               open(O_RDONLY), lseek() to OFF (SEEK_SET)
 *         mkdir PATH | rmdir PATH | unlink PATH | stat PATH
 *         rename PATH NEWPATH | truncate PATH SIZE
 *         mknod PATH reg|fifo          mknod() of a regular file or a FIFO
 *         symlink TARGET PATH | link PATH NEWPATH
 *     fsprobe write PATH DATA          one write() of DATA on an fd opened as the
 *                                      shell's `>` does (O_WRONLY|O_CREAT|O_TRUNC);
 *                                      prints OK or the write's errno name, or
 *                                      open:ENAME when open() already failed
 *     fsprobe rw-loop PATH N [SEED]    N rounds of writes of random sizes, each
 *                                      followed by reads that must see exactly
 *                                      the last write; exit 1 on a stale read
 *     fsprobe snapshot PATH CHUNK [WPATH DATA]
 *                                      reads one open file CHUNK bytes at a time
 *                                      and prints what it read; with WPATH, writes
 *                                      DATA to WPATH after the first chunk
 *     fsprobe stat-size PATH           prints st_size
 *     fsprobe strerror ENAME           prints strerror() of an errno name
 *
 * Exit status: 0 when the probe ran (whatever errno it printed), 1 on a
 * failed check (rw-loop, snapshot, stat-size), 2 on a usage error. */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define PROBE_MAX_VALUE (256 * 1024)

static const char *errno_name(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "EUNKNOWN";
}

static int errno_from_name(const char *name)
{
	for (int err = 1; err < 512; err++) {
		const char *n = strerrorname_np(err);

		if (n && strcmp(n, name) == 0)
			return err;
	}
	return -1;
}

static int usage(void)
{
	fprintf(stderr, "usage: fsprobe errno OP PATH [ARG...] | write PATH DATA |\n"
	                "       rw-loop PATH N [SEED] | snapshot PATH CHUNK [WPATH DATA] |\n"
	                "       stat-size PATH | strerror ENAME\n");
	return 2;
}

static bool parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		return false;
	*ret = v;
	return true;
}

static int parse_flags(const char *s)
{
	int acc = O_RDONLY, extra = 0;

	if (strncmp(s, "rw", 2) == 0) {
		acc = O_RDWR;
		s += 2;
	} else if (*s == 'r') {
		s++;
	} else if (*s == 'w') {
		acc = O_WRONLY;
		s++;
	}
	for (; *s; s++) {
		switch (*s) {
		case 'c':
			extra |= O_CREAT;
			break;
		case 'x':
			extra |= O_EXCL;
			break;
		case 't':
			extra |= O_TRUNC;
			break;
		case 'a':
			extra |= O_APPEND;
			break;
		default:
			return -1;
		}
	}
	return acc | extra;
}

/* Writes all of buf (retrying short writes). 0 or -errno. */
static int write_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Reads fd from offset 0 to EOF into buf (at most cap bytes). Length or -errno. */
static ssize_t read_whole(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = pread(fd, buf + got, cap - got, (off_t)got);

		if (n < 0)
			return -errno;
		if (n == 0)
			return (ssize_t)got;
		got += (size_t)n;
		if (got == cap) {
			char c;

			/* Anything past cap means the file is longer than ever written. */
			n = pread(fd, &c, 1, (off_t)got);
			return n == 0 ? (ssize_t)got : -EOVERFLOW;
		}
	}
}

/* One operation of `fsprobe errno`: 0 or -errno. */
static int probe_op(const char *op, int argc, char **argv)
{
	const char *path = argv[0];
	uint64_t a, b;
	int fd, rc = 0;

	if (strcmp(op, "open") == 0) {
		int flags = parse_flags(argc > 1 ? argv[1] : "r");

		if (flags < 0)
			return -EINVAL;
		fd = open(path, flags, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	}
	if (strcmp(op, "creat") == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	}
	if (strcmp(op, "write") == 0 || strcmp(op, "pwrite") == 0) {
		bool positioned = op[0] == 'p';
		const char *data;

		if (argc < 2 || (positioned && (argc < 3 || !parse_u64(argv[2], &a))))
			return -EINVAL;
		data = argv[1];
		fd = open(path, positioned ? O_WRONLY : O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return -errno;
		if (positioned) {
			if (pwrite(fd, data, strlen(data), (off_t)a) < 0)
				rc = -errno;
		} else if (write(fd, data, strlen(data)) < 0) {
			rc = -errno;
		}
		if (close(fd) < 0 && rc == 0)
			rc = -errno;
		return rc;
	}
	if (strcmp(op, "read") == 0 || strcmp(op, "pread") == 0) {
		char buf[65536];
		ssize_t n;

		if (op[0] == 'p' &&
		    (argc < 3 || !parse_u64(argv[1], &a) || !parse_u64(argv[2], &b)))
			return -EINVAL;
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return -errno;
		if (op[0] == 'p') {
			if (pread(fd, buf, b < sizeof(buf) ? b : sizeof(buf), (off_t)a) < 0)
				rc = -errno;
		} else {
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				;
			if (n < 0)
				rc = -errno;
		}
		close(fd);
		return rc;
	}
	if (strcmp(op, "lseek") == 0) {
		if (argc < 2 || !parse_u64(argv[1], &a))
			return -EINVAL;
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return -errno;
		if (lseek(fd, (off_t)a, SEEK_SET) < 0)
			rc = -errno;
		close(fd);
		return rc;
	}
	if (strcmp(op, "mkdir") == 0)
		return mkdir(path, 0755) < 0 ? -errno : 0;
	if (strcmp(op, "rmdir") == 0)
		return rmdir(path) < 0 ? -errno : 0;
	if (strcmp(op, "unlink") == 0)
		return unlink(path) < 0 ? -errno : 0;
	if (strcmp(op, "stat") == 0) {
		struct stat st;

		return stat(path, &st) < 0 ? -errno : 0;
	}
	if (strcmp(op, "rename") == 0) {
		if (argc < 2)
			return -EINVAL;
		return rename(path, argv[1]) < 0 ? -errno : 0;
	}
	if (strcmp(op, "mknod") == 0) {
		if (argc < 2 || (strcmp(argv[1], "reg") != 0 && strcmp(argv[1], "fifo") != 0))
			return -EINVAL;
		mode_t type = strcmp(argv[1], "reg") == 0 ? S_IFREG : S_IFIFO;
		return mknod(path, type | 0644, 0) < 0 ? -errno : 0;
	}
	if (strcmp(op, "symlink") == 0) {
		if (argc < 2)
			return -EINVAL;
		return symlink(path, argv[1]) < 0 ? -errno : 0;
	}
	if (strcmp(op, "link") == 0) {
		if (argc < 2)
			return -EINVAL;
		return link(path, argv[1]) < 0 ? -errno : 0;
	}
	if (strcmp(op, "truncate") == 0) {
		if (argc < 2 || !parse_u64(argv[1], &a))
			return -EINVAL;
		return truncate(path, (off_t)a) < 0 ? -errno : 0;
	}
	fprintf(stderr, "fsprobe: unknown operation %s\n", op);
	exit(2);
}

static int cmd_errno(int argc, char **argv)
{
	int rc;

	if (argc < 2)
		return usage();
	rc = probe_op(argv[0], argc - 1, argv + 1);
	puts(rc == 0 ? "OK" : errno_name(-rc));
	return 0;
}

static int cmd_write(int argc, char **argv)
{
	int fd;

	if (argc != 2)
		return usage();
	fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		printf("open:%s\n", errno_name(errno));
		return 0;
	}
	/* A document's last line without a newline is applied at close(),
	 * which then has its error. */
	if (write(fd, argv[1], strlen(argv[1])) < 0) {
		puts(errno_name(errno));
		close(fd);
	} else if (close(fd) < 0) {
		puts(errno_name(errno));
	} else {
		puts("OK");
	}
	return 0;
}

/* xorshift64*: reproducible from the seed that a failure prints. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static size_t random_size(uint64_t *s)
{
	/* Mostly small values, sometimes empty, sometimes past one page or one
	 * FUSE request, so that shrinking and growing both happen often. */
	switch (rng_next(s) % 8) {
	case 0:
		return 0;
	case 1:
		return 1 + rng_next(s) % 16;
	case 2:
		return 4090 + rng_next(s) % 12;
	case 3:
		return 128 * 1024 + rng_next(s) % (PROBE_MAX_VALUE - 128 * 1024);
	default:
		return rng_next(s) % 8192;
	}
}

static bool check_read(const char *what, long round, const char *want, size_t want_len,
                       const char *got, ssize_t got_len)
{
	if (got_len < 0) {
		fprintf(stderr, "round %ld: %s: %s\n", round, what, strerror((int)-got_len));
		return false;
	}
	if ((size_t)got_len != want_len) {
		fprintf(stderr, "round %ld: %s: stale read: %zd bytes, last write left %zu\n",
		        round, what, got_len, want_len);
		return false;
	}
	if (memcmp(want, got, want_len) != 0) {
		size_t i = 0;

		while (want[i] == got[i])
			i++;
		fprintf(stderr, "round %ld: %s: stale read: byte %zu of %zu differs\n", round, what,
		        i, want_len);
		return false;
	}
	return true;
}

/* Each round writes a new value of a random size, in one of the ways a
 * program does (pwrite + ftruncate on a long-lived fd, or open with O_TRUNC
 * and write as `echo >` does), then reads it back through the writer's fd,
 * a long-lived reader fd, a fresh fd and fstat: each must see exactly the
 * last write. */
static int cmd_rw_loop(int argc, char **argv)
{
	const char *path;
	uint64_t rounds, seed = 0x6d616c6c61ULL;
	char *want = NULL, *got = NULL;
	int wfd = -1, rfd = -1, ret = 1;

	if (argc < 2 || !parse_u64(argv[1], &rounds) || (argc > 2 && !parse_u64(argv[2], &seed)))
		return usage();
	if (seed == 0)
		seed = 1;
	path = argv[0];
	want = malloc(PROBE_MAX_VALUE);
	got = malloc(PROBE_MAX_VALUE);
	if (!want || !got) {
		perror("malloc");
		goto out;
	}
	wfd = open(path, O_RDWR | O_CREAT, 0644);
	if (wfd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		goto out;
	}
	rfd = open(path, O_RDONLY);
	if (rfd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		goto out;
	}
	for (uint64_t r = 0; r < rounds; r++) {
		size_t len = random_size(&seed);
		long round = (long)r;
		struct stat st;
		ssize_t n;
		int fd, rc;

		for (size_t i = 0; i < len; i++)
			want[i] = (char)(rng_next(&seed) >> 56);
		if (r % 2 == 0) {
			rc = write_all(wfd, want, len, 0);
			if (rc == 0 && ftruncate(wfd, (off_t)len) < 0)
				rc = -errno;
		} else {
			fd = open(path, O_WRONLY | O_TRUNC);
			rc = fd < 0 ? -errno : write_all(fd, want, len, 0);
			if (fd >= 0 && close(fd) < 0 && rc == 0)
				rc = -errno;
		}
		if (rc < 0) {
			fprintf(stderr, "round %ld: write: %s\n", round, strerror(-rc));
			goto out;
		}
		if (fstat(rfd, &st) < 0 || (size_t)st.st_size != len) {
			fprintf(stderr, "round %ld: stale st_size %lld, last write left %zu\n",
			        round, (long long)st.st_size, len);
			goto out;
		}
		n = read_whole(wfd, got, PROBE_MAX_VALUE);
		if (!check_read("writer fd", round, want, len, got, n))
			goto out;
		n = read_whole(rfd, got, PROBE_MAX_VALUE);
		if (!check_read("reader fd", round, want, len, got, n))
			goto out;
		fd = open(path, O_RDONLY);
		if (fd < 0) {
			fprintf(stderr, "round %ld: open: %s\n", round, strerror(errno));
			goto out;
		}
		n = read_whole(fd, got, PROBE_MAX_VALUE);
		close(fd);
		if (!check_read("fresh fd", round, want, len, got, n))
			goto out;
	}
	printf("OK %llu rounds\n", (unsigned long long)rounds);
	ret = 0;
out:
	if (rfd >= 0)
		close(rfd);
	if (wfd >= 0)
		close(wfd);
	free(want);
	free(got);
	return ret;
}

static int cmd_snapshot(int argc, char **argv)
{
	uint64_t chunk;
	char buf[4096];
	bool wrote = false;
	int fd;

	if ((argc != 2 && argc != 4) || !parse_u64(argv[1], &chunk) || chunk == 0 ||
	    chunk > sizeof(buf))
		return usage();
	fd = open(argv[0], O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, chunk);

		if (n < 0) {
			fprintf(stderr, "read %s: %s\n", argv[0], strerror(errno));
			close(fd);
			return 1;
		}
		if (n == 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		if (argc == 4 && !wrote) {
			int wfd = open(argv[2], O_WRONLY);

			if (wfd < 0 || write(wfd, argv[3], strlen(argv[3])) < 0) {
				fprintf(stderr, "write %s: %s\n", argv[2], strerror(errno));
				if (wfd >= 0)
					close(wfd);
				close(fd);
				return 1;
			}
			close(wfd);
			wrote = true;
		}
	}
	close(fd);
	return 0;
}

static int cmd_stat_size(int argc, char **argv)
{
	struct stat st;

	if (argc != 1)
		return usage();
	if (stat(argv[0], &st) < 0) {
		fprintf(stderr, "stat %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	printf("%lld\n", (long long)st.st_size);
	return 0;
}

static int cmd_strerror(int argc, char **argv)
{
	int err;

	if (argc != 1)
		return usage();
	err = errno_from_name(argv[0]);
	if (err < 0) {
		fprintf(stderr, "fsprobe: unknown errno name %s\n", argv[0]);
		return 2;
	}
	puts(strerror(err));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
	        {"errno", cmd_errno},         {"write", cmd_write},
	        {"rw-loop", cmd_rw_loop},     {"snapshot", cmd_snapshot},
	        {"stat-size", cmd_stat_size}, {"strerror", cmd_strerror},
	};

	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0) {
			int ret = cmds[i].fn(argc - 2, argv + 2);

			fflush(stdout);
			return ferror(stdout) ? 1 : ret;
		}
	}
	return usage();
}
