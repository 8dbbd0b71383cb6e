"""The client API's contract in one place: pydantic models that check every input and generate the OpenAPI schemas.

`payment/api/openapi.py` publishes `components.schemas` from `SCHEMAS` below, so the document and the checks cannot
drift. Each field's rule comes from the domain that owns it (`payment/billing/customers.py` for a customer's fields);
`ApiModel.parse` turns pydantic's errors into the API's one 422 shape (`validation_error`, `errors` naming each field
by its JSON name, a message written for the client).

To add a field to a response: declare it on the model (snake_case; its JSON name is the camelCase alias) with a
`description`, and set it where the adapter builds the response. Response models forbid unknown keys, so a value
the adapter sends without declaring it fails the tests instead of slipping past the document.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import ErrorDetails, core_schema

from payment.api.problems import ApiProblem, FieldError
from payment.billing import customers


@dataclass(frozen=True)
class Rule:
    """What a client is told when a field breaks its pattern (pydantic's own text names the regex)."""

    message: str


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# RFC 3339 in UTC with a Z, as the OpenAPI `date-time` format expects
UtcDateTime = Annotated[datetime, AfterValidator(_utc)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase JSON names, strict types (a number is not a string)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, strict=True, frozen=True)

    @classmethod
    def parse(cls, data: Any) -> Self:
        """The model from a decoded JSON value, or an ApiProblem 422 naming every bad field."""
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            errors = [FieldError(_field_name(e), _message(cls, e)) for e in exc.errors(include_url=False)]
            raise ApiProblem(422, "validation_error", errors[0].message, errors=errors) from None

    def json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class ResponseModel(ApiModel):
    """A response: its keys are all declared (the document says `additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid", strict=False)


def _field_name(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


def _message(model: type[BaseModel], error: ErrorDetails) -> str:
    name = _field_name(error)
    ctx = error.get("ctx", {})
    match error["type"]:
        case "missing":
            return f"{name} is required."
        case "string_type":
            return f"{name} must be a string."
        case "string_unicode":
            return f"{name} is not valid Unicode text."
        case "string_too_long":
            return f"{name} must be at most {ctx['max_length']} characters."
        case "string_too_short" if ctx.get("min_length") == 1:
            return f"{name} must not be empty."
        case "string_too_short":
            return f"{name} must be at least {ctx['min_length']} characters."
        case "string_pattern_mismatch":
            field = next((f for f in model.model_fields.values() if f.alias == error["loc"][0]), None)
            rules = [m for m in field.metadata if isinstance(m, Rule)] if field else []
            return rules[0].message if rules else f"{name} is not in the expected form."
        case "model_type" | "model_attributes_type" | "dict_type":
            return f"{name} must be a JSON object."
        case _:
            return f"{name} is invalid."


# --- requests ---------------------------------------------------------------------------------------------------


class SessionRequest(ApiModel):
    """POST /sessions: who the user is (created on first use) and which app opens the billing page."""

    external_user_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=customers.EXTERNAL_ID_MAX,
            pattern=customers.NOT_BLANK_PATTERN,
            description="Your app's stable id for the user (the same across Aquoris apps).",
            examples=["user-42"],
        ),
        Rule(customers.EXTERNAL_ID_RULE),
    ]
    # any text: a slug that names no app answers 404 app_not_found, not 422
    app_slug: Annotated[
        str,
        Field(min_length=1, max_length=128, description="Slug of the app the API key belongs to.", examples=["vega"]),
    ]
    email: Annotated[
        str | None,
        Field(max_length=customers.EMAIL_MAX, pattern=customers.EMAIL_PATTERN, examples=["ann@example.com"]),
        Rule(customers.EMAIL_RULE),
    ] = None
    name: Annotated[
        str | None,
        Field(max_length=customers.NAME_MAX, pattern=customers.TEXT_PATTERN),
        Rule(customers.TEXT_RULE.format(field="name")),
    ] = None
    locale: Annotated[
        str | None,
        Field(
            max_length=customers.LOCALE_MAX,
            pattern=customers.LOCALE_PATTERN,
            description="Language of the billing page (en, th; others fall back to English).",
            examples=["th"],
        ),
        Rule(customers.LOCALE_RULE),
    ] = None

    def customer(self) -> customers.CustomerInput:
        """The customer fields, normalised by the domain (the model has checked the domain's own patterns)."""
        return customers.CustomerInput(self.external_user_id, self.email, self.name, self.locale).normalized()


class CustomerPath(ApiModel):
    """The path of GET /customers/{externalUserId}/subscription."""

    external_user_id: Annotated[
        str,
        Field(min_length=1, max_length=customers.EXTERNAL_ID_MAX, pattern=customers.NOT_BLANK_PATTERN),
        Rule(customers.EXTERNAL_ID_RULE),
    ]


# --- responses --------------------------------------------------------------------------------------------------


class Session(ResponseModel):
    id: uuid.UUID
    url: Annotated[str, Field(description="Send the user here (single purpose).", json_schema_extra={"format": "uri"})]
    expires_at: UtcDateTime


class PlanRef(ResponseModel):
    slug: str
    name: str


class PendingChange(ResponseModel):
    """A plan change scheduled for the end of the period (a downgrade)."""

    plan: PlanRef
    effective_at: UtcDateTime


class Entitlement(ResponseModel):
    """What a user may use in an app now: the API's answer and the `entitlement.changed` webhook's data."""

    external_user_id: str
    app_slug: str
    plan: PlanRef
    status: Annotated[
        Literal["free", "active", "trialing", "past_due"],
        Field(
            description="`free` when there is no live paid subscription; `trialing` during a free trial (unlock the "
            "plan; see `trialEndsAt`); `past_due` while Stripe retries a failed renewal (keep access, ask the user to "
            "update the card)."
        ),
    ]
    source: Literal["free", "stripe", "manual", "grant"]
    paid: Annotated[bool, Field(description="true when a live paid subscription unlocks the plan.")]
    current_period_end: UtcDateTime | None
    cancel_at_period_end: bool
    cancels_at: Annotated[
        UtcDateTime | None,
        Field(
            description="When a subscription set to end stops (Stripe's cancel_at, or the period end); null while "
            "it renews."
        ),
    ]
    cancel_at: Annotated[
        UtcDateTime | None,
        Field(
            description="The same instant as `cancelsAt` (Stripe's name for it); null while the subscription renews."
        ),
    ]
    pending_change: Annotated[
        PendingChange | None,
        Field(
            description="A plan change the user scheduled for the end of the period (a downgrade): the plan it moves "
            "to and when. Keep unlocking the current `plan` until then; null when none."
        ),
    ]
    access_state: Annotated[
        Literal["full", "grace", "blocked"],
        Field(
            description="Unlock the plan's features on `full` and `grace`, not on `blocked`. `grace`: a renewal "
            "failed and the user keeps access until `graceEndsAt` while Stripe retries; `blocked`: the grace period "
            "is over and the invoice is still unpaid (apps whose policy is `free` see the free plan with `full` "
            "instead)."
        ),
    ]
    grace_ends_at: Annotated[
        UtcDateTime | None,
        Field(
            description="When `grace` turns into `blocked`; null unless the state is `grace` or `blocked` (and while "
            "the failed invoice is not yet known)."
        ),
    ]
    trial_ends_at: Annotated[
        UtcDateTime | None,
        Field(
            description="When the free trial ends, while `status` is `trialing`; null otherwise. With a card the plan "
            "then renews as paid; without one it ends (or pauses) and the answer turns to the free plan."
        ),
    ]


ERROR_CODES: dict[int, list[str]] = {
    400: ["invalid_json", "bad_request"],  # bad_request: a NUL character in the query string
    401: ["missing_api_key", "invalid_api_key"],
    403: ["app_mismatch"],
    404: ["app_not_found", "not_found"],  # not_found: a path no route matches (Starlette's own 404)
    405: ["method_not_allowed"],  # a method the path does not take (Starlette's own 405)
    413: ["payload_too_large"],
    415: ["unsupported_media_type"],
    422: ["validation_error"],
    503: ["unavailable"],  # the database is unreachable or every pooled connection busy; see Retry-After
}


class ProblemFieldError(ResponseModel):
    field: str
    message: str


class Problem(ResponseModel):
    """RFC 9457 problem details with a stable `code`; on 422, `errors` names each bad field."""

    type: Annotated[str, Field(json_schema_extra={"format": "uri"})]
    title: str
    status: int
    detail: str
    code: Annotated[
        str, Field(json_schema_extra={"enum": sorted({c for codes in ERROR_CODES.values() for c in codes})})
    ]
    errors: list[ProblemFieldError] = Field(default_factory=list)


# --- the schemas for the document -------------------------------------------------------------------------------


class _Schemas(GenerateJsonSchema):
    """JSON Schema as the document has always spelled it: no generated titles on properties, and an optional
    scalar as `type: [T, "null"]` (so its pattern and bounds sit beside the type, where clients look)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if isinstance(inner.get("type"), str) and "$ref" not in inner:
            return {**inner, "type": [inner["type"], "null"]}
        return super().nullable_schema(schema)


REQUESTS: tuple[type[ApiModel], ...] = (SessionRequest,)
RESPONSES: tuple[type[ApiModel], ...] = (Session, Entitlement, Problem)


def schemas() -> dict[str, Any]:
    """`components.schemas` of the OpenAPI document: requests as they are checked, responses as they are sent."""
    _, top = models_json_schema(
        [(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in RESPONSES],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Schemas,
    )
    defs: dict[str, Any] = top["$defs"]
    return defs


def parameter_schema(model: type[ApiModel], name: str) -> dict[str, Any]:
    """The schema of one path or query parameter, as the model checks it."""
    schema: dict[str, Any] = model.model_json_schema(by_alias=True, schema_generator=_Schemas)["properties"][name]
    return schema


SCHEMAS = schemas()
