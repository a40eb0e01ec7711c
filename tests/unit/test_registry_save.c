/* SPDX-License-Identifier: MIT */
/* Saving and restoring the registry (issue 13, item 2): the start time of
 * a process (core/proc.c), which every registration keeps, and
 * mreg_save_foreach / mreg_save_get / mreg_restore. A registration is
 * restored only for the same process, PID and start time, still alive, and
 * then behaves as a fresh one. Real processes: forked sleepers, a zombie,
 * one whose command holds spaces and parentheses. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "proc.h"
#include "registry.h"
#include "util.h"

/* Children of a test, killed and reaped by the teardown even when an
 * assertion failed half-way. */
static pid_t kids[16];
static size_t nkids;

static int teardown_kids(void **state)
{
	for (size_t i = 0; i < nkids; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	nkids = 0;
	return 0;
}

/* A child that sets its command to comm (when not NULL) once told to
 * through the pipe *ret_go (then ready: it answers on the pipe it got), and
 * sleeps until killed. */
static pid_t spawn(const char *comm, int *ret_go, int *ret_ready)
{
	int go[2], ready[2];
	char c = 0;

	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		if (comm) {
			if (read(go[0], &c, 1) != 1 || prctl(PR_SET_NAME, comm) < 0 ||
			    write(ready[1], "y", 1) != 1)
				_exit(1);
		}
		for (;;)
			pause();
	}
	close(go[0]);
	close(ready[1]);
	assert_true(nkids < MU_ARRAY_SIZE(kids));
	kids[nkids++] = pid;
	assert_int_equal(read(ready[0], &c, 1), 1);
	if (ret_go) {
		*ret_go = go[1];
		*ret_ready = ready[0];
	} else {
		close(go[1]);
		close(ready[0]);
	}
	return pid;
}

static pid_t spawn_sleeper(void)
{
	return spawn(NULL, NULL, NULL);
}

static void kill_and_reap(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	for (size_t i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = kids[--nkids];
}

static uint64_t starttime(pid_t pid)
{
	uint64_t t = 0;
	assert_int_equal(mproc_starttime(pid, &t), 0);
	return t;
}

/* A PID no process can have. */
static pid_t missing_pid(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	long max = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &max), 1);
	fclose(f);
	return (pid_t)(max + 1);
}

struct fixture {
	struct mev_ring *ring;
	struct mreg *reg;
};

static struct fixture fx_new(void)
{
	struct fixture f;
	f.ring = mev_ring_new(256);
	assert_non_null(f.ring);
	f.reg = mreg_new(f.ring);
	assert_non_null(f.reg);
	return f;
}

static void fx_free(struct fixture *f)
{
	mreg_free(f->reg);
	mev_ring_free(f->ring);
}

/* How many of the ring's events read "OP PATH[ DETAIL]" (the ring's
 * lines, "SEQ OP PATH[ DETAIL]", without the SEQ). */
static size_t events(struct mev_ring *ring, const char *want)
{
	char buf[16384];
	uint64_t cursor = 1;
	size_t n = 0;
	ssize_t len = mev_ring_read(ring, &cursor, buf, sizeof(buf) - 1);
	assert_true(len >= 0);
	buf[len] = '\0';
	for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *sp = strchr(line, ' ');
		n += sp && strcmp(sp + 1, want) == 0;
	}
	return n;
}

