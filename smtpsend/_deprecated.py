"""Old spellings kept working for one release, with a DeprecationWarning.

- :func:`keyword_only`: options that used to be accepted positionally and
  are keyword-only now (``connect(server, port)`` -> ``connect(server,
  port=...)``). Type checkers see the keyword-only signature; at run time
  the old positional call still works and warns.
- :func:`renamed`: a keyword that has a new name (``implicit_tls=`` ->
  ``tlsimport=``).

Both say in the warning what to write instead, and point at the caller's
line (``stacklevel``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, TypeVar, cast

__all__ = ["keyword_only", "renamed", "warn"]

F = TypeVar("F", bound=Callable[..., Any])


def warn(message: str, stacklevel: int = 3) -> None:
    """A DeprecationWarning pointing at the caller of the caller."""
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)


def keyword_only(*names: str, leading: int = 1) -> Callable[[F], F]:
    """Let ``names`` -- keyword-only parameters of the decorated function
    that used to come positionally after its first ``leading`` arguments
    (``self`` counts) -- still be given positionally, in that order, with a
    DeprecationWarning. More positional arguments than that: TypeError, as
    Python would raise; a parameter given both ways: TypeError."""
    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > leading:
                extra = args[leading:]
                if len(extra) > len(names):
                    raise TypeError(f"{function.__qualname__}() takes {leading} positional argument"
                                    f"{'s' if leading != 1 else ''} but {len(args)} were given")
                given = names[:len(extra)]
                for name, value in zip(given, extra):
                    if name in kwargs:
                        raise TypeError(f"{function.__qualname__}() got multiple values for argument {name!r}")
                    kwargs[name] = value
                warn(f"{function.__qualname__}(): pass {', '.join(n + '=' for n in given)} by keyword; "
                     "the positional form is deprecated and will be removed")
                args = args[:leading]
            return function(*args, **kwargs)
        return cast(F, wrapper)
    return decorate


def renamed(where: str, old: str, new: str, value: Any, current: Any, current_default: Any) -> Any:
    """The value of option ``new`` (``current``, whose default is
    ``current_default``) when the caller may have given it by its old name
    ``old`` (``value``, None when not given): DeprecationWarning when the
    old name was used, TypeError when both were."""
    if value is None:
        return current
    if current != current_default:
        raise TypeError(f"{where}: {old}= is the old name of {new}=; give only {new}=")
    warn(f"{where}: {old}= is deprecated, use {new}=", stacklevel=4)
    return value
