import pytest

from sagefinetune import ConfigError, LabelError, LabelMap


def test_many_to_one_stars_to_sentiment():
    lm = LabelMap({1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"})
    assert lm.names_ == ("negative", "neutral", "positive")
    assert [lm.encode(v) for v in (1, 2, 3, 4, 5)] == [0, 0, 1, 2, 2]
    assert lm.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert lm.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    assert lm.problem_type == "single_label_classification"


def test_values_read_as_floats_or_strings_still_match():
    lm = LabelMap({1: "negative", 5: "positive"})
    assert lm.encode(5.0) == 1
    assert lm.encode("1") == 0


def test_names_accepts_ids_and_the_names_themselves():
    lm = LabelMap.names(["negative", "positive"])
    assert lm.encode(1) == 1 and lm.encode("negative") == 0


def test_multi_label_encodes_multi_hot():
    lm = LabelMap.multi_label(["toxic", "insult", "threat"])
    assert lm.problem_type == "multi_label_classification"
    assert lm.encode(["threat", "toxic"]) == [1.0, 0.0, 1.0]
    assert lm.encode([]) == [0.0, 0.0, 0.0]


def test_uncovered_values_are_listed_with_row_counts():
    lm = LabelMap({1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"})
    with pytest.raises(LabelError) as err:
        lm.check([1, 0, 6, 6, 3, 0, 0], split="train")
    msg = str(err.value)
    assert "0 (3 rows)" in msg and "6 (2 rows)" in msg and "5 rows in all" in msg
    assert "{1..5}" in msg and "Fix:" in msg


def test_bad_maps_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="at least two classes"):
        LabelMap({1: "x", 2: "x"})
    with pytest.raises(ConfigError, match="non-blank strings"):
        LabelMap({1: 3})
    with pytest.raises(ConfigError, match="repeat"):
        LabelMap.names(["a", "a"])
    with pytest.raises(ConfigError, match="list of class names"):
        LabelMap.names("ab")


def test_infer_sorts_values_and_detects_lists():
    assert LabelMap.infer([3, 1, 2, 1]).names_ == ("1", "2", "3")
    assert LabelMap.infer([["a"], ["b", "a"]]).is_multi_label
    with pytest.raises(LabelError, match="at least two"):
        LabelMap.infer([1, 1, 1])


def test_label_map_is_immutable():
    lm = LabelMap({1: "a", 2: "b"})
    with pytest.raises(TypeError):
        lm.mapping[3] = "c"  # type: ignore[index]
