"""The plugin tables' shared machinery: a name -> plugin mapping of built-ins, ``$ACCELBENCH_*``
entries and registered ones, and "module:attribute" paths imported only when used.

The runtime table (runtimes/registry.py) and the scenario table (benchmarks/scenarios.py) are
each one ``Registry``. Importing this module imports no framework, no numpy and no pydantic.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

from accelbench.errors import UsageError

__all__ = ["Registry", "import_path"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


P = TypeVar("P", bound=_Named)


def import_path(path: str, what: str) -> Any:
    """The object a "module:attribute" path names; UsageError when it does not import."""
    module_name, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise UsageError(
            f"{what} {path!r} does not import ({err}); name a 'module:attribute' that Python "
            "can import here (is its folder on PYTHONPATH?)"
        ) from err


class Registry(Mapping[str, P], Generic[P]):
    """Plugins of one kind by name, in registration order: the built-ins, then those named in
    the environment variable ``env`` (read again whenever it changes), then those of
    ``register``. ``noun`` names the kind in messages ("runtime"); ``check`` refuses a new
    plugin that clashes with the table in some way of its kind's own (ValueError)."""

    def __init__(
        self,
        noun: str,
        plugin_type: type[P],
        env: str,
        builtins: tuple[P, ...],
        *,
        reserved: tuple[str, ...] = (),
        check: Callable[[P, Mapping[str, P]], None] | None = None,
    ) -> None:
        self.noun = noun
        self.plugin_type = plugin_type
        self.env = env
        self.reserved = reserved
        self._check = check
        self._builtin = {plugin.name: plugin for plugin in builtins}
        self._from_env: dict[str, P] = {}
        self._env_value = ""
        self._registered: dict[str, P] = {}

    def _table(self) -> dict[str, P]:
        value = os.environ.get(self.env, "")
        if value != self._env_value:
            self._from_env = self._load_env(value)
            self._env_value = value
        return {**self._builtin, **self._from_env, **self._registered}

    def _load_env(self, value: str) -> dict[str, P]:
        loaded: dict[str, P] = {}
        kind = self.plugin_type.__name__
        for path in filter(None, (p.strip() for p in value.split(","))):
            plugin = import_path(path, f"${self.env} entry")
            if not isinstance(plugin, self.plugin_type):
                raise UsageError(
                    f"${self.env} entry {path!r} is a {type(plugin).__name__}, not a {kind}; "
                    f"name the {kind} object of the {self.noun}'s module"
                )
            self._check_new(plugin, {**self._builtin, **loaded, **self._registered})
            loaded[plugin.name] = plugin
        return loaded

    def _check_new(self, plugin: P, table: Mapping[str, P]) -> None:
        if table.get(plugin.name) == plugin:
            return  # the same plugin again (registered here and named in the variable)
        if plugin.name in table or plugin.name in self.reserved:
            raise ValueError(
                f"{self.noun} name {plugin.name!r} is taken; choose another, or "
                f"unregister_{self.noun} {plugin.name!r} first"
            )
        if self._check is not None:
            self._check(plugin, table)

    def __getitem__(self, name: str) -> P:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def register(self, plugin: P) -> None:
        """Add a plugin to this process's table; ValueError when it clashes."""
        self._check_new(plugin, self._table())
        self._registered[plugin.name] = plugin

    def unregister(self, name: str) -> None:
        """Remove a plugin that ``register`` added."""
        if name not in self._registered:
            raise ValueError(
                f"{self.noun} {name!r} was not added by register_{self.noun}, so it cannot be "
                f"removed; those added are: {', '.join(self._registered) or 'none'}"
            )
        del self._registered[name]
