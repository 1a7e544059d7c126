#!/usr/bin/env python3
"""sched-idle.py: where a multi-threaded run left cores idle.

    perf record -a -e sched:sched_switch,sched:sched_wakeup -o sched.data -- \\
        build/cumulus --dest=STORE --localdb=DB TREE
    perf script -i sched.data | python3 bench/sched-idle.py [COMM_PREFIX]

Reads the scheduler events of every core and, over the time the threads
whose name starts with COMM_PREFIX (default "cumulus") ran, prints:
  - the core-seconds some core was idle;
  - of which, idle while one of those threads was runnable but queued on
    another core (the scheduler did not move it);
  - and idle while one was queued on that very core (waking it up);
  - wake-up to run latency of those threads: median, 90th, 99th percentile.
"""
import re
import sys

SWITCH = re.compile(
    r"^\s*\S.*?\s+\d+\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_switch: "
    r"prev_comm=(.*) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> "
    r"next_comm=(.*) next_pid=(\d+)")
WAKEUP = re.compile(
    r"^\s*\S.*?\s+\d+\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_wakeup\S*: "
    r"comm=(.*) pid=(\d+) prio=\d+ target_cpu=(\d+)")


def main():
    prefix = sys.argv[1] if len(sys.argv) > 1 else "cumulus"
    ours = set()
    running = {}   # cpu -> pid running (0: idle)
    queued = {}    # pid -> cpu whose run queue holds it
    woken_at = {}  # pid -> time of its wake-up
    latencies = []
    idle = idle_other = idle_here = 0.0
    first = last_ours = None
    last = None
    for line in sys.stdin:
        m = SWITCH.match(line)
        w = None if m else WAKEUP.match(line)
        if not m and not w:
            continue
        t = float((m or w).group(2))
        if last is not None and first is not None:
            dt = t - last
            waiting = [cpu for pid, cpu in queued.items() if pid in ours]
            for cpu, pid in running.items():
                if pid != 0:
                    continue
                idle += dt
                if cpu in waiting:
                    idle_here += dt
                elif waiting:
                    idle_other += dt
        last = t
        if m:
            cpu, prev, state = int(m.group(1)), int(m.group(4)), m.group(5)
            nxt = int(m.group(7))
            for pid, comm in ((prev, m.group(3)), (nxt, m.group(6))):
                if comm.startswith(prefix):
                    ours.add(pid)
                    first = first if first is not None else t
                    last_ours = t
            running[cpu] = nxt
            if state.startswith("R"):
                queued[prev] = cpu
            queued.pop(nxt, None)
            if nxt in woken_at and nxt in ours:
                latencies.append(t - woken_at.pop(nxt))
        else:
            pid = int(w.group(4))
            if w.group(3).startswith(prefix):
                ours.add(pid)
            queued[pid] = int(w.group(5))
            woken_at[pid] = t
    if first is None:
        sys.exit("no thread named %s*" % prefix)
    print("threads %s*: %.2f s from first to last event" %
          (prefix, last_ours - first))
    print("  cores idle:                                    %.2f core-s" % idle)
    print("  ...while one of them was queued on another core: %.2f core-s" %
          idle_other)
    print("  ...while one of them was queued on that core:    %.2f core-s" %
          idle_here)
    if latencies:
        latencies.sort()
        n = len(latencies)
        print("  wake-up to run, %d wake-ups: median %.0f us, 90th %.0f us, "
              "99th %.0f us" % (n, latencies[n // 2] * 1e6,
                                latencies[n * 9 // 10] * 1e6,
                                latencies[n * 99 // 100] * 1e6))


if __name__ == "__main__":
    main()
