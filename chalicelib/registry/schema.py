"""Edge validation of registrations (``PUT /v1/posts/{id}``, ``PUT /v1/players/{key}``, the
records of ``POST /v1/registry/batch``): a JSON object in, validated details or an error
with an ``invalid_{field}`` code out.

The models run the registry's own checks (``registry.posts``, ``players.directory``), so a
record is held to the same rules whichever route brings it. Unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from chalicelib.errors import BadRequest, describe
from chalicelib.model import parse_post_id
from chalicelib.players.directory import (
    PlayerDetails,
    check_country,
    check_name,
    check_player_key,
    check_timezone,
)
from chalicelib.registry.posts import (
    PostDetails,
    check_art_url,
    check_flag,
    check_owner_id,
    check_sqid,
    check_title,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# A field's name as its error code says it (``invalid_{...}``).
_CODE_NAMES = {"id": "post_id", "key": "player_key"}


def _checked(check: Callable[[Any], T]) -> BeforeValidator:
    """A registry check (which raises ``BadRequest``) as a pydantic validator whose error
    type is the check's code."""

    def validate(value: Any) -> T:
        try:
            return check(value)
        except BadRequest as error:
            raise PydanticCustomError(error.code, "{message}", {"message": error.message}) from None

    return BeforeValidator(validate)


OwnerId = Annotated[str, _checked(check_owner_id)]
Country = Annotated[str | None, _checked(check_country)]
Timezone = Annotated[str | None, _checked(check_timezone)]
Name = Annotated[str | None, _checked(check_name)]
Sqid = Annotated[str | None, _checked(check_sqid)]
Title = Annotated[str | None, _checked(check_title)]
ArtUrl = Annotated[str | None, _checked(check_art_url)]
Visible = Annotated[bool, _checked(lambda v: check_flag(v, "visible", True))]
Deleted = Annotated[bool, _checked(lambda v: check_flag(v, "deleted", False))]
Revoked = Annotated[bool, _checked(lambda v: check_flag(v, "revoked", False))]
_CONFIG = ConfigDict(extra="ignore", frozen=True)


class PostFields(BaseModel):
    """The body of ``PUT /v1/posts/{post_id}``."""

    model_config = _CONFIG

    owner_id: OwnerId
    sqid: Sqid = None
    title: Title = None
    art_url: ArtUrl = None
    visible: Visible = True
    deleted: Deleted = False

    def details(self) -> PostDetails:
        return PostDetails(
            self.owner_id, self.sqid, self.title, self.art_url, self.visible, self.deleted
        )


class PostRecordIn(PostFields):
    """A post record of ``POST /v1/registry/batch``: ``id`` and the fields of a PUT."""

    id: Annotated[int, _checked(parse_post_id)]


class PlayerFields(BaseModel):
    """The body of ``PUT /v1/players/{player_key}``."""

    model_config = _CONFIG

    owner_id: OwnerId
    name: Name = None
    country: Country = None
    timezone: Timezone = None
    revoked: Revoked = False

    def details(self) -> PlayerDetails:
        return PlayerDetails(self.owner_id, self.country, self.timezone, self.name, self.revoked)


class PlayerRecordIn(PlayerFields):
    """A player record of ``POST /v1/registry/batch``: ``key`` and the fields of a PUT."""

    key: Annotated[str, _checked(check_player_key)]


def error_code(error: ValidationError) -> str:
    """The code of a record's first problem: the check's own (``invalid_art_url``...), else
    ``invalid_{field}``, or ``invalid_record`` when the record is not a JSON object."""
    problem = error.errors()[0]
    if problem["type"].startswith("invalid_"):
        return str(problem["type"])
    if not problem["loc"]:
        return "invalid_record"
    name = str(problem["loc"][0])
    return f"invalid_{_CODE_NAMES.get(name, name)}"


def validated(model: type[M], data: object) -> M:
    """``data`` as ``model``, or ``BadRequest`` (code from ``error_code``, every problem in
    the message)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadRequest(_message(error), code=error_code(error)) from None
    except RecursionError:  # a value nested deeper than the validator goes
        raise BadRequest("the record is nested too deeply", code="invalid_record") from None


def _message(error: ValidationError) -> str:
    if not error.errors()[0]["loc"]:
        return "a record must be a JSON object"
    return describe(error)

