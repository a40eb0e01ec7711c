/* SPDX-License-Identifier: MIT */
/* The runtime: the service table, bootstrap creation, and its parts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "events.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

static struct mrt *new_rt(void)
{
	struct mrt_options o = {.builtins = mallafs_builtin_plugins, .event_capacity = 256};
	struct mrt *rt = mrt_new(&o);
	assert_non_null(rt);
	assert_non_null(mrt_events(rt));
	assert_non_null(mrt_registry(rt));
	assert_non_null(mrt_nodecfg(rt));
	return rt;
}

static int collect(const char *name, uint64_t cookie, void *arg)
{
	char *buf = arg;
	size_t n = strlen(buf);
	snprintf(buf + n, 512 - n, "%s:%llu ", name, (unsigned long long)cookie);
	return 0;
}

static void test_create_list_destroy(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};
	uint64_t cur = mev_ring_next_seq(mrt_events(rt));

	assert_int_equal(mrt_service_create(rt, "api", &why), 0);
	assert_int_equal(mrt_service_create(rt, "web", &why), 0);
	assert_int_equal(mrt_service_create(rt, "api", &why), -EEXIST);
	assert_int_equal(mrt_service_create(rt, "a/b", &why), -EINVAL);
	assert_int_equal(mrt_service_create(rt, ".", &why), -EINVAL);
	assert_int_equal(mrt_service_create(rt, "", &why), -EINVAL);

	/* Each with its cookie; a listing resumes after a cookie. */
	char buf[512] = "";
	assert_int_equal(mrt_service_list(rt, 0, collect, buf), 0);
	assert_string_equal(buf, "api:1 web:2 ");
	buf[0] = '\0';
	assert_int_equal(mrt_service_list(rt, 1, collect, buf), 0);
	assert_string_equal(buf, "web:2 ");

	struct mallafs_svc *svc = mrt_service_get(rt, "api");
	assert_non_null(svc);
	struct msvc_status st;
	msvc_status(svc, &st);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_int_equal(st.admin, MSVC_ADMIN_ACTIVE);
	assert_int_equal(msvc_store_write(svc, "k", 0, "v", 1, 0), 1);

	/* Destroyed with its store while a reference is still held. */
	assert_int_equal(mrt_service_destroy(rt, "api"), 0);
	assert_int_equal(mrt_service_destroy(rt, "api"), -ENOENT);
	assert_null(mrt_service_get(rt, "api"));
	char v[4];
	assert_int_equal(msvc_store_read(svc, "k", 0, v, sizeof(v)), -ENOENT);
	msvc_unref(svc);

	/* A new service of the same name starts empty, with a new id, at the
	 * position the old one freed. */
	assert_int_equal(mrt_service_create(rt, "api", &why), 0);
	svc = mrt_service_get(rt, "api");
	assert_int_equal(msvc_store_read(svc, "k", 0, v, sizeof(v)), -ENOENT);
	assert_int_equal(msvc_id(svc), 3);
	msvc_unref(svc);
	buf[0] = '\0';
	assert_int_equal(mrt_service_list(rt, 0, collect, buf), 0);
	assert_string_equal(buf, "api:1 web:2 ");

	char ev[4096];
	ssize_t n = mev_ring_read(mrt_events(rt), &cur, ev, sizeof(ev) - 1);
	assert_true(n > 0);
	ev[n] = '\0';
	assert_non_null(strstr(ev, "mkdir services/api\n"));
	assert_non_null(strstr(ev, "mkdir services/web\n"));
	assert_non_null(strstr(ev, "rmdir services/api\n"));
	assert_non_null(strstr(ev, "status services/api/status running active\n"));
	mrt_free(rt);
}

