/*
 * nullfs: the do-nothing FUSE filesystem that the benchmark runs next to
 * mallafs. It keeps regular files in memory in one flat root folder and makes
 * the caching choices mallafs makes (1 s entry and attr timeouts, keep_cache
 * while a file is unchanged; run.sh mounts it with default_permissions, as
 * mallafs always is), so the mallafs/nullfs ratio is the cost of mallafs
 * itself and nullfs/tmpfs the cost of FUSE.
 *
 *     nullfs [-s] [-d] [-o OPTION] MOUNTPOINT
 *
 * It always runs in the foreground, until unmounted or SIGINT/SIGTERM.
 */

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

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
};

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

static struct nfile *find_ino(struct nullfs *fs, fuse_ino_t ino)
{
	struct nfile *f;

	for (f = fs->by_ino[ino_slot(fs, ino)]; f; f = f->ino_next)
		if (f->ino == ino)
			return f;
	return NULL;
}

static struct nfile *find_name(struct nullfs *fs, const char *name)
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

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static int file_new(struct nullfs *fs, const char *name, mode_t mode, uid_t uid, gid_t gid,
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

static void file_unlink(struct nullfs *fs, struct nfile *f)
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

/* the kernel holds no more references and no folder lists it */
static void file_drop(struct nullfs *fs, struct nfile *f)
{
	struct nfile **p;

	for (p = &fs->by_ino[ino_slot(fs, f->ino)]; *p != f; p = &(*p)->ino_next)
		;
	*p = f->ino_next;
	fs->nfiles--;
	file_free(f);
}

static void forget_one(struct nullfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct nfile *f = find_ino(fs, ino);

	if (!f)
		return;
	f->nlookup -= nlookup < f->nlookup ? nlookup : f->nlookup;
	if (f->nlookup == 0 && !f->linked)
		file_drop(fs, f);
}

static int file_resize(struct nfile *f, size_t size)
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

static void file_changed(struct nfile *f)
{
	f->version++;
	now(&f->mtime);
	f->ctime = f->mtime;
}

static void fill_attr(const struct nullfs *fs, const struct nfile *f, struct stat *st)
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

/* takes a lookup reference, as the kernel will forget it later */
static void fill_entry(const struct nullfs *fs, struct nfile *f, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = f->ino;
	e->generation = 1;
	e->attr_timeout = NULLFS_TIMEOUT;
	e->entry_timeout = NULLFS_TIMEOUT;
	fill_attr(fs, f, &e->attr);
	f->nlookup++;
}

static struct nullfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void nullfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct nullfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct nfile *f;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	f = find_name(fs, name);
	if (f)
		fill_entry(fs, f, &e);
	pthread_mutex_unlock(&fs->lock);
	if (!f) {
		/* every change goes through the mount, so a negative entry can be cached */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = NULLFS_TIMEOUT;
	}
	fuse_reply_entry(req, &e);
}

static void nullfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct nullfs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void nullfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct nullfs *fs = fs_of(req);
	size_t i;

	pthread_mutex_lock(&fs->lock);
	for (i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void nullfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct nullfs *fs = fs_of(req);
	struct nfile *f = NULL;
	struct stat st;

	pthread_mutex_lock(&fs->lock);
	if (ino != FUSE_ROOT_ID) {
		f = find_ino(fs, ino);
		if (!f) {
			pthread_mutex_unlock(&fs->lock);
			fuse_reply_err(req, ENOENT);
			return;
		}
	}
	fill_attr(fs, f, &st);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_attr(req, &st, NULLFS_TIMEOUT);
}

