"""What the rater page shows and sends back (pure: no database, no HTTP).

The page offers a verdict as radio buttons whose values name the verdict; `verdict_from_form`
turns the posted form into the same `JudgmentCreate` the JSON API takes, and the service's
rules (labeling/rules.py) judge it. Nothing here decides whether a verdict is allowed beyond
"did the rater pick anything", which the rules cannot phrase for a person.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from server.critiques.schemas import MAX_CRITIQUE_CHARS, MAX_FLAW_NOTE, MAX_FLAWS, MAX_MESSAGE_INDEX, CritiqueView
from server.errors import Invalid
from server.labeling.schemas import MAX_SKIP_REASON, AssignmentRead, CandidateView, JudgmentCreate, SkipCreate
from server.labeling.spans import MAX_OFFSET, Segment, Span, segments
from server.models import Judgment, Project, RationaleRule, Scale, Severity, SkipReason

# Words for each strength on a scale, strongest first: the buttons read "A much better" … "B much better".
STRENGTH_WORDS = {
    Scale.four_point: ("much better", "slightly better"),
    Scale.eight_point: ("much better", "better", "somewhat better", "slightly better"),
}
NO_VERDICT = "Choose which response is better before submitting (the keys are listed below the buttons)."
NO_RANKING = "Rank every response, best first, before submitting: press their letters in order, or drag them."
NO_STRENGTH = "Say how much better your first choice is before submitting."
SURPLUS = (
    "Saved. Your time on that item had run out and other raters had already filled it, "
    "so your judgment is kept as an extra one. Nothing was lost."
)
NETWORK_FAILED = (
    "Could not reach the server, so nothing was saved yet. "
    "Your choice and rationale are still here: press Enter to try again."
)
SERVER_FAILED = (
    "The server had a problem and nothing was saved yet. "
    "Your choice and rationale are still here: press Enter to try again."
)
NO_VERDICT_TOUCH = "Choose which response is better before submitting: tap one of the buttons."
NO_RANKING_TOUCH = "Rank every response, best first, before submitting: drag them or use the arrows."
NETWORK_FAILED_TOUCH = (
    "Could not reach the server, so nothing was saved yet. "
    "Your choice and rationale are still here: tap Submit to try again."
)
SERVER_FAILED_TOUCH = (
    "The server had a problem and nothing was saved yet. "
    "Your choice and rationale are still here: tap Submit to try again."
)
LOAD_NETWORK_FAILED = "Could not reach the server to load your items. Check the connection and reload the page."
LOAD_SERVER_FAILED = "The server had a problem loading your items. Reload the page in a moment."
RATIONALE_TOO_LONG = "Your rationale is longer than 20,000 characters; please shorten it."
RATIONALE_NUL = "Your rationale holds a NUL character, which cannot be saved; please remove it."
MAX_ACTIVE_MS = 86_400_000  # a day: JudgmentCreate's bound; the page clamps a longer time to it
MAX_STRENGTH = 1000  # JudgmentCreate's bound; the project's scale is checked by the rules
# The skip menu: the optional reason codes, in the words the rater reads.
SKIP_REASONS = {
    SkipReason.unclear: "Unclear",
    SkipReason.harmful: "Harmful content",
    SkipReason.cannot_judge: "Can't judge",
    SkipReason.other: "Other",
}
BAD_SKIP_REASON = (
    "That is not one of the skip reasons (unclear, harmful, cannot judge, other); reload the page and choose again."
)
SKIP_REASON_TOO_LONG = f"Your reason for skipping is longer than {MAX_SKIP_REASON:,} characters; please shorten it."
SKIP_REASON_NUL = "Your reason for skipping holds a NUL character, which cannot be saved; please remove it."
BAD_VERDICT = "That verdict is not one of this item's options; reload the page and choose again."
NO_ANSWER = "Answer the question before submitting (the keys are listed below the form)."
NO_ANSWER_TOUCH = "Answer the question before submitting."
ANSWER_TOO_LONG = "Your answer is longer than 2,000 characters; please shorten it."
CHECK_WORDS = (("yes", "Yes", "y"), ("no", "No", "n"), ("unsure", "Unsure", "u"))
MAX_RATING_BUTTONS = 9  # a rating of whole numbers with at most this many steps gets buttons (keys 1 to 9)


@dataclass(frozen=True, slots=True)
class Option:
    """One verdict button: the radio's value, its words, and the keys that pick it."""

    value: str
    label: str
    keys: tuple[str, ...]
    side: str = ""  # "a" or "b" on a two-sided scale (styling only; the words say it too)


