"""The one trust boundary: what a file may make lit_mrl import and build.

Checkpoints, model YAMLs, exported encoders and ``fit --ckpt_path`` rebuild objects from
values in a file, through jsonargparse. jsonargparse imports a class wherever the target
type allows one: a ``class_path`` key, but also a *bare dotted string* in an argument
typed as a class or a callable (``encoder: "pkg.Enc"``), and a ``class_path`` dict in an
argument typed ``Any``. Importing a module runs its code, so :func:`check_config` walks a
value **with the type signature of the class it will build**, and checks every position
where a class may be named against the allow-list before anything outside it is
imported:

- trusted: classes defined in lit_mrl, torch optimizers and LR schedulers, ``torch.nn``
  modules, and exact class paths the caller allows (``allowed``);
- a named class must also fit the position (``encoder: nn.Module`` refuses a scheduler);
- keys the class does not take are refused ("did you mean ..."), so a typo is one line
  instead of a parser dump.

Only modules under a trusted prefix are ever imported here (lit_mrl's own and torch's),
and only to read the signatures of classes that are then built.
"""

from __future__ import annotations

import collections.abc
import difflib
import enum
import importlib
import inspect
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

# module prefix -> base class the named class must derive from (checked after import)
TRUSTED_PREFIXES: dict[str, str] = {
    "lit_mrl.": "object",
    "torch.optim.lr_scheduler.": "torch.optim.lr_scheduler.LRScheduler",
    "torch.optim.": "torch.optim.Optimizer",
    "torch.nn.": "torch.nn.Module",
}
# keys of a class spec as jsonargparse reads it
SPEC_KEYS = ("class_path", "init_args", "dict_kwargs")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_TYPES = (str, bytes, int, float, complex, bool, type(None), PurePath, os.PathLike,
                enum.Enum, dict, list, tuple, set, frozenset)  # fmt: skip
_MAX_DEPTH = 64


class UntrustedCheckpointError(ValueError):
    """A file names a class that lit_mrl will not import or build, or a value it cannot take."""


def import_class(class_path: str) -> Any:
    """The object a dotted ``class_path`` names (imports its module: trusted paths only)."""
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def _trusted_base(class_path: str, allowed: Sequence[str]) -> str | None:
    if class_path in allowed:
        return "object"
    for prefix, base in TRUSTED_PREFIXES.items():
        if class_path.startswith(prefix):
            return base
    return None


