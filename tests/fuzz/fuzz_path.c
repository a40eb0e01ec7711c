/* SPDX-License-Identifier: MIT */
/* Path lookup: any bytes as a path below the mount, split on '/' (empty
 * components skipped, as the kernel does), walked through the tree the way
 * the folders' lookups name it: the fixed entries of core/tree.c through
 * fs/kind.c's mfs_fixed_lookup, every other name through the name checks
 * (SPEC.md "Names"). Checks what the walk relies on:
 *
 * - mu_name_check accepts exactly SPEC's names, with or without a NUL
 *   terminator, and a strict name is also a valid file name;
 * - a fixed entry is found under its own name, at its own place, and its
 *   kind's row agrees with the tree on file or folder;
 * - a plugin may publish no file that a fixed entry of services/NAME/ has;
 * - mtree_join gives back the path the walk went through, or says it is
 *   too long. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kind.h"
#include "tree.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DEPTH 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	FUZZ_CHECK(mfs_kinds_check() == 0, "a node kind has no row");
	return 0;
}

/* SPEC.md "Names", written out again. */
static bool spec_name(const char *s, size_t len, bool strict)
{
	if (len == 0 || len > MU_NAME_MAX || (len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0' || c == '/')
			return false;
		if (strict && !(c == '.' || c == '_' || c == '-' || (c >= '0' && c <= '9') ||
		                (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

static bool name_ok(const char *s, size_t len, enum mu_name_kind kind)
{
	bool strict = kind == MU_NAME_STRICT;
	bool ok = mu_name_check(s, len, kind) == 0;
	FUZZ_CHECK(ok == spec_name(s, len, strict), "mu_name_check(%s) of a %zu-byte name: %d",
	           strict ? "strict" : "file", len, ok);
	/* The same name as a C string (what FUSE hands over) */
	char *z = mu_memdup0(s, len);
	FUZZ_CHECK(z, "out of memory");
	bool zok = mu_name_check_str(z, kind) == 0;
	FUZZ_CHECK(zok == (ok || (memchr(s, '\0', len) && spec_name(z, strlen(z), strict))),
	           "mu_name_check_str differs from mu_name_check");
	free(z);
	if (strict && ok)
		FUZZ_CHECK(mu_name_check(s, len, MU_NAME_FILE) == 0, "strict but not a file name");
	return ok;
}

/* A member of a pool is a PID: digits, no leading zero. */
static bool pid_name(const char *s, size_t len)
{
	uint64_t v = 0;
	if (len == 0 || len > 10 || s[0] < '1' || s[0] > '9')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v <= INT32_MAX;
}

/* A fixed entry (or none) of the root or of services/NAME/. */
static int fixed(const char *name, bool in_service, enum mnode_kind *ret)
{
	struct mfs_child c = {0};
	int t = mtree_lookup(name, in_service);
	int r = mfs_fixed_lookup(name, in_service, &c);
	FUZZ_CHECK((t >= 0) == (r == 0), "mtree_lookup %d, mfs_fixed_lookup %d", t, r);
	if (in_service)
		FUZZ_CHECK(mtree_service_reserved(name) == (t >= 0), "reserved '%s'", name);
	if (t < 0) {
		FUZZ_CHECK(t == -ENOENT && r == -ENOENT, "lookup of a missing entry: %d", t);
		return t;
	}
	FUZZ_CHECK(t < MTREE_COUNT_ && strcmp(mtree_name(t), name) == 0 &&
	                   mtree[t].in_service == in_service,
	           "'%s' found as entry %d", name, t);
	const struct mfs_kind *k = mfs_kind(c.kind);
	FUZZ_CHECK(k && !!(k->flags & MK_DIR) == mtree[t].dir, "'%s': kind %s, tree says %s", name,
	           k ? k->what : "?", mtree[t].dir ? "folder" : "file");
	*ret = c.kind;
	return 0;
}

/* The folders whose entries are names: the entries' kind and rule. */
static const struct {
	enum mnode_kind dir, child;
	enum mu_name_kind rule;
} named[] = {
        {N_SERVICES, N_SVC, MU_NAME_STRICT},
        {N_SVC, N_SVCFILE, MU_NAME_FILE},
        {N_STORE, N_KEY, MU_NAME_FILE},
        {N_PLUGINS, N_PLUGIN, MU_NAME_STRICT},
        {N_SCFG, N_SECTION, MU_NAME_STRICT},
        {N_SECTION, N_SKEY, MU_NAME_FILE},
        /* A name or a pool: which, core knows; the walk takes the folder. */
        {N_REGISTRY, N_POOL, MU_NAME_STRICT},
        {N_POOL, N_MEMBER, MU_NAME_STRICT},
        {N_NODECFG, N_APP, MU_NAME_STRICT},
        {N_APP, N_APPKEY, MU_NAME_FILE},
};

/* The kind of the entry called name (len bytes, not NUL-terminated) in a
 * folder of kind dir, or -errno as a lookup would answer before asking core
 * whether it exists; cname is the same name as a C string (cut at a NUL). */
static int step(enum mnode_kind dir, const char *name, size_t len, const char *cname,
                enum mnode_kind *ret)
{
	/* No name the kernel sends holds a NUL; the checks below still see it. */
	bool nul = strlen(cname) != len;
	if (dir == N_ROOT)
		return !nul ? fixed(cname, false, ret) : -ENOENT;
	if (dir == N_SVC && !nul && fixed(cname, true, ret) == 0)
		return 0;
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (named[i].dir != dir)
			continue;
		*ret = named[i].child;
		bool ok = name_ok(name, len, named[i].rule);
		if (dir == N_POOL)
			ok = ok && pid_name(name, len);
		return ok ? 0 : -ENOENT;
	}
	return -ENOTDIR;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *parts[MAX_DEPTH] = {0};
	char *copies[MAX_DEPTH] = {0};
	size_t nparts = 0, walked = 0;
	enum mnode_kind kind = N_ROOT;

	for (size_t i = 0; i < size && nparts < MAX_DEPTH;) {
		const uint8_t *slash = memchr(data + i, '/', size - i);
		size_t len = slash ? (size_t)(slash - (data + i)) : size - i;
		if (len) {
			/* Exactly len bytes, so a check reading past them is caught. */
			char *part = malloc(len);
			FUZZ_CHECK(part, "out of memory");
			memcpy(part, data + i, len);
			copies[nparts] = mu_memdup0(data + i, len);
			FUZZ_CHECK(copies[nparts], "out of memory");
			enum mnode_kind next;
			int r = step(kind, part, len, copies[nparts], &next);
			free(part);
			if (r < 0) {
				free(copies[nparts]);
				break;
			}
			parts[nparts] = copies[nparts];
			nparts++;
			kind = next;
			walked += len + 1;
		}
		i += len + 1;
	}

	/* The walked components joined back: the path without empty parts. */
	char path[MTREE_PATH_MAX];
	int r = mtree_join(path, sizeof(path), nparts > 0 ? parts[0] : NULL,
	                   nparts > 1 ? parts[1] : NULL, nparts > 2 ? parts[2] : NULL,
	                   nparts > 3 ? parts[3] : NULL, nparts > 4 ? parts[4] : NULL,
	                   nparts > 5 ? parts[5] : NULL, nparts > 6 ? parts[6] : NULL,
	                   nparts > 7 ? parts[7] : NULL, NULL);
	size_t want = walked ? walked - 1 : 0;
	if (want < sizeof(path)) {
		FUZZ_CHECK(r == 0 && strlen(path) == want, "mtree_join: %d, %zu bytes for %zu", r,
		           strlen(path), want);
		size_t o = 0;
		for (size_t i = 0; i < nparts; i++) {
			size_t l = strlen(parts[i]);
			FUZZ_CHECK(memcmp(path + o, parts[i], l) == 0, "mtree_join: part %zu", i);
			o += l + 1;
		}
	} else {
		FUZZ_CHECK(r == -ENAMETOOLONG && strlen(path) < sizeof(path), "mtree_join: %d", r);
	}
	for (size_t i = 0; i < nparts; i++)
		free(copies[i]);
	return 0;
}
