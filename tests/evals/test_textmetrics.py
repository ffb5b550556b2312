from __future__ import annotations

import math
from pathlib import Path

import pytest

from imts.core.answers import extract_number, numeric_match
from imts.evals import textmetrics as tm
from imts.inference.generate import load


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [
        ("twenty-five", "25"),
        ("three hundred and twenty-five", "325"),
        ("三百二十五", "325"),
        ("两万零三", "20003"),
        ("十二", "12"),
        ("二点五", "2.5"),
        ("三分之一", "1/3"),
        ("two thirds", "2/3"),
        ("百分之二十五", "25"),
        ("25%", "0.25"),
        ("$16", "16"),
        ("16 dollars", "16.0"),
        ("325 元", "325"),
        ("17个", "17"),
    ],
)
def test_numeric_match_words_units_fractions(predicted: str, reference: str) -> None:
    assert numeric_match(predicted, reference)


def test_numeric_match_rejects_wrong_values() -> None:
    assert not numeric_match("twenty-four", "25")
    assert not numeric_match("三百二十六", "325")
    assert not numeric_match("25%", "2.5")


def test_extract_number_falls_back_to_words() -> None:
    assert extract_number("The answer is twenty-five apples") == "25"
    assert extract_number("答案是三百二十五") == "325"
    assert extract_number("I cannot tell") is None


def test_precision_recall_f1() -> None:
    got = tm.precision_recall_f1(["a", "a", "b", "b"], ["a", "b", "b", "b"], positive="b")
    assert got["precision"] == 1.0 and got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(0.8)
    macro = tm.precision_recall_f1(["a", "b"], ["a", "b"])
    assert macro == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_bleu_english_and_chinese() -> None:
    assert tm.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert tm.bleu(["a dog ran"], ["the cat sat on the mat"]) < 10
    # Without the zh tokenizer an unsegmented Chinese sentence is one token and any change scores 0.
    assert tm.bleu(["小明有三个苹果和两个梨"], ["小明有三个苹果和一个梨"]) > 30


def test_rouge_l_segments_chinese() -> None:
    assert tm.tokens("小明有三个苹果") == ["小明", "有", "三个", "苹果"]
    assert tm.rouge_l("小明有三个苹果", "小明有三个苹果") == pytest.approx(1.0)
    assert 0 < tm.rouge_l("小明有五个苹果", "小明有三个苹果") < 1
    assert tm.rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_distinct_n() -> None:
    assert tm.distinct_n(["a b c", "d e f"], 2) == 1.0
    assert tm.distinct_n(["a b a b a b"], 2) == pytest.approx(2 / 5)


def test_perplexity_of_tiny_model(tiny_model: Path) -> None:
    tokenizer, model = load(tiny_model)
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]]
    ppl = tm.perplexity(tokenizer, model, prompts, ["2 + 3 = 5. The answer is 5."])
    assert math.isfinite(ppl) and 1.0 < ppl < 2 * tokenizer.vocab_size * 10