class _Walk:
    """One check of one file: where messages point, what the caller allows."""

    def __init__(self, source: str | Path, allowed: Sequence[str], what: str) -> None:
        self.source, self.allowed, self.what = source, tuple(allowed), what

    def fail(self, where: str, message: str) -> typing.NoReturn:
        raise UntrustedCheckpointError(f"{self.source}: {where or 'the top level'} {message}")

    def refusal(self, where: str, class_path: str) -> typing.NoReturn:
        self.fail(
            where,
            f"names {class_path!r}, which lit_mrl does not build from {self.what} (only "
            "lit_mrl classes, torch optimizers, LR schedulers and torch.nn modules); if you "
            "trust this file, allow the class by name (allowed_classes / --allow_class)",
        )

    def resolve(self, where: str, name: Any, bases: tuple[type, ...]) -> Any:
        """Check a class name at ``where`` and return the (trusted) object it names."""
        if not isinstance(name, str):
            self.fail(where, f"is {name!r}, not a dotted class path")
        if _NAME.fullmatch(name):  # a short name: jsonargparse looks among known subclasses
            name = self.short_name(where, name, bases)
        if not _DOTTED.fullmatch(name):
            self.fail(where, f"is {name!r}, not a dotted class path")
        base = _trusted_base(name, self.allowed)
        if base is None:
            self.refusal(where, name)  # refused before its module is imported
        try:
            target = import_class(name)
        except (ImportError, AttributeError, ValueError) as err:
            self.fail(where, f"names {name!r}, which does not exist ({err})")
        if base == "object" and name not in self.allowed:
            module = getattr(target, "__module__", "") or ""
            if module.split(".")[0] != "lit_mrl":  # e.g. lit_mrl.x.Popen imported there
                self.refusal(where, name)
        if base != "object" and not (
            isinstance(target, type) and issubclass(target, import_class(base))
        ):
            self.refusal(where, name)
        if not callable(target):
            self.refusal(where, name)
        classes = [b for b in bases if b is not object]
        if classes and not (isinstance(target, type) and issubclass(target, tuple(classes))):
            wanted = " or ".join(f"{b.__module__}.{b.__qualname__}" for b in classes)
            self.fail(where, f"names {name!r}, which is not a {wanted}")
        return target

    def short_name(self, where: str, name: str, bases: tuple[type, ...]) -> str:
        found = {
            f"{c.__module__}.{c.__qualname__}"
            for base in bases
            if base is not object
            for c in _subclasses(base)
            if c.__name__ == name and _trusted_base(f"{c.__module__}.", ()) is not None
        }
        if len(found) != 1:
            why = "ambiguous" if found else "not a known class"
            self.fail(where, f"is {name!r}, {why}: give its full dotted class path")
        return found.pop()

    def spec(self, where: str, value: Any, bases: tuple[type, ...], depth: int) -> None:
        """A value at a position typed as a class (or callable)."""
        if isinstance(value, str):
            self.resolve(where, value, bases)
            return
        if not isinstance(value, dict):
            return  # a number, list, ...: not a class reference (jsonargparse types it)
        if "class_path" not in value:
            concrete = [b for b in bases if b is not object and not inspect.isabstract(b)]
            if len(concrete) == 1:  # init args of the annotated class itself
                self.arguments(where, value, concrete[0], depth)
            else:
                self.loose(where, value, depth)
            return
        unknown = sorted(set(value) - set(SPEC_KEYS))
        if unknown:
            self.fail(
                _join(where, unknown[0]), f"is not a key of a class spec ({', '.join(SPEC_KEYS)})"
            )
        target = self.resolve(_join(where, "class_path"), value["class_path"], bases)
        for key in ("init_args", "dict_kwargs"):
            args = value.get(key)
            if args is None:
                continue
            if not isinstance(args, dict):
                self.fail(_join(where, key), "is not a mapping")
            self.arguments(_join(where, key), args, target, depth + 1)

    def arguments(self, where: str, args: dict, target: Any, depth: int) -> None:
        """Init arguments of ``target``, each checked with its parameter's type."""
        if depth > _MAX_DEPTH:
            self.fail(where, f"nests deeper than {_MAX_DEPTH} levels")
        params, open_kwargs = _parameters(target)
        for key, item in args.items():
            at = _join(where, key)
            if not isinstance(key, str):
                self.fail(where, f"has a key {key!r} that is not a name")
            if key in params:
                self.typed(at, item, params[key], depth + 1)
            elif open_kwargs:
                self.loose(at, item, depth + 1)
            else:
                name = getattr(target, "__qualname__", str(target))
                close = difflib.get_close_matches(key, sorted(params), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(at, f"is not an argument of {name}{hint}")

    def typed(self, where: str, value: Any, annotation: Any, depth: int) -> None:
        """A value to be parsed as ``annotation``."""
        if depth > _MAX_DEPTH:
            self.fail(where, f"nests deeper than {_MAX_DEPTH} levels")
        kinds = _kinds(annotation)
        if kinds.classes:
            self.spec(where, value, tuple(kinds.classes), depth)
        elif isinstance(value, dict) and "class_path" in value:
            self.spec(where, value, (object,), depth)  # Any, dict, ...: jsonargparse may build it
        elif isinstance(value, dict):
            for key, item in value.items():
                self.typed(_join(where, key), item, kinds.values, depth + 1)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self.typed(f"{where}[{index}]", item, kinds.items, depth + 1)
        elif kinds.unknown and isinstance(value, str) and _DOTTED.fullmatch(value):
            self.resolve(where, value, (object,))  # unresolvable hints: assume a class

    def loose(self, where: str, value: Any, depth: int) -> None:
        """A value of unknown type: any ``class_path`` in it is checked."""
        self.typed(where, value, Any, depth)


class _Kinds(typing.NamedTuple):
    classes: list[type]  # a str or class_path dict here names one of these
    items: Any  # type of list/tuple items
    values: Any  # type of dict values
    unknown: bool  # the hint could not be resolved


def _kinds(annotation: Any) -> _Kinds:
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return _Kinds([], Any, Any, False)
    if isinstance(annotation, str):  # a hint that could not be resolved
        return _Kinds([], Any, Any, True)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_kinds(a) for a in args]
        items = [p.items for p in parts if p.items is not Any]
        values = [p.values for p in parts if p.values is not Any]
        return _Kinds(
            [c for p in parts for c in p.classes],
            items[0] if len(items) == 1 else Any,
            values[0] if len(values) == 1 else Any,
            any(p.unknown for p in parts),
        )
    if origin is typing.Annotated:
        return _kinds(args[0])
    if origin is typing.Literal:
        return _Kinds([], Any, Any, False)
    if origin is collections.abc.Callable and len(args) == 2:  # Callable[[...], Returned]
        returned = _kinds(args[1]).classes  # e.g. OptimizerCallable: an Optimizer class
        return _Kinds(returned or [object], Any, Any, False)
    if origin in (type, collections.abc.Callable) or annotation in (type, collections.abc.Callable):
        return _Kinds([object], Any, Any, False)  # a class or callable: names must be trusted
    if origin is not None and inspect.isclass(origin):
        if issubclass(origin, collections.abc.Mapping):
            return _Kinds([], Any, args[1] if len(args) == 2 else Any, False)
        if issubclass(origin, (list, tuple, set, frozenset, collections.abc.Sequence)):
            item = args[0] if args and (len(args) == 1 or args[-1] is Ellipsis) else Any
            return _Kinds([], item, Any, False)
        annotation = origin
    if inspect.isclass(annotation):
        if issubclass(annotation, _PLAIN_TYPES):
            return _Kinds([], Any, Any, False)
        return _Kinds([annotation], Any, Any, False)
    return _Kinds([], Any, Any, True)


