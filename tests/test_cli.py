"""The command-line tools answer bad input with one line and exit status 2, never a traceback."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.errors import one_line_error
from fixtures.tiny import tiny_overrides
from recbole_qbert.cli import leaderboard_main, run_main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv, message", [
    (["--model=SASRecc"], "unknown model 'SASRecc'; did you mean SASRec"),
    (["--model=SASRec", "--dataset=nosuch"], "dataset 'nosuch' not found"),
    (["--model=SASRec", "--epochz=3"], "command line: unknown config key 'epochz'"),
    (["--model=SASRec", "--config_files=absent.yaml"], "absent.yaml: config file not found"),
    (["--model=SASRec", "--resume"], "--resume needs --checkpoint_dir"),
    (["--model=SASRec", "stray"], "cannot read 'stray', expected --key=value"),
    (["--model=FM", "--dataset=ml-100k"], "FM is a context-aware model"),
    # RecBole's decision-tree models: refused, or first missing their package (lightgbm is not a dependency)
    (["--model=xgboost", "--dataset=ml-100k"],
     r"model 'xgboost' needs the Python package '\w+', which is not installed|(?i:xgboost) is a decision-tree model"),
])
def test_run_errors_are_one_line(argv, message, capsys, in_tmp):
    assert run_main(argv) == 2
    one_line_error(capsys, pattern=message)


@pytest.mark.parametrize("args, message", [
    (["--nproc=0"], "nproc must be at least 1, got 0"),
    (["--checkpoint_dir=/dev/null"], "/dev/null: is a file, cannot write a folder there"),
    (["--record=."], ".: is a folder, cannot write a file there"),
    (["--metrics=['Nope']"], "config: RecBole refused it (NotImplementedError: There is no metric named 'Nope')"),
    (["--valid_metric=NDCG@7"], "valid_metric NDCG@7 is not among the metrics evaluated (Recall, NDCG, MRR at 5, 10, 20)"),
    (["--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'XX', 'mode': 'full'}"], "RecBole could not split it"),
    (["--test_subset_items=absent.txt"], "absent.txt: item list not found"),
])
def test_runs_refused_before_training_are_one_line_and_leave_no_folder(args, message, capsys, in_tmp):
    assert run_main(["--model=SASRec", "--dataset=ml-100k", "--checkpoint_dir=run", "--epochs=1", "--state=ERROR",
                     *args]) == 2
    one_line_error(capsys, message)
    assert not Path("run").exists()


def test_leaderboard_errors_are_one_line(capsys, tmp_path):
    def refused(argv):
        assert leaderboard_main(argv) == 2
        return one_line_error(capsys)

    assert "none.yaml: config file not found" in refused([str(tmp_path / "none.yaml")])
    spec = tmp_path / "s.yaml"
    spec.write_text("dataset: x\nmodels: [SASRec]\nseeds: [1]\n")
    for seeds in ("a,b", "1,-1", "1,2,1"):
        assert f"--seeds: expected comma-separated integers >= 0, each once, got '{seeds}'" in refused(
            [str(spec), f"--seeds={seeds}"])


def test_run_recbole_script_end_to_end(tiny_data, tmp_path, in_tmp):
    """The RecBole-style script as a user runs it: a subprocess, a record, a summary line."""
    args = [f"--{k}={v}" for k, v in tiny_overrides(tiny_data, epochs=1).items()]
    out = subprocess.run([sys.executable, str(REPO / "run_recbole.py"), "--model=GRU4Rec", "--dataset=tiny",
                          f"--checkpoint_dir={tmp_path / 'run'}", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "GRU4Rec on tiny (seed 2020): best epoch 0, test recall@5=" in out.stdout
    assert (tmp_path / "run" / "record.json").is_file()


def test_config_file_paths_with_spaces_are_taken_whole(tiny_data, tmp_path, in_tmp):
    """``--config_files`` is RecBole's space-separated list; ``--config_file`` (what the leaderboard passes)
    takes one path whole, so a project folder or a row name with a space still works."""
    folder = tmp_path / "my runs"
    folder.mkdir()
    (folder / "a b.yaml").write_text("hidden_size: 16\ninner_size: 32\n")
    overrides = {k: v for k, v in tiny_overrides(tiny_data, epochs=1).items() if k not in ("hidden_size", "inner_size")}
    args = [f"--{k}={v}" for k, v in overrides.items()]
    assert run_main(["--model=SASRec", "--dataset=tiny", f"--config_file={folder / 'a b.yaml'}",
                     f"--checkpoint_dir={folder / 'run'}", *args]) == 0
    assert json.loads((folder / "run" / "record.json").read_text())["config"]["hidden_size"] == 16


def test_list_models(capsys):
    assert run_main(["--list-models"]) == 0
    names = capsys.readouterr().out.split()
    assert {"SASRec", "BERT4Rec", "GRU4Rec", "LightSANs", "FEARec"} <= set(names)
