"""What semantic IDs mean: the items under a code prefix, and per level the dominant category per code.

    python -m dataset_prep.explain_codes prefix --dataset NAME 12 40 [--limit 20] [--sid PATH] [--json]
    python -m dataset_prep.explain_codes summary --dataset NAME [--levels 1 2] [--top 10] [--json]

Titles and categories come from the dataset's .item file (title / movie_title / text; categories /
class / text / attributes); level l groups items by their first l codes.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List

from recbole_qbert.cli import one_line_errors


def _load(args):
    from recbole_qbert.quantize.explain import load_item_info
    from recbole_qbert.semantic_ids import default_sid_path, read_semantic_ids

    path = Path(args.sid).resolve() if args.sid else default_sid_path(args.dataset)
    sid = read_semantic_ids(path, dataset=args.dataset)
    info = load_item_info(args.dataset, args.data_path, title_field=args.title_field,
                          category_field=args.category_field)
    return sid, info


def _prefix(args) -> None:
    from recbole_qbert.quantize.explain import describe_prefix, parse_prefix

    sid, info = _load(args)
    result = describe_prefix(sid, parse_prefix(args.prefix), info, limit=args.limit)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    cats = ", ".join(f"{c} ({n})" for c, n in result["top_categories"]) or "-"
    print(f"prefix {result['prefix']}: {result['n_items']} items; top categories: {cats}")
    for item in result["items"]:
        print(f"  {' '.join(map(str, item['codes'])):<18} {item['item']:<14} {item['title'][:100]}")
    if result["n_items"] > len(result["items"]):
        print(f"  ... {result['n_items'] - len(result['items'])} more (--limit)")


def _summary(args) -> None:
    from recbole_qbert.quantize.explain import level_summary

    sid, info = _load(args)
    result = level_summary(sid, info, top=args.top, levels=args.levels)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print(f"category field: {info.category_field or '-'}, title field: {info.title_field or '-'}")
    for lv in result:
        print(f"level {lv['level']}: {lv['groups']} prefix groups; category purity {lv['purity']} "
              f"(shuffled: {lv['purity_shuffled']})")
        for row in lv["largest_groups"]:
            print(f"  {' '.join(map(str, row['prefix'])):<14} {row['n_items']:>5} items  "
                  f"{(row['top_category'] or '-')[:50]:<50} {row['share']:.0%}  e.g. {row['examples'][0][:60]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset_prep.explain_codes", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", required=True)
    common.add_argument("--sid", help="semantic-ID file (default build/sid/NAME/NAME.sid)")
    common.add_argument("--data-path", default=None, help="folder of converted datasets (default build/atomic)")
    common.add_argument("--title-field", help="item field holding titles (default: detected)")
    common.add_argument("--category-field", help="item field holding categories (default: detected)")
    common.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    prefix = sub.add_parser("prefix", parents=[common], help="items whose semantic ID starts with PREFIX")
    prefix.add_argument("prefix", nargs="+", help="codes, e.g. 12 40 or 12,40")
    prefix.add_argument("--limit", type=int, default=20)
    summary = sub.add_parser("summary", parents=[common], help="per level, the largest prefix groups and "
                                                               "their most frequent category")
    summary.add_argument("--levels", type=int, nargs="+")
    summary.add_argument("--top", type=int, default=10)
    return parser


@one_line_errors
def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "prefix":
        _prefix(args)
    else:
        _summary(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
