/* SPDX-License-Identifier: MIT */
#include "prom.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Escapes backslash and newline, and double quote when quote is set (label
 * values; help text leaves quotes as they are). */
static int put_escaped(struct mallafs_out *out, const char *v, int quote)
{
	int r = 0;
	const char *run = v;
	for (const char *p = v; r == 0; p++) {
		const char *esc = NULL;
		if (*p == '\\')
			esc = "\\\\";
		else if (*p == '\n')
			esc = "\\n";
		else if (*p == '"' && quote)
			esc = "\\\"";
		else if (*p)
			continue;
		/* What came before it, unchanged, in one piece. */
		if (p > run)
			r = mallafs_out_append(out, run, (size_t)(p - run));
		if (r == 0 && esc)
			r = mallafs_out_append(out, esc, 2);
		if (!*p)
			break;
		run = p + 1;
	}
	return r;
}

int prom_header(struct mallafs_out *out, const struct prom_family *f)
{
	int r = mallafs_out_printf(out, "# HELP %s ", f->name);
	if (r == 0)
		r = put_escaped(out, f->help, 0);
	if (r == 0)
		r = mallafs_out_printf(out, "\n# TYPE %s %s\n", f->name, f->type);
	return r;
}

int prom_label_value(struct mallafs_out *out, const char *v)
{
	return put_escaped(out, v, 1);
}

int prom_sample_text(struct mallafs_out *out, const char *name, const char *label,
                     const char *label_value, const char *value)
{
	if (!label)
		return mallafs_out_printf(out, "%s %s\n", name, value);
	int r = mallafs_out_printf(out, "%s{%s=\"", name, label);
	if (r == 0)
		r = prom_label_value(out, label_value);
	if (r == 0)
		r = mallafs_out_printf(out, "\"} %s\n", value);
	return r;
}

int prom_sample(struct mallafs_out *out, const char *name, const char *label,
                const char *label_value, uint64_t value)
{
	char num[24];
	snprintf(num, sizeof(num), "%" PRIu64, value);
	return prom_sample_text(out, name, label, label_value, num);
}
