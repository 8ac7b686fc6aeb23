"""Top-k recommendations from a trained run (``qbert-recommend``), and RecBole's ``load_data_and_model``
for this project's checkpoints.

A run folder is the ``--checkpoint_dir`` of ``run_recbole.py``: ``best.pth`` (the model of the best
validation epoch), ``last.pth``, ``run.log`` and ``record.json``. A checkpoint holds the run's final
config as plain values; it is restored as it was, not rebuilt from today's config files (keys added to
this project since then take their defaults, refused where a default would change the model), and the
dataset is read from the same files, which must be unchanged since training (the checkpoint holds their
hashes).

A query is a user token or a typed item history (tokens, oldest first). A user's history is the user's
whole sequence in the dataset (training, validation and test items), so the recommendation is the item
after the last one known. The model sees the last ``MAX_ITEM_LIST_LENGTH`` items of the history, and
the history's items are left out of the top k unless ``keep_history``. Every other item of the dataset is
a candidate, scored by the model's ``full_sort_predict``: a semantic-ID model scores an item never seen in
training (a cold item) by its codes like any other.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
import yaml

from recbole_qbert.errors import QBertError

# item columns shown as the item's title, the first one the dataset loaded
TITLE_FIELDS = ("title", "movie_title", "text")
# final config values RecBole keeps as enums (a checkpoint holds their names, e.g. "ModelType.SEQUENTIAL")
_ENUM_KEYS = {"MODEL_TYPE": "ModelType", "MODEL_INPUT_TYPE": "InputType", "eval_type": "EvaluatorType"}


def add_keys_newer_than_the_run(values: dict, model_class, source) -> None:
    """Give a run's plain final config ``values`` the keys this version declares for ``model_class`` that
    the run predates, at their defaults. A new key enters the config hash only where it changes the model
    (``recbole_qbert.config.is_hashed``), so a default that would is refused: the run cannot be rebuilt."""
    from recbole_qbert.config import config_file_list, is_hashed, load_yaml

    defaults = {}
    for path in config_file_list(model_class, values["dataset"], own_model=True):
        defaults.update(load_yaml(path))
    added = {key: value for key, value in defaults.items() if key not in values}
    values.update(added)
    changing = sorted(key for key in added if is_hashed(key, values))
    if changing:
        raise QBertError(f"{source}: made before config key(s) {', '.join(changing)} existed, and their default "
                         "changes the model; this version cannot rebuild the run as it was trained")


def restore_config(state: dict, model_class, source="checkpoint"):
    """The run's RecBole ``Config`` from a checkpoint's plain values, as unpickling RecBole's own
    checkpoint would give it back; the device is this machine's. Keys added to this project since the run
    get their defaults (:func:`add_keys_newer_than_the_run`)."""
    import recbole.utils as recbole_utils
    from recbole.config import Config
    from recbole.utils import argument_list

    values = yaml.safe_load(state["config_yaml"])
    add_keys_newer_than_the_run(values, model_class, source)
    for key, enum in _ENUM_KEYS.items():
        values[key] = getattr(recbole_utils, enum)[values[key].split(".", 1)[1]]
    values["device"] = torch.device("cuda" if values["use_gpu"] and torch.cuda.is_available() else "cpu")
    config = Config.__new__(Config)  # Config() would rebuild it from today's files and defaults
    config.__dict__.update(
        model=values["model"], model_class=model_class, dataset=values["dataset"], final_config_dict=values,
        parameters={name: getattr(argument_list, f"{name.lower()}_arguments")
                    for name in ("General", "Training", "Evaluation", "Dataset")},
        run_hash=state["config_hash"])
    return config


def load_data_and_model(model_file):
    """``recbole.quick_start.load_data_and_model`` for a checkpoint of this project (``best.pth`` or
    ``last.pth``; RecBole's own pickled checkpoints are refused, since unpickling can run code).

    Returns RecBole's tuple ``(config, model, dataset, train_data, valid_data, test_data)``; the model is
    in eval mode. A checkpoint whose dataset or semantic-ID files changed since it was made is refused.
    """
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_qbert.model_registry import resolve_model
    from recbole_qbert.runner import build_dataset
    from recbole_qbert.trainer import make_trainer
    from recbole_qbert.training.checkpoint import load_checkpoint

    path = Path(model_file)
    state = load_checkpoint(path)
    model_class = resolve_model(state["model"])
    config = restore_config(state, model_class, path)
    config["checkpoint_dir"] = str(path.parent)  # the trainer makes this folder; the one saved may be relative
    config["single_spec"], config["local_rank"] = True, 0  # one process, whatever the run was
    init_seed(config["seed"], config["reproducibility"])
    dataset = build_dataset(config, model_class)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = model_class(config, train._dataset).to(config["device"])
    make_trainer(config, model).load_best(path)  # checks the model, dataset, config and input hashes
    return config, model.eval(), dataset, train, valid, test


@dataclass
class Recommendation:
    """The top items for one query, best first."""
    query: str  # "user <token>" or "history"
    history: List[str]  # item tokens the model saw, oldest first
    items: List[str]
    scores: List[float]  # the model's full_sort_predict scores of ``items``
    titles: Optional[List[str]]  # the dataset's title column, None when it has none


class Recommender:
    """A trained model with its dataset, answering top-k queries by item and user tokens."""

    def __init__(self, config, model, dataset):
        from recbole.utils import ModelType

        if config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
            raise QBertError(f"{config['model']} is not a sequential model: recommendations continue a history, "
                             "which only sequential models read")
        self.config, self.model, self.dataset = config, model, dataset
        self.inter_file = Path(config["data_path"]) / f"{config['dataset']}.inter"
        self.title_field = next((f for f in TITLE_FIELDS if dataset.item_feat is not None
                                 and f in dataset.item_feat.columns), None)

    @classmethod
    def from_run(cls, run_dir, *, checkpoint: str = "best") -> "Recommender":
        """Load ``<run_dir>/<checkpoint>.pth`` (``best`` or ``last``) with its dataset."""
        path = Path(run_dir) / f"{checkpoint}.pth"
        if not path.is_file():
            raise QBertError(f"{run_dir}: no {path.name} (a run folder is the --checkpoint_dir of run_recbole.py)")
        config, model, dataset, *_ = load_data_and_model(path)
        return cls(config, model, dataset)

    # -- tokens and histories -------------------------------------------------------------------
    def _ids(self, field: str, tokens: Sequence[str], what: str) -> List[int]:
        known = self.dataset.field2token_id[field]
        unknown = [t for t in tokens if t not in known or known[t] == 0]  # 0: RecBole's padding "[PAD]"
        if unknown:
            raise QBertError(f"{self.inter_file}: no {what} '{unknown[0]}'")
        return [known[t] for t in tokens]

    def user_sequence(self, user: str) -> torch.Tensor:
        """The item ids of ``user``'s whole sequence, oldest first, ``(n,)``.

        RecBole keeps one row per prefix (history ``item_id_list``, target ``item_id``): in time order
        (stable, as RecBole sorts), the sequence is the first row's one-item history followed by every
        row's target."""
        ds = self.dataset
        uid = self._ids(ds.uid_field, [user], "user")[0]
        rows = torch.nonzero(ds.inter_feat[ds.uid_field] == uid).view(-1)
        rows = rows[torch.argsort(ds.inter_feat[ds.time_field][rows], stable=True)]  # already so under order TO
        if not len(rows):
            raise QBertError(f"{self.inter_file}: user '{user}' has a single interaction, so no sequence to "
                             "continue; type it as a history instead")
        first = ds.inter_feat[self.model.ITEM_SEQ][rows[0], :1]
        return torch.cat([first, ds.inter_feat[ds.iid_field][rows]])

    def title(self, item: int) -> str:
        values = self.dataset.item_feat[self.title_field][item].view(-1)
        tokens = self.dataset.field2id_token[self.title_field]
        return " ".join(str(tokens[v]) for v in values.tolist() if v)  # 0 pads a token_seq

    # -- scoring ---------------------------------------------------------------------------------
    @torch.no_grad()
    def scores(self, history: torch.Tensor, user: int = 0) -> torch.Tensor:
        """``full_sort_predict`` of the last ``MAX_ITEM_LIST_LENGTH`` items of ``history`` ``(n,)`` (item
        ids, oldest first) for internal user id ``user`` (0, RecBole's padding user, for a typed history):
        scores of every item ``(n_items,)``, index = internal item id."""
        from recbole.data.interaction import Interaction

        history = history[-self.config["MAX_ITEM_LIST_LENGTH"]:]
        seq = torch.zeros(1, self.config["MAX_ITEM_LIST_LENGTH"], dtype=torch.long)
        seq[0, :len(history)] = history
        interaction = Interaction({self.model.ITEM_SEQ: seq, self.model.ITEM_SEQ_LEN: torch.tensor([len(history)]),
                                   self.dataset.uid_field: torch.tensor([user])})
        return self.model.full_sort_predict(interaction.to(self.config["device"])).view(-1).cpu()

    def _top(self, query: str, history: torch.Tensor, user: int, k: int, keep_history: bool) -> Recommendation:
        if k < 1:
            raise QBertError(f"k must be at least 1, got {k}")
        scores = self.scores(history, user)
        candidates = torch.ones_like(scores, dtype=torch.bool)
        candidates[0] = False  # RecBole's padding item
        if not keep_history:
            candidates[history] = False
        ranked = torch.nonzero(candidates).view(-1)
        order = torch.argsort(scores[ranked], descending=True, stable=True)[:k]
        top = ranked[order].tolist()
        tokens = self.dataset.field2id_token[self.dataset.iid_field]
        seen = history[-self.config["MAX_ITEM_LIST_LENGTH"]:].tolist()
        return Recommendation(
            query=query, history=[str(tokens[i]) for i in seen], items=[str(tokens[i]) for i in top],
            scores=scores[top].tolist(),
            titles=[self.title(i) for i in top] if self.title_field else None)

    def for_user(self, user: str, *, k: int = 10, keep_history: bool = False) -> Recommendation:
        """The top ``k`` items after ``user``'s whole sequence."""
        sequence = self.user_sequence(user)  # first: it names an unknown user
        uid = self.dataset.field2token_id[self.dataset.uid_field][user]
        return self._top(f"user {user}", sequence, uid, k, keep_history)

    def for_history(self, items: Sequence[str], *, k: int = 10, keep_history: bool = False) -> Recommendation:
        """The top ``k`` items after the typed ``items`` (tokens, oldest first)."""
        if not items:
            raise QBertError("history: no items given")
        history = torch.tensor(self._ids(self.dataset.iid_field, items, "item"), dtype=torch.long)
        return self._top("history", history, 0, k, keep_history)


def format_recommendation(rec: Recommendation, *, title_width: int = 80) -> str:
    """Plain-text table: rank, item token, score and (when the dataset has one) the title, cut to
    ``title_width`` characters."""
    width = max(len(t) for t in rec.items) if rec.items else 0
    lines = [f"{rec.query}: top {len(rec.items)} after {len(rec.history)} items ({' '.join(rec.history)})"]
    for rank, (item, score) in enumerate(zip(rec.items, rec.scores), start=1):
        title = rec.titles[rank - 1] if rec.titles else ""
        if len(title) > title_width:
            title = title[:title_width - 3] + "..."
        lines.append(f"{rank:>4}  {item:<{width}}  {score:>9.4f}  {title}".rstrip())
    return "\n".join(lines)
