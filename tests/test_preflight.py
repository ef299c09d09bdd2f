"""The memory pre-flight: what a pass is estimated to need, what is available, and the refusal.

Every entry point that runs a real pass (trace, traced diagram views, the dashboard's traced pages,
comparisons) must refuse, in one line and before building or allocating anything, a pass that would
not fit; and must not refuse a modest one.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from resviz import api
from resviz.api import preflight
from resviz.api.preflight import Available, ProcFiles, available_memory
from resviz.cli import app
from resviz.errors import ResvizError
from resviz.measure import memory
from resviz.model.resnet import build_model
from resviz.studies.data import data_bytes

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


def _fake_memory(monkeypatch: pytest.MonkeyPatch, size: int, limit: str = "MemAvailable") -> None:
    monkeypatch.setattr(preflight, "available_memory", lambda _device: Available(size, limit))


def _never(*_: object, **__: object) -> Any:
    raise AssertionError("built or run although refused")


# ------------------------------------------------------------------------------ the estimate
def test_the_parts_of_a_trace_follow_the_parameters() -> None:
    """float32: weights 4 bytes a parameter (plus BatchNorm buffers), gradients the same."""
    spec = api.get_spec("resnet20")
    summary = api.analyze_spec(spec, (8, 3, 32, 32))
    need = memory.trace_need(summary)
    params = summary.total_params
    buffers = memory.module_buffer_bytes(build_model(spec, device="meta"))
    assert memory.buffer_bytes(summary) == buffers
    assert need.weights == 4 * params + buffers
    assert need.gradients == 4 * params and need.optimizer == 0
    assert need.activations == pytest.approx(summary.activation_bytes * memory.ACTIVATION_SHARE, abs=1)
    assert need.inputs == 8 * 3 * 32 * 32 * 4 + 8 * 8
    assert need.total == sum(need[:6])
    assert memory.trace_need(summary, weights_exist=True).weights == 0


def test_a_comparison_counts_momentum_when_training_and_what_its_data_holds() -> None:
    s20, p20 = (api.analyze_spec(api.get_spec(n), (1, 3, 32, 32)) for n in ("resnet20", "plain20"))
    data = data_bytes("synthetic", 4, 16, (3, 32, 32))
    trained = memory.compare_need([s20, p20], batch=16, steps=3, data=data)
    grads = 4 * (s20.total_params + p20.total_params)
    assert trained.gradients == grads and trained.optimizer == grads  # SGD momentum: one buffer a parameter
    assert trained.data == data == 10 * 3 * 32 * 32 * 4  # the class templates
    assert trained.inputs == memory.BATCH_COPIES * (16 * 3 * 32 * 32 * 4 + 16 * 8)  # one batch made at a time
    one = memory.trace_need(s20).activations
    assert trained.activations == one * 16 * memory.TRAINING_PASSES
    probe = memory.compare_need([s20, p20], batch=16, steps=0, data=data)
    assert probe.optimizer == 0 and probe.gradients == 4 * max(s20.total_params, p20.total_params)
    assert probe.activations == one * 16
    assert probe.per_sample * 16 >= probe.activations + probe.inputs


class _Hooked(nn.Module):
    """A user's module that counts its forward calls, with a frozen layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)
        self.fc.requires_grad_(False)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


def test_a_user_module_is_estimated_from_its_real_parameters_without_running_it() -> None:
    model = _Hooked()
    fired: list[str] = []
    model.conv.register_forward_hook(lambda *_: fired.append("hook"))
    need = memory.module_need(model, (4, 3, 16, 16), "_Hooked")
    assert model.calls == 0 and not fired  # neither the module nor its hooks ran
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert need.weights == 0  # already in memory
    assert need.gradients == 4 * (3 * 8 * 9 + 8 + 16)  # the frozen fc has no gradient
    assert need.activations >= 4 * 8 * 16 * 16 * 4  # the conv output, at least
    tr = api.trace(model, input_size="4x3x16x16")  # once for real, once on meta to find its structure
    assert model.calls == 2 and fired == ["hook"] and tr.input_shape == (4, 3, 16, 16)


