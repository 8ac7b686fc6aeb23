"""Fault injection: killed runs, two writers, damaged artifacts. Whatever happens, nothing silently wrong
remains: no orphan process, no temporary or lock file, records and table agree, damaged inputs are
refused with one line."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures.errors import one_line_error
from fixtures.tiny import tiny_overrides, write_tiny_semantic_ids
from recbole_qbert.cli import leaderboard_main, run_main
from recbole_qbert.errors import QBertError
from recbole_qbert.features import FeatureTable
from recbole_qbert.leaderboard import load_spec, render, run_all
from recbole_qbert.locks import lock_file, output_lock

REPO = Path(__file__).resolve().parent.parent
# qbert-leaderboard with its results and run folders under a test folder (argv[1]) instead of the project
LEADERBOARD = """
import sys
from pathlib import Path
import recbole_qbert.leaderboard as lb
root = Path(sys.argv.pop(1))
load = lb.load_spec
def load_spec(*args, **kwargs):
    spec = load(*args, **kwargs)
    spec.runs_root = root / "runs"
    if kwargs.get("out") is None:
        spec.out = root / "out"
    return spec
lb.load_spec = load_spec
from recbole_qbert.cli import leaderboard_main
sys.exit(leaderboard_main())
"""


def children_of(pid: int):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def leftovers(root: Path):
    return sorted(str(p.relative_to(root)) for pattern in (".*.tmp", ".*.lock") for p in root.rglob(pattern))


@pytest.fixture
def board(tiny_data, tmp_path):
    spec = {"name": "faults", "dataset": "tiny", "models": ["SASRec"], "seeds": [1, 2],
            "config": tiny_overrides(tiny_data, epochs=500, stopping_step=500, cpu_threads=1)}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def start_board(path: Path, root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", LEADERBOARD, str(root), str(path), *args], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_leaderboard_leaves_nothing_behind(board, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "faults" / "SASRec-seed1"
    out = tmp_path / "out"

    # SIGKILL of the leaderboard: its run dies with it (no orphan), the locks it held are stale
    proc = start_board(board, tmp_path)
    wait_for(lambda: (run_dir / "last.pth").is_file(), 120, "the first epoch")
    runs = children_of(proc.pid)
    assert runs
    # a second writer meanwhile is refused in one line naming the holder
    assert leaderboard_main([str(board), f"--out={out}"]) == 2
    one_line_error(capsys, f"another leaderboard writer holds .out.lock: pid {proc.pid}")
    assert run_main(["--model=SASRec", "--dataset=tiny", f"--checkpoint_dir={run_dir}"]) == 2
    one_line_error(capsys, f"another run writer holds .SASRec-seed1.lock: pid {proc.pid}")
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(alive(pid) for pid in runs), 30, "the orphaned run to stop")

    # a partial rerun (one seed) takes the stale locks over, finishes, and leaves nothing behind
    proc = start_board(board, tmp_path, "--seeds=1", "--epochs=1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "taking over the stale lock" in err
    assert leftovers(tmp_path) == []
    # its table and command.txt are the spec's, not the partial command's, and agree with the record
    assert "--seeds" not in (out / "command.txt").read_text()
    record = json.loads((out / "records" / "SASRec-seed1.json").read_text())
    table = (out / "leaderboard.md").read_text()
    assert f"| SASRec | 1 | **{record['test']['recall@5']:.4f}** |" in table

    # once seed 2 is recorded too, rendering after a partial selection still shows both seeds
    twin = {**record, "seed": 2}
    (out / "records" / "SASRec-seed2.json").write_text(json.dumps(twin))
    spec = load_spec(board, out=str(out))
    spec.select(None, [1], separate=False)
    assert "| SASRec | 2 |" in render(spec)[0].read_text()

    # records of one row made from different inputs are not averaged
    twin["inputs"] = {**record["inputs"], "tiny.inter": "0" * 64}
    (out / "records" / "SASRec-seed2.json").write_text(json.dumps(twin))
    assert leaderboard_main([str(board), f"--out={out}", "--render-only"]) == 2
    one_line_error(capsys, "SASRec seeds 1 and 2 were made from different input files tiny.inter")

    # a damaged record is refused, not silently left out of the table
    (out / "records" / "SASRec-seed2.json").write_text('{"seed": 2, "te')
    assert leaderboard_main([str(board), f"--out={out}", "--render-only"]) == 2
    one_line_error(capsys, "SASRec-seed2.json: damaged run record")

    # a damaged last.pth stops the leaderboard with one line saying what to do
    (out / "records" / "SASRec-seed1.json").unlink()
    last = run_dir / "last.pth"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    spec.runs_root = tmp_path / "runs"
    with pytest.raises(QBertError, match=f"{last}: not a readable recbole-qbert checkpoint .*delete it to start "
                                         "this run over"):
        run_all(spec)


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    target = tmp_path / "run"
    lock_file(target).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "x"}))
    target.mkdir()
    (target / ".last.pth.abc.tmp").write_bytes(b"half")  # what a killed writer leaves
    with output_lock(target):
        assert json.loads(lock_file(target).read_text())["pid"] == os.getpid()
        with pytest.raises(QBertError, match=rf"run: another output writer holds .run.lock: pid {os.getpid()}"):
            with output_lock(target):
                pass
    assert "taking over the stale lock of pid" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_an_output_under_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(QBertError, match=r"afile/run: cannot write there: one of its parent folders is a file"):
        with output_lock(tmp_path / "afile" / "run"):
            pass


def test_lock_written_on_another_host_is_not_taken_over(tmp_path):
    target = tmp_path / "run"
    lock_file(target).write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "x"}))
    with pytest.raises(QBertError, match="another host; delete it if that run is gone"):
        with output_lock(target):
            pass
    assert json.loads(lock_file(target).read_text())["host"] == "elsewhere"


def test_two_pipelines_on_one_output(tmp_path):
    from recbole_qbert.pipeline import load_pipeline, run_pipeline

    out = tmp_path / "sid"
    spec = {"name": "p", "dataset": "tiny",
            "steps": [{"name": "q", "run": ["quantize", "train"], "outputs": [str(out)]}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    pipeline = load_pipeline(tmp_path / "p.yaml")
    pipeline.stamps, pipeline.report = tmp_path / "stamps", tmp_path / "report.json"
    with output_lock(out, what="step 'q'"):
        with pytest.raises(QBertError, match=rf"sid: another step 'q' writer holds .sid.lock: pid {os.getpid()}"):
            run_pipeline(pipeline, leaderboard=False)


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a zip"])
def test_damaged_feature_table_is_one_line(tmp_path, damage):
    path = tmp_path / "text.npz"
    FeatureTable(["a", "b"], np.ones((2, 4)), [True, True]).save(path)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "not a zip": b"hello world\n" * 10}[damage])
    with pytest.raises(QBertError, match=r"text.npz: not a readable feature table \(empty, cut short or not an "
                                         r"\.npz file.*rerun the stage that made it") as info:
        FeatureTable.load(path)
    assert "\n" not in str(info.value)


def test_semantic_ids_of_changed_features_are_refused(tmp_path, tiny_data, in_tmp, capsys):
    features = tmp_path / "fused.npz"
    table = FeatureTable([f"i{i}" for i in range(30)], np.eye(30, 8), np.ones(30, bool))
    table.save(features)
    sid = write_tiny_semantic_ids(tmp_path / "tiny.sid")
    meta = json.loads((tmp_path / "tiny.sid.json").read_text())
    meta["features"] = {"content_hash": table.content_hash(),
                        "tables": [{"path": str(features), "content_hash": table.content_hash()}]}
    (tmp_path / "tiny.sid.json").write_text(json.dumps(meta))
    table.matrix[0, 0] = 5.0
    table.save(features)
    args = [f"--{k}={v}" for k, v in tiny_overrides(tiny_data, epochs=1).items()]
    assert run_main(["--model=QBERT4Rec", "--dataset=tiny", f"--sid_file={sid}",
                     f"--checkpoint_dir={tmp_path / 'run'}", *args]) == 2
    err = one_line_error(capsys, f"{sid}: stale: {features} changed since these semantic IDs were made")
    assert f"python -m dataset_prep.quantize train --dataset tiny --features {features}" in err


def test_quantizer_of_another_width_is_one_line(tmp_path):
    from recbole_qbert.quantize.checkpoint import save_quantizer
    from recbole_qbert.quantize.rqvae import RQVAE
    from recbole_qbert.quantize.stage import assign_new_items

    ckpt = tmp_path / "q.rqvae.safetensors"
    save_quantizer(ckpt, RQVAE(in_dim=256, hidden_dims=[8], code_dim=4, n_levels=2, codebook_size=4),
                   {"dataset": "x", "collision_strategy": "extra_level"})
    features = tmp_path / "new.npz"
    FeatureTable(["n1", "n2"], np.ones((2, 200)), [True, True]).save(features)
    with pytest.raises(QBertError, match=r"new.npz: 200-d features, but quantizer .*q.rqvae.safetensors was "
                                         r"trained on 256-d ones"):
        assign_new_items(ckpt, [features], tmp_path / "new.sid")


def test_non_utf8_byte_is_reported_on_its_line(tmp_path):
    from recbole_qbert.convert.inputs import numbered_lines

    path = tmp_path / "reviews.json"
    lines = [b'{"reviewerID": "u%d", "asin": "a", "unixReviewTime": 1}' % i for i in range(20)]
    lines[10] = b'{"reviewerID": "u\xff", "asin": "a", "unixReviewTime": 1}'
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(QBertError, match=r"reviews.json: line 11: not UTF-8 text"):
        list(numbered_lines(path))


def test_a_stage_script_refuses_a_second_writer(tmp_path, capsys):
    from dataset_prep.quantize import main

    sid = tmp_path / "x.sid"
    with output_lock(sid, what="quantize"):
        assert main(["train", "--dataset", "x", "--set", f"sid_file={sid}"]) == 2
    one_line_error(capsys, f"x.sid: another quantize writer holds .x.sid.lock: pid {os.getpid()}")


PIPELINE = """
import sys
from pathlib import Path
import recbole_qbert.pipeline as pl
root = Path(sys.argv.pop(1))
load = pl.load_pipeline
def load_pipeline(path):
    pipeline = load(path)
    pipeline.stamps, pipeline.report = root / "stamps", root / "report.json"
    return pipeline
pl.load_pipeline = load_pipeline
from recbole_qbert.cli import pipeline_main
sys.exit(pipeline_main())
"""


def test_terminated_pipeline_stops_its_step(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    args = [f"--{k}={v}" for k, v in tiny_overrides(tiny_data, epochs=500, stopping_step=500).items()]
    spec = {"name": "p", "dataset": "tiny", "steps": [{
        "name": "train",
        "run": ["run_recbole", "--model=SASRec", "--dataset=tiny", f"--checkpoint_dir={run_dir}", *args],
        "outputs": [str(run_dir)]}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", PIPELINE, str(tmp_path), str(tmp_path / "p.yaml"),
                             "--no-leaderboard"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (run_dir / "last.pth").is_file(), 120, "the step's first epoch")
    steps = children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)  # forwarded to the training run, which stops cleanly
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1] == "stopped by SIGTERM: rerun the same command to resume"
    assert steps and not any(alive(pid) for pid in steps)
    assert not (tmp_path / "stamps" / "train.json").exists()  # an interrupted step is not current
    assert leftovers(tmp_path) == []
