/* SPDX-License-Identifier: MIT */
/* metrics: counts the store operations that pass this plugin and publishes
 * them in services/NAME/metrics, in the Prometheus text exposition format
 * (version 0.0.4), each sample labelled with the service's name.
 *
 * What is counted, by the result each operation reaches this plugin with:
 *  - gets, hits, misses: reads of a value from its start (offset 0), so one
 *    `cat` is one get however many read requests it takes; hits returned
 *    data (or an empty value), misses found no such key. Reads further in
 *    only add to the bytes read.
 *  - puts (every WRITE: >, >> and writes at an offset), creates, truncates,
 *    deletes and renames, whatever their result.
 *  - refusals: operations that failed, whether a plugin below refused them
 *    or the store did (EEXIST, ENOENT on delete...), misses excepted.
 *  - bytes read and written: what the operations really moved.
 *  - keys: a gauge, the number of keys after the last operation seen (or
 *    when the plugin started).
 * An operation that a plugin above this one refuses never reaches it: put
 * metrics on top of the chain to count everything.
 *
 * The file is for pulling (a scraper or a textfile collector reads it when
 * it wants): it is rendered from the counters on every read, and watchers
 * are not told of each change, which would double every store event. The
 * root's `metrics` shows the same counters of every service that has the
 * plugin, one HELP and TYPE per family (mm_snapshot, metrics.h). */
#include "metrics.h"

#include "builtin.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The family of each series; its counter in struct metrics has the same
 * index (MM_KEYS is the gauge). */
const struct prom_family mm_families[MM_COUNT_] = {
        [MM_GETS] = {"mallafs_store_gets_total", "counter",
                     "Reads of a value from its start, whatever the result."},
        [MM_HITS] = {"mallafs_store_hits_total", "counter", "Gets that found the key."},
        [MM_MISSES] = {"mallafs_store_misses_total", "counter", "Gets that found no such key."},
        [MM_READ_BYTES] = {"mallafs_store_read_bytes_total", "counter", "Bytes returned by reads."},
        [MM_PUTS] = {"mallafs_store_puts_total", "counter",
                     "Writes (puts, appends, writes at an offset)."},
        [MM_WRITTEN_BYTES] = {"mallafs_store_written_bytes_total", "counter",
                              "Bytes stored by writes."},
        [MM_CREATES] = {"mallafs_store_creates_total", "counter", "Creations of an empty key."},
        [MM_TRUNCATES] = {"mallafs_store_truncates_total", "counter", "Truncations of a value."},
        [MM_DELETES] = {"mallafs_store_deletes_total", "counter", "Deletions of a key."},
        [MM_RENAMES] = {"mallafs_store_renames_total", "counter", "Renames of a key."},
        [MM_REFUSALS] = {"mallafs_store_refusals_total", "counter",
                         "Operations refused by a plugin or failed in the store, misses "
                         "excepted."},
        [MM_KEYS] = {"mallafs_store_keys", "gauge", "Keys in the store after the last operation."},
};

struct metrics {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;
	/* GET hooks run concurrently with each other, and renders with them.
	 * c[MM_KEYS] is the gauge. */
	_Atomic uint64_t c[MM_COUNT_];
	/* Set in store_before of a RENAME and read in its store_after: both
	 * run under the store's write lock, so no other operation comes in
	 * between. */
	bool rename_replaces;
};

static int metrics_init(struct mallafs_svc *svc, const struct mallafs_plugin *self,
                        void **ret_state)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->svc = svc;
	m->self = self;
	for (size_t i = 0; i < MM_COUNT_; i++)
		atomic_init(&m->c[i], 0);
	*ret_state = m;
	return 0;
}

static void metrics_fini(void *state)
{
	free(state);
}

static int count_key(const char *key, const void *value, size_t len, const struct timespec *mtime,
                     void *arg)
{
	(*(uint64_t *)arg)++;
	return 0;
}

/* The counters live as long as the plugin is in the chain, across restarts,
 * as a scraper expects of counters; only the gauge is read afresh, since a
 * plugin below (persist) may have loaded keys while this one was stopped. */
static int metrics_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct metrics *m = state;
	uint64_t n = 0;
	if (mallafs_store_foreach(m->svc, count_key, &n) == 0)
		atomic_store_explicit(&m->c[MM_KEYS], n, memory_order_relaxed);
	return 0;
}

/* metrics has no settings: a key in its section is a mistake to report. */
static int reject_key(const char *key, const char *value, void *arg)
{
	struct mallafs_reason *why = arg;
	size_t n = strlen(key);
	mallafs_reason_set(why, "metrics has no settings, not '%.*s%s'", n > 40 ? 40 : (int)n, key,
	                   n > 40 ? "..." : "");
	mallafs_reason_key(why, NULL, key);
	return -EINVAL;
}

static int metrics_merge(void *state, const struct mallafs_cfg *old,
                         const struct mallafs_cfg *update, struct mallafs_cfg *merged,
                         struct mallafs_reason *why)
{
	struct metrics *m = state;
	return mallafs_cfg_foreach(merged, m->self->name, reject_key, why);
}

