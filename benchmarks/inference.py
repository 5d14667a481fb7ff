"""The inference-side benchmarks in one run (``make bench``), each against its baseline:

1. Poisson blending, ms per image at 64^2 and 256^2 with 10/30/50% holes: a fresh sparse
   factorisation per image, a batch sharing one mask, and cv2.seamlessClone (benchmarks/poisson.py).
2. Batched latent optimisation (every image its own z, optimised together) against a
   per-image loop, images/s (benchmarks/latent.py).
3. Metrics throughput: inpaintflow.tasks.evaluate.metrics (all 12 metrics, batched torch) against a per-image
   scikit-image SSIM + numpy loop (benchmarks/metrics.py).

    python benchmarks/inference.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latent  # noqa: E402
import metrics  # noqa: E402
import poisson  # noqa: E402

if __name__ == "__main__":
    print("== 1. Poisson blending ==", flush=True)
    poisson.main()
    print("\n== 2. latent optimisation ==", flush=True)
    sys.argv = sys.argv[:1]  # benchmarks/latent.py's own defaults
    latent.main()
    print("\n== 3. metrics ==", flush=True)
    metrics.main()
