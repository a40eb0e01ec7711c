/* SPDX-License-Identifier: MIT */
/* The bootstrap file's reader, shared by bootstrap.c (the first load) and
 * reload.c (SIGHUP): the file parsed and checked whole into items, one a
 * service or an app of the node-wide config, in the order they first
 * appear in the file. */
#ifndef MALLAFS_MOUNT_BOOTSTRAP_I_H
#define MALLAFS_MOUNT_BOOTSTRAP_I_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "bootstrap.h"

struct mallafs_cfg;

enum item_kind {
	ITEM_SERVICE,
	ITEM_APP,
};

/* One thing to create: a service, or an app of the node-wide config. */
struct boot_item {
	enum item_kind kind;
	char *name;
	int line; /* where it first appears: the creation order */
	/* ITEM_APP: the parsed section holding its keys. */
	const char *section;
	/* ITEM_SERVICE */
	bool declared; /* has a [services.NAME] section */
	int decl_line;
	int plugins_line;
	char **plugins;
	size_t nplugins;
	const char *admin; /* points into the parsed file; NULL: active */
	bool owned;        /* owner = given: the service is theirs */
	uid_t uid;
	gid_t gid;
	struct mallafs_cfg *cfg; /* its configuration sections, NULL when none */
};

struct boot {
	struct mrt *rt;
	const char *path;
	struct mallafs_cfg *file;
	struct boot_item *items;
	size_t nitems, capitems;
	char *err;
	size_t errlen;
	char *text; /* the file's text, which file points into */
};

/* A section or key of the parsed file with the line it came from. */
struct lined {
	const char *name;
	const char *value;
	int line;
};

struct lined_list {
	struct lined *v;
	size_t n, cap;
};

/* Reads, parses and checks b->path into b->file and b->items (b->rt, path,
 * err and errlen set by the caller): 0, or -errno with the reason in err. */
int mboot_parse(struct boot *b);
void mboot_fini(struct boot *b);

/* The message is one line, "PATH:LINE: reason" (or "PATH: reason" when line
 * is 0); returns r. */
int mboot_fail(struct boot *b, int line, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* One section's keys, in file order (ret->v freed by the caller). */
int mboot_list_keys(const struct mallafs_cfg *file, const char *section, struct lined_list *ret);
/* Creates what an item says, as the first load does; the node-wide app's
 * keys are written over, an existing app extended. */
int mboot_create_app(struct boot *b, struct boot_item *it);
int mboot_create_service(struct boot *b, struct boot_item *it);
/* The line of the key (or section) a refusal of it's service names, when
 * the file holds it; 0 when it names none or the file has none. */
struct mallafs_reason;
int mboot_reason_line(struct boot *b, const struct boot_item *it, const struct mallafs_reason *why);

#endif
