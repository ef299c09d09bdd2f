"""Bring your own model on the command line: ``pkg.mod:factory``, ``path/file.py:factory`` and
``torchvision:``/``timm:`` names, ``--weights``, and a one-line refusal for every way a factory fails."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import resviz
from resviz.api.factories import is_factory, load_factory
from resviz.errors import ResvizError

ROOT = Path(__file__).resolve().parent.parent
NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.body(x)
        return self.head(x.mean((2, 3)))


def make():
    return Net()


def broken():
    raise ValueError("no such width")


def not_a_module():
    return 3


def exits():
    raise SystemExit(3)
'''


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "resviz", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture()
def user_file(tmp_path: Path) -> Path:
    (tmp_path / "mynet.py").write_text(NET)
    (tmp_path / "bad.py").write_text("def make(:\n")
    return tmp_path


def test_a_factory_in_a_file_is_summarized_traced_and_drawn(user_file: Path) -> None:
    res = _cli("summary", "mynet.py:make", "--input", "1x3x16x16", "--format", "json", cwd=user_file)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["model"] == "Net" and [b["name"] for b in summary["blocks"]] == ["<root>"]
    res = _cli("trace", "mynet.py:make", "--input", "2x3x16x16", "-o", "t.json", cwd=user_file)
    assert res.returncode == 0, res.stderr
    trace = json.loads((user_file / "t.json").read_text())
    (block,) = trace["blocks"]
    assert block["shortcut"] == "identity" and block["grad_main"] > 0 and block["grad_skip"] > 0
    res = _cli("diagram", "mynet.py:make", "--view", "gradient-flow", "-o", "g.svg", "--input", "2x3x16x16",
               cwd=user_file)
    assert res.returncode == 0, res.stderr
    assert (user_file / "g.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_a_factory_in_a_package_builds_a_test_family_model() -> None:
    res = _cli("summary", "tests.families.vit:build", "--input", "1x3x32x32", "--format", "json")
    assert res.returncode == 0, res.stderr
    blocks = [b["name"] for b in json.loads(res.stdout)["blocks"]]
    assert blocks == ["blocks.0:1", "blocks.0:2", "blocks.1:1", "blocks.1:2"]


def test_weights_are_loaded_into_a_users_model(user_file: Path) -> None:
    sys.path.insert(0, str(user_file))
    try:
        torch.manual_seed(7)
        net = load_factory(f"{user_file / 'mynet.py'}:make")
    finally:
        sys.path.remove(str(user_file))
    torch.save(net.state_dict(), user_file / "w.pth")
    want = resviz.trace(net, input_size="2x3x16x16").loss
    res = _cli("trace", "mynet.py:make", "--input", "2x3x16x16", "--weights", "w.pth", "-o", "t.json", cwd=user_file)
    assert res.returncode == 0, res.stderr
    assert json.loads((user_file / "t.json").read_text())["loss"] == pytest.approx(want, rel=1e-6)
    (user_file / "other.pth").write_bytes(b"not a checkpoint")
    res = _cli("trace", "mynet.py:make", "--weights", "other.pth", cwd=user_file)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("target", "message"), [
    ("mynet.py:broken", "error: 'mynet.py:broken' raised ValueError: no such width"),
    ("mynet.py:not_a_module", "error: 'mynet.py:not_a_module' returned int, not an nn.Module"),
    ("mynet.py:exits", "error: 'mynet.py:exits' raised SystemExit: 3"),
    ("mynet.py:nothing", "error: 'mynet.py:nothing': mynet.py has no 'nothing'"),
    ("bad.py:make", "error: 'bad.py:make': syntax error in bad.py line 1: invalid syntax"),
    ("nosuch.py:make", "error: 'nosuch.py:make': no such file nosuch.py"),
    ("nosuchpkg.mod:make", "error: 'nosuchpkg.mod:make': cannot import nosuchpkg.mod: No module named 'nosuchpkg'"),
])
def test_every_way_a_factory_fails_is_one_line(user_file: Path, target: str, message: str) -> None:
    res = _cli("summary", target, cwd=user_file)
    assert res.returncode == 2 and res.stderr.strip() == message and res.stdout == ""


def test_plain_and_set_do_not_apply_to_a_users_model(user_file: Path) -> None:
    res = _cli("summary", "mynet.py:make", "--plain", cwd=user_file)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --plain and --set apply to resviz's own models, not to a module or a factory"


@pytest.mark.parametrize("library", ["torchvision:resnet18", "timm:resnet18"])
def test_library_models_are_built_without_weights_where_the_library_imports(library: str) -> None:
    """torchvision and timm do not import with a CPU-only torch from the registry: there the
    refusal is one line naming the library; where they import, the model summarizes."""
    name = library.split(":")[0]
    importable = importlib.util.find_spec(name) is not None
    try:
        model = load_factory(library)
    except ResvizError as exc:
        assert not importable or "cannot import" in str(exc), str(exc)
        assert str(exc).startswith(f"'{library}': cannot import") and "\n" not in str(exc)
        return
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # torchvision's resnet18


def test_what_is_a_factory() -> None:
    assert is_factory("pkg.mod:make") and is_factory("dir/file.py:make") and is_factory("timm:vit_tiny.augreg")
    assert not is_factory("resnet50") and not is_factory("C:\\models\\spec.yaml") and not is_factory(":make")
    assert not is_factory("pkg:") and not is_factory(3)


def test_a_study_of_a_factory_model_records_the_command_that_runs_it_again() -> None:
    result = resviz.study("signal", "tests.families.vit:build", input_size="4x3x32x32")
    assert result.settings["command"].startswith("resviz study signal tests.families.vit:build --input 4x3x32x32")
    blocks = [b.name for b in result.records[0].models[0].blocks]
    assert blocks == ["blocks.0:1", "blocks.0:2", "blocks.1:1", "blocks.1:2"]


class _ReadsValues(nn.Module):
    """A residual network whose forward reads a value (``float(...)``): it cannot run on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(8, 5), nn.BatchNorm1d(5), nn.Dropout(0.5))
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = self.seen + 1  # a new tensor each call, as counters often are
        x = self.stem(x)
        scale = 1.0 if float(x.detach().abs().mean()) >= 0 else 0.0  # always 1, but read from the data
        x = x + scale * self.body(x)
        return self.head(x.mean(dim=(2, 3)))


