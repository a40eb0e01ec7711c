/* SPDX-License-Identifier: MIT */
/* SIGHUP's reload (mount/reload.c): an input is two bootstrap files, the
 * one loaded at start and the one reloaded, separated by a line "%%" (no
 * such line: the first is empty). A reload is all or nothing: refused, it
 * leaves the tree exactly as it was (every service's chain, config.ini and
 * admin status, every node-wide key) with one line naming the file; done,
 * the same file reloaded again changes nothing more.
 *
 * The plugins are fuzz_bootstrap.c's: no exec, no persist, no folder. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bootstrap.h"
#include "builtin.h"
#include "fuzz.h"
#include "kv.h"
#include "nodecfg.h"
#include "reload.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct mallafs_plugin *const plugins[] = {
        &mallafs_plugin_base,   &mallafs_plugin_trace, &mallafs_plugin_metrics,
        &mallafs_plugin_limits, &mallafs_plugin_ttl,   NULL,
};

static const char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	path = fuzz_file_path();
	return 0;
}

static int collect(const char *name, uint64_t cookie, void *arg)
{
	return fuzz_names_add(arg, name);
}

static int collect_stat(const char *name, const struct mkv_stat *st, void *arg)
{
	return fuzz_names_add(arg, name);
}

static void add_rendered(struct mu_buf *b, int r, char *text, size_t len)
{
	FUZZ_CHECK(r == 0, "render: %d", r);
	mu_buf_append(b, text, len);
	free(text);
}

/* The whole tree as text: what a refused reload must leave as it was. */
static char *snapshot(struct mrt *rt)
{
	struct mu_buf b = {0};
	struct fuzz_names ns = {.n = 0};
	char *text = NULL;
	size_t len = 0;
	FUZZ_CHECK(mrt_service_list(rt, 0, collect, &ns) >= 0, "mrt_service_list");
	for (size_t i = 0; i < ns.n; i++) {
		struct mallafs_svc *svc = mrt_service_get(rt, ns.v[i]);
		struct msvc_status st;
		FUZZ_CHECK(svc, "listed service %s is not there", ns.v[i]);
		mu_buf_printf(&b, "== %s\n", ns.v[i]);
		add_rendered(&b, msvc_chain_render(svc, &text, &len), text, len);
		add_rendered(&b, msvc_config_render(svc, &text, &len), text, len);
		msvc_status(svc, &st);
		mu_buf_printf(&b, "admin %s\n", msvc_admin_name(st.admin));
		msvc_unref(svc);
	}
	fuzz_names_free(&ns);
	struct mnodecfg *nc = mrt_nodecfg(rt);
	struct fuzz_names apps = {.n = 0};
	FUZZ_CHECK(mnodecfg_app_list(nc, 0, collect_stat, &apps) >= 0, "mnodecfg_app_list");
	for (size_t i = 0; i < apps.n; i++) {
		mu_buf_printf(&b, "[%s]\n", apps.v[i]);
		FUZZ_CHECK(mnodecfg_list(nc, apps.v[i], 0, collect_stat, &ns) >= 0, "list");
		for (size_t k = 0; k < ns.n; k++) {
			char v[4096];
			ssize_t n = mnodecfg_read(nc, apps.v[i], ns.v[k], 0, v, sizeof(v));
			FUZZ_CHECK(n >= 0, "read %s/%s: %zd", apps.v[i], ns.v[k], n);
			mu_buf_printf(&b, "%s = %.*s\n", ns.v[k], (int)n, v);
		}
		fuzz_names_free(&ns);
	}
	fuzz_names_free(&apps);
	char *s = mu_buf_steal(&b, &len);
	FUZZ_CHECK(s, "out of memory");
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = NULL;
	for (size_t i = 0; i + 3 <= size; i++) {
		if ((i == 0 || data[i - 1] == '\n') && memcmp(data + i, "%%", 2) == 0 &&
		    data[i + 2] == '\n') {
			sep = data + i;
			break;
		}
	}
	const uint8_t *second = sep ? sep + 3 : data;
	size_t first_len = sep ? (size_t)(sep - data) : 0;
	size_t second_len = size - (size_t)(second - data);

	struct mrt_options o = {.builtins = plugins, .event_capacity = 64};
	struct mrt *rt = mrt_new(&o);
	FUZZ_CHECK(rt, "mrt_new: %s", strerror(errno));
	char msg[1024];
	fuzz_file_put(data, first_len);
	if (mboot_load(rt, path, msg, sizeof(msg)) < 0)
		goto out; /* fuzz_bootstrap's business */

	char *before = snapshot(rt);
	fuzz_file_put(second, second_len);
	int r = mboot_reload(rt, NULL, path, msg, sizeof(msg));
	FUZZ_CHECK(r <= 0 && r > -4096, "reload: %d", r);
	FUZZ_CHECK(strncmp(msg, path, strlen(path)) == 0 && msg[strlen(path)] == ':',
	           "message '%s' does not start with the file", msg);
	FUZZ_CHECK(!strchr(msg, '\n'), "message of more than one line: '%s'", msg);
	char *after = snapshot(rt);
	if (r < 0) {
		FUZZ_CHECK(strcmp(before, after) == 0,
		           "a refused reload (%s) changed the tree:\n--- before\n%s--- after\n%s",
		           msg, before, after);
	} else {
		FUZZ_CHECK(mboot_reload(rt, NULL, path, msg, sizeof(msg)) == 0,
		           "the same file refused the second time: %s", msg);
		char *again = snapshot(rt);
		FUZZ_CHECK(
		        strcmp(after, again) == 0,
		        "the same file reloaded again changed the tree:\n--- once\n%s--- twice\n%s",
		        after, again);
		free(again);
	}
	free(before);
	free(after);
out:
	mrt_free(rt);
	return 0;
}
