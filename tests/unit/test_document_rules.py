"""Pure rules of tax documents: tax id check digit, VAT inside a total, numbering format."""

from __future__ import annotations

import pytest

from payment.documents.rules import check_branch_code, check_tax_id, document_number, split_vat, tax_id_check_digit
from payment.errors import ValidationError

VALID_TAX_ID = "0105553123452"


def test_a_valid_tax_id_passes_with_spaces_and_dashes() -> None:
    assert check_tax_id("0-1055-53123-45-2") == VALID_TAX_ID
    # 0105553123452: 0*13 + 1*12 + 0*11 + 5*10 + 5*9 + 5*8 + 3*7 + 1*6 + 2*5 + 3*4 + 4*3 + 5*2 = 218;
    # 218 mod 11 = 9; (11 - 9) mod 10 = 2
    assert tax_id_check_digit("010555312345") == 2


@pytest.mark.parametrize("raw", ["0105553123451", "0105553123453", "010555312345", "01055531234521", "abcdefghijklm"])
def test_a_wrong_check_digit_or_length_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_tax_id(raw)
    assert caught.value.field == "tax_id"


def test_branch_codes() -> None:
    assert check_branch_code("") == "00000"
    assert check_branch_code("1") == "00001"
    with pytest.raises(ValidationError):
        check_branch_code("12a")


@pytest.mark.parametrize("total", [0, 1, 7, 107, 29900, 10_000_000_01, 99])
def test_vat_and_net_add_up_to_the_total(total: int) -> None:
    net, vat = split_vat(total, 700)
    assert net + vat == total
    assert abs(vat * 10000 - net * 700) <= 10000  # within one minor unit of 7% of the net


def test_vat_of_a_round_price() -> None:
    assert split_vat(10700, 700) == (10000, 700)
    assert split_vat(29900, 700) == (27944, 1956)
    assert split_vat(29900, 0) == (29900, 0)


def test_numbers_carry_series_year_and_sequence() -> None:
    assert document_number("TI", 2026, 1) == "TI2026-000001"
    assert document_number("CN", 2027, 123456) == "CN2027-123456"