@dataclass(frozen=True, slots=True)
class VerdictForm:
    """How the verdict is asked for one item under one project's settings."""

    ranking: bool  # more than two candidates: order them all
    options: list[Option]  # choice buttons (two candidates) or nothing (ranking)
    strengths: list[Option]  # ranking on a strength scale: how much better the first is
    flags: list[Option]  # tie / both bad, when the project allows them
    rationale: str  # off | optional | required
    undo: bool = False  # the project lets raters revise: Backspace takes the last verdict back
    # The revision page: no skip, no instructions panel, and Backspace goes back instead of undoing.
    revising: bool = False
    # A subtask (check, rating, answer): how it is answered instead of a choice between responses.
    answer: str = ""  # "" (a comparison) | "buttons" (a check, a short whole-number rating) | "number" | "text"
    scale: tuple[float, float] | None = None  # a rating's, for the number box

    @property
    def mode(self) -> str:
        return "answer" if self.answer else ("ranking" if self.ranking else "choice")

    @property
    def keys(self) -> list[tuple[str, str]]:
        """The key legend: (keys, what they do)."""
        legend: list[tuple[str, str]] = []
        if self.answer == "buttons":
            keys = [o.keys[0] for o in self.options]
            legend.append((" / ".join(keys), " / ".join(o.label.lower() for o in self.options)))
        elif self.answer:
            legend.append(("a", "write the answer"))
        elif self.ranking:
            legend.append(("A, B, C…", "rank in order, best first (Esc starts over)"))
            if self.strengths:
                legend.append((f"1\N{EN DASH}{len(self.strengths)}", "how much better the first is"))
        elif self.options:
            first, last = self.options[0].keys[0], self.options[-1].keys[0]
            words = "A or B is better" if len(self.options) == 2 else "from A much better to B much better"
            legend.append((f"{first}\N{EN DASH}{last}" if len(self.options) > 2 else "1 / a, 2 / b", words))
        legend += [(f.keys[0], f.label) for f in self.flags]
        if self.revising:
            legend.append(("Enter", "save the revision"))
        else:
            legend += [("Enter", "submit"), ("s", "skip"), ("i", "instructions")]
        if self.answer:
            legend += [
                ("\N{DOWNWARDS ARROW} \N{UPWARDS ARROW}", "scroll the source"),
                ("Shift+\N{DOWNWARDS ARROW} \N{UPWARDS ARROW}", "scroll the response"),
            ]
        else:
            legend += [
                ("\N{DOWNWARDS ARROW} \N{UPWARDS ARROW}", "scroll A"),
                ("Shift+\N{DOWNWARDS ARROW} \N{UPWARDS ARROW}", "scroll B"),
            ]
        if self.revising:
            legend.append(("Backspace", "back, keeping the stored verdict"))
        elif self.undo:
            legend.append(("Backspace", "take back your last verdict"))
        if self.rationale != RationaleRule.off:
            legend.append(("r", "write the rationale"))
            legend.append(("Esc", "leave it (Ctrl+Enter submits)"))
        return legend


