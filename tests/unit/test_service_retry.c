/* SPDX-License-Identifier: MIT */
/* A failed restart rolled back, and failed services retried (core/retry.c
 * and the retries of core/service.c): a plugin whose start fails N times
 * comes back by itself, the backoff doubles and stops at its cap, a slow try
 * of one service never holds another's, and destroying a service or freeing
 * the runtime with tries pending or under way leaves nothing running (ASan
 * and TSan watch). */
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

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "events.h"
#include "plugin.h"
#include "retry.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

/* What the plugin "flaky" does in the service of that name. */
struct behave {
	const char *svc;
	atomic_int fails_left; /* its start fails while > 0 (then counts down) */
	atomic_bool broken;    /* its start fails while set */
	atomic_bool hold;      /* its start waits while set (up to 5 s) */
	atomic_int starts;     /* start calls */
	atomic_bool holding;   /* a start is waiting */
	uint64_t at[16];       /* mu_now_ms() of the first starts */
};

static struct behave behaviours[12];
static atomic_int nholding; /* starts waiting, all services */

static struct behave *behave_of(const char *svc)
{
	for (size_t i = 0; i < MU_ARRAY_SIZE(behaviours); i++)
		if (behaviours[i].svc && strcmp(behaviours[i].svc, svc) == 0)
			return &behaviours[i];
	fail_msg("no behaviour for service %s", svc);
	return NULL;
}

static struct behave *behave_new(const char *svc)
{
	for (size_t i = 0; i < MU_ARRAY_SIZE(behaviours); i++) {
		if (!behaviours[i].svc) {
			behaviours[i].svc = svc;
			return &behaviours[i];
		}
	}
	fail_msg("too many behaviours");
	return NULL;
}

struct fstate {
	struct behave *b;
};

static int f_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret)
{
	struct fstate *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->b = behave_of(mallafs_svc_name(svc));
	*ret = s;
	return 0;
}

static void f_fini(void *state)
{
	free(state);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int f_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct behave *b = ((struct fstate *)state)->b;
	int n = atomic_fetch_add(&b->starts, 1);
	if (n < (int)MU_ARRAY_SIZE(b->at))
		b->at[n] = mu_now_ms();
	if (atomic_load(&b->hold)) {
		atomic_store(&b->holding, true);
		atomic_fetch_add(&nholding, 1);
		for (int i = 0; i < 500 && atomic_load(&b->hold); i++)
			sleep_ms(10);
		atomic_fetch_sub(&nholding, 1);
		atomic_store(&b->holding, false);
	}
	const char *v = mallafs_cfg_get(cfg, "t", "v");
	if (v && strcmp(v, "bad") == 0) {
		mallafs_reason_set(why, "v bad cannot start");
		return -EIO;
	}
	if (atomic_load(&b->broken)) {
		mallafs_reason_set(why, "broken");
		return -EIO;
	}
	if (atomic_fetch_sub(&b->fails_left, 1) > 0) {
		mallafs_reason_set(why, "not yet");
		return -EIO;
	}
	return 0;
}

/* Any change of [t] v asks for a restart. */
static enum mallafs_update f_updated(void *state, const struct mallafs_cfg *old,
                                     const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	mallafs_reason_set(why, "v changed");
	return MALLAFS_UPDATE_RESTART;
}

static const struct mallafs_plugin plug_flaky = {
        MALLAFS_PLUGIN_INIT, .name = "flaky",  .init = f_init,
        .fini = f_fini,      .start = f_start, .updated = f_updated,
};

static const struct mallafs_plugin *const test_plugins[] = {&mallafs_plugin_base, &plug_flaky,
                                                            NULL};

/* env's tries come after 20 ms, 40, 80, 80...; slow's after a minute, so
 * that what status shows between tries can be checked at leisure. */
struct fixture {
	struct mplugreg *reg;
	struct mretry *retry, *slow_retry;
	struct msvc_env env, slow;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	memset(behaviours, 0, sizeof(behaviours));
	f->reg = mplugreg_new(test_plugins, NULL);
	f->retry = mretry_new(20, 80, NULL);
	f->slow_retry = mretry_new(60000, 60000, NULL);
	f->env = (struct msvc_env){.plugins = f->reg, .retry = f->retry};
	f->slow = (struct msvc_env){.plugins = f->reg, .retry = f->slow_retry};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mretry_free(f->retry);
	mretry_free(f->slow_retry);
	mplugreg_free(f->reg);
	free(f);
	return 0;
}

/* A service NAME with the chain flaky, base, in env; not started. */
static struct mallafs_svc *service_in(const struct msvc_env *env, const char *name)
{
	struct mallafs_svc *svc;
	struct mallafs_reason why = {{0}};
	const char *names[] = {"flaky"};
	behave_new(name);
	assert_int_equal(msvc_new(env, name, &svc), 0);
	assert_int_equal(msvc_setup(svc, names, 1, NULL, &why), 0);
	return svc;
}

