/* SPDX-License-Identifier: MIT */
/* mallafs: mounts a service runtime as a tree of files (SPEC.md "The command").
 *
 * The order matters: everything the bootstrap file asks for is created
 * before anything is mounted, so a bad file mounts nothing; the background
 * fork comes before the runtime exists, so no thread of it is lost. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <fuse_opt.h>

#include "bootstrap.h"
#include "builtin.h"
#include "cmdline.h"
#include "fs.h"
#include "mountpoint.h"
#include "reload.h"
#include "runtime.h"
#include "sdnotify.h"
#include "cluster.h"
#include "state.h"
#include "util.h"

#ifndef MALLAFS_VERSION
#define MALLAFS_VERSION "unknown"
#endif
/* Where external plugins are looked up without --plugin-dir (meson.build:
 * LIBDIR/mallafs/plugins, where meson install puts them). A missing one is
 * no error: it holds no plugin. */
#ifndef MALLAFS_PLUGIN_DIR
#define MALLAFS_PLUGIN_DIR "/usr/local/lib/mallafs/plugins"
#endif

/* No request holds a worker thread for long: a blocked read of `events`
 * is parked, and a request that waits for a service's plugins (an exec
 * hook may run for its timeout) is handed to that service's queue, served
 * by threads of its own (fs/defer.c). Workers still run many short
 * requests at once (readers, writers, the notifier's echoes, which need a
 * free thread to be answered); libfuse's default of 10 is tight for a node
 * with many busy services, and idle threads cost little. */
#define MALLAFS_MAX_THREADS 64

/* -o events=N: each kept event costs a slot and its text. */
#define MALLAFS_MAX_EVENTS (1 << 24)

struct mopts {
	char *config;
	char *state;
	char *plugin_dir;
	char *max_memory;
	char *events;
	int show_help;
	int show_version;
	int named;            /* -o fsname= or -o subtype= given */
	int max_threads_set;  /* -o max_threads= given */
	int rdonly;           /* -o ro (a later -o rw undoes it) */
	struct mcl_config cl; /* -o cluster=... and its company */
	int cl_last;          /* the option just parsed was cluster= */
};

enum {
	KEY_NAMED,
	KEY_MAX_THREADS,
	KEY_RO,
	KEY_RW,
	KEY_CLUSTER,
};

/* Matched options are consumed here; everything else (-f, -d, -s, the
 * mountpoint, FUSE's -o options) is left for fuse_parse_cmdline and
 * fuse_session_new, which refuse what they do not know. */
static const struct fuse_opt mopt_table[] = {
        {"--config=%s", offsetof(struct mopts, config), 0},
        {"config=%s", offsetof(struct mopts, config), 0},
        {"--state=%s", offsetof(struct mopts, state), 0},
        {"state=%s", offsetof(struct mopts, state), 0},
        {"--plugin-dir=%s", offsetof(struct mopts, plugin_dir), 0},
        {"plugin_dir=%s", offsetof(struct mopts, plugin_dir), 0},
        {"max_memory=%s", offsetof(struct mopts, max_memory), 0},
        {"events=%s", offsetof(struct mopts, events), 0},
        {"node=%s", offsetof(struct mopts, cl.node), 0},
        {"cluster_prefix=%s", offsetof(struct mopts, cl.prefix), 0},
        {"cluster_ttl=%s", offsetof(struct mopts, cl.ttl), 0},
        {"cluster_timeout=%s", offsetof(struct mopts, cl.timeout), 0},
        {"cluster_cacert=%s", offsetof(struct mopts, cl.cacert), 0},
        {"cluster_cert=%s", offsetof(struct mopts, cl.cert), 0},
        {"cluster_key=%s", offsetof(struct mopts, cl.key), 0},
        {"cluster_user=%s", offsetof(struct mopts, cl.user), 0},
        {"cluster_password_file=%s", offsetof(struct mopts, cl.password_file), 0},
        FUSE_OPT_KEY("cluster=", KEY_CLUSTER),
        {"-h", offsetof(struct mopts, show_help), 1},
        {"--help", offsetof(struct mopts, show_help), 1},
        {"-V", offsetof(struct mopts, show_version), 1},
        {"--version", offsetof(struct mopts, show_version), 1},
        FUSE_OPT_KEY("fsname=", KEY_NAMED),
        FUSE_OPT_KEY("subtype=", KEY_NAMED),
        FUSE_OPT_KEY("max_threads=", KEY_MAX_THREADS),
        FUSE_OPT_KEY("ro", KEY_RO),
        FUSE_OPT_KEY("rw", KEY_RW),
        FUSE_OPT_END,
};

