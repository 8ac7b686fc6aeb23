"""properties/recommended/: the converged leaderboards' configurations, ready for a user's own dataset."""
import pytest

from fixtures.tiny import tiny_overrides
from recbole_qbert.config import PROPERTIES, load_yaml
from recbole_qbert.leaderboard.spec import load_spec
from recbole_qbert.runner import run

# file -> the converged board row it must equal (the README's headline rows)
ROWS = {"QBERT4Rec": "QBERT4Rec-prenorm-text-seen-cloze40-h256-cos-drop",
        "QSASRec": "QSASRec-prenorm-text-seen-l3-drop"}
BOARD = PROPERTIES / "leaderboard" / "amazon-scientific-converged.yaml"


def recommended(model: str):
    return PROPERTIES / "recommended" / f"{model}.yaml"


@pytest.mark.parametrize("model", sorted(ROWS))
def test_recommended_file_is_the_converged_board_row(model):
    """The file a user is pointed to trains what the headline tables measured: the row's own keys plus the
    board's shared epoch cap and patience, nothing else."""
    spec = load_spec(BOARD)
    shared = {key: spec.config[key] for key in ("epochs", "stopping_step")}
    assert load_yaml(recommended(model)) == {**shared, **spec.model_config[ROWS[model]]}


@pytest.mark.parametrize("model", sorted(ROWS))
def test_recommended_file_trains_as_is(model, tiny_data, sid_file, content_file, tmp_path, in_tmp):
    """Every key is accepted for its model and reaches the run; only the sizes and the text table are the
    tiny data's."""
    path, _ = content_file
    wanted = load_yaml(recommended(model))
    overrides = tiny_overrides(tiny_data, sid_file=str(sid_file), content_features=[str(path)], epochs=2)
    record = run(model, "tiny", config_files=[recommended(model)], overrides=overrides, run_dir=tmp_path / "run")
    kept = {k: v for k, v in wanted.items() if k not in overrides}
    assert {k: record["config"][k] for k in kept} == kept
    assert record["epochs_trained"] == 2 and record["test"]["ndcg@10"] > 0
