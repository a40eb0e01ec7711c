/* SPDX-License-Identifier: MIT */
/* exec: shell commands as hooks of a service's life.
 *
 *   validate    merge phase: the proposed configuration on stdin; a non-zero
 *               exit rejects the change (EINVAL) with the first line of
 *               stderr as the reason. The command used is the one in the
 *               proposed configuration, so a new validate checks its own
 *               installation and a removed one no longer applies; a bad
 *               validate can therefore never lock the configuration.
 *               It runs only when the proposed configuration differs from
 *               the committed one: adding or removing other plugins does not
 *               ask it again about a configuration it already accepted.
 *   on_update   update phase: the new configuration on stdin; exit 0 applies
 *               it, 75 (EX_TEMPFAIL) asks for a restart, anything else fails
 *               the change, which is rolled back (EIO).
 *   on_start    as the plugin starts, the committed configuration on stdin;
 *               a failure fails the start (the service becomes failed).
 *   on_stop     as the plugin stops, the configuration it last ran with on
 *               stdin; its outcome is only logged.
 *
 * Each runs as `/bin/sh -c COMMAND` with its service's owner's rights (uid,
 * gid and supplementary groups, read as it starts), in a session and process
 * group of its own, from "/", with umask 022, no descriptor but its stdin,
 * stdout and stderr, and a clean environment: PATH, HOME (the owner's), and
 * MALLAFS_SERVICE, MALLAFS_MOUNT and MALLAFS_HOOK (exec_child.c). A daemon
 * that is not root runs only the hooks of services it owns itself; any
 * other fails with EPERM without running, and a hook whose switch of ids
 * fails does not run either (the failing call's errno).
 * Its stdout is logged at info level, line by line; the first non-empty line
 * of its stderr is the reason given for a failure and the other lines are
 * logged as warnings. Past timeout_ms its process group gets SIGTERM, and
 * SIGKILL 2 s later, and the hook counts as failed (exec_run.c).
 *
 * A hook blocks only the thread that runs it, which holds nothing but its
 * own service's reconfiguration lock (the core's op_lock): other services,
 * and readers and writers of this service's store, go on meanwhile. */
#include "builtin.h"
#include "exec_run.h"
#include "plugin_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define EXEC_TIMEOUT_MAX 3600000UL
/* The exit status by which on_update asks for a restart (sysexits' EX_TEMPFAIL). */
#define EXEC_EXIT_RESTART 75

/* clang-format off */
static const struct mallafs_setting exec_settings[] = {
	{.key = "validate", .def = "", .restart = 1},
	{.key = "on_update", .def = "", .restart = 1},
	{.key = "on_start", .def = "", .restart = 1},
	{.key = "on_stop", .def = "", .restart = 1},
	{.key = "timeout_ms", .def = "5000"},
	{0},
};
/* clang-format on */

/* The commands whose change needs a restart, in the order they are reported. */
static const char *const exec_commands[] = {"validate", "on_update", "on_start", "on_stop"};

struct exec_state {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;
	/* What stop needs, from the configuration the plugin runs with: stop
	 * is handed no configuration. */
	char *on_stop;
	char *ini;
	size_t ini_len;
	unsigned long timeout_ms;
};

/* ---- settings ---- */

/* From 1 to EXEC_TIMEOUT_MAX ms. Every fault is -EINVAL: the callers only
 * tell success from failure. */
static int parse_timeout(const char *s, unsigned long *ret)
{
	uint64_t v;
	if (pu_parse_uint(s, EXEC_TIMEOUT_MAX, &v) < 0 || v == 0)
		return -EINVAL;
	*ret = (unsigned long)v;
	return 0;
}

