"""Leaderboard: identical split for every run, resume without redoing work, honest aggregation."""
import csv
import json
import math

import pytest
import yaml

from recbole_qbert.cli import leaderboard_main
from recbole_qbert.config import PROJECT_ROOT, load_yaml
from recbole_qbert.errors import QBertError
from recbole_qbert.leaderboard import (collect, converged, load_spec, render, render_csv, render_markdown, run_all,
                                       seen, summarise)
from recbole_qbert.leaderboard.aggregate import view
from fixtures.tiny import tiny_overrides, write_tiny_semantic_ids


def write_spec(tmp_path, tiny_data, **config):
    spec = {"name": "tiny-board", "dataset": "tiny", "models": ["SASRec", "BERT4Rec"], "seeds": [1, 2],
            "config": tiny_overrides(tiny_data, epochs=1, **config)}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def make_spec(path, tmp_path):
    spec = load_spec(path, out=str(tmp_path / "out"))
    spec.runs_root = tmp_path / "runs"
    return spec


@pytest.mark.parametrize("content, message", [
    ({"dataset": "x", "models": ["SASRec"], "seeds": [1], "modls": 1}, "unknown leaderboard key 'modls'"),
    ({"dataset": "x", "seeds": [1]}, "'models' is required"),
    ({"dataset": "x", "models": ["SASRec"], "seeds": ["a"]}, r"seeds=\['a'\]: expected a list of ints"),
    ({"dataset": "x", "models": ["SASRec"], "seeds": [1], "model_config": {"BERT4Rec": {}}},
     "model_config names 'BERT4Rec'"),
    ({"dataset": "x", "models": [{"name": "Q-random"}], "seeds": [1]}, "variant needs 'name' and 'model'"),
    ({"dataset": "x", "models": [{"name": "S", "model": "SASRec", "config": {"seen_item_bias": True}}],
      "seeds": [1]}, "model 'S': config key 'seen_item_bias' is not read by SASRec"),
    ({"dataset": "x", "models": ["SASRec", {"name": "SASRec", "model": "SASRec"}], "seeds": [1]}, "listed twice"),
    ({"dataset": "x", "models": ["SASRec"], "seeds": [1, 2, 1]}, "seed 1 is listed twice"),
    ({"dataset": "x", "models": ["SASRec"], "seeds": [1], "config": {"topk": [10]}},
     "config: 'topk' cannot change on a leaderboard"),
    ({"dataset": "x", "models": ["SASRec"], "seeds": [1], "model_config": {"SASRec": {"valid_metric": "MRR@10"}}},
     "model 'SASRec': 'valid_metric' cannot change on a leaderboard"),
])
def test_bad_spec(tmp_path, content, message):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(QBertError, match=message):
        load_spec(path)


