/* SPDX-License-Identifier: MIT */
/* Time stamps in unit tests: comparing two, and waiting until the
 * real-time clock moves on so that a later stamp differs. */
#ifndef MALLAFS_TESTS_CLOCK_FIXTURE_H
#define MALLAFS_TESTS_CLOCK_FIXTURE_H

#include <time.h>

static inline int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

/* Lets the realtime clock move on so that a later time stamp differs. */
static inline void tick(void)
{
	struct timespec start, now;
	clock_gettime(CLOCK_REALTIME, &start);
	do {
		struct timespec d = {0, 1000000};
		nanosleep(&d, NULL);
		clock_gettime(CLOCK_REALTIME, &now);
	} while (ts_cmp(now, start) == 0);
}

#endif