static struct mallafs_svc *flaky_service(struct fixture *f, const char *name)
{
	return service_in(&f->env, name);
}

static struct msvc_status status_of(struct mallafs_svc *svc)
{
	struct msvc_status st;
	msvc_status(svc, &st);
	return st;
}

/* Waits up to ms for the service to be in state st. */
static bool wait_state(struct mallafs_svc *svc, enum msvc_state st, unsigned ms)
{
	for (unsigned i = 0; i < ms / 5; i++) {
		if (status_of(svc).state == st)
			return true;
		sleep_ms(5);
	}
	return status_of(svc).state == st;
}

static void *release_later(void *arg)
{
	sleep_ms(100);
	atomic_store(&((struct behave *)arg)->hold, false);
	return NULL;
}

/* Waits for b's start to hold, then has it let go 100 ms later, from
 * another thread; join *ret when done. */
static void held_then_released(struct behave *b, pthread_t *ret)
{
	for (int i = 0; i < 1000 && !atomic_load(&b->holding); i++)
		sleep_ms(5);
	assert_true(atomic_load(&b->holding));
	assert_int_equal(pthread_create(ret, NULL, release_later, b), 0);
}

static void gone(struct mallafs_svc *svc)
{
	msvc_destroy(svc);
	msvc_unref(svc);
}

static void test_delays(void **state)
{
	struct mretry *q = mretry_new(0, 0, NULL);
	const unsigned want[] = {5000, 10000, 20000, 40000, 80000, 160000, 300000, 300000};
	for (size_t n = 0; n < MU_ARRAY_SIZE(want); n++)
		assert_int_equal(mretry_delay_ms(q, n), want[n]);
	assert_int_equal(mretry_delay_ms(q, UINT64_MAX), 300000);
	mretry_free(q);
	q = mretry_new(300, 1000, NULL);
	assert_int_equal(mretry_delay_ms(q, 0), 300);
	assert_int_equal(mretry_delay_ms(q, 1), 600);
	assert_int_equal(mretry_delay_ms(q, 2), 1000);
	mretry_free(q);
	/* A cap under the base is the base. */
	q = mretry_new(300, 100, NULL);
	assert_int_equal(mretry_delay_ms(q, 5), 300);
	mretry_free(q);
}

static void test_failed_service_comes_back(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = flaky_service(f, "s");
	struct behave *b = behave_of("s");
	atomic_store(&b->fails_left, 4);

	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);

	/* The writer's start, then four tries: three fail, the fourth runs. */
	assert_true(wait_state(svc, MSVC_RUNNING, 5000));
	assert_int_equal(atomic_load(&b->starts), 5);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.retries, 0);
	assert_string_equal(st.next_retry, "-");
	assert_int_equal(st.admin, MSVC_ADMIN_ACTIVE);
	/* The delays before each try: 20, 40, 80, 80 ms at least. */
	const uint64_t least[] = {20, 40, 80, 80};
	for (size_t i = 0; i < MU_ARRAY_SIZE(least); i++)
		assert_true(b->at[i + 1] - b->at[i] >= least[i]);

	/* Running: no more tries. */
	sleep_ms(200);
	assert_int_equal(atomic_load(&b->starts), 5);
	gone(svc);
}

static void test_retries_counted(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = flaky_service(f, "s");
	struct behave *b = behave_of("s");
	atomic_store(&b->broken, true);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	for (int i = 0; i < 1000 && status_of(svc).retries < 3; i++)
		sleep_ms(5);
	struct msvc_status st = status_of(svc);
	assert_true(st.retries >= 3);
	assert_int_equal(st.admin, MSVC_ADMIN_ACTIVE);
	assert_non_null(strstr(st.last_error, "flaky: cannot start: broken"));

	/* inactive ends the tries. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_INACTIVE), 0);
	int starts = atomic_load(&b->starts);
	sleep_ms(300);
	assert_int_equal(atomic_load(&b->starts), starts);
	/* So does pause, after its own try. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_PAUSE), -EIO);
	sleep_ms(300);
	assert_int_equal(atomic_load(&b->starts), starts + 1);

	/* active again: tries, until it runs. */
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	atomic_store(&b->broken, false);
	assert_true(wait_state(svc, MSVC_RUNNING, 5000));
	assert_string_equal(status_of(svc).next_retry, "-");
	assert_int_equal(status_of(svc).retries, 0);
	gone(svc);
}