static void nullfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                           struct fuse_file_info *fi)
{
	struct nullfs *fs = fs_of(req);
	struct nfile *f = NULL;
	struct timespec ts;
	struct stat st;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (ino == FUSE_ROOT_ID)
		goto reply;
	f = find_ino(fs, ino);
	if (!f) {
		rc = -ENOENT;
		goto reply;
	}
	now(&ts);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = file_resize(f, (size_t)attr->st_size);
		if (rc < 0)
			goto reply;
		file_changed(f);
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		f->mode = S_IFREG | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		f->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		f->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		f->atime = ts;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		f->atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		f->mtime = ts;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		f->mtime = attr->st_mtim;
	f->ctime = ts;
reply:
	if (rc == 0)
		fill_attr(fs, f, &st);
	pthread_mutex_unlock(&fs->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, NULLFS_TIMEOUT);
}

static void nullfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct nullfs *fs = fs_of(req);
	struct nfile *f;

	pthread_mutex_lock(&fs->lock);
	f = find_ino(fs, ino);
	if (f) {
		/*
		 * libfuse asks for atomic O_TRUNC by default, so the truncation of
		 * "echo v > file" comes here instead of as a setattr
		 */
		if (fi->flags & O_TRUNC) {
			file_resize(f, 0);
			file_changed(f);
		}
		fi->keep_cache = f->version == f->open_version;
		f->open_version = f->version;
	}
	pthread_mutex_unlock(&fs->lock);
	if (!f)
		fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
	else
		fuse_reply_open(req, fi);
}

static void nullfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                          struct fuse_file_info *fi)
{
	struct nullfs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fuse_entry_param e;
	struct nfile *f;
	int rc = 0;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	f = find_name(fs, name);
	if (f && (fi->flags & O_EXCL)) {
		rc = -EEXIST;
	} else if (f) {
		/* another client created it between our lookup and this create */
		if ((fi->flags & O_TRUNC) && f->size > 0) {
			rc = file_resize(f, 0);
			file_changed(f);
		}
		f->open_version = f->version;
	} else {
		rc = file_new(fs, name, mode, ctx->uid, ctx->gid, &f);
	}
	if (rc == 0)
		fill_entry(fs, f, &e);
	pthread_mutex_unlock(&fs->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_create(req, &e, fi);
}

static void nullfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
	struct nullfs *fs = fs_of(req);
	struct nfile *f;

	pthread_mutex_lock(&fs->lock);
	f = find_ino(fs, ino);
	if (!f) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (off < 0 || (size_t)off >= f->size)
		size = 0;
	else if (size > f->size - (size_t)off)
		size = f->size - (size_t)off;
	/* replying under the lock saves a copy: the data cannot change meanwhile */
	fuse_reply_buf(req, size ? f->data + off : NULL, size);
	pthread_mutex_unlock(&fs->lock);
}

