"""`make bench`: the benchmark of issue 12 (see patchpilot_sim.benchmark; sizes from BENCH_SIZES)."""

from patchpilot_sim.benchmark import main

if __name__ == "__main__":
    main()
