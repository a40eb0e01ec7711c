/* SPDX-License-Identifier: MIT */
/* The root's `metrics`: one Prometheus text document (version 0.0.4) for
 * the whole daemon, rendered per open and per read from offset 0, as every
 * rendered file is (rendered.c). It holds:
 *  - mallafs_build_info{version} and mallafs_start_time_seconds;
 *  - mallafs_services{state}: the services in each state, 0 included;
 *  - mallafs_service_restarts_total{service};
 *  - mallafs_registrations{kind="name"|"member"} and mallafs_registry_pools;
 *  - mallafs_events_total, and mallafs_events_dropped_total{stage}: events
 *    the readers of `events` lost to the ring's overflow ("feed"), changes
 *    the notifier could not echo to caches and watchers, its queue full
 *    ("notifier");
 *  - the metrics plugin's families (plugins/metrics.h), one HELP and TYPE
 *    each, with a sample per service whose chain has the plugin.
 * Per-service series are the reader's to see only where the files they
 * come from are: a service counts (in mallafs_services too) when the
 * reader may read its status, and its store series show when the reader
 * may read its services/NAME/metrics (perm.c decides as the kernel would).
 * Names in services/ stay listable by all, as before; nothing else of a
 * service the reader may not read shows. The node-wide series (registry,
 * events, build, start) are everyone's.
 *
 * Locks: none of fs/ is taken. Services are listed a slice at a time
 * (the runtime's lock held only to copy names), then each is looked at
 * with its own short holds (state_lock for the status, store_lock's read
 * side for the plugin's counters); the text is formatted with no lock
 * held, so 1000 services stall no writer for longer than one copy. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "events.h"
#include "kind.h"
#include "metrics.h"
#include "registry.h"
#include "runtime.h"
#include "service.h"
#include "tree.h"

/* Names copied under the runtime's lock at a time. */
#define SLICE 256

/* What one service shows the reader. */
struct snap {
	char *name;
	enum msvc_state state;
	uint64_t restarts;
	bool has_store; /* its chain has metrics, and the reader may read its file */
	uint64_t v[MM_COUNT_];
};

struct gather {
	/* The slice being listed. */
	char *names[SLICE];
	size_t nnames;
	uint64_t cookie; /* where the next slice resumes */
	/* What the reader may see, of every service. */
	struct snap *snaps;
	size_t n, cap;
};

static int take_name(const char *name, uint64_t cookie, void *arg)
{
	struct gather *g = arg;
	if (!(g->names[g->nnames] = strdup(name)))
		return -ENOMEM;
	g->nnames++;
	g->cookie = cookie;
	return g->nnames == SLICE ? 1 : 0;
}

/* The service called name, as the reader may see it: 1 added, 0 not
 * (gone meanwhile, or not the reader's to see), -ENOMEM. */
static int look_at(struct mfs *fs, const struct mfs_caller *who, struct gather *g, char *name)
{
	struct mallafs_svc *svc = mrt_service_get(fs->rt, name);
	if (!svc ||
	    !mfs_perm_may_read_svc(fs, who, svc, mtree_name(MTREE_STATUS), &mfs_kind_status)) {
		msvc_unref(svc);
		return 0;
	}
	if (g->n == g->cap) {
		size_t nc = g->cap ? 2 * g->cap : 64;
		struct snap *s = realloc(g->snaps, nc * sizeof(*s));
		if (!s) {
			msvc_unref(svc);
			return -ENOMEM;
		}
		g->snaps = s;
		g->cap = nc;
	}
	struct snap *s = &g->snaps[g->n];
	struct msvc_status st;
	msvc_status(svc, &st);
	s->state = st.state;
	s->restarts = st.restarts;
	s->has_store = mfs_perm_may_read_svc(fs, who, svc, MM_FILE, &mfs_kind_svcfile) &&
	               msvc_plugin_peek(svc, &mallafs_plugin_metrics, mm_snapshot, s->v) == 0;
	s->name = name;
	g->n++;
	msvc_unref(svc);
	return 1;
}

/* Every service, slice by slice: a service there throughout is seen once
 * (mrt_service_list's promise), whatever comes and goes meanwhile. */
static int gather(struct mfs *fs, const struct mfs_caller *who, struct gather *g)
{
	int r;
	do {
		g->nnames = 0;
		r = mrt_service_list(fs->rt, g->cookie, take_name, g);
		bool more = r == 1;
		for (size_t i = 0; i < g->nnames; i++) {
			int k = r < 0 ? 0 : look_at(fs, who, g, g->names[i]);
			if (k < 0)
				r = k;
			if (k <= 0)
				free(g->names[i]); /* else the snap has it */
		}
		if (r >= 0)
			r = more ? 1 : 0;
	} while (r == 1);
	return r;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct snap *)a)->name, ((const struct snap *)b)->name);
}

/* Sorted by name, each name once: a service removed and made again while
 * the slices were listed may have come twice (at its old place and its
 * new one), and a series must not repeat: one of its looks is kept. */
static void sort_unique(struct gather *g)
{
	if (g->n < 2)
		return;
	qsort(g->snaps, g->n, sizeof(*g->snaps), by_name);
	size_t kept = 1;
	for (size_t i = 1; i < g->n; i++) {
		if (strcmp(g->snaps[i].name, g->snaps[kept - 1].name) == 0) {
			free(g->snaps[kept - 1].name);
			g->snaps[kept - 1] = g->snaps[i];
		} else {
			g->snaps[kept++] = g->snaps[i];
		}
	}
	g->n = kept;
}