static void expect_event(struct mev_ring *ring, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void expect_event(struct mev_ring *ring, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* The watcher thread emits exits when it runs: up to 10 s on a loaded
	 * machine. */
	for (int i = 0; i < 1000 && events(ring, line) == 0; i++)
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	if (events(ring, line) != 1)
		fail_msg("expected exactly one event \"%s\"", line);
}

/* Saved entries copied out of the callbacks (their strings live only for
 * the call), as a state database would keep them. */
struct copy {
	char name[MU_NAME_MAX + 1], member[16], value[64];
	struct mreg_saved s;
};

struct saved {
	struct copy c[16];
	size_t n;
};

static int keep(const struct mreg_saved *s, void *arg)
{
	struct saved *v = arg;
	assert_true(v->n < MU_ARRAY_SIZE(v->c));
	struct copy *c = &v->c[v->n++];
	c->s = *s;
	snprintf(c->name, sizeof(c->name), "%s", s->name);
	c->s.name = c->name;
	if (s->member) {
		snprintf(c->member, sizeof(c->member), "%s", s->member);
		c->s.member = c->member;
	}
	if (s->value) {
		assert_true(strlen(s->value) < sizeof(c->value));
		snprintf(c->value, sizeof(c->value), "%s", s->value);
		c->s.value = c->value;
	}
	return 0;
}

/* The one entry of kind called name (and member) in v. */
static const struct mreg_saved *find(const struct saved *v, char kind, const char *name,
                                     const char *member)
{
	for (size_t i = 0; i < v->n; i++) {
		const struct mreg_saved *s = &v->c[i].s;
		if (s->kind == kind && strcmp(s->name, name) == 0 &&
		    (member ? s->member && strcmp(s->member, member) == 0 : !s->member))
			return s;
	}
	fail_msg("no saved %c %s %s", kind, name, member ? member : "");
	return NULL;
}

static void assert_render(struct mreg *reg, const char *pool, const char *name, const char *want)
{
	char *text = NULL;
	size_t len = 0;
	if (pool)
		assert_int_equal(mreg_pool_render(reg, pool, name, &text, &len), 0);
	else
		assert_int_equal(mreg_render(reg, name, &text, &len), 0);
	assert_string_equal(text, want);
	free(text);
}

/* The entries a listing of registry/ (pool NULL) or of a pool sees. */
static int count_one(const struct mreg_entry *e, void *arg)
{
	(void)e;
	++*(size_t *)arg;
	return 0;
}

static size_t count(struct mreg *reg, const char *pool)
{
	size_t n = 0;
	if (pool)
		assert_int_equal(mreg_pool_list(reg, pool, 0, count_one, &n), 0);
	else
		assert_int_equal(mreg_list(reg, 0, count_one, &n), 0);
	return n;
}

/* The start time read another way: sscanf over the fields after the last
 * ')', field 3 (the state) to field 22. */
static uint64_t starttime_by_hand(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	char *close_paren = strrchr(buf, ')');
	assert_non_null(close_paren);
	unsigned long long v = 0;
	assert_int_equal(sscanf(close_paren + 1,
	                        " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s"
	                        " %*s %*s %*s %llu",
	                        &v),
	                 1);
	return v;
}

static void test_starttime_self_and_child(void **state)
{
	(void)state;
	uint64_t self = starttime(getpid());
	assert_true(self > 0);
	assert_int_equal(self, starttime_by_hand(getpid()));
	assert_int_equal(self, starttime(getpid())); /* it does not move */

	pid_t kid = spawn_sleeper();
	uint64_t k = starttime(kid);
	assert_int_equal(k, starttime_by_hand(kid));
	assert_true(k >= self); /* forked after we started */

	uint64_t t = 7;
	kill_and_reap(kid);
	assert_int_equal(mproc_starttime(kid, &t), -ESRCH);
	assert_int_equal(mproc_starttime(missing_pid(), &t), -ESRCH);
	assert_int_equal(mproc_starttime(0, &t), -ESRCH);
	assert_int_equal(mproc_starttime(-1, &t), -ESRCH);
	assert_int_equal(t, 7); /* untouched on failure */
}

/* A command may be anything of 15 bytes: here one that reads as the end of
 * the command and more fields, to fool a parser that stops at the first
 * ')' or counts spaces from the start. */
static void test_starttime_odd_command(void **state)
{
	(void)state;
	const char *names[] = {") 1 2 3 4 5 6 7", "a b) (c) 9 9 9", "))))((((", " ) "};
	for (size_t i = 0; i < MU_ARRAY_SIZE(names); i++) {
		int go, ready;
		char c;
		pid_t kid = spawn(names[i], &go, &ready);
		uint64_t before = starttime(kid);
		assert_int_equal(write(go, "g", 1), 1);
		assert_int_equal(read(ready, &c, 1), 1);
		close(go);
		close(ready);

		/* The command is set: the kernel shows it as given. */
		char path[64], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)kid);
		FILE *f = fopen(path, "re");
		assert_non_null(f);
		assert_non_null(fgets(comm, sizeof(comm), f));
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		assert_string_equal(comm, names[i]);

		assert_int_equal(starttime(kid), before);
		kill_and_reap(kid);
	}
}

