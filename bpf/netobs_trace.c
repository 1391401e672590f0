/* netobs kernel tracing: where a point's bytes are copied, per process.
 *
 * Loaded by netobs/tracer.py with BCC. Which probe produces each figure is chosen by feature
 * detection in Python and passed here as cflags; every section below is compiled only when
 * its NETOBS_* macro is defined:
 *
 *   send path (tcp_sendmsg calls, bytes)     NETOBS_SEND_FEXIT | NETOBS_SEND_KPROBE |
 *                                            NETOBS_SEND_TP (sock:sock_send_length) |
 *                                            NETOBS_SEND_SYSCALL (sendto/sendmsg exits)
 *   MSG_ZEROCOPY sends (calls, bytes)        NETOBS_ZC_SYSCALL (sendmsg flags; the kernel passes
 *                                            flags 0 to sock_send_length, so it cannot serve)
 *   receive copy (skb_copy_datagram_iter)    NETOBS_RX_FENTRY + NETOBS_RX_FUNC | NETOBS_RX_KPROBE |
 *                                            NETOBS_RX_TP (skb:skb_copy_datagram_iovec)
 *   error-queue reads                        NETOBS_ERRQ_TP (sock:sock_recv_length) |
 *                                            NETOBS_ERRQ_SYSCALL (recvmsg flags)
 *   zero-copy completion callbacks           NETOBS_ZCCB_FENTRY + NETOBS_ZCCB_FUNC | NETOBS_ZCCB_KPROBE
 *   deferred copies (skb_copy_ubufs)         NETOBS_ZCDEF_FENTRY + NETOBS_ZCDEF_FUNC | NETOBS_ZCDEF_KPROBE
 *   send/recv syscall time                   NETOBS_SYS
 *   off-CPU time                             NETOBS_OFFCPU (sched:sched_switch)
 *   socket-memory pressure                   NETOBS_MEM_TP (sock:sock_exceed_buf_limit)
 *   children of tracked processes            NETOBS_INHERIT (sched:sched_process_fork)
 *
 * Only tracepoint arguments and scalar function arguments/return values are read: the kernel
 * headers BCC compiles against may not match the running kernel, so no struct field is read.
 *
 * Hot path: every program first looks up the current tgid in netobs_tgids (empty between
 * points) and returns at once for any other process; counters are per-CPU arrays.
 * Program names start with "netobs_" so that `bpftool prog show` identifies them (the
 * fentry/fexit ones are named by BCC after the kernel function).
 */
#include <uapi/linux/ptrace.h>
#include "netobs_trace.h"

/* tgid -> role, for the current point's processes and their descendants. */
BPF_HASH(netobs_tgids, u32, u32, NETOBS_MAX_PROCS);
BPF_PERCPU_ARRAY(netobs_counts, u64, NETOBS_NCOUNTERS);

#if defined(NETOBS_SEND_SYSCALL) || defined(NETOBS_ZC_SYSCALL) || \
    defined(NETOBS_ERRQ_SYSCALL) || defined(NETOBS_SYS) || defined(NETOBS_OFFCPU)
#define NETOBS_SYSCALLS 1
/* tid -> the send/recv syscall it is in. */
BPF_HASH(netobs_sysc, u32, struct netobs_sys_start, NETOBS_MAX_THREADS);
#endif
#ifdef NETOBS_SYS
BPF_PERCPU_ARRAY(netobs_hist, u64, NETOBS_NHIST);
#endif
#ifdef NETOBS_OFFCPU
/* tid -> role of the point's threads that make socket syscalls (their off-CPU time counts;
 * a perf wrapper or a main thread waiting for its workers does not). */
BPF_HASH(netobs_nettid, u32, u32, NETOBS_MAX_THREADS);
/* tid -> when that thread went off-CPU. */
BPF_HASH(netobs_offts, u32, struct netobs_offcpu_start, NETOBS_MAX_THREADS);
#endif

