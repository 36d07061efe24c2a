"""Test cases from Project Ubin (MAS, 2017): the 4-bank ring and random gridlocks.

Source: project-ubin/ubin-quorum, ``python_simulator/`` (Apache-2.0); see
``tests/lsm/data/README.md`` and ``/work/shared/conformance/lsm/SOURCES.md``.

* ``load_ubin_ring_xlsx`` reads the original workbook (sheet ``5000 txn list``:
  col A payer, C amount, E receiver, G reference; cols I-J map Bank 1-4 to BICs;
  row 3 of ``4banks 5000txn`` holds the starting balances in Bank 1-4 order).
* ``load_ubin_ring_csv`` reads the derived fixture written by ``export_ring_csv``.
* ``random_gridlock`` draws queues the way Ubin's ``netting.Simulator`` draws
  payments, then keeps only a queue that FIFO bypass cannot shrink.

Amounts are used exactly as the workbook states them (presumably whole SGD); the
optimisation does not depend on the unit.
"""
from __future__ import annotations

import csv
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain_gateway.errors import InvalidMessage
from chain_gateway.lsm.heuristics import release_in_order
from chain_gateway.lsm.model import Account, QueuedPayment

RING_CURRENCY = "SGD"
RING_BANKS = ("ZYECHKH0", "ZYETSGS0", "ZYEUSGS0", "ZYFISGS0")
WORKBOOK_NAME = "Multilateral - 32banks_40000txns - Final - Copy.xlsx"
LIST_SHEET = "5000 txn list"
POSITION_SHEET = "4banks 5000txn"
ELIMINATION_SHEET = "4banks 5000txn - elimination"

PAYMENTS_HEADER = ("seq", "reference", "debtor", "creditor", "amount")
BALANCES_HEADER = ("participant", "balance")


@dataclass(frozen=True, slots=True)
class GridlockCase:
    """A queue snapshot and the balances it waits on (one currency)."""

    name: str
    payments: tuple[QueuedPayment, ...]
    balances: dict[Account, int]
    notes: dict[str, int] = field(default_factory=dict)


def _ring_case(rows: list[tuple[int, str, str, str, int]], balances: Mapping[str, int]) -> GridlockCase:
    payments = tuple(
        QueuedPayment(ref, debtor, creditor, RING_CURRENCY, amount, seq=seq)
        for seq, ref, debtor, creditor, amount in rows
    )
    return GridlockCase(
        name="ubin-ring-4x5000",
        payments=payments,
        balances={(bank, RING_CURRENCY): amount for bank, amount in balances.items()},
    )


def _open_workbook(path: Path | str) -> Any:
    """The workbook's cached values, read-only (openpyxl is imported only here)."""
    import openpyxl

    return openpyxl.load_workbook(Path(path), read_only=True, data_only=True)


def load_ubin_ring_xlsx(path: Path | str) -> GridlockCase:
    """The 4-bank, 5000-payment ring straight from the Ubin workbook (needs openpyxl)."""
    workbook = _open_workbook(path)
    try:
        if LIST_SHEET not in workbook.sheetnames or POSITION_SHEET not in workbook.sheetnames:
            raise InvalidMessage("workbook lacks the Ubin ring sheets", actual=workbook.sheetnames)
        rows: list[tuple[int, str, str, str, int]] = []
        bank_of: dict[str, str] = {}
        for seq, row in enumerate(workbook[LIST_SHEET].iter_rows(max_col=10, values_only=True), start=1):
            payer, _, amount, _, receiver, _, reference, _, label, bic = (list(row) + [None] * 10)[:10]
            if isinstance(label, str) and label.startswith("Bank ") and isinstance(bic, str):
                bank_of[label.replace(" ", "")] = bic
            if not isinstance(amount, int | float) or int(amount) != amount:
                raise InvalidMessage("Ubin payment row has no whole amount", row=seq, actual=amount)
            rows.append((seq, str(reference), str(payer), str(receiver), int(amount)))
        header = list(workbook[POSITION_SHEET].iter_rows(min_row=2, max_row=3, max_col=6, values_only=True))
        names, opening = header[0][2:6], header[1][2:6]
        if header[1][1] != "Current Acct Position" or set(map(str, names)) - set(bank_of):
            raise InvalidMessage("Ubin position sheet layout changed", actual=header)
        balances = {bank_of[str(name)]: int(amount) for name, amount in zip(names, opening)}
    finally:
        workbook.close()
    return _ring_case(rows, balances)