def _subclasses(base: type) -> list[type]:
    found, todo = [], [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def _parameters(target: Any) -> tuple[dict[str, Any], bool]:
    """``{name: annotation}`` of what building ``target`` takes, and whether it takes **kwargs.

    Like jsonargparse: a class's ``__init__`` (the first parameter of a callable class
    such as an optimizer is filled by the caller, not the file), following ``**kwargs``
    into base classes.
    """
    params: dict[str, Any] = {}
    open_kwargs = True
    classes = target.__mro__ if isinstance(target, type) else (target,)
    for cls in classes:
        function = cls.__init__ if isinstance(target, type) else cls
        if function is object.__init__:
            break
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            break
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except Exception:  # a hint naming something not importable: treat as unknown
            hints = {}
        open_kwargs = False
        for name, param in signature.parameters.items():
            if param.kind is param.VAR_KEYWORD:
                open_kwargs = True
            elif param.kind is not param.VAR_POSITIONAL and name != "self":
                params.setdefault(name, hints.get(name, param.annotation))
        if not open_kwargs or not isinstance(target, type):
            break
    return params, open_kwargs


def check_config(
    class_path: str,
    init_args: dict[str, Any],
    source: str | Path,
    allowed: Sequence[str] = (),
    base: type | None = None,
    where: str = "hyper_parameters",
    what: str = "a checkpoint",
    class_field: str = "_class_path",
) -> type:
    """Check what a file asks to build, before anything it names is imported or built.

    Args:
        class_path: the dotted class the file builds (a checkpoint's ``_class_path``).
        init_args: its arguments as stored in the file.
        source: the file, for messages.
        allowed: exact class paths the caller trusts besides lit_mrl's and torch's.
        base: the class ``class_path`` must derive from (e.g. ``LightningModule``).
        where: the field of ``class_path``'s arguments, for messages.
        what: what the file is, for messages (``"a checkpoint"``, ``"a model file"``).
        class_field: the key that holds ``class_path`` in the file, for messages.

    Returns:
        The class ``class_path`` names.

    Raises:
        UntrustedCheckpointError: naming the file, the field and the class or key.
    """
    walk = _Walk(source, allowed, what)
    if not isinstance(init_args, dict):
        walk.fail(where, "is not a mapping of arguments")
    target = walk.resolve(_join(where, class_field), class_path, (base or object,))
    walk.arguments(where, init_args, target, 0)
    return target


def check_value(
    value: Any,
    annotation: Any,
    source: str | Path,
    allowed: Sequence[str] = (),
    where: str = "",
    what: str = "a model file",
) -> None:
    """Check a value to be parsed as ``annotation`` (e.g. a model file's ``AudioEncoder`` spec).

    Raises:
        UntrustedCheckpointError: naming the file, the field and the class or key.
    """
    _Walk(source, allowed, what).typed(where, value, annotation, 0)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
