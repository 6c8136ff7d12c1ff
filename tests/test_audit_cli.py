"""`koa audit ...` end to end through click's CliRunner, on SQLite and on PostgreSQL.

Each test gets the `store` fixture's KOA_* variables through monkeypatch, so the CLI opens exactly
the store the fixture made; the `books` fixture opens the same store to check what the CLI wrote.
A demo year (20 households) is generated at most once per test.
"""

from __future__ import annotations

import re
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import Result

from ledger import demo as demo_data
from ledger.bootstrap import Books

HOUSEHOLDS = 20
DEMO_SEED = 2025  # koa demo's default --seed
MONEY_RE = re.compile(r"^-?\d{1,3}(\.\d{3})*,\d{2}$")
HEAD_RE = re.compile(r"^([1-9]\d*):([0-9a-f]{64})$")
INTACT_RE = re.compile(r"^intact: (\d+) events, head (\d+):([0-9a-f]{64})")
SAMPLE_LINE_RE = re.compile(r"^(\S+) \((\d+) bookings\): (.+)$")
EXPLAIN_SUMMARY_RE = re.compile(r"^(\d+) bookings, 2025 Q1 kdu: net (\S+), Bund (\S+), Kommune (\S+)$")
REPLAY_COUNT_RE = re.compile(
    r"^(\d+) events read up to position (\d+), (\d+) recorded up to the moment applied", re.M
)


def cents(text: str) -> int:
    """'1.234,56' -> 123456, '-98,60' -> -9860 (German number format)."""
    assert MONEY_RE.match(text), text
    return int(text.replace(".", "").replace(",", ""))


def money_of(line: str) -> list[int]:
    return [cents(t) for t in line.split() if MONEY_RE.match(t)]


def table_line(table: str, label: str) -> str | None:
    """The line of a split table whose first word is `label` (a category), or None."""
    return next((ln for ln in table.splitlines() if ln.split()[:1] == [label]), None)


def figures(table: str, category: str) -> tuple[int, int, int, int]:
    """(net, federal, municipal, count) in cents of a category's line in a split table."""
    line = table_line(table, category)
    assert line is not None, f"no line for {category} in:\n{table}"
    money = money_of(line)
    assert len(money) == 3, line
    return money[0], money[1], money[2], int(line.split()[-1])


def summe_jahr(table: str) -> list[str]:
    return [ln for ln in table.splitlines() if ln.startswith("Summe Jahr")]


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_refused(result: Result, *words: str) -> str:
    """Exit code 1, nothing on stdout, exactly one 'koa: ...' line on stderr containing words."""
    assert result.exit_code == 1, (result.exit_code, result.output, repr(result.exception))
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == "", result.stdout
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("koa: "), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def demo_year(koa, tmp_path: Path) -> Result:
    result = koa("demo", "--households", HOUSEHOLDS, "--out", tmp_path / "demo-out")
    assert result.exit_code == 0, result.output
    assert re.search(r"^[1-9]\d* bookings stored, 0 already there", result.stdout, re.M)
    return result


def book_args(
    key: str,
    amount: str = "500,00",
    payment_date: str = "2025-02-27",
    category: str = "kdu",
    user: str = "mueller",
    cost_centre: str = "JC-NORD",
) -> tuple[str, ...]:
    return (
        *("book", "--key", key, "--kind", "payment", "--amount", amount, "--category", category),
        *("--payment-date", payment_date, "--service-from", "2025-03-01"),
        *("--service-to", "2025-03-31", "--document-ref", "ZA-202503"),
        *("--case-ref", "08221BG0000001", "--cost-centre", cost_centre, "--text", "Miete"),
        *("--user", user),
    )


# Above the approval threshold: counts only once a second person approved it.
BOOK_MN = book_args("MN-2025-0042", amount="23.500,00", category="egt.aktivierung")


# ---- verify and head --------------------------------------------------------------------------


