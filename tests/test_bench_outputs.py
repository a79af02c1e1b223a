"""`detector bench` writes through the write guard (detector/outputs.py): never into the data
it reads or over the bench file, never over a file it did not write without --overwrite, and
nothing at all when a run cannot start. Reusing its own finished runs is covered end to end in
tests/test_bench.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from detector.cli import main
from hostile import digest, one_line_error
from test_bench import CONFIGS, synthetic_bench_arguments


def with_out(arguments: list[str], out: Path) -> list[str]:
    index = arguments.index("--out")
    return [*arguments[:index + 1], str(out), *arguments[index + 2:]]


def test_bench_never_writes_into_its_data(tmp_path, capsys):
    arguments = synthetic_bench_arguments(tmp_path)
    data = tmp_path / "data"
    before = digest(data)
    for out in (data, data / "rgb" / "bench"):
        assert main(with_out(arguments, out)) == 2
        one_line_error(capsys, "--out", data)
        # not even with --overwrite: the data set is an input
        assert main([*with_out(arguments, out), "--overwrite"]) == 2
        one_line_error(capsys, "--out")
    assert digest(data) == before and not (data / "rgb" / "bench").exists()


def test_bench_never_replaces_the_users_files(tmp_path, capsys):
    arguments = synthetic_bench_arguments(tmp_path)
    out = tmp_path / "bench"
    (out / "top").mkdir(parents=True)
    (out / "results.md").write_text("my notes\n")
    (out / "top" / "metrics.csv").write_text("my metrics\n")
    before = digest(out)
    assert main(arguments) == 2
    one_line_error(capsys, "--out", out / "results.md")
    (out / "results.md").unlink()
    before.pop(out / "results.md")
    # a run folder is checked before the first run trains, not when its turn comes
    assert main(arguments) == 2
    one_line_error(capsys, out / "top" / "metrics.csv", "--overwrite")
    assert digest(out) == before and sorted(p.name for p in out.iterdir()) == ["top"]


def test_bench_file_out_dir_is_named_and_the_bench_file_is_an_input(tmp_path, capsys):
    arguments = synthetic_bench_arguments(tmp_path)
    out = tmp_path / "bench"
    out.mkdir()
    # the bench file itself where the report goes: refused even with --overwrite
    bench = out / "results.md"
    shutil.copy(CONFIGS / "bench_synthetic.yaml", bench)
    (out / "synthetic_tiny.yaml").write_text((CONFIGS / "synthetic_tiny.yaml").read_text())
    before = digest(out)
    assert main([arguments[0], str(bench), *arguments[2:], "--overwrite"]) == 2
    one_line_error(capsys, bench, "reads")
    # without --out the bench file's out_dir chose the folder, and the error says so
    user = tmp_path / "mine"
    user.mkdir()
    (user / "results.csv").write_text("mine\n")
    bench_file = tmp_path / "b.yaml"
    bench_file.write_text(bench.read_text().replace("runs/bench_synthetic", str(user)))
    (tmp_path / "synthetic_tiny.yaml").write_text((CONFIGS / "synthetic_tiny.yaml").read_text())
    no_out = arguments[:arguments.index("--out")] + arguments[arguments.index("--out") + 2:]
    assert main([no_out[0], str(bench_file), *no_out[2:]]) == 2
    one_line_error(capsys, f"{bench_file}: out_dir", user / "results.csv")
    assert digest(out) == before and (user / "results.csv").read_text() == "mine\n"


def test_a_run_that_cannot_start_leaves_nothing(tmp_path, capsys):
    arguments = synthetic_bench_arguments(tmp_path)
    broken = sorted((tmp_path / "data" / "rgb" / "train").glob("*.png"))[0]
    broken.write_bytes(broken.read_bytes()[:60])  # header readable, pixels not
    assert main(arguments) == 2
    one_line_error(capsys, broken)
    assert not (tmp_path / "bench").exists()
