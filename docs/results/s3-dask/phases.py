"""Where the time of local:2 goes, on a NUMxNUM grid; plus one process threads 1 / 2."""
import os, sys, time, tempfile
from pathlib import Path
from benchmarks.common import pin, cores
import landscape.store.writer as W
from landscape import grid, Axis, GridSpec
from landscape.kernels import set_threads

def main():
    NUM = int(sys.argv[1]); MODES = sys.argv[2].split(",")
    spec = GridSpec.of(cell="srnn", task="latch", T=(100,), x=Axis.parse(f"w:-1:3:{NUM}"), y=Axis.parse(f"b:-1:1:{NUM}"), n=1000, fit="fixed")
    small = GridSpec.of(cell="srnn", task="latch", T=(100,), x=Axis.parse("w:-1:3:21"), y=Axis.parse("b:-1:1:21"), n=1000, fit="fixed")
    pin()
    tmp = Path(tempfile.mkdtemp()); out = tmp / "g.h5"
    global stamps
    stamps = []
    orig = W.SurfaceWriter.write_chunk
    def wc(self, c, values):
        t0 = time.perf_counter(); orig(self, c, values); t1 = time.perf_counter(); stamps.append((t0, t1 - t0))
    W.SurfaceWriter.write_chunk = wc
    set_threads(1)
    grid(small, out=out, force=True, device="cpu", progress=False)
    for mode in MODES:
        stamps.clear()
        if mode.startswith("here"):
            set_threads(int(mode[4:] or 1))
            ctx = cores(int(mode[4:] or 1))
            with ctx:
                t0 = time.perf_counter(); c0 = time.process_time()
                grid(spec, out=out, force=True, device="cpu", progress=False)
                t1 = time.perf_counter()
            set_threads(1)
            print(f"{mode}: wall {t1-t0:.2f} cpu {time.process_time()-c0:.2f} writes {sum(s[1] for s in stamps):.2f} s n={len(stamps)}", flush=True)
        else:
            from landscape.distributed import connect
            with cores(2):
                t0 = time.perf_counter(); c0 = time.process_time()
                import dask
            method = "fork" if mode.startswith("fork") else "spawn"
            with dask.config.set({"distributed.worker.multiprocessing-method": method}):
                sched = connect(mode.replace("fork", "local"))
                t1 = time.perf_counter()
                grid(spec, out=out, force=True, device="cpu", progress=False, scheduler=sched)
                t2 = time.perf_counter()
                try:
                    w = list(sched.client.run(time.process_time).values())
                except Exception as e:
                    w = [repr(e)]
                c2 = time.process_time()
                sched.close()
                t3 = time.perf_counter()
            first = stamps[0][0] - t1; gaps = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
            print(f"{mode}: total {t3-t0:.2f} connect {t1-t0:.2f} grid {t2-t1:.2f} (first chunk at {first:.2f}, last at {stamps[-1][0]-t1:.2f}) close {t3-t2:.2f}; "
                  f"client cpu {c2-c0:.2f}; workers cpu {w}; writes {sum(s[1] for s in stamps):.2f} s n={len(stamps)}", flush=True)
            print("  arrivals", [round(s[0]-t1, 2) for s in stamps])

stamps = []
if __name__ == '__main__':
    main()