def test_verify_and_head_on_a_demo_year(koa, books: Books, demo_year):
    events = books.ledger.max_notification_id()
    assert events > 100  # a demo year of 20 households

    verified = koa("audit", "verify")
    assert verified.exit_code == 0, verified.output
    m = INTACT_RE.match(verified.stdout.strip())
    assert m, verified.stdout
    assert int(m.group(1)) == events
    assert int(m.group(2)) == events

    head = koa("audit", "head")
    assert head.exit_code == 0, head.output
    out_lines = head.stdout.splitlines()
    assert len(out_lines) == 1, head.stdout
    hm = HEAD_RE.fullmatch(out_lines[0])
    assert hm, out_lines[0]
    assert int(hm.group(1)) == events
    assert hm.group(2) == m.group(3)  # the head verify reports is the head to write down
    anchor = out_lines[0]

    confirmed = koa("audit", "verify", "--anchor", anchor)
    assert confirmed.exit_code == 0, confirmed.output
    assert f"intact: {events} events" in confirmed.stdout
    assert re.search(rf"anchor {re.escape(anchor)} confirmed", confirmed.stdout), confirmed.stdout

    # Same position, another seal: the anchor does not match the stored chain.
    position, seal = anchor.split(":")
    other = f"{(int(seal[0], 16) ^ 1):x}{seal[1:]}"
    assert other != seal and len(other) == 64
    wrong = koa("audit", "verify", "--anchor", f"{position}:{other}")
    line = assert_refused(wrong, f"BROKEN at position {position}")
    assert line.startswith("koa: BROKEN at position"), line

    # An anchor beyond the log was never part of it.
    beyond = koa("audit", "verify", "--anchor", f"{events + 1}:{seal}")
    assert_refused(beyond, f"BROKEN at position {events + 1}")

    # Verifying wrote nothing.
    assert books.ledger.max_notification_id() == events


@pytest.mark.parametrize("anchor", ["12", "x:y", "5:abc"])
def test_verify_malformed_anchor_names_the_option(koa, anchor):
    assert koa(*book_args("V-1")).exit_code == 0
    result = koa("audit", "verify", "--anchor", anchor)
    assert_refused(result, "--anchor", repr(anchor))


def test_head_of_an_empty_log_is_refused(koa):
    result = koa("audit", "head")
    assert_refused(result, "empty")


# ---- booking history --------------------------------------------------------------------------


def history(result: Result) -> list[tuple[str, str, str, str]]:
    """(key, version, event, who) per line of `koa audit booking`."""
    assert result.exit_code == 0, result.output
    rows = []
    for line in result.stdout.splitlines():
        parts = line.split()
        datetime.fromisoformat(parts[0])  # every line starts with its timestamp
        rows.append((parts[1], parts[2], parts[3], parts[4]))
    return rows


def test_booking_history_of_an_approved_booking(koa):
    assert koa(*BOOK_MN).exit_code == 0  # recorded by mueller
    assert koa("approve", "MN-2025-0042", "--user", "schmidt").exit_code == 0

    result = koa("audit", "booking", "MN-2025-0042")
    assert history(result) == [
        ("MN-2025-0042", "v1", "Recorded", "mueller"),
        ("MN-2025-0042", "v2", "Approved", "schmidt"),
    ]
    recorded = result.stdout.splitlines()[0]
    assert "23500.00 EUR egt.aktivierung" in recorded and "needs approval" in recorded


def test_booking_history_of_a_reversed_booking_shows_the_counter_booking(koa):
    assert koa(*book_args("K-R", amount="400,00", user="mueller")).exit_code == 0
    reversed_ = koa("reverse", "K-R", "--reason", "Doppelzahlung", "--user", "meier")
    assert reversed_.exit_code == 0, reversed_.output

    expected = {
        ("K-R", "v1", "Recorded", "mueller"),
        ("K-R", "v2", "Reversed", "meier"),
        ("K-R/storno", "v1", "Recorded", "meier"),
    }
    for key in ("K-R", "K-R/storno"):  # from either side, the whole story
        result = koa("audit", "booking", key)
        rows = history(result)
        assert len(rows) == 3, result.stdout
        assert set(rows) == expected
        assert rows[0] == ("K-R", "v1", "Recorded", "mueller")  # oldest first
        text = result.stdout
        assert "reversed by K-R/storno: Doppelzahlung" in text
        assert "reverses K-R: Doppelzahlung" in text


