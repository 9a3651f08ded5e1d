# OpenMP's wait policy is left at its default (spin briefly, then sleep). Every job sets torch's thread count to
# the cores Snakemake gives it: train / evaluate / benchmark jobs run one thread (no OpenMP team, so no spinning,
# and two of them side by side do not slow each other), `prepare` runs two threads alone, where the passive policy
# made it 1.3x slower (docs/performance.md). Passive waiting only helps several multi-thread processes that share
# cores, which Snakemake never schedules; whoever runs such processes by hand can export OMP_WAIT_POLICY=PASSIVE.
from repro.cli import main

raise SystemExit(main())
