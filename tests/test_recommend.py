"""qbert-recommend and RecBole's load_data_and_model on this project's checkpoints."""
import shutil

import pytest
import torch

from fixtures.errors import one_line_error
from fixtures.tiny import TINY_CONFIG, write_tiny_dataset, write_tiny_semantic_ids
from recbole_qbert.cli import recommend_main
from recbole_qbert.errors import QBertError
from recbole_qbert.recommend import Recommender, load_data_and_model
from recbole_qbert.runner import run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_ITEMS = 30


def sequence(u: int):
    """User ``u``'s items in the tiny walk (fixtures.tiny), oldest first."""
    return [f"i{(u * 7 + t) % N_ITEMS}" for t in range(6 + u % 7)]


def write_titled(root, name="titled"):
    """The tiny dataset plus an item file with titles and the YAML a converter writes (load_col)."""
    folder = write_tiny_dataset(root, name)
    (folder / f"{name}.item").write_text("item_id:token\ttitle:token_seq\n" + "".join(
        f"i{i}\tItem number {i}\n" for i in range(N_ITEMS)), encoding="utf-8")
    (folder / f"{name}.yaml").write_text(
        "load_col:\n  inter: [user_id, item_id, timestamp]\n  item: [item_id, title]\n", encoding="utf-8")
    return folder