def test_a_model_that_reads_values_is_counted_on_one_real_sample() -> None:
    """The meta pass cannot run it: the summary falls back to one real image, says so in a note,
    finds its residual block from that pass and leaves the model as it was (weights, BatchNorm
    statistics, modes)."""
    model = _ReadsValues().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    seen = model.seen
    rng = torch.random.get_rng_state()
    s = resviz.summarize(model, input_size="4x3x16x16")
    assert model.seen is seen and torch.equal(torch.random.get_rng_state(), rng)
    assert s.input_shape == (1, 3, 16, 16)
    assert any(n.startswith("_ReadsValues cannot run on the meta device") and "1x3x16x16" in n for n in s.notes)
    assert [(b.name, b.input_shape, b.output_shape) for b in s.blocks] == [("<root>", (1, 8, 16, 16), (1, 8, 16, 16))]
    conv = next(lr for lr in s.layers if lr.name == "body.0")
    assert conv.macs == 8 * 8 * 9 * 16 * 16 and conv.branch == "main"
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(m.training for m in model.modules())


BIG = '''
import torch
from torch import nn


def huge():
    """A residual net of 72 GB of float32 weights: only the meta device can count it here."""
    return nn.Sequential(nn.Flatten(), *(Residual(nn.Linear(30_000, 30_000)) for _ in range(20)))


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def huge_reads_in_init():
    """72 GB again, and its constructor reads values (as timm's drop-path schedules do)."""
    rates = [x.item() for x in torch.linspace(0, 0.1, 20)]
    return nn.Sequential(nn.Flatten(), *(Residual(nn.Sequential(nn.Linear(30_000, 30_000), nn.Dropout(r)))
                                         for r in rates))


def reads_in_init():
    """Its constructor reads a value from a tensor it builds."""
    width = int(torch.tensor(8.0).item())
    return nn.Sequential(nn.Flatten(), Residual(nn.Linear(width, width)))
'''


def test_a_factory_is_counted_on_the_meta_device_when_it_builds_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      ) -> None:
    """Summaries of a factory's model allocate no weights: 1.8 x 10^10 parameters are counted at once, also
    when the constructor reads tensor values; a comparison with the huge one is refused by the memory check
    before anything is allocated."""
    (tmp_path / "big.py").write_text(BIG)
    monkeypatch.chdir(tmp_path)
    s = resviz.summarize("big.py:huge", input_size="1x3x100x100")
    assert s.total_params == 20 * (30_000 * 30_000 + 30_000) and len(s.blocks) == 20
    again = resviz.summarize("big.py:huge_reads_in_init", input_size="1x3x100x100")
    assert again.total_params == s.total_params and len(again.blocks) == 20
    small = resviz.summarize("big.py:reads_in_init", input_size="1x2x2x2")
    assert small.total_params == 8 * 8 + 8 and [b.name for b in small.blocks] == ["1"]
    with pytest.raises(ResvizError, match="needs about"):
        resviz.compare(["big.py:huge", "resnet20"], input_size="3x100x100", batch=2)
    with pytest.raises(ResvizError, match="has a dimension above"):
        resviz.summarize("big.py:huge", input_size="1x3x100x100000")  # refused before anything is built
    with pytest.raises(ResvizError, match=r"fails on input 1x3x8x8 at 1.body .*expects 30000 input features"):
        resviz.summarize("big.py:huge", input_size="1x3x8x8")  # the model's own error, never retried for real
    rng = torch.random.get_rng_state()
    resviz.summarize("big.py:huge_reads_in_init", input_size="1x3x100x100")
    assert torch.equal(torch.random.get_rng_state(), rng)  # the constructor's draws leave the caller's RNG alone


