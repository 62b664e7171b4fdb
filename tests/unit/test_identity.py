from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from domain.identity import (
    fingerprint,
    is_valid_bank_account,
    is_valid_resident_id,
    mask_account,
    mask_id,
    mask_phone,
    normalize_resident_id,
    resident_id_check_char,
)
from tests.unit.conftest import make_id, reference_check_char, valid_resident_ids

pytestmark = pytest.mark.unit

KNOWN_VALID = "11010519491231002X"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


class TestResidentId:
    def test_known_valid_example(self) -> None:
        assert is_valid_resident_id(KNOWN_VALID)

    def test_lower_case_x_accepted(self) -> None:
        assert is_valid_resident_id(KNOWN_VALID.lower())
        assert normalize_resident_id(" 11010519491231002x ") == KNOWN_VALID

    @pytest.mark.parametrize(
        ("first17", "check"),
        [("11010519491231002", "X"), ("62080219900101123", "1"), ("44030019851130002", "7")],
    )
    def test_check_char_agrees_with_reference(self, first17: str, check: str) -> None:
        assert reference_check_char(first17) == check
        assert resident_id_check_char(first17) == check
        assert is_valid_resident_id(first17 + check)

    @pytest.mark.parametrize(
        "value",
        [
            "110105194912310021",  # wrong check digit
            "11010519491231002Y",
            "1101051949123100X",  # 17 chars
            "11010519491231002X0",  # 19 chars
            " 11010519491231002X",
            "A1010519491231002X",
            "１１０１０５１９４９１２３１００２X",  # full-width digits
            "",
        ],
    )
    def test_malformed_rejected(self, value: str) -> None:
        assert not is_valid_resident_id(value)

    def test_impossible_birth_date_rejected_even_with_right_check_digit(self) -> None:
        first17 = "11010519490231002"  # 31 February
        assert not is_valid_resident_id(first17 + reference_check_char(first17))
        first17 = "11010520230229002"  # 2023 is not a leap year
        assert not is_valid_resident_id(first17 + reference_check_char(first17))
        first17 = "11010520240229002"
        assert is_valid_resident_id(first17 + reference_check_char(first17))

    def test_non_string_rejected(self) -> None:
        assert not is_valid_resident_id(None)  # type: ignore[arg-type]
        assert not is_valid_resident_id(110105194912310020)  # type: ignore[arg-type]

    @given(valid_resident_ids())
    def test_generated_ids_valid(self, value: str) -> None:
        assert is_valid_resident_id(value)
        assert resident_id_check_char(value[:17]) == reference_check_char(value[:17])

    @given(valid_resident_ids(), st.integers(min_value=0, max_value=17), st.data())
    def test_any_single_substitution_detected(
        self, value: str, pos: int, data: st.DataObject
    ) -> None:
        alphabet = "0123456789X" if pos == 17 else "0123456789"
        replacement = data.draw(st.sampled_from([c for c in alphabet if c != value[pos]]))
        changed = value[:pos] + replacement + value[pos + 1 :]
        assert not is_valid_resident_id(changed)

    def test_check_char_input_validated(self) -> None:
        with pytest.raises(ValueError, match="17"):
            resident_id_check_char("1234")


class TestBankAccount:
    @pytest.mark.parametrize(
        "value", ["622202123456", "6222 0212 3456 7890 123", "1" * 30, "6217000010001234567"]
    )
    def test_valid(self, value: str) -> None:
        assert is_valid_bank_account(value)

    @pytest.mark.parametrize(
        "value",
        ["62220212345", "1" * 31, "6222-0212-3456", "62220212345A", "", "６２２２０２１２３４５６"],
    )
    def test_invalid(self, value: str) -> None:
        assert not is_valid_bank_account(value)


class TestMasks:
    def test_mask_id_example(self) -> None:
        value = make_id("620802", date(1990, 1, 1), 123)
        assert mask_id(value) == "6208************" + value[-2:]

    def test_mask_id_known(self) -> None:
        assert mask_id(KNOWN_VALID) == "1101************2X"

    def test_mask_account(self) -> None:
        assert mask_account("6222 0212 3456 7890 123") == "****0123"
        assert mask_account("1234") == "****"

    def test_mask_phone(self) -> None:
        assert mask_phone("13800138000") == "138****8000"
        assert mask_phone("138-0013-8000") == "138****8000"
        assert mask_phone("12345") == "*****"

    @pytest.mark.parametrize(
        "garbage", [None, 12345678901234, b"\x00\xff", _Unprintable(), "\ud800"]
    )
    @pytest.mark.parametrize("mask", [mask_id, mask_account, mask_phone, fingerprint])
    def test_masks_never_raise(self, mask: Callable[[object], str], garbage: object) -> None:
        assert isinstance(mask(garbage), str)

    @given(valid_resident_ids())
    def test_mask_id_hides_birth_date_and_sequence(self, value: str) -> None:
        masked = mask_id(value)
        assert len(masked) == 18
        assert masked[4:16] == "*" * 12
        assert masked[:4] == value[:4]
        assert value[6:14] not in masked

    @given(st.text())
    def test_mask_id_shows_at_most_four_plus_two(self, value: str) -> None:
        masked = mask_id(value)
        visible = [c for c in masked if c != "*"]
        assert len(visible) <= 6
        if len(masked) >= 10:
            assert set(masked[4:-2]) == {"*"}

    @given(st.from_regex(r"[0-9]{12,30}", fullmatch=True))
    def test_mask_account_shows_only_last_four(self, value: str) -> None:
        masked = mask_account(value)
        assert masked == "****" + value[-4:]
        assert value[:-4] not in masked

    @given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    def test_mask_phone_hides_middle(self, value: str) -> None:
        masked = mask_phone(value)
        assert masked[3:7] == "****"
        assert value[3:7] not in masked[3:7]


class TestFingerprint:
    def test_shape(self) -> None:
        fp = fingerprint(KNOWN_VALID)
        assert re.fullmatch(r"[0-9a-f]{16}", fp)

    def test_normalised(self) -> None:
        assert fingerprint(KNOWN_VALID) == fingerprint(" 11010519491231002x ")
        assert fingerprint(KNOWN_VALID) == fingerprint("1101 0519 4912 3100 2X")

    def test_key_changes_fingerprint(self) -> None:
        assert fingerprint(KNOWN_VALID, key=b"k1") != fingerprint(KNOWN_VALID)
        assert fingerprint(KNOWN_VALID, key=b"k1") != fingerprint(KNOWN_VALID, key=b"k2")
        assert fingerprint(KNOWN_VALID, key=b"k1") == fingerprint(KNOWN_VALID.lower(), key=b"k1")

    @given(valid_resident_ids(), valid_resident_ids())
    def test_distinguishes_people_and_hides_value(self, a: str, b: str) -> None:
        assume(a != b)
        assert fingerprint(a) != fingerprint(b)
        assert a[6:14] not in fingerprint(a)
