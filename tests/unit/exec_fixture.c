/* SPDX-License-Identifier: MIT */
/* The exec plugin's tests' fixture: each test works in a fresh temporary
 * folder, where hooks leave files the test then reads, against services of
 * the chain "exec" built through the service API, with the log captured. */
#include "exec_fixture.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "plugin.h"

/* ---- the log, captured ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];

void log_sink(enum mu_log_level level, const char *line, void *arg)
{
	pthread_mutex_lock(&log_lock);
	size_t n = strlen(log_text);
	snprintf(log_text + n, sizeof(log_text) - n, "%d %s\n", (int)level, line);
	pthread_mutex_unlock(&log_lock);
}

bool log_has(const char *needle)
{
	pthread_mutex_lock(&log_lock);
	bool has = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_lock);
	return has;
}

void log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	log_text[0] = '\0';
	pthread_mutex_unlock(&log_lock);
}

/* ---- helpers ---- */

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A path in the test's folder. */
const char *path_in(struct fixture *f, const char *name)
{
	static __thread char buf[4][512];
	static __thread int k;
	char *p = buf[k++ % 4];
	snprintf(p, sizeof(buf[0]), "%s/%s", f->dir, name);
	return p;
}

/* printf into a static buffer, for building commands. */
const char *fmt(const char *f, ...)
{
	static __thread char buf[4][1024];
	static __thread int k;
	char *p = buf[k++ % 4];
	va_list ap;
	va_start(ap, f);
	vsnprintf(p, sizeof(buf[0]), f, ap);
	va_end(ap);
	return p;
}

/* The file's text (malloc'd), or NULL when it does not exist. */
char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	if (!fp)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? 2 * cap : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		size_t n = fread(buf + len, 1, cap - len - 1, fp);
		if (n == 0)
			break;
		len += n;
	}
	fclose(fp);
	buf[len] = '\0';
	return buf;
}

void assert_file(const char *path, const char *want)
{
	char *got = slurp(path);
	assert_non_null(got);
	bool same = strcmp(got, want) == 0;
	if (!same)
		print_error("%s holds \"%s\", not \"%s\"\n", path, got, want);
	free(got);
	assert_true(same);
}

/* A service NAME with the chain exec, the configuration given as INI, owned
 * by f->uid and f->gid when f->owned, and the admin status active. Returns
 * what starting it returned. */
int make_svc(struct fixture *f, const char *mountpoint, const char *name, const char *ini,
             struct mallafs_svc **ret)
{
	struct msvc_env env = {.plugins = f->reg, .mountpoint = mountpoint};
	struct mallafs_cfg *cfg = NULL;
	struct mallafs_reason why = {{0}};
	char err[256];
	int line = 0;
	const char *plugins[] = {"exec"};

	assert_int_equal(msvc_new(&env, name, ret), 0);
	assert_int_equal(mcfg_parse_ini(ini, strlen(ini), &cfg, &line, err, sizeof(err)), 0);
	int r = msvc_setup(*ret, plugins, 1, cfg, &why);
	mcfg_free(cfg);
	assert_int_equal(r, 0);
	if (f->owned)
		msvc_set_owner(*ret, f->uid, f->gid);
	return msvc_set_admin(*ret, MSVC_ADMIN_ACTIVE);
}

void free_svc(struct mallafs_svc *svc)
{
	if (!svc)
		return;
	msvc_destroy(svc);
	msvc_unref(svc);
}

int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/mallafs-exec-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->reg = mplugreg_new(mallafs_builtin_plugins, NULL);
	assert_non_null(f->reg);
	log_clear();
	*state = f;
	return 0;
}

int teardown(void **state)
{
	struct fixture *f = *state;
	free_svc(f->svc);
	mplugreg_free(f->reg);
	DIR *d = opendir(f->dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
			unlink(path_in(f, de->d_name));
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

char *config_value(struct mallafs_svc *svc, const char *section, const char *key)
{
	struct mallafs_cfg *e = msvc_config_effective(svc);
	assert_non_null(e);
	const char *v = mallafs_cfg_get(e, section, key);
	char *copy = v ? strdup(v) : NULL;
	mcfg_free(e);
	return copy;
}

void assert_config(struct mallafs_svc *svc, const char *section, const char *key, const char *want)
{
	char *v = config_value(svc, section, key);
	if (!want) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

int set(struct mallafs_svc *svc, const char *section, const char *key, const char *value,
        struct mallafs_reason *why)
{
	return msvc_config_set(svc, section, key, value, strlen(value), why);
}

/* The text after the timestamp of a status field ("TIME REASON"). */
const char *reason_of(const char *field)
{
	const char *sp = strchr(field, ' ');
	return sp ? sp + 1 : field;
}

/* True when a live (not zombie) process is in process group pgid. */
bool group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool alive = false;
	assert_non_null(d);
	while (!alive && (de = readdir(d))) {
		char path[300], buf[512];
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *fp = fopen(path, "r");
		if (!fp)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[n] = '\0';
		/* pid (comm) state ppid pgrp ...; comm may hold spaces. */
		char *p = strrchr(buf, ')');
		char st;
		int ppid, pgrp;
		if (p && sscanf(p + 1, " %c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid &&
		    st != 'Z' && st != 'X')
			alive = true;
	}
	closedir(d);
	return alive;
}
