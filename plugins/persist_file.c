/* SPDX-License-Identifier: MIT */
/* persist's files on disk, as far as persist itself opens them (SQLite
 * opens the database, its -wal and -shm through msql, which follows no
 * symbolic link either): checked, read, renamed without following a
 * symbolic link anywhere on their path, with whatever filesystem identity
 * the calling thread has (persist_owner.c gives it the service owner's).
 *
 * The folder is opened once per operation, through no symbolic link
 * (openat2 with RESOLVE_NO_SYMLINKS, or a walk with O_NOFOLLOW where openat2
 * is missing), and everything after is relative to that descriptor: the
 * names cannot be swapped for links in between. A symbolic link at the
 * file's own name is refused (O_NOFOLLOW); a rename replaces a link, it
 * never writes through one. A converted database is built under a random
 * name, which msql creates following no link. */
#include "persist_i.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int walk_dir(const char *dir, int *ret_fd)
{
	char *copy = strdup(dir), *save = NULL;
	if (!copy)
		return -ENOMEM;
	int r = 0, fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		r = -errno;
	for (char *c = strtok_r(copy, "/", &save); r == 0 && c; c = strtok_r(NULL, "/", &save)) {
		/* O_PATH needs search permission on the folder above only, as a
		 * path lookup does; O_NOFOLLOW opens a link itself, told apart
		 * by its type. */
		struct stat st;
		int nfd = openat(fd, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			r = -errno;
		else if (fstat(nfd, &st) < 0)
			r = -errno;
		else if (S_ISLNK(st.st_mode))
			r = -ELOOP;
		else if (!S_ISDIR(st.st_mode))
			r = -ENOTDIR;
		close(fd);
		fd = nfd;
	}
	free(copy);
	if (r == 0) {
		int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = dfd < 0 ? -errno : 0;
		*ret_fd = dfd;
	}
	if (fd >= 0)
		close(fd);
	return r;
}

int persist_open_dir(const char *path, bool walk, int *ret_fd, const char **ret_name,
                     struct mallafs_reason *why)
{
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1]) {
		mallafs_reason_set(why, "'%s' does not name a file in a folder", path);
		return -EINVAL;
	}
	char *dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	int r = -ENOSYS, fd = -1;
	if (!walk) {
		struct open_how how = {
		        .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		        .resolve = RESOLVE_NO_SYMLINKS,
		};
		fd = (int)syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof(how));
		r = fd < 0 ? -errno : 0;
	}
	if (r == -ENOSYS)
		r = walk_dir(dir, &fd);
	if (r == -ELOOP)
		mallafs_reason_set(
		        why, "a folder on the way to %s is a symbolic link (persist follows none)",
		        dir);
	else if (r < 0)
		mallafs_reason_set(why, "cannot open the folder %s: %s", dir, strerror(-r));
	free(dir);
	if (r < 0)
		return r;
	*ret_fd = fd;
	*ret_name = slash + 1;
	return 0;
}

