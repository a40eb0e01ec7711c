/* SPDX-License-Identifier: MIT */
/* Threads: store operations racing reconfigurations, restarts and chain
 * changes; a slow callback in one service never blocking another service, nor
 * the readers of its own store and status. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "builtin.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

static atomic_int hook_while_stopped;
static atomic_int slow_update_ms;
static atomic_int restart_every;
static atomic_int updates;

struct gstate {
	atomic_bool started;
};

static int g_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret)
{
	*ret = calloc(1, sizeof(struct gstate));
	return *ret ? 0 : -ENOMEM;
}

static void g_fini(void *state)
{
	free(state);
}

static int g_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	usleep(200);
	atomic_store(&((struct gstate *)state)->started, true);
	return 0;
}

static void g_stop(void *state)
{
	atomic_store(&((struct gstate *)state)->started, false);
	usleep(200);
}

static enum mallafs_update g_updated(void *state, const struct mallafs_cfg *old,
                                     const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	int n = atomic_fetch_add(&updates, 1);
	int ms = atomic_load(&slow_update_ms);
	if (ms)
		usleep((useconds_t)ms * 1000);
	int every = atomic_load(&restart_every);
	if (every && n % every == 0) {
		mallafs_reason_set(why, "every %d updates", every);
		return MALLAFS_UPDATE_RESTART;
	}
	return MALLAFS_UPDATE_OK;
}

/* A hook running while its plugin is stopped would be a race. */
static int g_before(void *state, struct mallafs_store_op *op)
{
	if (!atomic_load(&((struct gstate *)state)->started))
		atomic_fetch_add(&hook_while_stopped, 1);
	return 0;
}

static const struct mallafs_plugin plug_guard = {
        MALLAFS_PLUGIN_INIT, .name = "guard", .init = g_init,       .fini = g_fini,
        .start = g_start,    .stop = g_stop,  .updated = g_updated, .store_before = g_before,
};
static const struct mallafs_plugin plug_extra = {
        MALLAFS_PLUGIN_INIT, .name = "extra", .init = g_init,           .fini = g_fini,
        .start = g_start,    .stop = g_stop,  .store_before = g_before,
};
static const struct mallafs_plugin *const plugins[] = {&mallafs_plugin_base, &plug_guard,
                                                       &plug_extra, NULL};

static struct mrt *new_rt(void)
{
	struct mrt_options o = {.builtins = plugins, .event_capacity = 1024};
	struct mrt *rt = mrt_new(&o);
	assert_non_null(rt);
	return rt;
}

#define WRITERS 4
#define KEYS 64
#define ROUNDS 60

struct wctx {
	struct mallafs_svc *svc;
	int id;
	atomic_int *errors;
};

static void *writer(void *arg)
{
	struct wctx *w = arg;
	char key[32], val[32], got[32];
	for (int round = 0; round < ROUNDS; round++) {
		for (int k = 0; k < KEYS; k++) {
			snprintf(key, sizeof(key), "w%d-%d", w->id, k);
			int n = snprintf(val, sizeof(val), "%d:%d", round, k);
			if (msvc_store_write(w->svc, key, 0, val, (size_t)n, MALLAFS_OPF_REPLACE) !=
			    n)
				atomic_fetch_add(w->errors, 1);
			/* Read after write sees it, every time. */
			ssize_t r = msvc_store_read(w->svc, key, 0, got, sizeof(got));
			if (r != n || memcmp(got, val, (size_t)n) != 0)
				atomic_fetch_add(w->errors, 1);
		}
	}
	return NULL;
}

static void *reconfigurer(void *arg)
{
	struct mallafs_svc *svc = arg;
	char v[16];
	for (int i = 0; i < 80; i++) {
		int n = snprintf(v, sizeof(v), "%d", i);
		msvc_config_set(svc, "t", "v", v, (size_t)n, NULL);
	}
	return NULL;
}

static void *chainer(void *arg)
{
	struct mallafs_svc *svc = arg;
	for (int i = 0; i < 60; i++) {
		msvc_add_plugin(svc, "extra", NULL);
		msvc_del_plugin(svc, "extra", NULL);
		msvc_set_admin(svc, i % 3 == 0 ? MSVC_ADMIN_INACTIVE : MSVC_ADMIN_ACTIVE);
	}
	msvc_set_admin(svc, MSVC_ADMIN_ACTIVE);
	return NULL;
}

