/* SPDX-License-Identifier: MIT */
/* Unit tests of core/registry.c. They fork real processes (sleepers,
 * zombies, processes of another uid); the ownership test needs root and is
 * skipped otherwise. Under valgrind, which lacks pidfd_open before 3.20,
 * build with -DTEST_FAKE_PIDFD -Wl,--wrap=syscall (see below). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "registry.h"
#include "util.h"

#ifdef TEST_FAKE_PIDFD
/* Valgrind 3.19 does not know pidfd_open. Built with -DTEST_FAKE_PIDFD
 * -Wl,--wrap=syscall (for the valgrind run only), the test stands in for
 * it: a "pidfd" is the read end of a pipe whose write end the test closes
 * once it has reaped the process, so the registry sees it turn readable
 * (POLLHUP) as a real pidfd does on exit. Only the test's own children exit
 * while registered, so the test knows every exit. */
long __real_syscall(long nr, ...);
long __wrap_syscall(long nr, ...);

static struct {
	pid_t pid;
	int wfd;
} fakes[512];
static size_t nfakes;
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;

/* A real pidfd_open refuses a thread that does not lead its process. */
static bool fake_is_leader(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	bool leader = false;
	if (!f)
		return false;
	while (fgets(buf, sizeof(buf), f)) {
		int tgid;
		if (sscanf(buf, "Tgid: %d", &tgid) == 1) {
			leader = tgid == pid;
			break;
		}
	}
	fclose(f);
	return leader;
}

long __wrap_syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	va_start(ap, nr);
	for (size_t i = 0; i < MU_ARRAY_SIZE(a); i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr != SYS_pidfd_open)
		return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);

	pid_t pid = (pid_t)a[0];
	int p[2];
	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) {
		errno = ESRCH;
		return -1;
	}
	if (!fake_is_leader(pid)) {
		errno = EINVAL;
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pthread_mutex_lock(&fake_lock);
	if (nfakes == MU_ARRAY_SIZE(fakes)) {
		pthread_mutex_unlock(&fake_lock);
		close(p[0]);
		close(p[1]);
		errno = EMFILE;
		return -1;
	}
	fakes[nfakes].pid = pid;
	fakes[nfakes].wfd = p[1];
	nfakes++;
	pthread_mutex_unlock(&fake_lock);
	return p[0];
}

/* Drops the fakes of pid (exited: true) or whose read end is closed. */
static void fake_drop(pid_t pid, bool exited)
{
	pthread_mutex_lock(&fake_lock);
	for (size_t i = 0; i < nfakes;) {
		struct pollfd pfd = {.fd = fakes[i].wfd};
		bool unread = poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLERR);
		if ((exited && fakes[i].pid == pid) || unread) {
			close(fakes[i].wfd);
			fakes[i] = fakes[--nfakes];
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&fake_lock);
}
#define FDS_PER_PIDFD 2
#else
static void fake_drop(pid_t pid, bool exited)
{
}
#define FDS_PER_PIDFD 1
#endif

/* Children forked by a test, killed and reaped by the teardown even when
 * an assertion failed half-way. */
static pid_t kids[64];
static size_t nkids;

/* pid was reaped by the test. */
static void reaped(pid_t pid)
{
	fake_drop(pid, true);
	for (size_t i = 0; i < nkids; i++) {
		if (kids[i] == pid) {
			kids[i] = kids[--nkids];
			return;
		}
	}
}

static int teardown_kids(void **state)
{
	for (size_t i = 0; i < nkids; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
		fake_drop(kids[i], true);
	}
	nkids = 0;
	return 0;
}

/* A child that sleeps until killed; uid/euid, when not -1, are set first
 * (as real and effective uid) and the parent waits until they are. */
