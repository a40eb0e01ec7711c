/* SPDX-License-Identifier: MIT */
/*
 * What the benchmark's drivers share: a clock, timed samples summed up as
 * median, p99 and mean, and the small input and output helpers.
 */

#ifndef MALLAFS_BENCH_SAMPLES_H
#define MALLAFS_BENCH_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

/* Durations of one operation, in microseconds; at most cap are kept. */
struct samples {
	const char *op;
	double *us;
	size_t n;
	size_t cap;
	size_t missed; /* for drivers that count what never came */
};

struct summary {
	double median_us;
	double p99_us; /* nearest rank: the smallest sample with 99% at or below it */
	double mean_us;
	double max_us;
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

int samples_init(struct samples *s, const char *op, size_t cap);
void samples_add(struct samples *s, uint64_t start, uint64_t end);
/* Sorts the samples and sums them up; all zero when there are none. */
void samples_summary(struct samples *s, struct summary *ret);
/* Prints "op=OP median_us=... p99_us=... mean_us=... n=N" and a newline,
 * nothing when there are no samples. */
void samples_report(struct samples *s);
/* The same with " missed=M" at the end, and a line even with no samples. */
void samples_report_missed(struct samples *s);
void samples_free(struct samples *s);

/* write() all of buf, again after EINTR and short writes: 0 or -errno. */
int write_all(int fd, const char *buf, size_t len);

/* A decimal count between min and SIZE_MAX / 100 into *ret; prints
 * "PROG: bad NAME: ARG" and returns -EINVAL otherwise. */
int parse_size(const char *prog, const char *arg, const char *name, size_t min, size_t *ret);
/* A decimal number between min and max into *ret; prints "PROG: bad NAME:
 * ARG" and returns -EINVAL otherwise. */
int parse_long(const char *prog, const char *arg, const char *name, long min, long max, long *ret);

#endif
