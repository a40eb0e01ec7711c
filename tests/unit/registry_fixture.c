/* SPDX-License-Identifier: MIT */
/* What the registry's unit tests share (registry_fixture.h): real child
 * processes (sleepers, zombies, processes of another uid) killed and
 * reaped by the teardown, an event recorder, a fresh registry, and
 * assertions on what it renders. Under valgrind, which lacks pidfd_open
 * before 3.20, build with -DTEST_FAKE_PIDFD -Wl,--wrap=syscall (see
 * below). */
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

#include "registry_fixture.h"

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
void fake_drop(pid_t pid, bool exited)
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
#else
void fake_drop(pid_t pid, bool exited)
{
}
#endif

/* Children forked by a test, killed and reaped by the teardown even when
 * an assertion failed half-way. */
static pid_t kids[64];
static size_t nkids;

/* pid was reaped by the test. */
void reaped(pid_t pid)
{
	fake_drop(pid, true);
	for (size_t i = 0; i < nkids; i++) {
		if (kids[i] == pid) {
			kids[i] = kids[--nkids];
			return;
		}
	}
}

int teardown_kids(void **state)
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
pid_t spawn_as(uid_t ruid, uid_t euid)
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

pid_t spawn_sleeper(void)
{
	return spawn_as((uid_t)-1, (uid_t)-1);
}

void kill_and_reap(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	reaped(pid);
}

/* A child that has exited and is left unreaped: a zombie. */
pid_t spawn_zombie(void)
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

size_t count_fds(void)
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

void record(const struct mev *ev, void *arg)
{
	pthread_mutex_lock(&rec.lock);
	if (arg == rec.ring && rec.n < MU_ARRAY_SIZE(rec.lines)) {
		snprintf(rec.lines[rec.n++], sizeof(rec.lines[0]), "%s %s%s%s", mev_op_name(ev->op),
		         ev->path, ev->detail ? " " : "", ev->detail ? ev->detail : "");
	}
	pthread_mutex_unlock(&rec.lock);
}

size_t rec_count(const char *line)
{
	size_t c = 0;
	pthread_mutex_lock(&rec.lock);
	for (size_t i = 0; i < rec.n; i++)
		if (strcmp(rec.lines[i], line) == 0)
			c++;
	pthread_mutex_unlock(&rec.lock);
	return c;
}

size_t rec_total(void)
{
	pthread_mutex_lock(&rec.lock);
	size_t n = rec.n;
	pthread_mutex_unlock(&rec.lock);
	return n;
}

void rec_reset(const struct mev_ring *ring)
{
	pthread_mutex_lock(&rec.lock);
	rec.n = 0;
	rec.ring = ring;
	pthread_mutex_unlock(&rec.lock);
}

void expect_event(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (rec_count(line) != 1)
		fail_msg("expected exactly one event \"%s\"", line);
}

struct fixture fx_new(void)
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

void fx_free(struct fixture *f)
{
	mreg_free(f->reg);
	mev_ring_free(f->ring);
}

int collect(const struct mreg_entry *e, void *arg)
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

size_t list_count(struct mreg *reg)
{
	struct seen s = {0};
	assert_int_equal(mreg_list(reg, 0, collect, &s), 0);
	return s.n;
}

void assert_render(struct mreg *reg, const char *name, const char *want)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mreg_render(reg, name, &text, &len), 0);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
}

void assert_pool_render(struct mreg *reg, const char *pool, const char *member, const char *want)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(mreg_pool_render(reg, pool, member, &text, &len), 0);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
}

int reg_text(struct mreg *reg, const char *name, const char *text, uid_t caller)
{
	return mreg_register_text(reg, name, text, strlen(text), caller);
}

int reg_textf(struct mreg *reg, const char *name, uid_t caller, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return reg_text(reg, name, text, caller);
}

int pool_store(struct mreg *reg, const char *pool, pid_t pid, const char *value, uid_t caller)
{
	char member[16];
	snprintf(member, sizeof(member), "%d", (int)pid);
	return mreg_pool_store(reg, pool, member, value, strlen(value), caller);
}

/* Valgrind before 3.20 does not know pidfd_open: the registry answers
 * ENOSYS there, and only what needs no process can be tested. */
bool have_pidfd;

void probe_pidfd(void)
{
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	have_pidfd = fd >= 0;
	if (fd >= 0)
		close(fd);
	else
		fprintf(stderr, "pidfd_open: %s; tests that need processes are skipped\n",
		        strerror(errno));
}

pid_t missing_pid(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	long max = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &max), 1);
	fclose(f);
	return (pid_t)(max + 1);
}

void assert_counts(struct mreg *reg, uint64_t names, uint64_t pools, uint64_t members)
{
	struct mreg_counts c;
	mreg_counts(reg, &c);
	assert_int_equal(c.names, names);
	assert_int_equal(c.pools, pools);
	assert_int_equal(c.members, members);
}