static __always_inline void netobs_add(u32 role, u32 fig, u64 v)
{
    u32 idx = role * NETOBS_NFIG + fig;
    if (idx >= NETOBS_LOST_SLOT)
        return;
    u64 *p = netobs_counts.lookup(&idx);
    if (p)
        *p += v;
}

static __always_inline void netobs_lost(void)
{
    u32 idx = NETOBS_LOST_SLOT;
    u64 *p = netobs_counts.lookup(&idx);
    if (p)
        *p += 1;
}

/* The role of the current process, or NULL when it is not one of the point's. */
static __always_inline u32 *netobs_role(void)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return netobs_tgids.lookup(&tgid);
}

/* ---- children inherit their parent's role ---------------------------------------------- */
#ifdef NETOBS_INHERIT
int netobs_fork(struct tracepoint__sched__sched_process_fork *args)
{
    u32 *role = netobs_role();
    if (!role)
        return 0;
    u32 child = args->child_pid;
    u32 r = *role;
    if (netobs_tgids.update(&child, &r))
        netobs_lost();
    return 0;
}
#endif

/* ---- send path: tcp_sendmsg ------------------------------------------------------------- */
static __always_inline void netobs_send_done(u32 role, long ret)
{
    netobs_add(role, NETOBS_FIG_SENDMSG_CALLS, 1);
    if (ret > 0)
        netobs_add(role, NETOBS_FIG_SENDMSG_BYTES, ret);
}

#ifdef NETOBS_SEND_FEXIT
KRETFUNC_PROBE(tcp_sendmsg, void *sk, void *msg, size_t size, int ret)
{
    u32 *role = netobs_role();
    if (role)
        netobs_send_done(*role, ret);
    return 0;
}
#endif

#ifdef NETOBS_SEND_KPROBE
int netobs_send_kr(struct pt_regs *ctx)
{
    u32 *role = netobs_role();
    if (role)
        netobs_send_done(*role, (int)PT_REGS_RC(ctx));
    return 0;
}
#endif

#ifdef NETOBS_SEND_TP
/* Fires after every socket sendmsg with its return value; TCP's is tcp_sendmsg's. */
int netobs_send_tp(struct tracepoint__sock__sock_send_length *args)
{
    if (args->protocol != NETOBS_IPPROTO_TCP)
        return 0;
    u32 *role = netobs_role();
    if (role)
        netobs_send_done(*role, args->ret);
    return 0;
}
#endif

/* ---- receive copy: skb_copy_datagram_iter ---------------------------------------------- */
static __always_inline void netobs_rx_copy(int len)
{
    u32 *role = netobs_role();
    if (!role)
        return;
    netobs_add(*role, NETOBS_FIG_RX_COPY_CALLS, 1);
    if (len > 0)
        netobs_add(*role, NETOBS_FIG_RX_COPY_BYTES, len);
}

#ifdef NETOBS_RX_FENTRY
#define NETOBS_KFUNC(fn, ...) KFUNC_PROBE(fn, ##__VA_ARGS__)
NETOBS_KFUNC(NETOBS_RX_FUNC, void *skb, int offset, void *to, int len)
{
    netobs_rx_copy(len);
    return 0;
}
#endif

#ifdef NETOBS_RX_KPROBE
/* skb_copy_datagram_iter(skb, offset, to, len), formerly skb_copy_datagram_iovec: same len. */
int netobs_rx_kp(struct pt_regs *ctx)
{
    netobs_rx_copy((int)PT_REGS_PARM4(ctx));
    return 0;
}
#endif

#ifdef NETOBS_RX_TP
int netobs_rx_tp(struct tracepoint__skb__skb_copy_datagram_iovec *args)
{
    netobs_rx_copy(args->len);
    return 0;
}
#endif

/* ---- zero-copy completions: error-queue reads, callbacks, deferred copies ---------------- */
#ifdef NETOBS_ERRQ_TP
int netobs_errq_tp(struct tracepoint__sock__sock_recv_length *args)
{
    if (!(args->flags & NETOBS_MSG_ERRQUEUE) || args->ret < 0)
        return 0;
    u32 *role = netobs_role();
    if (role)
        netobs_add(*role, NETOBS_FIG_ERRQUEUE_READS, 1);
    return 0;
}
#endif

