"""Error rates of the verdicts on simulated sweeps with known truth (issue 17 part 9).

Every case of ``energymeter.validation.analysis.error_rates.default_cases`` (energy proportional to E at falls of
1.05x, 10x and 1000x; independent of E; affine; a true 5% effect; heavy tails; one outlier run; linear and step
drift in the interleaved and the sequential run order; 2, 3, 5 and 10 seeds) is simulated ``SWEEPS`` times and
run through the real lambda table. Printed as a Markdown table: the share of each tracking verdict (the
elasticity's) and saving verdict (the energy change against the 10% SESOI), and how often the 95% intervals
cover the truth (elasticity and change; not computed where drift in the sequential order moves the truth).
Per-claim rates, before the family's multiplicity control (which only withdraws verdicts).
Run: ``.venv/bin/python bench/bench_error_rates.py [SWEEPS]`` (default 400; about a minute per 100).
"""

from __future__ import annotations

import sys

from energymeter.validation.analysis.error_rates import default_cases, rates

SWEEPS = 400


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str]) -> int:
    sweeps = int(argv[0]) if argv else SWEEPS
    print(f"{sweeps} simulated sweeps per case; shares in percent; noise: log-normal SD 0.05 per run unless t3.")
    print("| truth | E fall | seeds | drift | order | noise | tracks | does_not_track | inconclusive | "
          "saving holds | saving fails | elasticity coverage | change coverage |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, case in enumerate(default_cases()):
        r = rates(case, sweeps, seed=i)
        noise = case.tails + (", one 3x outlier" if case.outlier else "")
        print(f"| {case.truth} | {case.fall:g}x | {case.seeds} | {case.drift} | {case.order} | {noise} | "
              f"{r.tracking['tracks']:.1f} | {r.tracking['does_not_track']:.1f} | {r.tracking['inconclusive']:.1f} | "
              f"{r.saving['holds']:.1f} | {r.saving['fails']:.1f} | {_cell(r.elasticity_coverage_pct)} | "
              f"{_cell(r.change_coverage_pct)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