static int metrics_before(void *state, struct mallafs_store_op *op)
{
	struct metrics *m = state;
	if (op->code != MALLAFS_OP_RENAME)
		return 0;
	/* The only effect on the key count the operation does not tell: a
	 * rename that replaces a key removes one. A zero-byte read of the
	 * target, straight on the table, answers it without side effects. */
	struct mallafs_store_op probe = {.code = MALLAFS_OP_GET, .key = op->new_key};
	m->rename_replaces =
	        strcmp(op->key, op->new_key) != 0 && mallafs_store_exec(m->svc, &probe) >= 0;
	return 0;
}

static void add(struct metrics *m, enum mm_series c, uint64_t n)
{
	atomic_fetch_add_explicit(&m->c[c], n, memory_order_relaxed);
}

static void metrics_after(void *state, const struct mallafs_store_op *op)
{
	struct metrics *m = state;
	int64_t r = op->result;
	uint64_t keys = op->nkeys;

	/* A probe that passed changed nothing; one refused is a refusal. */
	if ((op->flags & MALLAFS_OPF_PROBE) && r >= 0)
		return;

	switch (op->code) {
	case MALLAFS_OP_GET:
		/* A get is one read of a value: its opening, or a read at offset
		 * 0 that is not part of an opened one. */
		if (!(op->flags & MALLAFS_OPF_PAGE) && op->offset == 0) {
			add(m, MM_GETS, 1);
			if (r >= 0)
				add(m, MM_HITS, 1);
			else if (r == -ENOENT)
				add(m, MM_MISSES, 1);
		}
		/* Bytes of the values got: an opening get counts the whole value
		 * (the reads that follow may come from the kernel's cache), so
		 * its pages add nothing more. */
		if ((op->flags & MALLAFS_OPF_OPEN) && r >= 0 && op->old_size > 0)
			add(m, MM_READ_BYTES, (uint64_t)op->old_size);
		else if (!(op->flags & MALLAFS_OPF_PAGE) && r > 0)
			add(m, MM_READ_BYTES, (uint64_t)r);
		break;
	case MALLAFS_OP_WRITE:
		add(m, MM_PUTS, 1);
		if (r > 0)
			add(m, MM_WRITTEN_BYTES, (uint64_t)r);
		if (r >= 0 && op->old_size < 0)
			keys++;
		break;
	case MALLAFS_OP_CREATE:
		add(m, MM_CREATES, 1);
		if (r >= 0)
			keys++;
		break;
	case MALLAFS_OP_TRUNCATE:
		add(m, MM_TRUNCATES, 1);
		break;
	case MALLAFS_OP_DELETE:
		add(m, MM_DELETES, 1);
		if (r >= 0 && keys > 0)
			keys--;
		break;
	case MALLAFS_OP_RENAME:
		add(m, MM_RENAMES, 1);
		if (r >= 0 && m->rename_replaces && keys > 0)
			keys--;
		break;
	default:
		break;
	}
	if (r < 0 && !(op->code == MALLAFS_OP_GET && r == -ENOENT))
		add(m, MM_REFUSALS, 1);
	atomic_store_explicit(&m->c[MM_KEYS], keys, memory_order_relaxed);
	/* The counters changed: watchers and poll() waiters of the file hear
	 * of it (the notifier folds a burst into one echo). Pages of a read
	 * change nothing the file shows but bytes: their get was told. */
	if (!(op->flags & MALLAFS_OPF_PAGE))
		mallafs_svc_file_changed(m->svc, "metrics");
}

int mm_snapshot(void *state, void *arg)
{
	struct metrics *m = state;
	uint64_t *v = arg;
	for (size_t i = 0; i < MM_COUNT_; i++)
		v[i] = atomic_load_explicit(&m->c[i], memory_order_relaxed);
	return 0;
}

static int render_metrics(void *state, struct mallafs_out *out)
{
	struct metrics *m = state;
	const char *service = mallafs_svc_name(m->svc);
	uint64_t v[MM_COUNT_];
	int r = mm_snapshot(m, v);
	for (size_t i = 0; r == 0 && i < MM_COUNT_; i++) {
		r = prom_header(out, &mm_families[i]);
		if (r == 0)
			r = prom_sample(out, mm_families[i].name, MM_LABEL, service, v[i]);
	}
	return r;
}

static const struct mallafs_file metrics_files[] = {
        {.name = MM_FILE, .render = render_metrics},
        {.name = NULL},
};

const struct mallafs_plugin mallafs_plugin_metrics = {
        MALLAFS_PLUGIN_INIT,
        .name = "metrics",
        .files = metrics_files,
        /* lifecycle and configuration */
        .init = metrics_init,
        .fini = metrics_fini,
        .start = metrics_start,
        .config_merge = metrics_merge,
        /* store hooks */
        .store_before = metrics_before,
        .store_after = metrics_after,
};
