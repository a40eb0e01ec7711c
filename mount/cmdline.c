/* SPDX-License-Identifier: MIT */
/* The command line as mount(8), fstab and a shell give it, made into the one
 * main.c's fuse_opt_parse and libfuse's fuse_parse_cmdline read:
 *
 * - `mallafs SOURCE MOUNTPOINT`: mount.fuse3 (what `mount -t fuse.mallafs`
 *   and an fstab line of type fuse.mallafs run) execs `TYPE SOURCE
 *   MOUNTPOINT -o OPTIONS`. SOURCE, fstab's first field (conventionally
 *   `mallafs`), is free text and dropped; `mallafs MOUNTPOINT` still works.
 * - `--config FILE`, `--state FILE`, `--plugin-dir DIR` (with a space) become
 *   `--config=FILE`, and so on.
 * - Options of mount(8) and fstab that mean nothing to a FUSE daemon, which
 *   libfuse would refuse (`relatime`, `_netdev`, `nofail`, `noauto`, `x-*`,
 *   ...), are dropped from `-o` groups. mount.fuse3 drops some itself; the
 *   rest reach us when mount(8) passes them on, or when a unit runs the
 *   command with an fstab line's options.
 *
 * Only `-o` takes its value as the next argument among the options libfuse
 * and main.c know (fuse_opt_parse: `-o OPTS` or `-oOPTS`; after `--` every
 * argument is positional), so the positional arguments are found here as
 * fuse_opt_parse will find them. */
#include "cmdline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Accepted in -o and ignored. */
static const char *const ignored_opts[] = {
        /* atime flavours libfuse does not pass on (it knows atime, noatime) */
        "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime",
        "diratime", "nodiratime",
        /* other VFS flags mount(8) may pass to a helper */
        "iversion", "noiversion", "mand", "nomand", "silent", "loud", "defaults",
        /* for mount(8), systemd and mount.fuse3 */
        "_netdev", "nofail", "auto", "noauto", "user", "nouser", "users", "owner", "noowner",
        "group", "nogroup", NULL};

/* ...and whatever begins with these: x-systemd.*, x-gvfs-*, comment=. */
static const char *const ignored_prefixes[] = {"x-", "comment=", NULL};

/* The options that take a value, given as the next argument. */
static const char *const spaced_opts[] = {"--config", "--state", "--plugin-dir", NULL};

static int ignored(const char *opt, size_t n)
{
	if (n == 0)
		return 1;
	for (const char *const *p = ignored_opts; *p; p++)
		if (strlen(*p) == n && memcmp(*p, opt, n) == 0)
			return 1;
	for (const char *const *p = ignored_prefixes; *p; p++)
		if (n >= strlen(*p) && memcmp(*p, opt, strlen(*p)) == 0)
			return 1;
	return 0;
}

/* PREFIX then the options of GROUP that are not ignored, comma-separated,
 * as a new string in *ret (NULL when none is left). -1 when out of memory. */
static int filter_group(const char *prefix, const char *group, char **ret)
{
	size_t plen = strlen(prefix);
	char *out = malloc(plen + strlen(group) + 1), *o;
	if (!out)
		return -1;
	memcpy(out, prefix, plen);
	o = out + plen;
	for (const char *s = group;;) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (!ignored(s, n)) {
			if (o > out + plen)
				*o++ = ',';
			memcpy(o, s, n);
			o += n;
		}
		if (!e)
			break;
		s = e + 1;
	}
	*o = '\0';
	if (o == out + plen) {
		free(out);
		out = NULL;
	}
	*ret = out;
	return 0;
}

static int push(struct mcmd *c, char *s)
{
	if (!s)
		return -1;
	c->argv[c->argc++] = s;
	c->argv[c->argc] = NULL;
	return 0;
}

static char *joined(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	char *s = malloc(na + 1 + nb + 1);
	if (s) {
		memcpy(s, a, na);
		s[na] = '=';
		memcpy(s + na + 1, b, nb + 1);
	}
	return s;
}

static const char *spaced(const char *arg)
{
	for (const char *const *p = spaced_opts; *p; p++)
		if (strcmp(*p, arg) == 0)
			return *p;
	return NULL;
}

int mcmd_normalize(int argc, char *const *argv, struct mcmd *out, char *why, size_t len)
{
	/* The result never has more arguments than the input. */
	struct mcmd c = {0, calloc((size_t)argc + 2, sizeof(char *))};
	int positional[3], npos = 0, dashdash = 0;
	if (!c.argv)
		goto nomem;
	if (push(&c, strdup(argc > 0 ? argv[0] : "mallafs")) < 0)
		goto nomem;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *name;
		char *group;
		if (dashdash || a[0] != '-') {
			if (npos < 3)
				positional[npos] = c.argc;
			npos++;
			if (push(&c, strdup(a)) < 0)
				goto nomem;
		} else if (strcmp(a, "--") == 0) {
			dashdash = 1;
			if (push(&c, strdup(a)) < 0)
				goto nomem;
		} else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
			if (filter_group("-o", argv[++i], &group) < 0 ||
			    (group && push(&c, group) < 0))
				goto nomem;
		} else if (strncmp(a, "-o", 2) == 0 && a[2]) {
			if (filter_group("-o", a + 2, &group) < 0 || (group && push(&c, group) < 0))
				goto nomem;
		} else if ((name = spaced(a))) {
			if (i + 1 >= argc) {
				snprintf(why, len, "%s needs a value: %s FILE or %s=FILE", name,
				         name, name);
				goto fail;
			}
			if (push(&c, joined(name, argv[++i])) < 0)
				goto nomem;
		} else if (push(&c, strdup(a)) < 0) {
			goto nomem;
		}
	}
	if (npos > 2) {
		snprintf(why, len,
		         "too many arguments: expected [SOURCE] MOUNTPOINT, got %d (the third is "
		         "%s)",
		         npos, c.argv[positional[2]]);
		goto fail;
	}
	if (npos == 2) {
		/* SOURCE, as mount.fuse3 passes it: free text, ignored. */
		free(c.argv[positional[0]]);
		memmove(&c.argv[positional[0]], &c.argv[positional[0] + 1],
		        (size_t)(c.argc - positional[0]) * sizeof(char *));
		c.argc--;
	}
	*out = c;
	return 0;
nomem:
	snprintf(why, len, "out of memory");
fail:
	mcmd_free(&c);
	return -1;
}

void mcmd_free(struct mcmd *c)
{
	if (!c->argv)
		return;
	for (int i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c->argv);
	c->argv = NULL;
	c->argc = 0;
}
