/* The io_uring senders: the fields' iovec as IORING_OP_SENDMSG (io_uring: the copy baseline
 * of io_uring_zc) or IORING_OP_SENDMSG_ZC (io_uring_zc).
 *
 * Batches of up to uring_depth linked sends (a chain keeps their order on the stream); the
 * next batch is submitted when every send of the last one has completed. A buffer is restamped
 * only when its send completed and, for io_uring_zc, its notification CQE
 * (IORING_CQE_F_NOTIF) came: until then the kernel may still read it. Messages complete in
 * reap: the latency of one is from its submission to its CQE.
 */
#include "nob_internal.h"

#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

struct ur_slot {
    int sending, notif; /* this buffer's send is in flight / its notification is still to come */
    uint64_t t_submit;
    struct msghdr mh;
    struct iovec iov[NOB_MAX_FIELDS];
};

struct ur_state {
    struct io_uring ring;
    int has_ring;
    int zc;               /* SENDMSG_ZC */
    struct ur_slot *slots; /* one per pool buffer */
};

static int ring_init(struct io_uring *ring, int depth, int npool, int zc, struct nob_error *err)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    unsigned cq = 2u * (unsigned)(npool + depth);
    p.cq_entries = cq < 64 ? 64 : cq;
    int r = io_uring_queue_init_params((unsigned)depth, ring, &p);
    if (r < 0)
        return nob_fail(err, -r, "io_uring_queue_init", "kernel.io_uring_disabled, or a kernel without io_uring");
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    int op = zc ? IORING_OP_SENDMSG_ZC : IORING_OP_SENDMSG;
    int ok = probe && io_uring_opcode_supported(probe, op);
    if (probe)
        io_uring_free_probe(probe);
    if (!ok) {
        io_uring_queue_exit(ring);
        return nob_fail(err, EOPNOTSUPP, "io_uring probe", "%s", zc ? "IORING_OP_SENDMSG_ZC (Linux 6.1+)"
                                                                   : "IORING_OP_SENDMSG (Linux 5.3+)");
    }
    return 0;
}

static int probe_with(int zc, struct nob_error *err)
{
    struct io_uring ring;
    int rc = ring_init(&ring, 1, 1, zc, err);
    if (rc)
        return rc;
    io_uring_queue_exit(&ring);
    return 0;
}

static int uring_probe(struct nob_error *err) { return probe_with(0, err); }
static int uring_zc_probe(struct nob_error *err) { return probe_with(1, err); }

/* io_uring: a buffer is free again once its send completed */
static int uring_pool(const struct nob_client_config *cfg) { return cfg->uring_depth; }

/* io_uring_zc: the zero-copy pool, at least two batches */
static int uring_zc_pool(const struct nob_client_config *cfg)
{
    int n = nob_zc_pool_auto(cfg);
    if (cfg->zc_pool == 0 && n < 2 * cfg->uring_depth)
        n = 2 * cfg->uring_depth;
    return n;
}

static int setup_with(struct nob_thread *t, int zc, struct nob_error *err)
{
    struct ur_state *s = calloc(1, sizeof(*s));
    if (!s || !(s->slots = calloc((size_t)t->npool, sizeof(*s->slots)))) {
        free(s);
        return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
    }
    s->zc = zc;
    t->priv = s;
    int rc = ring_init(&s->ring, t->cfg->uring_depth, t->npool, zc, err);
    if (rc)
        return rc;
    s->has_ring = 1;
    return 0;
}

static int uring_setup(struct nob_thread *t, struct nob_error *err) { return setup_with(t, 0, err); }
static int uring_zc_setup(struct nob_thread *t, struct nob_error *err) { return setup_with(t, 1, err); }

static void uring_teardown(struct nob_thread *t)
{
    struct ur_state *s = t->priv;
    if (!s)
        return;
    if (s->has_ring)
        io_uring_queue_exit(&s->ring);
    free(s->slots);
    free(s);
    t->priv = NULL;
}

/* Reap every CQE there is (waiting up to wait_ms for the first). 0 or -errno (a failed send). */
static int uring_reap(struct nob_thread *t, int wait_ms)
{
    struct ur_state *s = t->priv;
    const struct nob_client_config *cfg = t->cfg;
    const uint64_t P = (uint64_t)t->npool;
    struct io_uring_cqe *cqe;
    int r;
    if (wait_ms > 0) {
        struct __kernel_timespec ts = {wait_ms / 1000, (long long)(wait_ms % 1000) * 1000000};
        t->ctr[NOB_CTR_IO_URING_WAITS]++;
        r = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);
        if (r == -ETIME || r == -EINTR || r == -EAGAIN)
            return 0;
        if (r < 0) {
            t->what = "io_uring_wait_cqe";
            return r;
        }
    }
    int rc = 0;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe) {
        n++;
        uint64_t seq = cqe->user_data;
        if (seq == UINT64_MAX)
            continue; /* the cancel request's own CQE */
        struct ur_slot *sl = &s->slots[seq % P];
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            t->ctr[NOB_CTR_ZEROCOPY_NOTIFICATIONS]++;
            t->ctr[NOB_CTR_ZEROCOPY_COMPLETIONS]++;
            if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
                t->ctr[NOB_CTR_ZEROCOPY_COPIED]++;
            sl->notif = 0;
            continue;
        }
        sl->sending = 0;
        if (t->inflight)
            t->inflight--;
        if (!(cqe->flags & IORING_CQE_F_MORE))
            sl->notif = 0; /* no notification will come for this one */
        if (cqe->res > 0) {
            count_sent(t, cqe->res);
            if (s->zc)
                t->ctr[NOB_CTR_ZEROCOPY_SENDS]++;
        }
        if (cqe->res == (int)cfg->msg_size) {
            nob_message_sent(t, now_ns() - sl->t_submit);
        } else if (rc == 0) {
            int e = cqe->res < 0 ? -cqe->res : EIO; /* short with MSG_WAITALL: the socket broke */
            if ((e == ECANCELED || e == EINTR) && nob_aborted(t))
                e = ECANCELED;
            rc = -e;
            t->what = s->zc ? "io_uring sendmsg_zc" : "io_uring sendmsg";
        }
    }
    io_uring_cq_advance(&s->ring, n);
    return rc;
}

