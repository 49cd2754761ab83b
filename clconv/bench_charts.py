"""The charts of ``clconv bench``, drawn with matplotlib from its records.

- ``gflops.png``: GFLOP/s per layer of every implementation and device, one panel per pass;
- ``speedup.png``: per layer and pass, a peer's end-to-end time over clconv's (above 1: clconv is faster);
- ``roofline.png``: one panel per device with a measured peak; clconv's layers (and the peers running
  there) at their arithmetic intensity under the roof min(peak GFLOP/s, GB/s x intensity);
- ``compare.png`` (``clconv bench --compare``): the ratio of two runs per layer and pass.

Every legend sits below the panels, never over the data. Records are duck-typed (``benchmark.Record`` or
anything with its fields), so this module needs nothing from the benchmark. Each function returns whether
it drew: not where matplotlib is missing, nor where the records hold nothing for that chart.
"""

from __future__ import annotations

import math
from pathlib import Path

from .params import PASSES

_PASS_MARKERS = {"forward": "o", "grad_input": "s", "grad_weight": "^", "grad_bias": "D"}


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def unavailable() -> str | None:
    """Why no chart can be drawn here, with the fix, or None where they can."""
    return None if _pyplot() is not None else "matplotlib is not installed (pip install 'clconv[bench]')"


def _ok(records) -> list:
    return [r for r in records if r.status == "ok"]


def _passes(records) -> list[str]:
    return [p for p in PASSES if any(r.pass_name == p for r in records)]


