/*
 * file_int.h -- private to actions/file: the two pieces of the file action the unit tests
 * exercise on their own, opening a file beneath the base directory and the line an output
 * becomes.
 * Thread: any (no shared state).
 */
#ifndef SLUICE_ACT_FILE_INT_H
#define SLUICE_ACT_FILE_INT_H

#include <stddef.h>

#include "../action.h"

/* How act_file__open_beneath() resolves: openat2(2) with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS, falling back to the component walk where the kernel (older than 5.6)
 * or a seccomp filter refuses openat2 (AUTO); or one of them alone (tests). */
enum { ACT_FILE_OPEN_AUTO, ACT_FILE_OPEN_OPENAT2, ACT_FILE_OPEN_WALK };

/* Opens base/rel for appending, creating the file (0640) but no directory, with no symlink
 * followed beneath base (base itself may be one: it is the operator's) and no way out of it;
 * rel has no "..", "." or empty component (open() checked). The result is a regular file with
 * one link, opened O_WRONLY | O_APPEND | O_CLOEXEC. Returns the descriptor, or -1 with errno
 * set (ELOOP: a symlink on the way; ENXIO or EINVAL: not a regular file; EMLINK: other hard
 * links). */
int act_file__open_beneath(const char *base, const char *rel, int how);

/* Appends the line output p[0..n) becomes, newline included: the output as it is when it is
 * one JSON value (raw CR and LF, which JSON allows only as whitespace, become spaces); else a
 * JSON string of it when it is UTF-8 text; else {"base64":"..."}. So the file holds JSON lines
 * whatever the rule outputs, never raw bytes. 0, or -1 on OOM. */
int act_file__line(act_buf *b, const char *p, size_t n);

#endif