/* Registered, saved, the registry gone, a new one restores it all. */
static void test_round_trip(void **state)
{
	(void)state;
	struct fixture f = fx_new();
	pid_t kid = spawn_sleeper(), me = getpid();
	char kids_[16], mine[16];
	struct saved v = {0};

	snprintf(kids_, sizeof(kids_), "%d", (int)kid);
	snprintf(mine, sizeof(mine), "%d", (int)me);
	assert_int_equal(mreg_register(f.reg, "svc", kid, "hello world", 0), 0);
	assert_int_equal(mreg_register(f.reg, "bare", kid, NULL, 0), 0);
	assert_int_equal(mreg_pool_create(f.reg, "workers"), 0);
	assert_int_equal(mreg_pool_create(f.reg, "empty"), 0);
	assert_int_equal(mreg_pool_store(f.reg, "workers", kids_, "v1", 2, 0), 0);
	assert_int_equal(mreg_pool_store(f.reg, "workers", mine, "", 0, 0), 0);

	assert_int_equal(mreg_save_foreach(f.reg, keep, &v), 0);
	assert_int_equal(v.n, 6);
	/* Pools first, so restoring in this order finds each member's pool. */
	assert_int_equal(v.c[0].s.kind, 'p');
	assert_int_equal(v.c[1].s.kind, 'p');
	for (size_t i = 2; i < v.n; i++)
		assert_true(v.c[i].s.kind == 'n' || v.c[i].s.kind == 'm');

	const struct mreg_saved *s = find(&v, 'n', "svc", NULL);
	assert_int_equal(s->pid, kid);
	assert_int_equal(s->starttime, starttime(kid));
	assert_string_equal(s->value, "hello world");
	assert_int_equal(s->uid, geteuid());
	s = find(&v, 'n', "bare", NULL);
	assert_null(s->value);
	assert_int_equal(s->starttime, starttime(kid));
	s = find(&v, 'p', "workers", NULL);
	assert_int_equal(s->pid, 0);
	assert_int_equal(s->starttime, 0);
	assert_null(s->value);
	s = find(&v, 'm', "workers", kids_);
	assert_int_equal(s->pid, kid);
	assert_int_equal(s->starttime, starttime(kid));
	assert_string_equal(s->value, "v1");
	s = find(&v, 'm', "workers", mine);
	assert_int_equal(s->pid, me);
	assert_int_equal(s->starttime, starttime(me));
	assert_string_equal(s->value, "");
	find(&v, 'p', "empty", NULL);

	/* One entry alone, the same. */
	struct saved one = {0};
	assert_int_equal(mreg_save_get(f.reg, "svc", NULL, keep, &one), 0);
	assert_int_equal(mreg_save_get(f.reg, "workers", NULL, keep, &one), 0);
	assert_int_equal(mreg_save_get(f.reg, "workers", kids_, keep, &one), 0);
	assert_int_equal(one.n, 3);
	assert_int_equal(one.c[0].s.pid, kid);
	assert_int_equal(one.c[0].s.starttime, starttime(kid));
	assert_int_equal(one.c[1].s.kind, 'p');
	assert_int_equal(one.c[2].s.kind, 'm');
	assert_string_equal(one.c[2].s.value, "v1");
	assert_int_equal(mreg_save_get(f.reg, "nope", NULL, keep, &one), -ENOENT);
	assert_int_equal(mreg_save_get(f.reg, "workers", "1", keep, &one), -ENOENT);
	assert_int_equal(mreg_save_get(f.reg, "svc", kids_, keep, &one), -ENOTDIR);
	assert_int_equal(one.n, 3);
	fx_free(&f);

	f = fx_new();
	for (size_t i = 0; i < v.n; i++)
		assert_int_equal(mreg_restore(f.reg, &v.c[i].s), 0);
	char want[64];
	snprintf(want, sizeof(want), "%d hello world\n", (int)kid);
	assert_render(f.reg, NULL, "svc", want);
	snprintf(want, sizeof(want), "%d\n", (int)kid);
	assert_render(f.reg, NULL, "bare", want);
	assert_render(f.reg, "workers", kids_, "v1\n");
	assert_render(f.reg, "workers", mine, "\n");
	assert_int_equal(count(f.reg, NULL), 4);
	assert_int_equal(count(f.reg, "workers"), 2);
	assert_int_equal(count(f.reg, "empty"), 0);
	/* As fresh registrations, with their events. */
	expect_event(f.ring, "mkdir registry/workers");
	expect_event(f.ring, "mkdir registry/empty");
	expect_event(f.ring, "register registry/svc %d hello world", (int)kid);
	expect_event(f.ring, "register registry/bare %d", (int)kid);
	expect_event(f.ring, "register registry/workers/%d v1", (int)kid);
	expect_event(f.ring, "register registry/workers/%d", (int)me);

	/* Saved again, the same as before. */
	struct saved w = {0};
	assert_int_equal(mreg_save_foreach(f.reg, keep, &w), 0);
	assert_int_equal(w.n, v.n);
	for (size_t i = 0; i < v.n; i++) {
		const struct mreg_saved *a = &v.c[i].s;
		const struct mreg_saved *b = find(&w, a->kind, a->name, a->member);
		assert_int_equal(a->pid, b->pid);
		assert_int_equal(a->starttime, b->starttime);
		assert_int_equal(a->uid, b->uid);
		assert_true(!a->value == !b->value);
		if (a->value)
			assert_string_equal(a->value, b->value);
	}
	/* A pool that is there already stays as it is. */
	assert_int_equal(mreg_restore(f.reg, find(&v, 'p', "workers", NULL)), -EEXIST);
	assert_int_equal(count(f.reg, "workers"), 2);
	fx_free(&f);
	kill_and_reap(kid);
}