def _choice_options(scale: Scale, ids: Sequence[uuid.UUID]) -> list[Option]:
    a, b = ids
    if scale == Scale.binary:
        return [
            Option(f"c:{a}:", "A is better", ("1", "a"), "a"),
            Option(f"c:{b}:", "B is better", ("2", "b"), "b"),
        ]
    words = STRENGTH_WORDS[scale]
    top = scale.max_strength
    options = [Option(f"c:{a}:{top - i}", f"A {w}", (str(i + 1),), "a") for i, w in enumerate(words)]
    options += [Option(f"c:{b}:{s}", f"B {words[top - s]}", (str(top + s),), "b") for s in range(1, top + 1)]
    return options


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _answer_form(project: Project, view: AssignmentRead, revising: bool) -> VerdictForm:
    """A subtask's form: yes/no/unsure buttons (y, n, u) for a check; a rating's buttons (1 to 9) when
    it is a short scale of whole numbers, else a number box; a text box for an answer."""
    item = view.item
    base = {"ranking": False, "strengths": [], "flags": [], "rationale": project.rationale, "revising": revising,
            "undo": bool(project.revision_window_minutes)}  # fmt: skip
    if item.kind == "check":
        options = [Option(f"a:{value}", words, (key,)) for value, words, key in CHECK_WORDS]
        return VerdictForm(options=options, answer="buttons", **base)  # type: ignore[arg-type]
    if item.kind == "rating" and item.scale:
        low, high = item.scale
        steps = high - low + 1
        if low.is_integer() and high.is_integer() and steps <= MAX_RATING_BUTTONS:
            options = [Option(f"a:{_number(low + i)}", _number(low + i), (str(i + 1),)) for i in range(int(steps))]
            return VerdictForm(options=options, answer="buttons", scale=(low, high), **base)  # type: ignore[arg-type]
        return VerdictForm(options=[], answer="number", scale=(low, high), **base)  # type: ignore[arg-type]
    return VerdictForm(options=[], answer="text", **base)  # type: ignore[arg-type]


def verdict_form(project: Project, view: AssignmentRead, *, revising: bool = False) -> VerdictForm:
    """The buttons, keys and rationale box for this item (on the rater page, or the revision page)."""
    if view.item.kind != "comparison":
        return _answer_form(project, view, revising)
    scale = Scale(project.scale)
    ids = [c.id for c in view.item.candidates]
    ranking = len(ids) > 2
    flags = []
    if project.allow_tie:
        flags.append(Option("tie", "Tie", ("t",)))
    if project.allow_both_bad:
        flags.append(Option("both_bad", "Both are bad" if not ranking else "All are bad", ("x",)))
    strengths: list[Option] = []
    if ranking and scale != Scale.binary:
        words = STRENGTH_WORDS[scale]
        top = scale.max_strength
        strengths = [Option(str(top - i), w.capitalize(), (str(i + 1),)) for i, w in enumerate(words)]
    return VerdictForm(
        ranking=ranking,
        options=[] if ranking else _choice_options(scale, ids),
        strengths=strengths,
        flags=flags,
        rationale=project.rationale,
        undo=bool(project.revision_window_minutes),
        revising=revising,
    )


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid(BAD_VERDICT) from None


def _int_or_none(value: str | None, *, at_most: int = MAX_STRENGTH, clamp: bool = False) -> int | None:
    """A whole number of ASCII digits (int() also reads "²" or Devanagari digits) up to `at_most`;
    a larger one is refused, or with `clamp` taken as `at_most`."""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        raise Invalid(BAD_VERDICT)
    digits = value.lstrip("0") or "0"
    # Compare lengths first: int() of thousands of digits is slow, and refused past 4,300.
    if len(digits) <= len(str(at_most)) and int(digits) <= at_most:
        return int(digits)
    if clamp:
        return at_most
    raise Invalid(BAD_VERDICT)


def _judgment(**fields: Any) -> JudgmentCreate:
    try:
        return JudgmentCreate(**fields)
    except ValidationError as exc:
        rationale = [e["type"] for e in exc.errors() if e["loc"] == ("rationale",)]
        if any(e["loc"][:1] == ("answer",) for e in exc.errors()):
            raise Invalid(ANSWER_TOO_LONG) from None
        if rationale:
            raise Invalid(RATIONALE_NUL if "no_nul" in rationale else RATIONALE_TOO_LONG) from None
        raise Invalid(BAD_VERDICT) from None


