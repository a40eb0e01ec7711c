/* SPDX-License-Identifier: MIT */
/* Unit tests of the registry in cluster mode (issue 15): the hooks that
 * send this node's changes to the shared store first (a fake store here
 * that records each call and can refuse), their change lock, and the
 * mirror of other nodes' entries: PID@NODE in what cat prints and in
 * file names, read-only, listed with cookies, with the events a local
 * change gives, and left out of what the state database saves. The
 * fixture is registry_fixture.c's. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "registry.h"
#include "registry_fixture.h"
#include "util.h"

/* One call of a hook, as it was made. */
struct call {
	char kind;
	char name[64], member[64], value[64];
	bool has_member, has_value;
	pid_t pid;
	uint64_t starttime;
	uid_t uid;
};

/* The fake shared store, its fields under fk_lock. */
static pthread_mutex_t fk_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake {
	struct mreg *reg;
	int holds, releases, exits;
	struct call hold, release;
	pid_t exit_pid;
	uint64_t exit_start;
	int refuse_hold, refuse_release; /* -errno answered, 0: yes */
	/* Run inside hold(), with the registry's lock dropped. */
	void (*during_hold)(void);
	unsigned hold_ms; /* hold() takes that long */
} fk;

static void copy_call(struct call *c, const struct mreg_saved *s)
{
	*c = (struct call){
	        .kind = s->kind, .pid = s->pid, .starttime = s->starttime, .uid = s->uid};
	snprintf(c->name, sizeof(c->name), "%s", s->name);
	c->has_member = s->member != NULL;
	snprintf(c->member, sizeof(c->member), "%s", s->member ? s->member : "");
	c->has_value = s->value != NULL;
	snprintf(c->value, sizeof(c->value), "%s", s->value ? s->value : "");
}

static int fake_hold(void *arg, const struct mreg_saved *s)
{
	assert_ptr_equal(arg, &fk);
	pthread_mutex_lock(&fk_lock);
	fk.holds++;
	copy_call(&fk.hold, s);
	int r = fk.refuse_hold;
	void (*during)(void) = fk.during_hold;
	unsigned ms = fk.hold_ms;
	pthread_mutex_unlock(&fk_lock);
	if (ms)
		usleep(ms * 1000);
	if (during)
		during();
	return r;
}

static int fake_release(void *arg, const struct mreg_saved *s)
{
	pthread_mutex_lock(&fk_lock);
	fk.releases++;
	copy_call(&fk.release, s);
	int r = fk.refuse_release;
	pthread_mutex_unlock(&fk_lock);
	return r;
}

static void fake_exited(void *arg, pid_t pid, uint64_t starttime)
{
	pthread_mutex_lock(&fk_lock);
	fk.exits++;
	fk.exit_pid = pid;
	fk.exit_start = starttime;
	pthread_mutex_unlock(&fk_lock);
}

static const struct mreg_remote fake_ops = {fake_hold, fake_release, fake_exited};

/* A registry in cluster mode as node "A", on the fake store. */
static struct fixture cluster_new(void)
{
	NEED_PIDFD();
	struct fixture f = fx_new();
	pthread_mutex_lock(&fk_lock);
	fk = (struct fake){.reg = f.reg};
	pthread_mutex_unlock(&fk_lock);
	assert_int_equal(mreg_set_remote(f.reg, "A", &fake_ops, &fk), 0);
	return f;
}

/* The start time the registry read for name's holder. */
static int get_start(const struct mreg_saved *s, void *arg)
{
	*(uint64_t *)arg = s->starttime;
	return 0;
}

static uint64_t starttime_of(struct mreg *reg, const char *name, const char *member)
{
	uint64_t st = 0;
	assert_int_equal(mreg_save_get(reg, name, member, get_start, &st), 0);
	assert_true(st > 0);
	return st;
}

/* Another node's entry, as the engine puts it. */
static int put(struct mreg *reg, char kind, const char *name, pid_t pid, const char *node,
               const char *value, uid_t uid)
{
	struct mreg_saved s = {.name = name, .kind = kind, .pid = pid, .value = value, .uid = uid};
	return mreg_mirror_put(reg, &s, node, NULL);
}

