/* The copy senders: the kernel copies every byte from the fields into socket buffers.
 *   two_copy: memcpy the fields into one contiguous buffer, then send() it
 *   one_copy: sendmsg() with an N-entry iovec over the fields
 */
#include "nob_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- two_copy */

struct two_copy {
    uint8_t *contig; /* the serialization buffer */
};

static int two_copy_setup(struct nob_thread *t, struct nob_error *err)
{
    struct two_copy *s = calloc(1, sizeof(*s));
    if (!s || !(s->contig = malloc(t->cfg->msg_size))) {
        free(s);
        return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
    }
    t->priv = s;
    return 0;
}

static void two_copy_teardown(struct nob_thread *t)
{
    struct two_copy *s = t->priv;
    if (s)
        free(s->contig);
    free(s);
    t->priv = NULL;
}

static int two_copy_prepare(struct nob_thread *t, struct msgbuf *m)
{
    struct two_copy *s = t->priv;
    nob_restamp(t, m);
    uint8_t *p = s->contig;
    for (int f = 0; f < m->n; f++) {
        memcpy(p, m->field[f], m->len[f]);
        p += m->len[f];
    }
    return 0;
}

static ssize_t send_from(struct nob_thread *t, const void *src, uint64_t off, uint64_t left)
{
    return send(t->fd, (const uint8_t *)src + off, left, MSG_NOSIGNAL);
}

static int two_copy_step(struct nob_thread *t, struct msgbuf *m)
{
    struct two_copy *s = t->priv;
    int rc = nob_send_all(t, send_from, s->contig, 0, t->cfg->msg_size);
    if (rc)
        t->what = "send";
    return rc;
}

const struct nob_sender nob_two_copy = {
    .extra_msgs = 1,
    .setup = two_copy_setup,
    .prepare = two_copy_prepare,
    .step = two_copy_step,
    .teardown = two_copy_teardown,
};

/* ---------------------------------------------------------------- one_copy */

struct one_copy {
    struct iovec iov[NOB_MAX_FIELDS];
    int n;
};

static int one_copy_setup(struct nob_thread *t, struct nob_error *err)
{
    if (!(t->priv = calloc(1, sizeof(struct one_copy))))
        return nob_fail(err, ENOMEM, "allocate message buffers", NULL);
    return 0;
}

static void one_copy_teardown(struct nob_thread *t)
{
    free(t->priv);
    t->priv = NULL;
}

static int one_copy_prepare(struct nob_thread *t, struct msgbuf *m)
{
    struct one_copy *s = t->priv;
    nob_restamp(t, m);
    s->n = msgbuf_iov(m, s->iov);
    return 0;
}

static int one_copy_step(struct nob_thread *t, struct msgbuf *m)
{
    struct one_copy *s = t->priv;
    int rc = nob_sendmsg_all(t, s->iov, s->n, 0, NULL);
    if (rc)
        t->what = "sendmsg";
    return rc;
}

const struct nob_sender nob_one_copy = {
    .setup = one_copy_setup,
    .prepare = one_copy_prepare,
    .step = one_copy_step,
    .teardown = one_copy_teardown,
};
