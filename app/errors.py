"""Errors about user input that carry where the problem is (a JSON-pointer-like path)."""

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