static int mopt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct mopts *mo = data;
	bool cl_last = mo->cl_last;

	mo->cl_last = 0;
	/* -o cluster=URL,URL: the option list is split at its commas, so the
	 * URLs after the first come as options of their own. */
	if (key == KEY_CLUSTER) {
		mo->cl_last = 1;
		free(mo->cl.endpoints);
		mo->cl.endpoints = NULL;
		return mcl_config_add_endpoint(&mo->cl, arg + strlen("cluster=")) < 0 ? -1 : 0;
	}
	if (key == FUSE_OPT_KEY_OPT && cl_last &&
	    (strncmp(arg, "http://", 7) == 0 || strncmp(arg, "https://", 8) == 0)) {
		mo->cl_last = 1;
		return mcl_config_add_endpoint(&mo->cl, arg) < 0 ? -1 : 0;
	}

	/* ro and rw are ours, the last one given wins: the kernel's mount
	 * stays read-write, since a read-only one would refuse the notifier's
	 * echoes of the daemon's own changes (fs/req.c refuses users'). */
	if (key == KEY_RO || key == KEY_RW) {
		mo->rdonly = key == KEY_RO;
		return 0;
	}
	/* Only noted: libfuse still needs to see these. */
	if (key == KEY_NAMED)
		mo->named = 1;
	else if (key == KEY_MAX_THREADS)
		mo->max_threads_set = 1;
	return 1;
}

/* SIZE of -o max_memory: a decimal count of bytes, or of KiB, MiB or GiB
 * with a K, M or G after it (either case). 0 or -EINVAL. */
static int parse_size(const char *s, uint64_t *ret)
{
	uint64_t n = 0, unit = 1;
	const char *p = s;
	if (!s || !(*p >= '0' && *p <= '9'))
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		unit = (uint64_t)1 << 10;
		p++;
		break;
	case 'm':
	case 'M':
		unit = (uint64_t)1 << 20;
		p++;
		break;
	case 'g':
	case 'G':
		unit = (uint64_t)1 << 30;
		p++;
		break;
	default:
		return -EINVAL;
	}
	if (*p != '\0' || n > UINT64_MAX / unit)
		return -EINVAL;
	*ret = n * unit;
	return 0;
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
	        "usage: %s [-f] [-d] [-s] [-o OPTION[,OPTION...]] [--config=FILE]\n"
	        "       %*s [--state=FILE] [--plugin-dir=DIR] [SOURCE] MOUNTPOINT\n"
	        "       %s --help | --version\n",
	        prog, (int)strlen(prog), "", prog);
}

