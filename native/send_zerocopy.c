/* MSG_ZEROCOPY: SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY) over the fields' iovec; completions read
 * from the socket's error queue (MSG_ERRQUEUE).
 *
 * Bookkeeping follows the kernel's contract (Documentation/networking/msg_zerocopy.rst): every
 * sendmsg(MSG_ZEROCOPY) that moves bytes takes the next 32-bit id of the socket; a completion
 * reports an id range [ee_info, ee_data], flagged SO_EE_CODE_ZEROCOPY_COPIED when the kernel
 * copied the pages anyway. Each thread sends from a pool of message buffers; a buffer is
 * reused (restamped) only after every id of its last send completed. ENOBUFS (no optmem for
 * the notification) is answered by reading completions and retrying.
 */
#include "nob_internal.h"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

struct zc_slot {
    uint64_t lo, hi, done; /* completion ids [lo, hi] of this buffer's last send */
    int pending;
};

struct zc_state {
    struct zc_slot *slots;     /* one per pool buffer */
    uint64_t oldest;           /* smallest seq whose slot may still be pending */
    uint64_t next_id;          /* id the kernel gives our next MSG_ZEROCOPY send */
    double enobufs_since;      /* the first ENOBUFS since bytes last moved */
    struct iovec iov[NOB_MAX_FIELDS];
    int n;
    uint64_t first_id;         /* the id of this message's first send */
};

static int zc_probe(struct nob_error *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return nob_fail(err, errno, "socket", NULL);
    int r = setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one));
    int e = errno;
    close(fd);
    if (r)
        return nob_fail(err, e, "setsockopt(SO_ZEROCOPY)", NULL);
    return 0;
}

static int zc_setup(struct nob_thread *t, struct nob_error *err)
{
    struct zc_state *s = calloc(1, sizeof(*s));
    if (!s || !(s->slots = calloc((size_t)t->npool, sizeof(*s->slots)))) {
        free(s);
        return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
    }
    t->priv = s;
    return 0;
}

static void zc_teardown(struct nob_thread *t)
{
    struct zc_state *s = t->priv;
    if (s)
        free(s->slots);
    free(s);
    t->priv = NULL;
}

