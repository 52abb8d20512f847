"""Number notations that models write, rewritten into the one form math-verify reads as meant.

math-verify reads `1.70e4` as 1.70·e·4 (Euler's number), `15000 kcal` as a product of five letters
and `15,000 \\, kcal` as the set {15, 0}. `number_form(answer)` rewrites an answer that is one
number, with whatever notation around it, into plain LaTeX and the unit it named:

- scientific notation (`1.70e4`, `1.70E+04`, `1.7 \\cdot 10^4`, `1.7 × 10^{4}`) -> `1.70\\times10^{4}`;
- thousands separators (`15,000`, `15{,}000`, `15\\,000`, thin and no-break spaces) are removed,
  only between groups of exactly three digits and only where the answer is that one number, so a
  list `1,2,3` or a tuple `(1,000, 2)` is left to math-verify;
- a unit after the number (`kcal`, `\\mathrm{~m/s}`, `\\text{ cm}^2`, `°`) or currency before it
  (`\\$`, `€`, `£`) is split off: bare words need a space before them and two letters or a `/`
  (`5 m` may be 5·m), and `5 \\text{ and } 7` or `3 \\sqrt{2}` are no unit; `units_differ` says
  when two units make two numbers different;
- `x = ` before the number and `%` after it are kept (math-verify reads both).

An `e` with a sign and no decimal point, as in `2e-1`, is left alone: it reads as 2e - 1 too.
Anything else comes back unchanged, with no unit: this module recognises notations, it is not a
second parser. The caller decides equivalence (`answers.equivalent`).
"""

from __future__ import annotations

import re

RELATIVE_TOLERANCE = 1e-4
"""Decimals within this relative difference are the same value (`3.14159` and `3.1416`): the
tolerance of the Qwen2.5-Math and DeepSeek-Math evaluators. It applies only where a side is written
as a decimal or in scientific notation; whole numbers and fractions compare exactly."""

_SEPARATOR = r"(?:,|\{,\}|\\,|\\ |~|\\;|\\:|[\u00a0\u2009\u202f ])"
"""What may stand between groups of three digits: comma, LaTeX spaces, thin and no-break spaces."""
_MANTISSA = rf"(?P<mantissa>[+-]?(?:\d{{1,3}}(?:{_SEPARATOR}\d{{3}})+|\d+)(?:\.\d+)?|[+-]?\.\d+)"
_E_EXPONENT = r"[eE](?P<e_exp>[+-]?\d+)"
_TIMES_TEN = (r"\s*(?:\\times|\\cdot|\*|×|·|⋅)\s*10\s*\^\s*"
              r"(?:\{\s*(?P<brace_exp>[+-]?\d+)\s*\}|(?P<bare_exp>[+-]?\d))")
_NUMBER = re.compile(rf"{_MANTISSA}(?:{_E_EXPONENT}|{_TIMES_TEN})?")
_LHS = re.compile(r"^(?P<lhs>[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)(?=[^=]*$)")
_CURRENCY = re.compile(r"^(?:\\\$|\$|€|£|¥|\\euro|\\pounds|\\text\{\\?\$\})\s*")
_PERCENT = re.compile(r"^\s*\\?%$")
_DEGREES = re.compile(r"\s*(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°)")
_WRAPPER = re.compile(r"\\(?:text|mathrm|textrm|mbox|operatorname|rm)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;: !]|~|[\u00a0\u2009\u202f]")
_UNIT_SYMBOLS = {"\\mu": "µ", "μ": "µ", "\\Omega": "Ω", "\\AA": "Å",
                 "\\cdot": " ", "*": " ", "⋅": " ", "·": " "}
