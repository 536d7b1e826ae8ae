"""One colour per method on every chart (Pareto, attack box plot, score distributions): fixed by the method's name,
never by its position in a chart. Below both figure modules (`figures`, `evaluate.figures`), so neither imports the
other to colour a method."""

from __future__ import annotations

import zlib

# ``full`` (no cleaning) is the paper's brown reference, ``random`` a neutral grey.
METHOD_COLOURS = {
    "full": "#8c564b", "random": "#7f7f7f",
    "ip": "#1f77b4", "ip_ensemble": "#ff7f0e", "ip_classwise": "#17becf", "ip_combined": "#9edae5",
    "exact": "#2ca02c", "lissa": "#9467bd", "ekfac": "#e377c2", "datainf": "#bcbd22", "gex": "#393b79",
    "tracin": "#d62728", "tda": "#ad494a", "self_tracin": "#e7969c", "self_lissa": "#c5b0d5",
    "loss": "#637939", "margin": "#8c6d31", "confident_learning": "#de9ed6",
}
_SPARE_COLOURS = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476")


def method_colour(name: str) -> str:
    """The colour of a method on every chart, from its registry name or its label (e.g. "IP Ensemble");
    a name the map does not know gets a fixed colour from a hash of the name (the same on every chart)."""
    key = str(name)
    if key in METHOD_COLOURS:
        return METHOD_COLOURS[key]
    try:
        from .methods import METHODS

        by_label = {(cls.label or n).lower(): n for n, cls in METHODS.items()}
    except Exception:  # pragma: no cover - the registry failed to import; hash below
        by_label = {}
    base = key.split(" (")[0].strip()
    for candidate in (key.lower(), base.lower()):
        if candidate in by_label and by_label[candidate] in METHOD_COLOURS:
            return METHOD_COLOURS[by_label[candidate]]
    if base in METHOD_COLOURS:
        return METHOD_COLOURS[base]
    return _SPARE_COLOURS[zlib.crc32(key.encode()) % len(_SPARE_COLOURS)]