static void test_store_races_reconfiguration(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};
	const char *chain[] = {"guard"};
	assert_int_equal(mrt_service_create_full(rt, "s", chain, 1, NULL, NULL, &why), 0);
	struct mallafs_svc *svc = mrt_service_get(rt, "s");
	atomic_store(&restart_every, 4);
	atomic_store(&slow_update_ms, 0);
	atomic_store(&hook_while_stopped, 0);

	atomic_int errors = 0;
	pthread_t wt[WRITERS], rc, ch;
	struct wctx w[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct wctx){svc, i, &errors};
		pthread_create(&wt[i], NULL, writer, &w[i]);
	}
	pthread_create(&rc, NULL, reconfigurer, svc);
	pthread_create(&ch, NULL, chainer, svc);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(wt[i], NULL);
	pthread_join(rc, NULL);
	pthread_join(ch, NULL);

	assert_int_equal(atomic_load(&errors), 0);
	assert_int_equal(atomic_load(&hook_while_stopped), 0);
	/* Every key holds its last value; nothing was lost to a restart. */
	char key[32], want[32], got[32];
	for (int i = 0; i < WRITERS; i++) {
		for (int k = 0; k < KEYS; k++) {
			snprintf(key, sizeof(key), "w%d-%d", i, k);
			int n = snprintf(want, sizeof(want), "%d:%d", ROUNDS - 1, k);
			assert_int_equal(msvc_store_read(svc, key, 0, got, sizeof(got)), n);
			assert_memory_equal(got, want, (size_t)n);
		}
	}
	struct msvc_status st;
	msvc_status(svc, &st);
	assert_int_equal(st.state, MSVC_RUNNING);
	/* The race may or may not have restarted it (the chainer keeps stopping
	 * it); after the storm a restart request still restarts it, store kept. */
	uint64_t before = st.restarts;
	atomic_store(&restart_every, 1);
	assert_int_equal(msvc_config_set(svc, "t", "v", "after", 5, NULL), 0);
	msvc_status(svc, &st);
	assert_int_equal(st.restarts, before + 1);
	assert_int_equal(st.state, MSVC_RUNNING);
	char *text;
	size_t len;
	assert_int_equal(msvc_chain_render(svc, &text, &len), 0);
	assert_string_equal(text, "guard\nbase\n");
	free(text);
	msvc_unref(svc);
	mrt_free(rt);
}

static atomic_bool slow_done;

static void *slow_reconfigure(void *arg)
{
	msvc_config_set(arg, "t", "v", "slow", 4, NULL);
	atomic_store(&slow_done, true);
	return NULL;
}

static void test_slow_callback_blocks_nobody_else(void **state)
{
	struct mrt *rt = new_rt();
	struct mallafs_reason why = {{0}};
	const char *chain[] = {"guard"};
	assert_int_equal(mrt_service_create_full(rt, "slow", chain, 1, NULL, NULL, &why), 0);
	assert_int_equal(mrt_service_create_full(rt, "fast", chain, 1, NULL, NULL, &why), 0);
	struct mallafs_svc *slow = mrt_service_get(rt, "slow");
	struct mallafs_svc *fast = mrt_service_get(rt, "fast");
	assert_int_equal(msvc_store_write(slow, "k", 0, "v", 1, 0), 1);
	atomic_store(&restart_every, 0);
	atomic_store(&slow_update_ms, 1500);
	atomic_store(&slow_done, false);

	pthread_t t;
	pthread_create(&t, NULL, slow_reconfigure, slow);
	usleep(100 * 1000); /* let it reach the slow callback */

	/* While it waits: the other service reconfigures, its store and the slow
	 * service's store and status all answer. */
	atomic_store(&slow_update_ms, 0);
	char buf[8], *text;
	size_t len;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(msvc_store_write(fast, "k", 0, "x", 1, 0), 1);
		assert_int_equal(msvc_store_read(slow, "k", 0, buf, sizeof(buf)), 1);
		assert_int_equal(msvc_store_write(slow, "k2", 0, "y", 1, 0), 1);
		assert_int_equal(msvc_status_render(slow, &text, &len), 0);
		free(text);
		assert_int_equal(msvc_config_render(slow, &text, &len), 0);
		free(text);
	}
	assert_int_equal(msvc_config_set(fast, "t", "v", "quick", 5, NULL), 0);
	assert_int_equal(mrt_service_create(rt, "third", &why), 0);
	assert_false(atomic_load(&slow_done));

	pthread_join(t, NULL);
	assert_true(atomic_load(&slow_done));
	msvc_unref(slow);
	msvc_unref(fast);
	mrt_free(rt);
}

int main(void)
{
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_store_races_reconfiguration),
	        cmocka_unit_test(test_slow_callback_blocks_nobody_else),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
