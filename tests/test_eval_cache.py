"""Controls shared by a results folder's runs (repro/eval/cache.py): computed once per key, never a stale hit."""

from __future__ import annotations

from pathlib import Path

from repro.eval.cache import CONTROLS_DIR, cached


def test_a_control_is_computed_once_per_key_and_again_when_the_key_moves(tmp_path: Path) -> None:
    calls = []

    def compute(value: float):
        return lambda: calls.append(value) or {"sampled_accuracy": value}

    key = {"model": "abc", "seed": 1234, "protocol": ["dapo", "answer_line", 8]}
    assert cached(tmp_path, key, compute(0.25)) == {"sampled_accuracy": 0.25}
    assert cached(tmp_path, dict(key), compute(0.5)) == {"sampled_accuracy": 0.25}  # reused: not recomputed
    assert calls == [0.25]
    assert cached(tmp_path, {**key, "seed": 1235}, compute(0.5)) == {"sampled_accuracy": 0.5}  # another seed
    assert calls == [0.25, 0.5] and len(list((tmp_path / CONTROLS_DIR).glob("*.json"))) == 2
    for file in (tmp_path / CONTROLS_DIR).glob("*.json"):
        file.write_text("{not json")  # a torn or corrupt file is recomputed, not trusted
    assert cached(tmp_path, key, compute(0.75)) == {"sampled_accuracy": 0.75}
