/* SPDX-License-Identifier: MIT */
/* Whether a process that closes a descriptor may still hold a duplicate of
 * it (procfd.c): a shell's redirection opens a file, dup2()s it to its
 * place and closes the first descriptor before it writes, and a value's
 * held truncation (value_file.c) must not be applied at that close. The
 * kernel's FLUSH does not say which close it is, so the closing process's
 * descriptors are looked at in /proc: its fdinfo files give each one's
 * inode, access mode and offset, and reading them never enters a mount.
 * No lock is taken. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "fs_i.h"

/* Past this many descriptors the answer is "maybe": a process with a
 * million open files costs no worker thread more than this. */
#define PROCFD_MAX 1024

bool mfs_proc_may_dup(pid_t pid, uint64_t ino, int acc)
{
	char path[64];
	if (pid <= 0)
		return true; /* another PID namespace: unknown */
	snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return true;
	bool maybe = false;
	unsigned seen = 0;
	struct dirent *e;
	while (!maybe && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (++seen > PROCFD_MAX) {
			maybe = true;
			break;
		}
		FILE *f = fdopen(openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC), "r");
		if (!f)
			continue;
		char line[160];
		unsigned long long pos = 1, fino = 0;
		unsigned flags = 0;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "pos: %llu", &pos) == 1 ||
			    sscanf(line, "flags: %o", &flags) == 1)
				continue;
			sscanf(line, "ino: %llu", &fino);
		}
		fclose(f);
		/* A duplicate of a redirection's descriptor: the same file, the
		 * same access mode, nothing written through it yet. Another
		 * file with that inode number only makes the answer "maybe". */
		maybe = fino == ino && pos == 0 && (int)(flags & O_ACCMODE) == acc;
	}
	closedir(d);
	return maybe;
}