def test_booking_history_approved_then_reversed(koa):
    assert koa(*BOOK_MN).exit_code == 0
    assert koa("approve", "MN-2025-0042", "--user", "schmidt").exit_code == 0
    reversed_ = koa("reverse", "MN-2025-0042", "--reason", "Rechnung doppelt", "--user", "meier")
    assert reversed_.exit_code == 0, reversed_.output
    assert koa("approve", "MN-2025-0042/storno", "--user", "schmidt").exit_code == 0

    rows = history(koa("audit", "booking", "MN-2025-0042"))
    assert sorted(rows) == sorted(
        [
            ("MN-2025-0042", "v1", "Recorded", "mueller"),
            ("MN-2025-0042", "v2", "Approved", "schmidt"),
            ("MN-2025-0042", "v3", "Reversed", "meier"),
            ("MN-2025-0042/storno", "v1", "Recorded", "meier"),
            ("MN-2025-0042/storno", "v2", "Approved", "schmidt"),
        ]
    )
    assert rows[:2] == [
        ("MN-2025-0042", "v1", "Recorded", "mueller"),
        ("MN-2025-0042", "v2", "Approved", "schmidt"),
    ]
    assert rows[-1] == ("MN-2025-0042/storno", "v2", "Approved", "schmidt")


def test_booking_history_of_an_unknown_key_names_the_key(koa):
    assert koa(*book_args("K-1")).exit_code == 0
    result = koa("audit", "booking", "NO-SUCH-KEY")
    assert_refused(result, "NO-SUCH-KEY")


# ---- explain ----------------------------------------------------------------------------------


def test_explain_adds_up_to_the_split_line(koa, demo_year):
    explained = koa("audit", "explain", "--year", 2025, "--quarter", 1, "--category", "kdu")
    assert explained.exit_code == 0, explained.output
    lines = explained.stdout.splitlines()
    m = EXPLAIN_SUMMARY_RE.match(lines[-1])
    assert m, lines[-1]
    count, net, fed, mun = int(m.group(1)), *(cents(m.group(i)) for i in (2, 3, 4))

    split = koa("split", "--year", 2025, "--quarter", 1)
    assert split.exit_code == 0, split.output
    assert figures(split.stdout, "kdu") == (net, fed, mun, count)
    assert count > 10

    # One line per booking, each with its share; they add up to the summary.
    booking_lines = lines[:-1]
    assert len(booking_lines) == count
    shares = [money_of(ln) for ln in booking_lines]
    assert all(len(s) == 3 and s[1] + s[2] == s[0] for s in shares), booking_lines
    assert sum(s[0] for s in shares) == net
    assert sum(s[1] for s in shares) == fed
    assert sum(s[2] for s in shares) == mun


def test_explain_unknown_category_names_category(koa):
    assert koa(*book_args("E-1")).exit_code == 0
    result = koa("audit", "explain", "--year", 2025, "--quarter", 1, "--category", "nope")
    assert_refused(result, "category", "nope")


# ---- sample -----------------------------------------------------------------------------------


def march_population() -> dict[str, set[str]]:
    """Per cost centre, the keys of the demo year paid in March 2025 (from the generator)."""
    data = demo_data.generate(2025, HOUSEHOLDS, DEMO_SEED)
    contents = {c.key: c for _, run in data.runs for c in run}
    out: dict[str, set[str]] = {}
    for c in contents.values():
        if date(2025, 3, 1) <= c.payment_date <= date(2025, 3, 31):
            out.setdefault(c.cost_centre, set()).add(c.key)
    for key, _reason in data.reversals:  # a counter-booking keeps the original's payment date
        c = contents[key]
        if date(2025, 3, 1) <= c.payment_date <= date(2025, 3, 31):
            out[c.cost_centre].add(key + "/storno")
    return out


SAMPLE_MARCH = ("audit", "sample", "--month", "2025-03", "--per-branch", 3)


def sample_lines(result: Result) -> dict[str, tuple[int, list[str]]]:
    assert result.exit_code == 0, result.output
    out = {}
    for line in result.stdout.splitlines():
        m = SAMPLE_LINE_RE.match(line)
        if m:
            out[m.group(1)] = (int(m.group(2)), m.group(3).split(", "))
    return out


