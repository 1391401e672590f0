/* The page-reference senders: the socket takes references to pages instead of copying.
 *   sendfile: the fields written once into a memfd (one region per buffer), sent with
 *             sendfile(): the socket takes references to the file's pages
 *   splice:   vmsplice() the fields into a pipe, splice() the pipe to the socket: the socket
 *             takes references to the fields' own pages
 *
 * Nothing tells when the kernel is done with such a page, so a page is never rewritten in
 * place. Without --verify the bytes never change (every send of a buffer sends the same
 * bytes). With --verify a buffer is restamped per message, and before that its pages are
 * released: sendfile punches a hole in the file (fallocate PUNCH_HOLE: the page cache lets
 * go, in-flight skbs keep the old pages, the rewrite gets new ones), splice drops the fields'
 * pages (MADV_DONTNEED on page-aligned private anonymous memory: the same, for user pages).
 * `unsafe_reuse` (a test's knob) skips that, to show that verify then fails.
 */
#include "nob_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#define PIPE_BYTES (1u << 20)      /* splice: the pipe's size (fs.pipe-max-size's default) */

/* ---------------------------------------------------------------- sendfile */

struct sendfile_state {
    int memfd;        /* the buffers' file */
    uint64_t stride;  /* bytes per buffer region in it (page-rounded) */
    uint64_t base;    /* this message's region */
};

static int sendfile_probe(struct nob_error *err)
{
    int fd = memfd_create("netobs-probe", MFD_CLOEXEC);
    if (fd < 0)
        return nob_fail(err, errno, "memfd_create", NULL);
    int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), e = errno;
    close(fd);
    if (r)
        return nob_fail(err, e, "fallocate(PUNCH_HOLE)", "on a memfd");
    return 0;
}

static int sendfile_setup(struct nob_thread *t, struct nob_error *err)
{
    const struct nob_client_config *cfg = t->cfg;
    struct sendfile_state *s = calloc(1, sizeof(*s));
    if (!s)
        return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
    t->priv = s;
    s->memfd = memfd_create("netobs-sendfile", MFD_CLOEXEC);
    if (s->memfd < 0)
        return nob_fail(err, errno, "memfd_create", NULL);
    s->stride = nob_page_round(cfg->msg_size);
    if (ftruncate(s->memfd, (off_t)(s->stride * (uint64_t)t->npool)) != 0)
        return nob_fail(err, errno, "ftruncate(memfd)", NULL);
    for (int k = 0; k < t->npool; k++) { /* the fields, copied into the file once */
        struct iovec iov[NOB_MAX_FIELDS];
        int n = msgbuf_iov(&t->pool[k], iov);
        ssize_t w = pwritev(s->memfd, iov, n, (off_t)(s->stride * (uint64_t)k));
        if (w != (ssize_t)cfg->msg_size)
            return nob_fail(err, w < 0 ? errno : EIO, "pwritev(memfd)", NULL);
        t->ctr[NOB_CTR_PAGES_FILE_WRITES]++;
    }
    return 0;
}

static void sendfile_teardown(struct nob_thread *t)
{
    struct sendfile_state *s = t->priv;
    if (s && s->memfd >= 0)
        close(s->memfd);
    free(s);
    t->priv = NULL;
}

/* with --verify the new stamp goes into fresh pages of the file */
static int sendfile_prepare(struct nob_thread *t, struct msgbuf *m)
{
    struct sendfile_state *s = t->priv;
    const struct nob_client_config *cfg = t->cfg;
    s->base = s->stride * (t->seq % (uint64_t)t->npool);
    if (!cfg->verify)
        return 0;
    nob_restamp(t, m);
    int rc = 0;
    if (!cfg->unsafe_reuse) {
        if (fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)s->base,
                      (off_t)s->stride) != 0)
            rc = -errno;
        t->ctr[NOB_CTR_PAGES_PAGE_RELEASES]++;
    }
    struct iovec iov[NOB_MAX_FIELDS];
    int n = msgbuf_iov(m, iov);
    ssize_t w = rc ? 0 : pwritev(s->memfd, iov, n, (off_t)s->base);
    if (!rc && w != (ssize_t)cfg->msg_size)
        rc = w < 0 ? -errno : -EIO;
    t->ctr[NOB_CTR_PAGES_FILE_WRITES]++;
    if (rc)
        t->what = "pwritev(memfd)";
    return rc;
}