static pid_t spawn_as(uid_t ruid, uid_t euid)
{
	int p[2];
	char c = 0;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (ruid != (uid_t)-1 && setresuid(ruid, euid, ruid) < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	assert_true(nkids < MU_ARRAY_SIZE(kids));
	kids[nkids++] = pid;
	return pid;
}

static pid_t spawn_sleeper(void)
{
	return spawn_as((uid_t)-1, (uid_t)-1);
}

static void kill_and_reap(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	reaped(pid);
}

/* A child that has exited and is left unreaped: a zombie. */
static pid_t spawn_zombie(void)
{
	siginfo_t si;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	kids[nkids++] = pid;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	return pid;
}

static size_t count_fds(void)
{
	fake_drop(0, false);
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;
	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Events as "OP PATH[ DETAIL]", collected by a ring listener. */
static struct {
	pthread_mutex_t lock;
	char lines[256][512];
	size_t n;
	/* A registry left behind by a failed test must not pollute the next. */
	const struct mev_ring *ring;
} rec = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void record(const struct mev *ev, void *arg)
{
	pthread_mutex_lock(&rec.lock);
	if (arg == rec.ring && rec.n < MU_ARRAY_SIZE(rec.lines)) {
		snprintf(rec.lines[rec.n++], sizeof(rec.lines[0]), "%s %s%s%s", mev_op_name(ev->op),
		         ev->path, ev->detail ? " " : "", ev->detail ? ev->detail : "");
	}
	pthread_mutex_unlock(&rec.lock);
}

static size_t rec_count(const char *line)
{
	size_t c = 0;
	pthread_mutex_lock(&rec.lock);
	for (size_t i = 0; i < rec.n; i++)
		if (strcmp(rec.lines[i], line) == 0)
			c++;
	pthread_mutex_unlock(&rec.lock);
	return c;
}

static size_t rec_total(void)
{
	pthread_mutex_lock(&rec.lock);
	size_t n = rec.n;
	pthread_mutex_unlock(&rec.lock);
	return n;
}

static void rec_reset(const struct mev_ring *ring)
{
	pthread_mutex_lock(&rec.lock);
	rec.n = 0;
	rec.ring = ring;
	pthread_mutex_unlock(&rec.lock);
}

static void expect_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void expect_event(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (rec_count(line) != 1)
		fail_msg("expected exactly one event \"%s\"", line);
}

struct fixture {
	struct mev_ring *ring;
	struct mreg *reg;
};

static struct fixture fx_new(void)
{
	struct fixture f;
	f.ring = mev_ring_new(1024);
	assert_non_null(f.ring);
	rec_reset(f.ring);
	assert_int_equal(mev_ring_add_listener(f.ring, record, f.ring), 0);
	f.reg = mreg_new(f.ring);
	assert_non_null(f.reg);
	return f;
}

static void fx_free(struct fixture *f)
{
	mreg_free(f->reg);
	mev_ring_free(f->ring);
}

/* Entries seen by a listing, in the order given. */
struct seen {
	char names[32][MU_NAME_MAX + 1];
	char kinds[32];
	uint64_t ids[32];
	uint64_t cookies[32];
	uid_t uids[32];
	size_t n;
	size_t stop_after; /* 0: never */
};

static int collect(const struct mreg_entry *e, void *arg)
{
	struct seen *s = arg;
	assert_true(s->n < 32);
	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", e->name);
	s->kinds[s->n] = e->kind;
	s->ids[s->n] = e->id;
	s->cookies[s->n] = e->cookie;
	s->uids[s->n] = e->uid;
	s->n++;
	return s->stop_after && s->n == s->stop_after ? 7 : 0;
}

static size_t list_count(struct mreg *reg)
{
	struct seen s = {0};
	assert_int_equal(mreg_list(reg, 0, collect, &s), 0);
	return s.n;
}

static void assert_render(struct mreg *reg, const char *name, const char *want)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mreg_render(reg, name, &text, &len), 0);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
}

static void assert_pool_render(struct mreg *reg, const char *pool, const char *member,
                               const char *want)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mreg_pool_render(reg, pool, member, &text, &len), 0);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
}

static int reg_text(struct mreg *reg, const char *name, const char *text, uid_t caller)
{
	return mreg_register_text(reg, name, text, strlen(text), caller);
}

static int reg_textf(struct mreg *reg, const char *name, uid_t caller, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int reg_textf(struct mreg *reg, const char *name, uid_t caller, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return reg_text(reg, name, text, caller);
}

static int pool_store(struct mreg *reg, const char *pool, pid_t pid, const char *value,
                      uid_t caller)
{
	char member[16];
	snprintf(member, sizeof(member), "%d", (int)pid);
	return mreg_pool_store(reg, pool, member, value, strlen(value), caller);
}

/* Valgrind before 3.20 does not know pidfd_open: the registry answers
 * ENOSYS there, and only what needs no process can be tested. */
static bool have_pidfd;

#define NEED_PIDFD()             \
	do {                     \
		if (!have_pidfd) \
			skip();  \
	} while (0)

static pid_t missing_pid(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	long max = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &max), 1);
	fclose(f);
	return (pid_t)(max + 1);
}

static void test_register_lookup_render_unregister(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid(), pid = 0;
	char *value = NULL;

	assert_int_equal(reg_textf(f.reg, "svc", 0, "%d hello  world\n", me), 0);
	assert_int_equal(mreg_lookup(f.reg, "svc", &pid, &value), 0);
	assert_int_equal(pid, me);
	assert_string_equal(value, "hello  world");
	free(value);
	char want[64];
	snprintf(want, sizeof(want), "%d hello  world\n", me);
	assert_render(f.reg, "svc", want);
	expect_event("register registry/svc %d hello  world", me);

	/* No value, written as "PID", "PID\n" or "PID ". */
	assert_int_equal(reg_textf(f.reg, "bare", 0, "%d", me), 0);
	assert_int_equal(reg_textf(f.reg, "bare2", 0, "%d\n", me), 0);
	assert_int_equal(reg_textf(f.reg, "bare3", 0, "%d \n", me), 0);
	assert_int_equal(mreg_register(f.reg, "bare4", me, "", 0), 0);
	snprintf(want, sizeof(want), "%d\n", me);
	const char *bare[] = {"bare", "bare2", "bare3", "bare4"};
	for (size_t i = 0; i < MU_ARRAY_SIZE(bare); i++) {
		value = (char *)"sentinel";
		assert_int_equal(mreg_lookup(f.reg, bare[i], &pid, &value), 0);
		assert_null(value);
		assert_render(f.reg, bare[i], want);
		expect_event("register registry/%s %d", bare[i], me);
	}

	struct mreg_entry e = {.name = "x"};
	assert_int_equal(mreg_stat(f.reg, "svc", NULL, &e), 0);
	assert_null(e.name);
	assert_int_equal(e.kind, 'n');
	assert_int_equal(e.uid, 0);
	assert_true(e.id > 0);
	assert_true(e.mtime.tv_sec > 0);

	assert_int_equal(mreg_unregister(f.reg, "svc"), 0);
	expect_event("unregister registry/svc");
	assert_int_equal(mreg_lookup(f.reg, "svc", &pid, NULL), -ENOENT);
	char *text = NULL;
	assert_int_equal(mreg_render(f.reg, "svc", &text, NULL), -ENOENT);
	assert_null(text);
	assert_int_equal(mreg_stat(f.reg, "svc", NULL, &e), -ENOENT);
	assert_int_equal(mreg_unregister(f.reg, "svc"), -ENOENT);
	assert_int_equal(mreg_unregister(f.reg, "bad/name"), -ENOENT);
	assert_int_equal(list_count(f.reg), 4);
	fx_free(&f);
}

