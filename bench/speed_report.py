"""Plots and Markdown tables for bench/SPEED.md from bench/results/speed_*.json.

Usage: ``python bench/speed_report.py [--results bench/results]`` writes ``speed_stages.png`` and
``speed_peers.png`` there and prints the tables (GPU results appear once their JSON is there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STAGES = ("startup", "imports", "model_load", "decode", "preprocess", "model", "postprocess", "seg_binary")


def load(results: Path, name: str) -> dict[str, Any] | None:
    """One result file, or None when it is not there."""
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def stage_rows(report: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """(stage, cold seconds, warm seconds) in pipeline order."""
    cold, warm = report["summary"]["cold_s"], report["summary"]["warm_s"]
    return [(s, cold.get(s, 0.0), warm.get(s)) for s in STAGES if s in cold]


def plot(results: Path, reports: dict[str, dict[str, Any]]) -> None:
    """Stacked stage bars per device (cold process, warm worker), and the peer ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e2e = {k: v for k, v in reports.items() if k.startswith("speed_e2e")}
    if e2e:
        fig, axes = plt.subplots(1, len(e2e), figsize=(6 * len(e2e), 4.5), squeeze=False)
        for ax, (name, report) in zip(axes[0], e2e.items(), strict=True):
            rows = stage_rows(report)
            bottoms = [0.0, 0.0]
            for stage, cold, warm in rows:
                values = [cold, warm or 0.0]
                ax.bar(["cold process", "warm worker"], values, bottom=bottoms, label=stage)
                bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
            card = report["machine"].get("card") or f"{report['machine']['cpus']} CPU cores"
            ax.set_title(f"{name.removeprefix('speed_e2e_')}: {card}\nload {report['machine']['loadavg_1_5_15'][0]}")
            ax.set_ylabel("seconds (DICOM in -> DICOM SEG out)")
        axes[0][-1].legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        fig.savefig(results / "speed_stages.png", dpi=110)
        plt.close(fig)
    ratios: list[tuple[str, float]] = []
    for name, report in reports.items():
        if name.startswith("speed_nnunet"):
            ratios.append(
                (f"nnU-Net / ours, model ({name.removeprefix('speed_nnunet_')})", report["nnunet_over_ours"]["model"])
            )
        if name == "speed_ingest":
            ratios.append(("lrc.io / SimpleITK, ingest", report["lrc_over_simpleitk"]))
        if name.startswith("speed_ab"):
            ratios.append(
                (f"before / after, predictor ({report['slices']} slices)", report["over_after"]["before"]["min"])
            )
    if ratios:
        fig, ax = plt.subplots(figsize=(7, 0.6 * len(ratios) + 1.2))
        ax.barh([r[0] for r in ratios], [r[1] for r in ratios], color="tab:blue")
        ax.axvline(1.0, color="k", lw=0.8)
        for y, (_, value) in enumerate(ratios):
            ax.text(value, y, f" {value:.2f}x", va="center")
        ax.set_xlabel("their time / our time, same run and machine (> 1: ours is faster)")
        fig.tight_layout()
        fig.savefig(results / "speed_peers.png", dpi=110)
        plt.close(fig)


def tables(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown tables of the stages per device."""
    lines = []
    for name, report in reports.items():
        if not name.startswith("speed_e2e"):
            continue
        summary = report["summary"]
        lines += [f"### {name}", "", "| stage | cold process s | warm worker s |", "|---|---|---|"]
        for stage, cold, warm in stage_rows(report):
            lines.append(f"| {stage} | {cold:.2f} | {'' if warm is None else f'{warm:.2f}'} |")
        lines.append(f"| **total** | **{summary['cold_total_s']:.2f}** | **{summary.get('warm_total_s', 0):.2f}** |")
        lines.append(f"| `lrc segment` whole process | {summary['lrc_segment_wall_s']} | |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Read every speed_*.json, plot, print tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    reports = {p.stem: json.loads(p.read_text()) for p in sorted(args.results.glob("speed_*.json"))}
    plot(args.results, reports)
    print(tables(reports))


if __name__ == "__main__":
    main()
