"""RecBole-style entry point: ``python run_recbole.py --model=SASRec --dataset=ml-100k [--key=value ...]``."""
import sys

from recbole_qbert.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main())