static void test_reregister_same_pid_replaces(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid();
	struct mreg_entry a, b;
	char want[64];

	assert_int_equal(reg_textf(f.reg, "n", 0, "%d one", me), 0);
	assert_int_equal(mreg_stat(f.reg, "n", NULL, &a), 0);
	assert_int_equal(reg_textf(f.reg, "n", 0, "%d two", me), 0);
	assert_int_equal(mreg_stat(f.reg, "n", NULL, &b), 0);
	assert_int_equal(a.id, b.id);
	snprintf(want, sizeof(want), "%d two\n", me);
	assert_render(f.reg, "n", want);
	/* Back to no value. */
	assert_int_equal(mreg_register(f.reg, "n", me, NULL, 0), 0);
	snprintf(want, sizeof(want), "%d\n", me);
	assert_render(f.reg, "n", want);
	assert_int_equal(list_count(f.reg), 1);
	expect_event("register registry/n %d one", me);
	expect_event("register registry/n %d two", me);
	expect_event("register registry/n %d", me);
	fx_free(&f);
}

static void test_eexist_for_another_live_pid(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t kid = spawn_sleeper(), me = getpid(), pid = 0;
	char *value = NULL;

	assert_int_equal(reg_textf(f.reg, "x", 0, "%d kid", kid), 0);
	size_t before = rec_total();
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d me", me), -EEXIST);
	assert_int_equal(mreg_register(f.reg, "x", me, NULL, 0), -EEXIST);
	assert_int_equal(rec_total(), before);
	assert_int_equal(mreg_lookup(f.reg, "x", &pid, &value), 0);
	assert_int_equal(pid, kid);
	assert_string_equal(value, "kid");
	free(value);

	/* Error order: EINVAL, ESRCH, EPERM, then EEXIST. */
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", me), -EPERM);
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", missing_pid()), -ESRCH);
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%dz", missing_pid()), -EINVAL);
	assert_int_equal(reg_textf(f.reg, "bad name", 12345, "%d", missing_pid()), -EINVAL);
	assert_int_equal(list_count(f.reg), 1);
	kill_and_reap(kid);
	fx_free(&f);
}

static void test_name_freed_when_holder_exits(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t kid = spawn_sleeper(), me = getpid(), pid = 0;
	struct mreg_entry a, b;

	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", kid), 0);
	assert_int_equal(mreg_stat(f.reg, "x", NULL, &a), 0);
	kill_and_reap(kid);
	/* No waiting: whether or not the watcher has run, the name is free. */
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d mine", me), 0);
	assert_int_equal(mreg_lookup(f.reg, "x", &pid, NULL), 0);
	assert_int_equal(pid, me);
	assert_int_equal(mreg_stat(f.reg, "x", NULL, &b), 0);
	assert_true(b.id > a.id);
	expect_event("unregister registry/x exit");
	expect_event("register registry/x %d mine", me);

	/* A pool may take a name whose holder has exited, too. */
	kid = spawn_sleeper();
	assert_int_equal(reg_textf(f.reg, "y", 0, "%d", kid), 0);
	assert_int_equal(mreg_pool_create(f.reg, "y"), -EEXIST);
	kill_and_reap(kid);
	assert_int_equal(mreg_pool_create(f.reg, "y"), 0);
	expect_event("unregister registry/y exit");
	fx_free(&f);
}

static void *park(void *arg)
{
	pthread_barrier_t *b = arg;
	pthread_barrier_wait(b); /* tid is known */
	pthread_barrier_wait(b); /* test done */
	return NULL;
}

static pid_t park_tid;

static void *park_tid_main(void *arg)
{
	park_tid = (pid_t)syscall(SYS_gettid);
	return park(arg);
}

