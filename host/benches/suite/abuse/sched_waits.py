#!/usr/bin/env python3
"""Where tenant A's threads wait for a core during `tenant_abuse`.

Reads `perf script` output of a `perf sched record -g` taken while the
suite ran `--only tenant_abuse` (see BENCHMARKS.md, "Where tenant A waits
under attack"):

    perf sched record -g -o sched.data -- sleep 31   # beside the suite
    perf script -i sched.data --max-stack 16 \
        -F comm,pid,tid,cpu,time,event,trace,ip,sym > sched.txt
    python3 sched_waits.py sched.txt

Watched threads (the ones each of A's commands passes through): the node's
async workers, A's partition thread, the store's writer, and the suite's
runtime workers (A's clients). For every wake-up of one of them, the time
until it ran. For the waits of 1 ms or more: what ran on its CPU and on the
other CPU meanwhile (thread kind, kernel priority: 120 is nice 0, 139 nice
19), and how the thread it replaced left the CPU (its state and the top of
its kernel stack). Attack windows are told apart by the attackers' thread
(`attack`) running within 0.3 s. Also the CPU each kind of thread used, in
cores, alone and under attack.
"""
import collections
import re
import sys

THRESHOLD = 1e-3
HEAD = re.compile(r'^\s*(\S.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$')
FIELD = re.compile(r'(\w+)=(\S+)')


def read(path):
    """Events as [time, cpu, name, fields, kernel stack]; tid -> pid, comm."""
    events, current, pid_of, comm_of = [], None, {}, {}
    for line in open(path, errors='replace'):
        if not line.strip():
            current = None
            continue
        if not line.startswith('\t'):
            m = HEAD.match(line)
            if m:
                comm, pid, tid, cpu, t, name, rest = m.groups()
                pid_of[int(tid)], comm_of[int(tid)] = int(pid), comm
                name = name.split(':')[-1]
                current = None
                if name == 'sched_switch':
                    prev, nxt = rest.split(' ==> ')
                    fields = dict(FIELD.findall(prev))
                    fields.update(('next_' + k.removeprefix('next_'), v) for k, v in FIELD.findall(nxt))
                elif name in ('sched_waking', 'sched_wakeup'):
                    fields = dict(FIELD.findall(rest))
                else:
                    continue
                current = [float(t), int(cpu), name, fields, []]
                events.append(current)
                continue
        if current is not None and len(current[4]) < 16:
            parts = line.split()
            if len(parts) >= 2 and parts[1] != '[unknown]':
                current[4].append(parts[1])
    return events, pid_of, comm_of


def main(path):
    events, pid_of, comm_of = read(path)
    node = next(p for t, p in pid_of.items() if t == p and comm_of[t] == 'aether')
    suite = next(p for t, p in pid_of.items() if t == p and comm_of[t].startswith('suite'))

    def kind(tid, comm):
        if pid_of.get(tid) == node:
            for prefix, name in (('tokio-r', 'node-worker'), ('aether-tenant-a', 'A-lane'),
                                 ('aether-redb', 'writer')):
                if comm.startswith(prefix):
                    return name
            return 'node:' + comm
        return ('suite:' + comm) if pid_of.get(tid) == suite else comm

    watched = {'node-worker', 'A-lane', 'writer', 'suite:tokio-rt-worker'}
    attacking = {int(e[0] * 10) for e in events
                 if e[2] == 'sched_switch' and e[3]['next_comm'] == 'attack'}

    def in_attack(t):
        return any(int(t * 10) + d in attacking for d in range(-3, 4))

    running, segments, woken = {}, collections.defaultdict(list), {}
    waits, long_waits = {False: [], True: []}, []
    for t, cpu, name, f, stack in events:
        if name != 'sched_switch':
            woken[int(f['pid'])] = t
            continue
        if cpu in running:
            tid, comm, prio, since = running[cpu]
            segments[cpu].append((since, t, kind(tid, comm), prio))
        nxt = int(f['next_pid'])
        running[cpu] = (nxt, f['next_comm'], int(f['next_prio']), t)
        if nxt in woken and kind(nxt, f['next_comm']) in watched:
            waited = t - woken[nxt]
            attack = in_attack(t)
            waits[attack].append(waited)
            if waited >= THRESHOLD:
                replaced = (kind(int(f['prev_pid']), f['prev_comm']), int(f['prev_prio']),
                            f['prev_state'])
                long_waits.append((t, waited, kind(nxt, f['next_comm']), cpu, attack,
                                   replaced, ' < '.join(stack[:4])))
        woken.pop(nxt, None)

    def percentile(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float('nan')

    def ran_on(cpu, start, end):
        """CPU time by (kind, priority) on `cpu` within [start, end]."""
        spent = collections.Counter()
        for s0, s1, k, prio in segments[cpu]:
            if s1 > start and s0 < end:
                spent[(k, prio)] += min(s1, end) - max(s0, start)
        return spent

    for attack in (False, True):
        label = 'under attack' if attack else 'alone'
        w = waits[attack]
        mine = [x for x in long_waits if x[4] == attack]
        print(f'== {label}: {len(w)} wake-ups of watched threads, wait p50 '
              f'{percentile(w, 50) * 1e3:.3f} ms, p99 {percentile(w, 99) * 1e3:.3f} ms, '
              f'p99.9 {percentile(w, 99.9) * 1e3:.3f} ms; {len(mine)} waits >= 1 ms')
        print('  waiting:', collections.Counter(x[2] for x in mine).most_common())
        print('  replaced (kind, prio, state):', collections.Counter(x[5] for x in mine).most_common(8))
        for how, n in collections.Counter(x[6] for x in mine).most_common(6):
            print(f'    {n:5d} left via {how}')
        own, other, niced_other = collections.Counter(), collections.Counter(), 0
        for t, waited, _, cpu, *_ in mine:
            own.update(ran_on(cpu, t - waited, t))
            there = ran_on(1 - cpu, t - waited, t)
            other.update(there)
            niced_other += sum(v for (k, p), v in there.items() if p >= 130) > waited / 2
        ms = lambda c: [(k, round(v * 1e3, 1)) for k, v in c.most_common(8)]
        print('  ran on its CPU meanwhile (ms):', ms(own))
        print('  ran on the other CPU meanwhile (ms):', ms(other))
        print(f'  waits while the other CPU ran niced threads over half the wait: {niced_other}')
        cores, seconds = collections.Counter(), collections.Counter()
        for cpu, segs in segments.items():
            for s0, s1, k, prio in segs:
                if in_attack(s0) == attack:
                    cores[(k, prio)] += s1 - s0
        start, end = events[0][0], events[-1][0]
        span = sum(0.1 for b in range(int(start * 10), int(end * 10)) if in_attack(b / 10 + 0.05) == attack)
        print('  cores used:', [(k, round(v / span, 3)) for k, v in cores.most_common(10)])
        print()


if __name__ == '__main__':
    main(sys.argv[1])
