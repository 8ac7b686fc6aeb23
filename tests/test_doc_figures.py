"""The leaderboard figures README.md and docs/RESULTS.md quote are the committed tables' own.

Every ``| Model | runs | ...`` table in them quotes the board whose spec its section names before it
(``properties/leaderboard/<name>.yaml``, or a pipeline ``properties/pipeline/<name>.yaml``, which names its
board); each of its rows that the board holds must carry the board's figures in every column both tables have,
to the precision the docs give (a row the board lacks must say "not run")."""
import re

import pytest

from recbole_qbert.config import PROJECT_ROOT, load_yaml

DOCS = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "docs" / "RESULTS.md"]
SPEC = re.compile(r"properties/(leaderboard|pipeline)/([\w.-]+)\.yaml")
# the main job's board: the README's first command reruns it wherever the stages hash differently (another
# machine's numeric kernels), so a user's own run need not repeat the figures the docs quote
REWRITTEN_BY_THE_MAIN_JOB = {"ml-100k-pipeline"}
# board columns under another name in the docs' tables
SAME_AS = {"epochs in budget": "epochs", "eval s (CPU s)": "eval s", "cold NDCG@10": "subset NDCG@10",
           "cold Recall@10": "subset Recall@10"}


def board_of(kind: str, name: str) -> str:
    if kind == "leaderboard":
        return name
    return SPEC.search(load_yaml(PROJECT_ROOT / "properties" / "pipeline" / f"{name}.yaml")["leaderboard"]).group(2)


def figures(cell: str):
    """The leading figures of a cell (a mean and its std, or one number), None for words."""
    match = re.match(r"(\d[\d,.]*)(?: ± ([\d.]+))?", cell)
    return [g for g in match.groups() if g] if match else None


def same(ours: str, theirs: str) -> bool:
    """Two roundings of one value (the docs may quote 13.36 where the table prints 13.4)."""
    half_units = sum(0.5 * 10.0 ** -len(text.partition(".")[2]) for text in (ours, theirs))
    return abs(float(ours.replace(",", "")) - float(theirs.replace(",", ""))) <= half_units + 1e-12


def cells(line: str):
    return [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]


def board_rows(name: str):
    """``{row name: {column: cell}}`` of ``results/leaderboard/<name>/leaderboard.md``."""
    table = [line for line in (PROJECT_ROOT / "results" / "leaderboard" / name / "leaderboard.md").read_text(
        encoding="utf-8").splitlines() if line.startswith("|")]
    head = cells(table[0])
    return {row[0]: dict(zip(head, row)) for row in map(cells, table[2:])}


def quoted_rows(path):
    """``(board, line number, {column: cell})`` for every row of the file's ``| Model | runs |`` tables."""
    board, head, named = None, None, []  # named: the specs the text names since the last table
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("| Model | runs |"):
            head = cells(line)
            # a leaderboard named beside a pipeline (e.g. the one that made its semantic IDs) is the table's
            named.sort(key=lambda kind_name: kind_name[0] == "leaderboard")
            board, named = (board_of(*named[-1]) if named else board), []
        elif head and line.startswith("|") and not line.startswith("|---"):
            yield board, number, dict(zip(head, cells(line)))
        elif line.startswith("#"):  # a new section names its own board
            board, head, named = None, None, []
        elif not line.startswith("|"):
            head = None
            named += SPEC.findall(line)


QUOTED = [(path.name, *row) for path in DOCS for row in quoted_rows(path) if row[0] not in REWRITTEN_BY_THE_MAIN_JOB]


def test_the_docs_quote_leaderboards():
    assert {doc for doc, *_ in QUOTED} == {"README.md", "RESULTS.md"} and len(QUOTED) > 100


@pytest.mark.parametrize("doc, board, number, row", QUOTED, ids=[f"{d}:{n}" for d, _, n, _ in QUOTED])
def test_quoted_figures_are_the_boards(doc, board, number, row):
    assert board, f"{doc}:{number}: the section names no leaderboard or pipeline spec before this table"
    name = row["Model"].split()[0]
    rows = board_rows(board)
    if name not in rows:
        assert "not run" in row["NDCG@10"], f"{doc}:{number}: {name} is not a row of {board}"
        return
    for column, cell in row.items():
        if column in ("Model", "stopped by"):
            continue
        theirs = rows[name].get(SAME_AS.get(column, column))
        assert theirs is not None, f"{doc}:{number}: {board} has no column {column!r}"
        if figures(cell) is None:
            continue
        pairs = list(zip(figures(cell), figures(theirs) or []))
        assert len(pairs) == len(figures(cell)) and all(same(a, b) for a, b in pairs), \
            f"{doc}:{number}: {name} {column} is {cell}, {board} says {theirs}"


# the README's summary tables: one column per converged board, test NDCG@10 in each cell
SET_COLUMNS = {"Scientific subset": "amazon-scientific-converged", "full Scientific": "amazon-scientific-full-converged",
               "full Scientific (UniSRec)": "amazon-scientific-full-converged", "Amazon Beauty": "amazon-beauty-converged"}


def summary_cells(path):
    """``(line number, row name, board, cell)`` for every cell of the ``| | Scientific subset | ...`` tables,
    the row named by the label's first word or first backticked name (``SASRec-filter-history``, ``**QSASRec-
    prenorm-text-seen** (...)``, ``the same with ... (`QSASRec-prenorm-text-seen-l3-drop`, ...)``)."""
    head = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if line.startswith("| | Scientific subset"):
            head = cells(line)
        elif line.startswith("|---"):
            continue
        elif head and line.startswith("|"):
            row = cells(line)
            names = row[0].split()[:1] + re.findall(r"`([\w.-]+)`", row[0])
            for column, cell in zip(head[1:], row[1:]):
                board = SET_COLUMNS[column]
                yield number, next((n for n in names if n in board_rows(board)), ""), board, cell
        else:
            head = None


SUMMARY = [cell for cell in summary_cells(DOCS[0])
           if cell[1] in board_rows(cell[2]) and figures(cell[3]) and " ± " in cell[3]]


def test_the_summary_tables_quote_board_rows():
    assert len(SUMMARY) >= 12


@pytest.mark.parametrize("number, name, board, cell", SUMMARY, ids=[f"README.md:{n}:{b}" for n, _, b, _ in SUMMARY])
def test_summary_figures_are_the_boards(number, name, board, cell):
    theirs = board_rows(board)[name]["NDCG@10"]
    assert all(same(a, b) for a, b in zip(figures(cell), figures(theirs))), \
        f"README.md:{number}: {name} on {board} is {cell}, the board says {theirs}"