static void test_esrch(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	size_t before = rec_total();

	/* Above pid_max: no process can have it. */
	pid_t none = missing_pid();
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", none), -ESRCH);
	assert_int_equal(mreg_register(f.reg, "x", none, "v", 0), -ESRCH);
	assert_int_equal(pool_store(f.reg, "p", none, "v", 0), -ESRCH);

	/* A reaped child. */
	pid_t gone = spawn_sleeper();
	kill_and_reap(gone);
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", gone), -ESRCH);
	assert_int_equal(pool_store(f.reg, "p", gone, "v", 0), -ESRCH);

	/* A zombie is not a live process. */
	pid_t zombie = spawn_zombie();
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", zombie), -ESRCH);
	assert_int_equal(pool_store(f.reg, "p", zombie, "v", 0), -ESRCH);
	assert_int_equal(waitpid(zombie, NULL, 0), zombie);
	reaped(zombie);

	/* A thread that does not lead its process is no process. */
	pthread_barrier_t b;
	pthread_t t;
	pthread_barrier_init(&b, NULL, 2);
	assert_int_equal(pthread_create(&t, NULL, park_tid_main, &b), 0);
	pthread_barrier_wait(&b);
	assert_int_not_equal(park_tid, getpid());
	assert_int_equal(reg_textf(f.reg, "x", 0, "%d", park_tid), -ESRCH);
	pthread_barrier_wait(&b);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&b);

	/* Nothing was left behind. */
	assert_int_equal(mreg_lookup(f.reg, "x", NULL, NULL), -ENOENT);
	struct seen s = {0};
	assert_int_equal(mreg_pool_list(f.reg, "p", 0, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(list_count(f.reg), 1);
	assert_int_equal(rec_total(), before);
	fx_free(&f);
}

static void test_eperm(void **state)
{
	NEED_PIDFD();
	if (geteuid() != 0)
		skip();
	struct fixture f = fx_new();
	pid_t me = getpid();
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	size_t before = rec_total();
	/* Root's process, written by uid 12345. */
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", me), -EPERM);
	assert_int_equal(pool_store(f.reg, "p", me, "v", 12345), -EPERM);
	assert_int_equal(mreg_lookup(f.reg, "x", NULL, NULL), -ENOENT);
	assert_int_equal(rec_total(), before);

	/* The owner is the effective uid: a process with real uid 23456 and
	 * effective uid 12345 belongs to 12345. */
	pid_t kid = spawn_as(23456, 12345);
	assert_int_equal(reg_textf(f.reg, "x", 23456, "%d", kid), -EPERM);
	assert_int_equal(reg_textf(f.reg, "x", 54321, "%d", kid), -EPERM);
	assert_int_equal(pool_store(f.reg, "p", kid, "v", 23456), -EPERM);
	assert_int_equal(mreg_lookup(f.reg, "x", NULL, NULL), -ENOENT);
	assert_int_equal(reg_textf(f.reg, "x", 12345, "%d", kid), 0);
	assert_int_equal(pool_store(f.reg, "p", kid, "v", 12345), 0);
	/* Root may register anyone's process. */
	assert_int_equal(reg_textf(f.reg, "y", 0, "%d", kid), 0);

	struct mreg_entry e;
	assert_int_equal(mreg_stat(f.reg, "x", NULL, &e), 0);
	assert_int_equal(e.uid, 12345);
	char member[16];
	snprintf(member, sizeof(member), "%d", kid);
	assert_int_equal(mreg_stat(f.reg, "p", member, &e), 0);
	assert_int_equal(e.kind, 'm');
	assert_int_equal(e.uid, 12345);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_int_equal(e.kind, 'p');
	assert_int_equal(e.uid, 0);
	kill_and_reap(kid);
	fx_free(&f);
}

static void test_einval(void **state)
{
	struct fixture f = fx_new();
	pid_t me = getpid();
	char text[64];

	const char *texts[] = {
	        "abc", "-1",   "0",   "00",          "12x",        "+5",
	        " 5",  "",     "\n",  "5\n\n",       "5\t",        "5 a\nb",
	        "5\r", "0x10", "1e3", "99999999999", "2147483648", "4294967297",
	};
	for (size_t i = 0; i < MU_ARRAY_SIZE(texts); i++) {
		if (reg_text(f.reg, "x", texts[i], 0) != -EINVAL)
			fail_msg("text \"%s\" was not refused with EINVAL", texts[i]);
	}
	/* A NUL in the value. */
	int n = snprintf(text, sizeof(text), "%d a", me);
	text[n++] = '\0';
	text[n++] = 'b';
	assert_int_equal(mreg_register_text(f.reg, "x", text, (size_t)n, 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", 0, NULL, 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", -1, NULL, 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", me, "a\nb", 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "x", me, "a\n", 0), -EINVAL);

	char longname[MU_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	const char *names[] = {"", ".", "..", "a/b", "a b", "caf\xc3\xa9", "a\nb", "a:b", longname};
	snprintf(text, sizeof(text), "%d", me);
	for (size_t i = 0; i < MU_ARRAY_SIZE(names); i++) {
		if (reg_text(f.reg, names[i], text, 0) != -EINVAL)
			fail_msg("name \"%s\" was not refused with EINVAL", names[i]);
		if (mreg_pool_create(f.reg, names[i]) != -EINVAL)
			fail_msg("pool \"%s\" was not refused with EINVAL", names[i]);
	}
	assert_int_equal(mreg_register(f.reg, NULL, me, NULL, 0), -EINVAL);
	assert_int_equal(list_count(f.reg), 0);
	assert_int_equal(rec_total(), 0);
	if (!have_pidfd)
		goto out;

	/* The longest valid name is fine. */
	longname[MU_NAME_MAX] = '\0';
	assert_int_equal(reg_text(f.reg, longname, text, 0), 0);
	assert_int_equal(mreg_unregister(f.reg, longname), 0);

	/* Leading zeros are still a decimal PID in the written text. */
	assert_int_equal(reg_textf(f.reg, "z", 0, "00%d", me), 0);
	pid_t pid = 0;
	assert_int_equal(mreg_lookup(f.reg, "z", &pid, NULL), 0);
	assert_int_equal(pid, me);
	assert_int_equal(mreg_unregister(f.reg, "z"), 0);
	assert_int_equal(list_count(f.reg), 0);
	assert_int_equal(rec_total(), 4);
out:
	fx_free(&f);
}

/* mreg_counts: names, pools and members, as the root's metrics shows them. */
static void assert_counts(struct mreg *reg, uint64_t names, uint64_t pools, uint64_t members)
{
	struct mreg_counts c;
	mreg_counts(reg, &c);
	assert_int_equal(c.names, names);
	assert_int_equal(c.pools, pools);
	assert_int_equal(c.members, members);
}

static void test_exit_removes_every_entry(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	uint64_t cursor = mev_ring_next_seq(f.ring);
	size_t fds = count_fds();

	pid_t kid = spawn_sleeper();
	assert_int_equal(mreg_pool_create(f.reg, "p1"), 0);
	assert_int_equal(mreg_pool_create(f.reg, "p2"), 0);
	assert_int_equal(reg_textf(f.reg, "worker", 0, "%d w", kid), 0);
	assert_int_equal(pool_store(f.reg, "p1", kid, "one\n", 0), 0);
	assert_int_equal(pool_store(f.reg, "p2", kid, "two", 0), 0);
	/* One pidfd for the three entries. */
	assert_int_equal(count_fds(), fds + FDS_PER_PIDFD);
	assert_counts(f.reg, 1, 2, 2);
	char member[16];
	snprintf(member, sizeof(member), "%d", kid);
	assert_pool_render(f.reg, "p1", member, "one\n");
	assert_pool_render(f.reg, "p2", member, "two\n");

	uint64_t t0 = mu_now_ms();
	assert_int_equal(kill(kid, SIGKILL), 0);
	assert_int_equal(waitpid(kid, NULL, 0), kid);
	reaped(kid);
	bool gone = false;
	while (mu_now_ms() - t0 <= 100) {
		char *text = NULL;
		if (mreg_lookup(f.reg, "worker", NULL, NULL) == -ENOENT &&
		    mreg_pool_render(f.reg, "p1", member, &text, NULL) == -ENOENT &&
		    mreg_pool_render(f.reg, "p2", member, &text, NULL) == -ENOENT) {
			gone = true;
			break;
		}
		free(text);
		usleep(5000);
	}
	if (!gone)
		fail_msg("entries of an exited process still there after 100 ms");
	expect_event("unregister registry/worker exit");
	expect_event("unregister registry/p1/%d exit", kid);
	expect_event("unregister registry/p2/%d exit", kid);

	/* The feed says the same. */
	char buf[4096], line[128];
	ssize_t n = mev_ring_read(f.ring, &cursor, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	snprintf(line, sizeof(line), " unregister registry/p2/%d exit\n", kid);
	assert_non_null(strstr(buf, line));
	assert_non_null(strstr(buf, " unregister registry/worker exit\n"));
	snprintf(line, sizeof(line), " register registry/p1/%d one\n", kid);
	assert_non_null(strstr(buf, line));

	/* The pidfd is closed, the pools stay, empty. */
	assert_int_equal(count_fds(), fds);
	assert_counts(f.reg, 0, 2, 0);
	assert_int_equal(mreg_pool_destroy(f.reg, "p1"), 0);
	assert_int_equal(mreg_pool_destroy(f.reg, "p2"), 0);
	assert_counts(f.reg, 0, 0, 0);
	assert_int_equal(list_count(f.reg), 0);
	fx_free(&f);
}

/* What pools do without any process. */
static void test_pool_rules(void **state)
{
	struct fixture f = fx_new();
	char member[16];
	struct mreg_entry e;
	struct seen s = {0};

	snprintf(member, sizeof(member), "%d", getpid());
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	expect_event("mkdir registry/p");
	assert_int_equal(mreg_pool_create(f.reg, "p"), -EEXIST);
	assert_int_equal(mreg_pool_create(f.reg, "q"), 0);
	assert_int_equal(mreg_pool_destroy(f.reg, "nope"), -ENOENT);
	assert_int_equal(mreg_pool_destroy(f.reg, "bad/name"), -ENOENT);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_null(e.name);
	assert_int_equal(e.kind, 'p');
	assert_int_equal(e.uid, 0);
	assert_int_equal(mreg_stat(f.reg, "nope", NULL, &e), -ENOENT);

	/* Member names must be canonical PIDs. */
	const char *bad[] = {"abc", "0", "-1", "+1", "", "0123", "1 ", " 1", "1x", "2147483648"};
	for (size_t i = 0; i < MU_ARRAY_SIZE(bad); i++) {
		if (mreg_pool_store(f.reg, "p", bad[i], "v", 1, 0) != -EINVAL)
			fail_msg("member \"%s\" was not refused with EINVAL", bad[i]);
	}
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "a\nb", 3, 0), -EINVAL);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "a\n\n", 3, 0), -EINVAL);
	assert_int_equal(mreg_pool_store(f.reg, "bad/p", member, "v", 1, 0), -EINVAL);
	/* No pool beats anything about the process. */
	assert_int_equal(mreg_pool_store(f.reg, "nope", member, "v", 1, 0), -ENOENT);
	assert_int_equal(pool_store(f.reg, "nope", missing_pid(), "v", 0), -ENOENT);
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), -ENOENT);
	assert_int_equal(mreg_pool_list(f.reg, "p", 0, collect, &s), 0);
	assert_int_equal(s.n, 0);

	/* Listing in cookie order, resuming after a cookie. */
	assert_int_equal(mreg_pool_create(f.reg, "a"), 0);
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "p");
	assert_string_equal(s.names[1], "q");
	assert_string_equal(s.names[2], "a");
	assert_true(s.ids[0] < s.ids[1] && s.ids[1] < s.ids[2]);
	assert_true(s.cookies[0] < s.cookies[1] && s.cookies[1] < s.cookies[2]);
	uint64_t id_q = s.ids[1], cookie_q = s.cookies[1];
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, cookie_q, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "a");

	/* A pool made again has a new id; its freed position is taken again. */
	assert_int_equal(mreg_pool_destroy(f.reg, "q"), 0);
	expect_event("rmdir registry/q");
	assert_int_equal(mreg_pool_destroy(f.reg, "q"), -ENOENT);
	assert_int_equal(mreg_pool_create(f.reg, "q"), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[1], "q");
	assert_int_equal(s.cookies[1], cookie_q);
	assert_true(s.ids[1] > id_q + 1);
	/* Live pools are freed with the registry. */
	fx_free(&f);
}