# ---------------------------------------------------------------------- available memory
def _machine(tmp_path: Path, *, v2: bool = True, limit: str = "4294967296", usage: int = GIB) -> ProcFiles:
    """A fake /proc and cgroup tree: 8 GiB MemAvailable, a cgroup two levels deep."""
    (tmp_path / "meminfo").write_text("MemTotal:       16000000 kB\nMemAvailable:    8388608 kB\n")
    (tmp_path / "status").write_text("Name:\tpython\nVmSize:\t 2097152 kB\nVmRSS:\t  100000 kB\n")
    mount = tmp_path / "cg"
    leaf = mount / "jobs" / "me"
    leaf.mkdir(parents=True)
    names = ("memory.max", "memory.current") if v2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
    (leaf / names[0]).write_text(limit + "\n")
    (leaf / names[1]).write_text(f"{usage}\n")
    (mount / "jobs" / names[0]).write_text("max\n" if v2 else "9223372036854771712\n")
    (mount / "jobs" / names[1]).write_text(f"{usage}\n")
    if v2:
        (tmp_path / "cgroup").write_text("0::/jobs/me\n")
        mountinfo = f"41 31 0:38 / {mount} rw,relatime - cgroup2 cgroup2 rw\n"
    else:
        (tmp_path / "cgroup").write_text("4:memory:/jobs/me\n3:cpu:/\n")
        mountinfo = f"35 31 0:32 / {mount} rw,relatime - cgroup cgroup rw,memory\n"
    (tmp_path / "mountinfo").write_text(mountinfo)
    return ProcFiles(*(str(tmp_path / n) for n in ("meminfo", "cgroup", "mountinfo", "status")))


def test_the_cgroup_page_cache_it_can_drop_counts_as_available(tmp_path: Path) -> None:
    files = _machine(tmp_path)
    (tmp_path / "cg" / "jobs" / "me" / "memory.stat").write_text(f"anon 1234\ninactive_file {GIB // 2}\n")
    assert preflight.cgroup_available(files) == 3 * GIB + GIB // 2


def _unlimited() -> int:
    return resource.RLIM_INFINITY


def _nothing() -> int:
    return 0


def test_memory_the_process_freed_counts_on_top_of_the_least_limit(tmp_path: Path) -> None:
    files = _machine(tmp_path)
    assert available_memory(torch.device("cpu"), files, _unlimited, lambda: GIB) == Available(4 * GIB, "cgroup limit")


def test_a_finished_pass_leaves_memory_the_next_one_reuses() -> None:
    """glibc keeps much of what a trace freed; the pre-flight counts it, so a second, equal pass is not
    refused for memory the first one left behind."""
    import ctypes

    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("no glibc mallinfo2 here")
    api.trace("resnet20", input_size="64x3x32x32", device="cpu")
    assert preflight.heap_free() > 32 * 2**20


@pytest.mark.parametrize("v2", [True, False])
def test_the_cgroup_limit_binds_when_it_is_the_least(tmp_path: Path, v2: bool) -> None:
    files = _machine(tmp_path, v2=v2)
    cpu = torch.device("cpu")
    got = available_memory(cpu, files, _unlimited, _nothing)
    assert got == Available(3 * GIB, "cgroup limit")  # 4 GiB less 1 GiB used


def test_mem_available_binds_without_a_cgroup_limit(tmp_path: Path) -> None:
    files = _machine(tmp_path, limit="max")
    assert available_memory(torch.device("cpu"), files, _unlimited, _nothing) == Available(8 * GIB, "MemAvailable")


