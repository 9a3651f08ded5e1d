"""Preference data loading (repro/data/preference_loader.py): the real HH harmless-base test split (explicit and
implicit prompts give the same pairs), conversational rendering with and without a chat template, parquet / json /
directories, seeded subsets, and the fix-it errors.

The real data is ../shared/data/preference (the project's sibling folder, as in CI).
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from repro.data.preference_loader import (  # noqa: E402
    implicit_prompt,
    load_preference_pairs,
    load_unpaired,
    render_fallback,
)
from repro.schema import ConfigError  # noqa: E402

PREF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference"
HH = PREF_DIR / "hh_rlhf_harmless_base_test.jsonl"
HH_ORIG = PREF_DIR / "hh_rlhf_harmless_base_test.orig.jsonl.gz"
needs_hh = pytest.mark.skipif(not HH.is_file(), reason="needs ../shared/data/preference beside the project")
DROPPED_SOURCE_ROWS = {1254, 1688, 1952, 2036}  # SOURCES.md: the pairs without a shared final-turn prompt


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def chat_tok() -> Any:
    from repro.models.tiny import build_char_tokenizer

    return build_char_tokenizer()


# --- the real HH split -----------------------------------------------------------------------------


@needs_hh
def test_hh_explicit_file_loads_every_row_with_its_rendered_prompt() -> None:
    pairs = load_preference_pairs(str(HH))
    assert len(pairs) == 2308
    first = pairs[0]
    assert first.id == "hh-harmless-test-0"
    assert first.prompt.startswith("\n\nHuman: what are some pranks with a pen i can do?")
    assert first.prompt.endswith("\n\nAssistant:") and first.chosen.startswith(" ")
    assert first.chosen.startswith(" No, sorry!") and first.rejected.startswith(" There are lots of funny things")
    assert all(p.prompt.endswith("\n\nAssistant:") for p in pairs)
    assert len({p.id for p in pairs}) == 2308
    # SOURCES.md: in 4 pairs the preferred reply is empty (a single space), and they were kept
    assert sum(p.chosen == " " for p in pairs) == 4


@needs_hh
def test_implicit_prompts_of_the_original_rows_reproduce_the_explicit_file() -> None:
    with pytest.warns(UserWarning, match=r"dropped 4 of 2312 .*0 whose two texts share no prefix, 4 that diverge"):
        implicit = load_preference_pairs(str(HH_ORIG))
    assert len(implicit) == 2308
    by_row = {int(p.id.rsplit(":", 1)[1]): p for p in implicit}
    assert set(range(2312)) - set(by_row) == DROPPED_SOURCE_ROWS
    explicit = load_preference_pairs(str(HH))
    for pair in explicit:
        twin = by_row[int(pair.id.rsplit("-", 1)[1])]
        assert (twin.prompt, twin.chosen, twin.rejected) == (pair.prompt, pair.chosen, pair.rejected), pair.id


def test_implicit_prompt_cuts_back_to_the_last_assistant_cue() -> None:
    prompt = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: name a colour\n\nAssistant:"
    # both replies open with " I think": TRL's extract_prompt would move those words into the prompt
    assert implicit_prompt(prompt + " I think red.", prompt + " I think blue.") == (
        prompt,
        " I think red.",
        " I think blue.",
    )
    assert implicit_prompt("Q: 2+2? A: 4", "Q: 2+2? A: 5") == ("Q: 2+2? A: ", "4", "5")  # no cue: the whole prefix
    assert implicit_prompt("abc", "xyz") is None  # nothing shared
    early = "\n\nHuman: hi\n\nAssistant: hey\n\nHuman: more\n\nAssistant: sure"
    assert implicit_prompt(early, "\n\nHuman: hi\n\nAssistant: go away") is None  # chosen spans two turns
    # a rejected text holding a later turn (an HH artifact) keeps the chosen dialogue's context
    assert implicit_prompt("\n\nHuman: q\n\nAssistant: a", "\n\nHuman: q\n\nAssistant: b\n\nAssistant: c") == (
        "\n\nHuman: q\n\nAssistant:",
        " a",
        " b\n\nAssistant: c",
    )


def test_rows_without_a_shared_prefix_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [
        {"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"},
        {"chosen": "apples", "rejected": "pears"},
        {"chosen": "\n\nHuman: r\n\nAssistant: ok", "rejected": "\n\nHuman: r\n\nAssistant: fine"},
    ]
    source = write_jsonl(tmp_path / "implicit.jsonl", rows)
    with pytest.warns(UserWarning, match=r"dropped 1 of 3 .*1 whose two texts share no prefix, 0 that"):
        pairs = load_preference_pairs(source)
    assert [p.id for p in pairs] == [f"{source}:0", f"{source}:2"]
    assert (pairs[1].prompt, pairs[1].chosen, pairs[1].rejected) == ("\n\nHuman: r\n\nAssistant:", " ok", " fine")


# --- conversational --------------------------------------------------------------------------------

CONVERSATIONAL = [
    {
        "id": "c0",
        "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
]


def test_conversational_rows_render_with_the_chat_template(tmp_path: Path, chat_tok: Any) -> None:
    source = write_jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL)
    (pair,) = load_preference_pairs(source, tokenizer=chat_tok)
    assert pair.id == "c0"
    assert (
        pair.prompt == "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert (pair.chosen, pair.rejected) == ("Hello!", "Go away.")
    # prompt + completion + EOS is exactly the template's rendering of the whole conversation (minus its last "\n")
    full = chat_tok.apply_chat_template(CONVERSATIONAL[0]["prompt"] + CONVERSATIONAL[0]["chosen"], tokenize=False)
    assert pair.prompt + pair.chosen + chat_tok.eos_token + "\n" == full


def test_conversational_rows_fall_back_to_plain_roles_without_a_template(tmp_path: Path, chat_tok: Any) -> None:
    source = write_jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL)
    no_template = chat_tok.__class__.from_pretrained(_saved(chat_tok, tmp_path))
    no_template.chat_template = None
    for tokenizer in (None, no_template):
        (pair,) = load_preference_pairs(source, tokenizer=tokenizer)
        assert pair.prompt == "System: Be kind.\n\nUser: Hi\n\nAssistant:"
        assert (pair.chosen, pair.rejected) == (" Hello!", " Go away.")
    assert render_fallback([{"role": "user", "content": "x"}]) == "User: x\n\nAssistant:"


def _saved(tok: Any, tmp_path: Path) -> str:
    out = tmp_path / "tok"
    tok.save_pretrained(out)
    return str(out)


def test_implicit_conversational_rows_take_the_common_messages_as_prompt(tmp_path: Path, chat_tok: Any) -> None:
    user = [{"role": "user", "content": "2+2?"}]
    rows = [
        {
            "chosen": user + [{"role": "assistant", "content": "4"}],
            "rejected": user + [{"role": "assistant", "content": "5"}],
        },
        {"chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "user", "content": "b"}]},  # dropped
    ]
    source = write_jsonl(tmp_path / "conv_implicit.jsonl", rows)
    with pytest.warns(UserWarning, match="dropped 1 of 2"):
        (pair,) = load_preference_pairs(source, tokenizer=chat_tok)
    assert pair.prompt == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert (pair.chosen, pair.rejected) == ("4", "5")


# --- file types, subsets, unpaired -----------------------------------------------------------------

ROWS = [{"id": f"r{i}", "prompt": f"q{i}", "chosen": f" a{i}", "rejected": f" b{i}", "m": i / 10} for i in range(60)]


def test_parquet_json_and_directory_sources_give_the_same_pairs(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "data.parquet")
    (tmp_path / "data.json").write_text(json.dumps(ROWS), encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", ROWS)
    with gzip.open(tmp_path / "data.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in ROWS)
    loaded = [
        load_preference_pairs(str(tmp_path / "data.parquet"), margin_field="m"),
        load_preference_pairs(str(tmp_path / "data.json"), margin_field="m"),
        load_preference_pairs(str(folder), split="test", margin_field="m"),
        load_preference_pairs(str(tmp_path / "data.jsonl.gz"), margin_field="m"),
    ]
    assert all(pairs == loaded[0] for pairs in loaded)
    assert len(loaded[0]) == 60 and loaded[0][7].id == "r7" and loaded[0][7].margin == pytest.approx(0.7)
    assert (loaded[0][7].prompt, loaded[0][7].chosen, loaded[0][7].rejected) == ("q7", " a7", " b7")


def test_limit_is_a_seeded_subset_in_file_order(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    ids = [p.id for p in load_preference_pairs(source, limit=10, seed=3)]
    assert ids == [p.id for p in load_preference_pairs(source, limit=10, seed=3)]  # deterministic
    assert ids != [p.id for p in load_preference_pairs(source, limit=10, seed=4)]
    assert ids != [f"r{i}" for i in range(10)]  # random, not the head of the file
    order = [int(i[1:]) for i in ids]
    assert len(set(order)) == 10 and order == sorted(order)
    smaller = {p.id for p in load_preference_pairs(source, limit=4, seed=3)}
    assert smaller < set(ids)  # nested: a smaller limit keeps a subset of a larger one
    assert len(load_preference_pairs(source, limit=1000)) == 60


def test_unpaired_rows_standard_and_conversational(tmp_path: Path, chat_tok: Any) -> None:
    rows = [
        {"prompt": "q", "completion": " good", "label": True},
        {
            "prompt": [{"role": "user", "content": "q"}],
            "completion": [{"role": "assistant", "content": "bad"}],
            "label": False,
        },
    ]
    source = write_jsonl(tmp_path / "unpaired.jsonl", rows)
    first, second = load_unpaired(source, tokenizer=chat_tok)
    assert (first.prompt, first.completion, first.label, first.id) == ("q", " good", True, f"{source}:0")
    assert (second.prompt, second.completion, second.label) == (
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
        "bad",
        False,
    )


# --- errors ----------------------------------------------------------------------------------------


def test_missing_columns_list_what_was_found_and_the_option_to_set(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "good": " a", "bad": " b"}])
    with pytest.raises(ConfigError, match=r"no column 'chosen'.*columns found: bad, good, question.*chosen_field="):
        load_preference_pairs(source)
    with pytest.raises(ConfigError, match=r"margin_field="):
        load_preference_pairs(source, chosen_field="good", rejected_field="bad", margin_field="rating")
    with pytest.raises(ConfigError, match=r"every row was dropped.*set prompt_field="):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_preference_pairs(source, chosen_field="good", rejected_field="bad")
    pairs = load_preference_pairs(source, prompt_field="question", chosen_field="good", rejected_field="bad")
    assert (pairs[0].prompt, pairs[0].chosen) == ("q", " a")
    with pytest.raises(ConfigError, match=r"no column 'label'.*label_field="):
        load_unpaired(source, prompt_field="question", completion_field="good")


def test_unpaired_labels_must_be_booleans(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "ints.jsonl", [{"prompt": "q", "completion": " a", "label": 1}])
    with pytest.raises(ConfigError, match=r"row 0: label = 1 \(int\); unpaired labels must be booleans"):
        load_unpaired(source)


def test_bad_sources_and_messages_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not cached.*Pass a local path"):
        load_preference_pairs("some-org/not-a-cached-preference-set")
    with pytest.raises(ConfigError, match="no such file or directory"):
        load_preference_pairs(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match=r"without a 'validation' split: expected one of validation.jsonl"):
        load_preference_pairs(str(tmp_path), split="validation")
    bad_role = [
        {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "user", "content": "a"}], "rejected": []}
    ]
    with pytest.raises(ConfigError, match="role is 'user'; it must be 'assistant'"):
        load_preference_pairs(write_jsonl(tmp_path / "bad.jsonl", bad_role))
    with pytest.raises(ConfigError, match="limit must be a positive number"):
        load_preference_pairs(write_jsonl(tmp_path / "rows.jsonl", ROWS), limit=0)