/* A command that is empty or blank means "no hook". */
static const char *command_of(const struct mallafs_cfg *cfg, const struct exec_state *x,
                              const char *key)
{
	const char *cmd = mallafs_setting(cfg, x->self, key);
	if (!cmd)
		return NULL;
	for (const char *p = cmd; *p; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return cmd;
	return NULL;
}

static unsigned long timeout_of(const struct mallafs_cfg *cfg, const struct exec_state *x)
{
	unsigned long t = 0;
	/* The merge phase let only valid values in; a default is the fallback
	 * should a configuration somehow skip it. */
	if (parse_timeout(mallafs_setting(cfg, x->self, "timeout_ms"), &t) < 0)
		t = 5000;
	return t;
}

/* ---- a hook's end ---- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Cuts a capture into NUL-terminated lines in place, trailing blanks and CRs
 * turned into NULs too, so walking it with next_line() yields each line's
 * text and skips the empty ones. Other control characters become '?': a
 * hook may be another user's, and its words go to the log and the status,
 * where an escape sequence or a CR that rewrites a line has no place. */
static void split_lines(struct exec_capture *cap)
{
	for (size_t i = 0; i <= cap->len; i++) {
		if (i < cap->len && cap->data[i] != '\n')
			continue;
		cap->data[i] = '\0';
		for (size_t j = i; j-- > 0 && is_blank(cap->data[j]);)
			cap->data[j] = '\0';
	}
	for (size_t i = 0; i < cap->len; i++) {
		unsigned char c = (unsigned char)cap->data[i];
		if ((c < 0x20 && c != '\0' && c != '\t') || c == 0x7f)
			cap->data[i] = '?';
	}
}

/* The next non-empty line at or after *pos, or NULL. */
static const char *next_line(const struct exec_capture *cap, size_t *pos)
{
	while (cap->data && *pos < cap->len) {
		const char *line = cap->data + *pos;
		*pos += strlen(line) + 1;
		if (*line)
			return line;
	}
	return NULL;
}

/* Logs a hook's output: stdout at info level, stderr as warnings, except
 * the line skip (the one already given as the reason). */
static void log_output(const struct exec_state *x, const char *hook, const struct exec_result *res,
                       const char *skip)
{
	const char *line;
	size_t pos = 0;
	while ((line = next_line(&res->out, &pos)))
		mallafs_svc_log(x->svc, LOG_INFO, "exec: %s: %s", hook, line);
	if (res->out.truncated)
		mallafs_svc_log(x->svc, LOG_INFO, "exec: %s: (stdout past %d bytes dropped)", hook,
		                EXEC_OUTPUT_CAP);
	pos = 0;
	while ((line = next_line(&res->err, &pos)))
		if (line != skip)
			mallafs_svc_log(x->svc, LOG_WARNING, "exec: %s: %s", hook, line);
	if (res->err.truncated)
		mallafs_svc_log(x->svc, LOG_WARNING, "exec: %s: (stderr past %d bytes dropped)",
		                hook, EXEC_OUTPUT_CAP);
}

/* Runs a hook to its end and logs its output. Returns its exit status
 * (0-255), -EIO when it timed out, died of a signal or its end was lost, or
 * -errno when it could not run (-EPERM: not as its service's owner). For
 * anything but a 0 exit, why gets the reason: the first non-empty line of
 * its stderr (then *ret_said is set), or else what happened. A timeout is
 * always reported as such: a hung hook's last words are likely progress
 * noise, the timeout is the news. */
static int hook_call(const struct exec_state *x, const char *hook, const char *cmd,
                     const char *input, size_t input_len, unsigned long timeout_ms,
                     struct mallafs_reason *why, bool *ret_said)
{
	struct exec_result res;
	const char *first = NULL;
	int64_t t0 = exec_now_ms();
	int status = -EIO;
	size_t pos = 0;

	exec_run(x->svc, hook, cmd, input, input_len, timeout_ms, &res);
	if (res.err.data) {
		split_lines(&res.err);
		first = next_line(&res.err, &pos);
	}
	if (res.out.data)
		split_lines(&res.out);

	struct mallafs_reason what = {{0}};
	switch (res.end) {
	case EXEC_EXITED:
		status = res.status;
		mallafs_reason_set(&what, "%s exited with status %d", hook, res.status);
		break;
	case EXEC_SIGNALED:
		mallafs_reason_set(&what, "%s was killed by signal %d (%s)", hook, res.status,
		                   strsignal(res.status));
		break;
	case EXEC_TIMED_OUT:
		mallafs_reason_set(&what, "%s timed out after %lu ms", hook, timeout_ms);
		mallafs_svc_log(x->svc, LOG_WARNING, "exec: %s: timed out after %lu ms; %s", hook,
		                timeout_ms, res.detail);
		first = NULL;
		break;
	case EXEC_LOST:
		mallafs_reason_set(&what, "%s: its exit status was lost (is SIGCHLD ignored?)",
		                   hook);
		break;
	case EXEC_NOT_RUN:
		status = res.status > 0 ? -res.status : -EIO;
		mallafs_reason_set(&what, "%s could not run: %s", hook, res.detail);
		first = NULL;
		break;
	}
	bool said = status != 0 && first != NULL;
	if (said)
		mallafs_reason_set(&what, "%s", first + strspn(first, " \t"));
	if (status != 0 && why)
		*why = what;
	if (ret_said)
		*ret_said = said;
	log_output(x, hook, &res, said ? first : NULL);
	if (status == 0)
		mallafs_svc_log(x->svc, LOG_DEBUG, "exec: %s: done in %lld ms", hook,
		                (long long)(exec_now_ms() - t0));
	else
		mallafs_svc_log(x->svc, LOG_DEBUG, "exec: %s: failed in %lld ms: %s", hook,
		                (long long)(exec_now_ms() - t0), what.text);
	exec_result_free(&res);
	return status;
}

/* ---- callbacks ---- */

static int exec_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret_state)
{
	struct exec_state *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->svc = svc;
	x->self = self;
	x->timeout_ms = 5000;
	*ret_state = x;
	return 0;
}

static void exec_fini(void *state)
{
	struct exec_state *x = state;
	if (!x)
		return;
	free(x->on_stop);
	free(x->ini);
	free(x);
}