#ifdef NETOBS_ZCCB_FENTRY
#ifndef NETOBS_KFUNC
#define NETOBS_KFUNC(fn, ...) KFUNC_PROBE(fn, ##__VA_ARGS__)
#endif
NETOBS_KFUNC(NETOBS_ZCCB_FUNC)
{
    u32 *role = netobs_role();
    if (role)
        netobs_add(*role, NETOBS_FIG_ZC_CALLBACKS, 1);
    return 0;
}
#endif

#ifdef NETOBS_ZCCB_KPROBE
int netobs_zccb_kp(struct pt_regs *ctx)
{
    u32 *role = netobs_role();
    if (role)
        netobs_add(*role, NETOBS_FIG_ZC_CALLBACKS, 1);
    return 0;
}
#endif

#ifdef NETOBS_ZCDEF_FENTRY
#ifndef NETOBS_KFUNC
#define NETOBS_KFUNC(fn, ...) KFUNC_PROBE(fn, ##__VA_ARGS__)
#endif
NETOBS_KFUNC(NETOBS_ZCDEF_FUNC)
{
    u32 *role = netobs_role();
    if (role)
        netobs_add(*role, NETOBS_FIG_ZC_DEFERRED_COPIES, 1);
    return 0;
}
#endif

#ifdef NETOBS_ZCDEF_KPROBE
int netobs_zcdef_kp(struct pt_regs *ctx)
{
    u32 *role = netobs_role();
    if (role)
        netobs_add(*role, NETOBS_FIG_ZC_DEFERRED_COPIES, 1);
    return 0;
}
#endif

/* ---- send/recv syscalls: time, and the flags they carry --------------------------------- */
#ifdef NETOBS_SYSCALLS
/* Per-thread entries stay in netobs_sysc between syscalls and are rewritten in place (a
 * hash insert/delete per syscall costs several times more); `active` marks one in flight.
 * They are removed when the thread exits (sched_switch) and at every start_point. */
static __always_inline int netobs_sys_enter(u32 kind, u64 flags)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    u32 *role = netobs_tgids.lookup(&tgid);
    if (!role)
        return 0;
    struct netobs_sys_start *s = netobs_sysc.lookup(&tid);
    if (s) {
        s->ts = bpf_ktime_get_ns();
        s->role = *role;
        s->kind = kind;
        s->flags = (u32)flags;
        s->active = 1;
        return 0;
    }
    struct netobs_sys_start n = {};
    n.ts = bpf_ktime_get_ns();
    n.role = *role;
    n.kind = kind;
    n.flags = (u32)flags;
    n.active = 1;
    if (netobs_sysc.update(&tid, &n))
        netobs_lost();
#ifdef NETOBS_OFFCPU
    u32 r = *role;  /* first socket syscall of this thread: its off-CPU time counts from now */
    if (netobs_nettid.update(&tid, &r))
        netobs_lost();
#endif
    return 0;
}

