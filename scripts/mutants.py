"""Sampled mutation testing: how many small bugs in resviz's core code do the tests catch?

A full ``mutmut run`` over resviz makes thousands of mutants and takes hours on two cores, and its
first run needs the package importable from mutmut's ``mutants/`` copy. This script keeps mutmut
for what it is good at, *generating* mutants (``mutmut.mutation.file_mutation.create_mutations``,
the same operators ``mutmut run`` uses), and drives a small, reproducible run itself:

1. Enumerate every mutant of each target file (default: ``DEFAULT_TARGETS``, or the files given on
   the command line, globs allowed). Mutants that only change a string literal are dropped (they
   mostly rewrite messages and labels), as are those outside functions, which mutmut never applies.
2. Take a fixed-seed random sample (``--seed``, ``--sample``) across all target files.
3. Find the tests that matter for each mutant. Grepping tests for module names is not reliable
   here (most tests reach the counting and tracing code through ``resviz.api``), so the mapping is
   measured: every test file (``TEST_GLOB``) runs once on the unmutated code under coverage, with
   one coverage context per test. A test is relevant to a mutant if it executed one of the lines
   the mutant changes; a line run outside any test (at import or collection, such as the preset
   registry) makes every test file that imported it relevant. The clean run also gives each test
   file's duration and must pass.
4. Run each mutant in a scratch copy of the repository (one per worker, ``--jobs``), imported via
   ``PYTHONPATH`` (checked), never in the working tree: first only the tests that cover the
   mutated lines (fast, ``-x``), then, if all of them pass, every test file holding a test that
   covers them (so fixtures shared within a file cannot hide a kill). A failing or erroring test,
   a broken import, or a run longer than ``TIMEOUT_FACTOR`` times the clean run counts as killed.
5. Write ``results.json`` and a readable ``summary.md`` (kill rate per file, each survivor with
   file:line and its diff) under ``--out`` (default ``.mutants/``, git-ignored), print the
   summary, and exit 0: the kill rate is a measurement, not a gate.

Usage: ``python scripts/mutants.py [--seed 20240607] [--sample 100] [--jobs 2] [FILE_OR_GLOB ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider
from mutmut.configuration import config as mutmut_config
from mutmut.mutation.file_mutation import create_mutations, deep_replace

ROOT = Path(__file__).resolve().parent.parent

# The code under test. Edit this list (or pass files/globs on the command line) when modules move.
DEFAULT_TARGETS: tuple[str, ...] = (
    "resviz/model/blocks.py",
    "resviz/model/resnet.py",
    "resviz/model/weights.py",
    "resviz/model/fastmeta.py",
    "resviz/zoo.py",
    "resviz/measure/counting.py",
    "resviz/measure/static.py",
    "resviz/measure/stats.py",
    "resviz/measure/tracer.py",
    "resviz/measure/monitor.py",
    "resviz/measure/transfer.py",
    "resviz/measure/fastpaths.py",
)
# Test files that may be run against mutants; which of them actually run is measured (step 3).
TEST_GLOB = "tests/test_*.py"
# Extra pytest arguments for every run: the browser test needs chromium and adds nothing here.
PYTEST_ARGS: tuple[str, ...] = ("-q", "-p", "no:cacheprovider", "-m", "not browser")
TIMEOUT_FACTOR = 5.0
TIMEOUT_FLOOR_S = 30.0
DEFAULT_SEED = 20240607
DEFAULT_SAMPLE = 100
# Not copied into the scratch copies.
COPY_IGNORE = (
    ".git",
    ".venv",
    ".mutants",
    "mutants",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "*.egg-info",
    "build",
    "dist",
    "out",
)

COVERAGE_PLUGIN = textwrap.dedent(
    '''
    """pytest plugin: record coverage of the target files with one context per test (node id)."""
    import os

    import coverage
    import pytest

    _cov = None


    def pytest_configure(config):
        global _cov
        include = os.environ["MUTANTS_COV_INCLUDE"].split(",")
        _cov = coverage.Coverage(data_file=os.environ["MUTANTS_COV_FILE"], include=include)
        _cov.start()


    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        _cov.switch_context(item.nodeid)
        yield
        _cov.switch_context("")


    def pytest_unconfigure(config):
        _cov.stop()
        _cov.save()
    '''
)


@dataclass
class Mutant:
    """One mutant: where it is, what it changes, and (after the run) what happened to it."""

    id: int
    file: str
    line: int
    end_line: int
    function: str
    kind: str
    diff: str
    status: str = "pending"  # killed | survived | no-tests
    how: str = ""  # e.g. "stage 1: tests failed", "timeout"
    seconds: float = 0.0
    tests: list[str] = field(default_factory=list)
    killed_by: list[str] = field(default_factory=list)


@dataclass
class CleanRun:
    """What the unmutated code's test run tells us: test durations and which tests cover which lines."""

    file_seconds: dict[str, float]
    # target file -> line -> node ids of the tests that executed it
    covered_by: dict[str, dict[int, list[str]]]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("targets", nargs="*", help="files or globs to mutate, relative to the repository root")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the mutant sample (default %(default)s)")
    p.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="mutants to run (default %(default)s; 0: all)")
    p.add_argument("--jobs", type=int, default=2, help="parallel workers, each in its own scratch copy")
    p.add_argument("--out", type=Path, default=ROOT / ".mutants", help="results folder (default .mutants/)")
    p.add_argument("--skip-tests", action="append", default=[], metavar="GLOB", help="test files not to use")
    p.add_argument("--list", action="store_true", help="only enumerate and sample the mutants, run nothing")
    return p.parse_args(argv)


