/* SPDX-License-Identifier: MIT */
/* clviewmount: the filesystem of mallafs in cluster mode with the cluster
 * engine replaced by a test's commands, for test_clview.sh. It mounts what
 * mallafs mounts (the same fs layer, runtime and options the daemon gives
 * the session: default_permissions, allow_other) with the runtime's
 * cluster view on, and applies to that view the lines a test writes to a
 * FIFO, as the engine applies what etcd says:
 *
 *     status TEXT                          mclview_set_status
 *     node NODE | rmnode NODE              mclview_node_put, mclview_node_remove
 *     svc NODE SVC UID GID MODE TEXT       mclview_service_put (MODE in octal)
 *     rmsvc NODE SVC                       mclview_service_remove
 *
 * TEXT is the rest of the line, with \n for a newline and \\ for a
 * backslash. After each line it appends "N R\n" to the answer file (N: the
 * line's number from 1, R: what the call returned), so the test knows it was
 * applied.
 *
 *     clviewmount -f --feed FIFO --answers FILE MOUNTPOINT
 *
 * As mallafs does, it prints "mounted on MOUNTPOINT" once mounted and
 * unmounts on SIGINT and SIGTERM (or fusermount3 -u), exiting 0. This is a
 * test program: the daemon has no such way in. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "builtin.h"
#include "clview.h"
#include "fs.h"
#include "runtime.h"
#include "util.h"

struct feeder {
	struct mclview *v;
	int fd;
	FILE *answers;
	atomic_bool stop;
};

/* \n and \\ in place. */
static size_t unescape(char *s)
{
	size_t o = 0;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1] == 'n') {
			s[o++] = '\n';
			i++;
		} else if (s[i] == '\\' && s[i + 1] == '\\') {
			s[o++] = '\\';
			i++;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

/* The next space-separated word of *s (NULL at the end). */
static char *word(char **s)
{
	char *w = *s;
	if (!w || !*w)
		return NULL;
	char *sp = strchr(w, ' ');
	if (sp) {
		*sp = '\0';
		*s = sp + 1;
	} else {
		*s = w + strlen(w);
	}
	return w;
}

static int apply(struct mclview *v, char *line)
{
	char *rest = line;
	char *cmd = word(&rest);
	if (!cmd)
		return -EINVAL;
	if (strcmp(cmd, "status") == 0) {
		size_t len = unescape(rest);
		return mclview_set_status(v, rest, len);
	}
	char *node = word(&rest);
	if (strcmp(cmd, "node") == 0)
		return mclview_node_put(v, node);
	if (strcmp(cmd, "rmnode") == 0)
		return mclview_node_remove(v, node);
	char *svc = word(&rest);
	if (strcmp(cmd, "rmsvc") == 0)
		return mclview_service_remove(v, node, svc);
	if (strcmp(cmd, "svc") == 0) {
		char *uid = word(&rest), *gid = word(&rest), *mode = word(&rest);
		if (!uid || !gid || !mode)
			return -EINVAL;
		size_t len = unescape(rest);
		return mclview_service_put(v, node, svc, rest, len, (uid_t)strtoul(uid, NULL, 10),
		                           (gid_t)strtoul(gid, NULL, 10),
		                           (mode_t)strtoul(mode, NULL, 8));
	}
	return -EINVAL;
}

static void *feed(void *arg)
{
	struct feeder *f = arg;
	char buf[1 << 17];
	size_t have = 0;
	unsigned long n = 0;
	while (!atomic_load(&f->stop)) {
		struct pollfd p = {.fd = f->fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = read(f->fd, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0)
			continue;
		have += (size_t)r;
		char *nl;
		while ((nl = memchr(buf, '\n', have))) {
			*nl = '\0';
			int rc = apply(f->v, buf);
			fprintf(f->answers, "%lu %d\n", ++n, rc);
			fflush(f->answers);
			size_t used = (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have - used);
			have -= used;
		}
		if (have == sizeof(buf) - 1)
			have = 0; /* a line too long for a test: dropped */
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *fifo = NULL, *answers = NULL, *mnt = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0)
			continue;
		if (strcmp(argv[i], "--feed") == 0 && i + 1 < argc)
			fifo = argv[++i];
		else if (strcmp(argv[i], "--answers") == 0 && i + 1 < argc)
			answers = argv[++i];
		else
			mnt = argv[i];
	}
	if (!fifo || !answers || !mnt) {
		fprintf(stderr, "usage: clviewmount -f --feed FIFO --answers FILE MOUNTPOINT\n");
		return 2;
	}
	struct feeder f = {.fd = open(fifo, O_RDWR | O_CLOEXEC), .answers = fopen(answers, "a")};
	if (f.fd < 0 || !f.answers) {
		perror("clviewmount: the feed or the answers");
		return 1;
	}
	struct mrt_options ro = {.builtins = mallafs_builtin_plugins, .mountpoint = mnt};
	struct mrt *rt = mrt_new(&ro);
	if (!rt || mrt_cluster_enable(rt) < 0) {
		fprintf(stderr, "clviewmount: no runtime or view\n");
		return 1;
	}
	f.v = mrt_clview(rt);
	struct mfs *fs = mfs_new(rt);
	char *args_v[] = {argv[0], "-ofsname=mallafs,subtype=mallafs", "-odefault_permissions",
	                  "-oallow_other", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(4, args_v);
	struct fuse_session *se = fs ? fuse_session_new(&args, mfs_lowlevel_ops(),
	                                                sizeof(struct fuse_lowlevel_ops), fs)
	                             : NULL;
	if (!se || fuse_set_signal_handlers(se) < 0 || fuse_session_mount(se, mnt) < 0) {
		fprintf(stderr, "clviewmount: cannot mount %s\n", mnt);
		return 1;
	}
	int r = mfs_start(fs, se, mnt);
	pthread_t th;
	if (r < 0 || pthread_create(&th, NULL, feed, &f) != 0) {
		fprintf(stderr, "clviewmount: cannot start: %s\n", strerror(r < 0 ? -r : EAGAIN));
		return 1;
	}
	fprintf(stderr, "mounted on %s\n", mnt);

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, 8);
	r = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);

	atomic_store(&f.stop, true);
	pthread_join(th, NULL);
	mfs_stop(fs);
	fuse_session_unmount(se);
	mfs_unmounted(fs);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	mrt_stop_all(rt);
	mfs_free(fs);
	mrt_free(rt);
	close(f.fd);
	fclose(f.answers);
	return r < 0 ? 1 : 0;
}
