"""Throughput of the pure core on one generated 100k-signal task.

    python -m result_assets_tests.bench_legacy [--signals N]
"""

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import generate_corpus
from result_assets.legacy import compare_documents, normalize, parse_document, reconstruct, validate_result


def best_of(n, fn):
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        expect = generate_corpus(Path(tmp), 0, seed=1, huge_tasks=1, huge_signals=args.signals, bad_per_kind=0)
        (task_id,) = expect
        raw = (Path(tmp) / task_id / "result.json").read_bytes()
    mb = len(raw) / 1e6
    t_parse, doc = best_of(args.repeat, lambda: parse_document(raw))
    t_norm, _ = best_of(args.repeat, lambda: normalize(task_id, doc))
    t_total, result = best_of(args.repeat, lambda: validate_result(task_id, raw))
    t_rec, restored = best_of(args.repeat, lambda: reconstruct(result.skeleton, result.signals, result.curves))
    t_cmp, diffs = best_of(1, lambda: compare_documents(doc, restored))
    print(f"{task_id}: {mb:.1f} MB, {result.n_signals} signals, {result.n_curve_points} curve points")
    print(f"parse {t_parse:.3f}s  normalize {t_norm:.3f}s  parse+normalize {t_total:.3f}s = {mb / t_total:.0f} MB/s")
    print(f"reconstruct {t_rec:.3f}s  compare {t_cmp:.3f}s  differences {len(diffs)}")


if __name__ == "__main__":
    main()
