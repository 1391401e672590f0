/* netobs's profiler: where a point's threads spend their time on and off the CPU.
 *
 * On-CPU: a perf event program (hardware cycles where the PMU allows, else the cpu-clock
 * software event, attached on every CPU by netobs/profiler.py) counts, for the point's
 * processes only, each (process, kernel stack, user stack) it interrupts. The stack of the
 * interrupted context is what it records: softirq or irq work run while a point's thread is
 * current is charged to that thread (its frames say which, see netobs/costclasses.toml).
 *
 * Off-CPU: at sched:sched_switch the kernel (and user) stack of a point's thread being
 * switched out is kept with the time and whether it was still runnable; when the thread is
 * switched in again, the time off the CPU is added to that stack.
 *
 * Both keys say whether the thread is a working one: a thread that a thread other than its
 * process's main one created while the point ran (netobs_prof_work). In a worker the main
 * (Python) thread starts one thread that runs the C side: it accepts, or starts the sending
 * threads, sleeps out the window and joins them (the harness); the threads *it* creates send
 * or receive. netobs/profiler.py gives the working threads' figures apart.
 *
 * Which processes: netobs_prof_procs, tgid -> role, filled by profiler.py per point, and
 * children of those processes as they fork (sched:sched_process_fork). A process entered
 * with count = 0 (the perf stat that wraps a worker) is followed, not counted.
 * netobs_prof_gen[0] is the current point's generation: 0 between points, nothing recorded.
 * Only BPF helpers and tracepoint arguments are read: no struct fields through headers.
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>
#include "netobs_profile.h"

struct netobs_prof_proc {
    u32 role;
    u32 gen;
    u32 count;          /* 0: a wrapper, followed (its children count) but not counted */
};

struct netobs_on_key {
    u32 tgid;
    u32 role;
    s32 kstack;         /* < 0: no kernel stack (the sample was in user space) */
    s32 ustack;
    u32 work;           /* a working thread (see netobs_prof_work), not the worker's harness */
    u32 pad;
};

struct netobs_off_key {
    u32 tgid;
    u32 role;
    s32 kstack;
    s32 ustack;
    u32 runnable;       /* still runnable when switched out: preempted */
    u32 work;           /* a working thread (see netobs_prof_work) */
};

struct netobs_off_start {
    u64 ts;
    struct netobs_off_key key;
};

struct netobs_off_val {
    u64 ns;
    u64 switches;
};

BPF_ARRAY(netobs_prof_gen, u32, 1);
BPF_HASH(netobs_prof_procs, u32, struct netobs_prof_proc, NETOBS_PROF_PROCS);
BPF_STACK_TRACE(netobs_prof_stacks, NETOBS_PROF_STACKS);
BPF_HASH(netobs_prof_on, struct netobs_on_key, u64, NETOBS_PROF_KEYS);
BPF_HASH(netobs_prof_start, u32, struct netobs_off_start, NETOBS_PROF_THREADS);
BPF_HASH(netobs_prof_off, struct netobs_off_key, struct netobs_off_val, NETOBS_PROF_KEYS);
BPF_PERCPU_ARRAY(netobs_prof_lost, u64, NETOBS_PROF_NLOST);
BPF_HASH(netobs_prof_work, u32, u32, NETOBS_PROF_THREADS);

static __always_inline u32 netobs_prof_is_work(u32 tid)
{
    u32 *w = netobs_prof_work.lookup(&tid);
    return w ? *w : 0;
}

static __always_inline u32 netobs_prof_current_gen(void)
{
    int zero = 0;
    u32 *g = netobs_prof_gen.lookup(&zero);
    return g ? *g : 0;
}

static __always_inline struct netobs_prof_proc *netobs_prof_member(u32 tgid, u32 gen)
{
    struct netobs_prof_proc *p = netobs_prof_procs.lookup(&tgid);
    if (!p || p->gen != gen)
        return 0;
    return p;
}

static __always_inline void netobs_prof_lose(int what)
{
    u64 *n = netobs_prof_lost.lookup(&what);
    if (n)
        (*n)++;
}

int netobs_prof_sample(struct bpf_perf_event_data *ctx)
{
    u32 gen = netobs_prof_current_gen();
    if (!gen)
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    struct netobs_prof_proc *p = netobs_prof_member(tgid, gen);
    if (!p || !p->count)
        return 0;
    struct netobs_on_key key = {};
    key.tgid = tgid;
    key.role = p->role;
    key.work = netobs_prof_is_work((u32)id);
    key.kstack = netobs_prof_stacks.get_stackid(ctx, 0);
    key.ustack = netobs_prof_stacks.get_stackid(ctx, BPF_F_USER_STACK);
    u64 zero = 0;
    u64 *n = netobs_prof_on.lookup_or_try_init(&key, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        netobs_prof_lose(0);
    return 0;
}

int netobs_prof_switch(struct tracepoint__sched__sched_switch *args)
{
    u32 gen = netobs_prof_current_gen();
    if (!gen)
        return 0;
    u64 now = bpf_ktime_get_ns();
    /* the thread going off the CPU is current here */
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct netobs_prof_proc *p = netobs_prof_member(tgid, gen);
    if (p && p->count) {
        u32 tid = args->prev_pid;
        struct netobs_off_start s = {};
        s.ts = now;
        s.key.tgid = tgid;
        s.key.role = p->role;
        s.key.kstack = netobs_prof_stacks.get_stackid(args, 0);
        s.key.ustack = netobs_prof_stacks.get_stackid(args, BPF_F_USER_STACK);
        s.key.runnable = (args->prev_state & NETOBS_PROF_SLEEP_STATES) == 0;
        s.key.work = netobs_prof_is_work(tid);
        if (netobs_prof_start.update(&tid, &s) != 0)
            netobs_prof_lose(1);
    }
    u32 next = args->next_pid;
    struct netobs_off_start *s = netobs_prof_start.lookup(&next);
    if (!s)
        return 0;
    struct netobs_off_key key = s->key;
    u64 delta = now - s->ts;
    netobs_prof_start.delete(&next);
    struct netobs_off_val zero = {};
    struct netobs_off_val *v = netobs_prof_off.lookup_or_try_init(&key, &zero);
    if (v) {
        __sync_fetch_and_add(&v->ns, delta);
        __sync_fetch_and_add(&v->switches, 1);
    } else {
        netobs_prof_lose(1);
    }
    return 0;
}

int netobs_prof_fork(struct tracepoint__sched__sched_process_fork *args)
{
    u32 gen = netobs_prof_current_gen();
    if (!gen)
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    struct netobs_prof_proc *p = netobs_prof_member(id >> 32, gen);
    if (!p)
        return 0;
    u32 child = args->child_pid;
    if ((u32)id != (u32)(id >> 32)) {   /* created by a thread other than the main one: it works */
        u32 one = 1;
        netobs_prof_work.update(&child, &one);
    }
    struct netobs_prof_proc c = {};
    c.role = p->role;
    c.gen = gen;
    c.count = 1;
    netobs_prof_procs.update(&child, &c);
    return 0;
}
