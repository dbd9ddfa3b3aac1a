"""The views of one model: one module per tab, each a class whose public methods are the tab's
named endpoints (docs/app.md) and return named results (app.common.Result). `Views` joins them
for one model of the picker (app.context.Registry.views).

Methods only call the engine and turn its results into pictures, figures and files; a user's
mistake surfaces as EngineError, which app.errors turns into a message in the page.
"""
from __future__ import annotations

from .denoise import DenoiseView
from .distances import DistancesView
from .embeddings import EmbeddingsView
from .interpolate import InterpolateView
from .sample import SampleView
from .trajectories import TrajectoriesView


class Views(EmbeddingsView, SampleView, InterpolateView, TrajectoriesView, DistancesView, DenoiseView):
    """Every view of one model (its context: app.context.Context)."""


ENDPOINTS = {"sample": SampleView.sample, "compare_methods": SampleView.compare_methods, "interpolate": InterpolateView.interpolate,
             "interpolate_strip": InterpolateView.interpolate_strip, "trajectories": TrajectoriesView.trajectories,
             "denoise": DenoiseView.denoise, "embedding": EmbeddingsView.embedding,
             "distances": DistancesView.distances, "pair_samples": DistancesView.pair_samples}

__all__ = ["Views", "ENDPOINTS"]
