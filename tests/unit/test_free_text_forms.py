"""Free text (reasons, notes) with personal data however it is typed is refused (found by
a review: these got past FreeText).

domain/identity.py _PERSONAL_IN_TEXT matches ASCII [0-9] with at most one ASCII space or
dash between digits. A Chinese input method in full-width mode types full-width digits
(U+FF10-FF19, "Ｘ") and the ideographic space (U+3000); people also group numbers with
dots or slashes, or two spaces. Each of these is an ID, phone or card number in clear
text that then reaches the timeline, the audit trail and the other agency."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workflows.incoming.types import WithdrawSignal

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "reason",
    [
        "身份证１１０１０５１９４９１２３１００２Ｘ",  # full-width digits (IME full-width mode)
        "身份证 110105\u300019491231\u3000002X",  # ideographic spaces between groups
        "ID 110105.19491231.002X",
        "ID 110105/19491231/002X",
        "电话 138.0013.8000",
        "电话 138 0013  8000",
        "卡号 6222  0212  3456  7890",
    ],
)
def test_free_text_with_personal_data_typed_any_way_is_refused(reason: str) -> None:
    with pytest.raises(ValidationError):
        WithdrawSignal(reason=reason)