int persist_open_file(const char *path, uint64_t max, int *ret_fd, struct stat *st,
                      struct mallafs_reason *why)
{
	const char *name;
	int dfd, fd, r = persist_open_dir(path, false, &dfd, &name, why);
	if (r < 0)
		return r;
	/* O_NONBLOCK: a FIFO put there would block the open until a writer
	 * comes, and with it the service's start. */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	close(dfd);
	if (r == -ENOENT)
		return r;
	if (r == -ELOOP) {
		mallafs_reason_set(why, "it is a symbolic link (persist follows none)");
		return r;
	}
	if (r < 0) {
		mallafs_reason_set(why, "cannot open it: %s", strerror(-r));
		return r;
	}
	if (fstat(fd, st) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot stat it: %s", strerror(-r));
	} else if (S_ISDIR(st->st_mode)) {
		r = -EISDIR;
		mallafs_reason_set(why, "it is a directory");
	} else if (!S_ISREG(st->st_mode)) {
		r = -EINVAL;
		mallafs_reason_set(why, "not a regular file");
	} else if (st->st_uid != persist_fsuid() && st->st_uid != 0) {
		/* Another user's file would let that user fill the store. */
		r = -EPERM;
		mallafs_reason_set(
		        why, "it belongs to uid %u, not to the service's owner (uid %u) or root",
		        (unsigned)st->st_uid, (unsigned)persist_fsuid());
	} else if ((uint64_t)st->st_size > max) {
		r = -EFBIG;
		mallafs_reason_set(why, "it is %" PRIu64 " bytes, over persist's limit of %" PRIu64,
		                   (uint64_t)st->st_size, max);
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int persist_read_fd(int fd, const struct stat *st, char **ret, size_t *ret_len,
                    struct mallafs_reason *why)
{
	size_t len = 0, cap = (size_t)st->st_size + 1;
	char *data = malloc(cap);
	int r = 0;
	if (!data) {
		mallafs_reason_set(why, "out of memory for %zu bytes", cap);
		return -ENOMEM;
	}
	/* The size is a hint: read to the end, whatever it is, within bounds. */
	for (;;) {
		if (len == cap) {
			if (cap > PERSIST_FILE_MAX) {
				r = -EFBIG;
				mallafs_reason_set(why,
				                   "it grew past persist's limit of %llu bytes",
				                   PERSIST_FILE_MAX);
				break;
			}
			size_t ncap =
			        cap * 2 > PERSIST_FILE_MAX + 1 ? PERSIST_FILE_MAX + 1 : cap * 2;
			char *p = realloc(data, ncap);
			if (!p) {
				r = -ENOMEM;
				mallafs_reason_set(why, "out of memory");
				break;
			}
			data = p;
			cap = ncap;
		}
		ssize_t n = read(fd, data + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			mallafs_reason_set(why, "cannot read it: %s", strerror(-r));
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (r < 0) {
		free(data);
		return r;
	}
	*ret = data;
	*ret_len = len;
	return 0;
}

static uint64_t random64(void)
{
	uint64_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	/* No entropy yet (early boot): O_EXCL keeps a guessed name harmless,
	 * this only makes a collision unlikely. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
	       (uint64_t)syscall(SYS_gettid);
}

int persist_tmp_name(const char *path, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s.tmp.%016" PRIx64, path, random64());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int persist_swap_in(const char *path, const char *tmp, const char *keep, struct mallafs_reason *why)
{
	const char *name, *tname = strrchr(tmp, '/') + 1, *kname = strrchr(keep, '/') + 1;
	char wal[NAME_MAX + 1];
	struct stat st;
	int dfd, r = persist_open_dir(path, false, &dfd, &name, why);
	if (r < 0)
		return r;
	/* SQLite would take a write-ahead log left at the name for the new
	 * database's and replay it into it. */
	snprintf(wal, sizeof(wal), "%s-wal", name);
	if (fstatat(dfd, wal, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		r = -EEXIST;
		mallafs_reason_set(why, "%s exists (the log of another database): move it away",
		                   wal);
	} else if (renameat(dfd, name, dfd, kname) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot rename %s to %s: %s", name, kname, strerror(-r));
	} else if (renameat(dfd, tname, dfd, name) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot rename %s to %s: %s", tname, name, strerror(-r));
		/* Put the old file back where it was. */
		renameat(dfd, kname, dfd, name);
	} else if (fsync(dfd) < 0) {
		/* The renames are durable only once the folder is. */
		r = -errno;
		mallafs_reason_set(why, "cannot fsync the folder of %s: %s", path, strerror(-r));
	}
	close(dfd);
	return r;
}

int persist_unlink(const char *path)
{
	const char *name;
	struct mallafs_reason why;
	int dfd, r = persist_open_dir(path, false, &dfd, &name, &why);
	if (r < 0)
		return r;
	r = unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	close(dfd);
	return r;
}