static void test_pools(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid();
	char member[16];
	struct mreg_entry e, m1, m2, p1, p2;

	snprintf(member, sizeof(member), "%d", me);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	/* Names and pools share one namespace. */
	assert_int_equal(reg_textf(f.reg, "p", 0, "%d", me), -EEXIST);
	assert_int_equal(reg_textf(f.reg, "n", 0, "%d", me), 0);
	assert_int_equal(mreg_pool_create(f.reg, "n"), -EEXIST);
	assert_counts(f.reg, 1, 1, 0);
	assert_int_equal(mreg_unregister(f.reg, "p"), -EISDIR);
	assert_int_equal(mreg_pool_destroy(f.reg, "n"), -ENOTDIR);
	assert_int_equal(mreg_lookup(f.reg, "p", NULL, NULL), -EISDIR);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &p1), 0);
	assert_int_equal(mreg_pool_store(f.reg, "n", member, "v", 1, 0), -ENOTDIR);
	struct seen s = {0};

	usleep(2000);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "v\n", 2, 0), 0);
	expect_event("register registry/p/%d v", me);
	assert_pool_render(f.reg, "p", member, "v\n");
	assert_int_equal(mreg_stat(f.reg, "p", member, &m1), 0);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &p2), 0);
	assert_int_equal(m1.kind, 'm');
	assert_int_equal(p2.id, p1.id);
	/* The pool's mtime follows its member set. */
	assert_true(p2.mtime.tv_sec > p1.mtime.tv_sec ||
	            (p2.mtime.tv_sec == p1.mtime.tv_sec && p2.mtime.tv_nsec > p1.mtime.tv_nsec));

	/* Storing again replaces, keeping the id; a refused value changes nothing. */
	assert_int_equal(pool_store(f.reg, "p", me, "w", 0), 0);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "x\ny", 3, 0), -EINVAL);
	assert_counts(f.reg, 1, 1, 1);
	assert_pool_render(f.reg, "p", member, "w\n");
	assert_int_equal(mreg_stat(f.reg, "p", member, &m2), 0);
	assert_int_equal(m2.id, m1.id);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_true(e.mtime.tv_sec == p2.mtime.tv_sec && e.mtime.tv_nsec == p2.mtime.tv_nsec);
	/* An empty value. */
	assert_int_equal(pool_store(f.reg, "p", me, "\n", 0), 0);
	assert_pool_render(f.reg, "p", member, "\n");
	expect_event("register registry/p/%d", me);

	assert_int_equal(mreg_pool_destroy(f.reg, "p"), -ENOTEMPTY);
	assert_int_equal(mreg_stat(f.reg, "p", member, &e), 0);
	assert_int_equal(mreg_stat(f.reg, "n", member, &e), -ENOTDIR);
	assert_int_equal(mreg_stat(f.reg, "p", "0123", &e), -ENOENT);
	assert_int_equal(mreg_pool_unstore(f.reg, "p", "1"), -ENOENT);
	assert_int_equal(mreg_pool_unstore(f.reg, "nope", member), -ENOENT);
	usleep(2000);
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), 0);
	expect_event("unregister registry/p/%d", me);
	assert_int_equal(mreg_stat(f.reg, "p", NULL, &e), 0);
	assert_true(e.mtime.tv_sec > p2.mtime.tv_sec ||
	            (e.mtime.tv_sec == p2.mtime.tv_sec && e.mtime.tv_nsec > p2.mtime.tv_nsec));
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), -ENOENT);
	assert_counts(f.reg, 1, 1, 0);
	char *text = NULL;
	assert_int_equal(mreg_pool_render(f.reg, "p", member, &text, NULL), -ENOENT);
	assert_null(text);
	assert_int_equal(mreg_pool_destroy(f.reg, "p"), 0);
	expect_event("rmdir registry/p");
	assert_int_equal(mreg_pool_destroy(f.reg, "p"), -ENOENT);
	assert_int_equal(mreg_pool_store(f.reg, "p", member, "v", 1, 0), -ENOENT);
	assert_int_equal(mreg_pool_list(f.reg, "p", 0, collect, &s), -ENOENT);
	assert_counts(f.reg, 1, 0, 0);
	/* The name is free again for a unique registration. */
	assert_int_equal(reg_textf(f.reg, "p", 0, "%d", me), 0);
	assert_counts(f.reg, 2, 0, 0);
	fx_free(&f);
}