def verdict_from_form(
    *,
    verdict: str | None,
    ranking: str | None,
    strength: str | None,
    rationale: str | None,
    active_ms: str | None,
    extras: Mapping[str, Any] | None = None,
    answer: str | None = None,
    answer_number: str | None = None,
) -> JudgmentCreate:
    """The posted verdict as the API's `JudgmentCreate`; Invalid (in plain words) when nothing was picked.
    `extras`: the critique ratings and critiques read by `extras_from_form`."""
    active = _int_or_none(active_ms, at_most=MAX_ACTIVE_MS, clamp=True)
    base: dict[str, Any] = {"rationale": rationale or None, "active_ms": active, **(extras or {})}
    if verdict and verdict.startswith("a:"):  # a check's or a short rating's button
        return _judgment(answer=_answer_value(verdict[2:]), **base)
    if answer_number is not None and answer_number.strip():
        return _judgment(answer=_answer_value(answer_number.strip(), numbers_only=True), **base)
    if answer is not None:
        if not answer.strip():
            raise Invalid(NO_ANSWER)
        return _judgment(answer=answer, **base)
    if verdict == "tie":
        return _judgment(tie=True, **base)
    if verdict == "both_bad":
        return _judgment(both_bad=True, **base)
    if verdict and verdict.startswith("c:"):
        _, choice, level = [*verdict.split(":"), ""][:3]
        return _judgment(choice=_uuid(choice), strength=_int_or_none(level), **base)
    if verdict:
        raise Invalid(BAD_VERDICT)
    if ranking is not None:
        order = [_uuid(part) for part in ranking.split(",") if part]
        if not order:
            raise Invalid(NO_RANKING)
        return _judgment(ranking=order, strength=_int_or_none(strength), **base)
    raise Invalid(NO_VERDICT)


def _answer_value(value: str, *, numbers_only: bool = False) -> str | int | float:
    """A posted answer: yes/no/unsure, or a number (a rating); anything else is not the page's."""
    if not numbers_only and value in ("yes", "no", "unsure"):
        return value
    if len(value) > 32:
        raise Invalid(BAD_VERDICT)
    try:
        number = float(value)
    except ValueError:
        raise Invalid(BAD_VERDICT) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Invalid(BAD_VERDICT)
    return int(number) if number.is_integer() else number


def form_values(judgment: Judgment) -> dict[str, str]:
    """A stored verdict as the page's form values, to show it selected on the revision page."""
    values = {"verdict": "", "ranking": "", "strength": "", "rationale": judgment.rationale or ""}
    if judgment.answer is not None:
        answer = judgment.answer
        values["verdict"] = f"a:{_number(answer) if isinstance(answer, int | float) else answer}"
        values["answer"] = str(answer)
        return values
    if judgment.tie:
        values["verdict"] = "tie"
    elif judgment.ranking:
        values["ranking"] = ",".join(str(c) for c in judgment.ranking)
        values["strength"] = "" if judgment.strength is None else str(judgment.strength)
    elif judgment.choice_id is not None:
        values["verdict"] = f"c:{judgment.choice_id}:{'' if judgment.strength is None else judgment.strength}"
    elif judgment.both_bad:
        values["verdict"] = "both_bad"
    return values


def describe(judgment: Judgment, shown_order: Sequence[uuid.UUID]) -> str:
    """A stored verdict in the words of the page, with candidates named by the letters the rater saw."""
    letter = {c: chr(ord("A") + i) for i, c in enumerate(shown_order)}
    if judgment.answer is not None:
        return f"Answered: {judgment.answer}"
    if judgment.tie:
        return "Tie"
    if judgment.ranking:
        words = " > ".join(letter.get(c, "?") for c in judgment.ranking)
    elif judgment.choice_id is not None:
        words = f"{letter.get(judgment.choice_id, '?')} is better"
    else:
        return "Both are bad" if len(shown_order) == 2 else "All are bad"
    if judgment.strength is not None:
        words += f" (strength {judgment.strength})"
    return words + (", both bad" if judgment.both_bad else "")


