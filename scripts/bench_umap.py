"""How long a new process takes to draw its first UMAP map, and each map after it.

    python scripts/bench_umap.py [--points 400] [--dims 192] [--fits 3] [--own-search]

Times `engine.atlas.fit_umap` on a synthetic set the size of an atlas map (8 clusters of
points in phi's 192 dimensions), in this process: the first fit pays for umap-learn's numba
functions that are compiled afresh in every process, the later ones do not. `--own-search` lets
umap-learn search for the neighbours itself (its numba k-NN, one more function compiled per
process), as the atlas did before it handed them over. Run each way in a fresh process, one
after the other; docs/benchmarks.md ("The atlas") quotes it.
"""
from __future__ import annotations

import argparse
import json
import time
from unittest import mock

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=400)
    ap.add_argument("--dims", type=int, default=192)
    ap.add_argument("--fits", type=int, default=3)
    ap.add_argument("--own-search", action="store_true", help="let umap-learn find the neighbours itself")
    args = ap.parse_args()

    t = time.perf_counter()
    from engine import atlas
    import umap                                   # noqa: F401  (its import is timed apart from the fits)
    imported = time.perf_counter() - t
    rng = np.random.default_rng(0)
    clusters = np.repeat(rng.standard_normal((8, args.dims)) * 2, -(-args.points // 8), axis=0)[:args.points]
    x = (rng.standard_normal((args.points, args.dims)) + clusters).astype(np.float32)
    fits = []
    # --own-search: no set is small enough to be handed its neighbours
    with mock.patch.object(atlas, "UMAP_EXACT_BELOW", 0 if args.own_search else atlas.UMAP_EXACT_BELOW):
        for _ in range(args.fits):
            t = time.perf_counter()
            atlas.fit_umap(x)
            fits.append(round(time.perf_counter() - t, 2))
    print(json.dumps({"points": args.points, "dims": args.dims, "neighbours": "umap-learn's own search"
                      if args.own_search else "handed over (exact)", "import_s": round(imported, 2), "fit_s": fits}))


if __name__ == "__main__":
    main()
