"""PNG of gap profiles: the gap of every BatchNorm layer, input to output, one line per profile,
the parts marked along the x axis and the similar / far thresholds as dashed lines.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display), as
detector/evaluation/report.py does.
"""

from __future__ import annotations

from pathlib import Path

from detector.advisor.strategy import THRESHOLDS


def plot_gap_profiles(profiles: dict, out_path, title: str = "domain gap per BatchNorm layer",
                      distance: str = "skl") -> Path:
    """profiles: {label: GapProfile}; all from the same model (the same layers). Returns the
    path written. The y axis is logarithmic: gaps span 0.01 (the pretraining domain) to 10+
    (a thermal image in an RGB stem)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    reference = None
    for label, profile in profiles.items():
        if not profile.layers:
            continue
        reference = reference or profile
        gaps = [max(layer.gap, 1e-4) for layer in profile.layers]
        axes.plot(range(len(gaps)), gaps, marker=".", linewidth=1.2,
                  label=f"{label} (mean {profile.score:.3f})")
    if reference is None:
        axes.text(0.5, 0.5, "no BatchNorm layer: no depth profile", ha="center",
                  transform=axes.transAxes)
    else:
        axes.set_yscale("log")
        limits = THRESHOLDS[distance]
        axes.axhline(limits.similar, color="grey", linestyle="--", linewidth=0.8)
        axes.axhline(limits.far, color="grey", linestyle=":", linewidth=0.8)
        # part boundaries: a light band on every other part, names staggered so short parts
        # (a one-layer stem) do not overprint their neighbours
        start, part_index = 0, 0
        layers = reference.layers
        for index in range(1, len(layers) + 1):
            if index == len(layers) or layers[index].part != layers[start].part:
                if part_index % 2 == 0:
                    axes.axvspan(start - 0.5, index - 0.5, color="0.93", zorder=0)
                axes.text((start + index - 1) / 2, 1.01 + 0.045 * (part_index % 2),
                          layers[start].part, ha="center", va="bottom", fontsize=7,
                          transform=axes.get_xaxis_transform())
                start, part_index = index, part_index + 1
        axes.set_xlim(-0.5, len(layers) - 0.5)
        axes.legend(fontsize=8, loc="upper right")
    axes.set_xlabel("BatchNorm layer (input to output)")
    axes.set_ylabel(f"gap ({distance}, mean over channels)")
    axes.set_title(title, fontsize=10, pad=22)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out_path)
    return out_path


__all__ = ["plot_gap_profiles"]
