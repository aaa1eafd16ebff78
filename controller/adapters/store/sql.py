"""Small helpers the store's modules share: a mapped class's table, row objects from Core rows,
and the newest rows of named models through their (model, id) indexes."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from controller.adapters.store.tables import Base, CheckRow, DecisionRow


def _table(row: type[Base]) -> sa.Table:
    """The table of a mapped class, for Core statements (no ORM bookkeeping on the hot path)."""
    return cast(sa.Table, row.__table__)


R = TypeVar("R", bound="Base")


NEWEST_CHUNK = 20
"""Models per statement of :func:`_newest_rows`."""


def _newest_rows(
    conn: Session | sa.Connection,
    table: type[CheckRow] | type[DecisionRow],
    columns: tuple[str, ...],
    models: Sequence[str] | None,
) -> list[Any]:
    """``columns`` of each model's newest row in ``table``: of ``models``, else of every model.

    For named models, one ``max(id)`` per model, each one step down the ``(model, id)`` index
    however long the history, in statements of ``NEWEST_CHUNK`` models built once (building one
    for a thousand models cost more than the database's work). Without names, one ``GROUP BY``
    over the whole table (the database reads every row's index entry)."""
    if models is None:
        newest = sa.select(sa.func.max(table.id)).group_by(table.model)
        return list(conn.execute(sa.select(*(_table(table).c[c] for c in columns)).where(table.id.in_(newest))))
    names = list(dict.fromkeys(models))
    rows: list[Any] = []
    for at in range(0, len(names), NEWEST_CHUNK):
        chunk = names[at : at + NEWEST_CHUNK]
        chunk += [chunk[-1]] * (NEWEST_CHUNK - len(chunk))  # one statement for every chunk
        params = {f"m{i}": name for i, name in enumerate(chunk)}
        rows.extend(conn.execute(_newest_statement(table, columns), params))
    return rows


@functools.cache
def _newest_statement(table: type[CheckRow] | type[DecisionRow], columns: tuple[str, ...]) -> Any:
    newest = [
        sa.select(sa.func.max(table.id)).where(table.model == sa.bindparam(f"m{i}")).scalar_subquery()
        for i in range(NEWEST_CHUNK)
    ]
    return sa.select(*(_table(table).c[c] for c in columns)).where(table.id.in_(newest))


def _rows_as(cls: type[R], rows: Iterable[sa.Row[Any]]) -> list[R]:
    """Rows of ``cls``'s table read with Core, as instances of ``cls`` outside any session."""
    return [cls(**row._mapping) for row in rows]
