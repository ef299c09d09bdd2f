"""``resviz diagram``: formats from the suffix, atomic output, one-line errors with exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resviz.cli import app
from resviz.public import diagram

runner = CliRunner()
HAS_DOT = shutil.which("dot") is not None


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["diagram", *args])
    return result.exit_code, result.output


def test_dot_output_matches_the_python_api(tmp_path: Path) -> None:
    out = tmp_path / "r20.dot"
    code, text = run("resnet20", "-o", str(out), "--view", "stages")
    assert code == 0, text
    assert out.read_text() == diagram("resnet20", view="stages").source


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz dot not installed")
@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_formats_from_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"r20{suffix}"
    code, text = run("resnet20", "-o", str(out), "--view", "dimensions")
    assert code == 0, text
    assert out.read_bytes().startswith(magic)


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz dot not installed")
def test_resnet50_svg_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "r50.svg"
    code, text = run("resnet50", "-o", str(out), "--view", "dimensions", "--input", "1x3x224x224")
    assert code == 0, text
    svg = out.read_text()
    for s in ("conv2_x", "conv5_x", "112x112x64", "56x56x256", "28x28x512", "14x14x1024", "7x7x2048",
              "1x1x2048", "1000"):
        assert s in svg


def test_spec_overrides_and_plain_change_the_picture(tmp_path: Path) -> None:
    a, b = tmp_path / "a.dot", tmp_path / "b.dot"
    assert run("resnet20", "-o", str(a), "--view", "stages", "--set", "layers=1,2,3")[0] == 0
    assert "1 basic blocks" in a.read_text() and "3 basic blocks" in a.read_text()
    assert run("resnet20", "-o", str(b), "--view", "layers", "--plain")[0] == 0
    assert "no skip" in b.read_text()


def _assert_error(code: int, text: str, needle: str) -> None:
    assert code == 2
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], text
    assert "Traceback" not in text


@pytest.mark.parametrize(("args", "needle"), [
    (("--view", "stagez"), "unknown view"),
    (("--color-by", "flops"), "unknown color-by"),
    (("--view", "basic-block", "--set", "block=bottleneck"), "no basic blocks"),
])
def test_bad_options_exit_2_without_output(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    out = tmp_path / "x.svg"
    code, text = run("resnet20", "-o", str(out), *args)
    _assert_error(code, text, needle)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format(tmp_path: Path) -> None:
    code, text = run("resnet20", "-o", str(tmp_path / "x.jpeg"))
    _assert_error(code, text, "unknown output format")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_path(tmp_path: Path) -> None:
    code, text = run("resnet20", "-o", str(tmp_path / "missing" / "x.svg"))
    _assert_error(code, text, "does not exist")
    code, text = run("resnet20", "-o", str(tmp_path))  # a folder, named like no format
    assert code == 2
    (tmp_path / "d.svg").mkdir()
    code, text = run("resnet20", "-o", str(tmp_path / "d.svg"))
    _assert_error(code, text, "is a folder")


def test_plain_model_block_view(tmp_path: Path) -> None:
    out = tmp_path / "p.svg"
    code, text = run("plain34", "-o", str(out), "--view", "bottleneck")
    _assert_error(code, text, "needs residual blocks")
    assert not out.exists()


def test_missing_dot_writes_the_source_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "r20.svg"
    code, text = run("resnet20", "-o", str(out))
    _assert_error(code, text, "apt-get install graphviz")
    assert not out.exists()
    assert (tmp_path / "r20.dot").read_text() == diagram("resnet20").source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "r20.dot"]


def test_dot_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import graphviz

    def boom(*_: object, **__: object) -> bytes:
        raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: syntax error in line 1\nmore")

    monkeypatch.setattr(graphviz.Digraph, "pipe", boom)
    out = tmp_path / "x.svg"
    code, text = run("resnet20", "-o", str(out))
    _assert_error(code, text, "syntax error in line 1")
    assert not out.exists()


def test_gradient_flow_from_a_real_trace(tmp_path: Path) -> None:
    out = tmp_path / "g.dot"
    code, text = run("resnet20", "-o", str(out), "--view", "gradient-flow", "--input", "4x3x32x32",
                     "--color-by", "grad-ratio")
    assert code == 0, text
    src = out.read_text()
    assert "norms not measured" not in src
    assert src.count(" main ") >= 9 and src.count(" skip ") >= 9  # every block labelled


def test_color_by_std_with_a_real_trace(tmp_path: Path) -> None:
    out = tmp_path / "s.dot"
    code, text = run("resnet20", "-o", str(out), "--view", "basic-block", "--color-by", "std",
                     "--input", "2x3x32x32")
    assert code == 0, text
    assert "activation std" in out.read_text()
