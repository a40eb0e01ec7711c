/* SPDX-License-Identifier: MIT */
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
 * It always runs in the foreground, until unmounted or SIGINT/SIGTERM. It
 * answers readdirplus only with -o readdirplus=yes (always) or auto (the
 * kernel's adaptive mode); by default it lists with readdir alone.
 */

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "nullfs.h"

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

/*
 * One entry into buf, the root's when f is NULL ("." and ".."). With plus,
 * a file's comes with its attributes and a lookup reference, taken only if
 * it fits; "." and ".." come with none, as the kernel forgets none for them.
 */
static size_t add_dirent(fuse_req_t req, struct nullfs *fs, bool plus, char *buf, size_t room,
                         const char *name, struct nfile *f, off_t next_off)
{
	struct fuse_entry_param e;
	size_t len;

	memset(&e, 0, sizeof(e));
	e.attr.st_ino = f ? f->ino : FUSE_ROOT_ID;
	e.attr.st_mode = f ? S_IFREG : S_IFDIR;
	if (!plus)
		return fuse_add_direntry(req, buf, room, name, &e.attr, next_off);
	if (f)
		fill_entry(fs, f, &e);
	len = fuse_add_direntry_plus(req, buf, room, name, &e, next_off);
	if (f && len > room)
		f->nlookup--;
	return len;
}

static void list_root(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
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
		len = add_dirent(req, fs, plus, buf + pos, size - pos, ".", NULL, 1);
		if (len > size - pos)
			goto reply;
		pos += len;
	}
	if (off < 2) {
		len = add_dirent(req, fs, plus, buf + pos, size - pos, "..", NULL, 2);
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
		len = add_dirent(req, fs, plus, buf + pos, size - pos, f->name, f,
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

static void nullfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	list_root(req, ino, size, off, false);
}

static void nullfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                               struct fuse_file_info *fi)
{
	list_root(req, ino, size, off, true);
}

/* readdirplus only when asked for with -o readdirplus=yes or auto */
static void nullfs_init_conn(void *userdata, struct fuse_conn_info *conn)
{
	struct nullfs *fs = userdata;
	const char *mode = fs->readdirplus ? fs->readdirplus : "no";

	conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	if (strcmp(mode, "yes") == 0 || strcmp(mode, "auto") == 0)
		conn->want |= FUSE_CAP_READDIRPLUS & conn->capable;
	if (strcmp(mode, "auto") == 0)
		conn->want |= FUSE_CAP_READDIRPLUS_AUTO & conn->capable;
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
        .readdirplus = nullfs_readdirplus,
        .init = nullfs_init_conn,
        .statfs = nullfs_statfs,
};

static const struct fuse_opt nullfs_opts[] = {
        {"readdirplus=%s", offsetof(struct nullfs, readdirplus), 0},
        FUSE_OPT_END,
};

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
	if (fuse_opt_parse(&args, &fs, nullfs_opts, NULL) != 0)
		goto out_fs;
	if (fs.readdirplus && strcmp(fs.readdirplus, "no") != 0 &&
	    strcmp(fs.readdirplus, "yes") != 0 && strcmp(fs.readdirplus, "auto") != 0) {
		fprintf(stderr, "nullfs: readdirplus=%s: expected no, yes or auto\n",
		        fs.readdirplus);
		goto out_fs;
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