/* With nothing in flight: the next batch, as many linked sends as the depth and the free
 * buffers allow. */
static int uring_step(struct nob_thread *t, struct msgbuf *unused)
{
    struct ur_state *s = t->priv;
    const struct nob_client_config *cfg = t->cfg;
    const uint64_t P = (uint64_t)t->npool;
    if (t->inflight)
        return 0;
    int n = 0;
    struct io_uring_sqe *prev = NULL;
    while (n < cfg->uring_depth && (!cfg->count || t->seq < cfg->count)) {
        struct ur_slot *sl = &s->slots[t->seq % P];
        if (sl->sending || (sl->notif && !cfg->unsafe_reuse)) {
            if (n == 0)
                t->ctr[NOB_CTR_ZEROCOPY_POOL_WAITS]++;
            break;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
        if (!sqe)
            break;
        struct msgbuf *m = &t->pool[t->seq % P];
        nob_restamp(t, m);
        memset(&sl->mh, 0, sizeof(sl->mh));
        sl->mh.msg_iov = sl->iov;
        sl->mh.msg_iovlen = (size_t)msgbuf_iov(m, sl->iov);
        if (s->zc) {
            io_uring_prep_sendmsg_zc(sqe, t->fd, &sl->mh, MSG_NOSIGNAL | MSG_WAITALL);
            sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
        } else {
            io_uring_prep_sendmsg(sqe, t->fd, &sl->mh, MSG_NOSIGNAL | MSG_WAITALL);
        }
        sqe->user_data = t->seq;
        if (prev)
            prev->flags |= IOSQE_IO_LINK;
        prev = sqe;
        sl->sending = 1;
        sl->notif = s->zc;
        sl->t_submit = now_ns();
        t->seq++;
        t->inflight++;
        n++;
    }
    if (n > 0) {
        int r = io_uring_submit(&s->ring);
        t->ctr[NOB_CTR_IO_URING_SUBMITS]++;
        if (r < 0) {
            t->what = "io_uring_submit";
            return r;
        }
    }
    return 0;
}

static uint64_t uring_notifs_pending(const struct nob_thread *t)
{
    const struct ur_state *s = t->priv;
    uint64_t n = 0;
    for (int k = 0; k < t->npool; k++)
        n += s->slots[k].notif != 0;
    return n;
}

static void uring_cancel_all(struct nob_thread *t)
{
    struct ur_state *s = t->priv;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    sqe->user_data = UINT64_MAX; /* its own CQE: ignored by seq (slot of UINT64_MAX % P, not sending) */
    io_uring_submit(&s->ring);
}

/* the end: every send and notification back before the buffers may go (bounded) */
static int uring_drain(struct nob_thread *t, int aborted)
{
    int rc = 0;
    if (aborted && t->inflight)
        uring_cancel_all(t);
    double deadline = now_s() + (aborted ? ZC_ABORT_WAIT_S : ZC_FINAL_WAIT_S);
    while ((t->inflight || uring_notifs_pending(t)) && now_s() < deadline) {
        int r = uring_reap(t, 20);
        if (r < 0 && rc == 0 && !aborted)
            rc = r;
    }
    if (t->inflight && !aborted) { /* sends still blocked (a receiver that stopped reading): cancel them */
        uring_cancel_all(t);
        deadline = now_s() + ZC_ABORT_WAIT_S;
        while (t->inflight && now_s() < deadline)
            uring_reap(t, 20);
    }
    return rc;
}

const struct nob_sender nob_io_uring = {
    .groups = NOB_GROUP_IO_URING,
    .async = 1,
    .probe = uring_probe,
    .pool = uring_pool,
    .setup = uring_setup,
    .step = uring_step,
    .reap = uring_reap,
    .drain = uring_drain,
    .teardown = uring_teardown,
};

const struct nob_sender nob_io_uring_zc = {
    .groups = NOB_GROUP_IO_URING,
    .async = 1,
    .probe = uring_zc_probe,
    .pool = uring_zc_pool,
    .setup = uring_zc_setup,
    .step = uring_step,
    .reap = uring_reap,
    .drain = uring_drain,
    .teardown = uring_teardown,
};
