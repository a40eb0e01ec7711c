/* SPDX-License-Identifier: MIT */
/* What the metrics plugin counts, for the daemon's root `metrics` file,
 * which gathers every service's counters under one HELP and TYPE per
 * family (fs/metrics.c). Not part of the plugin API. */
#ifndef MALLAFS_PLUGINS_METRICS_H
#define MALLAFS_PLUGINS_METRICS_H

#include <stdint.h>

#include "prom.h"

/* The series of one service, in the order its file lists them: the
 * counters, then the gauge of keys. */
enum mm_series {
	MM_GETS,
	MM_HITS,
	MM_MISSES,
	MM_READ_BYTES,
	MM_PUTS,
	MM_WRITTEN_BYTES,
	MM_CREATES,
	MM_TRUNCATES,
	MM_DELETES,
	MM_RENAMES,
	MM_REFUSALS,
	MM_KEYS,
	MM_COUNT_,
};

/* Each series' family: name, type and help. */
extern const struct prom_family mm_families[MM_COUNT_];

/* The label each sample carries: the service's name. */
#define MM_LABEL "service"
/* The file the plugin publishes: services/NAME/metrics. */
#define MM_FILE "metrics"

/* Copies the counters of one metrics instance (a state the plugin's init
 * made) into arg, a uint64_t[MM_COUNT_]; for msvc_plugin_peek, which calls
 * it while the instance cannot go. Always 0. */
int mm_snapshot(void *state, void *arg);

#endif