@pytest.mark.parametrize("change, message", [
    ({"config": {"learnin_rate": 0.1}}, "config: unknown config key 'learnin_rate' (did you mean 'learning_rate'?)"),
    ({"config": {"epochs": "ten"}}, "config: epochs='ten': expected int >= 0"),
    ({"seeds": [-1]}, "seeds=[-1]: expected a list of ints >= 0"),
    ({"models": [{"name": "S", "model": "SASRec", "config": {"hidden_size": 0}}]},
     "model 'S': hidden_size=0: expected int >= 1"),
    ({"models": ["NoSuchModel"]}, "model 'NoSuchModel': unknown model 'NoSuchModel'"),
    ({"models": ["FM"]}, "model 'FM': FM is a context-aware model"),
    ({"config_files": ["missing.yaml"]}, "model 'SASRec': {dir}/missing.yaml: config file not found"),
    ({"dataset": "nosuchds"}, "model 'SASRec': dataset 'nosuchds' not found: no folder {data}/nosuchds"),
])
def test_a_bad_row_fails_in_one_line_naming_the_spec_before_anything_is_written(tiny_data, tmp_path, in_tmp,
                                                                               change, message):
    spec = {"name": "bad", "dataset": "tiny", "models": ["SASRec"], "seeds": [1], **change,
            "config": {**tiny_overrides(tiny_data, epochs=1), **change.get("config", {})}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(QBertError) as error:
        run_all(make_spec(path, tmp_path))
    assert str(error.value).startswith(f"{path}: " + message.format(dir=tmp_path, data=tiny_data))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()  # no command.txt, no run folder


@pytest.mark.parametrize("overrides, message", [
    ({"learnin_rate": 0.1}, "command line: unknown config key 'learnin_rate' (did you mean 'learning_rate'?)"),
    ({"epochs": "ten"}, "command line: epochs='ten': expected int >= 0"),
    ({"topk": [10]}, "command line: 'topk' cannot change on a leaderboard"),
])
def test_a_bad_override_is_named_as_the_command_line_not_the_spec(tmp_path, overrides, message):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"dataset": "x", "models": ["SASRec"], "seeds": [1], "config": {"epochs": 1}}))
    with pytest.raises(QBertError) as error:
        load_spec(path, overrides=overrides)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("models, name, message", [
    (["SASRec"], "../../escape", "name '../../escape'"),
    (["SASRec"], "..", "name '..'"),
    ([{"name": "../S", "model": "SASRec"}], "board", "model '../S'"),  # names its records and run folders
])
def test_names_that_would_write_outside_the_leaderboard_folders_are_refused(tmp_path, models, name, message):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": name, "dataset": "x", "models": models, "seeds": [1]}))
    with pytest.raises(QBertError) as error:
        load_spec(path)
    assert str(error.value) == f"{path}: {message} must be a plain name (no path separators, not '.' or '..')"


def test_runs_render_and_resume(tiny_data, tmp_path, in_tmp, capfd):
    spec = make_spec(write_spec(tmp_path, tiny_data, cpu_threads=1), tmp_path)
    run_all(spec, jobs=2)  # two runs at a time, each writing its console to its run folder
    assert capfd.readouterr().out.count(": finished") == 4
    assert (spec.run_dir("SASRec", 1) / "console.log").stat().st_size > 0
    paths = render(spec)
    assert [p.name for p in paths] == ["leaderboard.md", "leaderboard.csv", "runs.csv", "leaderboard.png",
                                       "curves.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    records = collect(spec)
    assert {m: [r["seed"] for r in rs] for m, rs in records.items()} == {"SASRec": [1, 2], "BERT4Rec": [1, 2]}
    # every run saw the same split: the same users, items and training samples
    assert len({str(r["data"]) for rs in records.values() for r in rs}) == 1
    table = paths[0].read_text()
    assert "| SASRec | 2 |" in table and "| BERT4Rec | 2 |" in table and "**" in table
    # one epoch is a cap, not convergence: the table says so next to the models
    assert "**Not converged** (stopped by epochs): SASRec (1.0 epochs), BERT4Rec (1.0 epochs)." in table
    assert "**An efficiency view** (every run stopped by its budget): the bold means are the best within" in table
    # and so do both CSVs, row by row: capped runs are an efficiency view, not a ranking
    for name in ("leaderboard.csv", "runs.csv"):
        with open(spec.out / name, newline="") as f:
            assert {row["view"] for row in csv.DictReader(f)} == {"efficiency"}
    capfd.readouterr()

    # BERT4Rec adds keys to its config when built; its record must still be recognised as done
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "records").iterdir()}
    run_all(spec)
    assert capfd.readouterr().out.count("done, reusing") == 4
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "records").iterdir()} == mtimes


