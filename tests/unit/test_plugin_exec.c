/* SPDX-License-Identifier: MIT */
/* The exec plugin: real shell commands as hooks, driven through the service
 * API (exec_fixture.c): what each hook gets, what its end means, and what
 * it holds up. Hooks are short: the whole run takes a few seconds. Whose
 * rights they run with: test_plugin_exec_owner.c. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builtin.h"
#include "exec_fixture.h"
#include "plugin.h"

/* ---- settings ---- */

static void test_settings_listed(void **state)
{
	struct fixture *f = *state;
	char *text;
	size_t len;
	assert_int_equal(make_svc(f, NULL, "api", "", &f->svc), 0);
	assert_int_equal(msvc_config_render(f->svc, &text, &len), 0);
	assert_string_equal(text, "[exec]\non_start = \non_stop = \non_update = \n"
	                          "timeout_ms = 5000\nvalidate = \n");
	free(text);
}

static void test_timeout_checked(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	assert_int_equal(make_svc(f, NULL, "api", "", &f->svc), 0);

	const char *bad[] = {"abc", "0",   "-1",   "3600001",
	                     "",    " 10", "10ms", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(set(f->svc, "exec", "timeout_ms", bad[i], &why), -EINVAL);
		assert_string_equal(why.text,
		                    fmt("exec: timeout_ms must be an integer from 1 to 3600000, "
		                        "not '%s'",
		                        bad[i]));
		assert_config(f->svc, "exec", "timeout_ms", "5000");
	}
	msvc_status(f->svc, &st);
	assert_string_equal(reason_of(st.last_error),
	                    "exec: timeout_ms must be an integer from 1 to 3600000, not "
	                    "'99999999999999999999'");

	/* Live: no restart. */
	assert_int_equal(set(f->svc, "exec", "timeout_ms", "3600000", &why), 0);
	assert_config(f->svc, "exec", "timeout_ms", "3600000");
	assert_int_equal(set(f->svc, "exec", "timeout_ms", "1", &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 0);
	assert_int_equal(st.state, MSVC_RUNNING);
}

/* ---- validate ---- */

static void test_validate_accepts_and_rejects(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	const char *ini = "[app]\nx = 1\n[exec]\nvalidate = grep -q '^x = 1$' || "
	                  "{ echo \"bad value\" >&2; echo detail >&2; exit 1; }\n";
	assert_int_equal(make_svc(f, NULL, "api", ini, &f->svc), 0);

	/* x stays 1: accepted. */
	assert_int_equal(set(f->svc, "app", "y", "5", &why), 0);
	assert_config(f->svc, "app", "y", "5");

	/* x = 2: rejected with the hook's first stderr line, nothing changed. */
	assert_int_equal(set(f->svc, "app", "x", "2", &why), -EINVAL);
	assert_string_equal(why.text, "exec: bad value");
	assert_config(f->svc, "app", "x", "1");
	msvc_status(f->svc, &st);
	assert_string_equal(reason_of(st.last_error), "exec: bad value");
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_int_equal(st.restarts, 0);
	/* The rest of stderr is logged as a warning. */
	assert_true(log_has("4 service api: exec: validate: detail"));
	assert_false(log_has("validate: bad value\n"));

	/* A whole INI document is one change: rejected whole. */
	const char *doc = "[app]\ny = 6\nx = 3\n";
	assert_int_equal(msvc_config_apply_ini(f->svc, doc, strlen(doc), &why), -EINVAL);
	assert_config(f->svc, "app", "y", "5");
	assert_config(f->svc, "app", "x", "1");
}

static void test_validate_reasons(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	assert_int_equal(make_svc(f, NULL, "api", "[exec]\ntimeout_ms = 200\n", &f->svc), 0);

	/* A new validate checks its own installation: one that refuses
	 * everything cannot get in. */
	assert_int_equal(set(f->svc, "exec", "validate", "exit 4", &why), -EINVAL);
	assert_string_equal(why.text, "exec: validate exited with status 4");
	assert_config(f->svc, "exec", "validate", "");

	assert_int_equal(set(f->svc, "exec", "validate",
	                     "echo '  ' >&2; echo ' why not ' >&2; "
	                     "exit 1",
	                     &why),
	                 -EINVAL);
	assert_string_equal(why.text, "exec: why not");

	double t0 = now_s();
	assert_int_equal(set(f->svc, "exec", "validate", "echo slow >&2; sleep 10", &why), -EINVAL);
	assert_true(now_s() - t0 < 2.0);
	assert_string_equal(why.text, "exec: validate timed out after 200 ms");

	assert_int_equal(set(f->svc, "exec", "validate", "kill -TERM $$", &why), -EINVAL);
	assert_string_equal(why.text, "exec: validate was killed by signal 15 (Terminated)");

	assert_int_equal(set(f->svc, "exec", "validate", "no-such-command-mallafs", &why), -EINVAL);
	assert_string_equal(why.text, "exec: sh: 1: no-such-command-mallafs: not found");
	assert_config(f->svc, "exec", "validate", "");
}

static void test_validate_gets_proposed_config(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	const char *out = path_in(f, "proposed");
	const char *ini = fmt("[app]\nx = 1\n[exec]\nvalidate = cat > %s\n", out);
	assert_int_equal(make_svc(f, NULL, "api", ini, &f->svc), 0);
	assert_file(out, fmt("[app]\nx = 1\n\n[exec]\nvalidate = cat > %s\n", out));

	assert_int_equal(set(f->svc, "app", "x", "2", &why), 0);
	assert_file(out, fmt("[app]\nx = 2\n\n[exec]\nvalidate = cat > %s\n", out));

	/* Setting a value it already has changes nothing: validate is not
	 * asked again. */
	unlink(out);
	assert_int_equal(set(f->svc, "app", "x", "2", &why), 0);
	assert_null(slurp(out));

	/* Removing validate is always allowed. */
	assert_int_equal(msvc_config_unset(f->svc, "exec", "validate", &why), 0);
	assert_config(f->svc, "exec", "validate", "");
}

/* Adding or removing another plugin asks nothing of validate. */
static int noop_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                      struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	return 0;
}

