"""Verdicts across warm starts (`--config bases=<n>`, issue 26): a claim whose verdict changes with the base the
runs started from is marked base-sensitive, so a reader knows the verdict is the warm start's as much as the
mechanism's. Nothing is retuned: the marker is the finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.io import read_json

BASE_SENSITIVE = "base-sensitive"


def verdicts_by_base(result: dict[str, Any], replicas: list[dict[str, Any]]) -> dict[str, list[str | None]]:
    """{claim id: [verdict on warm start 0, on 1, ...]} (None: the claim is missing from that comparison)."""
    table: dict[str, list[str | None]] = {}
    for k, compared in enumerate([result, *replicas]):
        found = {c["id"]: c.get("verdict") for c in compared.get("claims") or []}
        for claim in result.get("claims") or []:
            table.setdefault(claim["id"], [None] * (len(replicas) + 1))[k] = found.get(claim["id"])
    return table


def mark_base_sensitive(result: dict[str, Any], replicas: list[dict[str, Any]]) -> list[str]:
    """Set `base_sensitive` and `verdicts_by_base` on each claim of `result`; returns the ids whose verdict differs
    between warm starts."""
    table = verdicts_by_base(result, replicas)
    sensitive = []
    for claim in result.get("claims") or []:
        verdicts = table[claim["id"]]
        claim["verdicts_by_base"] = verdicts
        claim["base_sensitive"] = len(set(verdicts)) > 1
        if claim["base_sensitive"]:
            sensitive.append(claim["id"])
    return sensitive


def load_replicas(paths: list[Path], paper: str) -> list[dict[str, Any]]:
    """The other warm starts' compare.json files, each checked to be this paper's."""
    replicas = [read_json(p) for p in paths]
    for path, compared in zip(paths, replicas, strict=True):
        if compared.get("paper") != paper or not isinstance(compared.get("claims"), list):
            raise ValueError(f"{path} is not a compare.json of {paper!r}")
    return replicas
