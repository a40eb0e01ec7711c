/* SPDX-License-Identifier: MIT */
/* storegen: writes a persist store file (plugins/persist_format.c) of many
 * keys, to load a large store at once (test_store_scale.sh).
 *
 *     storegen PATH N      N keys k0000000, k0000001, ... (8 bytes), each
 *                          with the 12-byte value "twelve bytes"
 *
 * Exit status: 0 when written, 1 when a call failed, 2 on a usage error. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t sum = 0xcbf29ce484222325ULL;

/* Writes s to f, adding it to the FNV-1a checksum. */
static void put(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		sum ^= *p;
		sum *= 0x100000001b3ULL;
	}
	fputs(s, f);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: storegen PATH N\n");
		return 2;
	}
	unsigned long n = strtoul(argv[2], NULL, 10);
	if (n > 10000000) {
		fprintf(stderr, "storegen: N is at most 10000000\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror("storegen: fopen");
		return 1;
	}
	put(f, "mallafs-store 1\n");
	char rec[64];
	for (unsigned long i = 0; i < n; i++) {
		snprintf(rec, sizeof(rec), "8 12\nk%07lutwelve bytes\n", i);
		put(f, rec);
	}
	fprintf(f, "end %lu %016" PRIx64 "\n", n, sum);
	if (fclose(f) != 0) {
		perror("storegen: write");
		return 1;
	}
	return 0;
}