/* Another process now, or none: refused, and nothing changes. */
static void test_restore_refuses(void **state)
{
	(void)state;
	struct fixture f = fx_new();
	pid_t kid = spawn_sleeper(), other = spawn_sleeper();
	char kids_[16];
	snprintf(kids_, sizeof(kids_), "%d", (int)kid);
	uint64_t start = starttime(kid);

	struct mreg_saved n = {.name = "svc", .kind = 'n', .pid = kid, .value = "v"};
	struct mreg_saved m = {
	        .name = "pool", .member = kids_, .kind = 'm', .pid = kid, .value = "v"};
	struct mreg_saved p = {.name = "pool", .kind = 'p'};

	/* A member's pool must be there. */
	m.starttime = start;
	assert_int_equal(mreg_restore(f.reg, &m), -ENOENT);
	assert_int_equal(mreg_restore(f.reg, &p), 0);

	/* The PID with another start time is another process. */
	n.starttime = start + 1;
	m.starttime = start + 1;
	assert_int_equal(mreg_restore(f.reg, &n), -ESRCH);
	assert_int_equal(mreg_restore(f.reg, &m), -ESRCH);
	n.starttime = start - 1;
	assert_int_equal(mreg_restore(f.reg, &n), -ESRCH);
	assert_int_equal(count(f.reg, NULL), 1);
	assert_int_equal(count(f.reg, "pool"), 0);

	/* Bad entries. */
	n.starttime = m.starttime = start;
	struct mreg_saved bad = n;
	bad.name = "bad name";
	assert_int_equal(mreg_restore(f.reg, &bad), -EINVAL);
	bad = n;
	bad.value = "two\nlines";
	assert_int_equal(mreg_restore(f.reg, &bad), -EINVAL);
	bad = n;
	bad.kind = 'x';
	assert_int_equal(mreg_restore(f.reg, &bad), -EINVAL);
	bad = n;
	bad.pid = 0;
	assert_int_equal(mreg_restore(f.reg, &bad), -EINVAL);
	bad = m;
	bad.member = "1"; /* not its PID */
	assert_int_equal(mreg_restore(f.reg, &bad), -EINVAL);
	bad = m;
	bad.member = NULL;
	assert_int_equal(mreg_restore(f.reg, &bad), -EINVAL);
	bad = p;
	bad.name = "../x";
	assert_int_equal(mreg_restore(f.reg, &bad), -EINVAL);
	assert_int_equal(mreg_restore(f.reg, NULL), -EINVAL);
	assert_int_equal(count(f.reg, NULL), 1);

	/* A name held by another live process stays its. */
	assert_int_equal(mreg_register(f.reg, "svc", other, "theirs", 0), 0);
	assert_int_equal(mreg_restore(f.reg, &n), -EEXIST);
	char want[64];
	snprintf(want, sizeof(want), "%d theirs\n", (int)other);
	assert_render(f.reg, NULL, "svc", want);

	/* Gone: a zombie, then reaped. */
	assert_int_equal(kill(kid, SIGKILL), 0);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)kid, &si, WEXITED | WNOWAIT), 0);
	n.name = "gone";
	assert_int_equal(mreg_restore(f.reg, &n), -ESRCH);
	assert_int_equal(mreg_restore(f.reg, &m), -ESRCH);
	kill_and_reap(kid);
	assert_int_equal(mreg_restore(f.reg, &n), -ESRCH);
	assert_int_equal(mreg_restore(f.reg, &m), -ESRCH);
	assert_int_equal(mreg_lookup(f.reg, "gone", NULL, NULL), -ENOENT);
	assert_int_equal(count(f.reg, "pool"), 0);
	n.pid = missing_pid();
	assert_int_equal(mreg_restore(f.reg, &n), -ESRCH);
	assert_int_equal(count(f.reg, NULL), 2);
	fx_free(&f);
	kill_and_reap(other);
}