static void test_list_order_and_cursor(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pid_t me = getpid();
	struct seen s;

	assert_int_equal(reg_textf(f.reg, "c", 0, "%d", me), 0);
	assert_int_equal(mreg_pool_create(f.reg, "b"), 0);
	assert_int_equal(reg_textf(f.reg, "a", 0, "%d", me), 0);

	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "c");
	assert_string_equal(s.names[1], "b");
	assert_string_equal(s.names[2], "a");
	assert_int_equal(s.kinds[0], 'n');
	assert_int_equal(s.kinds[1], 'p');
	assert_int_equal(s.kinds[2], 'n');
	assert_true(s.ids[0] < s.ids[1] && s.ids[1] < s.ids[2]);
	uint64_t id_c = s.ids[0], id_b = s.ids[1], id_a = s.ids[2];
	uint64_t cookie_c = s.cookies[0], cookie_a = s.cookies[2];

	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, cookie_c, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "b");
	assert_string_equal(s.names[1], "a");
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, cookie_a, collect, &s), 0);
	assert_int_equal(s.n, 0);

	/* fn stops the walk and its value comes back. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 7);
	assert_int_equal(s.n, 1);

	/* Replacing keeps the id; removing and registering again makes a new
	 * one, at the position freed (so a listing past it does not see it). */
	assert_int_equal(reg_textf(f.reg, "c", 0, "%d again", me), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.ids[0], id_c);
	assert_int_equal(mreg_unregister(f.reg, "c"), 0);
	assert_int_equal(reg_textf(f.reg, "c", 0, "%d", me), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "c");
	assert_string_equal(s.names[1], "b");
	assert_string_equal(s.names[2], "a");
	assert_int_equal(s.cookies[0], cookie_c);
	assert_true(s.ids[0] > id_a);
	assert_int_equal(s.ids[1], id_b);

	/* Members, in cookie order, resuming after a cookie. */
	pid_t k1 = spawn_sleeper(), k2 = spawn_sleeper();
	assert_int_equal(pool_store(f.reg, "b", k2, "2", 0), 0);
	assert_int_equal(pool_store(f.reg, "b", me, "me", 0), 0);
	assert_int_equal(pool_store(f.reg, "b", k1, "1", 0), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_pool_list(f.reg, "b", 0, collect, &s), 0);
	assert_int_equal(s.n, 3);
	char want[16];
	snprintf(want, sizeof(want), "%d", k2);
	assert_string_equal(s.names[0], want);
	snprintf(want, sizeof(want), "%d", me);
	assert_string_equal(s.names[1], want);
	snprintf(want, sizeof(want), "%d", k1);
	assert_string_equal(s.names[2], want);
	assert_int_equal(s.kinds[0], 'm');
	assert_true(s.ids[0] < s.ids[1] && s.ids[1] < s.ids[2]);
	uint64_t first = s.ids[0], first_cookie = s.cookies[0];
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_pool_list(f.reg, "b", first_cookie, collect, &s), 0);
	assert_int_equal(s.n, 2);
	snprintf(want, sizeof(want), "%d", me);
	assert_string_equal(s.names[0], want);
	/* Pool members take ids from the same sequence. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(mreg_list(f.reg, 0, collect, &s), 0);
	assert_true(first > s.ids[2]);
	kill_and_reap(k1);
	kill_and_reap(k2);
	fx_free(&f);
}

static void test_free_with_live_entries(void **state)
{
	NEED_PIDFD();
	size_t fds = count_fds();
	struct fixture f = fx_new();
	pid_t me = getpid(), k1 = spawn_sleeper(), k2 = spawn_sleeper();

	assert_int_equal(reg_textf(f.reg, "a", 0, "%d value", k1), 0);
	assert_int_equal(reg_textf(f.reg, "b", 0, "%d", me), 0);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	assert_int_equal(mreg_pool_create(f.reg, "q"), 0);
	assert_int_equal(pool_store(f.reg, "p", k1, "x", 0), 0);
	assert_int_equal(pool_store(f.reg, "p", k2, "y", 0), 0);
	assert_int_equal(pool_store(f.reg, "q", k2, "z", 0), 0);
	assert_int_equal(pool_store(f.reg, "q", me, "z", 0), 0);
	size_t events = rec_total();
	mreg_free(f.reg);
	/* Freeing the registry is not its processes exiting. */
	assert_int_equal(rec_total(), events);
	mev_ring_free(f.ring);
	/* Every pidfd, the epoll fd and the eventfd are closed. */
	assert_int_equal(count_fds(), fds);
	mreg_free(NULL);
	/* A registry without a ring works, too. */
	struct mreg *reg = mreg_new(NULL);
	assert_non_null(reg);
	assert_int_equal(reg_textf(reg, "a", 0, "%d", k1), 0);
	kill_and_reap(k1);
	uint64_t t0 = mu_now_ms();
	while (mreg_lookup(reg, "a", NULL, NULL) == 0 && mu_now_ms() - t0 < 1000)
		usleep(5000);
	assert_int_equal(mreg_lookup(reg, "a", NULL, NULL), -ENOENT);
	mreg_free(reg);
	kill_and_reap(k2);
	assert_int_equal(count_fds(), fds);
}

