"""`orders`/`trades --status filled,canceled`: the CLI takes the comma list the API takes (`?status=a,b`), as well
as the repeated option."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from db import BatchWriter, connect
from engine.cli import main
from engine.domain import OrderStatus
from tests.db import _records as rec


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/engine.sqlite3"
    db = connect(url)
    BatchWriter(db).write(
        [
            rec.order("open"),
            rec.progressed(rec.order("filled"), Decimal("0.5"), OrderStatus.FILLED),
            rec.progressed(rec.order("canceled"), Decimal(0), OrderStatus.CANCELED),
        ]
    )
    db.close()
    return url


@pytest.mark.parametrize(
    "status",
    [["--status", "filled,canceled"], ["--status=filled, canceled"], ["--status", "filled", "--status", "canceled"]],
    ids=["comma", "equals-comma", "repeated"],
)
def test_a_comma_list_of_statuses_is_accepted(status: list[str], url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["orders", *status, "--db-url", url, "--json"]) == 0
    ids = sorted(orjson.loads(line)["client_order_id"] for line in capsys.readouterr().out.splitlines())
    assert ids == ["canceled", "filled"]


def test_an_unknown_status_in_a_list_is_still_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["trades", "--status", "filled,bogus", "--db-url", url])
    assert exited.value.code == 2 and "bogus" in capsys.readouterr().err
