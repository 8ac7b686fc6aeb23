"""One checker of config values: declarations, types, ranges, and one line for every bad value."""
import pytest
import yaml

from fixtures.errors import one_line_error
from recbole_qbert.cli import leaderboard_main, pipeline_main, run_main
from recbole_qbert.errors import QBertError
from recbole_qbert.value_types import check_value, declarations_in, parse_declaration


@pytest.mark.parametrize("text, value, expected", [
    ("int, >=1", 3, 3),
    ("float, >0", 1, 1.0),  # an int is a float
    ("float, >0", "1e-3", 0.001),  # YAML 1.1 reads 1e-3 as a string
    ("float|None, >=0, <=1", None, None),
    ("list[int]|int, >=1", [5, 10], [5, 10]),
    ("str, wall|cpu", "cpu", "cpu"),
    ("str, ids|full|none", None, "none"),  # --set refit=none reads as None
    ("str|None, ids|none", None, None),  # a key that allows None keeps it
    ("bool", False, False),
])
def test_allowed_values_pass_converted(text, value, expected):
    got = check_value("k", value, parse_declaration(text, "here"), "src")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("text, value, message", [
    ("int, >=1", 0, "src: k=0: expected int >= 1"),
    ("int, >=0", "ten", "src: k='ten': expected int >= 0"),
    ("int", 2.5, "src: k=2.5: expected int"),
    ("int", True, "src: k=True: expected int"),  # a bool is not a number here
    ("float, >0", "fast", "src: k='fast': expected float > 0"),
    ("float", float("nan"), "src: k=nan: expected float"),
    ("float|None, >=0, <=1", 1.5, "src: k=1.5: expected float >= 0 and <= 1, or None"),
    ("bool", "no", "src: k='no': expected true or false"),
    ("bool", 1, "src: k=1: expected true or false"),
    ("list[int]|int, >=1", [5, 0], r"src: k=\[5, 0\]: expected a list of ints >= 1, or int >= 1"),
    ("str, wall|cpu", "gpu", r"src: k='gpu': expected str \(one of wall, cpu\)"),
    ("str, wall|cpu", None, r"src: k=None: expected str \(one of wall, cpu\)"),  # only a choice none takes None
    ("list", "SASRec", "src: k='SASRec': expected list"),
])
def test_bad_values_are_one_line_errors(text, value, message):
    with pytest.raises(QBertError, match=message):
        check_value("k", value, parse_declaration(text, "here"), "src")


@pytest.mark.parametrize("text, message", [("integer", "unknown type 'integer'"),
                                           ("int, ~5", "cannot read constraint")])
def test_bad_declarations_name_their_place(text, message):
    with pytest.raises(QBertError, match=f"here: {message}"):
        parse_declaration(text, "here")


def test_declarations_come_from_comments(tmp_path):
    path = tmp_path / "defaults.yaml"
    path.write_text("a: 1   # (int, >=1) Something (with parentheses).\nb: x  # no declaration\n"
                    "c:     # (dict) Nested.\n  d: 2  # (int) not top level\n")
    assert set(declarations_in(path)) == {"a", "c"}
    assert declarations_in(path)["a"].describe() == "int >= 1"


def test_project_and_recbole_declarations_agree():
    """A key declared both for RecBole and in a project YAML is declared alike (else every run fails)."""
    from recbole_qbert.config import declared_values

    declared = declared_values()
    assert declared["hidden_size"].describe() == "int >= 1"
    assert declared["cpu_threads"].describe() == "int >= 1, or None"


def test_shipped_configs_and_leaderboards_pass_the_checks():
    from recbole_qbert.config import PROPERTIES, declared_values, load_yaml
    from recbole_qbert.leaderboard import load_spec
    from recbole_qbert.value_types import check_values

    declared = declared_values()
    configs = [PROPERTIES / "overall.yaml", *PROPERTIES.glob("model/*.yaml"), *PROPERTIES.glob("dataset/*.yaml"),
               *PROPERTIES.glob("qbert4rec/*.yaml")]
    boards = sorted(PROPERTIES.glob("leaderboard/*.yaml"))
    assert len(configs) >= 10 and len(boards) >= 10, "the shipped files were not found"
    for path in configs:
        check_values(load_yaml(path), declared, str(path))
    for path in boards:
        spec = load_spec(path)
        for model in spec.models:
            check_values(spec.run_config(model, 1), declared, f"{path} {model}")


@pytest.mark.parametrize("argv, message", [
    (["--model=QBERT4Rec", "--use_id_embedding=no"], "command line: use_id_embedding='no': expected true or false"),
    (["--model=QBERT4Rec", "--use_id_embedding=maybe"], "use_id_embedding='maybe': expected true or false"),
    (["--learning_rate=fast"], "command line: learning_rate='fast': expected float > 0"),
    (["--epochs=ten"], "command line: epochs='ten': expected int >= 0"),
    (["--train_batch_size=0"], "command line: train_batch_size=0: expected int >= 1"),
    (["--model=QBERT4Rec", "--finetune_from=abc"], "finetune_from='abc': expected float > 0 and < 1, or None"),
    (["--n_heads=3"], "config: hidden_size=64 is not divisible by n_heads=3"),
])
def test_run_config_values_are_one_line_errors(argv, message, capsys, in_tmp):
    argv = ["--dataset=ml-100k", f"--checkpoint_dir={in_tmp / 'run'}", *argv]
    assert run_main(argv if argv[2].startswith("--model") else ["--model=SASRec", *argv]) == 2
    one_line_error(capsys, message)


def test_value_in_a_config_file_names_the_file(capsys, in_tmp):
    (in_tmp / "mine.yaml").write_text("learning_rate: fast\n")
    assert run_main(["--model=SASRec", "--config_files=mine.yaml", f"--checkpoint_dir={in_tmp / 'run'}"]) == 2
    one_line_error(capsys, "mine.yaml: learning_rate='fast': expected float > 0")


@pytest.mark.parametrize("line, message", [
    ("seeds: 1", "seeds=1: expected a list of ints"),
    ("config: [epochs]", "config=['epochs']: expected dict, or None"),
    ("models: SASRec", "models='SASRec': expected list"),
    ("model_config: {SASRec: [1]}", "model_config of 'SASRec' must be a mapping"),
])
def test_leaderboard_spec_values_are_one_line_errors(line, message, capsys, tmp_path):
    content = {"dataset": "tiny", "models": ["SASRec"], "seeds": [1], **yaml.safe_load(line)}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(content))
    assert leaderboard_main([str(tmp_path / "s.yaml"), "--render-only"]) == 2
    one_line_error(capsys, message)


def test_pipeline_step_values_are_one_line_errors(capsys, tmp_path):
    spec = {"dataset": "x", "steps": [{"name": "a", "run": "fuse", "outputs": ["o"]}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    assert pipeline_main([str(tmp_path / "p.yaml")]) == 2
    one_line_error(capsys, "p.yaml: step 1: run='fuse': expected list")
