/* SPDX-License-Identifier: MIT */
/* Registry content: a script of what users write to registry/ (fuzz.h has
 * the line format), replayed on a fresh registry. Text goes through
 * mreg_register_text and mreg_pool_store exactly as `echo TEXT >
 * registry/NAME` and `> registry/POOL/PID` give it. Lowercase ops act as
 * root, uppercase as another user (uid 65534).
 *
 *     w NAME TEXT        register          r NAME          unregister
 *     m POOL             mkdir a pool      d POOL          rmdir it
 *     p POOL PID TEXT    store in a pool   u POOL PID      unstore
 *     c NAME             cat a name        C POOL PID      cat a member
 *     l                  ls registry       L POOL          ls a pool
 *     s NAME [PID]       stat
 *
 * Each call's errno must be one its header promises; what a successful
 * write stores must read back as it was written, and what cat shows must
 * be writable back unchanged. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "fuzz.h"
#include "registry.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OTHER_UID 65534

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

/* "PID[ VALUE]" as written, one trailing newline dropped, against what
 * cat shows: the same PID and value (a PID may be written with leading
 * zeros, and "PID " is no value). */
static void check_name(struct mreg *reg, const char *name, const char *text, size_t len)
{
	char *shown = NULL;
	size_t slen = 0;
	int r = mreg_render(reg, name, &shown, &slen);
	FUZZ_CHECK(r == 0, "registered %s does not render: %d", name, r);
	FUZZ_CHECK(slen > 0 && shown[slen - 1] == '\n' && !memchr(shown, '\n', slen - 1),
	           "render of %s is not one line", name);

	if (len && text[len - 1] == '\n')
		len--;
	const char *sp = memchr(text, ' ', len);
	size_t vlen = sp ? len - (size_t)(sp - text) - 1 : 0;
	pid_t pid = 0;
	char *value = NULL;
	FUZZ_CHECK(mreg_lookup(reg, name, &pid, &value) == 0, "lookup %s", name);
	char want[32];
	int n = snprintf(want, sizeof(want), "%d", (int)pid);
	FUZZ_CHECK(strncmp(shown, want, (size_t)n) == 0, "render of %s: '%s', pid %d", name, shown,
	           (int)pid);
	if (vlen) {
		FUZZ_CHECK(value && strlen(value) == vlen && memcmp(value, sp + 1, vlen) == 0,
		           "value of %s changed", name);
		FUZZ_CHECK(shown[n] == ' ' && slen == (size_t)n + 2 + vlen &&
		                   memcmp(shown + n + 1, sp + 1, vlen) == 0,
		           "render of %s: '%s'", name, shown);
	} else {
		FUZZ_CHECK(!value && slen == (size_t)n + 1, "render of %s: '%s'", name, shown);
	}
	free(value);

	/* What cat shows, written back by root, changes nothing. */
	r = mreg_register_text(reg, name, shown, slen, 0);
	FUZZ_CHECK(r == 0, "writing back '%s' to %s: %d", shown, name, r);
	char *again = NULL;
	size_t alen = 0;
	FUZZ_CHECK(mreg_render(reg, name, &again, &alen) == 0 && alen == slen &&
	                   memcmp(again, shown, slen) == 0,
	           "%s changed when written back", name);
	free(again);
	free(shown);
}

static void check_member(struct mreg *reg, const char *pool, const char *member, const char *text,
                         size_t len)
{
	char *shown = NULL;
	size_t slen = 0;
	int r = mreg_pool_render(reg, pool, member, &shown, &slen);
	FUZZ_CHECK(r == 0, "stored %s/%s does not render: %d", pool, member, r);
	if (len && text[len - 1] == '\n')
		len--;
	FUZZ_CHECK(slen == len + 1 && memcmp(shown, text, len) == 0 && shown[len] == '\n',
	           "%s/%s: wrote %zu bytes, shows %zu", pool, member, len, slen);
	r = mreg_pool_store(reg, pool, member, shown, slen, 0);
	FUZZ_CHECK(r == 0, "writing back %s/%s: %d", pool, member, r);
	free(shown);
}

