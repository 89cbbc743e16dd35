"""The base every API schema builds on.

Every value a client sends is bounded before it reaches the database: strings by `max_length`
on each field and, here, by refusing NUL (PostgreSQL text and JSONB cannot store it) in any
string of any field, lists and objects included; numbers by range on each field (`INT32_MAX`
for integer columns); floats finite (`allow_inf_nan=False`: JSON has no NaN, JSONB refuses it).
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

INT32_MAX = 2**31 - 1


def no_nul(value: str) -> str:
    """Refuse a NUL character, which PostgreSQL text and JSONB cannot store."""
    if "\x00" in value:
        raise PydanticCustomError("no_nul", "must not contain a NUL character (\\u0000)")
    return value


def _strings_without_nul(value: Any, depth: int = 0) -> None:
    if isinstance(value, str):
        no_nul(value)
    elif isinstance(value, dict) and depth < 64:
        for key, item in value.items():
            _strings_without_nul(key, depth + 1)
            _strings_without_nul(item, depth + 1)
    elif isinstance(value, list | tuple) and depth < 64:
        for item in value:
            _strings_without_nul(item, depth + 1)


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        _strings_without_nul(value)
        return value
