"""Evaluation tasks: small objects that turn a dataset's rows into examples and score the model's answers.

A task reads the rows of one dataset format (nanochat's ``Task``): ``num_examples()``, ``get_example(i)``
and ``score(example, prediction)``. The evaluation runner asks the model for a prediction per example:

    sft             generate; the number in the answer against the ``answer`` field (or the reference's
                    last number), with number words, fractions, percentages and units (``metrics``)
    classification  generate; the prompt lists the labels, the predicted label (normalised) against the gold
                    label; precision, recall and F1 per label in the summary
    preference      choose; the model prefers the response with the higher mean log-probability per token
                    given the prompt (local models give log-probabilities, so no generation or similarity
                    stand-in is needed); correct when that is ``chosen``
    text            generate; free text scored by ROUGE-L against the reference, correct at or above a
                    threshold. Reads plain-text rows (the first half of the words is the prompt, the rest the
                    reference continuation) and SFT rows whose answers are no numbers (``task: text``).

``TASKS`` holds them by name; by default a dataset's format names its task.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from imts.core.answers import extract_number, numeric_match, reference_answer
from imts.core.errors import InputError
from imts.evals import textmetrics as tm

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    """One item to put to the model."""

    id: str
    category: str
    lang: str
    prompt: Messages  # the chat messages before the answer
    reference_text: str  # the full reference answer (ROUGE, BLEU and perplexity read it)
    reference: str  # the expected answer a prediction is scored against (e.g. "16", a label, "chosen")
    extra: dict[str, Any] = field(default_factory=dict)  # per task: ``choices`` for preference pairs


@dataclass(frozen=True)
class ItemScore:
    correct: bool
    extracted: str | None  # the answer read from the prediction (a number, a label, "chosen")
    score: float  # 0-1; 1.0/0.0 where an item is only right or wrong


class Task(Protocol):
    """A dataset's rows as examples, and how a prediction for one is scored."""

    name: str
    # "generate": the model writes an answer; "choose": the model picks one of ``extra["choices"]``.
    kind: Literal["generate", "choose"]

    def num_examples(self) -> int: ...

    def get_example(self, i: int) -> Example: ...

    def score(self, example: Example, prediction: str) -> ItemScore: ...

    def summarise(self, examples: Sequence[Example], scores: Sequence[ItemScore]) -> dict[str, float]:
        """Task-specific figures for the run's summary (beyond the metrics a suite names)."""
        ...


def _category(row: dict[str, Any]) -> str:
    return row.get("category") or "uncategorised"


class SftTask:
    """Chat rows with a numeric answer: exact match after numeric normalisation."""

    name = "sft"
    kind: Literal["generate", "choose"] = "generate"

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows

    def num_examples(self) -> int:
        return len(self.rows)

    def get_example(self, i: int) -> Example:
        r = self.rows[i]
        response = r["messages"][-1]["content"]
        return Example(
            r["id"],
            _category(r),
            r.get("lang") or "",
            r["messages"][:-1],
            response,
            reference_answer(r.get("answer"), response),
        )

    def score(self, example: Example, prediction: str) -> ItemScore:
        extracted = extract_number(prediction)
        correct = numeric_match(extracted, example.reference)
        return ItemScore(correct, extracted, float(correct))

    def summarise(self, examples: Sequence[Example], scores: Sequence[ItemScore]) -> dict[str, float]:
        return {}