/* Threads register, list and unregister while processes come and go, so
 * that the thread sanitizer sees the watcher race with callers. */
struct stress {
	struct mreg *reg;
	int idx;
};

static void *stress_main(void *arg)
{
	struct stress *st = arg;
	char name[16], text[32];
	snprintf(name, sizeof(name), "t%d", st->idx);
	snprintf(text, sizeof(text), "%d v", (int)getpid());
	for (int i = 0; i < 200; i++) {
		struct seen s = {0};
		struct mreg_entry e;
		if (reg_text(st->reg, name, text, 0) != 0)
			return (void *)1;
		if (mreg_stat(st->reg, name, NULL, &e) != 0)
			return (void *)2;
		mreg_list(st->reg, 0, collect, &s);
		if (mreg_unregister(st->reg, name) != 0)
			return (void *)3;
	}
	return NULL;
}

static void test_concurrent_use(void **state)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	struct stress st[4];
	pthread_t t[4];

	assert_int_equal(mreg_pool_create(f.reg, "pool"), 0);
	for (int i = 0; i < 4; i++) {
		st[i] = (struct stress){f.reg, i};
		assert_int_equal(pthread_create(&t[i], NULL, stress_main, &st[i]), 0);
	}
	for (int i = 0; i < 10; i++) {
		pid_t kid = spawn_sleeper();
		char name[16];
		snprintf(name, sizeof(name), "k%d", i);
		assert_int_equal(reg_textf(f.reg, name, 0, "%d", kid), 0);
		assert_int_equal(pool_store(f.reg, "pool", kid, "v", 0), 0);
		kill_and_reap(kid);
	}
	for (int i = 0; i < 4; i++) {
		void *ret = NULL;
		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	uint64_t t0 = mu_now_ms();
	while (list_count(f.reg) > 1 && mu_now_ms() - t0 < 1000)
		usleep(5000);
	assert_int_equal(list_count(f.reg), 1);
	assert_int_equal(mreg_pool_destroy(f.reg, "pool"), 0);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_register_lookup_render_unregister, teardown_kids),
	        cmocka_unit_test_teardown(test_reregister_same_pid_replaces, teardown_kids),
	        cmocka_unit_test_teardown(test_eexist_for_another_live_pid, teardown_kids),
	        cmocka_unit_test_teardown(test_name_freed_when_holder_exits, teardown_kids),
	        cmocka_unit_test_teardown(test_esrch, teardown_kids),
	        cmocka_unit_test_teardown(test_eperm, teardown_kids),
	        cmocka_unit_test_teardown(test_einval, teardown_kids),
	        cmocka_unit_test_teardown(test_exit_removes_every_entry, teardown_kids),
	        cmocka_unit_test_teardown(test_pool_rules, teardown_kids),
	        cmocka_unit_test_teardown(test_pools, teardown_kids),
	        cmocka_unit_test_teardown(test_list_order_and_cursor, teardown_kids),
	        cmocka_unit_test_teardown(test_free_with_live_entries, teardown_kids),
	        cmocka_unit_test_teardown(test_concurrent_use, teardown_kids),
	};
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	have_pidfd = fd >= 0;
	if (fd >= 0)
		close(fd);
	else
		fprintf(stderr, "pidfd_open: %s; tests that need processes are skipped\n",
		        strerror(errno));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
