/* SPDX-License-Identifier: MIT */
/* The bootstrap file (mount/bootstrap.c): any bytes as --config=FILE,
 * loaded into a fresh runtime from a memfd. A refusal is one line naming
 * the file; a file that loads gives services whose status, chain and
 * config.ini render, and whose config.ini written back is accepted.
 *
 * The runtime has the built-in plugins but exec (it would run the input's
 * shell commands) and persist (it would write files where the input says),
 * and no plugin folder, so nothing outside this process is touched. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bootstrap.h"
#include "builtin.h"
#include "fuzz.h"
#include "runtime.h"
#include "service.h"

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

/* Runs with the runtime's lock held: only copies the name. */
static int collect(const char *name, uint64_t cookie, void *arg)
{
	return fuzz_names_add(arg, name);
}

/* What `cat` of a service's files shows, and config.ini written back. */
static void check_service(struct mrt *rt, const char *name)
{
	struct mallafs_svc *svc = mrt_service_get(rt, name);
	FUZZ_CHECK(svc, "listed service %s is not there", name);
	char *text = NULL;
	size_t len = 0;
	FUZZ_CHECK(msvc_status_render(svc, &text, &len) == 0, "status of %s", name);
	free(text);
	FUZZ_CHECK(msvc_chain_render(svc, &text, &len) == 0, "chain of %s", name);
	FUZZ_CHECK(len > 0 && text[len - 1] == '\n', "chain of %s: '%s'", name, text);
	free(text);
	FUZZ_CHECK(msvc_config_render(svc, &text, &len) == 0, "config.ini of %s", name);
	struct mallafs_reason why = {{0}};
	int r = msvc_config_apply_ini(svc, text, len, &why);
	FUZZ_CHECK(r == 0, "config.ini of %s written back: %d %s\n%s", name, r, why.text, text);
	free(text);
	msvc_unref(svc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_file_put(data, size);
	struct mrt_options o = {.builtins = plugins, .event_capacity = 64};
	struct mrt *rt = mrt_new(&o);
	FUZZ_CHECK(rt, "mrt_new: %s", strerror(errno));

	char err[1024] = "untouched";
	int r = mboot_load(rt, path, err, sizeof(err));
	if (r == 0) {
		FUZZ_CHECK(err[0] == '\0', "loaded, with the message '%s'", err);
	} else {
		/* Any errno (creating a service has many); the message is what the
		 * user reads. */
		FUZZ_CHECK(r < 0 && r > -4096, "load: %d", r);
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':',
		           "error '%s' does not start with the file", err);
		FUZZ_CHECK(!strchr(err, '\n'), "error of more than one line: '%s'", err);
	}
	/* What was created (all of it, or what came before an error) works. */
	struct fuzz_names ns = {.n = 0};
	FUZZ_CHECK(mrt_service_list(rt, 0, collect, &ns) >= 0, "mrt_service_list");
	for (size_t i = 0; i < ns.n; i++)
		check_service(rt, ns.v[i]);
	fuzz_names_free(&ns);
	mrt_free(rt);
	return 0;
}