def resolve_targets(patterns: Sequence[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns or DEFAULT_TARGETS:
        matches = sorted(ROOT.glob(pattern)) if any(c in pattern for c in "*?[") else [ROOT / pattern]
        for path in matches:
            if not path.is_file():
                raise SystemExit(f"mutants: no such target file: {pattern}")
            rel = path.relative_to(ROOT).as_posix()
            if rel not in files:
                files.append(rel)
    return files


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _load_mutmut_config() -> None:
    """mutmut reads its settings from the working directory and fails if it cannot guess the source
    folder; give it an empty configuration once (we only use its mutation operators)."""
    with tempfile.TemporaryDirectory() as tmp, _cwd(Path(tmp)):
        Path("setup.cfg").write_text("[mutmut]\nsource_paths = .\n")
        mutmut_config()


def enumerate_mutants(files: Sequence[str]) -> list[tuple[str, cst.Module, cst.CSTNode, cst.CSTNode, str]]:
    """Every non-string mutant of every file, in a fixed order: (file, module, original, mutated, function)."""
    _load_mutmut_config()
    out = []
    for rel in files:
        code = (ROOT / rel).read_text()
        module, mutations, _, ignored_functions = create_mutations(rel, code)
        for m in mutations:
            func = m.contained_by_top_level_function
            if not isinstance(func, cst.FunctionDef) or func.name.value in ignored_functions:
                continue  # mutmut only applies mutants inside functions and methods
            if isinstance(m.original_node, cst.BaseString):
                continue  # string-literal mutants: messages and labels, not behaviour
            out.append((rel, module, m.original_node, m.mutated_node, func.name.value))
    return out


def build_mutants(
    chosen: Sequence[tuple[str, cst.Module, cst.CSTNode, cst.CSTNode, str]],
) -> tuple[list[Mutant], dict[int, str]]:
    """Render the chosen mutants: metadata for the report, and the mutated source of each."""
    positions: dict[int, dict[cst.CSTNode, CodeRange]] = {}
    mutants: list[Mutant] = []
    sources: dict[int, str] = {}
    for i, (rel, module, original, mutated, func) in enumerate(chosen):
        if id(module) not in positions:
            positions[id(module)] = dict(MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider))
        pos = positions[id(module)][original]
        new_module = deep_replace(module, original, mutated)
        assert isinstance(new_module, cst.Module)
        new_code = new_module.code
        diff = "".join(
            difflib.unified_diff(
                module.code.splitlines(keepends=True), new_code.splitlines(keepends=True), rel, rel, n=0
            )
        )
        mutants.append(Mutant(i, rel, pos.start.line, pos.end.line, func, type(original).__name__, diff))
        sources[i] = new_code
    return mutants, sources


def make_scratch(dest: Path, out: Path) -> Path:
    """A copy of the repository at ``dest``, without ``COPY_IGNORE`` nor the results folder ``out``
    (which may lie inside the repository under any name)."""
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns(*COPY_IGNORE, out.resolve().name)
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    env = _env(dest)
    got = subprocess.run(
        [sys.executable, "-c", "import resviz; print(resviz.__file__)"],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(got).resolve() != (dest / "resviz" / "__init__.py").resolve():
        raise SystemExit(f"mutants: scratch copy {dest} imports resviz from {got}, not from the copy")
    return dest


def _env(scratch: Path, extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(scratch)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc of the same size and second would hide a mutant
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


def run_pytest(
    scratch: Path, args: Sequence[str], timeout: float | None, env: dict[str, str]
) -> tuple[int, float, str]:
    """Run pytest in `scratch`; returns (exit code or -1 on timeout, seconds, output tail)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, *args],
        cwd=scratch,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = -1
    return rc, time.monotonic() - start, out[-3000:]


def clean_run(
    scratches: Queue[Path], targets: Sequence[str], test_files: Sequence[str], out: Path, jobs: int
) -> CleanRun:
    """Run each test file once on the unmutated code, under coverage with one context per test."""
    plugin_dir = out / "plugin"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    (plugin_dir / "_mutants_cov.py").write_text(COVERAGE_PLUGIN)
    cov_dir = out / "coverage"
    shutil.rmtree(cov_dir, ignore_errors=True)
    cov_dir.mkdir()

    def one(i: int, test_file: str) -> tuple[str, float, Path]:
        scratch = scratches.get()
        try:
            data_file = cov_dir / f"cov.{i}"
            env = _env(scratch, plugin_dir)
            env["MUTANTS_COV_FILE"] = str(data_file)
            env["MUTANTS_COV_INCLUDE"] = ",".join(str(scratch / t) for t in targets)
            rc, secs, tail = run_pytest(scratch, ["-p", "_mutants_cov", test_file], None, env)
            if rc not in (0, 5):
                raise SystemExit(f"mutants: {test_file} fails on the unmutated code (exit {rc}):\n{tail}")
            return test_file, secs, scratch
        finally:
            scratches.put(scratch)

    import coverage  # mutmut depends on it

    file_seconds: dict[str, float] = {}
    covered_by: dict[str, dict[int, set[str]]] = {t: {} for t in targets}
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda a: one(*a), enumerate(test_files)))
    for i, (test_file, secs, _) in enumerate(results):
        file_seconds[test_file] = secs
        data_file = cov_dir / f"cov.{i}"
        if not data_file.exists():
            continue
        data = coverage.CoverageData(basename=str(data_file))
        data.read()
        for measured in data.measured_files():
            rel = _target_of(measured, targets)
            if rel is None:
                continue
            for line, contexts in data.contexts_by_lineno(measured).items():
                entry = covered_by[rel].setdefault(line, set())
                entry.update(c for c in contexts if c)
                if "" in contexts:  # run at import or collection: the whole file depends on it
                    entry.add(test_file)
    return CleanRun(file_seconds, {t: {ln: sorted(c) for ln, c in lines.items()} for t, lines in covered_by.items()})


def _target_of(measured: str, targets: Sequence[str]) -> str | None:
    for t in targets:
        if measured.endswith("/" + t):
            return t
    return None


def run_mutant(m: Mutant, source: str, scratch: Path, clean: CleanRun) -> None:
    """Apply one mutant in `scratch`, run its tests in two stages, restore the file."""
    nodeids = sorted({n for ln in range(m.line, m.end_line + 1) for n in clean.covered_by[m.file].get(ln, [])})
    files = sorted({n.split("::")[0] for n in nodeids}, key=lambda f: clean.file_seconds.get(f, 0.0))
    m.tests = files
    if not nodeids:
        m.status, m.how = "no-tests", "no test executes these lines"
        return
    budget = TIMEOUT_FLOOR_S + TIMEOUT_FACTOR * sum(clean.file_seconds.get(f, 0.0) for f in files)
    target = scratch / m.file
    original = target.read_text()
    target.write_text(source)
    env = _env(scratch)
    try:
        for stage, args in ((1, ["-x", *nodeids]), (2, ["-x", *files])):
            rc, secs, tail = run_pytest(scratch, args, budget, env)
            m.seconds += secs
            if rc == -1:
                m.status, m.how = "killed", f"stage {stage}: timeout after {secs:.0f} s"
                return
            if rc in (1, 2, 3):  # tests failed, interrupted (e.g. import error), internal error
                last = tail.strip().splitlines()[-1] if tail.strip() else ""
                m.killed_by = [ln.split()[1] for ln in tail.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
                m.status, m.how = "killed", f"stage {stage}: exit {rc}: {last[:160]}"
                return
        m.status, m.how = "survived", "all covering tests pass"
    finally:
        target.write_text(original)


def summarize(mutants: Sequence[Mutant], meta: dict[str, object]) -> str:
    lines = ["# Mutation run (sampled)", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    killed = sum(m.status == "killed" for m in mutants)
    lines += ["", f"**Killed {killed}/{len(mutants)} = {100 * killed / max(len(mutants), 1):.1f} %**", ""]
    lines += ["| file | mutants | killed | survived | no tests | kill rate |", "|---|---:|---:|---:|---:|---:|"]
    for f in sorted({m.file for m in mutants}):
        ms = [m for m in mutants if m.file == f]
        k = sum(m.status == "killed" for m in ms)
        s = sum(m.status == "survived" for m in ms)
        n = sum(m.status == "no-tests" for m in ms)
        lines.append(f"| {f} | {len(ms)} | {k} | {s} | {n} | {100 * k / len(ms):.0f} % |")
    survivors = [m for m in mutants if m.status != "killed"]
    lines += ["", f"## Survivors ({len(survivors)})", ""]
    for m in survivors:
        lines += [
            f"### {m.file}:{m.line} in `{m.function}` ({m.status}; tests: {', '.join(m.tests) or 'none'})",
            "",
            "```diff",
            m.diff.rstrip(),
            "```",
            "",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    targets = resolve_targets(args.targets)
    everything = enumerate_mutants(targets)
    rng = random.Random(args.seed)
    n = len(everything) if args.sample <= 0 else min(args.sample, len(everything))
    picked = sorted(rng.sample(range(len(everything)), n))
    mutants, sources = build_mutants([everything[i] for i in picked])
    print(f"mutants: {len(everything)} non-string mutants in {len(targets)} files; sampled {n} (seed {args.seed})")
    out: Path = args.out.resolve()  # the scratch copies run elsewhere: no relative paths
    out.mkdir(parents=True, exist_ok=True)
    if args.list:
        for m in mutants:
            print(f"{m.file}:{m.line} {m.kind}\n{m.diff}")
        return 0

    skipped = {p for g in args.skip_tests for p in ROOT.glob(g)}
    test_files = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(TEST_GLOB) if p not in skipped)
    jobs = max(1, args.jobs)
    scratches: Queue[Path] = Queue()
    for j in range(jobs):
        scratches.put(make_scratch(out / "work" / f"w{j}", out))
    clean = clean_run(scratches, targets, test_files, out, jobs)
    print(f"mutants: clean run of {len(test_files)} test files done in {time.monotonic() - t0:.0f} s")

    done = 0

    def work(m: Mutant) -> None:
        nonlocal done
        scratch = scratches.get()
        try:
            run_mutant(m, sources[m.id], scratch, clean)
        finally:
            scratches.put(scratch)
        done += 1
        print(f"[{done}/{n}] {m.status:8} {m.file}:{m.line} ({m.seconds:.0f} s) {m.how}", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(work, mutants))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    meta: dict[str, object] = {
        "commit": commit.strip() or "unknown",
        "seed": args.seed,
        "sample": n,
        "population (non-string mutants)": len(everything),
        "jobs": jobs,
        "wall time": f"{time.monotonic() - t0:.0f} s",
        "targets": ", ".join(targets),
    }
    killed = sum(m.status == "killed" for m in mutants)
    (out / "results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "killed": killed,
                "total": n,
                "kill_rate": killed / max(n, 1),
                "clean_file_seconds": clean.file_seconds,
                "mutants": [asdict(m) for m in mutants],
            },
            indent=2,
        )
    )
    summary = summarize(mutants, meta)
    (out / "summary.md").write_text(summary)
    print(summary)
    print(f"mutants: wrote {out / 'results.json'} and {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
