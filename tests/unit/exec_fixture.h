/* SPDX-License-Identifier: MIT */
/* The exec plugin's tests' fixture and helpers, shared by test_plugin_exec.c
 * (the hooks' life and outcomes) and test_plugin_exec_owner.c (whose rights
 * they run with, in what process state, and how the timeout ends them). */
#ifndef MALLAFS_TESTS_EXEC_FIXTURE_H
#define MALLAFS_TESTS_EXEC_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "cfg.h"
#include "service.h"
#include "util.h"

struct fixture {
	char dir[64];
	struct mplugreg *reg;
	struct mallafs_svc *svc;
	/* make_svc gives its services this owner when set. */
	bool owned;
	uid_t uid;
	gid_t gid;
};

/* The log, captured: install log_sink with mu_log_set_sink. */
void log_sink(enum mu_log_level level, const char *line, void *arg);
bool log_has(const char *needle);
void log_clear(void);

/* cmocka setup and teardown: a fresh folder (mode 0700) and registry of the
 * built-in plugins; teardown frees f->svc and removes the folder. */
int setup(void **state);
int teardown(void **state);

double now_s(void);
/* A path in the test's folder; printf into a static buffer. Each keeps its
 * last four results. */
const char *path_in(struct fixture *f, const char *name);
const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* The file's text (malloc'd), or NULL when it does not exist. */
char *slurp(const char *path);
void assert_file(const char *path, const char *want);

int make_svc(struct fixture *f, const char *mountpoint, const char *name, const char *ini,
             struct mallafs_svc **ret);
void free_svc(struct mallafs_svc *svc); /* accepts NULL */
char *config_value(struct mallafs_svc *svc, const char *section, const char *key);
void assert_config(struct mallafs_svc *svc, const char *section, const char *key, const char *want);
int set(struct mallafs_svc *svc, const char *section, const char *key, const char *value,
        struct mallafs_reason *why);
/* The text after the timestamp of a status field ("TIME REASON"). */
const char *reason_of(const char *field);
/* True when a live (not zombie) process is in process group pgid. */
bool group_alive(pid_t pgid);

#endif
