"""The CLI: writes a PNG, exposes every option of transfer, fails cleanly on bad input."""

import json
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
from helpers import copy_model

from tfstyle import cli, flags

FAST = ["--size", "64", "--iterations", "2", "--weights", "none", "--seed", "0", "-q"]


def run(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_writes_png(image_files, tmp_path, capsys):
    content, style = image_files
    out = tmp_path / "out.png"
    code, err = run(["transfer", content, style, "-o", str(out), *FAST], capsys)
    assert code == 0, err
    with PIL.Image.open(out) as img:
        assert img.format == "PNG" and img.size == (64, 48)


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_transfer_prints_nothing_on_success(image_files, tmp_path, capfd, quiet):
    content, style = image_files
    out = tmp_path / "out\x1b]0;pwned\x07.png"  # a name with a terminal's escape sequence
    flags = FAST if quiet else [f for f in FAST if f != "-q"]
    code = cli.main(["transfer", content, style, "-o", str(out), *flags])
    stdout, stderr = capfd.readouterr()  # file descriptors too: native code's lines count
    assert code == 0, stderr
    assert out.is_file()
    if quiet:
        assert (stdout, stderr) == ("", "")
    else:  # probe 9: the name was printed raw (clearing the screen, retitling the terminal)
        shown = str(out).replace("\x1b", "\\x1b").replace("\x07", "\\x07")
        assert stdout == "" and stderr.splitlines()[-1] == f"wrote {shown}"


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_request_prints_nothing_on_success(image_files, tmp_path, capfd, monkeypatch, quiet):
    from tfstyle import client

    monkeypatch.setattr(  # a server's answer: the image and its loss
        client, "stylize", lambda *a, **k: (PIL.Image.new("RGB", (4, 4)), 1.5)
    )
    out = tmp_path / "out.png"
    argv = ["request", *image_files, "-o", str(out)] + (["-q"] if quiet else [])
    code = cli.main(argv)
    stdout, stderr = capfd.readouterr()
    assert code == 0, stderr
    assert out.is_file()
    assert (stdout, stderr) == ("", "" if quiet else f"wrote {out} (loss 1.5)\n")


def test_exact_arguments_reach_transfer(image_files, tmp_path, capsys, monkeypatch):
    from tfstyle import api

    content, style = image_files
    calls = []

    def fake_transfer(*args, **kwargs):  # records what the CLI passes, returns a tiny image
        calls.append((args, kwargs))
        return PIL.Image.new("RGB", (4, 4))

    monkeypatch.setattr(api, "transfer", fake_transfer)
    argv = ["transfer", content, style, style, "-o", str(tmp_path / "out.png"), *FAST]
    argv += ["--optimizer", "adam", "--pooling", "avg", "--init", "noise", "--preserve-colors"]
    argv += ["--style-blend-weights", "1", "3", "--style-layers", "block1_conv1", "block2_conv1"]
    argv += ["--style-layer-weights", "1", "2", "--content-layers", "block2_conv2"]
    argv += ["--tv-weight", "0", "--content-weight", "2", "--style-weight", "100"]
    argv += ["--learning-rate", "0.5", "--backbone", "vgg16", "--precision", "float32"]
    argv += ["--style-scale", "0.5", "--style-loss", "wasserstein"]
    argv += ["--min-scale", "100", "--scale-factor", "1.5", "--steps-ratio", "0.7"]
    argv += ["--scale-span", "3", "--shared-iterations", "50"]
    argv += ["--average-decay", "0.5", "--tile-size", "48"]
    argv += ["--mask", content, "--mask", style, "--style-mask", "none", "--style-mask", style]
    argv += ["--content-mask", content]
    code, err = run(argv, capsys)
    assert code == 0, err
    ((args, kwargs),) = calls
    assert args == (content, [style, style])
    assert kwargs == {
        "size": 64,
        "iterations": 2,
        "style_scale": 0.5,
        "min_scale": 100,
        "scale_span": 3.0,
        "scale_factor": 1.5,
        "steps_ratio": 0.7,
        "shared_iterations": 50,
        "average_decay": 0.5,
        "content_weight": 2.0,
        "style_weight": 100.0,
        "tv_weight": 0.0,
        "optimizer": "adam",
        "learning_rate": 0.5,
        "init": "noise",
        "seed": 0,
        "weights": None,
        "backbone": "vgg16",
        "pooling": "avg",
        "precision": "float32",
        "content_layers": ["block2_conv2"],
        "style_layers": ["block1_conv1", "block2_conv1"],
        "style_loss": "wasserstein",
        "style_layer_weights": [1.0, 2.0],
        "tile_size": 48,
        "style_blend_weights": [1.0, 3.0],
        "masks": [content, style],
        "style_masks": [None, style],
        "content_mask": content,
        "preserve_colors": True,
        "callback": None,
        "callback_every": 10,
        "progress": False,
    }


def test_defaults_reach_transfer_unchanged(image_files, tmp_path, capsys, monkeypatch):
    from tfstyle import api, options

    calls = []
    monkeypatch.setattr(
        api, "transfer", lambda *a, **k: calls.append(k) or PIL.Image.new("RGB", (4, 4))
    )
    code, err = run(["transfer", *image_files, "-o", str(tmp_path / "o.png")], capsys)
    assert code == 0, err
    expected = {o.name: o.default for o in options.OPTIONS if o.flag}
    assert {k: calls[0][k] for k in expected} == expected
    assert calls[0]["progress"] is True


def test_every_option_has_a_flag_with_its_default_and_help():
    from tfstyle import options

    parsers = cli.build_parser()._subparsers._group_actions[0].choices
    help_text = " ".join(parsers["transfer"].format_help().split())
    for o in options.OPTIONS:
        flag = flags.flag_name(o)
        # --model MODEL_DIR (a real-time network) is the transfer command's own flag, not one
        # made from the option (flag=False): it replaces the optimisation's options.
        made_by_hand = o.name == "model" and "--model MODEL_DIR " in help_text
        assert (flag + " " in help_text) == o.flag or made_by_hand, o.name
        if o.flag:
            assert " ".join(o.help.split()[:4]) in help_text, o.name
    assert "Defaults to 512" in help_text and "Defaults to lbfgs." in help_text
    export_help = parsers["export"].format_help()
    assert all("--" + n.replace("_", "-") in export_help for n in options.EXPORT_OPTIONS)
    assert "--iterations" not in export_help and "--style-blend-weights" not in export_help
    request_help = parsers["request"].format_help()
    assert all("--" + n.replace("_", "-") in request_help for n in options.REQUEST_OPTIONS)
    assert "--backbone" not in request_help


def test_save_every_writes_intermediate_images(image_files, tmp_path, capsys):
    content, style = image_files
    out = tmp_path / "out.png"
    argv = [
        "transfer",
        content,
        style,
        "-o",
        str(out),
        *FAST[:2],
        "--iterations",
        "4",
        "--weights",
        "none",
        "-q",
        "--save-every",
        "2",
    ]
    code, err = run(argv, capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("out.*.png")) == ["out.0002.png", "out.0004.png"]
    with PIL.Image.open(out) as final, PIL.Image.open(tmp_path / "out.0004.png") as saved:
        np.testing.assert_array_equal(np.asarray(final), np.asarray(saved))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    wrong = tmp_path / "wrong.weights.h5"
    import keras

    keras.applications.VGG16(include_top=False, weights=None).save_weights(wrong)
    return {"text": str(text), "wrong": str(wrong), "missing": str(tmp_path / "missing.png")}


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "{style}"], "content: no such file"),
        (["{content}", "{text}"], "is not a readable image file"),
        (["{content}", "{style}", "--optimizer", "sgd"], "optimizer must be one of"),
        (["{content}", "{style}", "--init", "contnt"], "init must be one of"),
        (["{content}", "{style}", "--iterations", "-1"], "iterations must be between 0 and"),
        (["{content}", "{style}", "--iterations", "2147483648"], "iterations must be between"),
        (["{content}", "{style}", "--init", "{missing}"], "init must be one of"),
        (["{content}", "{style}", "--init", "{text}"], "init: "),
        (["{content}", "{style}", "--size", "8"], "size must be between 16 and"),
        (  # no snapshot would ever be written (issue 29)
            ["{content}", "{style}", "--iterations", "3", "--save-every", "4"],
            "--save-every must be at most --iterations (3), or 0 for no snapshots; got 4",
        ),
        (["{content}", "{style}", "--size", "100000"], "size must be between 16 and"),
        (
            ["{content}", "{style}", "--size", "big"],
            "argument --size: expected an integer (ASCII digits); got 'big'",
        ),
        # Negative numbers argparse took for options (issue 29): the option's own check.
        (["{content}", "{style}", "--style-weight", "-inf"], "style_weight must be a finite"),
        (["{content}", "{style}", "--learning-rate", "-1e-320"], "learning_rate must be a"),
        (["{content}", "{style}", "--weights", "{missing}"], "weights: no such file"),
        (["{content}", "{style}", "--weights", "{wrong}"], "does not fit vgg19"),
        (["{content}", "{style}", "--pooling", "median"], "pooling must be one of"),
        (["{content}", "{style}", "--colour"], "unrecognized arguments: --colour"),
        (["{content}", "{style}", "-o", "/no/such/dir/out.png"], "directory does not exist"),
        (["{content}", "{style}", "-o", "{tmp}/out.xyz"], "unknown image file extension"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(image_files, bad_files, tmp_path, capsys, args, message):
    names = {"content": image_files[0], "style": image_files[1], "tmp": str(tmp_path), **bad_files}
    argv = ["transfer", *(a.format(**names) for a in args)]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.png")]
    argv += ["--iterations", "1"] if "--iterations" not in argv else []
    argv += ["--weights", "none"] if "--weights" not in argv else []
    code, err = run(argv + ["-q"], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfstyle: error:") and message in lines[0], err
    assert not (tmp_path / "out.png").exists()


def test_python_dash_m_runs(tmp_path):
    # One start (about 5 s): the command's own checks answer, from python -m tfstyle.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfstyle",
            "transfer",
            "x.png",
            "y.png",
            "-o",
            str(tmp_path / "o.png"),
            "--weights",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == "tfstyle: error: content: no such file: 'x.png'"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_export_command_versions(tmp_path, capsys, exported):
    base = copy_model(exported, tmp_path / "models" / "tfstyle")  # version 1 (one export less)
    argv = ["export", "--model-dir", str(base), "--size", "32", "--weights", "none", "--no-warmup"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
    assert cli.main([*argv, "--version", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tfstyle: error: --version:") and "already exists" in err[-1]
    # the command's flags by their names, not the library's arguments (probe 12: "model_dir:")
    argv[2] = str(base / "2" / "saved_model.pb")
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"tfstyle: error: --model-dir: {argv[2]!r} is not a directory"
    )
    argv[2] = str(base)
    assert cli.main([*argv, "--optimizer", "adamw"]) == 1
    assert "optimizer must be one of" in capsys.readouterr().err
    with open(base / "2" / "assets.extra" / "tfstyle_export.json") as f:
        assert json.load(f)["options"]["precision"] == "float32"  # the export's own default
    assert cli.main([*argv, "--precision", "auto"]) == 1
    assert "precision: 'auto' is measured on the machine" in capsys.readouterr().err


def test_verbose_says_which_precision_and_why(image_files, tmp_path, capsys):
    content, style = image_files
    out = str(tmp_path / "out.png")
    code, err = run(["transfer", content, style, "-o", out, *FAST, "-v"], capsys)
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("precision "))
    assert line.split()[1].rstrip(":") in ("float32", "bfloat16") and "cache:" in line
    argv = ["transfer", content, style, "-o", out, *FAST, "-v", "--precision", "float32"]
    code, err = run(argv, capsys)
    assert "precision float32: set by the precision option" in err


@pytest.mark.parametrize(
    "args, env, said",
    [
        (["--server", "localhost:٨٥"], {}, "--server: server must be host:port"),
        (["--rest", "http://localhost:١٨٥٠١"], {}, "--rest: url must look like"),
        (["--init", "IMAGE"], {}, "--init: the page starts from one of content, noise"),
        (["--content-mask", "IMAGE"], {}, "unrecognized arguments: --content-mask"),
        ([], {"TFSTYLE_PRECISION": "x"}, "TFSTYLE_PRECISION must be one of"),
        ([], {"TFSTYLE_MEMORY_CHECK": "maybe"}, "TFSTYLE_MEMORY_CHECK must be 0, no"),
    ],
)  # fmt: skip
def test_the_page_refuses_what_it_could_not_use_before_it_starts(
    image_files, capsys, monkeypatch, args, env, said
):
    # Probe round 9: each of these started a page whose runs then failed, or dropped the value.
    pytest.importorskip("gradio", reason='the page needs the "app" extra')
    from tfstyle import app

    def started(*args, **kwargs):
        raise AssertionError("the page started")

    monkeypatch.setattr(app, "launch", started)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = [image_files[0] if a == "IMAGE" else a for a in args]
    code = cli.main(["app", "--weights", "none", *args])
    err = capsys.readouterr().err
    assert code in (1, 2) and len(err.strip().splitlines()) == 1 and said in err, err


@pytest.mark.parametrize(
    "module, said",
    [
        ("gradio", 'the page needs Gradio: pip install "tfstyle[app]"'),
        ("grpc", 'the serving client needs grpcio: pip install "tfstyle[serving]"'),
        ("grpc status", 'the serving client needs grpcio: pip install "tfstyle[serving]"'),
        ("tensorflow_serving", "a warm-up request needs "
         'tensorflow-serving-api: pip install "tfstyle[serving]", or export with warmup=False'),
    ],
)  # fmt: skip
def test_a_missing_extra_is_one_line_saying_what_to_install(module, said, monkeypatch, tmp_path):
    import sys

    from tfstyle import app, client, export
    from tfstyle.client import grpc_api

    # "import <module>" fails, as if absent ("grpc status": tfstyle status, which imported
    # grpc itself before the channel's line; probe 12)
    # the package and every submodule another test imported in this worker (an imported
    # submodule is found in sys.modules without its parent: CI's order, 2026-12-07)
    package = module.split()[0]
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)
    calls = {
        "gradio": app.gradio,
        "grpc": lambda: grpc_api.channel("localhost:8500"),
        "grpc status": lambda: client.model_status("localhost:8500", "tfstyle"),
    }
    with pytest.raises(ImportError) as err:
        calls.get(module, lambda: export._write_warmup(str(tmp_path), 16, {}))()
    assert str(err.value) == said


def test_errors_name_the_flag_typed_not_the_librarys_argument(image_files, tmp_path, capsys):
    """The library names its arguments (``masks[0]``, ``model_dir``); a command says the flag
    the user typed (probe 12; the review of it: indexed and renamed arguments)."""
    content, style = image_files
    (tmp_path / "file").write_text("x")
    cases = [
        (["transfer", content, style, "-o", str(tmp_path / "o.png"), "--mask",
          str(tmp_path / "missing.png")], "--mask #1: "),
        (["train", style, "--images", str(tmp_path), "-o", str(tmp_path / "file")],
         f"--output: {str(tmp_path / 'file')!r} is not a directory"),
    ]  # fmt: skip
    for argv, said in cases:
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"tfstyle: error: {said}"), err
    # what is not a flag keeps its name: a positional, a name that is no dest of the command
    parser = cli.build_parser()
    kept = ["content: no such file", "style[1]: no such file", "masks[x]: odd",
            "workers must be an integer", "TFSTYLE_CACHE_DIR: not a directory"]  # fmt: skip
    for message in kept:
        assert cli._as_typed(message, parser, "transfer") == message
    assert cli._as_typed("masks[1]: no such file", parser, "transfer") == "--mask #2: no such file"
    assert cli._as_typed("mask_dir: x", parser, "batch") == "--mask-dir: x"
