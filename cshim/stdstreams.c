/* stdin, stdout and stderr over a user socket.
 *
 * libc's own streams write and read their fd through internal aliases of write/read that no preloaded library sees.
 * After a user socket is duplicated onto 0, 1 or 2 (an inetd-style server, bash's `echo hi >&3` on a /dev/tcp fd),
 * printf/puts/fgets on the standard streams would therefore reach the kernel's placeholder socket, not the
 * connection. So when dup2/dup3 puts a user socket on one of those numbers, the standard stream's pointer (`stdout`
 * and friends are assignable variables in glibc) is pointed at a fopencookie stream whose callbacks call the exported
 * read/write on the number; the original stream is kept and put back, flushed through the cookie stream, when a kernel
 * fd is duplicated onto the number again (bash restoring its saved fd).
 *
 * What the kernel would do is kept: bytes still buffered in the old output stream go out through the new one (the
 * kernel stream would flush them to whatever the number holds by then), input the old stdin had read ahead is read
 * first, the old stream's buffering mode (unbuffered stderr, a line-buffered terminal stdout) carries over, and
 * fileno() answers the number. Streams a program copied before the dup2 (`FILE *out = stdout;`, C++ std::cout) still
 * point at libc's stream: docs/compatibility.md. */
#include "common.h"
#include "fdtab.h"
#include "stdstreams.h"

#include <pthread.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>

struct std_cookie {
    int fd;
    char *ahead; /* stdin only: bytes the old stream had buffered and not yet handed out */
    size_t ahead_len, ahead_off;
};

static FILE *saved[3];              /* libc's original stream while ours is installed */
static FILE *ours[3];               /* the cookie stream installed, or NULL */
static struct std_cookie cookies[3];
int ut_std_streams_taken;
static pthread_mutex_t std_lock = PTHREAD_MUTEX_INITIALIZER;

static FILE **std_var(int fd) { return fd == 0 ? &stdin : fd == 1 ? &stdout : &stderr; }

static ssize_t std_read(void *c, char *buf, size_t n)
{
    struct std_cookie *k = c;
    if (k->ahead_off < k->ahead_len) {
        size_t m = k->ahead_len - k->ahead_off;
        if (m > n) m = n;
        memcpy(buf, k->ahead + k->ahead_off, m);
        k->ahead_off += m;
        return (ssize_t)m;
    }
    return read(k->fd, buf, n);
}

static ssize_t std_write(void *c, const char *buf, size_t n)
{
    struct std_cookie *k = c;
    size_t done = 0;
    while (done < n) { /* like libc's file write: go on after a short count, stop at an error */
        ssize_t r = write(k->fd, buf + done, n - done);
        if (r <= 0) break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int std_seek(void *c, off64_t *off, int whence)
{
    struct std_cookie *k = c;
    off64_t r = lseek64(k->fd, *off, whence); /* ESPIPE on a socket, through our lseek */
    if (r < 0) return -1;
    *off = r;
    return 0;
}

/* fclose(stdout) by the program closes the number, as libc's stream would; the stream is then gone. */
static int std_close(void *c)
{
    struct std_cookie *k = c;
    if (k->fd < 0) return 0; /* taken down by ut_std_stream_detach: the number is not ours to close */
    int i = (int)(k - cookies);
    free(k->ahead);
    k->ahead = NULL;
    k->ahead_len = k->ahead_off = 0;
    ours[i] = NULL;
    saved[i] = NULL;
    return close(k->fd);
}

void ut_std_stream_attach(int fd)
{
    if (fd < 0 || fd > 2 || !ut_owned(fd)) return;
    pthread_mutex_lock(&std_lock);
    if (ours[fd]) { /* already ours: the callbacks write to the number, whatever it holds now */
        pthread_mutex_unlock(&std_lock);
        return;
    }
    FILE *old = *std_var(fd);
    struct std_cookie *k = &cookies[fd];
    k->fd = fd;
    cookie_io_functions_t io = { .read = std_read, .write = std_write, .seek = std_seek, .close = std_close };
    FILE *f = fopencookie(k, fd == 0 ? "r" : "w", io);
    if (!f) {
        pthread_mutex_unlock(&std_lock);
        return; /* out of memory: the stream stays libc's (documented limitation) */
    }
    f->_fileno = fd;
    if (old) {
        if (fd == 0) {
            size_t n = old->_IO_read_ptr && old->_IO_read_end > old->_IO_read_ptr ? (size_t)(old->_IO_read_end - old->_IO_read_ptr) : 0;
            if (n > 0 && (k->ahead = malloc(n))) {
                memcpy(k->ahead, old->_IO_read_ptr, n);
                k->ahead_len = n;
                k->ahead_off = 0;
            }
        } else {
            if (__flbf(old)) setvbuf(f, NULL, _IOLBF, BUFSIZ);
            else if (old->_flags & 2 /* _IO_UNBUFFERED */) setvbuf(f, NULL, _IONBF, 0);
            size_t n = __fpending(old);
            if (n > 0) fwrite(old->_IO_write_base, 1, n, f);
        }
        __fpurge(old);
    } else if (fd == 2) {
        setvbuf(f, NULL, _IONBF, 0);
    }
    saved[fd] = old;
    ours[fd] = f;
    ut_std_streams_taken = 1;
    *std_var(fd) = f;
    pthread_mutex_unlock(&std_lock);
}

void ut_std_stream_detach(int fd)
{
    if (fd < 0 || fd > 2) return;
    pthread_mutex_lock(&std_lock);
    FILE *f = ours[fd];
    if (f && *std_var(fd) == f) {
        fflush(f); /* pending output goes to the number before it changes hands */
        struct std_cookie *k = &cookies[fd];
        *std_var(fd) = saved[fd];
        ours[fd] = NULL;
        saved[fd] = NULL;
        free(k->ahead);
        k->ahead = NULL;
        k->ahead_len = k->ahead_off = 0;
        /* Free the stream without closing the number; input it had read ahead is dropped with it, as libc drops a
           stream's buffer. */
        k->fd = -1;
        fclose(f);
    }
    pthread_mutex_unlock(&std_lock);
}