static void __attribute__((format(printf, 3, 4)))
assert_renderf(struct mreg *reg, const char *name, const char *fmt, ...)
{
	char want[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	assert_render(reg, name, want);
}

/* hold() is called once per change, before it, with what it will be. */
static void test_hold_fields(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();
	char member[16];
	snprintf(member, sizeof(member), "%d", me);

	assert_int_equal(reg_textf(f.reg, "a", 0, "%d v", me), 0);
	assert_int_equal(fk.holds, 1);
	assert_int_equal(fk.hold.kind, 'n');
	assert_string_equal(fk.hold.name, "a");
	assert_false(fk.hold.has_member);
	assert_int_equal(fk.hold.pid, me);
	assert_int_equal(fk.hold.uid, getuid());
	assert_true(fk.hold.has_value);
	assert_string_equal(fk.hold.value, "v");
	assert_int_equal(fk.hold.starttime, starttime_of(f.reg, "a", NULL));
	assert_renderf(f.reg, "a", "%d v\n", me);
	expect_event("register registry/a %d v", me);

	/* A new value is a change too; no value is NULL. */
	assert_int_equal(reg_textf(f.reg, "a", 0, "%d", me), 0);
	assert_int_equal(fk.holds, 2);
	assert_false(fk.hold.has_value);
	assert_renderf(f.reg, "a", "%d\n", me);

	/* A pool, with its creator; a member. */
	assert_int_equal(mreg_pool_make(f.reg, "p", 42), 0);
	assert_int_equal(fk.holds, 3);
	assert_int_equal(fk.hold.kind, 'p');
	assert_string_equal(fk.hold.name, "p");
	assert_int_equal(fk.hold.uid, 42);
	expect_event("mkdir registry/p");
	assert_int_equal(pool_store(f.reg, "p", me, "x", 0), 0);
	assert_int_equal(fk.holds, 4);
	assert_int_equal(fk.hold.kind, 'm');
	assert_string_equal(fk.hold.name, "p");
	assert_string_equal(fk.hold.member, member);
	assert_int_equal(fk.hold.pid, me);
	assert_string_equal(fk.hold.value, "x");
	assert_int_equal(fk.hold.starttime, starttime_of(f.reg, "p", member));

	/* What a local check refuses never reaches the shared store. */
	assert_int_equal(mreg_pool_make(f.reg, "p", 0), -EEXIST);
	assert_int_equal(mreg_pool_make(f.reg, "a", 0), -EEXIST);
	assert_int_equal(pool_store(f.reg, "nope", me, "x", 0), -ENOENT);
	assert_int_equal(pool_store(f.reg, "p", missing_pid(), "x", 0), -ESRCH);
	assert_int_equal(reg_textf(f.reg, "b", 0, "%d", missing_pid()), -ESRCH);
	assert_int_equal(fk.holds, 4);
	assert_int_equal(fk.releases, 0);

	/* Restoring a saved state calls no hook. */
	struct mreg_saved sp = {.name = "q", .kind = 'p'};
	assert_int_equal(mreg_restore(f.reg, &sp), 0);
	struct mreg_saved sn = {.name = "c",
	                        .kind = 'n',
	                        .pid = me,
	                        .starttime = starttime_of(f.reg, "a", NULL),
	                        .value = "r"};
	assert_int_equal(mreg_restore(f.reg, &sn), 0);
	assert_int_equal(fk.holds, 4);
	assert_int_equal(fk.releases, 0);

	/* Back to node-local: no hook at all. */
	assert_int_equal(mreg_set_remote(f.reg, NULL, NULL, NULL), 0);
	assert_int_equal(reg_textf(f.reg, "d", 0, "%d", me), 0);
	assert_int_equal(mreg_unregister(f.reg, "d"), 0);
	assert_int_equal(mreg_pool_destroy(f.reg, "q"), 0);
	assert_int_equal(fk.holds, 4);
	assert_int_equal(fk.releases, 0);
	fx_free(&f);
}

/* A refusal returns its errno and changes nothing: no entry, no event. */
static void test_refusal(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();

	fk.refuse_hold = -EEXIST;
	assert_int_equal(reg_textf(f.reg, "a", 0, "%d v", me), -EEXIST);
	assert_int_equal(mreg_render(f.reg, "a", &(char *){NULL}, &(size_t){0}), -ENOENT);
	fk.refuse_hold = -ETIMEDOUT;
	assert_int_equal(mreg_pool_make(f.reg, "p", 0), -ETIMEDOUT);
	assert_int_equal(rec_total(), 0);
	assert_counts(f.reg, 0, 0, 0);

	/* A refused new value keeps the old one. */
	fk.refuse_hold = 0;
	assert_int_equal(reg_textf(f.reg, "a", 0, "%d v", me), 0);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	assert_int_equal(pool_store(f.reg, "p", me, "x", 0), 0);
	rec_reset(f.ring);
	fk.refuse_hold = -EFBIG;
	assert_int_equal(reg_textf(f.reg, "a", 0, "%d w", me), -EFBIG);
	assert_int_equal(pool_store(f.reg, "p", me, "y", 0), -EFBIG);
	assert_renderf(f.reg, "a", "%d v\n", me);
	char member[16];
	snprintf(member, sizeof(member), "%d", me);
	assert_pool_render(f.reg, "p", member, "x\n");

	/* A refused rm, rmdir: it stays. */
	fk.refuse_release = -ETIMEDOUT;
	assert_int_equal(mreg_unregister(f.reg, "a"), -ETIMEDOUT);
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), -ETIMEDOUT);
	assert_int_equal(rec_total(), 0);
	assert_counts(f.reg, 1, 1, 1);
	fk.refuse_release = 0;
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), 0);
	fk.refuse_release = -ENOTEMPTY; /* another node has members in it */
	assert_int_equal(mreg_pool_destroy(f.reg, "p"), -ENOTEMPTY);
	assert_counts(f.reg, 1, 1, 0);
	fx_free(&f);
}

