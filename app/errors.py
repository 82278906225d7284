"""Errors about user input that carry where the problem is (a JSON-pointer-like path),
and the one for input over a configured limit, which also names the setting that bounds it."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: `loc` says where (e.g. ``["body", "dependencies", 2]``), `msg` what."""

    def __init__(self, loc: list[str | int], msg: str, value: object = None) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.value = value

    def to_detail(self) -> dict[str, object]:
        detail: dict[str, object] = {"loc": self.loc, "msg": self.msg, "type": "value_error"}
        if self.value is not None:
            detail["input"] = self.value
        return detail


def setting_name(field: str) -> str:
    """The variable that sets `field`: ``max_targets`` -> ``CONDARCHIVE_MAX_TARGETS``."""
    return f"CONDARCHIVE_{field.upper()}"


class LimitError(InputError):
    """A 422 for input over a configured limit; `ctx` carries the setting and its value."""

    def __init__(self, loc: list[str | int], msg: str, field: str, value: int) -> None:
        super().__init__(loc, msg)
        self.setting = setting_name(field)
        self.limit = value

    def to_detail(self) -> dict[str, object]:
        return {
            "loc": self.loc,
            "msg": self.msg,
            "type": "limit_exceeded",
            "ctx": {"setting": self.setting, "limit": self.limit},
        }