def skip_from_form(*, reason_code: str | None, reason: str | None) -> SkipCreate:
    """The skip form as the API's `SkipCreate`: an optional code from the menu and optional words."""
    if reason_code and reason_code not in SkipReason.__members__:
        raise Invalid(BAD_SKIP_REASON)
    try:
        return SkipCreate(reason_code=reason_code or None, reason=(reason or "").strip() or None)
    except ValidationError as exc:
        kinds = [e["type"] for e in exc.errors()]
        raise Invalid(SKIP_REASON_NUL if "no_nul" in kinds else SKIP_REASON_TOO_LONG) from None


# --- critiques on the page (critiques/assistance.py decides whether an assignment shows them) ----

CRITIQUE_TOO_LONG = "Your critique is longer than {limit:,} characters; please shorten it."
BAD_CRITIQUE_FIELD = "That critique rating is not one of the page's options; reload the page and rate it again."
RATINGS_MISSING = (
    "Rate every critique before submitting: valid, invalid or unsure, and helpful or not (q goes to the next critique)."
)
VERDICT_WORDS = {"valid": "Valid", "invalid": "Invalid", "unsure": "Unsure"}


@dataclass(frozen=True, slots=True)
class Highlighted:
    """A candidate's response cut into segments at its critiques' spans: the text, or each message."""

    text: list[Segment] | None
    messages: list[tuple[dict[str, str], list[Segment]]] | None


def highlighted(candidate: CandidateView, critiques: Sequence[CritiqueView]) -> Highlighted:
    """The response with every span of its critiques marked (ids as marks); control characters
    keep their place in the text (labeling/spans.py), so offsets read on the page are the stored ones."""
    mine = [c for c in critiques if c.candidate_id == candidate.id and c.span is not None]
    return marked(candidate, [(Span(c.span[0], c.span[1], c.message), str(c.id)) for c in mine if c.span])


def marked(candidate: CandidateView, marks: Sequence[tuple[Span, str]]) -> Highlighted:
    """The response cut at the spans in `marks` (each with its mark id): the text, or each message."""
    if candidate.text is not None:
        return Highlighted(text=segments(candidate.text, [m for m in marks if m[0].message is None]), messages=None)
    return Highlighted(
        text=None,
        messages=[
            (m, segments(m.get("content", ""), [x for x in marks if x[0].message == k]))
            for k, m in enumerate(candidate.messages or [])
        ],
    )


def target_highlight(view: AssignmentRead) -> Highlighted | None:
    """A subtask's target response with the span it asks about marked (mark id "q")."""
    target = view.item.candidate
    if target is None:
        return None
    marks = [(Span(target.span[0], target.span[1], target.message), "q")] if target.span else []
    if target.text is not None:
        return Highlighted(text=segments(target.text, marks), messages=None)
    return Highlighted(
        text=None,
        messages=[
            (m, segments(m.get("content", ""), [x for x in marks if x[0].message == k]))
            for k, m in enumerate(target.messages or [])
        ],
    )


def extras_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """Critique ratings (`cr-<critique id>`, `ch-<critique id>`) and the rater's critiques
    (`rc-<candidate id>`, with `rs-<candidate id>`: "start,end" or "message:start,end") as the
    API's `critique_ratings` and `critiques`; a field the page never offers is refused."""
    ratings: dict[str, dict[str, Any]] = {}
    written: list[dict[str, Any]] = []
    for key, value in form.items():
        if not isinstance(value, str) or not key.startswith(("cr-", "ch-", "rc-")):
            continue
        target = key[3:]
        try:
            uuid.UUID(target)
        except ValueError:
            raise Invalid(BAD_CRITIQUE_FIELD) from None
        if key.startswith("cr-"):
            if value not in VERDICT_WORDS:
                raise Invalid(BAD_CRITIQUE_FIELD)
            ratings.setdefault(target, {"critique_id": target})["verdict"] = value
        elif key.startswith("ch-"):
            if value not in ("yes", "no"):
                raise Invalid(BAD_CRITIQUE_FIELD)
            ratings.setdefault(target, {"critique_id": target})["helpful"] = value == "yes"
        elif value.strip():
            if len(value) > MAX_CRITIQUE_CHARS:
                raise Invalid(CRITIQUE_TOO_LONG.format(limit=MAX_CRITIQUE_CHARS))
            written.append({"candidate_id": target, "text": value.strip(), **_span_field(form.get(f"rs-{target}"))})
    return {
        # "helpful" without a verdict is no rating yet (a required rating then says what is missing)
        "critique_ratings": [r for r in ratings.values() if r.get("verdict")] or None,
        "critiques": written or None,
    }


