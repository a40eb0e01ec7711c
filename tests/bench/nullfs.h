/* SPDX-License-Identifier: MIT */
/*
 * nullfs's files: one flat root folder of regular files kept in memory, found
 * by name and by inode in two hash tables, in inode order in a list (which
 * gives readdir stable offsets). Every function here is called with
 * nullfs.lock held, except nullfs_init and nullfs_fini.
 */

#ifndef NULLFS_H
#define NULLFS_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define NULLFS_TIMEOUT 1.0
#define NULLFS_MIN_BUCKETS 64
/* readdir offsets 1 and 2 belong to "." and "..", a file's is its inode + 2 */
#define NULLFS_DOT_OFFSETS 2
#define NULLFS_MAX_SIZE ((size_t)1 << 30)
#define NULLFS_FREE_FILES ((size_t)1 << 20)

struct nfile {
	fuse_ino_t ino;
	char *name;
	char *data;
	size_t size;
	size_t cap;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
	uint64_t nlookup;
	/* keep_cache is safe only if nothing changed since the last open */
	uint64_t version;
	uint64_t open_version;
	bool linked;
	struct nfile *name_next;
	struct nfile *ino_next;
	/* the folder's order is inode order, which gives readdir stable offsets */
	struct nfile *prev;
	struct nfile *next;
};

struct nullfs {
	pthread_mutex_t lock;
	/* every file is in by_ino until forgotten, only linked ones in by_name */
	struct nfile **by_name;
	struct nfile **by_ino;
	size_t nbuckets;
	size_t nfiles;
	size_t nlinked;
	struct nfile *head;
	struct nfile *tail;
	fuse_ino_t next_ino;
	uid_t uid;
	gid_t gid;
	struct timespec root_mtime;
	char *readdirplus; /* -o readdirplus=no|yes|auto */
};

int nullfs_init(struct nullfs *fs);
void nullfs_fini(struct nullfs *fs);

struct nfile *find_ino(struct nullfs *fs, fuse_ino_t ino);
struct nfile *find_name(struct nullfs *fs, const char *name);
void now(struct timespec *ts);
/* a new linked file, its lookup count 0 */
int file_new(struct nullfs *fs, const char *name, mode_t mode, uid_t uid, gid_t gid,
             struct nfile **ret_file);
/* out of the folder; it stays while the kernel holds it */
void file_unlink(struct nullfs *fs, struct nfile *f);
/* the kernel holds no more references and no folder lists it */
void file_drop(struct nullfs *fs, struct nfile *f);
void forget_one(struct nullfs *fs, fuse_ino_t ino, uint64_t nlookup);
int file_resize(struct nfile *f, size_t size);
void file_changed(struct nfile *f);
/* the root's attributes when f is NULL */
void fill_attr(const struct nullfs *fs, const struct nfile *f, struct stat *st);
/* takes a lookup reference, as the kernel will forget it later */
void fill_entry(const struct nullfs *fs, struct nfile *f, struct fuse_entry_param *e);

#endif