static void print_help(const char *prog)
{
	usage(stdout, prog);
	printf("\n"
	       "    SOURCE                 ignored: the first field of an fstab line, which\n"
	       "                           mount(8) passes on (mount -t fuse.mallafs mallafs\n"
	       "                           MOUNTPOINT -o config=FILE); conventionally mallafs\n"
	       "    MOUNTPOINT             a directory; refused when it is a live mallafs\n"
	       "                           mount; a stale one (its daemon is gone) is\n"
	       "                           unmounted lazily and replaced\n"
	       "\n"
	       "mallafs options (--NAME VALUE is --NAME=VALUE):\n"
	       "    --config=FILE, -o config=FILE\n"
	       "                           create the services and node-wide configuration\n"
	       "                           this bootstrap INI file names, before mounting\n"
	       "    --state=FILE, -o state=FILE\n"
	       "                           keep the tree (services, their chains, admin\n"
	       "                           status and configuration, config/, owners and\n"
	       "                           modes, live registrations) in this SQLite\n"
	       "                           database: restored at start (the bootstrap file\n"
	       "                           then only seeds a new one), each change committed\n"
	       "                           within 50 ms. Created 0600; refused when anyone\n"
	       "                           but the daemon's user can write it\n"
	       "    --plugin-dir=DIR, -o plugin_dir=DIR\n"
	       "                           look up external plugins as DIR/NAME.so\n"
	       "                           (default: %s)\n"
	       "    -o max_memory=SIZE     all stores and the node configuration together\n"
	       "                           hold at most SIZE bytes of keys and values (a\n"
	       "                           number, or with K, M or G for KiB, MiB, GiB);\n"
	       "                           a write past it fails with ENOSPC (default: no limit)\n"
	       "    -o ro                  read-only: every change asked through the mount\n"
	       "                           fails with EROFS; the daemon's own changes (a ttl\n"
	       "                           expiry) still reach watchers. The kernel's mount\n"
	       "                           stays rw: findmnt and statfs show rw\n"
	       "    -o rw                  the default; the last of ro and rw given wins\n"
	       "    -o events=N            the events feed keeps the last N events, 1 to %d\n"
	       "                           (default: %d); a reader further behind, or\n"
	       "                           resuming after one older, gets a SEQ overflow line\n"
	       "\n"
	       "cluster options (registry/ and config/ shared through etcd v3):\n"
	       "    -o cluster=URL[,URL...]\n"
	       "                           etcd client endpoints (http:// or https://);\n"
	       "                           turns cluster mode on\n"
	       "    -o node=NAME           this node's name, [A-Za-z0-9._-] (default: the\n"
	       "                           host name); one live daemon per name\n"
	       "    -o cluster_prefix=PATH the etcd keys' prefix (default: %s)\n"
	       "    -o cluster_ttl=SECONDS a dead node's entries go within this (default: %d s)\n"
	       "    -o cluster_timeout=MS  a shared change fails with ETIMEDOUT after this\n"
	       "                           without an answer from etcd (default: %d ms)\n"
	       "    -o cluster_cacert=FILE, cluster_cert=FILE, cluster_key=FILE\n"
	       "                           TLS: the CA to trust, this client's certificate\n"
	       "    -o cluster_user=NAME, cluster_password_file=FILE\n"
	       "                           etcd user auth; the file (0600 or stricter) holds\n"
	       "                           the password on its first line\n"
	       "\n"
	       "built-in plugins:",
	       MALLAFS_PLUGIN_DIR, MALLAFS_MAX_EVENTS, MRT_DEFAULT_EVENTS, MCL_DEFAULT_PREFIX,
	       MCL_DEFAULT_TTL, MCL_DEFAULT_TIMEOUT_MS);
	for (const struct mallafs_plugin *const *p = mallafs_builtin_plugins; *p; p++)
		printf(" %s", (*p)->name);
	/* libfuse's fuse_cmdline_help() would print its own defaults, which
	 * are not mallafs's (max_threads): these are what run_loop does. */
	printf("\n\n"
	       "FUSE options:\n"
	       "    -h   --help            print help\n"
	       "    -V   --version         print version\n"
	       "    -d   -o debug          enable debug output (implies -f)\n"
	       "    -f                     foreground operation (default: go to the\n"
	       "                           background once mounted; log to syslog)\n"
	       "    -s                     disable multi-threaded operation\n"
	       "    -o max_threads=N       at most N worker threads (default: %d; a running\n"
	       "                           exec hook holds none)\n"
	       "    -o max_idle_threads=N  keep at most N idle worker threads (default: no\n"
	       "                           limit: a worker thread, once started, stays)\n"
	       "    -o clone_fd            a FUSE device fd of its own for each worker\n"
	       "                           thread (default: off)\n"
	       "    -o fsname=NAME, -o subtype=TYPE\n"
	       "                           the mount's source and type (default: mallafs,\n"
	       "                           fuse.mallafs); a mallafs mount is known by its type\n"
	       "    -o default_permissions always on: the kernel checks the modes stat shows\n",
	       MALLAFS_MAX_THREADS);
	fuse_lowlevel_help();
	printf("\n"
	       "mount(8) and fstab options, accepted and ignored: _netdev, nofail, auto,\n"
	       "noauto, user, nouser, users, owner, group, defaults, relatime, strictatime,\n"
	       "lazytime, diratime and their no forms, iversion, mand, silent, loud,\n"
	       "x-*, comment=*. (dev, suid, exec, atime, sync, async, dirsync and their no\n"
	       "forms reach the kernel.)\n");
}