def test_sample_is_reproducible_and_every_draw_is_recorded(koa, books: Books, demo_year):
    population = march_population()
    assert len(population) > 1

    def draw_sample(seed: str) -> Result:
        return koa(*SAMPLE_MARCH, "--seed", seed, "--user", "pruefer")

    first = draw_sample("s1")
    drawn = sample_lines(first)
    assert set(drawn) == set(population)
    for branch, (size, keys) in drawn.items():
        assert size == len(population[branch]), branch
        assert len(keys) == min(3, size)
        assert len(set(keys)) == len(keys)
        for key in keys:
            assert key in population[branch], (branch, key)
            b = books.ledger.get_booking(key)
            assert b.cost_centre == branch, key
            assert date(2025, 3, 1) <= b.payment_date <= date(2025, 3, 31), key
    assert "recorded by pruefer" in first.stdout
    assert "earlier draw" not in first.stdout

    second = draw_sample("s1")
    assert sample_lines(second) == drawn
    assert "note: 1 earlier draw(s) for 2025-03:" in second.stdout.splitlines()
    earlier = [ln for ln in second.stdout.splitlines() if ln.startswith("  ")]
    assert len(earlier) == 1 and "seed s1" in earlier[0] and "by pruefer" in earlier[0]

    third = draw_sample("s2")
    other = sample_lines(third)
    sizes = {b: size for b, (size, _) in drawn.items()}
    assert {b: size for b, (size, _) in other.items()} == sizes
    assert other != drawn  # another seed, another sample (fixed data: deterministic)
    assert "note: 2 earlier draw(s) for 2025-03:" in third.stdout.splitlines()
    earlier = [ln for ln in third.stdout.splitlines() if ln.startswith("  ")]
    assert len(earlier) == 2 and all("seed s1" in ln for ln in earlier)

    draws = books.ledger.sample_draws("2025-03")
    assert [d.seed for d in draws] == ["s1", "s1", "s2"]
    assert [d.per_branch for d in draws] == [3, 3, 3]
    assert [d.drawn_by for d in draws] == ["pruefer"] * 3
    printed_ids = [
        re.search(r"^draw (\S+) recorded by", r.stdout, re.M).group(1) for r in (first, second, third)
    ]
    assert [str(d.id) for d in draws] == printed_ids
    assert draws[0].sample == {b: keys for b, (_, keys) in drawn.items()}
    assert draws[2].sample == {b: keys for b, (_, keys) in other.items()}
    assert books.ledger.sample_draws("2025-04") == []

    # The draws are part of the sealed log.
    verified = koa("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert f"intact: {books.ledger.max_notification_id()} events" in verified.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (("--month", "2025-13", "--per-branch", 3, "--seed", "s1"), ("--month", "2025-13")),
        (("--month", "03-2025", "--per-branch", 3, "--seed", "s1"), ("--month", "03-2025")),
        (("--month", "2025-06", "--per-branch", 3, "--seed", "s1"), ("--month", "2025-06")),
        (("--month", "2025-03", "--per-branch", 0, "--seed", "s1"), ("per_branch",)),
        (("--month", "2025-03", "--per-branch", 3, "--seed", "a b"), ("seed",)),
    ],
    ids=["month-13", "month-first", "month-without-bookings", "per-branch-0", "seed-blank"],
)
def test_sample_bad_input_is_one_line_and_records_nothing(koa, books: Books, args, words):
    # Bookings paid in March 2025 only (none in June).
    assert koa(*book_args("S-1", payment_date="2025-03-10")).exit_code == 0
    assert koa(*book_args("S-2", payment_date="2025-03-11", cost_centre="JC-SUED")).exit_code == 0
    before = books.ledger.max_notification_id()
    result = koa("audit", "sample", *args)
    assert_refused(result, *words)
    assert books.ledger.max_notification_id() == before
    assert books.ledger.sample_draws("2025-03") == []


# ---- replay -----------------------------------------------------------------------------------


def test_replay_now_gives_the_live_split_and_leaves_the_store_alone(
    koa, books: Books, demo_year, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The default work directory is a new temporary directory: keep it inside tmp_path.
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))

    split = koa("split", "--year", 2025)
    assert split.exit_code == 0, split.output
    assert len(summe_jahr(split.stdout)) == 1
    events = books.ledger.max_notification_id()
    live_view = books.split_view.table_dump()

    as_of = datetime.now(UTC).isoformat()
    assert as_of.endswith("+00:00")
    replay = koa("audit", "replay", "--as-of", as_of)
    assert replay.exit_code == 0, replay.output
    assert summe_jahr(replay.stdout) == summe_jahr(split.stdout)
    assert split.stdout in replay.stdout  # the whole 2025 table, line for line

    m = REPLAY_COUNT_RE.search(replay.stdout)
    assert m, replay.stdout
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (events, events, events)

    where = re.search(r"^replay store: (.+)$", replay.stdout, re.M)
    assert where, replay.stdout
    path = Path(where.group(1))
    assert path.exists()
    assert path.parent == temp_root.resolve()
    assert list(path.glob("*.sqlite")), list(path.iterdir())

    # The live store and its read model are unchanged.
    assert books.ledger.max_notification_id() == events
    assert books.split_view.table_dump() == live_view
    project = koa("project")
    assert project.exit_code == 0, project.output
    assert project.stdout.startswith("0 events applied")