def test_interrupted_and_changed_runs(tiny_data, tmp_path, in_tmp, capfd):
    path = write_spec(tmp_path, tiny_data)
    spec = make_spec(path, tmp_path)
    spec.models, spec.seeds = ["SASRec"], [1]
    run_all(spec)
    first = collect(spec)["SASRec"][0]

    # a larger epoch budget: the run continues from its last checkpoint instead of starting over
    spec.config["epochs"] = 2
    run_all(spec)
    assert "resuming" in capfd.readouterr().out
    resumed = collect(spec)["SASRec"][0]
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]
    assert resumed["history"][0] == first["history"][0]

    # a different model configuration: the old checkpoint is not reused
    spec.config["hidden_size"] = 16
    spec.config["inner_size"] = 16
    run_all(spec)
    assert "config or input files changed" in capfd.readouterr().out
    assert collect(spec)["SASRec"][0]["config_hash"] != first["config_hash"]


def test_variants_run_their_model_and_rerun_when_the_semantic_ids_change(tiny_data, tmp_path, in_tmp, capfd):
    sid = write_tiny_semantic_ids(tmp_path / "sid" / "tiny.sid")
    spec = {"name": "variants", "dataset": "tiny", "seeds": [1], "config": tiny_overrides(tiny_data, epochs=1),
            "models": [{"name": "QBERT4Rec-tiny-codes", "model": "QBERT4Rec", "config": {"sid_file": str(sid)}}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    spec = make_spec(path, tmp_path)
    run_all(spec)
    record = collect(spec)["QBERT4Rec-tiny-codes"][0]
    assert record["model"] == "QBERT4Rec" and record["inputs"]["sid"] and "| QBERT4Rec-tiny-codes | 1 |" in \
        render(spec)[0].read_text()
    run_all(spec)
    assert "done, reusing" in capfd.readouterr().out

    write_tiny_semantic_ids(sid, levels=(5, 8))  # new codes for the same items: the run is stale
    run_all(spec)
    out = capfd.readouterr().out
    assert "done, reusing" not in out and "starting over" in out
    assert collect(spec)["QBERT4Rec-tiny-codes"][0]["inputs"]["sid"] != record["inputs"]["sid"]


def test_failed_run_is_a_one_line_error_and_renders_nothing(tmp_path, in_tmp):
    (tmp_path / "atomic" / "tiny").mkdir(parents=True)  # a dataset folder without atomic files
    spec = make_spec(write_spec(tmp_path, tmp_path / "atomic"), tmp_path)
    with pytest.raises(QBertError, match=r"SASRec seed 1 failed with exit status 2; see .*run\.log; fix it"):
        run_all(spec)
    with pytest.raises(QBertError, match="no finished runs"):
        render(spec)


def fake_record(seed, ndcg, recall):
    test = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg", "mrr") for k in (5, 10, 20)}
    test.update({"ndcg@10": ndcg, "recall@10": recall})
    return {"seed": seed, "test": test, "valid": {"ndcg@10": ndcg}, "best_epoch": 3, "epochs_trained": 5,
            "train_s_per_epoch": 2.0, "train_cpu_s_per_epoch": 2.5, "eval_s": 1.0, "eval_cpu_s": 0.8, "peak_memory": {"rss_mb": 100.0}, "stop_reason": "epochs"}


@pytest.mark.parametrize("damage, problem", [
    ({"test": {"ndcg@10": "abc"}}, "test recall@5 is missing"),
    ({"test": dict(fake_record(1, 0.1, 0.2)["test"], **{"ndcg@10": "abc"})}, "test ndcg@10 is 'abc', not a number"),
    ({"valid": {"ndcg@10": None}}, "valid ndcg@10 is missing"),
    ({"peak_memory": {"rss_mb": "lots"}}, "peak_memory rss_mb is 'lots', not a number"),
    ({"valid": []}, "'valid' and 'peak_memory' must be mappings"),
    ({"eval_s": "1 s"}, "eval_s is '1 s', not a number"),
    ({"stop_reason": 3}, "stop_reason is 3, not a string"),
])
def test_render_only_refuses_a_record_the_tables_cannot_read(tmp_path, capsys, damage, problem):
    out = tmp_path / "out"
    record = out / "records" / "SASRec-seed1.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({**fake_record(1, 0.1, 0.2), **damage}))
    assert leaderboard_main([str(write_spec(tmp_path, tmp_path)), f"--out={out}", "--render-only"]) == 2
    assert capsys.readouterr().err == (f"error: {record}: not a run record ({problem}); delete it and rerun without "
                                       "--render-only to redo that run\n")
    assert [p.name for p in out.iterdir()] == ["records"]


def test_seeds_hashed_under_older_rules_average_when_their_configs_agree(tmp_path):
    spec = make_spec(write_spec(tmp_path, tmp_path), tmp_path)
    config = {"model": "SASRec", "hidden_size": 64, "train_negatives": 0, "epochs": 50}

    def write(seed, config_hash, **changes):
        path = spec.record_path("SASRec", seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**fake_record(seed, 0.1, 0.2), "config_hash": config_hash,
                                    "config": {**config, "seed": seed, **changes}}))

    # stored hashes differ (older rules), so do a budget key and the run folder, and the newer record has a key
    # the older one predates, unset: the same model all the same
    write(1, "old-rules")
    write(2, "new-rules", epochs=80, checkpoint_dir=f"{tmp_path}/runs/seed2", test_subset_items=None)
    assert [r["seed"] for r in collect(spec)["SASRec"]] == [1, 2]
    write(2, "new-rules", hidden_size=128)  # a config that trains another model is still refused
    with pytest.raises(QBertError, match="SASRec seeds 1 and 2 were made from different configs"):
        collect(spec)