static void nullfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                         struct fuse_file_info *fi)
{
	struct nullfs *fs = fs_of(req);
	struct nfile *f;
	int rc = 0;

	if (off < 0 || (size_t)off > NULLFS_MAX_SIZE || size > NULLFS_MAX_SIZE - (size_t)off) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	f = find_ino(fs, ino);
	if (!f) {
		rc = -ENOENT;
	} else {
		if ((size_t)off + size > f->size)
			rc = file_resize(f, (size_t)off + size);
		if (rc == 0) {
			memcpy(f->data + off, buf, size);
			file_changed(f);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

static void nullfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct nullfs *fs = fs_of(req);
	struct nfile *f;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	f = find_name(fs, name);
	if (f) {
		file_unlink(fs, f);
		if (f->nlookup == 0)
			file_drop(fs, f);
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, f ? 0 : ENOENT);
}

static void nullfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static size_t add_dirent(fuse_req_t req, char *buf, size_t room, const char *name, fuse_ino_t ino,
                         mode_t mode, off_t next_off)
{
	struct stat st = {.st_ino = ino, .st_mode = mode};

	return fuse_add_direntry(req, buf, room, name, &st, next_off);
}

static void nullfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	struct nullfs *fs = fs_of(req);
	struct nfile *f, *last;
	size_t pos = 0, len;
	char *buf;

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off < 1) {
		len = add_dirent(req, buf + pos, size - pos, ".", FUSE_ROOT_ID, S_IFDIR, 1);
		if (len > size - pos)
			goto reply;
		pos += len;
	}
	if (off < 2) {
		len = add_dirent(req, buf + pos, size - pos, "..", FUSE_ROOT_ID, S_IFDIR, 2);
		if (len > size - pos)
			goto reply;
		pos += len;
	}

	pthread_mutex_lock(&fs->lock);
	f = fs->head;
	if (off > NULLFS_DOT_OFFSETS) {
		/* resume after the last file returned, or after where it was if it is gone */
		last = find_ino(fs, (fuse_ino_t)(off - NULLFS_DOT_OFFSETS));
		if (last && last->linked)
			f = last->next;
		else
			while (f && f->ino + NULLFS_DOT_OFFSETS <= (fuse_ino_t)off)
				f = f->next;
	}
	for (; f; f = f->next) {
		len = add_dirent(req, buf + pos, size - pos, f->name, f->ino, S_IFREG,
		                 (off_t)(f->ino + NULLFS_DOT_OFFSETS));
		if (len > size - pos)
			break;
		pos += len;
	}
	pthread_mutex_unlock(&fs->lock);
reply:
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void nullfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct nullfs *fs = fs_of(req);
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = 1 << 20;
	sv.f_bfree = sv.f_blocks;
	sv.f_bavail = sv.f_blocks;
	/* room for as many files again, however many there are */
	pthread_mutex_lock(&fs->lock);
	sv.f_ffree = fs->nfiles > NULLFS_FREE_FILES ? fs->nfiles : NULLFS_FREE_FILES;
	sv.f_files = fs->nfiles + sv.f_ffree;
	pthread_mutex_unlock(&fs->lock);
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/*
 * No flush, opendir or releasedir: libfuse answers those itself, and the kernel
 * stops sending FLUSH after the first ENOSYS, as a filesystem with nothing to
 * flush would want.
 */
static const struct fuse_lowlevel_ops nullfs_ops = {
        .lookup = nullfs_lookup,
        .forget = nullfs_forget,
        .forget_multi = nullfs_forget_multi,
        .getattr = nullfs_getattr,
        .setattr = nullfs_setattr,
        .open = nullfs_open,
        .create = nullfs_create,
        .read = nullfs_read,
        .write = nullfs_write,
        .unlink = nullfs_unlink,
        .release = nullfs_release,
        .readdir = nullfs_readdir,
        .statfs = nullfs_statfs,
};

static int nullfs_init(struct nullfs *fs)
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

static void nullfs_fini(struct nullfs *fs)
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
	pthread_mutex_destroy(&fs->lock);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_loop_config *cfg;
	struct fuse_cmdline_opts opts;
	struct fuse_session *se;
	struct nullfs fs;
	int ret = 1, rc;

	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (opts.show_help) {
		printf("usage: %s [-s] [-d] [-o OPTION[,OPTION...]] MOUNTPOINT\n\n", argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (opts.show_version) {
		printf("FUSE library version %s\n", fuse_pkgversion());
		fuse_lowlevel_version();
		ret = 0;
		goto out_args;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "usage: %s [-s] [-d] [-o OPTION[,OPTION...]] MOUNTPOINT\n",
		        argv[0]);
		goto out_args;
	}
	if (nullfs_init(&fs) < 0) {
		fprintf(stderr, "nullfs: out of memory\n");
		goto out_args;
	}
	se = fuse_session_new(&args, &nullfs_ops, sizeof(nullfs_ops), &fs);
	if (!se)
		goto out_fs;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;

	if (opts.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg) {
			fprintf(stderr, "nullfs: out of memory\n");
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		rc = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	/* a positive value is the signal that ended the loop: a clean exit */
	ret = rc < 0 ? 1 : 0;

out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_fs:
	nullfs_fini(&fs);
out_args:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