static void print_version(void)
{
	printf("mallafs %s\n", MALLAFS_VERSION);
	printf("FUSE library version %s\n", fuse_pkgversion());
	fflush(stdout);
	fuse_lowlevel_version();
}

static void syslog_sink(enum mu_log_level level, const char *line, void *arg)
{
	syslog((int)level, "%s", line);
}

/* In the background libfuse's own messages would go to /dev/null; send them
 * where ours go, one line each. */
static void fuse_log_to_mu(enum fuse_log_level level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

static void fuse_log_to_mu(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (!n)
		return;
	enum mu_log_level l = level <= FUSE_LOG_ERR       ? MU_LOG_ERR
	                      : level == FUSE_LOG_WARNING ? MU_LOG_WARNING
	                      : level == FUSE_LOG_DEBUG   ? MU_LOG_DEBUG
	                                                  : MU_LOG_INFO;
	mu_log(l, "fuse: %s", line);
}

/* libfuse's fuse_daemonize() forks once the filesystem is mounted; by then
 * the runtime runs threads (the registry's process watcher, the timers of
 * plugins the bootstrap started) that a fork would leave behind. So the fork
 * comes first: the parent waits for the child to say it is mounted, and
 * exits 0, or with the child's status when the child fails (having printed
 * why on the stderr they share). Returns the fd the child reports on. */
static int daemon_fork(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		char c = 1;
		ssize_t n;
		int st = 0;
		close(p[1]);
		do {
			n = read(p[0], &c, 1);
		} while (n < 0 && errno == EINTR);
		if (n == 1 && c == 0)
			_exit(0);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1);
	}
	close(p[0]);
	/* Out of the terminal's session: its ^C and hangup are not ours. */
	setsid();
	return p[1];
}

/* The child is mounted: diagnostics move to syslog, stdio to /dev/null (as
 * fuse_daemonize does), and the parent may go. */
static void daemon_ready(int fd)
{
	openlog("mallafs", LOG_PID, LOG_DAEMON);
	mu_log_set_sink(syslog_sink, NULL, MU_LOG_INFO);
	fuse_set_log_func(fuse_log_to_mu);

	int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd >= 0) {
		dup2(nullfd, STDIN_FILENO);
		dup2(nullfd, STDOUT_FILENO);
		dup2(nullfd, STDERR_FILENO);
		if (nullfd > STDERR_FILENO)
			close(nullfd);
	}
	char c = 0;
	while (write(fd, &c, 1) < 0 && errno == EINTR)
		;
	close(fd);
}

/* Runs the request loop until unmounted or signalled; 0 or -errno. */
static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *co,
                    const struct mopts *mo)
{
	if (co->singlethread) {
		int r = fuse_session_loop(se);
		/* A positive result is the signal that ended the loop: a clean exit. */
		return r < 0 ? r : 0;
	}
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, (unsigned)co->clone_fd);
	/* UINT_MAX is "not given": libfuse's default then, without its complaint. */
	if (co->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(lc, co->max_idle_threads);
	fuse_loop_cfg_set_max_threads(lc,
	                              mo->max_threads_set ? co->max_threads : MALLAFS_MAX_THREADS);
	int r = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return r < 0 ? r : 0;
}

/* Around each SIGHUP reload, for a service manager: reloading, then ready
 * again with what the tree holds, or with why the file was refused. */
struct reload_ctx {
	struct mrt *rt;
	const char *mountpoint;
};