static const struct mallafs_plugin noop_plugin = {
        MALLAFS_PLUGIN_INIT,
        .name = "noop",
        .config_merge = noop_merge,
};

static void test_validate_not_asked_on_rechain(void **state)
{
	struct fixture *f = *state;
	const struct mallafs_plugin *const plugins[] = {&mallafs_plugin_base, &mallafs_plugin_exec,
	                                                &noop_plugin, NULL};
	struct mplugreg *reg = mplugreg_new(plugins, NULL);
	struct mallafs_reason why;
	const char *log = path_in(f, "log");
	mplugreg_free(f->reg);
	f->reg = reg;

	assert_int_equal(make_svc(f, NULL, "api",
	                          fmt("[exec]\nvalidate = echo validate >> %s\n", log), &f->svc),
	                 0);
	assert_file(log, "validate\n");
	assert_int_equal(msvc_add_plugin(f->svc, "noop", &why), 0);
	assert_int_equal(msvc_del_plugin(f->svc, "noop", &why), 0);
	assert_file(log, "validate\n");
}

/* ---- on_update ---- */

static void test_on_update_restart(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	char buf[16];
	assert_int_equal(make_svc(f, NULL, "api", "[exec]\non_update = exit 75\n", &f->svc), 0);
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "kept", 4, MALLAFS_OPF_REPLACE), 4);

	assert_int_equal(set(f->svc, "app", "x", "1", &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 1);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_string_equal(reason_of(st.last_restart), "exec: on_update asked for a restart");
	assert_config(f->svc, "app", "x", "1");
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "kept", 4);
}

