"""Hostile spec files and names: each is refused in one short line, at the cost of its own bytes.

"Billion laughs" YAML, files that are not UTF-8 text, empty files, files holding a list or a
scalar, devices, deep nesting; and HTML in a model's name, which the Markdown report escapes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from resviz.api import compare, resolve_spec
from resviz.errors import ResvizError
from resviz.render.report import render_html, render_markdown
from resviz.spec import load_spec_file

SPEC = "name: tiny\nblock: basic\nlayers: [1]\nwidths: [8]\n"

#: Nested YAML aliases: under 400 bytes that a plain safe loader expands into 9**8 strings.
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefg", "bcdefgh", strict=True)
) + "name: *h\n"


def refused(path: Path, *needles: str) -> str:
    with pytest.raises(ResvizError) as info:
        resolve_spec(str(path))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and len(message) < 400, message
    for needle in needles:
        assert needle in message, message
    return message


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    start = time.perf_counter()
    refused(path, "YAML aliases", "line 2")
    assert time.perf_counter() - start < 1.0


def test_an_anchor_alone_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "anchor.yaml"
    path.write_text("name: &n tiny\nblock: basic\nlayers: [1]\nwidths: [8]\n")
    assert load_spec_file(path).name == "tiny"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (SPEC.encode("utf-16"), "is UTF-16 text: save it as UTF-8"),
        ("name: café\nblock: basic\n".encode("latin-1"), "is not UTF-8 text"),
        (bytes(range(256)) * 4, "is not UTF-8 text"),
        (b"name: x\x00\nblock: basic\n", "is not a text file"),
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"- 1\n- 2\n", "holds a list, not a mapping"),
        (b"42\n", "holds a int, not a mapping"),
        (b"name: t\nblock: basic\nlayers: [.nan]\nwidths: [8]\n", "layers[0] = nan: must be an integer"),
        (b"name: t\nblock: basic\nlayers: [1]\nwidths: [8]\nnum_classes: yes\n", "num_classes = True"),
        (b"name: t\nblock: basic\nlayers: [1]\nwidths: [1e400]\n", "widths[0] = '1e400'"),
        (b"name: t\nblock: basic\nlayers: [1]\nwidths: [8]\nstem: " + b"x" * 30_000 + b"\n", "(30000 characters)"),
        (b"[" * 30_000 + b"]" * 30_000, "cannot parse spec file"),
        (b"!!python/object/apply:os.system [echo hi]\n", "cannot parse spec file"),
    ],
)
def test_bad_yaml_files(tmp_path: Path, data: bytes, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    refused(path, needle)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"name": "t", "block": "basic", "layers": [1e400], "widths": [8]}', "layers[0] = inf"),
        ('{"name": "t", "block": "basic", "layers": [' + "9" * 5000 + '], "widths": [8]}', "cannot parse"),
        ('{"name": "t", "block": "basic", "layers": [1], "widths": [NaN]}', "widths[0] = nan"),
        ('{"name": "t", "block": "basic", "layers": [1], "widths": [8], "' + "k" * 5000 + '": 1}', "characters)"),
        ("[" * 30_000 + "]" * 30_000, "cannot parse"),
    ],
)
def test_bad_json_files(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    refused(path, needle)


def test_a_device_or_a_folder_named_like_a_spec(tmp_path: Path) -> None:
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    refused(zero, "larger than the 65536 bytes")
    (tmp_path / "dir.yaml").mkdir()
    refused(tmp_path / "dir.yaml", "cannot read spec file", "directory")


def test_the_markdown_report_escapes_html_in_names(tmp_path: Path) -> None:
    name = '<img src=x onerror="alert(1)">|x'
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: '{name}'\nblock: basic\nlayers: [1, 1, 1]\nwidths: [4, 8, 8]\nstem: cifar\n"
                    "stem_width: 4\nnum_classes: 10\n")
    result = compare([str(path), "resnet20"], batch=2, input_size="3x8x8", device="cpu")
    text = render_markdown(result)
    assert "<img" not in text and "&lt;img src=x onerror=\"alert(1)\"&gt;" in text
    assert "<img src=x" not in render_html(result)


def test_the_markdown_report_makes_no_link_or_image_from_a_name(tmp_path: Path) -> None:
    """A name written as Markdown link and image syntax stays text: no remote image loads, no
    ``javascript:`` link is made; every opening bracket is escaped."""
    name = "![p](https://evil.example/t.png) [c](javascript:alert(1)) `x` *y*"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: '{name}'\nblock: basic\nlayers: [1, 1, 1]\nwidths: [4, 8, 8]\nstem: cifar\n"
                    "stem_width: 4\nnum_classes: 10\n")
    text = render_markdown(compare([str(path), "resnet20"], batch=2, input_size="3x8x8", device="cpu"))
    assert "evil.example" in text  # the name is there, as text
    assert "![p](" not in text and "[c](javascript" not in text and "`x`" not in text and "*y*" not in text
    assert "!\\[p\\](https://evil.example/t.png) \\[c\\](javascript:alert(1)) \\`x\\` \\*y\\*" in text


def test_data_folders_with_long_names_and_decompression_bombs(tmp_path: Path) -> None:
    import warnings

    from PIL import Image

    from resviz.studies.data import load_batches

    with pytest.raises(ResvizError, match=r"cannot read data directory .*File name too long") as info:
        load_batches(str(tmp_path / ("d" * 300)), 1, 2, (3, 8, 8))
    assert len(str(info.value)) < 400
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8), "red").save(tmp_path / name / "ok.png")
    side = int((Image.MAX_IMAGE_PIXELS or 0) ** 0.5) + 10  # past Pillow's warning, below its error
    Image.new("1", (side, side)).save(tmp_path / "a" / "bomb.png")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        data = load_batches(str(tmp_path), 1, 3, (3, 8, 8))  # needs every file: the bomb is tried
    assert data.info.skipped == ("a/bomb.png",)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_checkpoint_that_never_ends_is_not_read(tmp_path: Path) -> None:
    import os

    from resviz.api import check_checkpoint, get_spec

    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)
    for source in ("/dev/zero", str(fifo), str(tmp_path)):
        with pytest.raises(ResvizError, match="it is not a regular file"):
            check_checkpoint(get_spec("resnet20"), source)
    with pytest.raises(ResvizError, match="File name too long"):
        check_checkpoint(get_spec("resnet20"), str(tmp_path / ("w" * 300 + ".pth")))