def test_summary_is_mean_and_sample_std():
    rows = summarise({"A": [fake_record(1, 0.1, 0.2), fake_record(2, 0.3, 0.4)], "B": [fake_record(1, 0.5, 0.1)]})
    a, b = rows
    assert a["ndcg@10"][0] == pytest.approx(0.2) and a["ndcg@10"][1] == pytest.approx(math.sqrt(0.02))
    assert b["runs"] == 1 and math.isnan(b["ndcg@10"][1])
    assert a["eval_s"] == 1.0 and a["eval_cpu_s"] == pytest.approx(0.8)  # wall and CPU seconds both reported


def test_a_row_is_converged_only_when_every_run_stopped_early():
    early = dict(fake_record(1, 0.1, 0.2), stop_reason="early_stopping")
    rows = summarise({"A": [early, dict(early, seed=2)], "B": [early, fake_record(2, 0.3, 0.4)]})
    assert [converged(r) for r in rows] == [True, False]
    assert [view(r["stop"]) for r in rows] == ["converged", "efficiency"]
    assert seen(rows[0]) == "5.0 epochs, early_stopping"
    assert seen(rows[1]) == "5.0 epochs, early_stopping, epochs (efficiency view)"


def test_a_row_with_its_own_budget_is_named_in_a_converged_table(tmp_path):
    from recbole_qbert.leaderboard.output import render_markdown

    common = {"epochs": 300, "stopping_step": 10, "train_budget_s": None, "train_budget_clock": "wall"}
    extra = {"data": {"items": 9, "users": 4}, "machine": {"gpu": None, "cores": 2, "cpu": "x"}, "git_commit": "abc"}
    early = dict(fake_record(1, 0.3, 0.4), stop_reason="early_stopping", budget=common, **extra)
    capped = dict(fake_record(1, 0.5, 0.6), stop_reason="budget",  # scores above the converged rows
                  budget=dict(common, train_budget_s=2400, train_budget_clock="cpu"), **extra)
    dropped = dict(early, budget=dict(common, plateau_lr_drops=1, plateau_lr_factor=0.1))
    by_model = {"SASRec": [early], "BERT4Rec": [capped], "QBERT4Rec": [dropped]}
    spec = load_spec(write_spec(tmp_path, tmp_path), out=str(tmp_path / "out"))
    table = render_markdown(spec, summarise(by_model), by_model)
    assert ("- Budget: at most 300 epochs, early stopping after 10 evaluations without gain; at most 300 epochs, "
            "early stopping after 10 evaluations without gain, at most 2400 CPU s of training per run for BERT4Rec; "
            "at most 300 epochs, early stopping after 10 evaluations without gain once 1 plateau drop(s) of the "
            "learning rate (x0.1, from the best model) are spent for QBERT4Rec." in table)
    # the capped row is named; the converged rows are not called an efficiency view
    assert "- **Not converged** (stopped by budget): BERT4Rec (5.0 epochs): what it reaches within its budget" in table
    assert "its budget, an efficiency view, not a converged figure nor a verdict on which model is better" in table
    assert "Every other run stopped by early stopping" in table and "An efficiency view" not in table
    # the best means in bold come from the converged rows: a capped row's higher score is not marked best
    assert "| BERT4Rec | 1 |" in table and "**0.5" not in table and "**0.3000" in table
    # the capped row says so in its own "stopped by" cell; converged rows keep the plain reason
    cells = {line.split(" | ")[0]: line.rstrip(" |").split(" | ")[-1] for line in table.splitlines() if line.startswith("| ")}
    assert (cells["| BERT4Rec"], cells["| SASRec"]) == ("budget (efficiency view)", "early_stopping")
    assert "Best mean per column in bold." in table