/* What status shows between tries, and what admin writes do to them. */
static void test_status_between_tries(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = service_in(&f->slow, "s");
	struct behave *b = behave_of("s");
	atomic_store(&b->broken, true);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_int_equal(st.retries, 0); /* the writer's try is not one */
	assert_int_equal(strlen(st.next_retry), 20);
	char *text;
	size_t len;
	assert_int_equal(msvc_status_render(svc, &text, &len), 0);
	char want[64];
	snprintf(want, sizeof(want), "\nretries: 0\nnext_retry: %s\n", st.next_retry);
	assert_non_null(strstr(text, want));
	assert_int_equal(len, strlen(text));
	free(text);

	/* A try (as retry.c runs it) counts, and the next is scheduled. */
	msvc_retry(svc);
	st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_int_equal(st.retries, 1);
	assert_int_equal(strlen(st.next_retry), 20);
	assert_int_equal(atomic_load(&b->starts), 2);

	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_INACTIVE), 0);
	st = status_of(svc);
	assert_int_equal(st.state, MSVC_STOPPED);
	assert_int_equal(st.retries, 0);
	assert_string_equal(st.next_retry, "-");
	/* A try that comes anyway (it was under way) does nothing. */
	msvc_retry(svc);
	assert_int_equal(atomic_load(&b->starts), 2);

	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_PAUSE), -EIO);
	st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_string_equal(st.next_retry, "-");
	msvc_retry(svc);
	assert_int_equal(atomic_load(&b->starts), 3);

	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	assert_int_equal(strlen(status_of(svc).next_retry), 20);
	atomic_store(&b->broken, false);
	msvc_retry(svc);
	st = status_of(svc);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_int_equal(st.retries, 0);
	assert_string_equal(st.next_retry, "-");
	/* Running: a late try does nothing. */
	msvc_retry(svc);
	assert_int_equal(atomic_load(&b->starts), 5);
	gone(svc);
}

static void test_restart_failure_rolled_back(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *svc = service_in(&f->slow, "s");
	struct behave *b = behave_of("s");
	struct mallafs_reason why = {{0}};
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), 0);
	assert_int_equal(msvc_config_set(svc, "t", "v", "good", 4, &why), 0);
	assert_int_equal(status_of(svc).restarts, 1);

	/* The new configuration cannot start: back to the old one, running. */
	assert_int_equal(msvc_config_set(svc, "t", "v", "bad", 3, &why), -EIO);
	assert_string_equal(why.text, "restart failed, rolled back: flaky: cannot start: v bad "
	                              "cannot start");
	struct mallafs_cfg *eff = msvc_config_effective(svc);
	assert_string_equal(mallafs_cfg_get(eff, "t", "v"), "good");
	mcfg_free(eff);
	struct msvc_status st = status_of(svc);
	assert_int_equal(st.state, MSVC_RUNNING);
	assert_int_equal(st.restarts, 3);
	assert_non_null(strstr(st.last_error, why.text));
	assert_non_null(strstr(st.last_restart, "rolling back: flaky: cannot start: v bad"));
	assert_string_equal(st.next_retry, "-");

	/* Neither starts: failed with the old configuration, and retried. */
	atomic_store(&b->broken, true);
	assert_int_equal(msvc_config_set(svc, "t", "v", "bad", 3, &why), -EIO);
	assert_non_null(strstr(why.text, "the old configuration failed to start too: flaky: "
	                                 "cannot start: broken"));
	st = status_of(svc);
	assert_int_equal(st.state, MSVC_FAILED);
	assert_string_not_equal(st.next_retry, "-");
	eff = msvc_config_effective(svc);
	assert_string_equal(mallafs_cfg_get(eff, "t", "v"), "good");
	mcfg_free(eff);
	atomic_store(&b->broken, false);
	msvc_retry(svc);
	assert_int_equal(status_of(svc).state, MSVC_RUNNING);
	gone(svc);
}

/* A try that waits in a hook holds its own service only. */
static void test_slow_try_holds_no_other(void **state)
{
	struct fixture *f = *state;
	struct mallafs_svc *slow = flaky_service(f, "slow");
	struct mallafs_svc *quick = flaky_service(f, "quick");
	struct behave *bs = behave_of("slow"), *bq = behave_of("quick");
	atomic_store(&bs->broken, true);
	assert_int_equal(msvc_set_admin(slow, MSVC_ADMIN_ACTIVE), -EIO);
	atomic_store(&bs->hold, true);
	for (int i = 0; i < 1000 && !atomic_load(&bs->holding); i++)
		sleep_ms(5);
	assert_true(atomic_load(&bs->holding));

	/* slow's try waits; quick fails, is retried and runs meanwhile. */
	atomic_store(&bq->fails_left, 2);
	assert_int_equal(msvc_set_admin(quick, MSVC_ADMIN_ACTIVE), -EIO);
	assert_true(wait_state(quick, MSVC_RUNNING, 3000));
	assert_true(atomic_load(&bs->holding));
	atomic_store(&bs->hold, false);
	gone(quick);
	gone(slow);
}

