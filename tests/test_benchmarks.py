"""The result scripts under benchmarks/: time to quality and the tuning log, on records made here."""
import json
import sys
from pathlib import Path

import pytest
import yaml

from fixtures.errors import one_line_error

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import history_in_ranking  # noqa: E402
import ranking_by_target  # noqa: E402
import time_to_quality  # noqa: E402
import tuning_log  # noqa: E402


def record(seed, valid_curve, cpu_per_epoch, stop="early_stopping"):
    history = [{"epoch": e, "train_cpu_s": cpu_per_epoch, "valid": {"ndcg@10": v}} for e, v in enumerate(valid_curve)]
    return {"seed": seed, "history": history, "valid": {"ndcg@10": max(valid_curve)},
            "test": {"ndcg@10": max(valid_curve) - 0.01}, "stop_reason": stop, "best_epoch": 0,
            "epochs_trained": len(valid_curve), "train_cpu_s": cpu_per_epoch * len(valid_curve)}


def write_board(tmp_path, models, runs):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "board", "dataset": "tiny", "models": models, "seeds": [1, 2]}))
    board = tmp_path / "board"
    (board / "records").mkdir(parents=True)
    for (model, seed), content in runs.items():
        (board / "records" / f"{model}-seed{seed}.json").write_text(json.dumps(content))
    return spec, board


