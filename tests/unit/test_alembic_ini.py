"""The repository's alembic.ini: Alembic's own commands migrate each database, from the
section that names its versions folder and models (the operator's way in, README
"Database and migrations")."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from services.cli.migrate import DATABASES, Database, database_models, head_revision
from services.common.db import make_engine
from services.common.migrate import current_revision

pytestmark = pytest.mark.unit

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def ini_config(database: Database, url: str) -> Config:
    # As `alembic -c alembic.ini -n <database> -x url=<url>` builds it.
    return Config(str(ALEMBIC_INI), ini_section=database, cmd_opts=Namespace(x=[f"url={url}"]))


@pytest.mark.parametrize("database", DATABASES)
def test_alembic_upgrade_head_with_the_ini_creates_the_tables(
    database: Database, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / f'{database}.db'}"
    command.upgrade(ini_config(database, url), "head")
    command.current(ini_config(database, url))
    command.check(ini_config(database, url))  # the migrated schema matches the models
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            at = current_revision(connection)
    finally:
        engine.dispose()
    assert {model.__tablename__ for model in database_models(database)} <= tables
    assert at == head_revision(database)