/* release() before rm and rmdir, with the entry's identity. */
static void test_release(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();
	char member[16];
	snprintf(member, sizeof(member), "%d", me);

	assert_int_equal(reg_textf(f.reg, "a", 0, "%d v", me), 0);
	uint64_t start = starttime_of(f.reg, "a", NULL);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	assert_int_equal(pool_store(f.reg, "p", me, "x", 0), 0);
	rec_reset(f.ring);

	assert_int_equal(mreg_unregister(f.reg, "a"), 0);
	assert_int_equal(fk.releases, 1);
	assert_int_equal(fk.release.kind, 'n');
	assert_string_equal(fk.release.name, "a");
	assert_int_equal(fk.release.pid, me);
	assert_int_equal(fk.release.starttime, start);
	assert_int_equal(fk.release.uid, getuid());
	assert_false(fk.release.has_value);
	expect_event("unregister registry/a");
	assert_int_equal(mreg_unregister(f.reg, "a"), -ENOENT);
	assert_int_equal(mreg_unregister(f.reg, "p"), -EISDIR);

	assert_int_equal(mreg_pool_destroy(f.reg, "p"), -ENOTEMPTY);
	assert_int_equal(fk.releases, 1); /* a local member: no need to ask */
	assert_int_equal(mreg_pool_unstore(f.reg, "p", member), 0);
	assert_int_equal(fk.releases, 2);
	assert_int_equal(fk.release.kind, 'm');
	assert_string_equal(fk.release.name, "p");
	assert_string_equal(fk.release.member, member);
	assert_int_equal(fk.release.pid, me);
	assert_int_equal(mreg_pool_destroy(f.reg, "p"), 0);
	assert_int_equal(fk.releases, 3);
	assert_int_equal(fk.release.kind, 'p');
	assert_string_equal(fk.release.name, "p");
	expect_event("rmdir registry/p");
	assert_int_equal(fk.holds, 3);
	fx_free(&f);
}

static int count(const int *n)
{
	pthread_mutex_lock(&fk_lock);
	int v = *n;
	pthread_mutex_unlock(&fk_lock);
	return v;
}

static void wait_for(const int *n, int want)
{
	uint64_t t0 = mu_now_ms();
	while (count(n) < want && mu_now_ms() - t0 < 5000)
		usleep(2000);
	assert_int_equal(count(n), want);
}

/* exited() once per process that had entries, after they went. */
static void test_exited_once(void **state)
{
	struct fixture f = cluster_new();
	pid_t kid = spawn_sleeper();
	pid_t other = spawn_sleeper();

	assert_int_equal(reg_textf(f.reg, "k1", 0, "%d", kid), 0);
	assert_int_equal(reg_textf(f.reg, "k2", 0, "%d x", kid), 0);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	assert_int_equal(pool_store(f.reg, "p", kid, "v", 0), 0);
	assert_int_equal(reg_textf(f.reg, "o", 0, "%d", other), 0);
	uint64_t start = starttime_of(f.reg, "k1", NULL);
	kill_and_reap(kid);
	wait_for(&fk.exits, 1);
	assert_int_equal(fk.exit_pid, kid);
	assert_int_equal(fk.exit_start, start);
	assert_counts(f.reg, 1, 1, 0);
	expect_event("unregister registry/k1 exit");
	assert_int_equal(fk.releases, 0); /* exits are not rm */

	/* A writer that finds the holder exited reaps it, and says so too. */
	assert_int_equal(reg_textf(f.reg, "o2", 0, "%d", other), 0);
	assert_int_equal(kill(other, SIGKILL), 0);
	assert_int_equal(waitpid(other, NULL, 0), other);
	reaped(other);
	assert_int_equal(reg_textf(f.reg, "o", 0, "%d", getpid()), 0);
	wait_for(&fk.exits, 2);
	assert_int_equal(fk.exit_pid, other);
	usleep(50 * 1000);
	assert_int_equal(count(&fk.exits), 2);
	fx_free(&f);
}