static int zc_sockopt(struct nob_thread *t, struct nob_error *err)
{
    int one = 1;
    if (setsockopt(t->fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
        return nob_fail(err, errno, "setsockopt(SO_ZEROCOPY)", NULL);
    return 0;
}

/* Apply a completion id range to the buffer pool (ids unwrapped to 64 bits). */
static void zc_apply(struct nob_thread *t, uint32_t lo32, uint32_t hi32, int copied)
{
    struct zc_state *s = t->priv;
    uint64_t n = (uint64_t)(uint32_t)(hi32 - lo32) + 1;
    uint64_t lo = s->next_id - (uint32_t)((uint32_t)s->next_id - lo32);
    uint64_t hi = lo + n - 1;
    t->ctr[NOB_CTR_ZEROCOPY_COMPLETIONS] += n;
    if (copied)
        t->ctr[NOB_CTR_ZEROCOPY_COPIED] += n;
    for (uint64_t q = s->oldest; q < t->seq + 1 && q - s->oldest < (uint64_t)t->npool; q++) {
        struct zc_slot *sl = &s->slots[q % (uint64_t)t->npool];
        if (!sl->pending)
            continue;
        if (sl->lo > hi)
            break;
        uint64_t a = sl->lo > lo ? sl->lo : lo, b = sl->hi < hi ? sl->hi : hi;
        if (a <= b) {
            sl->done += b - a + 1;
            if (sl->hi != UINT64_MAX && sl->done >= sl->hi - sl->lo + 1)
                sl->pending = 0;
        }
    }
    while (s->oldest < t->seq && !s->slots[s->oldest % (uint64_t)t->npool].pending)
        s->oldest++;
}

/* Read one error-queue message (MSG_DONTWAIT). 1: a notification (or another queued error)
 * was read, 0: the queue was empty (counted: a wasted syscall), -errno. */
static int zc_read_one(struct nob_thread *t)
{
    for (;;) {
        char control[256];
        struct msghdr mh = {0};
        mh.msg_control = control;
        mh.msg_controllen = sizeof(control);
        ssize_t r = recvmsg(t->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->ctr[NOB_CTR_ZEROCOPY_EMPTY_READS]++;
                return 0;
            }
            return -errno;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
                continue;
            struct sock_extended_err serr;
            memcpy(&serr, CMSG_DATA(cm), sizeof(serr));
            if (serr.ee_origin != SO_EE_ORIGIN_ZEROCOPY || serr.ee_errno != 0)
                continue;
            t->ctr[NOB_CTR_ZEROCOPY_NOTIFICATIONS]++;
            zc_apply(t, serr.ee_info, serr.ee_data, (serr.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0);
        }
        return 1;
    }
}

/* reap: wait up to wait_ms for the error queue to hold something (poll reports POLLERR when
 * it does), then read one message. Reads happen only when the kernel signalled a completion,
 * and only when the pool needs a buffer back (or at the end): the kernel merges adjacent
 * completion ranges while they wait in the queue, so one read frees many buffers.
 * 1: read one, 0: nothing came, -errno. */
static int zc_reap(struct nob_thread *t, int wait_ms)
{
    struct pollfd p = {t->fd, 0, 0}; /* POLLERR is always reported */
    t->ctr[NOB_CTR_ZEROCOPY_POLLS]++;
    int n = poll(&p, 1, wait_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        return 0;
    if (!(p.revents & POLLERR)) {
        nob_sleep_s(0.001); /* POLLHUP without errors: do not spin */
        return 0;
    }
    int r = zc_read_one(t);
    if (r == 0) { /* POLLERR with an empty queue: a socket error */
        int soerr = 0;
        socklen_t el = sizeof(soerr);
        getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
        if (soerr)
            return -soerr;
    }
    return r;
}

static uint64_t zc_outstanding(const struct nob_thread *t)
{
    uint64_t sends = t->ctr[NOB_CTR_ZEROCOPY_SENDS], done = t->ctr[NOB_CTR_ZEROCOPY_COMPLETIONS];
    return sends > done ? sends - done : 0;
}

/* The buffer of message t->seq may still be in the kernel's hands: read completions until it
 * is not (only now, and only when poll says one is queued); then restamp it. */
static int zc_prepare(struct nob_thread *t, struct msgbuf *m)
{
    struct zc_state *s = t->priv;
    struct zc_slot *slot = &s->slots[t->seq % (uint64_t)t->npool];
    if (!t->cfg->unsafe_reuse) {
        if (slot->pending)
            t->ctr[NOB_CTR_ZEROCOPY_POOL_WAITS]++;
        while (slot->pending) {
            int d = zc_reap(t, IO_TIMEOUT_MS);
            if (d < 0) {
                t->what = "recvmsg(MSG_ERRQUEUE)";
                return d;
            }
            if (nob_aborted(t))
                return -ECANCELED;
        }
    }
    nob_restamp(t, m);
    s->n = msgbuf_iov(m, s->iov);
    /* open-ended until we know how many sends this message took */
    s->first_id = s->next_id;
    slot->lo = s->first_id;
    slot->hi = UINT64_MAX;
    slot->done = 0;
    slot->pending = 1;
    return 0;
}

static void zc_moved(struct nob_thread *t, ssize_t r)
{
    struct zc_state *s = t->priv;
    s->enobufs_since = 0;
    t->ctr[NOB_CTR_ZEROCOPY_SENDS]++;
    s->next_id++;
}

/* ENOBUFS: optmem for notifications exhausted: read completions, then retry */
static int zc_refused(struct nob_thread *t, int e)
{
    struct zc_state *s = t->priv;
    if (e != ENOBUFS)
        return e;
    t->ctr[NOB_CTR_ZEROCOPY_ENOBUFS]++;
    double now = now_s();
    if (s->enobufs_since == 0)
        s->enobufs_since = now;
    else if (zc_outstanding(t) == 0 && now - s->enobufs_since > 1.0)
        return ENOBUFS;
    int d = zc_reap(t, 10);
    if (d < 0)
        return -d;
    if (nob_aborted(t))
        return ECANCELED;
    return 0;
}

static const struct nob_sendmsg_hooks zc_hooks = {zc_moved, zc_refused};

static int zc_step(struct nob_thread *t, struct msgbuf *m)
{
    struct zc_state *s = t->priv;
    struct zc_slot *slot = &s->slots[t->seq % (uint64_t)t->npool];
    s->enobufs_since = 0;
    int rc = nob_sendmsg_all(t, s->iov, s->n, MSG_ZEROCOPY, &zc_hooks);
    slot->hi = s->next_id - 1;
    if (s->next_id == s->first_id || slot->done >= slot->hi - slot->lo + 1)
        slot->pending = 0;
    if (rc)
        t->what = "sendmsg";
    return rc;
}

/* the end: wait (bounded) for every outstanding completion before the buffers may go */
static int zc_drain(struct nob_thread *t, int aborted)
{
    double deadline = now_s() + (aborted ? ZC_ABORT_WAIT_S : ZC_FINAL_WAIT_S);
    while (zc_outstanding(t) > 0 && now_s() < deadline)
        if (zc_reap(t, 20) < 0)
            break;
    return 0;
}

const struct nob_sender nob_zero_copy = {
    .groups = 0,
    .probe = zc_probe,
    .pool = nob_zc_pool_auto,
    .setup = zc_setup,
    .sockopt = zc_sockopt,
    .prepare = zc_prepare,
    .step = zc_step,
    .reap = zc_reap,
    .drain = zc_drain,
    .teardown = zc_teardown,
};