static int check_entry(const struct mreg_entry *e, void *arg)
{
	FUZZ_CHECK(e->kind == 'n' || e->kind == 'p' || e->kind == 'm', "kind %c", e->kind);
	FUZZ_CHECK(mu_name_check_str(e->name, MU_NAME_STRICT) == 0, "listed '%s'", e->name);
	FUZZ_CHECK(e->kind != 'm' || (e->name[0] >= '1' && e->name[0] <= '9'), "member '%s'",
	           e->name);
	(*(size_t *)arg)++;
	return 0;
}

static void run_op(void *ctx, const struct fuzz_op *o)
{
	struct mreg *reg = ctx;
	const struct fuzz_arg *a = o->args;
	uid_t caller = o->op >= 'A' && o->op <= 'Z' ? OTHER_UID : 0;
	char *text = NULL;
	size_t len = 0, n = 0;
	struct mreg_entry st;
	int r;

	switch (o->op) {
	case 'w':
	case 'W':
		text = fuzz_exact(&a[1]);
		r = mreg_register_text(reg, a[0].s, text, a[1].len, caller);
		FUZZ_EXPECT("register", r, -EINVAL, -ESRCH, -EPERM, -EEXIST);
		if (r == 0)
			check_name(reg, a[0].s, a[1].s, a[1].len);
		break;
	case 'r':
		FUZZ_EXPECT("unregister", mreg_unregister(reg, a[0].s), -ENOENT, -EISDIR);
		FUZZ_CHECK(mreg_lookup(reg, a[0].s, NULL, NULL) < 0, "%s still there", a[0].s);
		break;
	case 'm':
		FUZZ_EXPECT("pool create", mreg_pool_create(reg, a[0].s), -EINVAL, -EEXIST);
		break;
	case 'd':
		FUZZ_EXPECT("pool destroy", mreg_pool_destroy(reg, a[0].s), -ENOENT, -ENOTDIR,
		            -ENOTEMPTY);
		break;
	case 'p':
	case 'P':
		text = fuzz_exact(&a[2]);
		r = mreg_pool_store(reg, a[0].s, a[1].s, text, a[2].len, caller);
		FUZZ_EXPECT("pool store", r, -EINVAL, -ENOENT, -ENOTDIR, -ESRCH, -EPERM);
		if (r == 0)
			check_member(reg, a[0].s, a[1].s, a[2].s, a[2].len);
		break;
	case 'u':
		FUZZ_EXPECT("unstore", mreg_pool_unstore(reg, a[0].s, a[1].s), -ENOENT, -ENOTDIR);
		break;
	case 'c':
		r = mreg_render(reg, a[0].s, &text, &len);
		FUZZ_EXPECT("render", r, -ENOENT, -EISDIR);
		break;
	case 'C':
		r = mreg_pool_render(reg, a[0].s, a[1].s, &text, &len);
		FUZZ_EXPECT("pool render", r, -ENOENT, -ENOTDIR);
		break;
	case 'l':
		FUZZ_EXPECT("list", mreg_list(reg, 0, check_entry, &n));
		break;
	case 'L':
		FUZZ_EXPECT("pool list", mreg_pool_list(reg, a[0].s, 0, check_entry, &n), -ENOENT,
		            -ENOTDIR);
		break;
	case 's':
		r = mreg_stat(reg, a[0].s, a[1].len ? a[1].s : NULL, &st);
		FUZZ_EXPECT("stat", r, -ENOENT, -ENOTDIR, -EISDIR);
		break;
	default:
		break;
	}
	free(text);
}

/* What each op takes. */
static const struct fuzz_op_spec ops[] = {
        {'w', 2, true},  {'W', 2, true},  {'r', 1, false}, {'m', 1, false},  {'d', 1, false},
        {'p', 3, true},  {'P', 3, true},  {'u', 2, false}, {'c', 1, false},  {'C', 2, false},
        {'l', 0, false}, {'L', 1, false}, {'s', 2, false}, {'\0', 0, false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mev_ring *ring = mev_ring_new(16);
	FUZZ_CHECK(ring, "mev_ring_new");
	struct mreg *reg = mreg_new(ring);
	FUZZ_CHECK(reg, "mreg_new: %s", strerror(errno));

	fuzz_replay(data, size, ops, run_op, reg);
	fuzz_read_feed(ring);
	mreg_free(reg);
	mev_ring_free(ring);
	return 0;
}