static void on_reloading(void *arg)
{
	msd_reloading();
}

static void on_reloaded(int r, const char *msg, void *arg)
{
	struct reload_ctx *rc = arg;
	char status[1280];
	if (r < 0) {
		snprintf(status, sizeof(status), "reload refused, nothing changed: %s", msg);
	} else {
		msd_summary(rc->rt, rc->mountpoint, status, sizeof(status));
	}
	msd_ready(status);
}

/* Every registration holds a pidfd and every service with persist its
 * database, -wal and -shm: the soft limit of open files (1024 by default)
 * is too low for a busy node. It goes up to the hard limit, which the
 * administrator set (LimitNOFILE= in a unit); exec hooks inherit it
 * with none of the daemon's files open (plugins/exec_child.c). */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char *argv[])
{
	/* mount(8)'s SOURCE, --config FILE, fstab's options: cmdline.c. */
	struct mcmd cmd;
	char cmd_why[256];
	if (mcmd_normalize(argc, argv, &cmd, cmd_why, sizeof(cmd_why)) < 0) {
		fprintf(stderr, "%s: %s (see --help)\n",
		        argc > 0 && argv[0][0] ? argv[0] : "mallafs", cmd_why);
		return 1;
	}
	struct fuse_args args = FUSE_ARGS_INIT(cmd.argc, cmd.argv);
	struct fuse_cmdline_opts co = {0};
	struct mopts mo = {0};
	const char *prog = argc > 0 && argv[0][0] ? argv[0] : "mallafs";
	char *mountpoint = NULL, *plugin_dir = NULL, *config = NULL;
	struct mreload *reload = NULL;
	struct mrt *rt = NULL;
	struct mfs *fs = NULL;
	struct mstate *st = NULL;
	struct mcl *cl = NULL;
	bool fresh = true;
	char why[1024];
	struct fuse_session *se = NULL;
	int ready_fd = -1;
	int ret = 1, r;

	/* Plugins talk to child processes through pipes (exec hooks) from the
	 * bootstrap on, before libfuse's handlers are in place. */
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread: SIGHUP is the reload thread's alone. */
	mreload_block_sighup();
	raise_fd_limit();
	/* systemd's socket and journal: before anything logs or runs. */
	if (msd_init())
		fuse_set_log_func(fuse_log_to_mu);

	if (fuse_opt_parse(&args, &mo, mopt_table, mopt_proc) < 0)
		goto out_args;
	if (mo.show_help) {
		print_help(prog);
		ret = 0;
		goto out_args;
	}
	if (mo.show_version) {
		print_version();
		ret = 0;
		goto out_args;
	}
	uint64_t max_memory = 0;
	if (mo.max_memory && parse_size(mo.max_memory, &max_memory) < 0) {
		fprintf(stderr, "%s: max_memory=%s: expected a size such as 512M (see --help)\n",
		        prog, mo.max_memory);
		goto out_args;
	}
	uint64_t events = 0;
	if (mo.events &&
	    (mu_parse_u64(mo.events, &events) < 0 || events < 1 || events > MALLAFS_MAX_EVENTS)) {
		fprintf(stderr, "%s: events=%s: expected a count of events from 1 to %d\n", prog,
		        mo.events, MALLAFS_MAX_EVENTS);
		goto out_args;
	}
	/* "mallafs on /mnt type fuse.mallafs" in /proc/mounts, unless told otherwise. */
	if (!mo.named && fuse_opt_add_arg(&args, "-ofsname=mallafs,subtype=mallafs") < 0)
		goto out_args;
	/* The kernel checks the modes stat shows (perm.c decides them): always,
	 * or with allow_other anyone could do anything. */
	if (fuse_opt_add_arg(&args, "-odefault_permissions") < 0)
		goto out_args;
	if (fuse_parse_cmdline(&args, &co) < 0)
		goto out_args;
	if (!co.mountpoint) {
		usage(stderr, prog);
		fprintf(stderr, "%s: no mountpoint given (see --help)\n", prog);
		goto out_cmdline;
	}

	/* Absolute paths: the daemon leaves its working directory for "/".
	 * What is at the mountpoint is checked first: mountpoint.c. */
	if (mmnt_check(prog, co.mountpoint, &mountpoint) < 0)
		goto out_cmdline;
	/* SIGHUP reads it again, from "/". */
	if (mo.config) {
		config = realpath(mo.config, NULL);
		if (!config) {
			fprintf(stderr, "%s: %s: %s\n", prog, mo.config, strerror(errno));
			goto out_paths;
		}
	}
	if (mo.plugin_dir) {
		plugin_dir = realpath(mo.plugin_dir, NULL);
		if (!plugin_dir) {
			fprintf(stderr, "%s: plugin directory %s: %s\n", prog, mo.plugin_dir,
			        strerror(errno));
			goto out_paths;
		}
	} else if (!(plugin_dir = strdup(MALLAFS_PLUGIN_DIR))) {
		goto out_paths;
	}
	if (co.debug)
		mu_log_set_sink(NULL, NULL, MU_LOG_DEBUG);

	if (!co.foreground) {
		ready_fd = daemon_fork();
		if (ready_fd < 0) {
			fprintf(stderr, "%s: cannot go to the background: %s\n", prog,
			        strerror(-ready_fd));
			goto out_paths;
		}
	}

	struct mrt_options ro = {
	        .builtins = mallafs_builtin_plugins,
	        .plugin_dir = plugin_dir,
	        .mountpoint = mountpoint,
	        .max_memory = max_memory,
	        .event_capacity = (size_t)events,
	};
	rt = mrt_new(&ro);
	if (!rt) {
		fprintf(stderr, "%s: cannot create the runtime: %s\n", prog, strerror(errno));
		goto out_ready;
	}
	/* Cluster mode: registry/ and config/ are etcd's from here on, so the
	 * bootstrap file's [config] goes there too. */
	if (mo.cl.endpoints && mcl_start(rt, &mo.cl, &cl, why, sizeof(why)) < 0) {
		fprintf(stderr, "%s: %s\n", prog, why);
		goto out_rt;
	}
	/* The state comes first: once it exists, it is the tree, and the
	 * bootstrap file only seeds a new one. */
	if (mo.state) {
		r = mstate_open(mo.state, &st, &fresh, why, sizeof(why));
		if (r == 0 && cl)
			mstate_set_local_only(st);
		if (r < 0 || (!fresh && mstate_restore(st, rt, why, sizeof(why)) < 0)) {
			fprintf(stderr, "%s: state %s: %s\n", prog, mo.state, why);
			goto out_rt;
		}
		if (!fresh && mo.config)
			mu_log(MU_LOG_INFO,
			       "state %s restored; the bootstrap file %s was not applied "
			       "(it seeds a new state only)",
			       mo.state, mo.config);
	}
	if (mo.config && fresh) {
		if (mboot_load(rt, mo.config, why, sizeof(why)) < 0) {
			fprintf(stderr, "%s\n", why);
			goto out_rt;
		}
	}
	if (chdir("/") < 0) {
		fprintf(stderr, "%s: chdir /: %s\n", prog, strerror(errno));
		goto out_rt;
	}

	fs = mfs_new(rt);
	if (!fs) {
		fprintf(stderr, "%s: cannot create the filesystem: %s\n", prog, strerror(errno));
		goto out_fs;
	}
	if (mo.rdonly)
		mfs_set_readonly(fs);
	/* Saved in full (what the bootstrap made, or what came back) before
	 * the mount is announced, then each change. */
	why[0] = '\0';
	if (st && ((!fresh && mstate_restore_perms(st, fs) < 0) ||
	           mstate_start(st, rt, fs, why, sizeof(why)) < 0)) {
		fprintf(stderr, "%s: state %s: %s\n", prog, mo.state,
		        why[0] ? why : "cannot read owners and modes");
		goto out_fs;
	}
	/* Cluster mode: owners and modes of config/ and registry/ are etcd's. */
	mcl_attach_fs(cl, fs);
	se = fuse_session_new(&args, mfs_lowlevel_ops(), sizeof(struct fuse_lowlevel_ops), fs);
	if (!se)
		goto out_fs; /* libfuse said why */
	/* libfuse leaves a signal that was ignored at exec ignored, and a
	 * shell's background job starts with SIGINT ignored: the command must
	 * unmount on SIGINT and SIGTERM however it was started. SIGHUP keeps
	 * what it was given, for nohup; once mounted, reload.c makes it reload
	 * the bootstrap file. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (fuse_set_signal_handlers(se) < 0)
		goto out_session;
	/* SIGHUP (blocked since main began, so libfuse's handler for it never
	 * runs) reloads the file, from before the mount appears: a service
	 * manager may send it as soon as it sees the mount. */
	struct reload_ctx rctx = {.rt = rt, .mountpoint = mountpoint};
	const struct mreload_hooks hooks = {
	        .reloading = on_reloading, .done = on_reloaded, .arg = &rctx};
	reload = mreload_start(rt, fs, config, &hooks);
	if (!reload)
		mu_log(MU_LOG_WARNING, "no reload on SIGHUP: %s", strerror(errno));
	if (fuse_session_mount(se, mountpoint) < 0)
		goto out_signals; /* libfuse said why */
	r = mfs_start(fs, se, mountpoint);
	if (r < 0) {
		fprintf(stderr, "%s: cannot start the notifier: %s\n", prog, strerror(-r));
		goto out_unmount;
	}
	/* Before the parent exits: the background child is the main PID. */
	msd_summary(rt, mountpoint, why, sizeof(why));
	msd_ready(why);
	if (ready_fd >= 0) {
		daemon_ready(ready_fd);
		ready_fd = -1;
	}
	mu_log(MU_LOG_INFO, "mounted on %s%s", mountpoint,
	       mo.rdonly ? " read-only (mallafs refuses changes with EROFS)" : "");

	r = run_loop(se, &co, &mo);
	/* No reload while the tree goes. */
	mreload_stop(reload);
	reload = NULL;
	if (r < 0)
		mu_log(MU_LOG_ERR, "request loop failed: %s", strerror(-r));
	msd_stopping();
	mu_log(MU_LOG_INFO, "unmounting %s", mountpoint);
	ret = r < 0 ? 1 : 0;

	mfs_stop(fs);
out_unmount:
	/* Cluster mode imports no more owners and modes (its watcher would
	 * reach the notifier that mfs_unmounted frees). */
	mcl_attach_fs(cl, NULL);
	fuse_session_unmount(se);
	/* The notifier may still be in a write to the kernel that the
	 * unmount ended: it must be gone before the session is. */
	mfs_unmounted(fs);
out_signals:
	mreload_stop(reload);
	fuse_remove_signal_handlers(se);
	/* That put SIGPIPE back to its default; plugins' stop hooks still
	 * write to pipes below. */
	signal(SIGPIPE, SIG_IGN);
out_session:
	fuse_session_destroy(se);
out_fs:
	/* What changed is committed before the services stop: stopping them
	 * is no change to the state. */
	mstate_stop(st);
	/* Stop callbacks run while the filesystem layer still exists, for
	 * whatever it listens to; then it goes. */
	mrt_stop_all(rt);
	mcl_attach_fs(cl, NULL);
	mfs_free(fs);
out_rt:
	/* This node's entries leave etcd (its lease revoked). */
	mcl_stop(cl);
	mstate_close(st);
	mrt_free(rt);
out_ready:
	/* Closing without a word tells a waiting parent that we failed. */
	if (ready_fd >= 0)
		close(ready_fd);
out_paths:
	free(config);
	free(plugin_dir);
	free(mountpoint);
out_cmdline:
	free(co.mountpoint);
out_args:
	free(mo.config);
	free(mo.state);
	free(mo.plugin_dir);
	free(mo.max_memory);
	free(mo.events);
	mcl_config_free(&mo.cl);
	fuse_opt_free_args(&args);
	mcmd_free(&cmd);
	return ret;
}
