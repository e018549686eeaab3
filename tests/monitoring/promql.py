"""What a PromQL expression reads: the metric names it selects, the labels each selector matches on, and
the labels it groups or joins by. Enough of PromQL for the rules and the dashboard, and strict: anything
it does not understand is an error, so a query cannot slip past the name check."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Labels in parentheses after these words are label names, not metric names.
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Words that are neither metrics nor labels.
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
FUNCTIONS = frozenset({
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "absent",
    "absent_over_time", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time", "changes", "resets", "clamp_min", "clamp_max", "abs", "ceil",
    "floor", "round", "time", "timestamp", "vector", "scalar", "sort", "sort_desc", "predict_linear",
})
# Grafana's variables: the interval ones stand for a duration, the others sit inside label values.
GRAFANA_INTERVAL = re.compile(r"\$__(rate_)?interval|\$__range")
TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')'
    r"|(?P<range>\[[0-9]+[smhdwy](?::[0-9]*[smhdwy]?)?\])"
    r"|(?P<duration>[0-9]+(?:ms|[smhdwy])(?![a-zA-Z0-9_:]))"
    r"|(?P<number>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"|(?P<op>=~|!~|!=|==|>=|<=|[{}(),=<>+\-*/^%]))"
)


@dataclass
class Reads:
    selectors: list[tuple[str, set[str]]] = field(default_factory=list)  # (metric, labels matched on)
    grouping: set[str] = field(default_factory=set)  # labels named in by/without/on/ignoring/group_*

    @property
    def metrics(self) -> set[str]:
        return {metric for metric, _ in self.selectors}


def tokens(expr: str) -> list[tuple[str, str]]:
    text = GRAFANA_INTERVAL.sub("5m", expr).strip()
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read PromQL at {text[position:position + 30]!r} in {expr!r}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return found


def reads(expr: str) -> Reads:
    """The metrics and labels an expression reads."""
    items = tokens(expr)
    result = Reads()
    i = 0
    while i < len(items):
        kind, text = items[i]
        following = items[i + 1][1] if i + 1 < len(items) else ""
        if kind != "name":
            if text == "{":  # a selector without a metric name would match any metric: not allowed here
                raise ValueError(f"a selector without a metric name in {expr!r}")
            i += 1
        elif text in GROUPING and following == "(":
            i += 2
            while items[i][1] != ")":
                if items[i][0] == "name":
                    result.grouping.add(items[i][1])
                elif items[i][1] != ",":
                    raise ValueError(f"unexpected {items[i][1]!r} in a label list of {expr!r}")
                i += 1
            i += 1
        elif text in KEYWORDS:
            i += 1
        elif following == "(" or (text in FUNCTIONS and following in ("by", "without")):
            if text not in FUNCTIONS:
                raise ValueError(f"unknown function {text!r} in {expr!r}")
            i += 1
        else:
            labels: set[str] = set()
            i += 1
            if following == "{":
                i += 1
                while items[i][1] != "}":
                    name, operator, value = items[i], items[i + 1], items[i + 2]
                    if name[0] != "name" or operator[1] not in ("=", "!=", "=~", "!~") or value[0] != "string":
                        raise ValueError(f"cannot read the matchers of {text} in {expr!r}")
                    labels.add(name[1])
                    i += 3
                    if items[i][1] == ",":
                        i += 1
                i += 1
            result.selectors.append((text, labels))
    return result


LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def legend_labels(legend: str) -> set[str]:
    return set(LEGEND_LABEL.findall(legend))