/* One owner's slow tries hold at most 4 workers; another's run meanwhile. */
static void test_one_owner_holds_few_workers(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {"o0", "o1", "o2", "o3", "o4", "o5", "o6", "o7"};
	struct mallafs_svc *svcs[MU_ARRAY_SIZE(names)];
	for (size_t i = 0; i < MU_ARRAY_SIZE(names); i++) {
		svcs[i] = flaky_service(f, names[i]);
		msvc_set_owner(svcs[i], 4242, 4242);
		struct behave *b = behave_of(names[i]);
		atomic_store(&b->broken, true);
		assert_int_equal(msvc_set_admin(svcs[i], MSVC_ADMIN_ACTIVE), -EIO);
		atomic_store(&b->hold, true);
	}
	for (int i = 0; i < 1000 && atomic_load(&nholding) < 4; i++)
		sleep_ms(5);
	assert_int_equal(atomic_load(&nholding), 4);
	sleep_ms(100);
	assert_int_equal(atomic_load(&nholding), 4);

	struct mallafs_svc *other = flaky_service(f, "other");
	atomic_store(&behave_of("other")->fails_left, 2);
	assert_int_equal(msvc_set_admin(other, MSVC_ADMIN_ACTIVE), -EIO);
	assert_true(wait_state(other, MSVC_RUNNING, 3000));
	assert_int_equal(atomic_load(&nholding), 4);

	for (size_t i = 0; i < MU_ARRAY_SIZE(names); i++) {
		atomic_store(&behave_of(names[i])->broken, false);
		atomic_store(&behave_of(names[i])->hold, false);
	}
	/* Every one's try comes, in fours, and each runs. */
	for (size_t i = 0; i < MU_ARRAY_SIZE(names); i++)
		assert_true(wait_state(svcs[i], MSVC_RUNNING, 5000));
	for (size_t i = 0; i < MU_ARRAY_SIZE(names); i++)
		gone(svcs[i]);
	gone(other);
}

static void test_destroy_with_try_pending_or_under_way(void **state)
{
	struct fixture *f = *state;
	/* Pending: the try goes with the service. */
	struct mallafs_svc *svc = flaky_service(f, "pending");
	struct behave *b = behave_of("pending");
	atomic_store(&b->broken, true);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	gone(svc);
	int starts = atomic_load(&b->starts);
	sleep_ms(100);
	assert_int_equal(atomic_load(&b->starts), starts);

	/* Under way: destroy waits for it, and nothing follows. */
	svc = flaky_service(f, "busy");
	b = behave_of("busy");
	atomic_store(&b->broken, true);
	assert_int_equal(msvc_set_admin(svc, MSVC_ADMIN_ACTIVE), -EIO);
	atomic_store(&b->hold, true);
	pthread_t t;
	held_then_released(b, &t);
	gone(svc);
	assert_false(atomic_load(&b->holding));
	pthread_join(t, NULL);
	starts = atomic_load(&b->starts);
	sleep_ms(200);
	assert_int_equal(atomic_load(&b->starts), starts);
}

/* The runtime freed with a try pending and one under way: joined, no leak. */
static void test_runtime_free_stops_retries(void **state)
{
	struct behave *b = behave_new("boot"), *h = behave_new("held");
	atomic_store(&b->broken, true);
	atomic_store(&h->broken, true);
	struct mrt_options o = {.builtins = test_plugins, .retry_base_ms = 50, .retry_max_ms = 50};
	struct mrt *rt = mrt_new(&o);
	assert_non_null(rt);
	const char *names[] = {"flaky"};
	struct mallafs_reason why = {{0}};
	/* As the bootstrap does: a service that fails to start stays, retried. */
	assert_int_equal(mrt_service_create_full(rt, "boot", names, 1, NULL, "active", &why), 0);
	assert_int_equal(mrt_service_create_full(rt, "held", names, 1, NULL, "active", &why), 0);
	struct mallafs_svc *svc = mrt_service_get(rt, "boot");
	for (int i = 0; i < 1000 && status_of(svc).retries < 2; i++)
		sleep_ms(5);
	assert_true(status_of(svc).retries >= 2);
	msvc_unref(svc);
	atomic_store(&h->hold, true);
	pthread_t t;
	held_then_released(h, &t);
	mrt_free(rt);
	assert_false(atomic_load(&h->holding));
	pthread_join(t, NULL);
	int starts = atomic_load(&b->starts);
	sleep_ms(150);
	assert_int_equal(atomic_load(&b->starts), starts);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_delays),
	        T(test_failed_service_comes_back),
	        T(test_retries_counted),
	        T(test_status_between_tries),
	        T(test_restart_failure_rolled_back),
	        T(test_slow_try_holds_no_other),
	        T(test_one_owner_holds_few_workers),
	        T(test_destroy_with_try_pending_or_under_way),
	        T(test_runtime_free_stops_retries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
