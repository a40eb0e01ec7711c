/* SPDX-License-Identifier: MIT */
/* mallafs-clusterlat's parts (see clusterlat.c). */

#ifndef MALLAFS_BENCH_CLUSTERLAT_H
#define MALLAFS_BENCH_CLUSTERLAT_H

#include <stddef.h>

#include "samples.h"

/* Untimed rounds before each measurement. */
#define WARMUP 10

/* etcd_put and etcd_put_to_watch against the etcd at url (clusterlat_etcd.c):
 * 0, or -errno with the reason printed. */
int bench_etcd(const char *url, size_t rounds, int timeout_ms);

#endif
