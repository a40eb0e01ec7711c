/* SPDX-License-Identifier: MIT */
/* See samples.h. */

#include "samples.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int samples_init(struct samples *s, const char *op, size_t cap)
{
	memset(s, 0, sizeof(*s));
	s->op = op;
	s->cap = cap;
	s->us = malloc((cap ? cap : 1) * sizeof(*s->us));
	return s->us ? 0 : -ENOMEM;
}

void samples_add(struct samples *s, uint64_t start, uint64_t end)
{
	if (s->n < s->cap)
		s->us[s->n++] = (double)(end - start) / 1000.0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void samples_summary(struct samples *s, struct summary *ret)
{
	double sum = 0;
	size_t i, k;

	memset(ret, 0, sizeof(*ret));
	if (s->n == 0)
		return;
	qsort(s->us, s->n, sizeof(*s->us), cmp_double);
	for (i = 0; i < s->n; i++)
		sum += s->us[i];
	ret->median_us = s->n % 2 ? s->us[s->n / 2] : (s->us[s->n / 2 - 1] + s->us[s->n / 2]) / 2;
	k = (s->n * 99 + 99) / 100;
	ret->p99_us = s->us[k ? k - 1 : 0];
	ret->mean_us = sum / (double)s->n;
	ret->max_us = s->us[s->n - 1];
}

void samples_report(struct samples *s)
{
	struct summary sum;

	if (s->n == 0)
		return;
	samples_summary(s, &sum);
	printf("op=%s median_us=%.2f p99_us=%.2f mean_us=%.2f n=%zu\n", s->op, sum.median_us,
	       sum.p99_us, sum.mean_us, s->n);
	fflush(stdout);
}

void samples_report_missed(struct samples *s)
{
	struct summary sum;

	samples_summary(s, &sum);
	printf("op=%s median_us=%.2f p99_us=%.2f mean_us=%.2f n=%zu missed=%zu\n", s->op,
	       sum.median_us, sum.p99_us, sum.mean_us, s->n, s->missed);
	fflush(stdout);
}

void samples_free(struct samples *s)
{
	free(s->us);
	s->us = NULL;
}

int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int parse_long(const char *prog, const char *arg, const char *name, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max) {
		fprintf(stderr, "%s: bad %s: %s\n", prog, name, arg);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int parse_size(const char *prog, const char *arg, const char *name, size_t min, size_t *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > SIZE_MAX / 100) {
		fprintf(stderr, "%s: bad %s: %s\n", prog, name, arg);
		return -EINVAL;
	}
	*ret = (size_t)v;
	return 0;
}
