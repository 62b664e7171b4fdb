"""R16: what a transfer-out does to the personal account, decided without I/O. The
records (services/outgoing_agency/records.py) apply the decision in their transaction."""

from __future__ import annotations

from dataclasses import dataclass

# The balance actions that move the money out of the account (domain/balance.py decides
# which one a case takes); "keep_usable" (R20) and "none" leave it where it is.
MOVES_THE_BALANCE = frozenset({"remit", "pay_to_bank"})


class BalanceChanged(ValueError):
    """The account's balance is not the one the check saw: nothing is debited."""


@dataclass(frozen=True)
class Settlement:
    """The account at transfer-out: the balance moved (what the sheet reports), the
    debit ledger leg's amount (0: no leg), and the balance the account keeps."""

    balance_fen: int
    debit_fen: int
    balance_after_fen: int


def settle_transfer_out(balance_fen: int, expected_fen: int, action: str) -> Settlement:
    """R16: the balance moved is the account's balance at transfer-out, which must be the
    balance the check saw (else BalanceChanged); when the balance action moves money and
    there is some, one debit of all of it and the account left at zero."""
    # R16: only the balance the check saw moves.
    if balance_fen != expected_fen:
        # Edits are refused while a case holds the claim; a differing balance means the
        # records changed under the case: a clerk looks (stuck list).
        raise BalanceChanged(f"the balance is {balance_fen} fen, the check saw {expected_fen}")
    if action in MOVES_THE_BALANCE and balance_fen > 0:
        return Settlement(balance_fen, debit_fen=balance_fen, balance_after_fen=0)
    return Settlement(balance_fen, debit_fen=0, balance_after_fen=balance_fen)
