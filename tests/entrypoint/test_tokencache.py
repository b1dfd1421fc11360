"""Tokenise once: the cache key follows the content, rank 0 writes, the other processes wait and load."""

from __future__ import annotations

import os
import threading
import time

import pytest

from sagefinetune.entrypoint import contract, tokencache

HP = contract.parse_hyperparameters({"labels": '["neg", "pos"]'})


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from sagefinetune.entrypoint.training import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(contract.DEFAULT_MODEL, None))


@pytest.fixture
def channels(tmp_path):
    for name, rows in (("train", '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n'),
                       ("test", '{"text": "fine", "label": 1}\n')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.jsonl").write_text(rows)
    return {"train": str(tmp_path / "train"), "test": str(tmp_path / "test")}


def test_the_key_follows_data_tokenizer_and_settings_only(tokenizer, channels, tmp_path):
    key = tokencache.cache_key(channels, tokenizer, HP, ["neg", "pos"], 128)
    assert key == tokencache.cache_key(dict(channels), tokenizer, dict(HP), ["neg", "pos"], 128)
    # what does not change the token ids does not change the key: training settings, folder locations
    assert key == tokencache.cache_key(channels, tokenizer, {**HP, "learning_rate": 1e-3, "epochs": 9},
                                       ["neg", "pos"], 128)
    moved = tmp_path / "moved"
    moved.mkdir()
    for name, folder in channels.items():
        os.rename(folder, moved / name)
    moved_channels = {name: str(moved / name) for name in channels}
    assert key == tokencache.cache_key(moved_channels, tokenizer, HP, ["neg", "pos"], 128)
    # what does change them changes the key
    others = [
        tokencache.cache_key(moved_channels, tokenizer, HP, ["neg", "pos"], 64),
        tokencache.cache_key(moved_channels, tokenizer, HP, ["pos", "neg"], 128),
        tokencache.cache_key(moved_channels, tokenizer, {**HP, "pad_to_max_length": True}, ["neg", "pos"], 128),
        tokencache.cache_key(moved_channels, tokenizer, {**HP, "text_column": "review"}, ["neg", "pos"], 128),
    ]
    (moved / "train" / "data.jsonl").write_text('{"text": "good!", "label": 1}\n{"text": "bad", "label": 0}\n')
    others.append(tokencache.cache_key(moved_channels, tokenizer, HP, ["neg", "pos"], 128))
    tokenizer.add_tokens(["sagefinetuneword"])
    others.append(tokencache.cache_key(moved_channels, tokenizer, HP, ["neg", "pos"], 128))
    assert len({key, *others}) == len(others) + 1


def _data(marker: str):
    import datasets

    return datasets.DatasetDict({"train": datasets.Dataset.from_dict({"input_ids": [[1, 2, 3]], "m": [marker]})})


def test_rank_zero_tokenises_and_stores_then_every_run_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    calls, said = [], []
    compute = lambda: calls.append(1) or _data("first")  # noqa: E731
    first = tokencache.tokenized(compute, key="k1", cache_root=str(tmp_path), log=said.append)
    second = tokencache.tokenized(compute, key="k1", cache_root=str(tmp_path), log=said.append)
    assert calls == [1] and first["train"]["m"] == second["train"]["m"] == ["first"]
    assert said[0].startswith("tokenised in") and said[1].startswith(f"tokenised data reused from {tmp_path / 'k1'}")
    assert sorted(os.listdir(tmp_path)) == ["k1"]  # no staging folder left behind
    tokencache.tokenized(compute, key="k2", cache_root=str(tmp_path), log=said.append, prune=True)
    assert sorted(os.listdir(tmp_path)) == ["k2"]  # a checkpoint dir keeps one copy


def test_other_ranks_wait_for_rank_zero_and_load_its_result(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_PORT", "29511")

    def rank_zero_later():
        time.sleep(1.0)
        data = _data("from rank 0")
        tokencache._store(data, str(tmp_path / "k"), "k", str(tmp_path), False, 0.1)

    writer = threading.Thread(target=rank_zero_later)
    writer.start()
    got = tokencache.tokenized(lambda: pytest.fail("rank 1 must not tokenise"), key="k", cache_root=str(tmp_path),
                               log=print)
    writer.join()
    assert got["train"]["m"] == ["from rank 0"]
    assert "rank 1: loaded the tokenised data of local rank 0" in capsys.readouterr().out


def test_when_rank_zero_cannot_write_every_rank_tokenises(tmp_path, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should go")
    monkeypatch.setenv("MASTER_PORT", "29512")
    monkeypatch.setenv("LOCAL_RANK", "0")
    said = []
    data = tokencache.tokenized(lambda: _data("mine"), key="k", cache_root=str(blocked / "tokenized"), log=said.append)
    assert data["train"]["m"] == ["mine"] and "could not be written" in said[0]
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(tokencache, "_touch", lambda path: None)  # the marker cannot be written there either
    got = tokencache.tokenized(lambda: _data("rank 1's own"), key="k", cache_root=str(blocked / "tokenized"),
                               log=said.append, timeout=1.0)
    assert got["train"]["m"] == ["rank 1's own"]


def test_the_cache_lives_in_sft_cache_dir_else_in_the_checkpoint_dir(monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", "/some/cache")
    assert tokencache.root("/opt/ml/checkpoints") == "/some/cache/tokenized"
    monkeypatch.delenv("SFT_CACHE_DIR")
    assert tokencache.root("/opt/ml/checkpoints") == "/opt/ml/checkpoints/tokenized"