def test_time_to_quality_counts_cpu_seconds_until_the_reference_best(tmp_path, capsys):
    spec, board = write_board(tmp_path, ["SASRec", "Fast", "Never"], {
        ("SASRec", 1): record(1, [0.1, 0.3, 0.5, 0.4], 10.0), ("SASRec", 2): record(2, [0.2, 0.6], 10.0),
        ("Fast", 1): record(1, [0.5, 0.7], 2.0), ("Fast", 2): record(2, [0.1, 0.2, 0.6], 2.0),
        ("Never", 1): record(1, [0.1, 0.2], 1.0), ("Never", 2): record(2, [0.59], 1.0),
    })
    out = tmp_path / "ttq.json"
    assert time_to_quality.main([str(spec), "--board", str(board), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["targets"] == {"1": 0.5, "2": 0.6}
    assert [r["cpu_s"] for r in result["models"]["SASRec"]["runs"]] == [30.0, 20.0]
    assert [r["cpu_s"] for r in result["models"]["Fast"]["runs"]] == [2.0, 6.0]
    assert result["models"]["Fast"]["mean_cpu_s_when_reached"] == 4.0
    assert result["models"]["Never"]["reached"] == "0/2" and result["models"]["Never"]["mean_cpu_s_when_reached"] is None
    assert "Never" in capsys.readouterr().out


def test_time_to_quality_marks_a_row_on_another_ranking_protocol(tmp_path, capsys):
    filtered = lambda seed, curve: {**record(seed, curve, 1.0), "config": {"eval_filter_history": True}}  # noqa: E731
    spec, board = write_board(tmp_path, ["SASRec", "SASRec-filter-history", "Same"], {
        ("SASRec", 1): record(1, [0.5], 10.0), ("SASRec", 2): record(2, [0.6], 10.0),
        ("SASRec-filter-history", 1): filtered(1, [0.7]), ("SASRec-filter-history", 2): filtered(2, [0.7]),
        ("Same", 1): record(1, [0.7], 1.0), ("Same", 2): record(2, [0.7], 1.0),
    })
    out = tmp_path / "ttq.json"
    assert time_to_quality.main([str(spec), "--board", str(board), "--out", str(out)]) == 0
    models = json.loads(out.read_text())["models"]
    assert models["SASRec-filter-history"]["comparable"] is False
    assert models["SASRec-filter-history"]["reached"] == "2/2"  # still measured, only marked
    assert models["Same"]["comparable"] is True and models["SASRec"]["comparable"] is True
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "not comparable" in lines["SASRec-filter-history"] and "not comparable" not in lines["Same"]


def test_time_to_quality_needs_the_reference_row(tmp_path):
    spec, board = write_board(tmp_path, ["SASRec"], {})
    with pytest.raises(SystemExit, match="no records of the reference row 'SASRec'"):
        time_to_quality.main([str(spec), "--board", str(board), "--out", str(tmp_path / "x.json")])


@pytest.mark.parametrize("board", ["amazon-scientific-converged", "amazon-scientific-full-converged",
                                   "amazon-beauty-converged"])
def test_committed_time_to_quality_is_what_the_committed_records_give(board, tmp_path):
    """results/benchmarks/time-to-quality-<board>.json is regenerated whenever a row or seed lands."""
    out = tmp_path / "ttq.json"
    assert time_to_quality.main([str(REPO / "properties" / "leaderboard" / f"{board}.yaml"), "--out", str(out)]) == 0
    committed = REPO / "results" / "benchmarks" / f"time-to-quality-{board}.json"
    assert json.loads(out.read_text()) == json.loads(committed.read_text()), \
        f"stale: python benchmarks/time_to_quality.py properties/leaderboard/{board}.yaml"


def test_tuning_log_chooses_by_validation_only_per_family(tmp_path, monkeypatch):
    spec = tmp_path / "tune.yaml"
    grid = lambda h: {"hidden_size": h, "learning_rate": 0.001}  # noqa: E731
    spec.write_text(yaml.safe_dump({"name": "tune", "dataset": "tiny", "seeds": [1], "models": [
        {"name": "A-h64", "model": "SASRec", "config": grid(64)},
        {"name": "A-h128", "model": "SASRec", "config": grid(128)},
        {"name": "B-h64", "model": "SASRec", "config": {**grid(64), "n_layers": 1}},
    ]}))
    board = tmp_path / "results" / "leaderboard" / "tune"
    (board / "records").mkdir(parents=True)
    runs = {"A-h64": record(1, [0.30], 1.0), "A-h128": record(1, [0.31], 1.0), "B-h64": record(1, [0.2], 1.0)}
    runs["A-h64"]["test"]["ndcg@10"] = 0.9  # a better test score must not change the choice
    for name, content in runs.items():
        (board / "records" / f"{name}-seed1.json").write_text(json.dumps(content))
    monkeypatch.setattr("recbole_qbert.leaderboard.spec.PROJECT_ROOT", tmp_path)
    tuning_log.main([str(spec), "--out", str(tmp_path / "log")])
    chosen = json.loads((tmp_path / "log.json").read_text())["chosen"]
    assert chosen == {"SASRec": "A-h128", 'SASRec {"n_layers": 1}': "B-h64"}
    assert "| **0.3100** |" in (tmp_path / "log.md").read_text()


def test_history_in_ranking_matches_the_run_record_and_the_filter_protocol(tiny_data, tmp_path, in_tmp, capsys):
    """The kept figures are the run's own test metrics; the filtered ones are what a run with
    eval_filter_history reports for the same model (tiny users never repeat, so they are higher)."""
    from fixtures.tiny import tiny_overrides
    from recbole_qbert.runner import run

    record = run("SASRec", "tiny", overrides=tiny_overrides(tiny_data, epochs=2), run_dir=tmp_path / "run")
    out = tmp_path / "history.json"
    assert history_in_ranking.main([str(tmp_path / "run"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())[str(tmp_path / "run")]
    assert result["test"]["kept"]["ndcg@10"] == pytest.approx(record["test"]["ndcg@10"], abs=1e-4)
    assert result["test"]["filtered"]["recall@10"] > result["test"]["kept"]["recall@10"]
    assert "filtered" in capsys.readouterr().out
    # a run folder without a checkpoint is named and skipped; the readable run is still written
    assert history_in_ranking.main([str(tmp_path / "nothing"), str(tmp_path / "run"), "--out", str(out)]) == 2
    one_line_error(capsys, "nothing/best.pth: no such checkpoint")
    assert list(json.loads(out.read_text())) == [str(tmp_path / "run")]


def test_ranking_by_target_splits_the_run_metrics_by_target_popularity(tiny_data, tmp_path, in_tmp, capsys):
    """Overall NDCG@10 and Recall@10 are the run's own (RecBole's evaluator); the bins partition the targets, so their
    share-weighted means give it back; popularity counts only the training split."""
    from fixtures.tiny import tiny_overrides
    from recbole_qbert.recommend import load_data_and_model
    from recbole_qbert.runner import run

    record = run("SASRec", "tiny", overrides=tiny_overrides(tiny_data, epochs=2), run_dir=tmp_path / "run")
    out = tmp_path / "bins.json"
    assert ranking_by_target.main([str(tmp_path / "run"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())[str(tmp_path / "run")]
    for split in ("valid", "test"):
        s = result[split]
        assert sum(s["share_by_bin"]) == pytest.approx(1, abs=0.01)
        for metric in ("ndcg@10", "recall@10"):
            assert s[metric] == pytest.approx(record[split][metric], abs=1e-4)
            assert result[f"recbole_{metric}"][split] == pytest.approx(record[split][metric], abs=1e-4)
            weighted = sum(v * w for v, w in zip(s[f"{metric}_by_bin"], s["share_by_bin"]) if v is not None)
            assert weighted == pytest.approx(s[metric], abs=2e-3)
    dataset = load_data_and_model(tmp_path / "run" / "best.pth")[2]
    counts = ranking_by_target.training_counts(dataset)
    assert counts.sum() == len(dataset.inter_feat) - 2 * (dataset.user_num - 1)  # two held out per user
    assert "target popularity bins" in capsys.readouterr().out