def load_ubin_elimination_counts(path: Path | str) -> dict[str, int]:
    """Payments the workbook's LSM result eliminates, counted per debtor BIC."""
    ring = load_ubin_ring_xlsx(path)
    workbook = _open_workbook(path)
    try:
        counts = dict.fromkeys(RING_BANKS, 0)
        for row in workbook[ELIMINATION_SHEET].iter_rows(min_row=5, max_col=3, values_only=True):
            mark, txn_no = row[1], row[2]
            if mark is not None and isinstance(txn_no, int):
                counts[ring.payments[txn_no - 1].debtor] += 1
    finally:
        workbook.close()
    return counts


def export_ring_csv(case: GridlockCase, payments_csv: Path, balances_csv: Path) -> None:
    """Write the derived fixture (one row per payment; one per bank)."""
    with payments_csv.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(PAYMENTS_HEADER)
        for p in case.payments:
            writer.writerow((p.seq, p.key, p.debtor, p.creditor, p.amount))
    with balances_csv.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(BALANCES_HEADER)
        for (bank, _), amount in case.balances.items():
            writer.writerow((bank, amount))


def load_ubin_ring_csv(payments_csv: Path | str, balances_csv: Path | str) -> GridlockCase:
    """The ring from the derived CSV fixture (no openpyxl needed)."""
    with Path(payments_csv).open(newline="") as src:
        reader = csv.reader(src)
        if tuple(next(reader)) != PAYMENTS_HEADER:
            raise InvalidMessage("unexpected Ubin payments CSV header", path=str(payments_csv))
        rows = [(int(seq), ref, deb, cred, int(amount)) for seq, ref, deb, cred, amount in reader]
    with Path(balances_csv).open(newline="") as src:
        reader = csv.reader(src)
        if tuple(next(reader)) != BALANCES_HEADER:
            raise InvalidMessage("unexpected Ubin balances CSV header", path=str(balances_csv))
        balances = {bank: int(amount) for bank, amount in reader}
    return _ring_case(rows, balances)


def random_gridlock(
    n_banks: int = 64,
    n_payments: int = 500,
    seed: int = 0,
    *,
    currency: str = "SGD",
) -> GridlockCase:
    """A gridlocked queue of ``n_payments`` built like Ubin's random simulation.

    As ``netting.Simulator``: balances uniform in 0.8-1.4 million, payments uniform
    in (0, 1 million] (here whole units 1..1,000,000), payer and payee uniform among
    the banks and distinct (Ubin drops equal pairs; redrawing gives the same
    distribution). Ubin settles a payment on arrival if the payer's balance covers
    it, else queues it. We add what our ledger does: after each settlement the queue
    is released in FIFO-bypass order until nothing more fits. So after every arrival
    no queued payment fits its debtor's balance on its own, and arrivals continue
    until the queue holds ``n_payments``: the snapshot is a true gridlock that only
    multilateral offsetting can loosen. ``notes`` records how many arrivals and
    one-by-one settlements that took. Deterministic for a seed.
    """
    rng = random.Random(seed)
    banks = [f"B{n:03d}" for n in range(n_banks)]
    balances: dict[Account, int] = {(bank, currency): rng.randint(800_000, 1_400_000) for bank in banks}
    queue: list[QueuedPayment] = []
    arrivals = settled = 0
    while len(queue) < n_payments:
        arrivals += 1
        debtor, creditor = rng.sample(banks, 2)
        payment = QueuedPayment(
            key=f"S{seed}-{arrivals:07d}",
            debtor=debtor,
            creditor=creditor,
            currency=currency,
            amount=rng.randint(1, 1_000_000),
            seq=arrivals,
        )
        if balances[payment.debit_account] < payment.amount:
            queue.append(payment)
            continue
        balances[payment.debit_account] -= payment.amount
        balances[payment.credit_account] += payment.amount
        released = set(release_in_order(queue, balances, until_stable=True))
        settled += 1 + len(released)
        if released:
            queue = [p for p in queue if p.key not in released]
    return GridlockCase(
        name=f"random-{n_banks}x{n_payments}-seed{seed}",
        payments=tuple(queue),
        balances=balances,
        notes={"arrivals": arrivals, "settled_one_by_one": settled},
    )
