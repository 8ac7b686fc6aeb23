"""The benchmark pipeline: steps run in order, skip while their inputs are unchanged, rerun when they change."""
import hashlib
import json

import pytest
import yaml

from fixtures.errors import one_line_error
from fixtures.sid_data import write_synth_dataset
from fixtures.tiny import tiny_overrides
from recbole_qbert.cli import pipeline_main
from recbole_qbert.errors import QBertError
from recbole_qbert.features import FeatureTable
from recbole_qbert.pipeline import load_pipeline, run_pipeline

QUANTIZE = ["--set", "n_levels=2", "--set", "codebook_size=8", "--set", "code_dim=8", "--set", "hidden_dims=[16]",
            "--set", "epochs=2", "--set", "threads=1", "--quiet"]


def spec_loader(spec: dict, tmp_path):
    """Write ``spec`` under ``tmp_path`` and return a loader of it whose stamps and report stay there too."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec))

    def load():
        pipeline = load_pipeline(path)
        pipeline.stamps, pipeline.report = tmp_path / "stamps", tmp_path / "report.json"
        return pipeline

    return load


@pytest.fixture
def synth_pipeline(tmp_path):
    root = tmp_path / "atomic"
    _, features = write_synth_dataset(root)
    sid = tmp_path / "sid" / "synth.sid"
    spec = {"name": "synth", "dataset": "synth", "steps": [{
        "name": "quantize",
        "run": ["quantize", "train", "--dataset", "synth", "--data-path", str(root), "--features", str(features),
                "--set", f"sid_file={sid}", *QUANTIZE],
        "inputs": [str(root / "synth"), str(features)],
        "outputs": [str(sid.parent)]}]}
    return spec_loader(spec, tmp_path), features, sid


def test_steps_are_skipped_until_an_input_or_output_changes(synth_pipeline, capsys):
    load, features, sid = synth_pipeline
    first = run_pipeline(load())
    assert first["steps"][0]["reused"] is False and first["steps"][0]["peak_rss_mb"] > 0 and sid.is_file()
    stamp = json.loads((load().stamps / "quantize.json").read_text())
    assert any(name.endswith("synth.sid") for name in stamp["outputs"])

    again = run_pipeline(load())["steps"][0]
    assert again["reused"] is True and again["made"]["seconds"] == first["steps"][0]["seconds"]
    assert "inputs unchanged, reusing" in capsys.readouterr().out

    table = FeatureTable.load(features)  # new features for the same items: the codes must be redone
    table.matrix[0] += 1.0
    table.save(features)
    assert run_pipeline(load())["steps"][0]["reused"] is False

    sid.write_text("tampered\n")  # an output that no longer matches its stamp is redone too
    assert run_pipeline(load())["steps"][0]["reused"] is False
    assert sid.read_text() != "tampered\n"
    assert run_pipeline(load(), force=["quantize"])["steps"][0]["reused"] is False
    report = json.loads(load().report.read_text())["steps"][0]
    assert report["step"] == "quantize"
    # the committed report names each output's SHA-256, so two machines' reports show which step diverged
    assert report["outputs"][str(sid.resolve())] == hashlib.sha256(sid.read_bytes()).hexdigest()


def test_a_training_step_rerun_into_its_run_folder_resumes_it(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    args = [f"--{k}={v}" for k, v in tiny_overrides(tiny_data, epochs=2).items()]
    load = spec_loader({"name": "p", "dataset": "tiny", "steps": [{
        "name": "train", "run": ["run_recbole", "--model=SASRec", "--dataset=tiny", f"--checkpoint_dir={run_dir}",
                                 *args], "outputs": [str(run_dir / "record.json")]}]}, tmp_path)
    run_pipeline(load(), leaderboard=False)
    first = json.loads((run_dir / "record.json").read_text())
    (tmp_path / "stamps" / "train.json").unlink()  # as an interrupted step leaves it
    run_pipeline(load(), leaderboard=False)
    again = json.loads((run_dir / "record.json").read_text())
    assert "--resume" not in first["command"] and again["command"].endswith("--resume")
    assert again["history"] == first["history"] and again["test"] == first["test"]


def test_a_failed_step_leaves_no_stamp_and_names_its_log(synth_pipeline, tmp_path):
    load, features, sid = synth_pipeline
    pipeline = load()
    pipeline.steps[0].run.extend(["--set", "codebook_size=1000"])  # more codes than items
    with pytest.raises(QBertError, match="step 'quantize' failed with exit status 2.*log:"):
        run_pipeline(pipeline)
    assert not (pipeline.stamps / "quantize.json").exists()
    assert "codebook_size 1000" in (pipeline.stamps / "quantize.log").read_text()


@pytest.mark.parametrize("spec, message", [
    ({"dataset": "x", "stpes": []}, "unknown pipeline key 'stpes'"),
    ({"steps": []}, "'dataset' is required"),
    ({"dataset": "x", "steps": [{"name": "a", "run": ["train_everything"], "outputs": ["o"]}]}, "unknown command"),
    ({"dataset": "x", "steps": [{"name": "a", "run": ["fuse"]}]}, "'outputs' is required"),
    ({"dataset": "x", "steps": [{"name": "a", "run": ["fuse"], "outputs": ["o"]}] * 2}, "used twice"),
    ({"dataset": "x", "leaderboard": "nowhere.yaml"}, "nowhere.yaml does not exist"),
    ({"extends": "nowhere.yaml"}, "extends nowhere.yaml, which does not exist"),
])
def test_bad_specs_are_one_line_errors(tmp_path, capsys, spec, message):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert pipeline_main([str(path)]) == 2
    one_line_error(capsys, message)


@pytest.mark.parametrize("board_text, message", [
    ("models: [SASRec]\nconfig: {learnin_rate: 0.1}\n", r"board.yaml: config: unknown config key 'learnin_rate'"),
    ("models: [SASRecc]\n", r"board.yaml: model 'SASRecc': unknown model 'SASRecc'; did you mean SASRec"),
])
def test_a_bad_leaderboard_spec_fails_before_any_step_runs(synth_pipeline, tmp_path, board_text, message):
    load, features, sid = synth_pipeline
    board = tmp_path / "board.yaml"
    board.write_text("dataset: synth\nseeds: [1]\n" + board_text)
    pipeline = load()
    pipeline.leaderboard = board
    with pytest.raises(QBertError, match=message):
        run_pipeline(pipeline)
    assert not sid.exists() and not (pipeline.stamps / "quantize.json").exists()


@pytest.mark.parametrize("spec, message", [
    ({"name": "../../x", "dataset": "x"}, "name '../../x'"),
    ({"dataset": "../../x"}, "dataset '../../x'"),
    ({"dataset": "x", "steps": [{"name": "../x", "run": ["fuse"], "outputs": ["o"]}]}, "step 1: step name '../x'"),
    ({"dataset": "x", "steps": [{"name": ".", "run": ["fuse"], "outputs": ["o"]}]}, "step 1: step name '.'"),
])
def test_names_that_would_write_outside_the_pipeline_folders_are_refused(tmp_path, spec, message):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(QBertError) as error:
        load_pipeline(path)
    assert str(error.value) == f"{path}: {message} must be a plain name (no path separators, not '.' or '..')"


def test_shipped_pipelines_load():
    from recbole_qbert.config import PROJECT_ROOT

    specs = sorted((PROJECT_ROOT / "properties" / "pipeline").glob("*.yaml"))
    assert specs
    for path in specs:
        pipeline = load_pipeline(path)
        assert pipeline.steps and pipeline.leaderboard is not None
    gpu = load_pipeline(PROJECT_ROOT / "properties" / "pipeline" / "amazon-beauty-gpu.yaml")
    assert gpu.dataset == "amazon-beauty" and [s.name for s in gpu.steps][-1] == "quantize"
    assert gpu.leaderboard.name == "amazon-beauty.yaml"
    for dataset in ("amazon-beauty", "amazon-scientific"):  # ablations: the benchmark's steps, then their own
        base = load_pipeline(PROJECT_ROOT / "properties" / "pipeline" / f"{dataset}.yaml")
        ablations = load_pipeline(PROJECT_ROOT / "properties" / "pipeline" / f"{dataset}-ablations.yaml")
        assert ablations.steps[:len(base.steps)] == base.steps and len(ablations.steps) > len(base.steps)
        assert ablations.name == f"{dataset}-ablations" and ablations.leaderboard.stem == f"{dataset}-ablations"