static void test_on_update_restart_reason(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	assert_int_equal(
	        make_svc(f, NULL, "api",
	                 "[exec]\non_update = echo 'port changed, restarting' >&2; exit 75\n",
	                 &f->svc),
	        0);
	assert_int_equal(set(f->svc, "app", "port", "81", &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 1);
	assert_string_equal(reason_of(st.last_restart), "exec: port changed, restarting");
	assert_string_equal(st.last_error, "-");
}

static void test_on_update_error_rolls_back(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	char buf[16];
	const char *ini = "[app]\nx = 1\n[exec]\non_update = grep -q '^x = 1$' || "
	                  "{ echo 'cannot apply x' >&2; echo more >&2; exit 3; }\n";
	assert_int_equal(make_svc(f, NULL, "api", ini, &f->svc), 0);
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "kept", 4, MALLAFS_OPF_REPLACE), 4);

	assert_int_equal(set(f->svc, "app", "x", "2", &why), -EIO);
	assert_string_equal(why.text, "exec: cannot apply x");
	assert_config(f->svc, "app", "x", "1");
	msvc_status(f->svc, &st);
	assert_string_equal(reason_of(st.last_error), "exec: cannot apply x");
	assert_int_equal(st.restarts, 0);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_true(log_has("4 service api: exec: on_update: more"));
	assert_int_equal(msvc_store_read(f->svc, "k", 0, buf, sizeof(buf)), 4);

	/* Without stderr, the status says what happened. */
	assert_int_equal(set(f->svc, "exec", "on_update", "exit 3", &why), 0); /* restarts */
	assert_int_equal(set(f->svc, "app", "x", "5", &why), -EIO);
	assert_string_equal(why.text, "exec: on_update exited with status 3");
	assert_config(f->svc, "app", "x", "1");
}

static void test_on_update_timeout(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	const char *pidfile = path_in(f, "pid");
	const char *ini =
	        fmt("[exec]\ntimeout_ms = 200\non_update = echo $$ > %s; sleep 10\n", pidfile);
	assert_int_equal(make_svc(f, NULL, "api", ini, &f->svc), 0);

	double t0 = now_s();
	assert_int_equal(set(f->svc, "app", "x", "1", &why), -EIO);
	double took = now_s() - t0;
	assert_true(took >= 0.19);
	assert_true(took < 2.0);
	assert_string_equal(why.text, "exec: on_update timed out after 200 ms");
	msvc_status(f->svc, &st);
	assert_string_equal(reason_of(st.last_error), "exec: on_update timed out after 200 ms");
	assert_config(f->svc, "app", "x", NULL);

	/* The shell is reaped and its sleep killed: nothing of the group runs. */
	char *text = slurp(pidfile);
	assert_non_null(text);
	pid_t pid = (pid_t)atoi(text);
	free(text);
	assert_true(pid > 1);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	/* SIGKILL reaches the sleep at once, but it takes the kernel a moment
	 * to tear the process down. */
	for (int i = 0; i < 100 && group_alive(pid); i++)
		usleep(10 * 1000);
	assert_false(group_alive(pid));
}

/* ---- the output ---- */

static void test_output_logged(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	assert_int_equal(
	        make_svc(f, NULL, "api",
	                 "[exec]\non_update = echo hello; echo; echo 'world  '; echo oops >&2\n",
	                 &f->svc),
	        0);
	assert_int_equal(set(f->svc, "app", "x", "1", &why), 0);
	assert_true(log_has("6 service api: exec: on_update: hello\n"));
	assert_true(log_has("6 service api: exec: on_update: world\n"));
	assert_true(log_has("4 service api: exec: on_update: oops\n"));
}

/* ---- start and stop ---- */

static void test_on_start_failure(void **state)
{
	struct fixture *f = *state;
	struct msvc_status st;
	assert_int_equal(make_svc(f, NULL, "api",
	                          "[exec]\non_start = echo 'no database' >&2; exit 1\n", &f->svc),
	                 -EIO);
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_string_equal(reason_of(st.last_error), "exec: cannot start: no database");
	/* The store still works in the failed state. */
	assert_int_equal(msvc_store_write(f->svc, "k", 0, "v", 1, MALLAFS_OPF_REPLACE), 1);
}

