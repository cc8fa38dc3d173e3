"""The one table of runtimes: each one's name, the artifacts it opens, its packages, its factory.

Every list of runtimes elsewhere (the CLI's help, suite and profile validation, the host's
installed runtimes and package versions, ``open_runtime``'s dispatch) reads ``RUNTIMES``.
Importing this module imports no framework and no numpy: a factory named as "module:callable"
is imported when a runtime opens.

A runtime outside accelbench joins the table in two ways. ``register_runtime(info)`` adds it to
this process only. ``$ACCELBENCH_RUNTIMES`` ("module:attribute" paths of RuntimeInfo objects,
comma-separated) adds it to every process that inherits the environment, which includes the
runner's workers (the sandbox keeps ``ACCELBENCH_*`` variables and ``PYTHONPATH``); the table
reads the variable again whenever it changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from accelbench.errors import UsageError
from accelbench.plugins import Registry, import_path

if TYPE_CHECKING:
    from accelbench.runtimes.base import Runtime

__all__ = [
    "ArtifactKind",
    "JAXEXPORT",
    "KERAS",
    "RESERVED_NAMES",
    "RUNTIMES",
    "RUNTIMES_ENV",
    "SAVEDMODEL",
    "TFLITE",
    "RuntimeFactory",
    "RuntimeInfo",
    "artifact_kinds",
    "kinds_text",
    "names_text",
    "register_runtime",
    "runtime_info",
    "runtimes_for",
    "unregister_runtime",
]

RUNTIMES_ENV = "ACCELBENCH_RUNTIMES"
# A profile's runtimes may also say "remote": the device is reached over HTTP, not opened here.
RESERVED_NAMES = ("remote",)


class RuntimeFactory(Protocol):
    """Opens one artifact. ``runtime`` is the name the caller asked for, or None when the caller
    left the choice to accelbench and this is the default runtime for the artifact's ``kind``."""

    def __call__(
        self,
        artifact: str | Path,
        *,
        runtime: str | None,
        kind: str,
        threads: int | None,
        xnnpack: bool,
    ) -> Runtime: ...


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of model artifact, and how to tell a path is one: a file suffix, a file that a
    directory of this kind holds, or (for a file with another suffix) bytes at an offset."""

    name: str
    description: str  # how a message names it: "a .tflite file"
    suffixes: tuple[str, ...] = ()  # lowercase, with the dot
    directory_markers: tuple[str, ...] = ()
    magic: tuple[int, bytes] | None = None  # (offset, bytes)

    def __post_init__(self) -> None:
        if not (self.suffixes or self.directory_markers or self.magic):
            raise ValueError(
                f"artifact kind {self.name!r} says no way to recognise it; give suffixes, "
                "directory_markers or magic"
            )
        bad = [s for s in self.suffixes if not s.startswith(".") or s != s.lower()]
        if bad:
            raise ValueError(
                f"artifact kind {self.name!r} has suffix {bad[0]!r}; write suffixes in "
                "lowercase with the dot, such as '.tflite'"
            )


@dataclass(frozen=True)
class RuntimeInfo:
    """One runtime: its name, the artifact kinds it opens, the module whose presence means it
    is installed, the pip packages whose versions a record states, and its factory (a
    ``RuntimeFactory``, or "module:callable" to import it only when an artifact opens)."""

    name: str
    artifact_kinds: tuple[ArtifactKind, ...]
    module: str
    packages: tuple[str, ...]
    factory: str | RuntimeFactory

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() or c == "," for c in self.name):
            raise ValueError(
                f"runtime name {self.name!r} must be a plain word such as 'litert', without "
                "spaces or commas"
            )
        if not self.artifact_kinds:
            raise ValueError(f"runtime {self.name!r} opens no artifact kind; list at least one")
        if isinstance(self.factory, str) and ":" not in self.factory:
            raise ValueError(
                f"runtime {self.name!r} has factory {self.factory!r}; write it as "
                "'module:callable' or pass the callable"
            )

    def open(
        self,
        artifact: str | Path,
        *,
        runtime: str | None,
        kind: str,
        threads: int | None,
        xnnpack: bool,
    ) -> Runtime:
        """Call the factory (importing it first when it is named as "module:callable")."""
        factory = self.factory
        if isinstance(factory, str):
            factory = import_path(factory, f"runtime {self.name!r}'s factory")
        return factory(artifact, runtime=runtime, kind=kind, threads=threads, xnnpack=xnnpack)


def _check_artifact_kinds(info: RuntimeInfo, table: Mapping[str, RuntimeInfo]) -> None:
    """ValueError when ``info`` has an artifact kind of a known name that another runtime
    recognises differently."""
    known = {kind.name: kind for other in table.values() for kind in other.artifact_kinds}
    for kind in info.artifact_kinds:
        if kind.name in known and known[kind.name] != kind:
            raise ValueError(
                f"runtime {info.name!r} defines artifact kind {kind.name!r} differently from "
                f"the registered one; reuse that ArtifactKind object or give yours another name"
            )


def register_runtime(info: RuntimeInfo) -> None:
    """Add a runtime to this process's table (after those there); ValueError when its name is
    taken. Worker processes see it only through ``$ACCELBENCH_RUNTIMES``."""
    _REGISTRY.register(info)


def unregister_runtime(name: str) -> None:
    """Remove a runtime that register_runtime added."""
    _REGISTRY.unregister(name)


def runtime_info(name: str) -> RuntimeInfo:
    """The registered runtime of this name; UsageError naming the valid ones otherwise."""
    info = RUNTIMES.get(name)
    if info is None:
        raise UsageError(f"unknown runtime {name!r}; use one of {', '.join(RUNTIMES)}")
    return info


def artifact_kinds() -> tuple[ArtifactKind, ...]:
    """Every artifact kind some registered runtime opens, once each, in registration order."""
    kinds = {k.name: k for info in RUNTIMES.values() for k in info.artifact_kinds}
    return tuple(kinds.values())


def runtimes_for(kind: str) -> tuple[str, ...]:
    """The runtimes that can run an artifact of this kind (see artifact_kind); the first is the
    default."""
    return tuple(
        n for n, info in RUNTIMES.items() if any(k.name == kind for k in info.artifact_kinds)
    )


def names_text(names: tuple[str, ...] | None = None) -> str:
    """'litert, tflite-runtime, tensorflow or jax': names joined for a message or a help text
    (the registered runtimes' when none are given)."""
    names = tuple(RUNTIMES) if names is None else names
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def kinds_text() -> str:
    """'a .tflite file, … or a .jaxexport file': what a model path may be, for a message."""
    return names_text(tuple(kind.description for kind in artifact_kinds()))


TFLITE = ArtifactKind("tflite", "a .tflite file", suffixes=(".tflite",), magic=(4, b"TFL3"))
SAVEDMODEL = ArtifactKind(
    "savedmodel",
    "a SavedModel directory",
    directory_markers=("saved_model.pb", "saved_model.pbtxt"),
)
KERAS = ArtifactKind("keras", "a .keras/.h5 file", suffixes=(".keras", ".h5", ".hdf5"))
JAXEXPORT = ArtifactKind("jaxexport", "a .jaxexport file", suffixes=(".jaxexport",))

_TFLITE_FACTORY = "accelbench.runtimes.tflite:open_tflite"

# The first runtime of a kind is its default. "tensorflow" on a .tflite means TensorFlow's own
# tf.lite interpreter; a .tflite opened with no runtime named tries LiteRT, tflite-runtime, then
# tf.lite (edge.INTERPRETERS), whichever is installed.
_REGISTRY: Registry[RuntimeInfo] = Registry(
    "runtime",
    RuntimeInfo,
    RUNTIMES_ENV,
    (
        RuntimeInfo(
            "litert",
            artifact_kinds=(TFLITE,),
            module="ai_edge_litert",
            packages=("ai-edge-litert",),
            factory=_TFLITE_FACTORY,
        ),
        RuntimeInfo(
            "tflite-runtime",
            artifact_kinds=(TFLITE,),
            module="tflite_runtime",
            packages=("tflite-runtime",),
            factory=_TFLITE_FACTORY,
        ),
        RuntimeInfo(
            "tensorflow",
            artifact_kinds=(TFLITE, SAVEDMODEL, KERAS),
            module="tensorflow",
            packages=("tensorflow", "tf-keras"),
            factory="accelbench.runtimes.tensorflow_runtime:open_tensorflow",
        ),
        RuntimeInfo(
            "jax",
            artifact_kinds=(JAXEXPORT,),
            module="jax",
            packages=("jax", "jaxlib"),
            factory="accelbench.runtimes.jax_runtime:open_jax",
        ),
    ),
    reserved=RESERVED_NAMES,
    check=_check_artifact_kinds,
)
RUNTIMES: Mapping[str, RuntimeInfo] = _REGISTRY
