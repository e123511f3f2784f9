"""Speed against peers on the same 512x512x300 CT, same device, same threads.

``nnunet``: the model stage against nnU-Net v2's own predictor (``nnunetv2.inference.nnUNetPredictor``)
configured like TotalSegmentator's 3d_fullres organ network (Dataset291: ``PlainConvUNet``, 6 stages,
32-320 features, 3x3x3 kernels, 1.5 mm isotropic, 128^3 patches, 25 classes; TotalSegmentator runs
it with ``tile_step_size=0.5``, Gaussian weighting and no mirroring). The plans, dataset.json and a
checkpoint of random weights are written here (timing does not depend on the weights; nothing is
downloaded). nnU-Net's steps are timed as ``predict_single_npy_array`` runs them: preprocessing
(crop, CT normalisation, resampling to 1.5 mm), sliding-window logits (the model stage), and
resampling the logits back plus arg-max. Our predictor (the starter 2D U-Net) runs on the same
array in the same process, with the same torch thread count.

``ingest``: whole-process time to read the series (interpreter, imports, read) with ``lrc.io``
against SimpleITK's ImageSeriesReader (GDCM), each in fresh processes, interleaved.

Usage: ``python bench/speed_peers.py nnunet|ingest [--device cpu|cuda] [--slices 300] [--repeats N]``
Writes ``bench/results/speed_nnunet_<device>.json`` / ``speed_ingest.json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from speed_env import machine  # noqa: E402

# TotalSegmentator v2, Dataset291 (organs) 3d_fullres, nnUNetTrainerNoMirroring.
TOTALSEG_ARCH = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 6,
        "features_per_stage": [32, 64, 128, 256, 320, 320],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 6,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
        "n_conv_per_stage": [2] * 6,
        "n_conv_per_stage_decoder": [2] * 5,
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}
CLASSES = 25
PATCH = [128, 128, 128]
SPACING = [1.5, 1.5, 1.5]


def write_totalseg_like_model(folder: Path, seed: int = 0) -> Path:
    """plans.json, dataset.json and fold_0/checkpoint_final.pth (random weights) for nnUNetPredictor."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from torch import nn

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fold_0").mkdir(exist_ok=True)
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{f"organ_{k}": k for k in range(1, CLASSES)}},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": PATCH,
        "median_image_size_in_voxels": [300, 300, 300],
        "spacing": SPACING,
        "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": TOTALSEG_ARCH,
        "batch_dice": False,
    }
    plans = {
        "dataset_name": "Dataset291_TotalSegmentator_like",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": SPACING,
        "original_median_shape_after_transp": [300, 300, 300],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 3000.0,
                "mean": 40.0,
                "median": 45.0,
                "min": -1024.0,
                "percentile_00_5": -950.0,
                "percentile_99_5": 1500.0,
                "std": 200.0,
            }
        },
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    torch.manual_seed(seed)
    kwargs = dict(TOTALSEG_ARCH["arch_kwargs"])  # type: ignore[call-overload]
    kwargs.update(conv_op=nn.Conv3d, norm_op=nn.InstanceNorm3d, nonlin=nn.LeakyReLU, dropout_op=None)
    net = PlainConvUNet(input_channels=1, num_classes=CLASSES, deep_supervision=False, **kwargs)
    checkpoint = {
        "network_weights": net.state_dict(),
        "trainer_name": "nnUNetTrainerNoMirroring",
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset},
        "inference_allowed_mirroring_axes": None,
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def stub_simpleitk() -> bool:
    """Put a placeholder ``SimpleITK`` module in place when it is not installed; True when it did.

    nnU-Net imports SimpleITK at module level for its file readers, which this benchmark does not use
    (it hands nnU-Net an array). Its 50 MB wheel would not fit the GPU machine's 64 MiB transfer, so
    there any use of the placeholder raises AttributeError instead of silently doing nothing.
    """
    import importlib.util
    import types

    if importlib.util.find_spec("SimpleITK") is not None:
        return False

    def unavailable(name: str) -> Any:
        raise AttributeError(f"SimpleITK.{name}: SimpleITK is only a placeholder on this machine")

    module = types.ModuleType("SimpleITK")
    module.__getattr__ = unavailable  # type: ignore[method-assign]
    sys.modules["SimpleITK"] = module
    return True


