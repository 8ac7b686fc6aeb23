"""How stage 2 and catalogue scoring grow with the number of items (synthetic catalogues up to 1M items).

For each catalogue size N, on random clustered 256-d features:

* quantization: one RQ-VAE training epoch, code assignment of all items, collision resolution
  (seconds and peak memory growth), with the project's default quantizer settings;
* scoring: full-catalogue scores and top-10 for a batch of users, composed from semantic codes
  (QBERT4Rec: sum of per-level code embeddings) against a free ID embedding table (BERT4Rec/SASRec),
  and the parameters each item table needs.

    python benchmarks/scaling.py [--sizes 10000 100000 1000000] [--threads 1]

Figures are printed and saved to results/benchmarks/scaling.json with the machine and command.
"""
import argparse
import resource
import sys
import time

import recbole_qbert  # noqa: F401  first: it pins the CPU kernels numpy and torch load on import
import numpy as np
import torch

from recbole_qbert.quantize.collisions import resolve
from recbole_qbert.quantize.settings import load_settings
from recbole_qbert.quantize.train import assign_codes, build_model
from recbole_qbert.run_record import command_line, machine_info
from recbole_qbert.safe_io import write_json
from recbole_qbert.config import PROJECT_ROOT


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_features(n: int, dim: int = 256, clusters: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32) * 3
    return centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim)).astype(np.float32)


def quantization_cost(x: np.ndarray, settings: dict) -> dict:
    """One training epoch (k-means init not included), assignment and collision resolution."""
    model = build_model(x.shape[1], settings)
    xt = torch.from_numpy(x)
    model.fit_input_norm(xt)
    opt = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"])
    start = time.perf_counter()
    for s in range(0, len(xt), settings["batch_size"]):
        out = model(xt[s:s + settings["batch_size"]])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    epoch_s = time.perf_counter() - start
    start = time.perf_counter()
    assignment = assign_codes(model, x)
    assign_s = time.perf_counter() - start
    start = time.perf_counter()
    _, extra = resolve(assignment.codes, "extra_level", priority=assignment.priority)
    return {"train_epoch_s": round(epoch_s, 2), "assign_s": round(assign_s, 2),
            "resolve_s": round(time.perf_counter() - start, 2), "extra_level_size": int(extra)}


@torch.no_grad()
def scoring_cost(n: int, hidden: int = 64, levels=(256, 256, 256, 8), users: int = 256, repeats: int = 3) -> dict:
    """Seconds to score all N items for ``users`` users and take the top 10: from semantic codes
    (composition of the item table included) and from a free ID table."""
    gen = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, k, (n,), generator=gen) for k in levels], dim=1)  # (N, n_levels)
    code_tables = [torch.randn(k, hidden, generator=gen) for k in levels]
    id_table = torch.randn(n, hidden, generator=gen)
    queries = torch.randn(users, hidden, generator=gen)

    def timed(fn):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return round((time.perf_counter() - start) / repeats, 4)

    def from_codes():
        items = sum(table[codes[:, level]] for level, table in enumerate(code_tables))  # (N, H)
        return (queries @ items.T).topk(10, dim=1)

    def from_ids():
        return (queries @ id_table.T).topk(10, dim=1)

    return {"users": users, "semantic_codes_s": timed(from_codes), "id_table_s": timed(from_ids),
            "item_table_params": {"semantic_codes": int(sum(levels) * hidden), "id_table": int(n * hidden)},
            "codes_memory_mb": round(codes.numel() * 8 / 2 ** 20, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    settings = load_settings()
    rows = []
    for n in args.sizes:
        x = synthetic_features(n)
        before = peak_rss_mb()
        row = {"items": n, **quantization_cost(x, settings), "scoring": scoring_cost(n)}
        row["peak_rss_mb"] = round(peak_rss_mb(), 1)
        row["peak_rss_growth_mb"] = round(row["peak_rss_mb"] - before, 1)
        rows.append(row)
        s = row["scoring"]
        print(f"{n:>9,d} items: RQ-VAE epoch {row['train_epoch_s']:7.2f} s, assign {row['assign_s']:6.2f} s, "
              f"resolve {row['resolve_s']:6.2f} s | score {s['users']} users: codes {s['semantic_codes_s']:.4f} s, "
              f"ID table {s['id_table_s']:.4f} s | item-table params: codes {s['item_table_params']['semantic_codes']:,}, "
              f"IDs {s['item_table_params']['id_table']:,} | peak RSS {row['peak_rss_mb']:.0f} MiB", flush=True)
        del x
    out = PROJECT_ROOT / "results" / "benchmarks" / "scaling.json"
    write_json(out, {"rows": rows, "settings": {k: settings[k] for k in ("n_levels", "codebook_size", "code_dim",
                                                                         "hidden_dims", "batch_size")},
                     "threads": args.threads, "machine": machine_info(), "command": command_line()})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