static pid_t victim;

static void kill_victim(void)
{
	kill_and_reap(victim);
}

static void drop_pool(void)
{
	assert_int_equal(mreg_mirror_remove(fk.reg, "p", NULL), 0);
}

/* A change the shared store allowed that cannot be made here after all
 * is undone there: release() with what hold() got. */
static void test_apply_failure_releases(void **state)
{
	struct fixture f = cluster_new();

	victim = spawn_sleeper();
	fk.during_hold = kill_victim; /* exits between hold() and applying */
	assert_int_equal(reg_textf(f.reg, "v", 0, "%d x", victim), -ESRCH);
	assert_int_equal(fk.holds, 1);
	assert_int_equal(fk.releases, 1);
	assert_int_equal(fk.release.kind, 'n');
	assert_string_equal(fk.release.name, "v");
	assert_int_equal(fk.release.pid, victim);
	assert_int_equal(fk.release.starttime, fk.hold.starttime);
	assert_counts(f.reg, 0, 0, 0);

	/* The pool went (the mirror) while the shared store was asked. */
	fk.during_hold = NULL;
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	fk.during_hold = drop_pool;
	assert_int_equal(pool_store(f.reg, "p", getpid(), "x", 0), -ENOENT);
	assert_int_equal(fk.releases, 2);
	assert_int_equal(fk.release.kind, 'm');
	assert_string_equal(fk.release.name, "p");
	assert_counts(f.reg, 0, 0, 0);
	assert_int_equal(rec_count("mkdir registry/p"), 1);
	assert_int_equal(rec_count("rmdir registry/p"), 1);
	assert_int_equal(rec_total(), 2);
	fx_free(&f);
}

/* Writers are serialized across hold(): of two registering one name, the
 * shared store sees the first only, the second is refused here. Readers
 * are not held up meanwhile. */
struct racer {
	struct mreg *reg;
	pid_t pid;
	int r;
};

static void *race_main(void *arg)
{
	struct racer *rc = arg;
	rc->r = reg_textf(rc->reg, "x", 0, "%d", rc->pid);
	return NULL;
}

static void read_during_hold(void)
{
	/* Would deadlock if hold() ran with the registry's lock held. */
	struct mreg_counts c;
	mreg_counts(fk.reg, &c);
	assert_int_equal(list_count(fk.reg), 0);
}

