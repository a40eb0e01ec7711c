/* SPDX-License-Identifier: MIT */
/* The helpers of fuzz.h. */
#include "fuzz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "events.h"
#include "util.h"

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void drop_line(enum mu_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)line;
	(void)arg;
}

void fuzz_quiet_log(void)
{
	mu_log_set_sink(drop_line, NULL, MU_LOG_DEBUG);
}

/* Unescapes s[0..n) into a new argument, "$$" becoming our PID. */
static void unescape(const uint8_t *s, size_t n, struct fuzz_arg *ret)
{
	char pid[16];
	int pidlen = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	/* "$$" grows to at most 7 bytes from 2: 4 per byte is plenty. */
	char *out = malloc(4 * n + 1);
	size_t o = 0;
	FUZZ_CHECK(out, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '$' && i + 1 < n && s[i + 1] == '$') {
			memcpy(out + o, pid, (size_t)pidlen);
			o += (size_t)pidlen;
			i++;
			continue;
		}
		if (s[i] != '\\' || i + 1 == n) {
			out[o++] = (char)s[i];
			continue;
		}
		i++;
		switch (s[i]) {
		case 'n':
			out[o++] = '\n';
			break;
		case '0':
			out[o++] = '\0';
			break;
		case 's':
			out[o++] = ' ';
			break;
		case 'x':
			if (i + 2 < n && mu_hex_digit(s[i + 1]) >= 0 &&
			    mu_hex_digit(s[i + 2]) >= 0) {
				out[o++] = (char)(mu_hex_digit(s[i + 1]) * 16 +
				                  mu_hex_digit(s[i + 2]));
				i += 2;
				break;
			}
			out[o++] = 'x';
			break;
		default:
			out[o++] = (char)s[i];
			break;
		}
	}
	out[o] = '\0';
	ret->s = out;
	ret->len = o;
}

/* The next line of data (from *pos) cut into op and nargs arguments. */
static void next_op(const uint8_t *data, size_t size, size_t *pos, const struct fuzz_op_spec *specs,
                    struct fuzz_op *ret)
{
	memset(ret, 0, sizeof(*ret));
	const uint8_t *line = data + *pos;
	const uint8_t *nl = memchr(line, '\n', size - *pos);
	size_t len = nl ? (size_t)(nl - line) : size - *pos;
	*pos += len + (nl ? 1 : 0);
	if (len == 0)
		return;
	const struct fuzz_op_spec *spec = specs;
	while (spec->op && spec->op != (char)line[0])
		spec++;
	if (!spec->op)
		return;

	ret->op = spec->op;
	size_t nargs = spec->nargs < FUZZ_MAX_ARGS ? spec->nargs : FUZZ_MAX_ARGS;
	size_t i = len > 1 && line[1] == ' ' ? 2 : len;
	while (ret->nargs < nargs) {
		size_t from = i < len ? i : len, end = from;
		if (spec->text && ret->nargs + 1 == nargs)
			end = len;
		else
			while (end < len && line[end] != ' ')
				end++;
		unescape(line + from, end - from, &ret->args[ret->nargs++]);
		i = end + 1;
	}
}

void fuzz_replay(const uint8_t *data, size_t size, const struct fuzz_op_spec *specs,
                 void (*run)(void *ctx, const struct fuzz_op *o), void *ctx)
{
	size_t pos = 0;
	while (pos < size) {
		struct fuzz_op o;
		next_op(data, size, &pos, specs, &o);
		if (o.op)
			run(ctx, &o);
		for (size_t i = 0; i < o.nargs; i++)
			free(o.args[i].s);
	}
}

void fuzz_read_feed(struct mev_ring *ring)
{
	uint64_t cursor = 1;
	char buf[4096];
	while (mev_ring_read(ring, &cursor, buf, sizeof(buf)) > 0)
		;
}

bool fuzz_errno_in(long r, const int *ok, size_t n)
{
	if (r >= 0 || r == -ENOMEM)
		return true;
	for (size_t i = 0; i < n; i++)
		if (r == ok[i])
			return true;
	return false;
}

uint64_t fuzz_u64(const struct fuzz_arg *a, uint64_t def)
{
	uint64_t v;
	if (a->len != strlen(a->s) || mu_parse_u64(a->s, &v) < 0)
		return def;
	return v;
}

char *fuzz_exact(const struct fuzz_arg *a)
{
	char *p = malloc(a->len);
	FUZZ_CHECK(p || !a->len, "out of memory");
	if (a->len)
		memcpy(p, a->s, a->len);
	return p;
}

static int file_fd = -1;
static char file_path[64];

const char *fuzz_file_path(void)
{
	if (file_fd < 0) {
		file_fd = memfd_create("fuzz-file", MFD_CLOEXEC);
		FUZZ_CHECK(file_fd >= 0, "memfd_create: %s", strerror(errno));
		snprintf(file_path, sizeof(file_path), "/proc/self/fd/%d", file_fd);
	}
	return file_path;
}

void fuzz_file_put(const uint8_t *data, size_t size)
{
	fuzz_file_path();
	FUZZ_CHECK(ftruncate(file_fd, 0) == 0, "ftruncate: %s", strerror(errno));
	for (size_t off = 0; off < size;) {
		ssize_t n = pwrite(file_fd, data + off, size - off, (off_t)off);
		FUZZ_CHECK(n > 0, "pwrite: %s", strerror(errno));
		off += (size_t)n;
	}
}

int fuzz_names_add(struct fuzz_names *ns, const char *name)
{
	if (ns->n == sizeof(ns->v) / sizeof(ns->v[0]))
		return 1;
	ns->v[ns->n] = strdup(name);
	FUZZ_CHECK(ns->v[ns->n], "out of memory");
	ns->n++;
	return 0;
}

void fuzz_names_free(struct fuzz_names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	ns->n = 0;
}
