/* SPDX-License-Identifier: MIT */
/* valueprobe: what one open file of a value sees (test_atomic_put.sh).
 *
 *     valueprobe own PATH DATA         open(O_RDWR|O_TRUNC), then fstat, read,
 *                                      write DATA, pread it back; prints
 *                                      "size=N read=N back=DATA" (the fstat
 *                                      size and the read count before the write)
 *     valueprobe readers PATH MS       opens and reads PATH whole again and again
 *                                      for MS ms; prints "reads=N empty=N"
 *     valueprobe poll PATH MS N [READY] [DATA]
 *                                      opens PATH (O_RDWR with DATA, which it
 *                                      writes first through that fd), creates the
 *                                      file READY (unless empty), then N times
 *                                      poll(POLLPRI), the first for at most MS ms,
 *                                      the others 300 ms, printing one word each:
 *                                      "pri", "pri+err" or "timeout"
 *
 * Exit status: 0 when the probe ran, 1 when a call failed, 2 on a usage error. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int die(const char *what)
{
	fprintf(stderr, "valueprobe: %s: %s\n", what, strerror(errno));
	return 1;
}

static int own(const char *path, const char *data)
{
	int fd = open(path, O_RDWR | O_TRUNC);
	if (fd < 0)
		return die("open");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return die("fstat");
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return die("read");
	size_t len = strlen(data);
	if (write(fd, data, len) != (ssize_t)len)
		return die("write");
	ssize_t b = pread(fd, buf, sizeof(buf) - 1, 0);
	if (b < 0)
		return die("pread");
	buf[b] = '\0';
	printf("size=%lld read=%zd back=%s\n", (long long)st.st_size, n, buf);
	return close(fd) < 0 ? die("close") : 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int readers(const char *path, long long ms)
{
	long long end = now_ms() + ms, reads = 0, empty = 0;
	char buf[4096];
	while (now_ms() < end) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return die("open");
		size_t total = 0;
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			total += (size_t)n;
		if (n < 0)
			return die("read");
		close(fd);
		reads++;
		if (total == 0)
			empty++;
	}
	printf("reads=%lld empty=%lld\n", reads, empty);
	return 0;
}

static int pollpri(const char *path, int ms, int count, const char *ready, const char *data)
{
	int fd = open(path, data ? O_RDWR : O_RDONLY);
	if (fd < 0)
		return die("open");
	if (data && write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		return die("write");
	if (ready && *ready) {
		int r = open(ready, O_WRONLY | O_CREAT, 0644);
		if (r < 0)
			return die("ready");
		close(r);
	}
	for (int i = 0; i < count; i++) {
		struct pollfd p = {.fd = fd, .events = POLLPRI};
		int n = poll(&p, 1, i == 0 ? ms : 300);
		if (n < 0)
			return die("poll");
		if (n == 0)
			printf("timeout\n");
		else
			printf("%s\n", (p.revents & POLLERR) ? "pri+err" : "pri");
		fflush(stdout);
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "own") == 0)
		return own(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "readers") == 0)
		return readers(argv[2], atoll(argv[3]));
	if (argc >= 5 && argc <= 7 && strcmp(argv[1], "poll") == 0)
		return pollpri(argv[2], atoi(argv[3]), atoi(argv[4]), argc > 5 ? argv[5] : NULL,
		               argc > 6 ? argv[6] : NULL);
	fprintf(stderr, "usage: see the top of valueprobe.c\n");
	return 2;
}