static __always_inline int netobs_sys_exit(long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct netobs_sys_start *s = netobs_sysc.lookup(&tid);
    if (!s || !s->active)
        return 0;
    s->active = 0;
    u32 role = s->role;
    u32 kind = s->kind;
    u32 flags = s->flags;
#ifdef NETOBS_SYS
    u64 delta = bpf_ktime_get_ns() - s->ts;
#endif
    if (kind == NETOBS_KIND_SEND) {
#ifdef NETOBS_SYS
        netobs_add(role, NETOBS_FIG_SEND_SYSCALLS, 1);
        netobs_add(role, NETOBS_FIG_SEND_SYSCALL_NS, delta);
#endif
#ifdef NETOBS_SEND_SYSCALL
        netobs_send_done(role, ret);
#endif
#ifdef NETOBS_ZC_SYSCALL
        if ((flags & NETOBS_MSG_ZEROCOPY) && ret > 0) {
            netobs_add(role, NETOBS_FIG_ZC_SENDS, 1);
            netobs_add(role, NETOBS_FIG_ZC_SEND_BYTES, ret);
        }
#endif
    } else {
#ifdef NETOBS_SYS
        netobs_add(role, NETOBS_FIG_RECV_SYSCALLS, 1);
        netobs_add(role, NETOBS_FIG_RECV_SYSCALL_NS, delta);
#endif
#ifdef NETOBS_ERRQ_SYSCALL
        if ((flags & NETOBS_MSG_ERRQUEUE) && ret >= 0)
            netobs_add(role, NETOBS_FIG_ERRQUEUE_READS, 1);
#endif
    }
#ifdef NETOBS_SYS
    u32 slot = bpf_log2l(delta);
    if (slot >= NETOBS_HIST_SLOTS)
        slot = NETOBS_HIST_SLOTS - 1;
    u32 idx = (role * 2 + kind) * NETOBS_HIST_SLOTS + slot;
    if (idx < NETOBS_NHIST) {
        u64 *p = netobs_hist.lookup(&idx);
        if (p)
            *p += 1;
    }
#endif
    return 0;
}

int netobs_sendto_in(struct tracepoint__syscalls__sys_enter_sendto *args)
{
    return netobs_sys_enter(NETOBS_KIND_SEND, args->flags);
}
int netobs_sendmsg_in(struct tracepoint__syscalls__sys_enter_sendmsg *args)
{
    return netobs_sys_enter(NETOBS_KIND_SEND, args->flags);
}
int netobs_recvfrom_in(struct tracepoint__syscalls__sys_enter_recvfrom *args)
{
    return netobs_sys_enter(NETOBS_KIND_RECV, args->flags);
}
int netobs_recvmsg_in(struct tracepoint__syscalls__sys_enter_recvmsg *args)
{
    return netobs_sys_enter(NETOBS_KIND_RECV, args->flags);
}
/* One exit program serves all four syscalls: sys_exit_* share the (nr, ret) layout. */
int netobs_sys_out(struct tracepoint__syscalls__sys_exit_sendto *args)
{
    return netobs_sys_exit(args->ret);
}
#endif /* NETOBS_SYSCALLS */

/* ---- off-CPU time ----------------------------------------------------------------------- */
#ifdef NETOBS_OFFCPU
int netobs_offcpu(struct tracepoint__sched__sched_switch *args)
{
    u64 now = 0;
    u32 prev = args->prev_pid;
    u32 *prole = netobs_nettid.lookup(&prev);
    if (prole) {
        if (args->prev_state & NETOBS_TASK_EXITING) {
            netobs_nettid.delete(&prev);
            netobs_sysc.delete(&prev);
        } else {
            struct netobs_offcpu_start o = {};
            now = bpf_ktime_get_ns();
            o.ts = now;
            o.role = *prole;
            if (netobs_offts.update(&prev, &o))
                netobs_lost();
        }
    }
    u32 next = args->next_pid;
    struct netobs_offcpu_start *o = netobs_offts.lookup(&next);
    if (o) {
        if (!now)
            now = bpf_ktime_get_ns();
        u32 role = o->role;
        u64 delta = now - o->ts;
        netobs_offts.delete(&next);
        netobs_add(role, NETOBS_FIG_OFFCPU_SWITCHES, 1);
        netobs_add(role, NETOBS_FIG_OFFCPU_NS, delta);
    }
    return 0;
}
#endif

/* ---- socket-memory pressure ------------------------------------------------------------- */
#ifdef NETOBS_MEM_TP
int netobs_mem_tp(struct tracepoint__sock__sock_exceed_buf_limit *args)
{
    u32 *role = netobs_role();
    if (role)
        netobs_add(*role, NETOBS_FIG_MEM_PRESSURE_EVENTS, 1);
    return 0;
}
#endif