/* A restored entry goes when its process exits, as any registration. */
static void test_restored_vanishes_on_exit(void **state)
{
	(void)state;
	struct fixture f = fx_new();
	pid_t kid = spawn_sleeper();
	char kids_[16];
	snprintf(kids_, sizeof(kids_), "%d", (int)kid);
	uint64_t start = starttime(kid);

	struct mreg_saved p = {.name = "pool", .kind = 'p'};
	struct mreg_saved n = {.name = "svc", .kind = 'n', .pid = kid, .starttime = start};
	struct mreg_saved m = {.name = "pool",
	                       .member = kids_,
	                       .kind = 'm',
	                       .pid = kid,
	                       .starttime = start,
	                       .value = "x"};
	assert_int_equal(mreg_restore(f.reg, &p), 0);
	assert_int_equal(mreg_restore(f.reg, &n), 0);
	assert_int_equal(mreg_restore(f.reg, &m), 0);
	/* Restoring again is registering again: the same entry. */
	assert_int_equal(mreg_restore(f.reg, &n), 0);
	assert_int_equal(count(f.reg, NULL), 2);

	kill_and_reap(kid);
	expect_event(f.ring, "unregister registry/svc exit");
	expect_event(f.ring, "unregister registry/pool/%d exit", (int)kid);
	assert_int_equal(mreg_lookup(f.reg, "svc", NULL, NULL), -ENOENT);
	assert_int_equal(count(f.reg, "pool"), 0);
	assert_int_equal(count(f.reg, NULL), 1);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_starttime_self_and_child, teardown_kids),
	        cmocka_unit_test_teardown(test_starttime_odd_command, teardown_kids),
	        cmocka_unit_test_teardown(test_round_trip, teardown_kids),
	        cmocka_unit_test_teardown(test_restore_refuses, teardown_kids),
	        cmocka_unit_test_teardown(test_restored_vanishes_on_exit, teardown_kids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
