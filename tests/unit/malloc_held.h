/* SPDX-License-Identifier: MIT */
/* What malloc holds, for the unit tests that bound memory: mallinfo2 sees
 * glibc's allocator only, not a sanitizer's (SANITIZER_MALLOC is defined
 * then, and malloc_held says 0). */
#ifndef MALLAFS_TESTS_MALLOC_HELD_H
#define MALLAFS_TESTS_MALLOC_HELD_H

#include <malloc.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_MALLOC 1
#endif
#endif

/* The bytes malloc has handed out and not had back (0 under a sanitizer). */
static inline size_t malloc_held(void)
{
#ifdef SANITIZER_MALLOC
	return 0;
#else
	struct mallinfo2 m = mallinfo2();
	return m.uordblks + m.hblkhd;
#endif
}

#endif
