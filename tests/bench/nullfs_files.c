/* SPDX-License-Identifier: MIT */
/* See nullfs.h. */

#include "nullfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t name_hash(const char *name)
{
	/* FNV-1a */
	uint64_t h = 14695981039346656037ULL;

	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static size_t ino_slot(const struct nullfs *fs, fuse_ino_t ino)
{
	/* inodes are handed out in sequence, so the low bits spread them evenly */
	return (size_t)ino & (fs->nbuckets - 1);
}

static size_t name_slot(const struct nullfs *fs, const char *name)
{
	return name_hash(name) & (fs->nbuckets - 1);
}

struct nfile *find_ino(struct nullfs *fs, fuse_ino_t ino)
{
	struct nfile *f;

	for (f = fs->by_ino[ino_slot(fs, ino)]; f; f = f->ino_next)
		if (f->ino == ino)
			return f;
	return NULL;
}

struct nfile *find_name(struct nullfs *fs, const char *name)
{
	struct nfile *f;

	for (f = fs->by_name[name_slot(fs, name)]; f; f = f->name_next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static int grow(struct nullfs *fs)
{
	size_t n = fs->nbuckets * 2, i;
	struct nfile **by_name, **by_ino, *f, *next;
	struct nfile **old_name = fs->by_name, **old_ino = fs->by_ino;
	size_t old_n = fs->nbuckets;

	by_name = calloc(n, sizeof(*by_name));
	by_ino = calloc(n, sizeof(*by_ino));
	if (!by_name || !by_ino) {
		free(by_name);
		free(by_ino);
		return -ENOMEM;
	}
	fs->by_name = by_name;
	fs->by_ino = by_ino;
	fs->nbuckets = n;
	for (i = 0; i < old_n; i++) {
		for (f = old_ino[i]; f; f = next) {
			next = f->ino_next;
			f->ino_next = by_ino[ino_slot(fs, f->ino)];
			by_ino[ino_slot(fs, f->ino)] = f;
		}
		for (f = old_name[i]; f; f = next) {
			next = f->name_next;
			f->name_next = by_name[name_slot(fs, f->name)];
			by_name[name_slot(fs, f->name)] = f;
		}
	}
	free(old_name);
	free(old_ino);
	return 0;
}

void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

int file_new(struct nullfs *fs, const char *name, mode_t mode, uid_t uid, gid_t gid,
             struct nfile **ret_file)
{
	struct nfile *f;
	size_t slot;

	if (fs->nfiles >= fs->nbuckets && grow(fs) < 0)
		return -ENOMEM;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->name = strdup(name);
	if (!f->name) {
		free(f);
		return -ENOMEM;
	}
	f->ino = fs->next_ino++;
	f->mode = S_IFREG | (mode & 07777);
	f->uid = uid;
	f->gid = gid;
	now(&f->mtime);
	f->atime = f->ctime = f->mtime;
	f->linked = true;

	slot = ino_slot(fs, f->ino);
	f->ino_next = fs->by_ino[slot];
	fs->by_ino[slot] = f;
	slot = name_slot(fs, f->name);
	f->name_next = fs->by_name[slot];
	fs->by_name[slot] = f;
	f->prev = fs->tail;
	if (fs->tail)
		fs->tail->next = f;
	else
		fs->head = f;
	fs->tail = f;
	fs->nfiles++;
	fs->nlinked++;
	fs->root_mtime = f->mtime;
	*ret_file = f;
	return 0;
}

void file_unlink(struct nullfs *fs, struct nfile *f)
{
	struct nfile **p;

	for (p = &fs->by_name[name_slot(fs, f->name)]; *p != f; p = &(*p)->name_next)
		;
	*p = f->name_next;
	if (f->prev)
		f->prev->next = f->next;
	else
		fs->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		fs->tail = f->prev;
	f->prev = f->next = f->name_next = NULL;
	f->linked = false;
	fs->nlinked--;
	now(&fs->root_mtime);
	f->ctime = fs->root_mtime;
}

static void file_free(struct nfile *f)
{
	if (!f)
		return;
	free(f->name);
	free(f->data);
	free(f);
}

void file_drop(struct nullfs *fs, struct nfile *f)
{
	struct nfile **p;

	for (p = &fs->by_ino[ino_slot(fs, f->ino)]; *p != f; p = &(*p)->ino_next)
		;
	*p = f->ino_next;
	fs->nfiles--;
	file_free(f);
}

void forget_one(struct nullfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct nfile *f = find_ino(fs, ino);

	if (!f)
		return;
	f->nlookup -= nlookup < f->nlookup ? nlookup : f->nlookup;
	if (f->nlookup == 0 && !f->linked)
		file_drop(fs, f);
}

int file_resize(struct nfile *f, size_t size)
{
	char *data;
	size_t cap;

	if (size > NULLFS_MAX_SIZE)
		return -EFBIG;
	if (size > f->cap) {
		/* exact for the first write, so small values cost what they hold */
		cap = f->cap * 2 > size ? f->cap * 2 : size;
		data = realloc(f->data, cap);
		if (!data)
			return -ENOMEM;
		f->data = data;
		f->cap = cap;
	}
	if (size > f->size)
		memset(f->data + f->size, 0, size - f->size);
	f->size = size;
	return 0;
}

void file_changed(struct nfile *f)
{
	f->version++;
	now(&f->mtime);
	f->ctime = f->mtime;
}

void fill_attr(const struct nullfs *fs, const struct nfile *f, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_blksize = 4096;
	if (!f) {
		st->st_ino = FUSE_ROOT_ID;
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		st->st_uid = fs->uid;
		st->st_gid = fs->gid;
		st->st_atim = st->st_mtim = st->st_ctim = fs->root_mtime;
		return;
	}
	st->st_ino = f->ino;
	st->st_mode = f->mode;
	st->st_nlink = f->linked ? 1 : 0;
	st->st_uid = f->uid;
	st->st_gid = f->gid;
	st->st_size = (off_t)f->size;
	st->st_blocks = (blkcnt_t)((f->size + 511) / 512);
	st->st_atim = f->atime;
	st->st_mtim = f->mtime;
	st->st_ctim = f->ctime;
}

void fill_entry(const struct nullfs *fs, struct nfile *f, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = f->ino;
	e->generation = 1;
	e->attr_timeout = NULLFS_TIMEOUT;
	e->entry_timeout = NULLFS_TIMEOUT;
	fill_attr(fs, f, &e->attr);
	f->nlookup++;
}

int nullfs_init(struct nullfs *fs)
{
	memset(fs, 0, sizeof(*fs));
	fs->nbuckets = NULLFS_MIN_BUCKETS;
	fs->by_name = calloc(fs->nbuckets, sizeof(*fs->by_name));
	fs->by_ino = calloc(fs->nbuckets, sizeof(*fs->by_ino));
	if (!fs->by_name || !fs->by_ino) {
		free(fs->by_name);
		free(fs->by_ino);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->lock, NULL);
	fs->next_ino = FUSE_ROOT_ID + 1;
	fs->uid = getuid();
	fs->gid = getgid();
	now(&fs->root_mtime);
	return 0;
}

void nullfs_fini(struct nullfs *fs)
{
	struct nfile *f, *next;
	size_t i;

	for (i = 0; i < fs->nbuckets; i++) {
		for (f = fs->by_ino[i]; f; f = next) {
			next = f->ino_next;
			file_free(f);
		}
	}
	free(fs->by_name);
	free(fs->by_ino);
	free(fs->readdirplus);
	pthread_mutex_destroy(&fs->lock);
}