static ssize_t sendfile_from(struct nob_thread *t, const void *src, uint64_t off, uint64_t left)
{
    const struct sendfile_state *s = src;
    off_t o = (off_t)off;
    return sendfile(t->fd, s->memfd, &o, left);
}

static int sendfile_step(struct nob_thread *t, struct msgbuf *m)
{
    struct sendfile_state *s = t->priv;
    int rc = nob_send_all(t, sendfile_from, s, s->base, t->cfg->msg_size);
    if (rc)
        t->what = "sendfile";
    return rc;
}

const struct nob_sender nob_sendfile = {
    .groups = NOB_GROUP_PAGES,
    .probe = sendfile_probe,
    .setup = sendfile_setup,
    .prepare = sendfile_prepare,
    .step = sendfile_step,
    .teardown = sendfile_teardown,
};

/* ---------------------------------------------------------------- splice */

struct splice_state {
    int pipe_r, pipe_w;
    struct iovec iov[NOB_MAX_FIELDS];
    int n;
};

static int splice_probe(struct nob_error *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return nob_fail(err, errno, "pipe2", NULL);
    static uint8_t byte;
    struct iovec iov = {&byte, 1};
    ssize_t r = vmsplice(p[1], &iov, 1, SPLICE_F_NONBLOCK);
    int e = errno;
    close(p[0]);
    close(p[1]);
    if (r != 1)
        return nob_fail(err, r < 0 ? e : EIO, "vmsplice", NULL);
    return 0;
}

static int splice_setup(struct nob_thread *t, struct nob_error *err)
{
    struct splice_state *s = calloc(1, sizeof(*s));
    if (!s)
        return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
    s->pipe_r = s->pipe_w = -1;
    t->priv = s;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return nob_fail(err, errno, "pipe2", NULL);
    s->pipe_r = p[0];
    s->pipe_w = p[1];
    fcntl(s->pipe_w, F_SETPIPE_SZ, (int)PIPE_BYTES); /* best effort: fs.pipe-max-size */
    return 0;
}

static void splice_teardown(struct nob_thread *t)
{
    struct splice_state *s = t->priv;
    if (s && s->pipe_r >= 0)
        close(s->pipe_r);
    if (s && s->pipe_w >= 0)
        close(s->pipe_w);
    free(s);
    t->priv = NULL;
}

static int splice_prepare(struct nob_thread *t, struct msgbuf *m)
{
    struct splice_state *s = t->priv;
    if (t->cfg->verify && !t->cfg->unsafe_reuse) {
        nob_msgbuf_release_pages(m); /* in-flight skbs may still point at these pages */
        t->ctr[NOB_CTR_PAGES_PAGE_RELEASES]++;
    }
    nob_restamp(t, m);
    s->n = msgbuf_iov(m, s->iov);
    return 0;
}

/* vmsplice the fields into the pipe (page references, as much as it holds), then splice all
 * of it to the socket; until every byte went. If a stop leaves bytes in the pipe, the pipe is
 * closed with the thread; nothing is lost that was counted as sent. */
static int splice_step(struct nob_thread *t, struct msgbuf *m)
{
    struct splice_state *s = t->priv;
    struct iovec *iov = s->iov;
    const int cnt = s->n;
    int idx = 0;
    while (idx < cnt) {
        ssize_t in = vmsplice(s->pipe_w, iov + idx, (unsigned long)(cnt - idx), 0);
        if (in < 0) {
            if (errno == EINTR)
                continue;
            t->what = "splice";
            return -errno;
        }
        t->ctr[NOB_CTR_PAGES_VMSPLICE_CALLS]++;
        idx = iov_advance(iov, idx, cnt, (size_t)in);
        size_t inpipe = (size_t)in;
        while (inpipe > 0) {
            ssize_t r = splice(s->pipe_r, NULL, t->fd, NULL, inpipe, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (r > 0) {
                count_sent(t, r);
                inpipe -= (size_t)r;
                if (inpipe || idx < cnt)
                    t->ctr[NOB_CTR_CALLS_PARTIAL_SENDS]++;
                continue;
            }
            int e = send_failed(t, r);
            if (e == 0)
                continue;
            t->what = "splice";
            return -e;
        }
    }
    return 0;
}

const struct nob_sender nob_splice = {
    .groups = NOB_GROUP_PAGES,
    .paged = 1,
    .probe = splice_probe,
    .setup = splice_setup,
    .prepare = splice_prepare,
    .step = splice_step,
    .teardown = splice_teardown,
};
