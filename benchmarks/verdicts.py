"""Every reproduced row against mean fill and cv2 Telea, from the metrics the tables are made of.

    python benchmarks/verdicts.py                    # runs/metrics of this checkout
    python benchmarks/verdicts.py --metrics DIR      # another project's runs/metrics
    python benchmarks/verdicts.py --strict           # exit 1 when a row fails its bar

One line per (experiment, result, hole-ratio bin): the row's hole L1 and hole PSNR, mean fill's
and Telea's on the same pairs, and the verdict (tasks/tables/verdicts.py: every row must beat
mean fill on both figures; feed-forward rows on bins of 30% holes or more must also beat Telea
on hole L1). Nothing is re-scored: the figures are the ones the tables show.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inpaintflow.tasks.tables.verdicts import read_verdicts, render

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, default=ROOT / "runs" / "metrics")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every row passes its bar")
    args = parser.parse_args(argv)
    if not args.metrics.is_dir():
        print(f"{args.metrics}: no metrics folder (run the pipeline first: make demo)", file=sys.stderr)
        return 2
    verdicts = read_verdicts(args.metrics)
    print(render(verdicts))
    above = sum(bool(v.beats_mean_fill) for v in verdicts)
    telea = [v for v in verdicts if v.telea_required]
    print(f"\n{above} of {len(verdicts)} rows beat mean fill; feed-forward rows on >= 30% holes beating "
          f"Telea on hole L1: {sum(bool(v.beats_telea_l1) for v in telea)} of {len(telea)}")
    return 0 if not args.strict or all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