def test_extends_merges_config_and_model_config_but_not_the_name(tmp_path):
    parent = {"name": "parent-board", "dataset": "x", "models": ["SASRec", "QBERT4Rec"], "seeds": [1, 2],
              "config": {"epochs": 3, "train_budget_s": 10}, "model_config": {"QBERT4Rec": {"n_layers": 1}}}
    (tmp_path / "parent.yaml").write_text(yaml.safe_dump(parent))
    child = {"extends": str(tmp_path / "parent.yaml"), "dataset": "y", "config": {"epochs": 5}}
    (tmp_path / "child.yaml").write_text(yaml.safe_dump(child))
    spec = load_spec(tmp_path / "child.yaml")
    assert spec.name == "child"  # never the parent's results folder
    assert (spec.dataset, spec.models, spec.seeds) == ("y", ["SASRec", "QBERT4Rec"], [1, 2])
    assert spec.config == {"epochs": 5, "train_budget_s": 10}
    assert spec.model_config == {"QBERT4Rec": {"n_layers": 1}}


def test_extends_cycles_and_unknown_keys_in_the_parent_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"extends": str(tmp_path / "b.yaml")}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"extends": str(tmp_path / "a.yaml")}))
    with pytest.raises(QBertError, match="a cycle"):
        load_spec(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"dataset": "x", "modls": []}))
    with pytest.raises(QBertError, match=r"b\.yaml: unknown leaderboard key 'modls'"):
        load_spec(tmp_path / "a.yaml")


def test_shipped_leaderboards_load():
    folder = PROJECT_ROOT / "properties" / "leaderboard"
    specs = {path.stem: load_spec(path) for path in sorted(folder.glob("*.yaml"))}
    assert specs and all(spec.name == stem for stem, spec in specs.items())
    sports, beauty = specs["amazon-sports-cpu"], specs["amazon-beauty-cpu"]
    assert sports.dataset == "amazon-sports"
    assert (sports.models, sports.seeds, sports.config, sports.model_config) == \
        (beauty.models, beauty.seeds, beauty.config, beauty.model_config)


