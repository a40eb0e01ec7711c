/* SPDX-License-Identifier: MIT */
/* The exec plugin's running of one hook, shared by its three files:
 *
 *   exec.c        the plugin: settings, callbacks, what a hook's end means
 *                 (reasons, logging of its output);
 *   exec_run.c    the daemon's side of a run: starting the process, feeding
 *                 its stdin, capturing its output, the timeout (SIGTERM to
 *                 its process group, SIGKILL 2 s later) and reaping;
 *   exec_child.c  who a hook runs as (the service's owner, resolved before
 *                 the fork) and the child's side between fork and exec, in
 *                 async-signal-safe calls only.
 *
 * Nothing here takes a lock: a run blocks only the thread that asked for it. */
#ifndef MALLAFS_PLUGINS_EXEC_RUN_H
#define MALLAFS_PLUGINS_EXEC_RUN_H

#include "mallafs-plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Output kept from each of a hook's stdout and stderr; the rest is read and
 * dropped, so a chatty hook never blocks on a full pipe. */
#define EXEC_OUTPUT_CAP (64 * 1024)
/* How long a hook's process group has between SIGTERM and SIGKILL. */
#define EXEC_KILL_GRACE_MS 2000
/* The PATH every hook gets (systemd's default for services). */
#define EXEC_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* A capped capture of one of a hook's output streams. */
struct exec_capture {
	char *data;
	size_t len;
	bool truncated;
};

enum exec_end {
	EXEC_EXITED,    /* status holds the exit status */
	EXEC_SIGNALED,  /* status holds the signal */
	EXEC_TIMED_OUT, /* past its timeout; terminated by us */
	EXEC_LOST,      /* gone, but someone else reaped it */
	EXEC_NOT_RUN,   /* status holds the errno, detail says what failed */
};

struct exec_result {
	enum exec_end end;
	int status;
	/* EXEC_NOT_RUN: what could not be done ("cannot run as uid 1000 gid
	 * 1000: ..."); EXEC_TIMED_OUT: how it was ended. */
	char detail[200];
	struct exec_capture out, err;
};

/* Runs `/bin/sh -c cmd` as hook `hook` of svc to its end, input on its
 * stdin, at most timeout_ms (then its process group gets SIGTERM, and
 * SIGKILL EXEC_KILL_GRACE_MS later). res is always filled (EXEC_NOT_RUN when
 * it could not start); free it with exec_result_free. */
void exec_run(struct mallafs_svc *svc, const char *hook, const char *cmd, const char *input,
              size_t input_len, unsigned long timeout_ms, struct exec_result *res);
void exec_result_free(struct exec_result *res);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t exec_now_ms(void);

/* ---- exec_child.c ---- */

/* Who a hook runs as and with what, resolved before the fork (the child may
 * only make async-signal-safe calls). */
struct exec_cred {
	bool change; /* switch to uid, gid and groups in the child */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t ngroups;
	char **envp;     /* the hook's whole environment */
	int fd_limit;    /* where closing descriptors one by one stops */
	const char *cmd; /* for the child's argv */
};

/* The service's owner as it is now, its supplementary groups (from the
 * group database; a uid without a passwd entry gets just its gid) and the
 * clean environment: PATH, HOME (the passwd entry's, else "/"),
 * MALLAFS_SERVICE, MALLAFS_MOUNT and MALLAFS_HOOK. A daemon that is not root
 * runs hooks only for services it owns itself: -EPERM otherwise. Returns 0,
 * or -errno with detail (of n bytes) saying why. */
int exec_cred_get(struct mallafs_svc *svc, const char *hook, const char *cmd,
                  struct exec_cred *cred, char *detail, size_t n);
void exec_cred_free(struct exec_cred *cred);

/* What a child that could not exec the hook writes to its report pipe
 * before it exits with status 127. */
struct exec_report {
	int stage; /* enum exec_stage */
	int err;   /* errno */
};

enum exec_stage {
	EXEC_STAGE_SESSION = 1,
	EXEC_STAGE_STDIO,
	EXEC_STAGE_FDS,
	EXEC_STAGE_GROUPS,
	EXEC_STAGE_GID,
	EXEC_STAGE_UID,
	EXEC_STAGE_CHECK,
	EXEC_STAGE_CHDIR,
	EXEC_STAGE_EXEC,
};

/* A report as a reason's text, in buf of n bytes ("cannot switch to uid
 * 1000: Operation not permitted"). */
void exec_report_text(const struct exec_report *rep, const struct exec_cred *cred, char *buf,
                      size_t n);

/* The child's side, from fork to exec: a session and process group of its
 * own, default signal handling with nothing blocked, in_fd, out_fd and
 * err_fd as its stdin, stdout and stderr and no other descriptor (but the
 * report pipe, closed at exec), the owner's ids, "/" as its folder, umask
 * 022, then exec. Never returns: any failure is reported on report_fd and
 * ends the child with _exit(127), before the hook could run. */
_Noreturn void exec_child(const struct exec_cred *cred, int in_fd, int out_fd, int err_fd,
                          int report_fd);

#endif
