/* SPDX-License-Identifier: MIT */
/* The Prometheus text exposition format (version 0.0.4), as the metrics
 * plugin's services/NAME/metrics and the daemon's own root `metrics` write
 * it: one "# HELP" and one "# TYPE" line per family, then its samples, each
 * with at most one label. Shared by the built-in plugins and the daemon,
 * not part of the plugin API. No state, no locks. */
#ifndef MALLAFS_PLUGINS_PROM_H
#define MALLAFS_PLUGINS_PROM_H

#include <stdint.h>

#include "mallafs-plugin.h"

/* A metric family. name follows the conventions: "_total" for a counter,
 * base units (seconds, bytes) in the name. */
struct prom_family {
	const char *name;
	const char *type; /* "counter" or "gauge" */
	const char *help;
};

/* "# HELP NAME HELP\n# TYPE NAME TYPE\n", the help text escaped
 * (backslash, newline) as the format wants. 0 or -ENOMEM. */
int prom_header(struct mallafs_out *out, const struct prom_family *f);

/* A label value escaped as the format wants: backslash, double quote and
 * newline. 0 or -ENOMEM. */
int prom_label_value(struct mallafs_out *out, const char *v);

/* One sample, "NAME VALUE\n" or, with a label (label not NULL),
 * "NAME{LABEL=\"VALUE\"} V\n", the label's value escaped. value is the
 * number as text (an integer, or a float such as a time in seconds), so
 * that what is written is exactly what the caller formatted. */
int prom_sample_text(struct mallafs_out *out, const char *name, const char *label,
                     const char *label_value, const char *value);
/* The same for an unsigned integer. */
int prom_sample(struct mallafs_out *out, const char *name, const char *label,
                const char *label_value, uint64_t value);

#endif
