"""Benchmark of the paths and lesion studies (Veit et al. 2016, arXiv:1605.06431) on CPU.

1. paths: :func:`resviz.studies.paths.paths_study` on ResNet-110 (54 blocks) at initialisation, every
   path length 0..54, ``--samples`` random subsets per length (target: under 3 minutes on 2 cores),
   with the largest relative sampling error;
2. lesion: ResNet-56 trained briefly on the digits training split (8x8, their own resolution), then
   :func:`resviz.studies.lesion.lesion_study` on the held-out split (target: training and study
   under 5 minutes); ``--models resnet56,plain56`` adds the plain twin for comparison.

Run: ``python bench/study_bench_b.py [--only paths|lesion] [--samples 8] [--steps 200] [--models resnet56,plain56]
[--out DIR]``; prints a Markdown section for ``bench/RESULTS.md`` and, with ``--out``, writes the
records (JSON) and the figures (HTML) there.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from resviz.model.resnet import build_model
from resviz.records.paths import LesionStudy, PathsStudy
from resviz.render.report.study_paths import lesion_figures, lesion_findings, paths_figures, paths_findings
from resviz.studies.lesion import digits_split, lesion_study
from resviz.studies.paths import paths_study
from resviz.studies.training import train


def bench_paths(samples: int, batch: int, size: int, out: Path | None) -> PathsStudy:
    torch.manual_seed(0)
    model = build_model("resnet110", device="cpu")
    clock = _Clock()
    study = paths_study("resnet110", model, (batch, 3, size, size), samples_per_k=samples, weights="initialisation")
    seconds, cpu = clock.read()
    worst = max(r.grad_norm_err / r.grad_norm for r in study.lengths if r.grad_norm > 0)
    backwards = sum(r.samples for r in study.lengths)
    print(f"### paths: resnet110, input {batch}x3x{size}x{size}, {samples} subsets per length\n")
    print(f"- time: {seconds:.1f} s wall, {cpu:.1f} s CPU ({backwards} gated backward passes, 1 forward; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"- effective range ({study.settings.fraction:.0%} of the contribution): {study.effective_range}")
    print(f"- largest relative sampling error (std/sqrt(n) / mean): {worst:.1%}")
    for line in paths_findings(study):
        print(f"- {line}")
    _save(out, "paths_resnet110", study.to_dict(), paths_figures(study))
    return study


class _Clock:
    """Wall and CPU seconds since creation (the machine may be shared: CPU time says what the run cost)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _train(name: str, steps: int, batch: int, size: int) -> tuple[torch.nn.Module, list, tuple[float, float], float]:
    torch.manual_seed(0)
    model = build_model(name, device="cpu")
    train_batches, held = digits_split((3, size, size), held_out=360, batch=batch, count=steps + 1, eval_batch=360)
    clock = _Clock()
    runs, _ = train([(name, model)], train_batches, steps, lr=0.05, every=None)
    return model, held, clock.read(), runs[0].losses[-1]


def bench_lesion(name: str, steps: int, batch: int, size: int, seeds: int) -> LesionStudy:
    model, held, (train_s, train_cpu), last = _train(name, steps, batch, size)
    clock = _Clock()
    study = lesion_study(name, model, held, seeds=seeds)
    lesion_s, lesion_cpu = clock.read()
    print(f"\n### lesion: {name}, {steps} SGD steps of {batch} digits {size}x{size}, {seeds} draws per set size\n")
    print(f"- training: {train_s:.1f} s wall, {train_cpu:.1f} s CPU (last loss {last:.3f}); lesion study: "
          f"{lesion_s:.1f} s wall, {lesion_cpu:.1f} s CPU; total {train_s + lesion_s:.1f} s wall "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for line in lesion_findings(study):
        print(f"- {line}")
    return study


def _save(out: Path | None, stem: str, record: dict, figures: list) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1))
    html = "".join(f.to_html(full_html=False, include_plotlyjs="cdn" if i == 0 else False)
                   for i, f in enumerate(figures))
    (out / f"{stem}.html").write_text(f"<html><body>{html}</body></html>")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("paths", "lesion"))
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--paths-batch", type=int, default=2)
    ap.add_argument("--paths-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=8, help="digits are 8x8: larger sizes only upsample them")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--models", default="resnet56", help="comma-separated, e.g. resnet56,plain56 (the plain twin)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if args.only in (None, "paths"):
        bench_paths(args.samples, args.paths_batch, args.paths_size, args.out)
    if args.only in (None, "lesion"):
        names = args.models.split(",")
        studies = [bench_lesion(name, args.steps, args.batch, args.size, args.seeds) for name in names]
        records = {"studies": [s.to_dict() for s in studies]}
        _save(args.out, "lesion_" + "_".join(names), records, lesion_figures(*studies))


if __name__ == "__main__":
    main()