static int exec_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                      struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	struct exec_state *x = state;
	const char *t = mallafs_setting(merged, x->self, "timeout_ms");
	unsigned long timeout_ms;
	char *old_ini = NULL, *new_ini = NULL;
	size_t old_len = 0, new_len = 0;
	int r;

	if (parse_timeout(t, &timeout_ms) < 0) {
		mallafs_reason_set(why, "timeout_ms must be an integer from 1 to %lu, not '%s'",
		                   EXEC_TIMEOUT_MAX, t ? t : "");
		mallafs_reason_key(why, NULL, "timeout_ms");
		return -EINVAL;
	}
	const char *cmd = command_of(merged, x, "validate");
	if (!cmd)
		return 0;
	r = mallafs_cfg_render(merged, &new_ini, &new_len);
	if (r == 0)
		r = mallafs_cfg_render(old, &old_ini, &old_len);
	if (r < 0) {
		mallafs_reason_set(why, "out of memory");
		goto out;
	}
	/* Nothing would change: nothing to validate. */
	if (old_len == new_len && memcmp(old_ini, new_ini, new_len) == 0)
		goto out;
	if (hook_call(x, "validate", cmd, new_ini, new_len, timeout_ms, why, NULL) != 0)
		r = -EINVAL;
out:
	free(old_ini);
	free(new_ini);
	return r;
}

static bool same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static enum mallafs_update exec_updated(void *state, const struct mallafs_cfg *old,
                                        const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct exec_state *x = state;
	char *ini = NULL;
	size_t len = 0;

	/* A new command takes over with a restart: on_stop of the old
	 * configuration, then on_start of the new one. on_update is not run:
	 * on_start gets the new configuration anyway. */
	for (size_t i = 0; i < sizeof(exec_commands) / sizeof(exec_commands[0]); i++) {
		const char *k = exec_commands[i];
		if (!same(mallafs_setting(old, x->self, k), mallafs_setting(cfg, x->self, k))) {
			mallafs_reason_set(why, "%s changed", k);
			return MALLAFS_UPDATE_RESTART;
		}
	}

	unsigned long timeout_ms = timeout_of(cfg, x);
	if (mallafs_cfg_render(cfg, &ini, &len) < 0) {
		mallafs_reason_set(why, "out of memory");
		return MALLAFS_UPDATE_ERROR;
	}

	enum mallafs_update u = MALLAFS_UPDATE_OK;
	const char *cmd = command_of(cfg, x, "on_update");
	bool said = false;
	int status = cmd ? hook_call(x, "on_update", cmd, ini, len, timeout_ms, why, &said) : 0;
	if (status == EXEC_EXIT_RESTART) {
		u = MALLAFS_UPDATE_RESTART;
		if (!said)
			mallafs_reason_set(why, "on_update asked for a restart");
	} else if (status != 0) {
		u = MALLAFS_UPDATE_ERROR;
	}
	if (u == MALLAFS_UPDATE_ERROR) {
		/* The change is rolled back: keep running as before. */
		free(ini);
		return u;
	}
	x->timeout_ms = timeout_ms;
	free(x->ini);
	x->ini = ini;
	x->ini_len = len;
	return u;
}

static int exec_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct exec_state *x = state;
	char *ini = NULL, *on_stop = NULL;
	size_t len = 0;
	const char *stop_cmd = command_of(cfg, x, "on_stop");

	if (mallafs_cfg_render(cfg, &ini, &len) < 0 ||
	    (stop_cmd && !(on_stop = strdup(stop_cmd)))) {
		free(ini);
		mallafs_reason_set(why, "out of memory");
		return -ENOMEM;
	}
	free(x->ini);
	free(x->on_stop);
	x->ini = ini;
	x->ini_len = len;
	x->on_stop = on_stop;
	x->timeout_ms = timeout_of(cfg, x);

	const char *cmd = command_of(cfg, x, "on_start");
	int status =
	        cmd ? hook_call(x, "on_start", cmd, x->ini, x->ini_len, x->timeout_ms, why, NULL)
	            : 0;
	/* Could not run (-EPERM: not as the owner): that errno; else EIO. */
	return status == 0 ? 0 : status < 0 ? status : -EIO;
}

static void exec_stop(void *state)
{
	struct exec_state *x = state;
	struct mallafs_reason why = {{0}};
	if (!x->on_stop)
		return;
	if (hook_call(x, "on_stop", x->on_stop, x->ini, x->ini_len, x->timeout_ms, &why, NULL) != 0)
		mallafs_svc_log(x->svc, LOG_WARNING, "exec: %s", why.text);
}

/* clang-format off */
const struct mallafs_plugin mallafs_plugin_exec = {
	MALLAFS_PLUGIN_INIT,
	.name = "exec",
	.settings = exec_settings,
	.init = exec_init,
	.fini = exec_fini,
	.start = exec_start,
	.stop = exec_stop,
	.config_merge = exec_merge,
	.updated = exec_updated,
};
/* clang-format on */
