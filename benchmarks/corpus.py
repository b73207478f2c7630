"""Synthetic legacy result corpus, by the rules of legacy-format.md.

    python -m benchmarks.corpus DEST --tasks N [--seed S] [--huge K]

writes DEST/<task_id>/result.json for N ordinary tasks, K huge ones and one
(or --bad-per-kind) invalid file of each kind, deterministically for a seed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

SEOUL = ZoneInfo("Asia/Seoul")
UTC = timezone.utc
SYMBOL_NAMES = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-ADA", "KRW-DOGE", "BTC-ETH", "USDT-BTC"]
START_PRICES = {"KRW-BTC": 4.2e7, "KRW-ETH": 3.3e6, "KRW-XRP": 674.1384, "KRW-SOL": 29636.8, "KRW-ADA": 62.403,
                "KRW-DOGE": 101.7, "BTC-ETH": 0.007708408, "USDT-BTC": 44038.1}
STRATEGIES = {
    "sma_cross": lambda r: {"n1": r.choice([3, 5, 20]), "n2": r.choice([7, 20, 60])},
    "rsi_reversion": lambda r: {"n": 14, "low": r.choice([30, 35]), "high": r.choice([65, 70])},
    "volume_zone_breakout": lambda r: {"lookback": r.choice([10, 40]), "mult": r.choice([1.2, 2.0])},
}
REASONS = ["signal", "stop_loss", "time_exit", "take_profit", "거래량 돌파", "추세 반전", "익절 (목표가 도달)"]
TIMEFRAMES = {"15m": 900, "1h": 3600, "1d": 86400}
BAR_SECONDS = {"1m": 60, **TIMEFRAMES}
TIMESTAMP_FORMS = ["iso_offset", "iso_z", "naive_space", "naive_t", "epoch_ms"]
BAD_KINDS = [
    "truncated", "empty_file", "invalid_utf8", "top_level_array", "missing_strategy",
    "strategy_not_string", "symbols_missing", "symbols_not_list", "signal_without_timestamp",
    "timestamp_unparseable", "price_not_numeric",
]
# orjson writes NaN/inf as null: they go through as unique strings, swapped back after.
_NONFINITE_TEXT = {"NaN": "\x1fNaN\x1f", "Infinity": "\x1fInfinity\x1f", "-Infinity": "\x1f-Infinity\x1f"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def generate_corpus(dest: Path, n_tasks: int, *, seed: int = 0, huge_tasks: int = 0,
                    huge_signals: int = 100_000, bad_per_kind: int = 1) -> dict:
    """Write the corpus; return {task_id: {"valid", "case", "signals", "symbols"}}."""
    dest = Path(dest)
    rng = random.Random(seed)
    expect: dict[str, dict] = {}
    used_ids: set[str] = set()

    def write(task_id: str, data: bytes, expectation: dict):
        folder = dest / task_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_bytes(data)
        expect[task_id] = expectation

    for i in range(n_tasks + huge_tasks):
        task_id = _task_id(rng, i, used_ids)
        n_signals = huge_signals if i >= n_tasks else _ordinary_size(rng)
        doc, case = _document(rng, task_id, n_signals, huge=i >= n_tasks)
        write(task_id, _encode(rng, doc, big=n_signals > 20_000),
              {"valid": True, "case": case, "signals": n_signals, "symbols": _symbol_names(doc)})

    for kind in BAD_KINDS:
        for j in range(bad_per_kind):
            task_id = f"bad_{kind}_{j:03d}"
            used_ids.add(task_id)
            write(task_id, _bad_file(rng, task_id, kind), {"valid": False, "case": kind})
    return expect


# --- task ids ------------------------------------------------------------------------


def _task_id(rng: random.Random, i: int, used: set[str]) -> str:
    roll = rng.random()
    if roll < 0.04:
        task_id = f"백테스트_{i:03d}"
    elif roll < 0.06:
        task_id = f"grid run {i}"
    elif roll < 0.08:
        task_id = f"grid...{i}"
    elif roll < 0.085:
        task_id = rng.choice([f"sweep[{i}],a*b", f"~tilde_{i}", f"{i}% done", f"..{i}.."])
    else:
        day = datetime(2025, 9, 1) + timedelta(days=rng.randrange(60))
        task_id = f"bt_{day:%Y%m%d}_{rng.getrandbits(24):06x}"
    while task_id in used:
        task_id += f"_{rng.getrandbits(16):04x}"
    used.add(task_id)
    return task_id


def _ordinary_size(rng: random.Random) -> int:
    if rng.random() < 0.03:
        return 0  # no trades
    return min(6000, max(1, int(rng.lognormvariate(math.log(500), 0.9))))


# --- valid documents -------------------------------------------------------------------


def _document(rng: random.Random, task_id: str, n_signals: int, huge: bool) -> tuple[dict, str]:
    v1 = not huge and rng.random() < 0.25
    strategy = rng.choice(list(STRATEGIES))
    timeframe = "1m" if huge else rng.choice(list(TIMEFRAMES))
    bar = BAR_SECONDS[timeframe]
    n_symbols = 1 if n_signals == 0 else rng.choice([1, 1, 1, 2, 2, 3])
    names = rng.sample(SYMBOL_NAMES, n_symbols)
    if rng.random() < 0.03:
        start = datetime(1987, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(600))  # Seoul DST years
        forms = ["naive_space", "naive_t"]
    else:
        start = datetime(2010, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(5000))
        forms = TIMESTAMP_FORMS
    form = rng.choice(["naive_space", "naive_t"]) if v1 else rng.choice(forms)
    mixed = rng.random() < 0.1

    def stamp(moment: datetime) -> object:
        return _spell(rng.choice(forms) if mixed else form, moment)

    per_symbol = _split(rng, n_signals, n_symbols)
    doc: dict = {}
    if rng.random() < 0.93:
        doc["task_id"] = task_id if rng.random() < 0.97 else task_id + "_old"
    doc["strategy"] = strategy
    doc["params"] = STRATEGIES[strategy](rng)
    doc["timeframe"] = timeframe
    doc["start_date"] = rng.choice(["2023-04-19", "2023/04/19"])
    doc["end_date"] = "2024-02-07"
    symbol_entries, v1_signals = [], []
    all_metrics = []
    for name, n in zip(names, per_symbol):
        signals = [_signal(rng, s, v1) for s in _trades(rng, name, n, start, bar, stamp)]
        metrics = _metrics(rng, n)
        all_metrics.append(metrics)
        if v1:
            for sig in signals:
                v1_signals.append({"symbol": name, **sig})
            symbol_entries.append(name)
            continue
        entry = {"symbol": name, "signals": signals, "performance": metrics}
        if rng.random() < 0.4:
            entry["performance_curve"] = _curve(rng, start, bar, stamp)
        if rng.random() < 0.05:
            entry["exchange"] = {"name": "upbit", "fees": {"maker": 0.0005, "taker": 0.0005}}
        symbol_entries.append(entry)
    doc["symbols"] = symbol_entries
    if v1:
        v1_signals.sort(key=lambda s: s["_at"])
        doc["signals"] = v1_signals
    for sig in (v1_signals if v1 else [s for e in symbol_entries for s in e["signals"]]):
        del sig["_at"]
    if rng.random() < 0.6:
        doc["performance_curve"] = _curve(rng, start, bar, stamp)
    if rng.random() < 0.9:
        doc["summary"] = all_metrics[0] if n_symbols == 1 else _metrics(rng, n_signals)
    doc["metadata"] = {
        "engine_version": rng.choice(["0.9.2", "1.0.0", "1.1.3"]),
        "execution_time_sec": round(rng.uniform(1, 80), 3),
        "data_source": "upbit",
        "created_at": rng.choice(["2025-10-02 00:17:00", "2025-10-03T00:32:00+09:00"]),
    }
    if rng.random() < 0.2:
        doc["notes"] = rng.choice(["재실행 결과", "rerun after data fix", ""])
    if rng.random() < 0.1:
        doc["tags"] = ["grid", {"batch": rng.randrange(100)}, None, []]
    case = "huge" if huge else "no_trades" if n_signals == 0 else "v1" if v1 else (
        "v2_mixed_ts" if mixed else f"v2_{form}")
    return doc, case


def _spell(form: str, moment: datetime) -> object:
    if form == "epoch_ms":
        return int(moment.timestamp() * 1000)
    if form == "iso_z":
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    local = moment.astimezone(SEOUL)
    if form == "iso_offset":
        return local.isoformat()
    text = local.replace(tzinfo=None).isoformat()
    # Naive wall times are only unambiguous outside DST fall-back hours: spell
    # those with an offset so the file means what the generator meant.
    if local.fold or local.replace(fold=1).utcoffset() != local.utcoffset():
        return local.isoformat()
    return text.replace("T", " ") if form == "naive_space" else text


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    cuts = sorted(rng.randrange(total + 1) for _ in range(parts - 1))
    return [b - a for a, b in zip([0] + cuts, cuts + [total])]


def _trades(rng, name, n, start, bar, stamp):
    price = START_PRICES[name] * math.exp(rng.gauss(0, 0.3))
    moment = start + timedelta(seconds=bar * rng.randrange(1, 50))
    for _ in range(n):
        price *= math.exp(rng.gauss(0, 0.01))  # random walk, full float64 precision
        holding = rng.randrange(1, 80)
        exit_moment = moment + timedelta(seconds=bar * holding)
        fill_moment = exit_moment  # a few fills at odd microseconds
        if rng.random() < 0.02:
            fill_moment += timedelta(microseconds=rng.randrange(1, 10**6))
        exit_price = price * math.exp(rng.gauss(0, 0.02))
        yield price, exit_price, moment, fill_moment, holding, stamp
        moment = exit_moment + timedelta(seconds=bar * rng.randrange(1, 20))


def _signal(rng: random.Random, trade, v1: bool) -> dict:
    price, exit_price, moment, exit_moment, holding, stamp = trade
    quantity = 1_000_000 / price
    gross = (exit_price - price) * quantity
    commission = price * quantity * 0.0005 * (1 + rng.random())
    sig = {"_at": moment, "timestamp": stamp(moment)}
    side = rng.choice(["buy", "sell"])
    sig["type"] = side.upper() if v1 else side
    sig["price"] = repr(price) if v1 and rng.random() < 0.15 else price
    sig["quantity"] = quantity
    sig["exit_timestamp"] = None if rng.random() < 0.03 else stamp(exit_moment)
    sig["exit_price"] = exit_price
    sig["return_pct"] = (exit_price / price - 1) * 100
    sig["pnl"] = gross - commission
    sig["commission"] = commission
    sig["holding_bars"] = holding
    sig["reason"] = rng.choice(REASONS)
    sig["indicators"] = {"SMA_C_20": price * (1 + rng.gauss(0, 0.01)), "λ": rng.random() * 10}
    roll = rng.random()
    if roll < 0.3:
        sig["tag"] = rng.choice(["A", "B", None])
    if roll < 0.1:
        sig["sl"] = price * 0.97
    if roll < 0.02:
        sig["fill"] = {"venue": "upbit", "slices": [1, 2.5, None], "partial": True}
    if roll < 0.01:
        sig["pnl"] = None
    return sig


def _curve(rng: random.Random, start: datetime, bar: int, stamp) -> list[dict]:
    points, equity, peak = [], 1_000_000.0, 1_000_000.0
    for i in range(rng.randrange(200, 3000)):
        equity *= math.exp(rng.gauss(0.0001, 0.01))
        peak = max(peak, equity)
        point = {"timestamp": stamp(start + timedelta(seconds=bar * i)), "equity": equity,
                 "drawdown": (equity / peak - 1) * 100}
        if i % 97 == 5:
            point["cash"] = equity * rng.random()
        points.append(point)
    return points


def _metrics(rng: random.Random, n_trades: int) -> dict:
    no_trades = n_trades == 0
    return {
        "total_return": 0.0 if no_trades else rng.gauss(5, 40),
        "win_rate": float("nan") if no_trades else rng.uniform(0, 100),
        "max_drawdown": -rng.uniform(0, 60),
        "sharpe_ratio": float("nan") if no_trades or rng.random() < 0.1 else rng.gauss(0.5, 1.5),
        "profit_factor": rng.choice([float("nan"), float("inf")]) if no_trades or rng.random() < 0.1
        else rng.uniform(0.2, 5),
        "num_trades": n_trades,
    }


def _symbol_names(doc: dict) -> list[str]:
    return [s if isinstance(s, str) else s["symbol"] for s in doc["symbols"]]


# --- encoding --------------------------------------------------------------------------


def _encode(rng: random.Random, doc: object, big: bool = False) -> bytes:
    """Python-json style (", " separators), compact or indented; raw UTF-8 or \\u escapes."""
    style = "compact" if big else rng.choice(["python", "python", "compact", "indent"])
    escape = rng.random() < 0.4
    if style == "python" and not big:
        return json.dumps(doc, ensure_ascii=escape, indent=rng.choice([None, None, 2])).encode()
    data = orjson.dumps(_quote_nonfinite(doc), option=orjson.OPT_INDENT_2 if style == "indent" else 0)
    for literal, text in _NONFINITE_TEXT.items():
        data = data.replace(b'"' + orjson.dumps(text)[1:-1] + b'"', literal.encode())
    if escape:
        data = _NON_ASCII.sub(_u_escape, data.decode()).encode()
    return data


def _quote_nonfinite(value: object) -> object:
    if type(value) is float and value - value != 0.0:
        return _NONFINITE_TEXT["NaN" if value != value else "Infinity" if value > 0 else "-Infinity"]
    if type(value) is dict:
        return {k: _quote_nonfinite(v) for k, v in value.items()}
    if type(value) is list:
        return [_quote_nonfinite(v) for v in value]
    return value


def _u_escape(m: re.Match) -> str:
    data = m.group().encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(data[i:i + 2], 'big'):04x}" for i in range(0, len(data), 2))


# --- invalid files ---------------------------------------------------------------------


def _bad_file(rng: random.Random, task_id: str, kind: str) -> bytes:
    doc, _ = _document(rng, task_id, rng.randrange(5, 60), huge=False)
    signals = doc["signals"] if "signals" in doc else [sig for e in doc["symbols"] for sig in e["signals"]]
    victim = signals[rng.randrange(len(signals))]
    if kind == "empty_file":
        return b""
    if kind == "truncated":
        data = _encode(rng, doc)
        return data[: int(len(data) * rng.uniform(0.3, 0.95))]
    if kind == "invalid_utf8":
        data = _encode(rng, doc)
        at = data.index(b'"strategy"') + 3
        return data[:at] + b"\xff\xfe" + data[at:]
    if kind == "top_level_array":
        return b"[" + _encode(rng, doc) + b"]"
    if kind == "missing_strategy":
        del doc["strategy"]
    elif kind == "strategy_not_string":
        doc["strategy"] = {"name": doc["strategy"]}
    elif kind == "symbols_missing":
        del doc["symbols"]
    elif kind == "symbols_not_list":
        doc["symbols"] = "KRW-BTC"
    elif kind == "signal_without_timestamp":
        del victim["timestamp"]
    elif kind == "timestamp_unparseable":
        victim["timestamp"] = rng.choice(["2024-13-45 25:00:00", "yesterday", "03/01/2024 09:00"])
    elif kind == "price_not_numeric":
        victim["price"] = rng.choice(["n/a", "", "없음"])
    else:
        raise ValueError(kind)
    return _encode(rng, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--huge", type=int, default=0, help="tasks of --huge-signals signals")
    parser.add_argument("--huge-signals", type=int, default=100_000)
    parser.add_argument("--bad-per-kind", type=int, default=1)
    parser.add_argument("--expect-out", type=Path, help="also write the expectations as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    expect = generate_corpus(args.dest, args.tasks, seed=args.seed, huge_tasks=args.huge,
                             huge_signals=args.huge_signals, bad_per_kind=args.bad_per_kind)
    if args.expect_out:
        args.expect_out.write_text(json.dumps(expect, ensure_ascii=False, indent=1))
    valid = [e for e in expect.values() if e["valid"]]
    size = sum(p.stat().st_size for p in args.dest.glob("*/result.json"))
    print(f"wrote {len(expect)} tasks ({len(valid)} valid, {len(expect) - len(valid)} invalid, "
          f"{sum(e['signals'] for e in valid)} signals, {size / 1e6:.1f} MB) to {args.dest} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
