/* SPDX-License-Identifier: MIT */
/* What is at the mountpoint, checked before mounting (README "Errors"):
 *
 * - not a directory (a regular file would be mounted over, then every access
 *   gives EIO), missing, unreachable: refused;
 * - a live mallafs mount: refused (a second daemon would stack a second tree
 *   over the first, hiding it). A live mount of anything else (tmpfs, another
 *   FUSE filesystem) is mounted over, as mount(8) does;
 * - a mallafs mount whose daemon is gone (its requests fail with ENOTCONN,
 *   "Transport endpoint is not connected"): unmounted lazily and replaced,
 *   with a log line, so that a service manager can start mallafs again after
 *   a crash. A stale mount of another FUSE filesystem is refused: it is not
 *   ours to remove;
 * - a mallafs mount that does not answer (a daemon that hangs, or is
 *   stopped): refused.
 *
 * Nothing here may block on a FUSE mount, ours or another's: a request to a
 * daemon that hangs waits for as long as it hangs. So the type of what is
 * mounted there comes from /proc/self/mountinfo, which asks nothing of the
 * mount, and everything that touches the path (resolving it, statfs, stat)
 * runs in a child process that is killed when it does not report within
 * PROBE_MS. statfs decides between live and stale: the kernel answers stat
 * of a mount's root from its attribute cache even when the daemon is gone,
 * while statfs always asks the daemon. */
#include "mountpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define PROBE_MS 5000
/* Stale mounts stacked on one another: each is removed in turn. */
#define MAX_STALE 8

struct probe {
	int resolve_err; /* the path could not be made absolute */
	int statfs_err;
	int stat_err;
	mode_t mode;
	char path[PATH_MAX];
};

/* The absolute path of GIVEN without looking inside its last component
 * (which may be a mount that does not answer): its folder resolved, then
 * the name. A last component that is a symbolic link is followed. */
static int resolve(const char *given, char *out)
{
	char buf[PATH_MAX], dir[PATH_MAX];
	size_t n = strlen(given);
	if (n == 0)
		return ENOENT;
	if (n >= sizeof(buf))
		return ENAMETOOLONG;
	memcpy(buf, given, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	char *slash = strrchr(buf, '/');
	const char *base = slash ? slash + 1 : buf;
	if (strcmp(buf, "/") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return realpath(buf, out) ? 0 : errno;
	if (slash)
		*slash = '\0';
	if (!realpath(slash ? (buf[0] ? buf : "/") : ".", dir))
		return errno;
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, base) >=
	    PATH_MAX)
		return ENAMETOOLONG;
	struct stat st;
	if (lstat(out, &st) == 0 && S_ISLNK(st.st_mode))
		return realpath(out, dir) ? (strcpy(out, dir), 0) : errno;
	return 0;
}

static void probe_child(const char *given, int fd)
{
	struct probe p = {0};
	struct statfs sfs;
	struct stat st;
	p.resolve_err = resolve(given, p.path);
	if (!p.resolve_err) {
		p.statfs_err = statfs(p.path, &sfs) < 0 ? errno : 0;
		p.stat_err = stat(p.path, &st) < 0 ? errno : 0;
		p.mode = p.stat_err ? 0 : st.st_mode;
	}
	const char *b = (const char *)&p;
	size_t left = sizeof(p);
	while (left) {
		ssize_t w = write(fd, b, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		b += w;
		left -= (size_t)w;
	}
	_exit(0);
}

/* 0 with *p filled, -ETIMEDOUT when the child did not report in time (it
 * is killed), or -errno. */
static int probe(const char *given, struct probe *p)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		return -e;
	}
	if (pid == 0) {
		close(fds[0]);
		probe_child(given, fds[1]);
	}
	close(fds[1]);
	char *b = (char *)p;
	size_t got = 0;
	int r = 0;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (got < sizeof(*p)) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = PROBE_MS - ((now.tv_sec - start.tv_sec) * 1000 +
		                      (now.tv_nsec - start.tv_nsec) / 1000000);
		struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
		int n = ms > 0 ? poll(&pfd, 1, (int)ms) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -ETIMEDOUT;
			break;
		}
		ssize_t rd = read(fds[0], b + got, sizeof(*p) - got);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd <= 0) {
			r = rd < 0 ? -errno : -EPIPE;
			break;
		}
		got += (size_t)rd;
	}
	close(fds[0]);
	if (r == -ETIMEDOUT) {
		/* Blocked on a mount: a FUSE request waits killably. Reaped if it
		 * dies at once; if not, it is left to init when we exit. */
		kill(pid, SIGKILL);
		for (int i = 0; i < 50 && waitpid(pid, NULL, WNOHANG) == 0; i++)
			usleep(10000);
		return r;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return r;
}

/* /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* The type ("fuse.mallafs", "tmpfs"...) of the topmost mount at PATH: 1
 * when something is mounted there, 0 when not, -errno. */