class _HookShapes(nn.Module):
    """A network whose forward hook is part of what it computes: it flattens the convolution's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        self.conv.register_forward_hook(lambda _m, _a, out: out.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


def test_hooks_that_compute_are_counted_with_the_model() -> None:
    s = resviz.summarize(_HookShapes(), input_size="1x3x8x8")
    fc = next(lr for lr in s.layers if lr.name == "fc")
    assert fc.input_shape == (1, 256) and fc.macs == 256 * 10


def test_the_cli_counts_a_factory_on_the_meta_device(tmp_path: Path) -> None:
    """``resviz summary`` and ``resviz diagram`` of a 72 GB model answer at once: the CLI hands the factory's
    name to the api, which counts it on the meta device."""
    (tmp_path / "big.py").write_text(BIG)
    res = _cli("summary", "big.py:huge", "--input", "1x3x100x100", "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["total_params"] == 20 * (30_000 * 30_000 + 30_000)
    res = _cli("diagram", "big.py:huge", "--input", "1x3x100x100", "-o", "big.dot", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "big.dot").read_text().count("->") > 20


PROBE = """
import torch
from torch import nn


def make():
    # a constructor that takes another branch where tensors have no values (on the meta device)
    try:
        fast = bool(torch.ones(1).sum() == 1)
    except Exception:
        fast = False
    head = nn.Linear(12, 4) if fast else nn.Sequential(nn.Linear(12, 4))
    return nn.Sequential(nn.Flatten(), head)
"""


def test_checkpoints_are_checked_against_a_factorys_model(user_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys and shapes against the model the factory builds (without real weights), one line when they do
    not fit; a constructor that branches on the meta device is checked against its other build too."""
    from resviz.api import check_checkpoint

    monkeypatch.chdir(user_file)
    torch.manual_seed(0)
    good = user_file / "good.pt"
    torch.save(load_factory("mynet.py:make").state_dict(), good)
    assert check_checkpoint("mynet.py:make", str(good)) == len(torch.load(good))
    torch.save({"stem.weight": torch.zeros(8, 3, 3, 3)}, user_file / "short.pt")
    with pytest.raises(ResvizError, match=r"short.pt does not match Net: \d+ missing"):
        check_checkpoint("mynet.py:make", str(user_file / "short.pt"))
    assert check_checkpoint(load_factory("mynet.py:make"), str(good)) > 0  # a module is checked as it is
    (user_file / "probe.py").write_text(PROBE)
    torch.save(load_factory("probe.py:make").state_dict(), user_file / "probe.pt")
    assert check_checkpoint("probe.py:make", str(user_file / "probe.pt")) == 2
    res = _cli("summary", "mynet.py:make", "--input", "1x3x16x16", "--weights", "short.pt", cwd=user_file)
    assert res.returncode == 2 and res.stderr.startswith("error: short.pt does not match Net")
    res = _cli("summary", "mynet.py:make", "--input", "1x3x16x16", "--weights", "good.pt", cwd=user_file)
    assert res.returncode == 0 and "tensors match Net" in res.stdout, res.stderr


@pytest.mark.parametrize("kind", ["meta", "sparse"])
def test_a_checkpoint_without_dense_values_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    state = {k: v.detach() for k, v in model.state_dict().items()}
    state["0.weight"] = state["0.weight"].to("meta") if kind == "meta" else state["0.weight"].to_sparse()
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(ResvizError, match="holds tensors without dense values") as err:
        resviz.api.load_checkpoint(model, str(tmp_path / "w.pt"))
    assert "\n" not in str(err.value)


def test_a_study_builds_a_factory_with_its_seed() -> None:
    a = resviz.study("signal", "tests.families.vit:build", input_size="4x3x32x32", seed=0)
    b = resviz.study("signal", "tests.families.vit:build", input_size="4x3x32x32", seed=3)
    assert a.records[0].models[0].blocks != b.records[0].models[0].blocks