def nnunet(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Ours and nnU-Net's predictor on the same volume; seconds per stage and the model-stage ratio."""
    stubbed = stub_simpleitk()
    import numpy as np
    import torch
    from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from lrc.infer import Predictor
    from lrc.infer.stages import StageTimes
    from lrc.io import Volume, read_volume

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    image = read_volume(series_folder(args))
    if args.crop:  # a centred in-plane crop: the CPU here runs nnU-Net's 3D network at ~30 s a patch
        x0, y0 = ((n - args.crop) // 2 for n in image.shape[:2])
        shift = np.array([[1, 0, 0, x0], [0, 1, 0, y0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
        image = Volume(image.array[x0 : x0 + args.crop, y0 : y0 + args.crop], image.affine @ shift, image.modality)
    model_dir = write_totalseg_like_model(args.work / "nnunet_totalseg_like")
    nn_predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=False,
        perform_everything_on_device=device.type == "cuda",
        device=device,
        verbose=False,
        allow_tqdm=False,
    )
    _initialise(nn_predictor, model_dir)
    # nnU-Net's axis order is SimpleITK's (z, y, x) with spacing reversed likewise.
    array = np.asarray(image.array.T, dtype=np.float32)[None]  # 1 x Z x Y x X
    properties = {"spacing": list(image.spacing[::-1])}
    ours = Predictor.from_dir(args.model, device=device)
    report: dict[str, Any] = {
        "ours": [],
        "nnunet": [],
        "threads": torch.get_num_threads(),
        "simpleitk_stubbed": stubbed,
    }
    if device.type == "cuda":  # warm both (cuDNN autotuning, first kernels), as a worker would be
        ours.predict(image)
        nn_predictor.predict_logits_from_preprocessed_data(torch.zeros([1, *PATCH]))
    # nnU-Net's preprocessing and its resampling back run on the CPU whatever the device, and take
    # far longer than its network on a GPU: each runs once; the two model stages run --repeats times.
    begin = time.perf_counter()
    preprocessed = next(
        PreprocessAdapterFromNpy(
            [array],
            [None],
            [dict(properties)],
            [None],
            nn_predictor.plans_manager,
            nn_predictor.dataset_json,
            nn_predictor.configuration_manager,
            num_threads_in_multithreaded=1,
        )
    )
    pipeline = {"preprocess": time.perf_counter() - begin}
    report["preprocessed_shape"] = list(preprocessed["data"].shape)
    for _ in range(args.repeats):
        times = StageTimes()
        begin = time.perf_counter()
        ours.predict(image, times)
        report["ours"].append({**times.seconds, "total": time.perf_counter() - begin})
        begin = time.perf_counter()
        logits = nn_predictor.predict_logits_from_preprocessed_data(preprocessed["data"])
        _sync(device)
        report["nnunet"].append({"model": time.perf_counter() - begin})
        print(json.dumps({"ours": report["ours"][-1], "nnunet": report["nnunet"][-1]}), flush=True)
    median = {
        who: {k: round(statistics.median(r[k] for r in report[who]), 3) for k in report[who][0]}
        for who in ("ours", "nnunet")
    }
    report["median_s"] = median
    # Best of the repeats too: on a shared CPU the least disturbed run is the better estimate.
    best = {who: {k: round(min(r[k] for r in report[who]), 3) for k in report[who][0]} for who in ("ours", "nnunet")}
    report["min_s"] = best
    report["nnunet_over_ours"] = {
        "model": round(median["nnunet"]["model"] / median["ours"]["model"], 2),
        "model_best_of": round(best["nnunet"]["model"] / best["ours"]["model"], 2),
    }
    report["nnunet_config"] = {
        "patch": PATCH,
        "spacing": SPACING,
        "classes": CLASSES,
        "tile_step_size": 0.5,
        "mirroring": False,
        "architecture": TOTALSEG_ARCH,
    }
    report["nnunet_pipeline_once_s"] = {k: round(v, 3) for k, v in pipeline.items()}
    save(report)  # the model stages are in; nnU-Net's resampling back on the CPU can take a minute
    if args.full:
        begin = time.perf_counter()
        convert_predicted_logits_to_segmentation_with_correct_shape(
            logits.cpu(),
            nn_predictor.plans_manager,
            nn_predictor.configuration_manager,
            nn_predictor.label_manager,
            preprocessed["data_properties"],
            return_probabilities=False,
        )
        pipeline["postprocess"] = time.perf_counter() - begin
        report["nnunet_pipeline_once_s"] = {k: round(v, 3) for k, v in pipeline.items()}
        whole = median["nnunet"]["model"] + sum(pipeline.values())
        report["nnunet_over_ours"]["predict"] = round(whole / median["ours"]["total"], 2)
    return report


def _initialise(predictor: Any, folder: Path) -> None:
    """``initialize_from_trained_model_folder`` without its trainer lookup.

    That lookup imports every trainer module, and nnUNetTrainer's imports batchgeneratorsv2 (training
    augmentations, not installed here). The trainer only builds the network with
    ``get_network_from_plans`` from the plans, which is what this does; then nnU-Net's own
    ``manual_initialization`` sets the predictor up as ``initialize_from_trained_model_folder`` would.
    """
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset = json.loads((folder / "dataset.json").read_text())
    plans = PlansManager(json.loads((folder / "plans.json").read_text()))
    checkpoint = torch.load(folder / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    configuration = plans.get_configuration(checkpoint["init_args"]["configuration"])
    network = get_network_from_plans(
        configuration.network_arch_class_name,
        configuration.network_arch_init_kwargs,
        configuration.network_arch_init_kwargs_req_import,
        1,
        plans.get_label_manager(dataset).num_segmentation_heads,
        allow_init=True,
        deep_supervision=False,
    )
    predictor.manual_initialization(
        network,
        plans,
        configuration,
        [checkpoint["network_weights"]],
        dataset,
        checkpoint["trainer_name"],
        checkpoint["inference_allowed_mirroring_axes"],
    )


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Whole-process read times, lrc.io against SimpleITK, fresh processes, interleaved."""
    folder = series_folder(args)
    code = (
        "import sys, pathlib; sys.path.insert(0, sys.argv[1]); from read_series import read_with; "
        "read_with(sys.argv[2], pathlib.Path(sys.argv[3]))"
    )
    readers = ("lrc", "simpleitk")
    seconds: dict[str, list[float]] = {r: [] for r in readers}
    for reader in readers:  # warm the page cache and the imports' files
        subprocess.run([sys.executable, "-c", code, str(HERE), reader, str(folder)], check=True)
    for _ in range(args.repeats):
        for reader in readers:
            begin = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, str(HERE), reader, str(folder)], check=True)
            seconds[reader].append(time.perf_counter() - begin)
    medians = {r: round(statistics.median(v), 3) for r, v in seconds.items()}
    return {
        "seconds": seconds,
        "median_s": medians,
        "lrc_over_simpleitk": round(medians["lrc"] / medians["simpleitk"], 2),
    }


def series_folder(args: argparse.Namespace) -> Path:
    """The benchmark series (built once by bench/make_series.py)."""
    from make_series import build

    return build(args.shared_data, args.work / f"ct{args.slices}", args.slices)


def main() -> None:
    """Run one comparison and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["nnunet", "ingest"])
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", type=Path, default=HERE.parent / "lrc" / "assets" / "starter_ct_abdomen")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--crop", type=int, default=0, help="nnunet: a centred in-plane crop of this size")
    parser.add_argument("--no-full", dest="full", action="store_false", help="nnunet: skip its resampling back")
    parser.add_argument("--work", type=Path, default=HERE / "out")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("nnUNet_raw", str(args.work))
    os.environ.setdefault("nnUNet_preprocessed", str(args.work))
    os.environ.setdefault("nnUNet_results", str(args.work))
    info = machine(args.device)
    suffix = f"_{args.device.split(':')[0]}" if args.what == "nnunet" else ""
    path = args.out or HERE / "results" / f"speed_{args.what}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)

    def save(result: dict[str, Any]) -> dict[str, Any]:
        report = {"benchmark": f"speed_{args.what}", "machine": info, "loadavg_after": list(os.getloadavg())}
        report.update(slices=args.slices, crop=args.crop or None, **result)
        path.write_text(json.dumps(report, indent=2) + "\n")
        return report

    report = save(nnunet(args, save) if args.what == "nnunet" else ingest(args))
    print(json.dumps({k: report[k] for k in report if k in ("median_s", "nnunet_over_ours", "lrc_over_simpleitk")}))


if __name__ == "__main__":
    main()
