"""Directives and conditions a spec repeats, evaluated once per record.

Specs repeat themselves: a company's address copies the contact's, the contact and the
activity share one `when`. `Sharing` counts a spec's top-level directives and object
conditions before they are compiled; one written more than once is evaluated once per
record (see `memo`) and its value reused. A plain path is cheaper to read again than to
remember, so only maps (coalesce, transforms, conditions) are shared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from hub.mapping.memo import remember

__all__ = ["Sharing"]

Fn = TypeVar("Fn", bound=Callable[[Any, Any], Any])


def _canonical(spec: Any) -> Any:
    """A hashable form of a parsed YAML value; values of different types stay apart."""
    if isinstance(spec, dict):
        return ("map", tuple(sorted((repr(k), _canonical(v)) for k, v in spec.items())))
    if isinstance(spec, list):
        return ("list", tuple(_canonical(v) for v in spec))
    return (type(spec).__name__, repr(spec))


class Sharing:
    """Which of a spec's (kind, spec) pairs repeat, and their once-per-record wrappers."""

    def __init__(self, specs: Iterable[tuple[str, Any]]) -> None:
        counts = Counter((kind, _canonical(spec)) for kind, spec in specs if isinstance(spec, dict))
        #: A small id per repeated spec: the memo key, cheap to hash on every call.
        self._ids = {key: index for index, key in enumerate(k for k, n in counts.items() if n > 1)}

    def share(self, kind: str, spec: Any, fn: Fn) -> Fn:
        """`fn`, or for a repeated spec a wrapper that calls it once per record and node."""
        if not isinstance(spec, dict):
            return fn
        shared_id = self._ids.get((kind, _canonical(spec)))
        if shared_id is None:
            return fn

        def once(node: Any, root: Any) -> Any:
            return remember(("shared", shared_id, id(node), id(root)), fn, node, root)

        return once  # type: ignore[return-value]