def _positive(value) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _legend_below(fig, axes) -> None:
    """One legend for the figure, under its lowest panel (the saved image grows to hold it)."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(3, len(handles)), fontsize=8, frameon=False)


def _save(fig, plt, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _log_y(ax) -> None:
    """A log y axis labelled with plain numbers (20, 0.5) rather than powers of ten; where it spans two
    decades or less, the minor ticks at 2, 3 and 5 are labelled too, as there may be no major tick to read."""
    from matplotlib.ticker import FuncFormatter

    def minor_label(value, _):
        low, high = ax.get_ylim()
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
        return f"{value:g}" if high / low <= 100 and mantissa in (2, 3, 5) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor_label))


def _ratio_limits(ax, ratios) -> None:
    """y limits symmetric about 1 on a log axis (at least 0.5 to 2), so that the line at 1 sits mid-panel."""
    bound = max([2.0] + [max(r, 1 / r) for r in ratios if _positive(r)]) * 1.3
    ax.set_ylim(1 / bound, bound)


def _layer_axis(ax, layer_names, offset: float) -> None:
    ax.set_xticks([j + offset for j in range(len(layer_names))])
    ax.set_xticklabels(layer_names, rotation=40, ha="right", fontsize=7)
    ax.set_xlim(-0.5, len(layer_names) - 0.5 + 2 * offset)


def _layer_panels(plt, passes, layer_names):
    """A figure with one panel per pass, wide enough for a bar group per layer; returns (figure, panels)."""
    fig, axes = plt.subplots(len(passes), 1, figsize=(max(10, 0.7 * len(layer_names)), 3.6 * len(passes)),
                             squeeze=False)
    return fig, axes[:, 0]


def _ratio_figure(plt, ratios: dict, ylabel: str):
    """Panels per pass of bars from 1.0 up to a ratio above it or down to one below it, on a log axis
    symmetric about 1, one bar per series and layer: ``ratios`` is {series label: {(layer, pass): ratio}},
    drawn in its order. Returns the figure, its legend below the panels."""
    passes = [p for p in PASSES if any(pass_name == p for values in ratios.values() for _, pass_name in values)]
    layer_names = list(dict.fromkeys(layer for values in ratios.values() for layer, _ in values))
    fig, panels = _layer_panels(plt, passes, layer_names)
    width = 0.8 / len(ratios)
    for ax, pass_name in zip(panels, passes):
        for i, (label, values) in enumerate(ratios.items()):
            present = [name for name in layer_names if (name, pass_name) in values]
            ax.bar([layer_names.index(name) + i * width for name in present],
                   [values[(name, pass_name)] - 1 for name in present], width, bottom=1.0, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8)
        _log_y(ax)
        _ratio_limits(ax, [ratio for values in ratios.values() for (_, p), ratio in values.items() if p == pass_name])
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(pass_name)
        _layer_axis(ax, layer_names, 0.4 - width / 2)
        ax.grid(axis="y", which="both", alpha=0.3)
    _legend_below(fig, panels)
    return fig


def gflops_chart(records, path: Path) -> bool:
    """GFLOP/s (device-resident) per layer for each implementation and device, one panel per pass. False,
    drawing nothing, without matplotlib or without a measured record."""
    plt = _pyplot()
    ok = [r for r in _ok(records) if _positive(r.gflops)]
    if plt is None or not ok:
        return False
    passes = _passes(ok)
    series = sorted({(r.implementation, r.device) for r in ok}, key=lambda s: (s[0] != "clconv", s))
    layer_names = list(dict.fromkeys(r.layer for r in ok))
    fig, panels = _layer_panels(plt, passes, layer_names)
    width = 0.8 / max(1, len(series))
    for ax, pass_name in zip(panels, passes):
        for i, (implementation, device) in enumerate(series):
            values = {r.layer: r.gflops for r in ok
                      if (r.implementation, r.device, r.pass_name) == (implementation, device, pass_name)}
            present = [name for name in layer_names if name in values]
            ax.bar([layer_names.index(name) + i * width for name in present], [values[name] for name in present],
                   width, label=f"{implementation} [{device}]")
        _log_y(ax)
        ax.set_ylabel("GFLOP/s (device-resident)")
        ax.set_title(pass_name)
        _layer_axis(ax, layer_names, 0.4 - width / 2)
        ax.grid(axis="y", alpha=0.3)
    _legend_below(fig, panels)
    _save(fig, plt, path)
    return True


def speedup_series(records) -> dict:
    """{(peer, peer device, clconv device): {(layer, pass): peer e2e time / clconv e2e time}}.

    A peer is paired with clconv on its own device (CLBlast) or, running on the host, with clconv on every
    device (PyTorch). The NumPy oracle is left out: it is the reference for correctness, not a competitor,
    and at 10-100x slower it would stretch the axis that shows how far clconv is from PyTorch.
    """
    ok = [r for r in _ok(records) if _positive(r.e2e_s)]
    clconv = {(r.device, r.layer, r.pass_name): r.e2e_s for r in ok if r.implementation == "clconv"}
    clconv_devices = sorted({device for device, _, _ in clconv})
    series = {}
    for r in ok:
        if r.implementation in ("clconv", "numpy-oracle"):
            continue
        for device in clconv_devices:
            mine = clconv.get((device, r.layer, r.pass_name))
            if mine is not None and r.device in ("host", device):
                series.setdefault((r.implementation, r.device, device), {})[(r.layer, r.pass_name)] = r.e2e_s / mine
    return series


def speedup_chart(records, path: Path) -> bool:
    """Per layer and pass, each peer's end-to-end time over clconv's on each device (log scale, 1.0 marked).
    False, drawing nothing, without matplotlib or without a peer measured beside clconv."""
    plt = _pyplot()
    series = speedup_series(records)
    if plt is None or not series:
        return False
    ratios = {f"{peer} [{peer_device}] / clconv [{device}]": series[(peer, peer_device, device)]
              for peer, peer_device, device in sorted(series)}
    fig = _ratio_figure(plt, ratios, "peer time / clconv time\n(end to end; > 1: clconv faster)")
    _save(fig, plt, path)
    return True


def roofline_chart(records, peaks: dict, path: Path) -> bool:
    """One panel per device with a peak: GFLOP/s against FLOP per byte under that device's roof.

    ``peaks`` maps a device tag to a :class:`clconv.peak.DevicePeak`. Points: clconv's records on the
    device (a marker per pass), CLBlast's on the same device, and PyTorch's (which runs on the host CPU)
    on CPU devices' panels. False, drawing nothing, without matplotlib or without a peak.
    """
    plt = _pyplot()
    devices = [tag for tag, peak in peaks.items() if _positive(peak.fp32_gflops) and _positive(peak.bandwidth_gbps)]
    if plt is None or not devices:
        return False
    ok = [r for r in _ok(records) if _positive(r.gflops) and r.bytes_moved > 0]
    columns = min(2, len(devices))
    rows = math.ceil(len(devices) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.8 * rows), squeeze=False)
    flat_axes = list(axes.flat)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, tag in zip(flat_axes, devices):
        peak = peaks[tag]
        shown = [r for r in ok if r.device == tag and r.implementation != "numpy-oracle"]
        if peak.device_type == "CPU":
            shown += [r for r in ok if r.device == "host" and r.implementation == "torch-cpu"]
        implementations = sorted({r.implementation for r in shown}, key=lambda name: (name != "clconv", name))
        intensities = [r.flops / r.bytes_moved for r in shown]
        ridge = peak.fp32_gflops / peak.bandwidth_gbps
        low = min(intensities + [ridge]) / 4
        high = max(intensities + [ridge]) * 4
        steps = [low * (high / low) ** (i / 200) for i in range(201)]
        ax.plot(steps, [min(peak.fp32_gflops, peak.bandwidth_gbps * x) for x in steps], color="black", linewidth=1.2,
                label="roof: min(fp32 peak, bandwidth x intensity)")
        for colour, implementation in zip(colours, implementations):
            for pass_name in _passes(shown):
                mine = [r for r in shown if (r.implementation, r.pass_name) == (implementation, pass_name)]
                if mine:
                    ax.scatter([r.flops / r.bytes_moved for r in mine], [r.gflops for r in mine], s=28,
                               marker=_PASS_MARKERS.get(pass_name, "o"), color=colour, alpha=0.8,
                               label=f"{implementation}, {pass_name}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
        ax.set_ylabel("GFLOP/s (device-resident)")
        ax.set_title(f"{tag}: {peak.device_name}\nfp32 {peak.fp32_gflops:.0f} GFLOP/s, {peak.bandwidth_gbps:.0f} GB/s",
                     fontsize=9)
        ax.grid(which="both", alpha=0.3)
    for ax in flat_axes[len(devices):]:
        ax.set_visible(False)
    _legend_below(fig, flat_axes[:len(devices)])
    _save(fig, plt, path)
    return True


def compare_chart(rows, path: Path, first_label: str, second_label: str) -> bool:
    """Per layer and pass, the second run's GFLOP/s over the first's, one bar per series (log scale); the
    labels (the result folders) head the chart as DIR1 and DIR2.

    ``rows``: dicts with "series", "layer", "pass" and "ratio", as in ``bench_compare.Comparison.rows``.
    """
    plt = _pyplot()
    rows = [row for row in rows if _positive(row["ratio"])]
    if plt is None or not rows:
        return False
    ratios = {}
    for row in rows:
        ratios.setdefault(row["series"], {})[(row["layer"], row["pass"])] = row["ratio"]
    fig = _ratio_figure(plt, ratios, "GFLOP/s ratio DIR2 / DIR1\n(> 1: DIR2 faster)")
    fig.suptitle(f"DIR1: {first_label}\nDIR2: {second_label}", fontsize=9)
    _save(fig, plt, path)
    return True
