"""The owner of a compile cache: compiled programs of this process by their static key, and a log of compilations.

JAX compiles a program once per set of static inputs; fluxsim keeps the compiled executables of its batch runners
(:mod:`fluxsim.study.batch`) and of its fits (:mod:`fluxsim.fit`) so a second study or fit with the same shapes does
not compile again. Each of those modules owns one :class:`CompileCache` (a named module attribute): tests and long
sessions can inspect it (``len``, ``log``) and empty it (:meth:`CompileCache.clear`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any


class CompileCache:
    """Compiled programs by static key, with every compilation logged as ``(name, key, seconds)``."""

    def __init__(self, name: str):
        self.name = name
        self.log: list[tuple[str, Any, float]] = []
        self._items: dict[Hashable, Any] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get_or_compile(self, key: Hashable, compile: Callable[[], Any], name: str | None = None) -> Any:
        """The program cached under ``key``, else ``compile()`` (timed and logged under ``name``) cached there."""
        if key in self._items:
            return self._items[key]
        start = time.perf_counter()
        value = compile()
        self.log.append((name or self.name, key, time.perf_counter() - start))
        self._items[key] = value
        return value

    def compile_seconds(self) -> float:
        """Seconds spent compiling so far (the sum over :attr:`log`)."""
        return sum(seconds for _, _, seconds in self.log)

    def clear(self) -> None:
        """Forget every compiled program and the log (the next use compiles again)."""
        self._items.clear()
        self.log.clear()

    def __repr__(self) -> str:
        return f"CompileCache({self.name!r}: {len(self)} programs, {len(self.log)} compilations)"
