"""Where the time of local:2 goes on a NUMxNUM grid (srnn latch, N=1000, T=100, fixed readout):
connect / grid / close wall clock, this process's CPU, each worker's CPU, the whole tree's CPU (this
process, the forkserver, the workers), the makespan on two free cores it implies, and whether the
workers imported torch. MODES: comma-separated "here" (one process, one thread) or "local:2".
    PYTHONPATH=$PWD python docs/results/s4-dask/phases.py 601 here,local:2,local:2"""
import os, sys, time, tempfile
from pathlib import Path




def mods():
    import sys
    return ("torch" in sys.modules, "numba" in sys.modules, sorted(k for k in sys.modules if k.startswith("landscape"))[:3], len(sys.modules))

def main():
    from benchmarks.common import pin, cores
    from landscape import grid, Axis, GridSpec
    from landscape.kernels import set_threads
    NUM = int(sys.argv[1]); MODES = sys.argv[2].split(",")
    spec = GridSpec.of(cell="srnn", task="latch", T=(100,), x=Axis.parse(f"w:-1:3:{NUM}"), y=Axis.parse(f"b:-1:1:{NUM}"), n=1000, fit="fixed")
    small = GridSpec.of(cell="srnn", task="latch", T=(100,), x=Axis.parse("w:-1:3:21"), y=Axis.parse("b:-1:1:21"), n=1000, fit="fixed")
    pin()
    tmp = Path(tempfile.mkdtemp()); out = tmp / "g.h5"
    set_threads(1)
    grid(small, out=out, force=True, device="cpu", progress=False)
    for mode in MODES:
        if mode == "here":
            t0 = time.perf_counter(); c0 = time.process_time()
            grid(spec, out=out, force=True, device="cpu", progress=False)
            print(f"here: wall {time.perf_counter()-t0:.2f} cpu {time.process_time()-c0:.2f}", flush=True)
            continue
        from landscape.distributed import connect
        with cores(2):
            from benchmarks.distributed import _descendants_cpu, _stop_forkserver
            t0 = time.perf_counter(); c0 = time.process_time(); k0 = _descendants_cpu()
            sched = connect(mode)
            t1 = time.perf_counter()
            grid(spec, out=out, force=True, device="cpu", progress=False, scheduler=sched)
            t2 = time.perf_counter()
            w = list(sched.client.run(time.process_time).values())
            m = list(sched.client.run(mods).values())
            c2 = time.process_time(); k2 = _descendants_cpu()  # the forkserver's and the workers', before they go
            sched.close()
            _stop_forkserver()  # the next start pays for its own
            t3 = time.perf_counter()
        tree = c2 - c0 + sum(v - k0.get(pid, 0.0) for pid, v in k2.items())
        print(f"{mode}: total {t3-t0:.2f} connect {t1-t0:.2f} grid {t2-t1:.2f} close {t3-t2:.2f}; client cpu {c2-c0:.2f}; workers cpu {[round(x,2) for x in w]} tree cpu {tree:.2f} makespan {max(max(w), tree/2):.2f}; {m[0]}", flush=True)

if __name__ == '__main__':
    main()