def test_a_selection_keeps_the_command_that_made_the_table(tmp_path, monkeypatch):
    """Adding a row or a seed (``--models``/``--seeds``, with options of its own such as ``--jobs 1``) must
    not turn the table's reproduce line into that partial command; a first run writes its own."""
    import sys

    from recbole_qbert.leaderboard import pool

    monkeypatch.setattr(pool, "check_rows", lambda spec: None)
    monkeypatch.setattr(pool, "_run_pairs", lambda *args: None)  # the runs themselves are tested above
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "dataset": "x", "models": ["SASRec", "GRU4Rec"], "seeds": [1, 2]}))
    command = tmp_path / "out" / "command.txt"

    def board(*argv, models=None, seeds=None):
        monkeypatch.setattr(sys, "argv", ["qbert-leaderboard", str(path), *argv])
        spec = load_spec(path, out=str(tmp_path / "out"))
        spec.select(models, seeds, separate=False)
        run_all(spec)
        return command.read_text()

    # no table yet: the selection's command, less the selection
    assert board("--models", "GRU4Rec", "--jobs", "1", models=["GRU4Rec"]) == f"qbert-leaderboard {path} --jobs 1\n"
    assert board("--jobs", "2") == f"qbert-leaderboard {path} --jobs 2\n"  # the whole board: its own command
    assert board("--seeds", "3", "--jobs", "1", seeds=[3]) == f"qbert-leaderboard {path} --jobs 2\n"


def test_a_finished_run_frees_its_slot_while_a_longer_one_runs(tmp_path, monkeypatch):
    """With two slots, the first run waits for a file that only the last run writes: the pool must start
    the later runs as soon as the short ones end, not wait for the first one."""
    import contextlib
    import sys
    from types import SimpleNamespace

    from recbole_qbert.children import Children
    from recbole_qbert.leaderboard import pool

    release = tmp_path / "release"
    wait_for_release = ("import pathlib, sys, time\n"
                        "for _ in range(300):\n"
                        f"    if pathlib.Path({str(release)!r}).exists(): sys.exit(0)\n"
                        "    time.sleep(0.1)\n"
                        "sys.exit(1)\n")
    commands = {("long", 1): [sys.executable, "-c", wait_for_release],
                ("short", 1): [sys.executable, "-c", "pass"],
                ("short", 2): [sys.executable, "-c", f"open({str(release)!r}, 'w').close()"]}
    monkeypatch.setattr(pool, "plan_run", lambda spec, model, seed, tag: commands[(model, seed)])
    spec = SimpleNamespace(run_models=["long", "short"], run_seeds=[1, 2],
                           run_dir=lambda model, seed: tmp_path / f"{model}-{seed}")
    commands[("long", 2)] = None  # already recorded: skipped
    for model, seed in commands:
        (tmp_path / f"{model}-{seed}").mkdir()
    with contextlib.ExitStack() as held, Children() as children:
        pool._run_pairs(spec, 2, children, held)  # raises if the long run timed out waiting
    assert release.exists()


def board_spec(folder):
    """The spec a committed board folder was rendered from, with the selection its command.txt made."""
    import shlex

    argv = shlex.split((folder / "command.txt").read_text(encoding="utf-8"))
    if argv[0] == "qbert-pipeline":  # the pipeline names its leaderboard
        argv = ["qbert-leaderboard", load_yaml(PROJECT_ROOT / argv[1])["leaderboard"]]
    options = dict(a.lstrip("-").split("=", 1) for a in argv[2:] if "=" in a)
    spec = load_spec(PROJECT_ROOT / argv[1], out=str(folder))
    listed = {key: options[key].split(",") for key in ("models", "seeds") if key in options}
    if listed:
        spec.select(listed.get("models"), [int(s) for s in listed.get("seeds", [])] or None, separate=True)
    return spec


# every committed board but the one benchmarks/epoch_cost.py writes (records only, no table)
COMMITTED = sorted(p.parent for p in (PROJECT_ROOT / "results" / "leaderboard").glob("*/command.txt")
                   if not p.read_text().startswith("epoch_cost"))


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_tables_are_what_their_records_give(folder):
    """Every committed leaderboard's md and csv tables are today's aggregation of its own records: no
    figure edited by hand, no record changed or missing since the table was rendered."""
    spec = board_spec(folder)
    by_model = collect(spec, tables=True)
    rows = summarise(by_model)
    assert render_markdown(spec, rows, by_model) == (folder / "leaderboard.md").read_text(encoding="utf-8")
    assert render_csv(rows) == (folder / "leaderboard.csv").read_text(encoding="utf-8")
