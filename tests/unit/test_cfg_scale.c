/* SPDX-License-Identifier: MIT */
/* 10,000 configuration sections in one service cost no more per operation
 * than 10 (issue 10, item 3): a single-key set and unset, a section's
 * creation and removal, and the lookups behind config/SECTION/KEY, timed
 * with each size; the median per-operation cost of the large configuration
 * must stay within 3x of the small one's. The cost is counted in
 * instructions this thread retires (perf_event_open), which a loaded
 * machine does not change; where the kernel refuses the counter, in the
 * thread's CPU time. A full copy of the configuration per change, as there
 * once was, makes it hundreds of times slower. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "builtin.h"
#include "cfg.h"
#include "events.h"
#include "plugin.h"
#include "service.h"
#include "util.h"

#define ROUNDS 9
#define OPS 40

struct scale {
	struct mplugreg *reg;
	struct mev_ring *ring;
	struct mallafs_svc *svc;
};

static void scale_new(struct scale *s, size_t nsections)
{
	struct mallafs_reason why = {{0}};
	/* trace is left out: its diff of two configurations compares every
	 * section with every other (see the report of issue 10). */
	const char *chain[] = {"metrics", "limits"};
	s->reg = mplugreg_new(mallafs_builtin_plugins, NULL);
	s->ring = mev_ring_new(64);
	struct msvc_env env = {.plugins = s->reg, .events = s->ring};
	assert_int_equal(msvc_new(&env, "big", &s->svc), 0);
	struct mu_buf b = {0};
	for (size_t i = 0; i < nsections; i++)
		assert_int_equal(mu_buf_printf(&b, "[s%05zu]\nk = v%zu\nother = x\n", i, i), 0);
	struct mallafs_cfg *cfg = NULL;
	char err[256];
	int line;
	assert_int_equal(mcfg_parse_ini(b.data, b.len, &cfg, &line, err, sizeof(err)), 0);
	mu_buf_free(&b);
	assert_int_equal(msvc_setup(s->svc, chain, 2, cfg, &why), 0);
	assert_int_equal(msvc_set_admin(s->svc, MSVC_ADMIN_ACTIVE), 0);
	mcfg_free(cfg);
}

static void scale_free(struct scale *s)
{
	msvc_destroy(s->svc);
	msvc_unref(s->svc);
	mev_ring_free(s->ring);
	mplugreg_free(s->reg);
}

static int counter = -1; /* instructions retired by this thread, when allowed */

static void counter_open(void)
{
	struct perf_event_attr a = {
	        .type = PERF_TYPE_HARDWARE,
	        .size = sizeof(a),
	        .config = PERF_COUNT_HW_INSTRUCTIONS,
	        .exclude_kernel = 1,
	        .exclude_hv = 1,
	};
	counter = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
	if (counter >= 0)
		ioctl(counter, PERF_EVENT_IOC_ENABLE, 0);
}

static uint64_t cost_now(void)
{
	uint64_t n;
	if (counter >= 0 && read(counter, &n, sizeof(n)) == (ssize_t)sizeof(n))
		return n;
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What the filesystem does for one file of config/SECTION/KEY: a lookup of
 * the section, of the key, and a read. */
static void lookup(struct mallafs_svc *svc, const char *section, const char *key)
{
	struct mallafs_cfg *e = msvc_config_effective(svc);
	assert_non_null(e);
	assert_true(mcfg_has_section(e, section));
	assert_non_null(mallafs_cfg_get(e, section, key));
	mcfg_free(e);
}

/* One round: OPS of each operation on one section among the others. */
static void round_of(struct scale *s)
{
	char value[32];
	for (int i = 0; i < OPS; i++) {
		snprintf(value, sizeof(value), "%d", i);
		assert_int_equal(msvc_config_set(s->svc, "s00001", "k", value, strlen(value), NULL),
		                 0);
		assert_int_equal(msvc_config_set(s->svc, "s00001", "new", "1", 1, NULL), 0);
		assert_int_equal(msvc_config_unset(s->svc, "s00001", "new", NULL), 0);
		assert_int_equal(msvc_config_add_section(s->svc, "zz", NULL), 0);
		assert_int_equal(msvc_config_del_section(s->svc, "zz", NULL), 0);
		lookup(s->svc, "s00001", "k");
		lookup(s->svc, "limits", "max_keys");
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t timed_round(struct scale *s)
{
	uint64_t t0 = cost_now();
	round_of(s);
	return cost_now() - t0;
}

/* Rounds of the two sizes alternate, so that a loaded machine slows both
 * alike; the medians drop the rounds a preemption hit. */
static void test_flat(void **state)
{
	struct scale small, large;
	uint64_t ts[ROUNDS], tl[ROUNDS];
	counter_open();
	scale_new(&small, 10);
	scale_new(&large, 10000);
	round_of(&small); /* warm up */
	round_of(&large);
	for (int r = 0; r < ROUNDS; r++) {
		ts[r] = timed_round(&small);
		tl[r] = timed_round(&large);
	}
	scale_free(&small);
	scale_free(&large);
	qsort(ts, ROUNDS, sizeof(ts[0]), cmp_u64);
	qsort(tl, ROUNDS, sizeof(tl[0]), cmp_u64);
	double ps = (double)ts[ROUNDS / 2] / (OPS * 7), pl = (double)tl[ROUNDS / 2] / (OPS * 7);
	printf("per operation: %.0f %s with 10 sections, %.0f with 10000 (%.2fx)\n", ps,
	       counter >= 0 ? "instructions" : "ns of CPU time", pl, pl / ps);
	if (counter >= 0)
		close(counter);
	assert_true(tl[ROUNDS / 2] < 3 * ts[ROUNDS / 2]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_flat),
	};
	mu_log_set_sink(NULL, NULL, MU_LOG_ERR);
	return cmocka_run_group_tests_name("cfg_scale", tests, NULL, NULL);
}
