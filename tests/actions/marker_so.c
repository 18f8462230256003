/*
 * marker_so.c -- a shared library whose constructor creates the file named by
 * $SLUICE_MARKER_FILE: the tests of the action boundary load it (or prove nothing can) to tell
 * whether a library handed to sluice by a rule was loaded, i.e. whether its code ran.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void mark(void) {
    const char *p = getenv("SLUICE_MARKER_FILE");
    if (p) {
        int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
}
