"""Configuration errors are one line on stderr, never a traceback; the library's own PostgreSQL
variables work as the README says (schema created, sealing recorder used)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ledger.cli import main


@pytest.mark.parametrize(
    "env, word",
    [
        ({"PERSISTENCE_MODULE": "eventsourcing.postgres"}, "POSTGRES_DBNAME"),
        ({"KOA_DATA_DIR": "/proc/no/such/dir"}, "KOA_DATA_DIR"),
        ({"KOA_DATABASE_URL": "postgresql://postgres@{host}:{port}/postgres?pool_size=abc"}, "POOL_SIZE"),
    ],
)
def test_configuration_errors_are_one_line(env, word, monkeypatch, tmp_path, pg_server):
    monkeypatch.chdir(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(host=pg_server.host, port=pg_server.port))
    result = CliRunner().invoke(main, ["periods"])
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and word in result.stderr


def test_the_librarys_postgres_variables_work(pg_server, pg_database, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": pg_database,
        "POSTGRES_HOST": pg_server.host,
        "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_USER": pg_server.user,
        "POSTGRES_SCHEMA": "library_env",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    run = CliRunner()
    booked = run.invoke(
        main,
        [
            "book",
            "--key",
            "L-1",
            "--kind",
            "payment",
            "--amount",
            "10,00",
            "--category",
            "kdu",
            "--payment-date",
            "2025-02-27",
            "--service-from",
            "2025-03-01",
            "--service-to",
            "2025-03-31",
            "--document-ref",
            "D-1",
            "--cost-centre",
            "K1",
        ],
    )
    assert booked.exit_code == 0, booked.output
    verified = run.invoke(main, ["audit", "verify"])
    assert verified.exit_code == 0 and "intact: 1 events" in verified.output
    with pg_server.connect(pg_database) as conn:
        conn.execute('DROP SCHEMA "library_env" CASCADE')


def test_an_export_does_not_depend_on_how_the_data_dir_is_spelled(monkeypatch, tmp_path):
    """The store is named in the workbook's Protokoll: a relative KOA_DATA_DIR once gave other
    bytes than the same directory spelled absolute, and `koa submit` refused the genuine file."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(data_dir: str, *args: str):
        monkeypatch.setenv("KOA_DATA_DIR", data_dir)
        result = runner.invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result

    run(
        "books",
        "book",
        "--key",
        "A-1",
        "--kind",
        "payment",
        "--amount",
        "500,00",
        "--category",
        "kdu",
        "--payment-date",
        "2025-02-27",
        "--service-from",
        "2025-03-01",
        "--service-to",
        "2025-03-31",
        "--document-ref",
        "RE-1",
        "--cost-centre",
        "JC-NORD",
        "--user",
        "mueller",
    )
    first = run("books", "export", "koa-vv", "--year", "2025", "--format", "json", "--out", "rel.json")
    moment = first.output.split(" as of ", 1)[1].split(" ", 1)[0]
    for spelled, out in (("books", "again-rel.json"), (str(tmp_path / "books"), "again-abs.json")):
        run(
            spelled, "export", "koa-vv", "--year", "2025", "--as-of", moment, "--format", "json", "--out", out
        )
    assert (tmp_path / "rel.json").read_bytes() == (tmp_path / "again-abs.json").read_bytes()
    assert (tmp_path / "again-rel.json").read_bytes() == (tmp_path / "again-abs.json").read_bytes()
