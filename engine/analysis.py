"""The paper's claims as measurements (docs/method.md, "Claims as measurements"), one module each.
Each function returns plain data (dataclasses of numpy arrays); figures.py draws them and
report.py runs them all. This module names them in one place, so `analysis.X` reaches any of them.

- denoising.py:      PSNR vs sigma, correct / wrong conditioning vs the mixture (figs 2, 3), and
                     the helpers every measurement shares (noise, batched denoising, held-out sets)
- separation.py:     per layer, centroid distances against within-class spread (fig 4)
- density.py:        symmetrised KL between class densities vs squared centroid distance (fig 5)
- bifurcation.py:    two targets, one noise: where the trajectories part (fig 1)
- interpolation.py:  samples along alpha between two centroids, judged by a classifier
"""
from __future__ import annotations

from .bifurcation import BifurcationResult, bifurcation, half_rise_sigma, run_trajectory
from .denoising import (PSNR_SIGMAS, DenoisingGrid, DenoisingResult, check_pair, conditioned_denoise, denoising,
                        denoising_grid, held_out_subset, noisy, plain_denoise, progress_bar, wrong_classes)
from .density import (DENSITY_PER_CLASS, DENSITY_SIGMA_RANGE, DENSITY_SIGMAS, DensityResult, centroid_d2,
                      conditioned_outputs, correlations, density_distance, density_sigmas, integrate_log_sigma,
                      matched_dims)
from .interpolation import ALPHAS, InterpolationResult, centroid_path, interpolation
from .metrics import psnr
from .separation import SeparationResult, class_pairs, embedding_separation, separation

__all__ = ["ALPHAS", "DENSITY_PER_CLASS", "DENSITY_SIGMAS", "DENSITY_SIGMA_RANGE", "PSNR_SIGMAS",
           "BifurcationResult", "DenoisingGrid", "DenoisingResult", "DensityResult", "InterpolationResult",
           "SeparationResult", "bifurcation", "centroid_d2", "centroid_path", "check_pair", "class_pairs",
           "conditioned_denoise", "conditioned_outputs", "correlations", "denoising", "denoising_grid",
           "density_distance", "density_sigmas", "embedding_separation", "half_rise_sigma", "held_out_subset",
           "integrate_log_sigma", "interpolation", "matched_dims", "noisy", "plain_denoise", "progress_bar",
           "psnr", "run_trajectory", "separation", "wrong_classes"]