def test_the_address_space_limit_counts_what_the_process_has_mapped(tmp_path: Path) -> None:
    files = _machine(tmp_path)
    limit = 2 * GIB + GIB // 2  # VmSize is 2 GiB: half a GiB is left, less the worker threads' arenas
    arenas = preflight.ARENA_BYTES * torch.get_num_threads()
    got = available_memory(torch.device("cpu"), files, lambda: limit, _nothing)
    assert got == Available(GIB // 2 - arenas, "ulimit -v")


def test_missing_files_fall_back_to_what_can_be_read(tmp_path: Path) -> None:
    files = ProcFiles(*(str(tmp_path / n) for n in ("a", "b", "c", "d")))
    got = available_memory(torch.device("cpu"), files, _unlimited, _nothing)
    assert got.limit == "physical memory" and got.bytes > 0


def test_this_process_has_memory_and_names_its_limit() -> None:
    got = available_memory(torch.device("cpu"))
    assert got.bytes > 0 and got.limit in ("MemAvailable", "cgroup limit", "ulimit -v")


# ---------------------------------------------------------------------------- the refusal
def test_the_advice_is_a_batch_that_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_memory(monkeypatch, 8 * GIB)
    with pytest.raises(ResvizError) as err:
        api.check_trace("resnet50", "256x3x512x512", "cpu")
    message = str(err.value)
    assert "\n" not in message and "(MemAvailable)" in message
    n = int(re.search(r"lower the batch to (\d+)", message).group(1))  # type: ignore[union-attr]
    assert preflight.fits(api.trace_memory("resnet50", (n, 3, 512, 512)).total, 8 * GIB)
    assert not preflight.fits(api.trace_memory("resnet50", (n + 1, 3, 512, 512)).total, 8 * GIB)


@given(
    fixed=st.integers(0, 8 * GIB), sample=st.integers(1, GIB), batch=st.integers(1, 4096),
    avail=st.integers(1, 64 * GIB),
)
def test_the_largest_batch_fits_and_one_more_does_not(fixed: int, sample: int, batch: int, avail: int) -> None:
    """Activations and inputs grow linearly with the batch; the rest does not."""
    need = memory.MemoryNeed(fixed, 0, 0, sample * batch, 0, 0, batch)
    n = preflight.largest_batch(need, avail)
    if n >= 1:
        assert preflight.fits(fixed + n * need.per_sample, avail)
    assert not preflight.fits(fixed + (n + 1) * need.per_sample, avail)


def test_too_little_for_one_sample_suggests_a_smaller_input(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_memory(monkeypatch, 2 * GIB)
    with pytest.raises(ResvizError, match=r"lower the batch to 1 and the input to about 1x3x\d+x\d+"):
        api.check_trace("resnet50", "4x3x2048x2048", "cpu")
    weights_only = memory.MemoryNeed(4 * GIB, 0, 0, 1, 0, 0, 1)
    with pytest.raises(ResvizError, match=r"the model alone needs 4\.0 GiB"):
        preflight.check_need("a trace", weights_only, torch.device("cpu"), (1, 3, 8, 8))


def test_compare_too_large_is_refused_in_one_line_before_building(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """The issue's example: 64 images of 512x512 for two CIFAR nets (about 40 GiB)."""
    from resviz.studies import candidates, compare

    _fake_memory(monkeypatch, 16 * GIB)
    monkeypatch.setattr(candidates, "build_model", _never)
    monkeypatch.setattr(compare, "load_batches", _never)
    out = tmp_path / "r.html"
    start = time.perf_counter()
    res = CliRunner().invoke(app, ["compare", "resnet20", "plain20", "--batch", "64", "--input", "3x512x512",
                                   "-o", str(out)])
    assert time.perf_counter() - start < 5
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: a comparison of resnet20, plain20 at 64x3x512x512")
    assert "16.0 GiB available on cpu (MemAvailable)" in lines[0] and "lower the batch to " in lines[0]
    assert not out.exists()


def test_a_data_set_too_large_at_the_input_size_is_refused_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1,797 digits upsampled to 512x512 hold about 16 GiB whatever the batch: the advice is a
    smaller input, and the input it names fits."""
    pytest.importorskip("sklearn")
    from resviz.studies import candidates, compare

    _fake_memory(monkeypatch, 8 * GIB)
    monkeypatch.setattr(candidates, "build_model", _never)
    monkeypatch.setattr(compare, "load_batches", _never)
    with pytest.raises(ResvizError, match=r"needs about 1[5-7]\.\d GiB \(data 15\.8 GiB\)") as err:
        api.compare(["resnet20", "plain20"], batch=2, input_size="3x512x512", data="digits")
    found = re.search(r"lower the batch to 1 and the input to about 1x3x(\d+)x(\d+)", str(err.value))
    assert found, str(err.value)
    side = int(found.group(1))
    assert 8 <= side < 512
    summaries = [api.analyze_spec(api.get_spec(n), (1, 3, side, side)) for n in ("resnet20", "plain20")]
    need = memory.compare_need(summaries, 1, 0, data_bytes("digits", 1, 1, (3, side, side)))
    assert preflight.fits(need.total, 8 * GIB)


def test_a_traced_diagram_view_too_large_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from resviz.api import tracing

    _fake_memory(monkeypatch, GIB)
    monkeypatch.setattr(tracing, "resolve_model", _never)
    for extra in (["--view", "gradient-flow"], ["--color-by", "std"]):
        out = tmp_path / "d.svg"
        res = CliRunner().invoke(app, ["diagram", "resnet50", "--input", "64x3x224x224", "-o", str(out), *extra])
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: a trace of resnet50 at 64x3x224x224 needs about")
        assert not out.exists()


def test_a_users_module_too_large_is_refused_before_its_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from resviz.api import tracing

    _fake_memory(monkeypatch, 64 * 2**20)
    monkeypatch.setattr(tracing, "trace_module", _never)
    model = _Hooked()
    with pytest.raises(ResvizError, match="a trace of _Hooked at 64x3x256x256 needs about"):
        api.trace(model, input_size="64x3x256x256")
    assert model.calls == 0


def test_the_dashboard_shows_a_refused_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from resviz.studies import candidates

    _fake_memory(monkeypatch, GIB)
    monkeypatch.setattr(candidates, "build_model", _never)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["model"] = "resnet20"
    at.query_params["page"] = "Compare"
    at.run()
    at.number_input(key="cmp_batch").set_value(256)
    at.number_input(key="cmp_size").set_value(512)
    at.button(key="cmp_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [str(e.value) for e in at.error]
    assert len(shown) == 1 and shown[0].startswith("a comparison of resnet20, plain20 at 256x3x512x512"), shown


def test_a_modest_trace_passes_on_this_machine() -> None:
    api.check_trace("resnet18", "2x3x224x224", "cpu")
    need = api.trace_memory("resnet18", (2, 3, 224, 224))
    assert 100 * 2**20 < need.total < 400 * 2**20


CAPPED = """
import re, resource, sys
import torch, resviz.api, resviz.cli
size = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 2 * 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
sys.argv = ["resviz", "trace", "resnet50", "--input", "64x3x224x224"]
resviz.cli.main()
"""


def test_under_an_address_space_limit_the_cli_refuses_before_allocating() -> None:
    """A real process under ``ulimit -v`` (its size after importing torch plus 2 GiB, far from the ~9 GiB
    resnet50 needs at 64x3x224x224): the trace is refused in one line with exit 2, naming the limit,
    rather than dying of a MemoryError or being killed."""
    res = subprocess.run([sys.executable, "-c", CAPPED], capture_output=True, text=True, cwd=ROOT, timeout=120)
    lines = (res.stdout + res.stderr).strip().splitlines()
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: a trace of resnet50 at 64x3x224x224"), lines
    assert "(ulimit -v)" in lines[0]


CAPPED_FIT = """
import re, resource, sys
import torch, resviz.api
from resviz.errors import ResvizError
size = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    resviz.api.trace("resnet20", input_size="4096x3x32x32")
    sys.exit("not refused")
except ResvizError as exc:
    advised = int(re.search(r"lower the batch to (\\d+)", str(exc)).group(1))
trace = resviz.api.trace("resnet20", input_size=f"{advised}x3x32x32")
print(advised, trace.input_shape[0], len(trace.blocks))
"""


def test_under_an_address_space_limit_the_batch_the_refusal_names_runs() -> None:
    """Refusing what would fit is a bug too: under ``ulimit -v`` (1 GiB above the process's size),
    the batch a refusal advises really runs in the same capped process."""
    res = subprocess.run([sys.executable, "-c", CAPPED_FIT], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    advised, ran, blocks = (int(v) for v in res.stdout.split())
    assert 32 <= advised == ran < 4096 and blocks == 9


def test_a_reconciliation_too_large_is_refused_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconciling runs real forward passes on the CPU: a large input is refused first, in one line."""
    import resviz.api as api_module

    _fake_memory(monkeypatch, GIB)
    monkeypatch.setattr(api_module, "build_model", _never)
    monkeypatch.setattr(api_module, "reconcile_module", _never)
    res = CliRunner().invoke(app, ["flops", "resnet18", "--reconcile", "--input", "1x3x4096x4096"])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: a reconciliation of resnet18 at 1x3x4096x4096 needs")
