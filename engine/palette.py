"""One colour per class, the same in every figure of the app and of the report.

A class's colour is fixed by its index in the model's class list, so brick is drawn in the same
colour in the map, the bars, the strip's curves and the report's figures. Series that are not
classes (pairs of trajectories, runs of a lineage) take greys and dash patterns, so they are
never mistaken for a class.
"""
from __future__ import annotations

# Tableau 10, then its darker companions: distinguishable side by side on white
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
                 "#17becf", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                 "#e6550d", "#31a354", "#756bb1", "#636363")
NOT_HIGHLIGHTED = "#c8c8c8"
SERIES_GREYS = ("#212529", "#495057", "#868e96")
SERIES_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def class_colour(index: int) -> str:
    """The colour of the class at `index` of the model's class list."""
    return CLASS_COLOURS[int(index) % len(CLASS_COLOURS)]


def class_colours(classes: list[str]) -> dict[str, str]:
    """{class name: colour} for a model's class list."""
    return {name: class_colour(i) for i, name in enumerate(classes)}


def colour_of(name: str, classes: list[str]) -> str:
    """The colour of a class named in `classes`."""
    return class_colour(list(classes).index(name))


def series_style(i: int) -> tuple[str, str]:
    """(colour, dash) of the i-th series that is not a class: greys first, then dash patterns."""
    return SERIES_GREYS[i % len(SERIES_GREYS)], SERIES_DASHES[(i // len(SERIES_GREYS)) % len(SERIES_DASHES)]