/* ---- the text ---- */

static const struct prom_family f_build = {"mallafs_build_info", "gauge",
                                           "The mallafs version, as a label; always 1."};
static const struct prom_family f_start = {
        "mallafs_start_time_seconds", "gauge",
        "When the daemon started, in seconds since the Unix epoch."};
static const struct prom_family f_services = {"mallafs_services", "gauge",
                                              "Services in each state."};
static const struct prom_family f_restarts = {
        "mallafs_service_restarts_total", "counter",
        "Restarts of a service (its plugins stopped and started again)."};
static const struct prom_family f_regs = {"mallafs_registrations", "gauge",
                                          "Registered names and pool members held by live "
                                          "processes."};
static const struct prom_family f_pools = {"mallafs_registry_pools", "gauge",
                                           "Pools of the registry."};
static const struct prom_family f_events = {"mallafs_events_total", "counter",
                                            "Change events recorded."};
static const struct prom_family f_dropped = {
        "mallafs_events_dropped_total", "counter",
        "Changes lost: by readers of the events feed (stage feed), or not echoed to "
        "caches and watchers (stage notifier)."};

/* A family whose every sample is labelled by service: series is the
 * metrics plugin's (only services with its counters have one), or
 * MM_COUNT_ for the restarts (every service the reader sees). Its header
 * only when a service has a sample: an empty family says nothing. */
static int per_service(struct mallafs_out *out, const struct prom_family *f, const struct gather *g,
                       size_t series)
{
	int r = 0;
	bool header = false;
	for (size_t i = 0; r == 0 && i < g->n; i++) {
		const struct snap *s = &g->snaps[i];
		if (series < MM_COUNT_ && !s->has_store)
			continue;
		if (!header && (r = prom_header(out, f)) == 0)
			header = true;
		if (r == 0)
			r = prom_sample(out, f->name, MM_LABEL, s->name,
			                series < MM_COUNT_ ? s->v[series] : s->restarts);
	}
	return r;
}

static int render_node(struct mfs *fs, struct mallafs_out *out)
{
	char num[48];
	int r = prom_header(out, &f_build);
	if (r == 0)
		r = prom_sample(out, f_build.name, "version", MALLAFS_VERSION, 1);
	if (r == 0)
		r = prom_header(out, &f_start);
	snprintf(num, sizeof(num), "%lld.%03ld", (long long)fs->born.tv_sec,
	         fs->born.tv_nsec / 1000000);
	if (r == 0)
		r = prom_sample_text(out, f_start.name, NULL, NULL, num);

	struct mreg_counts rc;
	mreg_counts(mrt_registry(fs->rt), &rc);
	if (r == 0)
		r = prom_header(out, &f_regs);
	if (r == 0)
		r = prom_sample(out, f_regs.name, "kind", "name", rc.names);
	if (r == 0)
		r = prom_sample(out, f_regs.name, "kind", "member", rc.members);
	if (r == 0)
		r = prom_header(out, &f_pools);
	if (r == 0)
		r = prom_sample(out, f_pools.name, NULL, NULL, rc.pools);

	uint64_t recorded, lost;
	mev_ring_counts(mrt_events(fs->rt), &recorded, &lost);
	if (r == 0)
		r = prom_header(out, &f_events);
	if (r == 0)
		r = prom_sample(out, f_events.name, NULL, NULL, recorded);
	if (r == 0)
		r = prom_header(out, &f_dropped);
	if (r == 0)
		r = prom_sample(out, f_dropped.name, "stage", "feed", lost);
	if (r == 0)
		r = prom_sample(out, f_dropped.name, "stage", "notifier", mfs_notifier_dropped(fs));
	return r;
}

static int render_services(struct mallafs_out *out, const struct gather *g)
{
	uint64_t by_state[MSVC_FAILED + 1] = {0};
	for (size_t i = 0; i < g->n; i++)
		if ((size_t)g->snaps[i].state <= MSVC_FAILED)
			by_state[g->snaps[i].state]++;
	int r = prom_header(out, &f_services);
	for (size_t st = 0; r == 0 && st <= MSVC_FAILED; st++)
		r = prom_sample(out, f_services.name, "state", msvc_state_name(st), by_state[st]);
	if (r == 0)
		r = per_service(out, &f_restarts, g, MM_COUNT_);
	for (size_t i = 0; r == 0 && i < MM_COUNT_; i++)
		r = per_service(out, &mm_families[i], g, i);
	return r;
}

static int metrics_render(struct mfs_req *c, char **ret, size_t *ret_len)
{
	struct mfs_caller who;
	struct gather g = {0};
	struct mallafs_out out = {{0}};

	mfs_perm_caller(c, &who);
	int r = gather(c->fs, &who, &g);
	if (r == 0) {
		sort_unique(&g);
		r = render_node(c->fs, &out);
	}
	if (r == 0)
		r = render_services(&out, &g);
	for (size_t i = 0; i < g.n; i++)
		free(g.snaps[i].name);
	free(g.snaps);
	if (r == 0 && !(*ret = mu_buf_steal(&out.b, ret_len)))
		r = -ENOMEM;
	if (r < 0) {
		mu_buf_free(&out.b);
		mu_log(MU_LOG_WARNING, "metrics: cannot render: %s", strerror(-r));
	}
	return r;
}

const struct mfs_kind mfs_kind_metrics = {
        .what = "metrics",
        .flags = MK_RENDERED | MK_RDONLY,
        .entry_timeout = MFS_LONG_TIMEOUT,
        MFS_RENDERED_OPS,
        .render = metrics_render,
};