def normalise_label(text: str) -> str:
    """Case, width, surrounding punctuation and spaces aside: ``" Positive."`` -> ``"positive"``."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = re.sub(r"^(?:label|answer|标签|答案)\s*[:：]\s*", "", text)
    return " ".join(text.strip(" \t\n.,;:!?。，；：！？\"'`()[]{}「」").split())


class ClassificationTask:
    """Text/label rows: the prompt lists the labels; correct when the predicted label is the gold one."""

    name = "classification"
    kind: Literal["generate", "choose"] = "generate"

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows
        self.labels = sorted({str(r["label"]) for r in rows})
        self._known = {normalise_label(label): label for label in self.labels}

    def num_examples(self) -> int:
        return len(self.rows)

    def get_example(self, i: int) -> Example:
        r = self.rows[i]
        labels = ", ".join(self.labels)
        if r.get("lang") == "zh":
            ask = f"请从这些标签中选一个给下面的文字分类，只回答标签：{labels}\n\n{r['text']}"
        else:
            ask = f"Classify the text below. Answer with one label only, one of: {labels}\n\n{r['text']}"
        label = str(r["label"])
        return Example(
            r["id"], _category(r), r.get("lang") or "", [{"role": "user", "content": ask}], label, label
        )

    def predicted_label(self, prediction: str) -> str | None:
        """The label the prediction names: all of it, else the known label it mentions first."""
        said = normalise_label(prediction)
        if said in self._known:
            return self._known[said]
        found = [
            (m.start(), label)
            for key, label in self._known.items()
            if (m := re.search(rf"(?<!\w){re.escape(key)}(?!\w)", said)) is not None
        ]
        return min(found)[1] if found else (said or None)

    def score(self, example: Example, prediction: str) -> ItemScore:
        label = self.predicted_label(prediction)
        correct = label is not None and normalise_label(label) == normalise_label(example.reference)
        return ItemScore(correct, label, float(correct))

    def summarise(self, examples: Sequence[Example], scores: Sequence[ItemScore]) -> dict[str, float]:
        predicted = [s.extracted or "" for s in scores]
        gold = [e.reference for e in examples]
        out: dict[str, float] = {}
        for label in sorted(set(gold)):
            prf = tm.precision_recall_f1(predicted, gold, positive=label)
            out |= {f"{k}:{label}": v for k, v in prf.items()}
        out |= {f"macro_{k}": v for k, v in tm.precision_recall_f1(predicted, gold).items()}
        return out


class PreferenceTask:
    """Prompt/chosen/rejected rows: the model should find ``chosen`` the likelier answer."""

    name = "preference"
    kind: Literal["generate", "choose"] = "choose"

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows

    def num_examples(self) -> int:
        return len(self.rows)

    def get_example(self, i: int) -> Example:
        r = self.rows[i]
        return Example(
            r["id"],
            _category(r),
            r.get("lang") or "",
            [{"role": "user", "content": r["prompt"]}],
            r["chosen"],
            "chosen",
            {"choices": [r["chosen"], r["rejected"]]},
        )

    def score(self, example: Example, prediction: str) -> ItemScore:
        """``prediction`` is the response the model picked (the runner's ``choose`` step)."""
        chosen, rejected = example.extra["choices"]
        picked = "chosen" if prediction == chosen else "rejected" if prediction == rejected else None
        return ItemScore(picked == "chosen", picked, float(picked == "chosen"))

    def summarise(self, examples: Sequence[Example], scores: Sequence[ItemScore]) -> dict[str, float]:
        return {}


def split_text(text: str) -> tuple[str, str]:
    """A plain text as (prompt, continuation): the first half of its words (characters for Chinese)."""
    words = text.split()
    if len(words) >= 2 and not tm.is_chinese(text):
        half = len(words) // 2
        return " ".join(words[:half]), " ".join(words[half:])
    half = max(1, len(text) // 2)
    return text[:half].strip(), text[half:].strip()


class TextTask:
    """Free text: ROUGE-L of the prediction against the reference; correct at or above ``threshold``."""

    name = "text"
    kind: Literal["generate", "choose"] = "generate"

    def __init__(self, rows: Sequence[dict[str, Any]], threshold: float = 0.5) -> None:
        self.rows, self.threshold = rows, threshold

    def num_examples(self) -> int:
        return len(self.rows)

    def get_example(self, i: int) -> Example:
        r = self.rows[i]
        lang = r.get("lang") or ""
        if "messages" in r:  # an SFT row whose answer is prose
            prompt, reference = r["messages"][:-1], r["messages"][-1]["content"]
        else:
            head, reference = split_text(r["text"])
            ask = "续写下面的文字：" if lang == "zh" else "Continue this text:"
            prompt = [{"role": "user", "content": f"{ask}\n\n{head}"}]
        return Example(r["id"], _category(r), lang, prompt, reference, reference)

    def score(self, example: Example, prediction: str) -> ItemScore:
        value = tm.rouge_l(prediction, example.reference_text)
        return ItemScore(value >= self.threshold, None, value)

    def summarise(self, examples: Sequence[Example], scores: Sequence[ItemScore]) -> dict[str, float]:
        return {"text_score": sum(s.score for s in scores) / len(scores) if scores else 0.0}


@dataclass(frozen=True)
class TaskOptions:
    text_threshold: float = 0.5  # the ``text`` task's ROUGE-L at or above which an answer counts as correct


@dataclass(frozen=True)
class TaskKind:
    """A task by name: the dataset formats whose rows it reads and how it is built."""

    name: str
    formats: tuple[str, ...]
    make: Callable[[Sequence[dict[str, Any]], TaskOptions], Task]


TASKS: dict[str, TaskKind] = {
    k.name: k
    for k in (
        TaskKind("sft", ("sft",), lambda rows, _: SftTask(rows)),
        TaskKind("classification", ("classification",), lambda rows, _: ClassificationTask(rows)),
        TaskKind("preference", ("preference",), lambda rows, _: PreferenceTask(rows)),
        TaskKind("text", ("text", "sft"), lambda rows, o: TextTask(rows, o.text_threshold)),
    )
}


def task_kind(dataset_format: str, name: str | None = None, source: str = "") -> TaskKind:
    """The task for a dataset of ``dataset_format``: ``name`` if given, else the format's own task.

    Raises:
        InputError: no task of that name, or it cannot read rows of that format.
    """
    chosen = name or dataset_format
    if chosen not in TASKS:
        raise InputError(
            f"no evaluation task '{chosen}' (choose from {', '.join(TASKS)})", field="task" if name else None
        )
    kind = TASKS[chosen]
    if dataset_format not in kind.formats:
        raise InputError(
            f"{source or 'the dataset'} holds {dataset_format} rows; the {chosen} task reads "
            f"{' or '.join(kind.formats)} rows",
            field="task",
        )
    return kind


def build_task(
    dataset_format: str,
    rows: Sequence[dict[str, Any]],
    name: str | None = None,
    options: TaskOptions | None = None,
) -> Task:
    """The task over ``rows`` (see :func:`task_kind`)."""
    return task_kind(dataset_format, name).make(rows, options or TaskOptions())


def examples(task: Task) -> list[Example]:
    return [task.get_example(i) for i in range(task.num_examples())]
