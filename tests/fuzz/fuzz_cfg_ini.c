/* SPDX-License-Identifier: MIT */
/* config.ini: any bytes as an INI document (what `cat f > config.ini`
 * writes). A refusal must say where and why; a document that parses must
 * render to one that parses back to the same configuration (what `cat
 * config.ini` shows can be written back and changes nothing), render the
 * same twice, and survive a copy and a merge. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

/* The lines of text: where an error may be reported. */
static int count_lines(const char *text, size_t len)
{
	int n = 1;
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			n++;
	return n;
}

static char *render(const struct mallafs_cfg *cfg, size_t *ret_len)
{
	char *text = NULL;
	int r = mallafs_cfg_render(cfg, &text, ret_len);
	FUZZ_CHECK(r == 0 && text, "render: %d", r);
	FUZZ_CHECK(strlen(text) == *ret_len, "render: length %zu, text of %zu", *ret_len,
	           strlen(text));
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so reading past them is caught. */
	char *in = malloc(size ? size : 1);
	FUZZ_CHECK(in, "out of memory");
	memcpy(in, data, size);

	struct mallafs_cfg *cfg = NULL;
	char err[512] = "untouched";
	int line = -1;
	int r = mcfg_parse_ini(in, size, &cfg, &line, err, sizeof(err));
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -ENOMEM, "parse: %d", r);
		FUZZ_CHECK(!cfg, "a refused document left a configuration");
		if (r == -EINVAL) {
			FUZZ_CHECK(line >= 1 && line <= count_lines(in, size),
			           "error line %d of %d: %s", line, count_lines(in, size), err);
			FUZZ_CHECK(err[0] && !strchr(err, '\n'), "error message '%s'", err);
		}
		free(in);
		return 0;
	}
	FUZZ_CHECK(cfg && line == 0 && err[0] == '\0', "success with line %d, message '%s'", line,
	           err);

	size_t len;
	char *text = render(cfg, &len);
	struct mallafs_cfg *again = NULL;
	r = mcfg_parse_ini(text, len, &again, &line, err, sizeof(err));
	FUZZ_CHECK(r == 0, "what config.ini shows does not parse back (%d: %s):\n%s", r, err, text);
	size_t len2;
	char *text2 = render(again, &len2);
	FUZZ_CHECK(len == len2 && memcmp(text, text2, len) == 0,
	           "rendered twice differently:\n%s\n----\n%s", text, text2);
	/* Whatever config.ini shows reads back as the same configuration. */
	FUZZ_CHECK(mcfg_equal(cfg, again), "render then parse changed the configuration:\n%s",
	           text);

	/* A copy equals its original, and merging the original into it
	 * changes nothing. */
	struct mallafs_cfg *dup = mcfg_dup(cfg);
	FUZZ_CHECK(dup && mcfg_equal(dup, cfg), "mcfg_dup");
	FUZZ_CHECK(mcfg_merge(dup, cfg) == 0 && mcfg_equal(dup, cfg), "mcfg_merge");
	FUZZ_CHECK(mcfg_nsections(dup) == mcfg_nsections(cfg), "sections after a merge");

	mcfg_free(dup);
	free(text2);
	mcfg_free(again);
	free(text);
	mcfg_free(cfg);
	free(in);
	return 0;
}
