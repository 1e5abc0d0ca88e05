"""fast_init: the same instances as a frozen dataclass's own __init__, made cheaper."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from b2c_monitoring.contract import JobState
from b2c_monitoring.frozen_init import fast_init
from b2c_monitoring.processors.jobs import JobChange


def _record_class() -> Any:
    """A frozen dataclass with a plain field, a default, a factory and a field left
    out of comparisons: one made anew for each use, so ``fast_init`` changes only its own."""

    @dataclasses.dataclass(frozen=True)
    class Record:
        a: int
        b: str = "b"
        c: list[int] = dataclasses.field(default_factory=list)
        d: int = dataclasses.field(default=4, compare=False)

    return Record


Plain = _record_class()
Fast = fast_init(_record_class())


def _fields(instance: object) -> dict[str, object]:
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "x"), {}), ((1,), {"c": [2], "d": 5}), ((), {"a": 3, "b": "y"})],
)
def test_the_same_fields_as_the_dataclass_own_init(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    assert _fields(Fast(*args, **kwargs)) == _fields(Plain(*args, **kwargs))


def test_the_same_signature_and_errors_as_the_dataclass_own_init() -> None:
    assert str(inspect.signature(Fast)) == str(inspect.signature(Plain))
    wrong: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((), {}),
        ((1,), {"e": 2}),
        ((1, "b", [], 4, 5), {}),
        ((1,), {"a": 1}),
    ]
    for args, kwargs in wrong:
        with pytest.raises(TypeError):
            Plain(*args, **kwargs)
        with pytest.raises(TypeError):
            Fast(*args, **kwargs)


def test_a_factory_runs_for_each_instance_and_a_given_value_is_kept() -> None:
    first, second = Fast(1), Fast(1)
    assert first.c == []
    assert first.c is not second.c
    given = [7]
    assert Fast(1, c=given).c is given


def test_instances_stay_frozen_comparable_and_hashable() -> None:
    fast = Fast(1, "b", [], d=9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2
    assert fast == Fast(1, "b", [], d=1)  # d is not compared
    assert hash(JobChange("t", "j", JobState.RUNNING, 30, datetime(2026, 1, 1, tzinfo=UTC), None))


def test_refuses_a_class_whose_init_it_would_change_the_meaning_of() -> None:
    @dataclasses.dataclass
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    @dataclasses.dataclass(frozen=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True)
    class KeywordOnly:
        a: int = dataclasses.field(kw_only=True)

    for cls in (Mutable, Slotted, PostInit, KeywordOnly):
        with pytest.raises(TypeError):
            fast_init(cls)