_UNIT_WORDS = {"degrees": "°", "degree": "°", "deg": "°", "dollars": "$", "dollar": "$"}
"""Units spelt as words that the sign names too."""
SYMBOL_LETTERS = 4
"""A unit whose letter runs are this short is a symbol (`kcal`, `km/h`); a longer run is a word."""
_LETTERS = re.compile(r"[^\W\d_]+")
_UNIT = re.compile(r"^[A-Za-zµΩÅ°]+(?:\^-?\d+)?(?: ?/? ?\(?[A-Za-zµΩÅ°]+(?:\^-?\d+)?\)?)*$")
"""A unit, once its wrappers, braces and spacing are gone: letters with optional powers, joined by
`/` or spaces (`kcal`, `m/s`, `kg m^2`, `J/(mol K)`)."""


def _unwrap_whole(text: str) -> str:
    """The inside of a `\\text{...}`-style wrapper that spans the whole text and starts with a digit."""
    whole = _WRAPPER.fullmatch(text)
    return whole.group(1).strip() if whole and whole.group(1).strip()[:1].isdigit() else text


def _unit(rest: str) -> str | None:
    """The canonical unit `rest` (what follows a number) names, or None when it names none.

    A bare word needs a space before it and two letters or a `/`; a wrapped one (`\\text{m}`) or
    a degree sign needs neither."""
    after_spacing = _SPACING.sub(" ", rest).lstrip()
    wrapped = bool(_WRAPPER.match(after_spacing)) or after_spacing.startswith("°")
    spaced = after_spacing != rest
    unit = _SPACING.sub(" ", _WRAPPER.sub(r" \1 ", rest))
    for old, new in _UNIT_SYMBOLS.items():
        unit = unit.replace(old, new)
    unit = " ".join(unit.replace("{", "").replace("}", "").split())
    unit = re.sub(r"\s*([/^])\s*", r"\1", unit)
    if not unit or not _UNIT.match(unit):
        return None
    letters = sum(ch.isalpha() for ch in unit)
    if not wrapped and not (spaced and (letters >= 2 or "/" in unit)):
        return None
    return _UNIT_WORDS.get(unit.lower(), unit.replace(" ", ""))


def units_differ(unit_a: str | None, unit_b: str | None) -> bool:
    """Whether two units `number_form` split off name different things: both given, both symbols
    (letter runs of at most `SYMBOL_LETTERS`: `kcal`, `cm^2`, `km/h`, `°`) and unequal. Words
    (`ways`, `arrangements`, `meters`, `different pizzas`) describe the number more often than they
    measure it, so they are never compared."""
    symbols = [u for u in (unit_a, unit_b) if u and all(len(run) <= SYMBOL_LETTERS for run in _LETTERS.findall(u))]
    return len(symbols) == 2 and unit_a != unit_b


def number_form(answer: str) -> tuple[str, str | None]:
    """`answer` rewritten for math-verify when it is one number in some notation (see the module
    docstring), with the unit or currency it named; else `answer` unchanged and None."""
    text = _unwrap_whole(answer.strip()).replace("\u2212", "-")
    lhs_match = _LHS.match(text)
    lhs = lhs_match.group("lhs") if lhs_match else ""
    text = text[len(lhs):].strip()
    currency = _CURRENCY.match(text)
    text = text[currency.end():] if currency else text
    number = _NUMBER.match(text)
    if number is None:
        return answer, None
    rest = _DEGREES.sub("°", text[number.end():])
    percent = bool(_PERCENT.match(rest))
    unit = None if percent or not rest.strip() else _unit(rest)
    if not percent and rest.strip() and unit is None:
        return answer, None
    mantissa, e_exp = number.group("mantissa"), number.group("e_exp")
    if e_exp and e_exp[0] in "+-" and "." not in mantissa:
        return answer, None  # 2e-1 may be 2e - 1
    exponent = e_exp or number.group("brace_exp") or number.group("bare_exp")
    power = "" if exponent is None else f"\\times10^{{{int(exponent)}}}"
    out = lhs + re.sub(_SEPARATOR, "", mantissa) + power + ("\\%" if percent else "")
    if currency:
        unit = "$" if "$" in currency.group(0) else currency.group(0).strip()
    return out, unit
