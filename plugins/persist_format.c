/* SPDX-License-Identifier: MIT */
/* persist's old file format, version 1 (binary-safe, self-checking), which
 * mallafs before the SQLite database wrote; it is only read now, to convert
 * such a file at start (persist_db.c), and checked in memory:
 *
 *     mallafs-store 1\n
 *     KEYLEN VALUELEN\nKEYVALUE\n          once per key
 *     end COUNT CHECKSUM\n
 *
 * KEYLEN, VALUELEN and COUNT are decimal without sign or leading zeros;
 * KEYLEN is 1..255 and the key a valid store key (no '/', no NUL, not "." or
 * ".."); the key and value bytes are raw (any bytes, NUL included) and
 * followed by one '\n' so the file stays readable with `less`. CHECKSUM is
 * the 64-bit FNV-1a hash of every byte before the "end" line, as 16
 * lowercase hex digits. Nothing follows the end line. A reader refuses
 * another version number rather than guess. */
#include "persist_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PERSIST_MAGIC "mallafs-store "
#define PERSIST_VERSION 1
#define FNV_INIT 0xcbf29ce484222325ULL

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* A decimal number without sign or leading zeros, ended by `end`. Returns
 * the position after the terminator, or 0 when malformed. */
static size_t parse_num(const char *d, size_t pos, size_t size, char end, uint64_t max,
                        uint64_t *ret)
{
	uint64_t v = 0;
	size_t start = pos;
	while (pos < size && d[pos] >= '0' && d[pos] <= '9') {
		if (pos > start && d[start] == '0')
			return 0;
		uint64_t digit = (uint64_t)(d[pos] - '0');
		if (v > (max - digit) / 10)
			return 0;
		v = v * 10 + digit;
		pos++;
	}
	if (pos == start || pos >= size || d[pos] != end)
		return 0;
	*ret = v;
	return pos + 1;
}

bool persist_key_ok(const char *k, size_t len)
{
	if (len == 0 || len > PERSIST_KEY_MAX)
		return false;
	if ((len == 1 && k[0] == '.') || (len == 2 && k[0] == '.' && k[1] == '.'))
		return false;
	return !memchr(k, '\0', len) && !memchr(k, '/', len);
}

/* Checks a whole file and lists its records (pointing into d). Nothing is
 * loaded unless all of it checks out. */
int persist_parse(const char *d, size_t size, struct persist_record **ret, size_t *ret_n,
                  struct mallafs_reason *why)
{
	struct persist_record *v = NULL;
	size_t n = 0, cap = 0, pos;
	uint64_t version, count, klen, vlen;
	const size_t mlen = strlen(PERSIST_MAGIC);

	if (size < mlen || memcmp(d, PERSIST_MAGIC, mlen) != 0) {
		mallafs_reason_set(why, "not a mallafs store file (bad magic at byte 0)");
		goto bad;
	}
	pos = parse_num(d, mlen, size, '\n', UINT32_MAX, &version);
	if (!pos) {
		mallafs_reason_set(why, "bad header at byte %zu", mlen);
		goto bad;
	}
	if (version != PERSIST_VERSION) {
		mallafs_reason_set(why, "unsupported format version %" PRIu64 " (this is %d)",
		                   version, PERSIST_VERSION);
		goto bad;
	}
	for (;;) {
		if (pos >= size) {
			mallafs_reason_set(why, "truncated at byte %zu: no end line", pos);
			goto bad;
		}
		if (d[pos] == 'e')
			break;
		size_t at = pos;
		pos = parse_num(d, at, size, ' ', PERSIST_KEY_MAX, &klen);
		if (pos)
			pos = parse_num(d, pos, size, '\n', PERSIST_FILE_MAX, &vlen);
		if (!pos) {
			mallafs_reason_set(why, "bad record header at byte %zu (record %zu)", at,
			                   n + 1);
			goto bad;
		}
		if (klen == 0) {
			mallafs_reason_set(why, "bad key length 0 at byte %zu (record %zu)", at,
			                   n + 1);
			goto bad;
		}
		if (klen + vlen + 1 > size - pos) {
			mallafs_reason_set(why,
			                   "truncated at byte %zu: record %zu needs %" PRIu64
			                   " bytes, %zu left",
			                   pos, n + 1, klen + vlen + 1, size - pos);
			goto bad;
		}
		if (!persist_key_ok(d + pos, klen)) {
			mallafs_reason_set(why, "invalid key name at byte %zu (record %zu)", pos,
			                   n + 1);
			goto bad;
		}
		if (d[pos + klen + vlen] != '\n') {
			mallafs_reason_set(why, "no newline after record %zu at byte %zu", n + 1,
			                   pos + klen + vlen);
			goto bad;
		}
		if (n == cap) {
			size_t c = cap ? 2 * cap : 64;
			struct persist_record *nv = realloc(v, c * sizeof(*nv));
			if (!nv) {
				mallafs_reason_set(why, "out of memory");
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap = c;
		}
		v[n++] = (struct persist_record){d + pos, klen, d + pos + klen, vlen};
		pos += klen + vlen + 1;
	}

	size_t end_at = pos;
	char sumtext[17];
	const char *nl = memchr(d + pos, '\n', size - pos);
	size_t q;
	if (size - pos < 4 || memcmp(d + pos, "end ", 4) != 0 ||
	    !(q = parse_num(d, pos + 4, size, ' ', UINT64_MAX, &count)) || !nl ||
	    (size_t)(nl - d) != q + 16) {
		mallafs_reason_set(why, "bad end line at byte %zu", end_at);
		goto bad;
	}
	memcpy(sumtext, d + q, 16);
	sumtext[16] = '\0';
	if (strspn(sumtext, "0123456789abcdef") != 16) {
		mallafs_reason_set(why, "bad checksum text at byte %zu", q);
		goto bad;
	}
	if ((size_t)(nl - d) + 1 != size) {
		mallafs_reason_set(why, "data after the end line at byte %zu",
		                   (size_t)(nl - d) + 1);
		goto bad;
	}
	if (count != n) {
		mallafs_reason_set(why,
		                   "the end line counts %" PRIu64 " records, the file holds %zu",
		                   count, n);
		goto bad;
	}
	uint64_t want = strtoull(sumtext, NULL, 16);
	uint64_t got = fnv1a(FNV_INIT, d, end_at);
	if (want != got) {
		mallafs_reason_set(why,
		                   "checksum mismatch at byte %zu (file says %016" PRIx64
		                   ", content gives %016" PRIx64 ")",
		                   end_at, want, got);
		goto bad;
	}
	*ret = v;
	*ret_n = n;
	return 0;
bad:
	free(v);
	return -EINVAL;
}
