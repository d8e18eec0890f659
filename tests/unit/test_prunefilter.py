"""dockerd's prune filters (``core/prunefilter``): keys, ``until`` in every form GetTimestamp
takes (and its refusals, word for word as dockerd 20.10 gives them), label matching; and how
image prune and volume prune use them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from wharf.daemon.core.events import EventLog
from wharf.daemon.core.images.filters import ImageFilter
from wharf.daemon.core.images.store import ImageRecord
from wharf.daemon.core.prunefilter import PruneFilter, parse, parse_until
from wharf.daemon.core.state import StateStore
from wharf.daemon.core.volumes.mountspec import MountPoint
from wharf.daemon.core.volumes.service import PRUNE_KEYS, VolumeService
from wharf.daemon.core.volumes.store import VolumeStore
from wharf.errors import InvalidArgument

PLUS_TWO = timezone(timedelta(hours=2))
NOW = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=PLUS_TWO)  # 10:00:00.25Z
NOW_S = 1714557600  # 2024-05-01T10:00:00Z
S = 10**9


@pytest.mark.parametrize(("text", "seconds"), [  # seconds: an int, or a str with a fraction
    ("10m", NOW_S - 600),  # a Go duration back from now, in whole seconds
    ("1h30m", NOW_S - 5400),
    ("-1h", NOW_S + 3600),
    ("1.5h", NOW_S - 5400),
    ("1700000000", 1700000000),  # unix seconds
    ("1700000000.5", "1700000000.5"),
    ("+5", 5),
    ("0", 0),  # not a duration: the epoch, so nothing is old enough
    ("2020-01-01", 1577829600),  # no zone: the daemon's (UTC+2 here)
    ("2020-01-01T10", 1577865600),
    ("2020-01-01T10:30", 1577867400),
    ("2020-01-01T10:00:00", 1577865600),
    ("2020-01-01T10:00:00.5", "1577865600.5"),
    ("2020-01-01T10:00:00,5", "1577865600.5"),  # Go takes a comma after the seconds
    ("2020-01-01Z", 1577836800),
    ("2020-01-01T10Z", 1577872800),
    ("2020-01-01T10:00:00Z", 1577872800),
    ("2020-01-01T10:00:00-05:00", 1577890800),
    ("2020-01-01T10:00:00.5+01:00", "1577869200.5"),
    ("2020-01-01T10:00:00.123456789Z", "1577872800.123456789"),
    ("2020-02-29", 1582927200),
    ("0000-01-01Z", -62167219200),  # year 0, as Go takes it
])
def test_until_forms(text: str, seconds: int | str) -> None:
    assert parse_until(text, NOW) == int(Decimal(seconds) * S)


@pytest.mark.parametrize(("text", "message"), [  # each one seen from dockerd 20.10
    ("abc", 'failed to parse value as time or duration: "abc"'),
    ("", 'failed to parse value as time or duration: ""'),
    ("5.", 'failed to parse value as time or duration: "5."'),
    ("1.5.5", 'failed to parse value as time or duration: "1.5.5"'),
    ("x\ty", 'failed to parse value as time or duration: "x\\ty"'),
    ("é", 'failed to parse value as time or duration: "é"'),
    ("2020-13-01", 'parsing time "2020-13-01": month out of range'),
    ("2020-00-01", 'parsing time "2020-00-01": month out of range'),
    ("2020-01-00", 'parsing time "2020-01-00": day out of range'),
    ("2020-02-30", 'parsing time "2020-02-30": day out of range'),
    ("2020-01-01T25", 'parsing time "2020-01-01T25": hour out of range'),
    ("2020-01-01T10:61", 'parsing time "2020-01-01T10:61": minute out of range'),
    ("2020-01-01T10:00:60", 'parsing time "2020-01-01T10:00:60": second out of range'),
    ("2020-1-1", 'parsing time "2020-1-1" as "2006-01-02": cannot parse "1-1" as "01"'),
    ("-5", 'parsing time "-5" as "2006-01-02": cannot parse "-5" as "2006"'),
    ("20x6-01-01", 'parsing time "20x6-01-01" as "2006-01-02": cannot parse "-01-01" as '
                   '"2006"'),
    ('a"b-', 'parsing time "a\\"b-" as "2006-01-02": cannot parse "a\\"b-" as "2006"'),
    ("2020-01-0é", 'parsing time "2020-01-0\\xc3\\xa9" as "2006-01-02": cannot parse '
                   '"0\\xc3\\xa9" as "02"'),
    ("2020-01-01T", 'parsing time "2020-01-01T" as "2006-01-02T15": cannot parse "" as "15"'),
    ("2020-01-01T1:2:3", 'parsing time "2020-01-01T1:2:3" as "2006-01-02T15:04:05": cannot '
                         'parse "2:3" as "04"'),
    ("2020-02-10z", 'parsing time "2020-02-10z" as "2006-01-02Z07:00": cannot parse "z" as '
                    '"Z07:00"'),
    ("2020-01-01-", 'parsing time "2020-01-01-" as "2006-01-02Z07:00": cannot parse "-" as '
                    '"Z07:00"'),
    ("2020-01-01T10:00:00+05", 'parsing time "2020-01-01T10:00:00+05" as '
                               '"2006-01-02T15:04Z07:00": cannot parse ":00+05" as "Z07:00"'),
    ("2020-01-01T10:00:00+0x:00", 'parsing time "2020-01-01T10:00:00+0x:00" as '
                                  '"2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00"'),
    ("2020-01-01T10:00:00.1234567891234Z",
     'parsing time "2020-01-01T10:00:00.1234567891234Z" as '
     '"2006-01-02T15:04:05.999999999Z07:00": cannot parse "1234Z" as "Z07:00"'),
    ("2020-01-01x", 'parsing time "2020-01-01x": extra text: "x"'),
    ("2020-01-01T10:00:00Z+", 'parsing time "2020-01-01T10:00:00Z+": extra text: "+"'),
    ("2020-01-01T10:00:00.x", 'parsing time "2020-01-01T10:00:00.x": extra text: ".x"'),
])
def test_bad_until_in_dockerds_words(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_until(text, NOW)
    assert caught.value.message == message


def test_keys_and_until_count() -> None:
    for terms, message in (
            ({"foo": ["x"]}, "invalid filter 'foo'"),
            ({"until": ["1h", "2h"]}, "more than one until filter specified"),
            ({"label": ["a"], "until": ["x"], "bar": ["1"]}, "invalid filter 'bar'"),
            ({"dangling": ["true"]}, "invalid filter 'dangling'")):
        with pytest.raises(InvalidArgument) as caught:
            parse(terms, now=NOW)
        assert caught.value.message == message
    with pytest.raises(InvalidArgument, match="invalid filter 'until'"):
        parse({"until": ["1h"]}, until=False)
    assert parse({"until": ["1h", "1h"]}, now=NOW).until == (NOW_S - 3600) * S  # a set
    wanted = parse({"label": ["a"], "all": ["true"]}, extra=("all",), until=False)
    assert (wanted.labels, wanted.extra, wanted.until) == (frozenset({"a"}), {"all": ("true",)},
                                                           None)
    assert parse({}) == PruneFilter()


# The labels of the containers, volumes and networks dockerd pruned (or kept) in the checks
# recorded in docs/disk-usage.md: c1 a=1; c2 a=2, b=""; c3 b=x; c4 none.
OBJECTS = {"c1": {"a": "1"}, "c2": {"a": "2", "b": ""}, "c3": {"b": "x"}, "c4": {}}


@pytest.mark.parametrize(("terms", "pruned"), [
    ({}, ["c1", "c2", "c3", "c4"]),
    ({"label": ["a"]}, ["c1", "c2"]),
    ({"label": ["a=2"]}, ["c2"]),
    ({"label": ["a", "b"]}, ["c2"]),  # every label term
    ({"label": ["b="]}, ["c2"]),  # b with the empty value
    ({"label!": ["a"]}, ["c3", "c4"]),
    ({"label!": ["a=1"]}, ["c2", "c3", "c4"]),
    ({"label!": ["b="]}, ["c1", "c3", "c4"]),
    ({"label!": ["a", "b"]}, ["c1", "c3", "c4"]),  # kept only when every label! term matches
    ({"label!": ["a", "zz"]}, ["c1", "c2", "c3", "c4"]),
    ({"label": ["b"], "label!": ["a"]}, ["c3"]),
])
def test_labels_as_dockerd_matches_them(terms: dict[str, list[str]], pruned: list[str]) -> None:
    wanted = parse(terms)
    assert [name for name, labels in OBJECTS.items() if wanted.matches(labels)] == pruned
    assert wanted.matches(None) == (not terms.get("label"))


def test_until_against_creation_times() -> None:
    wanted = parse({"until": ["2020-01-01T10:00:00Z"]})
    assert wanted.matches({}, "2020-01-01T09:59:59.999999Z")
    assert wanted.matches({}, "2020-01-01T10:00:00Z")  # at it: gone, as Go's !After
    assert wanted.matches({}, "2020-01-01T11:00:00+01:00")
    assert not wanted.matches({}, "2020-01-01T10:00:00.000000001Z")
    assert not wanted.matches({}, "")  # an unknown age is never old enough
    assert not wanted.matches({}, "yesterday")
    assert PruneFilter().matches({}, "")  # no until: the time is not looked at
    assert not parse({"until": ["0"]}).matches({}, "2020-01-01T00:00:00Z")


def test_now_defaults_to_the_daemons_clock() -> None:
    wanted = parse({"until": ["1h"]})
    assert wanted.until is not None
    expected = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
    assert abs(wanted.until / S - expected) < 5


class NoImages:
    """The resolver ``before``/``since`` would need (a prune has neither)."""

    def resolve(self, text: str) -> ImageRecord:
        raise AssertionError(text)


def _image(labels: dict[str, str] | None, created: str, tags: list[str]) -> ImageRecord:
    config = {"created": created, "config": {"Labels": labels}}
    return ImageRecord(id="sha256:" + "1" * 64, config_raw=json.dumps(config).encode(),
                       manifest=None, manifest_digest=None, chain_ids=[], size=0,
                       created_at=created, last_tag_time=None, tags=tags)


def test_image_prune_filters() -> None:
    dangling, wanted = ImageFilter.for_prune({"label!": ["keep"], "until": ["2021-01-01Z"]})
    assert dangling and wanted.terms == {}
    old, new = "2020-06-01T00:00:00Z", "2021-06-01T00:00:00Z"
    assert wanted.matches(_image({"x": "1"}, old, []), NoImages())
    assert wanted.matches(_image(None, old, []), NoImages())
    assert not wanted.matches(_image({"keep": ""}, old, []), NoImages())
    assert not wanted.matches(_image({}, new, []), NoImages())
    for values, only in ((["false"], False), (["0"], False), (["true"], True), (["1"], True),
                         (["true", "false"], False), ([], True)):
        assert ImageFilter.for_prune({"dangling": values})[0] is only
    for terms, message in (({"dangling": ["maybe"]}, "invalid filter 'dangling=[maybe]'"),
                           ({"dangling": ["False"]}, "invalid filter 'dangling=[False]'"),
                           ({"reference": ["x"]}, "invalid filter 'reference'"),
                           ({"before": ["x"]}, "invalid filter 'before'"),
                           ({"until": ["a", "b"]}, "more than one until filter specified"),
                           ({"dangling": ["x"], "until": ["bad"]}, "invalid filter "
                                                                   "'dangling=[x]'")):
        with pytest.raises(InvalidArgument) as caught:
            ImageFilter.for_prune(terms)
        assert caught.value.message == message


def test_image_list_applies_until_and_labels() -> None:
    listed = ImageFilter.parse({"until": ["2021-01-01Z"]})
    assert listed.matches(_image({}, "2020-06-01T00:00:00Z", ["a:1"]), NoImages())
    assert not listed.matches(_image({}, "2021-06-01T00:00:00Z", ["a:1"]),
                              None)
    with pytest.raises(InvalidArgument, match="more than one until"):
        ImageFilter.parse({"until": ["1h", "2h"]})
    labelled = ImageFilter.parse({"label": ["a", "b=2"]})  # every label term, as before
    assert labelled.matches(_image({"a": "", "b": "2"}, "", []), NoImages())
    assert not labelled.matches(_image({"a": "", "b": "3"}, "", []), NoImages())
    assert not labelled.matches(_image(None, "", []), NoImages())
    with pytest.raises(InvalidArgument, match="invalid filter 'label!'"):
        ImageFilter.parse({"label!": ["a"]})  # the list takes no label! (dockerd neither)


def test_volume_prune_takes_labels_as_dockerd_and_all_but_no_until(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    state.open()
    try:
        service = VolumeService(VolumeStore(state, tmp_path / "volumes"), EventLog(state))
        for name, labels in OBJECTS.items():
            service.store.create(name, labels=labels)
        with state.tx() as db:  # c4 is in use: never pruned
            db.execute("INSERT INTO containers (id, name, image_id, created_at, record)"
                       " VALUES ('x', 'x', 'img', 'now', '{}')")
        service.store.attach("x", [MountPoint(type="volume", name="c4", destination="/d")])
        wanted = parse({"label!": ["a", "b"], "all": ["true"]}, extra=PRUNE_KEYS, until=False)
        removed, _ = asyncio.run(service.prune(wanted))
        assert sorted(removed) == ["c1", "c3"]  # c2 has both a and b
        with pytest.raises(InvalidArgument, match="invalid filter 'all=maybe'"):
            asyncio.run(service.prune(parse({"all": ["maybe"]}, extra=PRUNE_KEYS, until=False)))
        assert sorted(v.name for v in service.store.all()) == ["c2", "c4"]
    finally:
        state.close()
