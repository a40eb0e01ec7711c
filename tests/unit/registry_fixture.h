/* SPDX-License-Identifier: MIT */
/* The registry's unit tests' fixture (registry_fixture.c), shared by
 * test_registry.c (registering, errors, exits) and test_registry_pools.c
 * (pools, listings, concurrency). */
#ifndef MALLAFS_TESTS_REGISTRY_FIXTURE_H
#define MALLAFS_TESTS_REGISTRY_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "events.h"
#include "registry.h"
#include "util.h"

/* A registration holds this many fds (the fake pidfd is a pipe's end). */
#ifdef TEST_FAKE_PIDFD
#define FDS_PER_PIDFD 2
#else
#define FDS_PER_PIDFD 1
#endif

/* Whether pidfd_open works (valgrind before 3.20: ENOSYS); main() sets it.
 * Tests that need processes begin with NEED_PIDFD(). */
extern bool have_pidfd;
/* Sets have_pidfd (saying so on stderr when it is false): main() first. */
void probe_pidfd(void);
#define NEED_PIDFD()             \
	do {                     \
		if (!have_pidfd) \
			skip();  \
	} while (0)

/* Children: killed and reaped by teardown_kids even when an assertion
 * failed half-way; reaped() tells the fixture the test reaped one. */
void fake_drop(pid_t pid, bool exited);
void reaped(pid_t pid);
int teardown_kids(void **state);
/* A child that sleeps until killed; uid/euid, when not -1, are set first
 * (as real and effective uid) and the parent waits until they are. */
pid_t spawn_as(uid_t ruid, uid_t euid);
pid_t spawn_sleeper(void);
void kill_and_reap(pid_t pid);
/* A child that has exited and is left unreaped: a zombie. */
pid_t spawn_zombie(void);
size_t count_fds(void);

/* Events as "OP PATH[ DETAIL]", collected by a ring listener. */
void record(const struct mev *ev, void *arg);
size_t rec_count(const char *line);
size_t rec_total(void);
void rec_reset(const struct mev_ring *ring);
/* Exactly one event of that line was recorded. */
void expect_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct fixture {
	struct mev_ring *ring;
	struct mreg *reg;
};

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

/* A registry on a ring whose events are recorded. */
struct fixture fx_new(void);
void fx_free(struct fixture *f);

int collect(const struct mreg_entry *e, void *arg);
size_t list_count(struct mreg *reg);
void assert_render(struct mreg *reg, const char *name, const char *want);
void assert_pool_render(struct mreg *reg, const char *pool, const char *member, const char *want);
int reg_text(struct mreg *reg, const char *name, const char *text, uid_t caller);
int reg_textf(struct mreg *reg, const char *name, uid_t caller, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
int pool_store(struct mreg *reg, const char *pool, pid_t pid, const char *value, uid_t caller);
/* The registry holds that many names, pools and pool members. */
void assert_counts(struct mreg *reg, uint64_t names, uint64_t pools, uint64_t members);
/* A PID above pid_max: no process has it. */
pid_t missing_pid(void);

#endif
