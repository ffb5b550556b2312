from __future__ import annotations

import pytest

from imts.core.answers import extract_number, numeric_match, reference_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("23 - 7 = 16. The answer is 16.", "16"),
        ("The answer is 1,234.", "1234"),
        ("82 + 88 = 170，170 - 53 = 117，还剩117支。答案是117。", "117"),
        ("答案：42", "42"),
        ("#### 7", "7"),
        ("I think it is 12 or maybe 15", "15"),
        ("answer: 2.5 dollars", "2.5"),
        ("The answer is 3/4", "3/4"),
        ("no digits here", None),
        ("The answer is 5. Then 6 + 1 = 7 more words.", "5"),
    ],
)
def test_extract_number(text: str, expected: str | None) -> None:
    assert extract_number(text) == expected


def test_numeric_match_normalises() -> None:
    assert numeric_match("16", "16") and numeric_match("16.0", "16") and numeric_match("32/2", "16")
    assert numeric_match("1234", "1,234")
    assert not numeric_match("15", "16") and not numeric_match(None, "16")
    assert numeric_match("yes", "yes") and not numeric_match("no", "yes")


def test_reference_answer_prefers_field() -> None:
    assert reference_answer("7", "whatever 9") == "7"
    assert reference_answer(None, "3 + 4 = 7. The answer is 7.") == "7"
    assert reference_answer("", "free text") == "free text"


def test_generation_budget_fits_the_longest_reference(tiny_model) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    from imts.evals.service import generation_budget

    tok = AutoTokenizer.from_pretrained(tiny_model)
    refs = ["The answer is 5.", "12 + 30 = 42, and 42 - 7 = 35 left over after lunch. The answer is 35."]
    longest = max(len(tok(r, add_special_tokens=False)["input_ids"]) for r in refs)
    assert generation_budget(tok, refs) == int(longest * 1.25) + 8
    assert generation_budget(tok, ["x"]) == 16
    assert generation_budget(tok, ["word " * 2000]) == 512