def overrides(data, **extra):
    return {**{k: v for k, v in TINY_CONFIG.items() if k != "load_col"}, "data_path": str(data), **extra}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A QSASRec run (semantic IDs) on the titled tiny dataset: its run folder."""
    root = tmp_path_factory.mktemp("recommend")
    write_titled(root / "atomic")
    sid = write_tiny_semantic_ids(root / "titled.sid", name="titled")
    run("QSASRec", "titled", run_dir=root / "run", overrides=overrides(root / "atomic", epochs=2, sid_file=str(sid)))
    return root / "run"


@pytest.fixture(scope="module")
def recommender(trained):
    return Recommender.from_run(trained)


def test_user_query_continues_the_whole_sequence(recommender):
    rec = recommender.for_user("u3", k=5)
    assert rec.history == sequence(3)  # training, validation and test items, oldest first
    assert len(rec.items) == len(rec.scores) == len(rec.titles) == 5 and len(set(rec.items)) == 5
    assert not set(rec.items) & set(sequence(3)), "the history's items are left out by default"
    assert rec.scores == sorted(rec.scores, reverse=True)
    assert rec.titles == [f"Item number {t[1:]}" for t in rec.items]
    # the same as typing the user's sequence, up to RecBole's user id, which QSASRec does not read
    typed = recommender.for_history(sequence(3), k=5)
    assert (typed.items, typed.scores) == (rec.items, rec.scores)


def test_scores_are_full_sort_predict_on_recboles_own_test_row(trained, recommender):
    """The test row RecBole builds for a user (history = all but the last item) scored by the model
    equals the recommendation for that history typed in."""
    _, model, dataset, _, _, test = load_data_and_model(trained / "best.pth")
    uid = dataset.field2token_id[dataset.uid_field]["u5"]
    for interaction, *_ in test:
        rows = torch.nonzero(interaction[dataset.uid_field] == uid).view(-1)
        if len(rows):
            row = interaction[rows]
            break
    with torch.no_grad():
        expected = model.full_sort_predict(row).view(-1)
    rec = recommender.for_history(sequence(5)[:-1], k=N_ITEMS, keep_history=True)
    assert len(rec.items) == N_ITEMS  # every item but the padding one
    ids = dataset.token2id(dataset.iid_field, rec.items)
    assert torch.allclose(torch.tensor(rec.scores), expected[ids], atol=1e-5)


def test_history_exclusion_and_k(recommender):
    history = ["i1", "i2", "i3"]
    rec = recommender.for_history(history, k=100)
    assert len(rec.items) == N_ITEMS - len(history) and not set(rec.items) & set(history)
    kept = recommender.for_history(history, k=100, keep_history=True)
    assert set(kept.items) == {f"i{i}" for i in range(N_ITEMS)}
    assert recommender.for_history(history * 30, k=3).history == (history * 30)[-50:]  # MAX_ITEM_LIST_LENGTH
    with pytest.raises(QBertError, match="k must be at least 1"):
        recommender.for_history(history, k=0)


def test_unknown_tokens_are_one_line_errors(recommender):
    with pytest.raises(QBertError, match=r"titled.inter: no user 'nobody'$"):
        recommender.for_user("nobody")
    with pytest.raises(QBertError, match=r"titled.inter: no item 'i99'$"):
        recommender.for_history(["i1", "i99"])
    with pytest.raises(QBertError, match=r"titled.inter: no item '\[PAD\]'$"):  # RecBole's padding token
        recommender.for_history(["[PAD]"])


def test_cold_items_are_scored_by_their_codes(tmp_path, in_tmp):
    """Items held out of training entirely are candidates like any other, and a typed history may hold
    them: a codes-only model scores them through the codes they share with trained items."""
    from dataset_prep import cold_start
    from recbole_qbert.data.cold_start import COLD_ITEMS_FILE, read_item_list

    write_titled(tmp_path)
    assert cold_start.main(["--dataset", "titled", "--data-path", str(tmp_path), "--share", "0.2"]) == 0
    cold = read_item_list(tmp_path / "titled-cold" / COLD_ITEMS_FILE)
    sid = write_tiny_semantic_ids(tmp_path / "cold.sid", name="titled-cold")
    run("QSASRec", "titled-cold", run_dir=tmp_path / "run", overrides=overrides(
        tmp_path, epochs=1, sid_file=str(sid), use_id_embedding=False))
    recommender = Recommender.from_run(tmp_path / "run")
    rec = recommender.for_history(cold[:2], k=N_ITEMS)
    assert set(cold[2:]) <= set(rec.items) and all(torch.isfinite(torch.tensor(rec.scores)))
    assert rec.history == cold[:2]


def test_cli_prints_tokens_scores_titles(trained, capsys):
    assert recommend_main([str(trained), "--user", "u3,u4", "-k", "3"]) == 0
    blocks = capsys.readouterr().out.strip().split("\n\n")
    assert [b.splitlines()[0].split(":")[0] for b in blocks] == ["user u3", "user u4"]
    for block in blocks:
        rows = block.splitlines()[1:]
        assert len(rows) == 3 and all("Item number" in r for r in rows)
        assert [r.split()[0] for r in rows] == ["1", "2", "3"]
    assert recommend_main([str(trained), "--history", "i1,i2", "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("history: top 10 after 2 items (i1 i2)") and len(out.strip().splitlines()) == 11


@pytest.mark.parametrize("argv, message", [
    (["{empty}", "--user", "u1"], "{empty}: no best.pth (a run folder is the --checkpoint_dir of run_recbole.py)"),
    (["{run}", "--user", "nobody"], "titled.inter: no user 'nobody'"),
    (["{run}", "--history", "i1,zzz"], "titled.inter: no item 'zzz'"),
    (["{run}", "--history", ","], "history: no items given"),
])
def test_cli_errors_are_one_line(trained, tmp_path, capsys, argv, message):
    paths = {"empty": str(tmp_path), "run": str(trained)}
    assert recommend_main([a.format(**paths) for a in argv]) == 2
    assert one_line_error(capsys).endswith(f"{message.format(**paths)}\n")


def test_changed_dataset_is_refused(tmp_path, in_tmp):
    data = tmp_path / "atomic"
    write_titled(data)
    run("SASRec", "titled", run_dir=tmp_path / "run", overrides=overrides(data, epochs=1))
    inter = data / "titled" / "titled.inter"
    inter.write_text(inter.read_text().replace("u0\ti0\t0", "u0\ti1\t0"))
    with pytest.raises(QBertError, match="changed since this checkpoint was made"):
        Recommender.from_run(tmp_path / "run")


def test_recboles_own_loader_reads_our_checkpoints(trained, tmp_path):
    """``recbole.quick_start`` imports without ray, and its load_data_and_model loads our checkpoint
    (RecBole's own would KeyError on 'config')."""
    import recbole.quick_start

    shutil.copytree(trained, tmp_path / "copy")  # any folder: the checkpoint is found by its path
    config, model, dataset, train, valid, test = recbole.quick_start.load_data_and_model(
        str(tmp_path / "copy" / "best.pth"))
    assert type(model).__name__ == "QSASRec" and not model.training
    assert config["dataset"] == "titled" and config["MODEL_TYPE"].name == "SEQUENTIAL"
    assert len(test._dataset.inter_feat) == 60  # one test row per user
    with pytest.raises(QBertError, match="ray"):
        recbole.quick_start.quick_start.tune.report(ndcg=1.0)


def older_run(trained, folder, *, drop):
    """A copy of ``trained`` whose checkpoint was written before the config keys ``drop`` existed."""
    import yaml

    from recbole_qbert.training.checkpoint import load_checkpoint, save_checkpoint

    shutil.copytree(trained, folder)
    state = load_checkpoint(folder / "best.pth")
    values = yaml.safe_load(state["config_yaml"])
    assert all(key in values for key in drop)
    state["config_yaml"] = yaml.safe_dump({k: v for k, v in values.items() if k not in drop})
    save_checkpoint(state, folder / "best.pth")
    return folder


def test_a_run_older_than_a_config_key_loads_with_its_default(trained, recommender, tmp_path):
    """Keys added since a run was trained (QSASRec's later options) take their defaults, which change
    nothing: the older run scores exactly as before."""
    old = older_run(trained, tmp_path / "old",
                    drop=["future_targets", "future_target_decay", "attention_recency_bias"])
    again = Recommender.from_run(old)
    assert again.config["future_targets"] == 1 and again.config["attention_recency_bias"] is False
    assert again.for_user("u3", k=5) == recommender.for_user("u3", k=5)


def test_a_run_older_than_a_key_whose_default_changes_the_model_is_refused(trained, tmp_path, capsys):
    old = older_run(trained, tmp_path / "old", drop=["n_layers"])
    with pytest.raises(QBertError, match=r"old/best.pth: made before config key\(s\) n_layers existed, and their "
                                         "default changes the model"):
        Recommender.from_run(old)
    assert recommend_main([str(old), "--user", "u1"]) == 2
    one_line_error(capsys, "made before config key(s) n_layers existed")
