/* SPDX-License-Identifier: MIT */
/* mount/cmdline.c: the command line as mount(8), fstab and a shell give it,
 * made into the one fuse_opt_parse reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cmdline.h"

/* Normalizes the NULL-terminated IN and checks the result is WANT, joined
 * by spaces. */
static void check(const char *const *in, const char *want)
{
	int argc = 0;
	while (in[argc])
		argc++;
	struct mcmd c;
	char why[256] = "";
	assert_int_equal(mcmd_normalize(argc, (char *const *)in, &c, why, sizeof(why)), 0);
	char got[1024] = "";
	for (int i = 0; i < c.argc; i++) {
		if (i)
			strcat(got, " ");
		strcat(got, c.argv[i]);
	}
	assert_null(c.argv[c.argc]);
	assert_string_equal(got, want);
	mcmd_free(&c);
}

static void check_fails(const char *const *in, const char *why_part)
{
	int argc = 0;
	while (in[argc])
		argc++;
	struct mcmd c = {0};
	char why[256] = "";
	assert_int_equal(mcmd_normalize(argc, (char *const *)in, &c, why, sizeof(why)), -1);
	assert_non_null(strstr(why, why_part));
	assert_null(c.argv);
}

static void test_plain(void **state)
{
	check((const char *[]){"mallafs", "-f", "/mnt", NULL}, "mallafs -f /mnt");
	check((const char *[]){"mallafs", NULL}, "mallafs");
	check((const char *[]){"mallafs", "--config=/a.ini", "-o", "allow_other", "/mnt", NULL},
	      "mallafs --config=/a.ini -oallow_other /mnt");
}

/* mount.fuse3 runs TYPE SOURCE MOUNTPOINT -o OPTIONS. */
static void test_source(void **state)
{
	check((const char *[]){"mallafs", "mallafs", "/run/state", "-o",
	                       "rw,config=/etc/m.ini,allow_other,dev,suid", NULL},
	      "mallafs /run/state -orw,config=/etc/m.ini,allow_other,dev,suid");
	check((const char *[]){"mallafs", "-f", "none", "/mnt", NULL}, "mallafs -f /mnt");
	check((const char *[]){"mallafs", "src", "--", "/mnt", NULL}, "mallafs -- /mnt");
	check_fails((const char *[]){"mallafs", "a", "b", "c", NULL}, "too many arguments");
	check_fails((const char *[]){"mallafs", "a", "--", "b", "c", NULL}, "the third is c");
}

static void test_spaced(void **state)
{
	check((const char *[]){"mallafs", "--config", "/a b.ini", "--state", "/s.db",
	                       "--plugin-dir", "/p", "/mnt", NULL},
	      "mallafs --config=/a b.ini --state=/s.db --plugin-dir=/p /mnt");
	/* The value may look like an option. */
	check((const char *[]){"mallafs", "--config", "-x.ini", "/mnt", NULL},
	      "mallafs --config=-x.ini /mnt");
	check_fails((const char *[]){"mallafs", "/mnt", "--config", NULL},
	            "--config needs a value");
	check_fails((const char *[]){"mallafs", "/mnt", "--plugin-dir", NULL},
	            "--plugin-dir needs a value");
}

/* What mount(8), systemd and fstab add, which libfuse would refuse. */
static void test_ignored(void **state)
{
	check((const char *[]){"mallafs", "-o",
	                       "rw,relatime,_netdev,nofail,x-systemd.requires=a.service,noauto,"
	                       "config=/c,comment=x,users,defaults,,noatime",
	                       "/mnt", NULL},
	      "mallafs -orw,config=/c,noatime /mnt");
	check((const char *[]){"mallafs", "-onofail,_netdev", "/mnt", NULL}, "mallafs /mnt");
	check((const char *[]){"mallafs", "-o", "nofail", "-o", "ro", "/mnt", NULL},
	      "mallafs -oro /mnt");
	/* Only whole options: a value that merely starts alike stays. */
	check((const char *[]){"mallafs", "-o", "nofailx,usersx=1,config=/x-y", "/mnt", NULL},
	      "mallafs -onofailx,usersx=1,config=/x-y /mnt");
	/* -o with nothing after it is left for fuse_opt_parse to refuse. */
	check((const char *[]){"mallafs", "/mnt", "-o", NULL}, "mallafs /mnt -o");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plain),
	        cmocka_unit_test(test_source),
	        cmocka_unit_test(test_spaced),
	        cmocka_unit_test(test_ignored),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