static void test_serialized(void **state)
{
	struct fixture f = cluster_new();
	struct racer rc[2] = {{f.reg, spawn_sleeper(), 1}, {f.reg, spawn_sleeper(), 1}};
	pthread_t t[2];

	fk.hold_ms = 30;
	fk.during_hold = read_during_hold;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_main, &rc[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(fk.holds, 1);
	assert_true((rc[0].r == 0 && rc[1].r == -EEXIST) || (rc[1].r == 0 && rc[0].r == -EEXIST));
	pid_t winner = rc[0].r == 0 ? rc[0].pid : rc[1].pid;
	assert_int_equal(fk.hold.pid, winner);
	assert_renderf(f.reg, "x", "%d\n", winner);
	fx_free(&f);
}

/* mreg_revert goes through the shared store as the change it is. */
static void test_revert(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();
	char before[32], wrote[32];

	assert_int_equal(reg_textf(f.reg, "a", 0, "%d old", me), 0);
	assert_int_equal(reg_textf(f.reg, "a", 0, "%d new", me), 0);
	snprintf(before, sizeof(before), "%d old\n", me);
	snprintf(wrote, sizeof(wrote), "%d new\n", me);
	fk.refuse_hold = -ETIMEDOUT;
	assert_int_equal(mreg_revert(f.reg, NULL, "a", wrote, before), -ETIMEDOUT);
	assert_render(f.reg, "a", wrote);
	fk.refuse_hold = 0;
	assert_int_equal(mreg_revert(f.reg, NULL, "a", wrote, before), 0);
	assert_int_equal(fk.holds, 4);
	assert_string_equal(fk.hold.value, "old");
	assert_render(f.reg, "a", before);
	assert_int_equal(mreg_revert(f.reg, NULL, "a", before, NULL), 0);
	assert_int_equal(fk.releases, 1);
	assert_string_equal(fk.release.name, "a");
	assert_int_equal(mreg_revert(f.reg, NULL, "a", before, NULL), -ENOENT);
	fx_free(&f);
}

/* Another node's name: PID@NODE, read-only, replaced and removed by the
 * mirror with the events a local change gives. */
static void test_mirror_names(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();
	struct timespec when = {.tv_sec = 1700000000, .tv_nsec = 5};
	struct mreg_entry e;

	struct mreg_saved s = {.name = "r", .kind = 'n', .pid = 123, .value = "v", .uid = 1000};
	assert_int_equal(mreg_mirror_put(f.reg, &s, "B", &when), 0);
	assert_render(f.reg, "r", "123@B v\n");
	expect_event("register registry/r 123@B v");
	assert_int_equal(mreg_stat(f.reg, "r", NULL, &e), 0);
	assert_int_equal(e.kind, 'n');
	assert_int_equal(e.uid, 1000);
	assert_int_equal(e.mtime.tv_sec, when.tv_sec);
	assert_int_equal(e.mtime.tv_nsec, when.tv_nsec);
	uint64_t id = e.id;
	pid_t pid;
	assert_int_equal(mreg_lookup(f.reg, "r", &pid, NULL), -EREMOTE);

	/* Read-only here, root too; held: EEXIST, before the shared store. */
	assert_int_equal(mreg_unregister(f.reg, "r"), -EPERM);
	assert_int_equal(reg_textf(f.reg, "r", 0, "%d", me), -EEXIST);
	assert_int_equal(mreg_pool_make(f.reg, "r", 0), -EEXIST);
	assert_int_equal(fk.holds, 0);
	assert_int_equal(fk.releases, 0);

	/* Only local PIDs are registered: PID@NODE is EPERM, other junk EINVAL. */
	assert_int_equal(reg_text(f.reg, "z", "123@B", 0), -EPERM);
	assert_int_equal(reg_text(f.reg, "z", "123@B value\n", 0), -EPERM);
	assert_int_equal(reg_text(f.reg, "z", "123@", 0), -EINVAL);
	assert_int_equal(reg_text(f.reg, "z", "@B", 0), -EINVAL);
	assert_int_equal(reg_text(f.reg, "z", "12x@B", 0), -EINVAL);
	assert_int_equal(reg_text(f.reg, "z", "123@B/C", 0), -EINVAL);
	assert_int_equal(mreg_register(f.reg, "a@b", me, NULL, 0), -EINVAL);

	/* The same holder again: a new value, the same entry. */
	rec_reset(f.ring);
	s.value = NULL;
	assert_int_equal(mreg_mirror_put(f.reg, &s, "B", NULL), 0);
	assert_render(f.reg, "r", "123@B\n");
	expect_event("register registry/r 123@B");
	assert_int_equal(mreg_stat(f.reg, "r", NULL, &e), 0);
	assert_int_equal(e.id, id);
	/* Another holder: the old one goes first. */
	s.value = "w";
	assert_int_equal(mreg_mirror_put(f.reg, &s, "C", NULL), 0);
	assert_render(f.reg, "r", "123@C w\n");
	expect_event("unregister registry/r");
	expect_event("register registry/r 123@C w");
	assert_int_equal(mreg_stat(f.reg, "r", NULL, &e), 0);
	assert_true(e.id != id);
	assert_counts(f.reg, 1, 0, 0);

	/* A local name the shared store gave another node: it goes, with no
	 * exited() (its process lives). */
	assert_int_equal(reg_textf(f.reg, "l", 0, "%d", me), 0);
	rec_reset(f.ring);
	s.name = "l";
	assert_int_equal(mreg_mirror_put(f.reg, &s, "B", NULL), 0);
	assert_render(f.reg, "l", "123@B w\n");
	expect_event("unregister registry/l");
	expect_event("register registry/l 123@B w");
	assert_int_equal(fk.exits, 0);
	assert_int_equal(fk.releases, 0);

	/* Removed by the mirror; this node's own names are not the mirror's. */
	assert_int_equal(reg_textf(f.reg, "mine", 0, "%d", me), 0);
	assert_int_equal(mreg_mirror_remove(f.reg, "mine", NULL), -ENOENT);
	assert_int_equal(mreg_mirror_remove(f.reg, "r", NULL), 0);
	expect_event("unregister registry/r");
	assert_int_equal(mreg_mirror_remove(f.reg, "r", NULL), -ENOENT);
	assert_int_equal(mreg_render(f.reg, "r", &(char *){NULL}, &(size_t){0}), -ENOENT);

	/* Bad input changes nothing. */
	struct mreg_saved bad = {.name = "n", .kind = 'n', .pid = 1};
	assert_int_equal(mreg_mirror_put(f.reg, &bad, "A", NULL), -EINVAL); /* this node */
	assert_int_equal(mreg_mirror_put(f.reg, &bad, "b/c", NULL), -EINVAL);
	assert_int_equal(mreg_mirror_put(f.reg, &bad, NULL, NULL), -EINVAL);
	bad.value = "two\nlines";
	assert_int_equal(mreg_mirror_put(f.reg, &bad, "B", NULL), -EINVAL);
	bad.value = NULL;
	bad.pid = 0;
	assert_int_equal(mreg_mirror_put(f.reg, &bad, "B", NULL), -EINVAL);
	bad.pid = 1;
	bad.name = "x@y";
	assert_int_equal(mreg_mirror_put(f.reg, &bad, "B", NULL), -EINVAL);
	assert_int_equal(put(f.reg, 'p', "q", 0, NULL, NULL, 0), 0);
	bad.name = "q";
	assert_int_equal(mreg_mirror_put(f.reg, &bad, "B", NULL), -EEXIST); /* a pool */
	bad.kind = 'm';
	bad.name = "nope";
	assert_int_equal(mreg_mirror_put(f.reg, &bad, "B", NULL), -ENOENT);
	assert_counts(f.reg, 2, 1, 0);
	assert_int_equal(fk.holds, 2);
	fx_free(&f);
}

/* Another node's pool members: files PID@NODE, read-only, that keep a
 * pool from rmdir; a pool removed by the mirror goes with its members. */
static void test_mirror_pools(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();
	char member[16];
	struct mreg_entry e;
	snprintf(member, sizeof(member), "%d", me);

	assert_int_equal(put(f.reg, 'p', "q", 0, NULL, NULL, 0), 0);
	expect_event("mkdir registry/q");
	assert_int_equal(put(f.reg, 'p', "q", 0, NULL, NULL, 0), 0); /* there: no event */
	assert_int_equal(rec_total(), 1);
	assert_int_equal(put(f.reg, 'm', "q", 5, "B", "x", 7), 0);
	expect_event("register registry/q/5@B x");
	assert_int_equal(put(f.reg, 'm', "q", 5, "C", "", 8), 0);
	expect_event("register registry/q/5@C");
	assert_pool_render(f.reg, "q", "5@B", "x\n");
	assert_pool_render(f.reg, "q", "5@C", "\n");
	assert_int_equal(mreg_stat(f.reg, "q", "5@B", &e), 0);
	assert_int_equal(e.kind, 'm');
	assert_int_equal(e.uid, 7);
	assert_int_equal(mreg_stat(f.reg, "q", "5", &e), -ENOENT);
	assert_int_equal(mreg_stat(f.reg, "q", "5@D", &e), -ENOENT);
	assert_int_equal(mreg_stat(f.reg, "q", "05@B", &e), -ENOENT);

	/* Read-only; only local PIDs are stored. */
	assert_int_equal(mreg_pool_unstore(f.reg, "q", "5@B"), -EPERM);
	assert_int_equal(mreg_pool_store(f.reg, "q", "5@B", "y", 1, 0), -EPERM);
	assert_int_equal(mreg_member_name_check(f.reg, "5@B"), -EPERM);
	assert_int_equal(mreg_member_name_check(f.reg, member), 0);
	assert_int_equal(mreg_member_name_check(f.reg, "05"), -EINVAL);
	assert_int_equal(mreg_member_name_check(f.reg, "x@B"), -EINVAL);
	assert_int_equal(mreg_member_name_check(f.reg, "5@"), -EINVAL);
	assert_int_equal(mreg_pool_destroy(f.reg, "q"), -ENOTEMPTY);
	assert_int_equal(fk.releases, 0);
	assert_pool_render(f.reg, "q", "5@B", "x\n");

	/* A local member of the same PID is another file. */
	assert_int_equal(pool_store(f.reg, "q", me, "mine", 0), 0);
	assert_int_equal(put(f.reg, 'm', "q", me, "B", "theirs", 0), 0);
	assert_pool_render(f.reg, "q", member, "mine\n");
	char remote[32];
	snprintf(remote, sizeof(remote), "%d@B", me);
	assert_pool_render(f.reg, "q", remote, "theirs\n");
	assert_counts(f.reg, 0, 1, 4);

	/* One member goes; then the pool with the rest, events for each. */
	rec_reset(f.ring);
	assert_int_equal(mreg_mirror_remove(f.reg, "q", "5@C"), 0);
	expect_event("unregister registry/q/5@C");
	assert_int_equal(mreg_mirror_remove(f.reg, "q", "5@C"), -ENOENT);
	assert_int_equal(mreg_mirror_remove(f.reg, "q", member), -ENOENT); /* this node's */
	assert_int_equal(mreg_mirror_remove(f.reg, "q", NULL), 0);
	expect_event("unregister registry/q/5@B");
	expect_event("unregister registry/q/%d", me);
	expect_event("unregister registry/q/%d@B", me);
	expect_event("rmdir registry/q");
	assert_int_equal(rec_total(), 5);
	assert_counts(f.reg, 0, 0, 0);
	assert_int_equal(fk.exits + fk.releases, 0);

	/* A pool over another node's or this node's name: the name goes. */
	assert_int_equal(reg_textf(f.reg, "n", 0, "%d", me), 0);
	assert_int_equal(put(f.reg, 'p', "n", 0, NULL, NULL, 0), 0);
	assert_int_equal(mreg_stat(f.reg, "n", NULL, &e), 0);
	assert_int_equal(e.kind, 'p');
	assert_counts(f.reg, 0, 1, 0);
	fx_free(&f);
}

/* Without cluster mode, PID@NODE is as malformed as it was. */
static void test_local_mode_unchanged(void **state)
{
	struct fixture f = fx_new();
	assert_int_equal(mreg_member_name_check(f.reg, "5@B"), -EINVAL);
	assert_int_equal(mreg_member_name_check(f.reg, "5"), 0);
	assert_int_equal(reg_text(f.reg, "z", "123@B", 0), -EINVAL);
	assert_int_equal(mreg_pool_create(f.reg, "q"), 0);
	assert_int_equal(mreg_pool_store(f.reg, "q", "5@B", "y", 1, 0), -EINVAL);
	assert_int_equal(mreg_set_remote(f.reg, "bad/node", &fake_ops, &fk), -EINVAL);
	assert_int_equal(mreg_set_remote(f.reg, "", &fake_ops, &fk), -EINVAL);
	struct mreg_remote half = {.hold = fake_hold};
	assert_int_equal(mreg_set_remote(f.reg, "A", &half, &fk), -EINVAL);
	assert_int_equal(mreg_member_name_check(f.reg, "5@B"), -EINVAL);
	fx_free(&f);
}

static int count_node(const struct mreg_saved *s, const char *node, void *arg)
{
	size_t *n = arg; /* pools, B's, C's */
	if (s->kind == 'p')
		n[0]++;
	else if (node && strcmp(node, "B") == 0)
		n[1]++;
	else if (node && strcmp(node, "C") == 0)
		n[2]++;
	else
		fail_msg("%c %s of node %s in the mirror's walk", s->kind, s->name, node);
	if (s->kind == 'm')
		assert_string_equal(s->member, "9");
	return 0;
}

static int count_saved(const struct mreg_saved *s, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

/* A node that left takes all its entries along; the resync's walk and the
 * state database's see each side's. */
static void test_mirror_nodes(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();
	size_t n[3] = {0}, saved = 0;

	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	assert_int_equal(pool_store(f.reg, "p", me, "v", 0), 0);
	assert_int_equal(reg_textf(f.reg, "mine", 0, "%d", me), 0);
	assert_int_equal(put(f.reg, 'n', "b1", 9, "B", NULL, 0), 0);
	assert_int_equal(put(f.reg, 'n', "b2", 9, "B", "x", 0), 0);
	assert_int_equal(put(f.reg, 'm', "p", 9, "B", "y", 0), 0);
	assert_int_equal(put(f.reg, 'n', "c1", 9, "C", NULL, 0), 0);
	assert_int_equal(put(f.reg, 'm', "p", 9, "C", "z", 0), 0);

	assert_int_equal(mreg_mirror_foreach(f.reg, count_node, n), 0);
	assert_int_equal(n[0], 1);
	assert_int_equal(n[1], 3);
	assert_int_equal(n[2], 2);
	/* The state database: the pool, this node's name and member only. */
	assert_int_equal(mreg_save_foreach(f.reg, count_saved, &saved), 0);
	assert_int_equal(saved, 3);
	assert_int_equal(mreg_save_get(f.reg, "b1", NULL, count_saved, &saved), -ENOENT);
	assert_int_equal(mreg_save_get(f.reg, "p", "9@B", count_saved, &saved), -ENOENT);
	assert_int_equal(mreg_save_get(f.reg, "mine", NULL, count_saved, &saved), 0);

	rec_reset(f.ring);
	mreg_mirror_remove_node(f.reg, "B");
	expect_event("unregister registry/b1");
	expect_event("unregister registry/b2");
	expect_event("unregister registry/p/9@B");
	assert_int_equal(rec_total(), 3);
	assert_counts(f.reg, 2, 1, 2);
	mreg_mirror_remove_node(f.reg, "B"); /* gone: nothing */
	mreg_mirror_remove_node(f.reg, "nobody");
	assert_int_equal(rec_total(), 3);
	memset(n, 0, sizeof(n));
	assert_int_equal(mreg_mirror_foreach(f.reg, count_node, n), 0);
	assert_int_equal(n[1], 0);
	assert_int_equal(n[2], 2);
	/* B again: a fresh node record, the old one was freed (ASan). */
	assert_int_equal(put(f.reg, 'n', "b1", 10, "B", NULL, 0), 0);
	assert_render(f.reg, "b1", "10@B\n");
	fx_free(&f);
}

/* Listings take other nodes' entries like local ones, resuming at
 * cookies: every entry exactly once, file names PID@NODE. */
static void test_listing_mixed(void **state)
{
	struct fixture f = cluster_new();
	pid_t me = getpid();
	char mine[16];
	snprintf(mine, sizeof(mine), "%d", me);

	assert_int_equal(reg_textf(f.reg, "l1", 0, "%d", me), 0);
	assert_int_equal(put(f.reg, 'n', "r1", 3, "B", NULL, 0), 0);
	assert_int_equal(mreg_pool_create(f.reg, "p"), 0);
	assert_int_equal(put(f.reg, 'n', "r2", 4, "C", NULL, 0), 0);
	assert_int_equal(reg_textf(f.reg, "l2", 0, "%d", me), 0);
	const char *want[] = {"l1", "r1", "p", "r2", "l2"};

	for (size_t k = 1; k <= 5; k++) {
		struct seen all = {0};
		uint64_t cookie = 0;
		for (;;) {
			struct seen s = {.stop_after = k};
			int r = mreg_list(f.reg, cookie, collect, &s);
			for (size_t i = 0; i < s.n; i++) {
				snprintf(all.names[all.n++], sizeof(all.names[0]), "%s",
				         s.names[i]);
				cookie = s.cookies[i];
			}
			if (r == 0)
				break;
		}
		assert_int_equal(all.n, 5);
		for (size_t i = 0; i < 5; i++)
			assert_string_equal(all.names[i], want[i]);
	}

	assert_int_equal(put(f.reg, 'm', "p", 3, "B", "x", 0), 0);
	assert_int_equal(pool_store(f.reg, "p", me, "v", 0), 0);
	assert_int_equal(put(f.reg, 'm', "p", me, "C", "x", 0), 0);
	char theirs[32];
	snprintf(theirs, sizeof(theirs), "%d@C", me);
	const char *pwant[] = {"3@B", mine, theirs};
	struct seen first = {.stop_after = 1}, rest = {0};
	assert_int_equal(mreg_pool_list(f.reg, "p", 0, collect, &first), 7);
	assert_string_equal(first.names[0], pwant[0]);
	assert_int_equal(mreg_pool_list(f.reg, "p", first.cookies[0], collect, &rest), 0);
	assert_int_equal(rest.n, 2);
	assert_string_equal(rest.names[0], pwant[1]);
	assert_string_equal(rest.names[1], pwant[2]);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_hold_fields, teardown_kids),
	        cmocka_unit_test_teardown(test_refusal, teardown_kids),
	        cmocka_unit_test_teardown(test_release, teardown_kids),
	        cmocka_unit_test_teardown(test_exited_once, teardown_kids),
	        cmocka_unit_test_teardown(test_apply_failure_releases, teardown_kids),
	        cmocka_unit_test_teardown(test_serialized, teardown_kids),
	        cmocka_unit_test_teardown(test_revert, teardown_kids),
	        cmocka_unit_test_teardown(test_mirror_names, teardown_kids),
	        cmocka_unit_test_teardown(test_mirror_pools, teardown_kids),
	        cmocka_unit_test_teardown(test_local_mode_unchanged, teardown_kids),
	        cmocka_unit_test_teardown(test_mirror_nodes, teardown_kids),
	        cmocka_unit_test_teardown(test_listing_mixed, teardown_kids),
	};
	probe_pidfd();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
