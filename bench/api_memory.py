"""The API process's resident memory per upload: hostile images that are small to send and huge to hold.

Starts the API alone (uvicorn with ``app.main:create_app``, as ``lrc serve`` runs it; uploads need no
worker) from the source tree ``--tree``, uploads one small NIfTI to warm it up, then each case once,
and watches the API process from ``/proc`` meanwhile: its peak resident memory (``VmHWM``, reset before
each upload, so no spike between samples is missed), samples every 10 ms, and the most its child
processes (the DICOM decoder pool) held together. Inputs are generated into ``--work`` (no network):

* ``nifti-inflating``: int16 zeros, 1024 x 1024 x 1000, gzipped: 2 MB sent, 2 GB of voxels;
* ``nifti-float64``: float64 1e30 (the largest value the checks take), 1024 x 1024 x 256, gzipped: 2 MB, 2 GB;
* ``dicom-native``: 600 uncompressed 512 x 512 slices (300 MB sent);
* ``dicom-jpeg2000``: 3 JPEG 2000 slices of 16384 x 16384 zeros (8 kB sent, 805 M voxels);
* ``dataset-inflating``: ``POST /v1/datasets`` of one case, the ``nifti-inflating`` image and a uint8 label map of
  ones on its grid, gzipped: 3 MB sent, 2 GB + 1 GB of voxels.

Usage: ``python bench/api_memory.py --label after`` (this tree), then
``python bench/api_memory.py --tree /work/main --label before`` (another tree, e.g. main before the
change). Each run is merged into ``bench/results/api_memory.json`` under its label.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from speed_env import machine  # noqa: E402

from tests import dicom_factory  # noqa: E402
from tests.reliability import large_inputs  # noqa: E402
from tests.reliability.processes import watch_memory  # noqa: E402
from tests.service.harness import ADMIN_KEY, api_process  # noqa: E402

MIB = 1024**2
BOUND_MIB = 512  # app/README.md


def inputs(work: Path, shared_data: Path) -> dict[str, tuple[Callable[[], list[Path]], tuple[int, int, int]]]:
    """Each case: how to make its files (once, in ``work``) and its voxels (x, y, z)."""
    slice_path = work / "template" / "slice000.dcm"

    def template() -> Path:
        if not slice_path.is_file():
            dicom_factory.write_series(shared_data, slice_path.parent, dicom_factory.line(1), size=64)
        return slice_path

    def cached(folder: str, make: Callable[[Path], list[Path]]) -> Callable[[], list[Path]]:
        def files() -> list[Path]:
            done = work / folder / ".done"
            if not done.is_file():
                (work / folder).mkdir(parents=True, exist_ok=True)
                make(work / folder)
                done.touch()
            return sorted(p for p in (work / folder).iterdir() if p.name != ".done")

        return files

    return {
        "nifti-inflating": (
            cached("inflating", lambda f: [large_inputs.nifti(f / "zeros.nii.gz", (1024, 1024, 1000), "int16")]),
            (1024, 1024, 1000),
        ),
        "nifti-float64": (
            cached("float64", lambda f: [large_inputs.extreme_float64(f / "float64.nii.gz", (1024, 1024, 256))]),
            (1024, 1024, 256),
        ),
        "dicom-native": (
            cached("native", lambda f: large_inputs.native_series(template(), f, 600, 512)),
            (512, 512, 600),
        ),
        "dicom-jpeg2000": (
            cached("jpeg2000", lambda f: large_inputs.jpeg2000_series(template(), f, 3, 16384)),
            (16384, 16384, 3),
        ),
        "dataset-inflating": (  # sorted: the image, then its label map
            cached(
                "dataset",
                lambda f: [
                    large_inputs.nifti(f / "image.nii.gz", (1024, 1024, 1000), "int16"),
                    large_inputs.label_map(f / "label.nii.gz", (1024, 1024, 1000)),
                ],
            ),
            (1024, 1024, 1000),
        ),
    }


def upload(client: Any, name: str, files: list[Path]) -> Any:
    """``POST /v1/studies`` with ``files``, streamed from disk; a ``dataset-`` case posts its image and label map
    as a dataset instead."""
    if name.startswith("dataset-"):
        image, label = files
        return large_inputs.post_dataset(client, image, label)
    with contextlib.ExitStack() as stack:
        handles: list[BinaryIO] = [stack.enter_context(p.open("rb")) for p in files]
        parts = [("files", (p.name, h)) for p, h in zip(files, handles, strict=True)]
        return client.post("/v1/studies", files=parts, timeout=600)


@contextlib.contextmanager
def api(tree: Path, work: Path) -> Iterator[tuple[Any, Any]]:
    """The API of ``tree`` on a fresh data folder, without a starter model."""
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRC_")}
    env.update(
        PYTHONPATH=str(tree),
        LRC_DATA_DIR=str(data),
        LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        LRC_STARTER_MODEL_DIR=str(work / "no-starter-model"),
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    with api_process(env, work / "api.log", cwd=tree) as (process, client):
        yield process, client


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every case against one API; the figures of each."""
    args.work.mkdir(parents=True, exist_ok=True)
    cases = inputs(args.work, args.shared_data)
    chosen = args.cases or list(cases)
    files = {name: cases[name][0]() for name in chosen}  # made before the API starts
    small = large_inputs.nifti(args.work / "warm.nii.gz", (16, 16, 4), "int16")
    results: dict[str, Any] = {}
    with api(args.tree.resolve(), args.work) as (process, client):
        warm = upload(client, "warm", [small])
        assert warm.status_code == 201, warm.text
        time.sleep(1)
        for name in chosen:
            begin = time.perf_counter()
            with watch_memory(process.pid) as memory:
                response = upload(client, name, files[name])
            seconds = time.perf_counter() - begin
            voxels = math.prod(cases[name][1])
            results[name] = {
                "files": len(files[name]),
                "bytes_sent": sum(p.stat().st_size for p in files[name]),
                "voxels": voxels,
                "status": response.status_code,
                "answer": response.text[:200] if response.status_code >= 300 else "",
                "seconds": round(seconds, 1),
                "api_rss_before_mib": round(memory.before / MIB),
                "api_rss_peak_mib": round(memory.peak / MIB),
                "api_rss_growth_mib": round(memory.growth / MIB),
                "children_rss_peak_mib": round(memory.children_peak / MIB),
                "within_bound": memory.growth < BOUND_MIB * MIB,
            }
            print(name, json.dumps(results[name]), flush=True)
            time.sleep(1)
    return results


def main() -> None:
    """Run the cases and merge the run into the results file under ``--label``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="Source tree the API runs from.")
    parser.add_argument("--label", default="after", help="Name of this run in the results (before, after).")
    parser.add_argument("--cases", nargs="*", help="Some of the cases (default: all).")
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=HERE / "out" / "api_memory")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "api_memory.json")
    args = parser.parse_args()
    info = machine()
    info["tree"] = str(args.tree.resolve())
    info["tree_commit"] = subprocess.run(
        ["git", "-C", str(args.tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    results = run(args)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "api_memory", "runs": {}}
    report["bound_mib"] = BOUND_MIB
    report["runs"][args.label] = {"machine": info, "loadavg_after": list(os.getloadavg()), "cases": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
