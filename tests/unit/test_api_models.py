"""The client API's request model and the domain's validator accept exactly the same customer fields (they share
the patterns, read by two regex engines), and a refusal names the field by its JSON name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from payment.api import models
from payment.api.problems import ApiProblem
from payment.billing import customers
from payment.errors import ValidationError

# the characters where Python's, Rust's and ECMAScript's ideas of space and line end differ, and a few ordinary ones
TRICKY = "\t\n\x0b\x0c\r\x1c\x1f \x7f\x85\xa0\u1680\u2000\u200b\u2028\u202f\u3000\ufeff\ud800@._-aZ9é"
values = st.text(alphabet=st.sampled_from(TRICKY), max_size=8) | st.text(max_size=8)


def model_accepts(body: dict[str, Any]) -> bool:
    try:
        models.SessionRequest.parse(body)
    except ApiProblem:
        return False
    return True


def domain_accepts(data: customers.CustomerInput) -> bool:
    try:
        data.validated()
    except ValidationError:
        return False
    return True


@given(external=values, email=values, name=values, locale=values)
@example(external="user\n", email="a@b.c", name="n", locale="en")
@example(external="\ufeff", email="a@b.c", name="n", locale="en")
@example(external="u", email="a\x85@b.c", name="n\x7f", locale="th_TH")
@settings(max_examples=150, deadline=None)
def test_the_model_and_the_domain_agree_on_every_customer_field(
    external: str, email: str, name: str, locale: str
) -> None:
    for field, value in (("externalUserId", external), ("email", email), ("name", name), ("locale", locale)):
        body = {"externalUserId": "user-1", "appSlug": "vega", field: value}
        data = customers.CustomerInput(
            external_user_id=body["externalUserId"],
            email=body.get("email"),
            name=body.get("name"),
            locale=body.get("locale"),
        )
        assert model_accepts(body) == domain_accepts(data), (field, value)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"appSlug": "vega"}, "externalUserId", "externalUserId is required."),
        ({"externalUserId": 42, "appSlug": "vega"}, "externalUserId", "externalUserId must be a string."),
        ({"externalUserId": "u", "appSlug": ""}, "appSlug", "appSlug must not be empty."),
        ({"externalUserId": "u", "appSlug": "v", "email": "x"}, "email", customers.EMAIL_RULE),
        ({"externalUserId": "u", "appSlug": "v", "name": "n" * 1025}, "name", "name must be at most 1024 characters."),
        ({"externalUserId": "\ud800", "appSlug": "v"}, "externalUserId", "externalUserId is not valid Unicode text."),
        ([], "body", "body must be a JSON object."),
    ],
)
def test_a_refusal_names_the_field_by_its_json_name(body: Any, field: str, message: str) -> None:
    with pytest.raises(ApiProblem) as refused:
        models.SessionRequest.parse(body)
    assert (refused.value.status_code, refused.value.code) == (422, "validation_error")
    assert [(e.field, e.message) for e in refused.value.errors] == [(field, message)]
    assert refused.value.message == message


def test_every_bad_field_is_listed() -> None:
    with pytest.raises(ApiProblem) as refused:
        models.SessionRequest.parse({"externalUserId": " ", "email": "x", "locale": "thai language"})
    assert [e.field for e in refused.value.errors] == ["externalUserId", "appSlug", "email", "locale"]