def test_replay_as_of_a_moment_between_two_bookings(koa, books: Books, tmp_path: Path):
    assert koa(*book_args("A-1", amount="500,00")).exit_code == 0
    assert koa(*BOOK_MN).exit_code == 0  # recorded before the moment, approved after it
    moment = datetime.now(UTC)
    time.sleep(0.05)
    assert koa(*book_args("B-1", amount="300,00")).exit_code == 0
    assert koa("approve", "MN-2025-0042", "--user", "schmidt").exit_code == 0

    live = koa("split", "--year", 2025, "--quarter", 1)
    assert figures(live.stdout, "kdu") == (80000, 58000, 22000, 2)
    assert figures(live.stdout, "egt.aktivierung")[0] == 2350000
    events = books.ledger.max_notification_id()
    assert events == 4

    work = tmp_path / "replay-work"
    replay = koa("audit", "replay", "--as-of", moment.isoformat(), "--work-dir", work)
    assert replay.exit_code == 0, replay.output
    # Only A-1 counts: B-1 came later, MN-2025-0042 was not approved yet.
    assert figures(replay.stdout, "kdu") == (50000, 36250, 13750, 1)
    assert table_line(replay.stdout, "egt.aktivierung") is None
    m = REPLAY_COUNT_RE.search(replay.stdout)
    assert m, replay.stdout
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (4, 4, 2)
    assert f"replay store: {work.resolve()}" in replay.stdout.splitlines()
    assert work.is_dir() and list(work.glob("*.sqlite"))
    assert books.ledger.max_notification_id() == events

    # The live split still shows everything.
    after = koa("split", "--year", 2025, "--quarter", 1)
    assert after.stdout == live.stdout


@pytest.mark.parametrize("as_of", ["yesterday", "2025-13-01", "2001-01-01"])
def test_replay_bad_as_of_is_one_line(koa, books: Books, as_of, tmp_path: Path):
    assert koa(*book_args("R-1")).exit_code == 0
    work = tmp_path / "work"
    result = koa("audit", "replay", "--as-of", as_of, "--work-dir", work)
    assert_refused(result, "--as-of")
    assert books.ledger.max_notification_id() == 1


def test_replay_unwritable_work_dir_is_one_line(koa, books: Books, tmp_path: Path):
    assert koa(*book_args("R-1")).exit_code == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    work = blocker / "replay"
    result = koa("audit", "replay", "--as-of", datetime.now(UTC).isoformat(), "--work-dir", work)
    assert_refused(result, "--work-dir")
    assert blocker.read_text() == "not a directory\n"
    assert books.ledger.max_notification_id() == 1


def test_replay_as_of_a_moment_splits_at_the_rates_of_that_moment(koa, books: Books, tmp_path: Path):
    """A quota set after the moment must not reach a replay of the moment (it once printed the
    past figures at today's rates, unlike the export as of the same moment)."""
    assert koa(*book_args("A-1", amount="500,00")).exit_code == 0
    moment = datetime.now(UTC)
    time.sleep(0.05)
    changed = koa(
        "params",
        "set",
        "kdu_quota_final",
        "--year",
        2025,
        "--value",
        "80 %",
        "--reason",
        "BBFestV",
        "--user",
        "admin",
    )
    assert changed.exit_code == 0, changed.output
    assert figures(koa("split", "--year", 2025, "--quarter", 1).stdout, "kdu") == (50000, 40000, 10000, 1)
    replay = koa("audit", "replay", "--as-of", moment.isoformat(), "--work-dir", tmp_path / "work")
    assert replay.exit_code == 0, replay.output
    assert figures(replay.stdout, "kdu") == (50000, 36250, 13750, 1)  # 72,5 % as of the moment