def _span_field(value: Any) -> dict[str, Any]:
    """The page's hidden span field: "start,end" or "message:start,end" (empty: no span)."""
    if not isinstance(value, str) or not value:
        return {}
    message, _, pair = value.rpartition(":")
    parts = pair.split(",")
    numbers = [*parts, message] if message else parts
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in numbers):
        raise Invalid(BAD_CRITIQUE_FIELD)
    out: dict[str, Any] = {"span": [int(parts[0]), int(parts[1])]}
    if message:
        out["message"] = int(message)
    return out


# --- flaws the rater marks (a hidden `fl` field per flaw, kept by static/flaws.js) ---------------

FLAW_FIELD = "fl"
TOO_MANY_FLAWS = "You marked more than {limit} flaws; remove some before submitting."
BAD_FLAW_FIELD = "A marked flaw is not in the page's shape; remove it, mark it again and submit."
FLAW_NOTE_TOO_LONG = "A flaw's note is longer than {limit:,} characters; please shorten it."
NO_SEVERITY = "Give each marked flaw a severity: minor, major or critical."
_FLAW_KEYS = frozenset({"candidate_id", "span", "message", "severity", "note"})


def flaws_from_form(values: Sequence[Any]) -> list[dict[str, Any]] | None:
    """The page's marked flaws (each `fl` field: a JSON object as the API's `flaws[i]`), checked for
    shape here so a refusal is a sentence; the judgment checks spans against the responses."""
    if len(values) > MAX_FLAWS:
        raise Invalid(TOO_MANY_FLAWS.format(limit=MAX_FLAWS))
    out = []
    for value in values:
        if not isinstance(value, str) or len(value) > 4 * MAX_FLAW_NOTE + 500:
            raise Invalid(BAD_FLAW_FIELD)
        try:
            flaw = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise Invalid(BAD_FLAW_FIELD) from None
        if not isinstance(flaw, dict) or not _FLAW_KEYS.issuperset(flaw):
            raise Invalid(BAD_FLAW_FIELD)
        note = flaw.get("note")
        if note is not None and not isinstance(note, str):
            raise Invalid(BAD_FLAW_FIELD)
        if note and len(note) > MAX_FLAW_NOTE:
            raise Invalid(FLAW_NOTE_TOO_LONG.format(limit=MAX_FLAW_NOTE))
        if flaw.get("severity") not in Severity.__members__:
            raise Invalid(NO_SEVERITY)
        try:
            uuid.UUID(str(flaw.get("candidate_id")))
        except ValueError:
            raise Invalid(BAD_FLAW_FIELD) from None
        span, message = flaw.get("span"), flaw.get("message")
        if not (
            isinstance(span, list) and len(span) == 2 and all(type(v) is int and 0 <= v < MAX_OFFSET for v in span)
        ):
            raise Invalid(BAD_FLAW_FIELD)
        if message is not None and not (type(message) is int and 0 <= message <= MAX_MESSAGE_INDEX):
            raise Invalid(BAD_FLAW_FIELD)
        out.append(flaw)
    return out or None


def flaw_field(flaw: Any) -> str:
    """A stored flaw as the page's `fl` field (the revision page lists the flaws sent)."""
    value: dict[str, Any] = {
        "candidate_id": str(flaw.candidate_id),
        "span": [flaw.span_start, flaw.span_end],
        "severity": flaw.severity or "major",
        "note": flaw.note or "",
    }
    if flaw.span_message is not None:
        value["message"] = flaw.span_message
    return orjson.dumps(value).decode()