static void test_on_start_timeout(void **state)
{
	struct fixture *f = *state;
	struct msvc_status st;
	double t0 = now_s();
	assert_int_equal(make_svc(f, NULL, "api", "[exec]\ntimeout_ms = 100\non_start = sleep 10\n",
	                          &f->svc),
	                 -EIO);
	assert_true(now_s() - t0 < 2.0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_string_equal(reason_of(st.last_error),
	                    "exec: cannot start: on_start timed out after 100 ms");
}

static void test_on_stop(void **state)
{
	struct fixture *f = *state;
	struct msvc_status st;
	char marker[512]; /* its own copy: path_in's buffers are reused */
	snprintf(marker, sizeof(marker), "%s", path_in(f, "stopped"));
	assert_int_equal(make_svc(f, NULL, "api",
	                          fmt("[app]\nx = 1\n[exec]\non_stop = cat > %s\n", marker),
	                          &f->svc),
	                 0);
	assert_null(slurp(marker));
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	/* It got the configuration it ran with. */
	assert_file(marker, fmt("[app]\nx = 1\n\n[exec]\non_stop = cat > %s\n", marker));
	msvc_status(f->svc, &st);
	assert_int_equal(st.state, MSVC_STOPPED);

	/* A failing on_stop is only logged. */
	unlink(marker);
	struct mallafs_svc *other = NULL;
	char ini[700];
	snprintf(ini, sizeof(ini), "[exec]\non_stop = touch %s; echo 'flush failed' >&2; exit 2\n",
	         marker);
	assert_int_equal(make_svc(f, NULL, "other", ini, &other), 0);
	free_svc(other);
	assert_int_equal(access(marker, F_OK), 0);
	assert_true(log_has("4 service other: exec: flush failed\n"));
}

static void test_hook_change_restarts(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	const char *log = path_in(f, "log");
	assert_int_equal(make_svc(f, NULL, "api",
	                          fmt("[exec]\non_start = echo start1 >> %s\n"
	                              "on_stop = echo stop1 >> %s\n",
	                              log, log),
	                          &f->svc),
	                 0);
	assert_int_equal(set(f->svc, "exec", "on_start", fmt("echo start2 >> %s", log), &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 1);
	assert_string_equal(reason_of(st.last_restart), "exec: on_start changed");
	/* The old on_stop, then the new on_start. */
	assert_file(log, "start1\nstop1\nstart2\n");

	assert_int_equal(set(f->svc, "exec", "on_stop", fmt("echo stop2 >> %s", log), &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 2);
	assert_string_equal(reason_of(st.last_restart), "exec: on_stop changed");
	assert_file(log, "start1\nstop1\nstart2\nstop1\nstart2\n");

	/* timeout_ms and other sections apply live. */
	assert_int_equal(set(f->svc, "exec", "timeout_ms", "1000", &why), 0);
	assert_int_equal(set(f->svc, "app", "x", "1", &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 2);

	assert_int_equal(set(f->svc, "exec", "validate", "true", &why), 0);
	assert_int_equal(set(f->svc, "exec", "on_update", "true", &why), 0);
	msvc_status(f->svc, &st);
	assert_int_equal(st.restarts, 4);
	assert_string_equal(reason_of(st.last_restart), "exec: on_update changed");
}

/* ---- order, input size, concurrency ---- */

static void test_order(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	const char *log = path_in(f, "log");
	const char *hook = fmt("echo \"$MALLAFS_HOOK\" >> %s", log);
	const char *ini = fmt("[exec]\nvalidate = %s\non_update = %s\non_start = %s\n"
	                      "on_stop = %s\n",
	                      hook, hook, hook, hook);
	assert_int_equal(make_svc(f, NULL, "api", ini, &f->svc), 0);
	assert_int_equal(set(f->svc, "app", "x", "1", &why), 0);
	assert_int_equal(msvc_set_admin(f->svc, MSVC_ADMIN_INACTIVE), 0);
	assert_file(log, "validate\non_start\nvalidate\non_update\non_stop\n");
}

static void test_big_config(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	const char *count = path_in(f, "count");
	/* validate never reads its stdin and exits late, on_update reads it all. */
	const char *ini = fmt("[exec]\nvalidate = sleep 0.1\non_update = wc -c > %s\n", count);
	assert_int_equal(make_svc(f, NULL, "api", ini, &f->svc), 0);

	struct mu_buf b = {0};
	assert_int_equal(mu_buf_printf(&b, "[big]\n"), 0);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(mu_buf_printf(&b, "key%05d = %040d\n", i, i), 0);
	double t0 = now_s();
	assert_int_equal(msvc_config_apply_ini(f->svc, b.data, b.len, &why), 0);
	assert_true(now_s() - t0 < 2.0);
	mu_buf_free(&b);

	/* on_update got every byte of the new configuration. */
	struct mallafs_cfg *e = msvc_config_effective(f->svc);
	char *text;
	size_t len;
	/* What it got is the explicit configuration: the effective one minus
	 * the defaults that were never set. */
	assert_int_equal(mallafs_cfg_unset(e, "exec", "on_start"), 0);
	assert_int_equal(mallafs_cfg_unset(e, "exec", "on_stop"), 0);
	assert_int_equal(mallafs_cfg_unset(e, "exec", "timeout_ms"), 0);
	assert_int_equal(mallafs_cfg_render(e, &text, &len), 0);
	assert_true(len > 100 * 1024);
	assert_file(count, fmt("%zu\n", len));
	free(text);
	mcfg_free(e);

	/* A hook that exits at once without reading does not hang us. */
	assert_int_equal(set(f->svc, "exec", "validate", "exit 0", &why), 0);
	t0 = now_s();
	assert_int_equal(set(f->svc, "app", "y", "1", &why), 0);
	assert_true(now_s() - t0 < 2.0);
}

/* What a hook says reaches the log and the status without its control
 * characters: no escape sequence, no CR rewriting the line. */
static void test_output_control_chars(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	struct msvc_status st;
	assert_int_equal(make_svc(f, NULL, "api",
	                          "[exec]\non_update = printf 'out\\033]0;t\\007\\n'; "
	                          "printf 'bad\\033[2Jx\\rmore\\t\\r\\n' >&2; exit 1\n",
	                          &f->svc),
	                 0);
	assert_int_equal(set(f->svc, "app", "x", "1", &why), -EIO);
	assert_string_equal(why.text, "exec: bad?[2Jx?more");
	msvc_status(f->svc, &st);
	assert_string_equal(reason_of(st.last_error), "exec: bad?[2Jx?more");
	assert_true(log_has("6 service api: exec: on_update: out?]0;t?\n"));
}

static void test_big_output(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	assert_int_equal(make_svc(f, NULL, "api",
	                          "[exec]\non_update = head -c 300000 /dev/zero | tr '\\0' a; "
	                          "head -c 300000 /dev/zero | tr '\\0' b >&2; echo; exit 3\n",
	                          &f->svc),
	                 0);
	assert_int_equal(set(f->svc, "app", "x", "1", &why), -EIO);
	/* The first line of stderr, cut to what a reason holds. */
	assert_int_equal(strlen(why.text), MALLAFS_REASON_MAX - 1);
	assert_true(strncmp(why.text, "exec: bbbb", 10) == 0);
	assert_true(log_has("(stdout past 65536 bytes dropped)"));
	assert_true(log_has("(stderr past 65536 bytes dropped)"));
}

static void test_background_child_not_waited(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	/* The sleep keeps the output pipes open after the shell exits. */
	assert_int_equal(
	        make_svc(f, NULL, "api", "[exec]\non_update = sleep 1 & echo done\n", &f->svc), 0);
	double t0 = now_s();
	assert_int_equal(set(f->svc, "app", "x", "1", &why), 0);
	assert_true(now_s() - t0 < 0.8);
	assert_true(log_has("exec: on_update: done"));
}

/* A hook that closes its stdin early makes our writes fail with EPIPE: the
 * SIGPIPE that comes with it must neither kill us (it is not ignored here)
 * nor stay pending. */
static void test_stdin_closed_early(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	sigset_t pending;
	assert_int_equal(
	        make_svc(f, NULL, "api", "[exec]\non_update = exec 0<&-; sleep 0.2\n", &f->svc), 0);
	struct mu_buf b = {0};
	assert_int_equal(mu_buf_printf(&b, "[big]\n"), 0);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(mu_buf_printf(&b, "key%05d = %040d\n", i, i), 0);
	assert_int_equal(msvc_config_apply_ini(f->svc, b.data, b.len, &why), 0);
	mu_buf_free(&b);
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
}

/* The daemon ignores SIGPIPE and a thread may block signals: hooks start
 * with neither (an ignored SIGPIPE would survive exec and change how
 * pipelines in hooks end). */
static void test_hook_signals_reset(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	sigset_t term, old_mask;
	const char *out = path_in(f, "sig");
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
	pthread_sigmask(SIG_BLOCK, &term, &old_mask);

	assert_int_equal(
	        make_svc(f, NULL, "api",
	                 fmt("[exec]\non_update = grep -E '^Sig(Blk|Ign)' /proc/self/status > %s\n"
	                     "validate = if [ -n \"$(grep ^z /dev/stdin)\" ]; then kill -TERM $$; "
	                     "fi\n",
	                     out),
	                 &f->svc),
	        0);
	assert_int_equal(set(f->svc, "app", "x", "1", &why), 0);
	/* Signals 1 to 31 (bits 0 to 30): glibc's posix_spawn leaves its own
	 * internal signals (32, 33) ignored, which only its own runtime uses and
	 * resets at startup. */
	char *text = slurp(out);
	unsigned long long blk = ~0ULL, ign = ~0ULL;
	assert_non_null(text);
	assert_int_equal(sscanf(text, "SigBlk: %llx SigIgn: %llx", &blk, &ign), 2);
	free(text);
	assert_int_equal(blk, 0);
	assert_int_equal(ign & 0x7fffffffULL, 0);
	/* A blocked SIGTERM would leave the shell alive and validate passing. */
	assert_int_equal(set(f->svc, "app", "z", "1", &why), -EINVAL);
	assert_string_equal(why.text, "exec: validate was killed by signal 15 (Terminated)");

	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	signal(SIGPIPE, old_pipe);
}

struct slow_ctx {
	struct mallafs_svc *svc;
	int r;
};

static void *slow_set(void *arg)
{
	struct slow_ctx *c = arg;
	struct mallafs_reason why;
	c->r = set(c->svc, "app", "x", "1", &why);
	return NULL;
}

static void test_concurrent_services(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *a = NULL, *b = NULL;
	const char *ini = "[exec]\non_update = sleep 0.5\n";
	assert_int_equal(make_svc(f, NULL, "a", ini, &a), 0);
	assert_int_equal(make_svc(f, NULL, "b", ini, &b), 0);

	struct slow_ctx ca = {a, -1}, cb = {b, -1};
	pthread_t ta, tb;
	double t0 = now_s();
	assert_int_equal(pthread_create(&ta, NULL, slow_set, &ca), 0);
	assert_int_equal(pthread_create(&tb, NULL, slow_set, &cb), 0);

	/* Meanwhile a's store and status answer at once. */
	usleep(100 * 1000);
	double t1 = now_s();
	char buf[8];
	struct msvc_status st;
	assert_int_equal(msvc_store_write(a, "k", 0, "v", 1, MALLAFS_OPF_REPLACE), 1);
	assert_int_equal(msvc_store_read(a, "k", 0, buf, sizeof(buf)), 1);
	msvc_status(a, &st);
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(a, &text, &len), 0);
	free(text);
	assert_true(now_s() - t1 < 0.2);

	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	double took = now_s() - t0;
	assert_int_equal(ca.r, 0);
	assert_int_equal(cb.r, 0);
	assert_true(took >= 0.5);
	assert_true(took < 0.9);
	free_svc(a);
	free_svc(b);
}

/* Nothing the hooks did leaves a child of ours behind. */
static void test_no_zombies(void **state)
{
	struct fixture *f = *state;
	struct mallafs_reason why;
	assert_int_equal(make_svc(f, NULL, "api",
	                          "[exec]\nvalidate = true\non_update = exit 3\non_start = true\n",
	                          &f->svc),
	                 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(set(f->svc, "app", "x", fmt("%d", i), &why), -EIO);
		assert_int_equal(set(f->svc, "app", "x", fmt("%d", i), &why), -EIO);
	}
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

int main(void)
{
	mu_log_set_sink(log_sink, NULL, MU_LOG_DEBUG);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_settings_listed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout_checked, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_validate_accepts_and_rejects, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_validate_reasons, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_validate_gets_proposed_config, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_validate_not_asked_on_rechain, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_on_update_restart, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_on_update_restart_reason, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_on_update_error_rolls_back, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_on_update_timeout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_output_logged, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_on_start_failure, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_on_start_timeout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_on_stop, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hook_change_restarts, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_big_config, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_output_control_chars, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_big_output, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_background_child_not_waited, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stdin_closed_early, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hook_signals_reset, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_concurrent_services, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_zombies, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