static void test_create_full(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};
	struct mallafs_cfg *cfg = mcfg_new();
	mallafs_cfg_set(cfg, "app", "k", "v");
	const char *plugins[] = {"nosuch"};
	assert_int_equal(mrt_service_create_full(rt, "bad", plugins, 1, cfg, NULL, &why), -ENOENT);
	assert_non_null(strstr(why.text, "nosuch"));
	assert_null(mrt_service_get(rt, "bad"));
	assert_int_equal(mrt_service_create_full(rt, "x", NULL, 0, cfg, "sleepy", &why), -EINVAL);

	assert_int_equal(mrt_service_create_full(rt, "api", NULL, 0, cfg, "inactive", &why), 0);
	struct mallafs_svc *svc = mrt_service_get(rt, "api");
	struct msvc_status st;
	msvc_status(svc, &st);
	assert_int_equal(st.state, MSVC_STOPPED);
	assert_int_equal(st.admin, MSVC_ADMIN_INACTIVE);
	char *text;
	size_t len;
	assert_int_equal(msvc_config_render(svc, &text, &len), 0);
	assert_string_equal(text, "[app]\nk = v\n");
	free(text);
	msvc_unref(svc);

	assert_int_equal(mrt_service_create_full(rt, "p", NULL, 0, NULL, "pause", &why), 0);
	svc = mrt_service_get(rt, "p");
	msvc_status(svc, &st);
	assert_int_equal(st.state, MSVC_PAUSED);
	msvc_unref(svc);
	mcfg_free(cfg);

	mrt_stop_all(rt);
	svc = mrt_service_get(rt, "p");
	msvc_status(svc, &st);
	assert_int_equal(st.state, MSVC_STOPPED);
	msvc_unref(svc);
	mrt_free(rt);
}

/* One call of a listing of services/: up to max, the last cookie kept. */
struct chunk {
	size_t max, n;
	uint64_t last;
	unsigned seen[64]; /* "sN" */
	size_t others;
};

static int take(const char *name, uint64_t cookie, void *arg)
{
	struct chunk *c = arg;
	unsigned i;
	char end;
	if (sscanf(name, "s%u%c", &i, &end) == 1 && i < MU_ARRAY_SIZE(c->seen))
		c->seen[i]++;
	else
		c->others++;
	c->last = cookie;
	return ++c->n == c->max ? 1 : 0;
}

static void create(struct mrt *rt, const char *prefix, size_t i)
{
	struct mallafs_reason why = {{0}};
	char name[32];
	snprintf(name, sizeof(name), "%s%zu", prefix, i);
	assert_int_equal(mrt_service_create_full(rt, name, NULL, 0, NULL, "inactive", &why), 0);
}

static void destroy(struct mrt *rt, const char *prefix, size_t i)
{
	char name[32];
	snprintf(name, sizeof(name), "%s%zu", prefix, i);
	assert_int_equal(mrt_service_destroy(rt, name), 0);
}

/* services/ read 3 a call while 2 services go and 2 come between calls:
 * each service there throughout comes once, the listing ends, and the
 * listing looks at what it returns only (issue 12, item 1). */
static void test_list_under_churn(void **state)
{
	enum { STABLE = 64, CHURN = 16, K = 3, ROUNDS = 2 };
	struct mrt *rt = new_rt();
	size_t oldest = 0, next = 0;
	for (size_t i = 0; i < STABLE; i++) {
		create(rt, "s", i);
		if (i % (STABLE / CHURN) == 0)
			create(rt, "c", next++);
	}
	size_t made = next, calls = 0;
	struct chunk c = {0};
	uint64_t cookie = 0, steps = mrt_service_list_steps(rt);
	for (;;) {
		c.max = K;
		c.n = 0;
		int r = mrt_service_list(rt, cookie, take, &c);
		calls++;
		assert_true(calls <= (STABLE + made) / K + 2);
		if (r == 0)
			break;
		assert_int_equal(r, 1);
		cookie = c.last;
		for (size_t j = 0; j < ROUNDS; j++) {
			destroy(rt, "c", oldest++);
			create(rt, "c", next++);
		}
	}
	for (size_t i = 0; i < STABLE; i++)
		if (c.seen[i] != 1)
			fail_msg("s%zu came %u times", i, c.seen[i]);
	/* Each entry returned was looked at once, and nothing else. */
	assert_int_equal(mrt_service_list_steps(rt) - steps, STABLE + c.others);

	/* A resume in the middle looks at what it returns only. */
	struct chunk mid = {.max = STABLE / 2};
	assert_int_equal(mrt_service_list(rt, 0, take, &mid), 1);
	steps = mrt_service_list_steps(rt);
	struct chunk two = {.max = 2};
	assert_int_equal(mrt_service_list(rt, mid.last, take, &two), 1);
	assert_int_equal(mrt_service_list_steps(rt) - steps, 2);
	mrt_free(rt);
}

int main(void)
{
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_create_list_destroy),
	        cmocka_unit_test(test_create_full),
	        cmocka_unit_test(test_list_under_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