static int mounted_at(const char *path, char *type, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int found = 0;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE ... */
		char *save = NULL, *mnt, *t;
		if (!strtok_r(line, " ", &save) || !strtok_r(NULL, " ", &save) ||
		    !strtok_r(NULL, " ", &save) || !strtok_r(NULL, " ", &save) ||
		    !(mnt = strtok_r(NULL, " ", &save)))
			continue;
		unescape(mnt);
		if (strcmp(mnt, path) != 0)
			continue;
		while ((t = strtok_r(NULL, " ", &save)) && strcmp(t, "-") != 0)
			;
		if (!t || !(t = strtok_r(NULL, " ", &save)))
			continue;
		/* The last one listed is the one on top. */
		found = 1;
		snprintf(type, len, "%s", t);
	}
	free(line);
	fclose(f);
	return found;
}

/* Unmounts the stale mount at PATH lazily: umount2(MNT_DETACH) as root,
 * fusermount3 -u -z (set-user-ID, for the mount's owner) otherwise. */
static int detach(const char *path)
{
	if (geteuid() == 0)
		return umount2(path, MNT_DETACH) < 0 ? -errno : 0;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", path, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

int mmnt_check(const char *prog, const char *given, char **ret)
{
	struct probe *p = malloc(sizeof(*p));
	char type[64];
	int r = -1;
	if (!p) {
		fprintf(stderr, "%s: %s: %s\n", prog, given, strerror(ENOMEM));
		return -1;
	}
	/* mount.fuse3's drop_privileges hands over a mounted /dev/fuse. */
	if (strncmp(given, "/dev/fd/", 8) == 0) {
		fprintf(stderr,
		        "%s: mountpoint %s: a FUSE file descriptor (mount.fuse3's drop_privileges) "
		        "is not supported: mallafs needs the path of its mount\n",
		        prog, given);
		goto out;
	}
	for (int round = 0;; round++) {
		int e = probe(given, p);
		if (e < 0 && e != -ETIMEDOUT) {
			fprintf(stderr, "%s: mountpoint %s: cannot check it: %s\n", prog, given,
			        strerror(-e));
			goto out;
		}
		if (e == -ETIMEDOUT) {
			fprintf(stderr,
			        "%s: mountpoint %s does not answer within %d s (a FUSE daemon that "
			        "hangs, or is stopped?): unmount it first (umount -l %s)\n",
			        prog, given, PROBE_MS / 1000, given);
			goto out;
		}
		if (p->resolve_err) {
			fprintf(stderr, "%s: mountpoint %s: %s\n", prog, given,
			        strerror(p->resolve_err));
			goto out;
		}
		int m = mounted_at(p->path, type, sizeof(type));
		if (m < 0) {
			fprintf(stderr, "%s: cannot read /proc/self/mountinfo: %s\n", prog,
			        strerror(-m));
			goto out;
		}
		int dead = p->statfs_err == ENOTCONN || p->statfs_err == ECONNABORTED;
		if (m && strcmp(type, "fuse.mallafs") == 0) {
			if (!dead) {
				fprintf(stderr,
				        "%s: mountpoint %s is already a live mallafs mount: "
				        "unmount it first (fusermount3 -u %s)\n",
				        prog, p->path, p->path);
				goto out;
			}
			if (round >= MAX_STALE) {
				fprintf(stderr, "%s: mountpoint %s: stale mallafs mounts remain\n",
				        prog, p->path);
				goto out;
			}
			e = detach(p->path);
			if (e < 0) {
				fprintf(stderr,
				        "%s: mountpoint %s is a stale mallafs mount (%s) and "
				        "cannot "
				        "be unmounted: %s\n",
				        prog, p->path, strerror(p->statfs_err), strerror(-e));
				goto out;
			}
			mu_log(MU_LOG_WARNING,
			       "mountpoint %s was a stale mallafs mount (its daemon is gone: %s): "
			       "unmounted it lazily, mounting again",
			       p->path, strerror(p->statfs_err));
			continue;
		}
		if (dead) {
			fprintf(stderr,
			        "%s: mountpoint %s: %s (a stale mount%s%s, not mallafs's: unmount "
			        "it first, fusermount3 -u -z %s)\n",
			        prog, p->path, strerror(p->statfs_err), m ? " of type " : "",
			        m ? type : "", p->path);
			goto out;
		}
		if (p->stat_err) {
			fprintf(stderr, "%s: mountpoint %s: %s\n", prog, given,
			        strerror(p->stat_err));
			goto out;
		}
		if (!S_ISDIR(p->mode)) {
			fprintf(stderr, "%s: mountpoint %s is not a directory\n", prog, given);
			goto out;
		}
		*ret = strdup(p->path);
		if (!*ret) {
			fprintf(stderr, "%s: %s: %s\n", prog, given, strerror(ENOMEM));
			goto out;
		}
		r = 0;
		break;
	}
out:
	free(p);
	return r;
}
